"""The `irq` command line: `app` and its error boundary in app.py, one module per group of verbs.

Importing the verb modules registers their commands, in the order `irq --help` lists them.
"""
# isort: off
from irq.cli import experiments, views, jobs, clusters, login, daemon, results  # noqa: F401
from irq.cli.app import app, main
# isort: on

__all__ = ["app", "main"]
