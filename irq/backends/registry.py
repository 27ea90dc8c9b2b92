"""The backends a command or daemon cycle uses, each opened once, and the record of their scheduler calls."""
from __future__ import annotations

import json
import sys
from contextlib import ExitStack
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from irq import errors
from irq.backends.base import Backend, Slots, fresh_limit
from irq.backends.target import Target, project_subdir
from irq.config import Config
from irq.ledger.database import Ledger


class Backends:
    """Opens each backend once per command or daemon cycle (one SSH connection each)."""

    def __init__(self, config: Config, prompt: Callable[..., Any] | None = None) -> None:
        self.config = config
        self.prompt = prompt
        self._open: dict[str, Backend] = {}
        self._targets: dict[str, Target] = {}  # of backends handed in with provide()
        self._stack = ExitStack()

    def provide(self, backend: Backend, target: Target) -> None:
        """Use an already open backend under its name (tests: a FakeBackend, or a SlurmBackend
        on a fake shell); it is closed with the others. irq.toml cannot name such a backend."""
        self._open[backend.name] = backend
        self._targets[backend.name] = target
        self._stack.callback(backend.close)

    def resolve_name(self, name: str | None) -> str:
        """`--backend` as the user wrote it (`local`, `slurm:NAME` or irq.toml's bare NAME) as stored."""
        if name and (name == "local" or (name.startswith("slurm:") and name != "slurm:") or name in self._open):
            return name
        return self.config.backend_name(name)

    def target(self, name: str | None = None) -> Target:
        name = self.resolve_name(name)
        if name in self._targets:
            return self._targets[name]
        if name == "local":
            return Target.local(self.config, sys.executable)
        return Target.cluster(self.config.cluster(name.split(":", 1)[1]), project_subdir(self.config.root))

    def get(self, name: str) -> Backend:
        name = self.resolve_name(name)
        if name not in self._open:
            if name == "local":
                from irq.backends.local import LocalBackend

                t = self.target("local")
                self._open[name] = LocalBackend(Path(t.workdir), self.config.local.slots)
            elif name.startswith("slurm:"):
                from irq.backends.slurm import SlurmBackend

                self._open[name] = SlurmBackend(self.config.cluster(name.split(":", 1)[1]), prompt=self.prompt)
            else:
                raise errors.ConfigError(f"attempts were made with backend {name!r}, which irq does not know")
            self._stack.callback(self._open[name].close)
        return self._open[name]

    def new_cycle(self) -> None:
        """A daemon cycle starts: every open backend keeps its connection and forgets what it
        learned about the queue."""
        for b in self._open.values():
            b.new_cycle()

    def logged_in(self) -> bool:
        """Every open backend reaches its scheduler without a person right now (local checks
        only, see Backend.logged_in): what a daemon waiting for `irq login` watches."""
        try:
            return all(b.logged_in() for b in self._open.values())
        except (OSError, errors.IrqError):
            return False

    def default_name(self) -> str:
        return "local" if self.config.backend == "local" else f"slurm:{self.config.backend}"

    def opened(self) -> dict[str, Backend]:
        return dict(self._open)

    def close(self) -> None:
        self._stack.close()
        self._open.clear()

    def __enter__(self) -> "Backends":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def slots(ledger: Ledger, backends: Backends, name: str | None = None) -> Slots:
    """The backend's job slots, its job limit taken from the ledger's cache (Meta
    `job_limit:NAME`, with the time it was read) while younger than an hour; a limit the
    backend read from the scheduler is cached for the next command or daemon cycle."""
    name = name or backends.default_name()
    b = backends.get(name)
    key = f"job_limit:{name}"
    try:
        cached = json.loads(ledger.get_meta(key) or "null")
    except ValueError:
        cached = None
    if fresh_limit(cached):
        b.known_limit(cached["limit"], cached["source"])
    result = b.slots()
    _remember_limit(ledger, name, b)
    return result


def _remember_limit(ledger: Ledger, name: str, b: Backend) -> None:
    news, found = b.take_limit_news()
    if news == "stale":  # the scheduler disagrees with the cache: read it again next time
        ledger.set_meta(f"job_limit:{name}", "null")
    elif news == "found" and found is not None:
        ledger.set_meta(f"job_limit:{name}", json.dumps(
            {"limit": found[0], "source": found[1], "at": datetime.now(timezone.utc).isoformat()}))


def record_calls(ledger: Ledger, backends: Backends) -> None:
    """Append this session's scheduler calls to the ledger (the polling budget); drop a cached
    job limit the scheduler just contradicted (sbatch refused for the limit)."""
    with ledger.transaction() as s:
        for name, b in backends.opened().items():
            for cmd in b.counter.calls:
                Ledger.record_call(s, name, cmd)
            b.counter.calls.clear()
    for name, b in backends.opened().items():
        _remember_limit(ledger, name, b)
