"""Host keys: verified against known_hosts, never accepted on their own; `irq trust` adds one a person confirmed."""
from __future__ import annotations

import base64
import hashlib
import os
import shlex
from collections.abc import Sequence
from pathlib import Path

import paramiko

from irq import errors
from irq.backends.ssh.endpoint import Endpoint, resolve_endpoint
from irq.config import ClusterConfig


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's form: SHA256:base64-without-padding."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def _load_host_keys(files: Sequence[str]) -> paramiko.HostKeys:
    hk = paramiko.HostKeys()
    for f in files:
        if os.path.isfile(f):
            try:
                hk.load(f)
            except (OSError, paramiko.SSHException) as exc:
                raise errors.HostKeyError(f"cannot read known_hosts file {f}: {exc}",
                                          "fix or remove the broken line") from None
    return hk


def _rsa_aware(types: list[str]) -> list[str]:
    out: list[str] = []
    for t in types:
        out.extend(["rsa-sha2-512", "rsa-sha2-256"] if t == "ssh-rsa" else [t])
    return out


def _trust_advice(ep: Endpoint, cluster: str | None) -> str:
    if cluster:
        return f"run `irq trust {cluster}` to record it"
    # a ProxyJump hop: irq trust records the cluster's own key only
    return f"record it with `ssh -p {ep.port} {ep.user}@{ep.hostname}` (answer yes) or `ssh-keyscan`"


def check_host_key(ep: Endpoint, key: paramiko.PKey, cluster: str | None = None) -> None:
    """Raise HostKeyError unless known_hosts records exactly this key for the endpoint."""
    known = _load_host_keys(ep.known_hosts).lookup(ep.key_name)
    fp = fingerprint(key)
    kh = ep.known_hosts[0] if ep.known_hosts else "~/.ssh/known_hosts"
    if not known:
        raise errors.HostKeyError(
            f"the host key of {ep.key_name} is not known: {key.get_name()} {fp} (not in {kh})",
            f"check that this fingerprint is the cluster's (its docs or admins publish it), then "
            f"{_trust_advice(ep, cluster)}",
        )
    if known.get(key.get_name()) == key:
        return
    recorded = ", ".join(f"{k.get_name()} {fingerprint(k)}" for k in known.values())
    raise errors.HostKeyError(
        f"WARNING: THE HOST KEY OF {ep.key_name} HAS CHANGED. The server shows {key.get_name()} {fp}, "
        f"but {kh} records {recorded}. Someone could be intercepting the connection "
        f"(man-in-the-middle attack), or the cluster's key was replaced. irq will not connect.",
        f"ask your admins whether the key changed; only if they confirm {fp}, remove the old entry with "
        f"`ssh-keygen -R {shlex.quote(ep.key_name)} -f {shlex.quote(kh)}`, then {_trust_advice(ep, cluster)}",
    )




def trust_host(cfg: ClusterConfig, key: paramiko.PKey) -> Path | None:
    """Record `key` for the cluster's host in its known_hosts file (created if needed, mode
    600). Returns the file, or None if that exact key was already recorded. Refuses to add a
    second, different key of the same type (that is a changed key: see check_host_key)."""
    ep = resolve_endpoint(cfg)
    path = Path(ep.known_hosts[0])
    known = _load_host_keys(ep.known_hosts).lookup(ep.key_name) or {}
    if known.get(key.get_name()) == key:
        return None
    if key.get_name() in known:
        old = known[key.get_name()]
        raise errors.HostKeyError(
            f"{path} already records another {key.get_name()} key for {ep.key_name} ({fingerprint(old)})",
            f"if your admins confirm the new key, run `ssh-keygen -R {shlex.quote(ep.key_name)} -f "
            f"{shlex.quote(str(path))}` first",
        )
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    existed = path.exists()
    prefix = ""
    if existed and path.stat().st_size:
        with open(path, "rb") as f:
            f.seek(-1, os.SEEK_END)
            prefix = "" if f.read(1) == b"\n" else "\n"
    with open(path, "a", encoding="utf-8") as f:
        f.write(f"{prefix}{ep.key_name} {key.get_name()} {key.get_base64()}\n")
    if not existed:
        os.chmod(path, 0o600)
    return path
