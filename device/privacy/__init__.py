"""Privacy a household can check: the upload ledger, forgetting, and the transcript switch."""
