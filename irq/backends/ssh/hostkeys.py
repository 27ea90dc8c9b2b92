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
    return load_known_hosts(files)[0]


def load_known_hosts(files: Sequence[str]) -> tuple[paramiko.HostKeys, paramiko.HostKeys]:
    """(the keys known_hosts records, the keys it marks `@revoked`), read line by line as OpenSSH
    reads them: `@cert-authority` lines are skipped (irq checks keys, not certificates: a host
    known only by its CA is refused as unknown), a line that does not read is an error that names it."""
    from paramiko.hostkeys import HostKeyEntry, InvalidHostKey

    known, revoked = paramiko.HostKeys(), paramiko.HostKeys()
    for f in files:
        if not os.path.isfile(f):
            continue
        try:
            with open(f, encoding="utf-8", errors="replace") as fh:
                lines = fh.read().splitlines()
        except OSError as exc:
            raise errors.HostKeyError(f"cannot read known_hosts file {f}: {exc}", "check its permissions") from None
        for n, raw in enumerate(lines, start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            marker, rest = line.split(None, 1) if line.startswith("@") and " " in line else ("", line)
            if marker == "@cert-authority":
                continue
            try:
                entry = HostKeyEntry.from_line(rest, n)
            except (InvalidHostKey, paramiko.SSHException, ValueError) as exc:
                raise errors.HostKeyError(f"cannot read known_hosts file {f} line {n}: {exc}",
                                          "fix or remove the broken line") from None
            if marker not in ("", "@revoked"):
                raise errors.HostKeyError(f"known_hosts file {f} line {n}: unknown marker {marker!r}",
                                          "OpenSSH knows @cert-authority and @revoked; fix or remove the line")
            if entry is not None:  # None: a key type paramiko does not know, skipped as OpenSSH would
                for name in entry.hostnames:
                    (revoked if marker else known).add(name, entry.key.get_name(), entry.key)
    return known, revoked


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
    """Raise HostKeyError unless known_hosts records exactly this key for the endpoint, and does
    not mark it @revoked."""
    everything, revoked = load_known_hosts(ep.known_hosts)
    known = everything.lookup(ep.key_name)
    fp = fingerprint(key)
    kh = ep.known_hosts[0] if ep.known_hosts else "~/.ssh/known_hosts"
    if _is_revoked(revoked, ep.key_name, key):
        raise errors.HostKeyError(f"the host key of {ep.key_name} ({key.get_name()} {fp}) is marked @revoked in "
                                  f"{kh}: irq will not connect", "ask your admins for the cluster's current key")
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




def _is_revoked(revoked: paramiko.HostKeys, name: str, key: paramiko.PKey) -> bool:
    return any(k == key for k in (revoked.lookup(name) or {}).values())


def trust_host(cfg: ClusterConfig, key: paramiko.PKey) -> Path | None:
    """Record `key` for the cluster's host in its known_hosts file (created if needed, mode
    600). Returns the file, or None if that exact key was already recorded. Refuses to add a
    second, different key of the same type (that is a changed key: see check_host_key)."""
    ep = resolve_endpoint(cfg)
    path = Path(ep.known_hosts[0])
    everything, revoked = load_known_hosts(ep.known_hosts)
    if _is_revoked(revoked, ep.key_name, key):
        raise errors.HostKeyError(f"{ep.key_name}'s key {key.get_name()} {fingerprint(key)} is marked @revoked in "
                                  f"{path}: irq will not record it", "ask your admins for the cluster's current key")
    known = everything.lookup(ep.key_name) or {}
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
