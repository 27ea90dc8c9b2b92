"""Where an SSH connection goes, resolved from irq.toml and ~/.ssh/config as OpenSSH resolves it.

paramiko (its ssh-config parser) is imported only when there is a config file to read: over
OpenSSH with no such file, `irq status` never loads it."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from irq import errors

if TYPE_CHECKING:
    import paramiko

    from irq.config import ClusterConfig  # (pydantic: not loaded by `irq status`'s quick path)


@dataclass
class Endpoint:
    """Where one SSH hop goes, after ssh-config resolution."""

    alias: str
    hostname: str
    port: int
    user: str
    identity_files: list[str] = field(default_factory=list)
    identities_only: bool = False
    known_hosts: list[str] = field(default_factory=list)
    proxy_jump: str | None = None
    proxy_command: str | None = None

    @property
    def where(self) -> str:
        return f"{self.hostname}:{self.port}"

    @property
    def key_name(self) -> str:
        """The host's name in known_hosts: `host`, or `[host]:port` off port 22."""
        return host_key_name(self.hostname, self.port)



class AtEndpoint:
    """What both SSH sessions (paramiko, OpenSSH) say about where they log in."""

    endpoint: Endpoint

    @property
    def user(self) -> str:
        return self.endpoint.user

    @property
    def where(self) -> str:
        return f"{self.endpoint.user}@{self.endpoint.where}"

def host_key_name(hostname: str, port: int) -> str:
    return hostname if port == 22 else f"[{hostname}]:{port}"


def _local_user() -> str:
    import getpass  # (it loads termios)

    return getpass.getuser()


def _expand(p: str) -> str:
    return os.path.expanduser(os.path.expandvars(p))


class NoSSHConfig:
    """No ssh config file, or an empty one: every host is itself (what paramiko's lookup answers)."""

    def lookup(self, host: str) -> dict[str, Any]:
        return {"hostname": host}


def _load_ssh_config(path: str | None) -> paramiko.SSHConfig | NoSSHConfig:
    p = Path(_expand(path)) if path else Path.home() / ".ssh" / "config"
    if path and not p.exists():
        raise errors.ConfigError(f"ssh_config = {path!r}: no such file",
                                 "fix ssh_config in irq.toml, or remove it to use ~/.ssh/config")
    try:
        if not p.exists() or not p.read_bytes().strip():
            return NoSSHConfig()
    except OSError:
        pass  # unreadable: paramiko says why below
    import paramiko

    try:
        return paramiko.SSHConfig.from_path(str(p))
    except Exception as exc:  # paramiko raises a few kinds on bad syntax
        raise errors.ConfigError(f"{p}: cannot read this ssh config: {exc}",
                                 "fix the file (see `man ssh_config`)") from None


def _known_hosts_files(explicit: str | None, looked_up: dict) -> list[str]:
    if explicit:
        return [_expand(explicit)]
    files = looked_up.get("userknownhostsfile")
    if files:
        return [_expand(f) for f in files.split()]
    return [str(Path.home() / ".ssh" / "known_hosts")]


def resolve_endpoint(cfg: ClusterConfig, sshconf: paramiko.SSHConfig | NoSSHConfig | None = None) -> Endpoint:
    """The cluster's login node: ssh config (for cfg.host) overridden by explicit cfg values."""
    sshconf = sshconf if sshconf is not None else _load_ssh_config(cfg.ssh_config)
    o = sshconf.lookup(cfg.host)
    ids = [cfg.identity_file] if cfg.identity_file else list(o.get("identityfile") or [])
    jump = o.get("proxyjump")
    return Endpoint(
        alias=cfg.host,
        hostname=o.get("hostname") or cfg.host,
        port=int(cfg.port or o.get("port") or 22),
        user=cfg.user or o.get("user") or _local_user(),
        identity_files=[_expand(i) for i in ids],
        identities_only=bool(cfg.identity_file) or str(o.get("identitiesonly", "no")).lower() == "yes",
        known_hosts=_known_hosts_files(cfg.known_hosts, o),
        proxy_jump=None if not jump or jump.lower() == "none" else jump,
        proxy_command=None if (o.get("proxycommand") or "none").lower() == "none" else o["proxycommand"],
    )


def _resolve_hop(spec: str, sshconf: paramiko.SSHConfig | NoSSHConfig, known_hosts: list[str]) -> Endpoint:
    """One ProxyJump hop: `[user@]host[:port]` or `ssh://[user@]host[:port]`, itself looked up."""
    s = spec.strip()
    if s.startswith("ssh://"):
        s = s[len("ssh://"):]
    user, _, hostport = s.rpartition("@")
    host, port = hostport, None
    if hostport.startswith("["):  # [ipv6]:port
        host, _, rest = hostport[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else None
    elif hostport.count(":") == 1:
        host, port = hostport.split(":")
    o = sshconf.lookup(host)
    return Endpoint(
        alias=host,
        hostname=o.get("hostname") or host,
        port=int(port or o.get("port") or 22),
        user=user or o.get("user") or _local_user(),
        identity_files=[_expand(i) for i in o.get("identityfile") or []],
        identities_only=str(o.get("identitiesonly", "no")).lower() == "yes",
        known_hosts=_known_hosts_files(None, o) if o.get("userknownhostsfile") else known_hosts,
    )
