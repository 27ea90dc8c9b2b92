"""The `irq` command line: `app` and its error boundary in app.py, one module per group of verbs.

Importing the verb modules registers their commands, in the order `irq --help` lists them.
"""
import sys

from irq.cli.early import start_if_status

start_if_status(sys.argv[1:])  # `irq status`: its refresh's exec starts before the verbs load
# isort: off
from irq.cli import experiments, views, jobs, clusters, login, daemon, results  # noqa: E402, F401
from irq.cli.app import app, main  # noqa: E402
# isort: on

__all__ = ["app", "main"]
