"""Cost: prices, the live meter, the hard limit and the ledger of past clusters."""
