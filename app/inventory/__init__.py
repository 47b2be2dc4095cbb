"""Goods receipts to the pharmacy audit: SAP MM receipts against the HMIS item master."""
