"""The one place that picks a cluster's SSH transport from irq.toml (`transport = "openssh" | "paramiko"`)."""
from __future__ import annotations

from typing import Protocol

from irq.backends.base import CallCounter
from irq.config import ClusterConfig


class Session(Protocol):
    """What SlurmBackend needs from a connection (SSHSession and OpenSSHSession both are one)."""

    counter: CallCounter

    @property
    def user(self) -> str: ...

    @property
    def where(self) -> str: ...

    def run(self, cmd, *, stdin=None, timeout=None, calls=None) -> tuple[int, str, str]: ...

    def put_text(self, path: str, text: str, mode: int = 0o644) -> None: ...

    def read_tail(self, path: str, max_bytes: int = 65536) -> str | None: ...

    def get_tree(self, remote_dir, local_dir, exclude=()) -> list: ...

    def close(self) -> None: ...


def open_session(cfg: ClusterConfig, prompt=None) -> Session:
    """A session over the cluster's configured transport (nothing connects until the first call)."""
    if cfg.transport == "paramiko":
        from irq.backends.ssh.session import SSHSession

        return SSHSession(cfg, prompt=prompt)
    from irq.backends.ssh.openssh import OpenSSHSession

    return OpenSSHSession(cfg)
