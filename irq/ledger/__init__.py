"""The ledger: the SQLite database, its tables, the states experiments and attempts move
through (states.py), and the one writer of each state machine (transitions.py)."""
