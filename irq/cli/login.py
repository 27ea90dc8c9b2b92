"""Commands that open and close a cluster's shared connection: login, logout."""
from __future__ import annotations

from typing import Optional

import typer

from irq import errors
from irq.cli.app import app, ctx
from irq.cli.common import _config

CLUSTER_HELP = "A [clusters.NAME] from irq.toml (default: the configured backend)."


@app.command()
def login(c: typer.Context, cluster: Optional[str] = typer.Argument(None, help=CLUSTER_HELP)) -> None:
    """Open (or check) the cluster's master connection; type the one-time code here, once.

    Every later irq command and the daemon run through that connection, without prompting,
    until `irq logout` (or 12 hours without use)."""
    from irq.backends.ssh.openssh import CONTROL_PERSIST, OpenSSHSession

    x = ctx(c)
    cfg = _config(x).cluster(cluster)
    if cfg.transport != "openssh":
        raise errors.UsageError(
            f"cluster {cfg.name} uses transport = {cfg.transport!r}, which logs in anew for every command",
            f"set transport = \"openssh\" in [clusters.{cfg.name}] to share one login")
    session = OpenSSHSession(cfg)
    opened = session.login()
    rc, out, _ = session.run(["true"], calls=())
    if rc != 0:
        raise errors.BackendError(f"the master connection to {session.where} does not run commands (exit {rc})")
    verb = "logged in to" if opened else "already logged in to"
    x.ui.print(f"{verb} {cfg.name} ({session.where}): every irq command and the daemon use this connection "
               f"until `irq logout {cfg.name}` (or {CONTROL_PERSIST} idle)")


@app.command()
def logout(c: typer.Context, cluster: Optional[str] = typer.Argument(None, help=CLUSTER_HELP)) -> None:
    """Close the cluster's master connection (unattended commands then need `irq login` again)."""
    from irq.backends.ssh.openssh import OpenSSHSession

    x = ctx(c)
    cfg = _config(x).cluster(cluster)
    if cfg.transport != "openssh":
        x.ui.print(f"{cfg.name} uses transport = {cfg.transport!r}: no shared connection to close")
        return
    closed = OpenSSHSession(cfg).logout()
    x.ui.print(f"logged out of {cfg.name}" if closed else f"no connection to {cfg.name} was open")
