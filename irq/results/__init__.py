"""Answering the study's question: per-seed results gathered from the ledger and the fetched run
directories, their statistics with honest intervals, verdicts on stated criteria, sweeps, plots and
the summary report.

Layer: beside jobs and experiments (it reads the ledger, adds experiments through
irq.experiments.edit). numpy is imported by the modules that compute (stats.py, plots.py,
verdict.py), and `irq results` reaches them only for the rows its cache lacks (cache.py); scipy
and matplotlib only inside the functions that need them, so `irq --help` stays fast.
"""
