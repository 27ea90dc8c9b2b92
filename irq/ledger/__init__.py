"""The ledger: the SQLite database, its tables, and the states experiments and attempts move through."""
