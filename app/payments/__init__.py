"""SAP payments to HMIS: each payment recorded against its bill exactly once."""
