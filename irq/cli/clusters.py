"""Commands about clusters themselves: trust."""
from __future__ import annotations

import sys
from typing import Optional

import typer

from irq import errors
from irq.cli.app import app, ctx
from irq.cli.common import _config


@app.command()
def trust(
    c: typer.Context,
    cluster: Optional[str] = typer.Argument(None, help="A [clusters.NAME] from irq.toml (default: the configured backend)."),
    yes: bool = typer.Option(False, "--yes", help="Trust without asking (only after checking the fingerprint)."),
) -> None:
    """Show a cluster's SSH host key fingerprint and, once you confirm it, add it to known_hosts.

    \b
    Example:
      irq trust fasrc
    """
    from irq.backends.ssh.hostkeys import trust_host
    from irq.backends.ssh.session import fetch_host_key

    x = ctx(c)
    config = _config(x)
    cfg = config.cluster(cluster)
    key_type, fp, key = fetch_host_key(cfg)
    x.ui.print(f"{cfg.name} ({cfg.host}) presents a {key_type} host key with fingerprint {fp}")
    if not yes:
        if not sys.stdin.isatty():
            raise errors.UsageError("not trusting a host key without confirmation",
                                    "compare the fingerprint with your admins', then rerun with --yes")
        if input("Is this the fingerprint your cluster's admins publish? [y/N] ").strip().lower() not in ("y", "yes"):
            raise errors.HostKeyError("host key not trusted", "nothing was written")
    path = trust_host(cfg, key)
    x.ui.print(f"added to {path}" if path else "that key was already trusted")
