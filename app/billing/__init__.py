"""Bills to SAP Finance: a journal entry per bill, exactly once; reversals and refunds."""
