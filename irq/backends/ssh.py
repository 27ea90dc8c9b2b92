"""One SSH connection to a cluster's login node, reused for every call of one command or cycle.

``SSHSession(cfg, prompt=...)`` resolves the host like OpenSSH does (an alias from
``~/.ssh/config`` or ``ClusterConfig.ssh_config``: HostName, User, Port, IdentityFile,
IdentitiesOnly, UserKnownHostsFile, ProxyJump, ProxyCommand; explicit ClusterConfig values win),
verifies the server's host key against known_hosts (never adds one on its own: unknown and
changed keys raise ``HostKeyError``), logs in with public keys (identity files, agent, default
keys) and then, if the server asks for more, keyboard-interactive (password and one-time code)
through the ``prompt`` callback. Commands are built from lists and every argument is quoted.

Every exec and every SFTP operation counts one round trip on ``session.counter``.
"""
from __future__ import annotations

import base64
import errno
import getpass
import hashlib
import os
import select
import shlex
import socket
import stat
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import paramiko

from .. import errors
from ..config import ClusterConfig
from .base import CallCounter

# prompt(title, instructions, [(prompt text, echo), ...]) -> [answer, ...]: asks a person for a
# password, one-time code or key passphrase (paramiko's keyboard-interactive handler shape).
Prompt = Callable[[str, str, list[tuple[str, bool]]], list[str]]

DEFAULT_COMMAND_TIMEOUT = 120.0  # seconds an exec may take before the connection counts as dead
DEFAULT_KEYS = ("id_ed25519", "id_ecdsa", "id_rsa")
INTERACTIVE_AUTH_TIMEOUT = 300.0  # a person typing a one-time code


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


def host_key_name(hostname: str, port: int) -> str:
    return hostname if port == 22 else f"[{hostname}]:{port}"


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's form: SHA256:base64-without-padding."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def _expand(p: str) -> str:
    return os.path.expanduser(os.path.expandvars(p))


def _load_ssh_config(path: str | None) -> paramiko.SSHConfig:
    p = Path(_expand(path)) if path else Path.home() / ".ssh" / "config"
    if path and not p.exists():
        raise errors.ConfigError(f"ssh_config = {path!r}: no such file",
                                 "fix ssh_config in irq.toml, or remove it to use ~/.ssh/config")
    if not p.exists():
        return paramiko.SSHConfig()
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


def resolve_endpoint(cfg: ClusterConfig, sshconf: paramiko.SSHConfig | None = None) -> Endpoint:
    """The cluster's login node: ssh config (for cfg.host) overridden by explicit cfg values."""
    sshconf = sshconf if sshconf is not None else _load_ssh_config(cfg.ssh_config)
    o = sshconf.lookup(cfg.host)
    ids = [cfg.identity_file] if cfg.identity_file else list(o.get("identityfile") or [])
    jump = o.get("proxyjump")
    return Endpoint(
        alias=cfg.host,
        hostname=o.get("hostname") or cfg.host,
        port=int(cfg.port or o.get("port") or 22),
        user=cfg.user or o.get("user") or getpass.getuser(),
        identity_files=[_expand(i) for i in ids],
        identities_only=bool(cfg.identity_file) or str(o.get("identitiesonly", "no")).lower() == "yes",
        known_hosts=_known_hosts_files(cfg.known_hosts, o),
        proxy_jump=None if not jump or jump.lower() == "none" else jump,
        proxy_command=None if (o.get("proxycommand") or "none").lower() == "none" else o["proxycommand"],
    )


def _resolve_hop(spec: str, sshconf: paramiko.SSHConfig, known_hosts: list[str]) -> Endpoint:
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
        user=user or o.get("user") or getpass.getuser(),
        identity_files=[_expand(i) for i in o.get("identityfile") or []],
        identities_only=str(o.get("identitiesonly", "no")).lower() == "yes",
        known_hosts=_known_hosts_files(None, o) if o.get("userknownhostsfile") else known_hosts,
    )


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


def default_prompt() -> Prompt | None:
    """Ask at the terminal, or None when no one is there (a daemon, a pipe)."""
    try:
        interactive = sys.stdin is not None and sys.stdin.isatty()
    except (ValueError, OSError):
        interactive = False
    if not interactive:
        return None

    def ask(title: str, instructions: str, prompts: list[tuple[str, bool]]) -> list[str]:
        header = "\n".join(s for s in (title, instructions) if s and s.strip())
        if header:
            sys.stderr.write(header + "\n")
        answers = []
        for text, echo in prompts:
            if echo:
                sys.stderr.write(text)
                sys.stderr.flush()
                answers.append(sys.stdin.readline().rstrip("\n"))
            else:
                answers.append(getpass.getpass(text))
        return answers

    return ask


def _ask_one(ask: Prompt, text: str) -> str:
    answers = list(ask("", "", [(text, False)]) or [])
    return answers[0] if answers else ""


class SSHSession:
    """One SSH connection (plus one SFTP channel when needed), opened on first use.

    ``run(cmd)`` executes a command (a list: every element quoted; or a string taken as is)
    and returns (exit code, stdout, stderr); ``put_text``, ``read_tail`` and ``get_tree`` use
    SFTP. Faults raise ``BackendError`` (or its subclasses ``HostKeyError``/``AuthError``); a
    connection that drops mid-command raises rather than hangs (``command_timeout``).
    """

    def __init__(self, cfg: ClusterConfig, prompt: Prompt | None = None, counter: CallCounter | None = None,
                 command_timeout: float = DEFAULT_COMMAND_TIMEOUT) -> None:
        self.cfg = cfg
        self.prompt = prompt
        self.counter = counter if counter is not None else CallCounter()
        self.command_timeout = command_timeout
        self._sshconf = _load_ssh_config(cfg.ssh_config)
        self.endpoint = resolve_endpoint(cfg, self._sshconf)
        self._transport: paramiko.Transport | None = None
        self._hops: list[paramiko.Transport] = []
        self._sftp: paramiko.SFTPClient | None = None

    # ------------------------------------------------------------------ connection
    @property
    def user(self) -> str:
        return self.endpoint.user

    @property
    def where(self) -> str:
        return f"{self.endpoint.user}@{self.endpoint.where}"

    def __enter__(self) -> "SSHSession":
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def connect(self) -> paramiko.Transport:
        """The live transport (connecting, verifying and logging in if needed)."""
        if self._transport is not None and self._transport.is_active():
            return self._transport
        self.close()
        try:
            sock = self._socket_for(self.endpoint)
            self._transport = self._login(self.endpoint, sock)
        except BaseException:
            self.close()
            raise
        return self._transport

    def _socket_for(self, ep: Endpoint):
        if ep.proxy_jump:
            via: paramiko.Transport | None = None
            for spec in ep.proxy_jump.split(","):
                hop = _resolve_hop(spec, self._sshconf, ep.known_hosts)
                hop_sock = self._tcp(hop) if via is None else self._tunnel(via, hop)
                via = self._login(hop, hop_sock, hop=True)
                self._hops.append(via)
            assert via is not None
            return self._tunnel(via, ep)
        if ep.proxy_command:
            try:
                return paramiko.ProxyCommand(ep.proxy_command)
            except Exception as exc:
                raise errors.BackendError(f"ProxyCommand for {ep.alias} failed to start: {exc}",
                                          "check ProxyCommand in your ssh config") from None
        return self._tcp(ep)

    def _tcp(self, ep: Endpoint) -> socket.socket:
        timeout = self.cfg.connect_timeout
        try:
            return socket.create_connection((ep.hostname, ep.port), timeout=timeout)
        except socket.gaierror as exc:
            raise errors.BackendError(
                f"cannot connect to {ep.where}: unknown host name ({exc.strerror or exc})",
                f"check `host` in irq.toml [clusters.{self.cfg.name}] or HostName in your ssh config",
            ) from None
        except ConnectionRefusedError:
            raise errors.BackendError(
                f"cannot connect to {ep.where}: connection refused (no SSH server listening there)",
                "check the host and port; if they are right the login node or its sshd is down: "
                "try again later (irq keeps every experiment as it was)",
            ) from None
        except (socket.timeout, TimeoutError):
            raise errors.BackendError(
                f"cannot connect to {ep.where}: no answer within {timeout:g}s",
                "check your network/VPN; raise connect_timeout in irq.toml if the link is slow",
            ) from None
        except OSError as exc:
            raise errors.BackendError(f"cannot connect to {ep.where}: {exc.strerror or exc}",
                                      "check your network and the cluster's address") from None

    def _tunnel(self, via: paramiko.Transport, ep: Endpoint) -> paramiko.Channel:
        try:
            return via.open_channel("direct-tcpip", (ep.hostname, ep.port), ("127.0.0.1", 0),
                                    timeout=self.cfg.connect_timeout)
        except (paramiko.SSHException, OSError) as exc:
            raise errors.BackendError(
                f"the jump host could not reach {ep.where}: {exc}",
                "check ProxyJump and HostName in your ssh config (the name is resolved on the jump host)",
            ) from None

    def _login(self, ep: Endpoint, sock, hop: bool = False) -> paramiko.Transport:
        timeout = self.cfg.connect_timeout
        t = paramiko.Transport(sock)
        t.banner_timeout = timeout
        t.handshake_timeout = timeout
        t.auth_timeout = timeout
        try:
            known = _load_host_keys(ep.known_hosts).lookup(ep.key_name)
            if known:  # negotiate a key type we can check, as OpenSSH does
                opts = t.get_security_options()
                first = [k for k in _rsa_aware(list(known.keys())) if k in opts.key_types]
                opts.key_types = first + [k for k in opts.key_types if k not in first]
            t.start_client(timeout=timeout)
            check_host_key(ep, t.get_remote_server_key(), None if hop else self.cfg.name)
            self._authenticate(t, ep)
            t.set_keepalive(30)
            return t
        except errors.IrqError:
            t.close()
            raise
        except (paramiko.SSHException, EOFError, OSError) as exc:
            t.close()
            raise errors.BackendError(
                f"SSH to {ep.where} failed during the handshake: {exc or type(exc).__name__}",
                "the server closed or garbled the connection; try again, or check it with `ssh -v`",
            ) from None

    # ------------------------------------------------------------------ authentication
    def _keys(self, ep: Endpoint):
        """(key, label) candidates in OpenSSH's order: identity files, agent, default keys."""
        seen: set[bytes] = set()
        files = list(ep.identity_files)
        agent_keys: list[paramiko.PKey] = []
        if not ep.identities_only or not files:
            try:
                agent_keys = list(paramiko.Agent().get_keys())
            except Exception:  # no agent, or it does not answer
                agent_keys = []
        if not files:
            files = [str(Path.home() / ".ssh" / n) for n in DEFAULT_KEYS]
        explicit = set(ep.identity_files)
        for f in files:
            key = self._load_key(f, required=f in explicit)
            if key is not None and key.asbytes() not in seen:
                seen.add(key.asbytes())
                yield key
        for k in agent_keys:
            if k.asbytes() not in seen:
                seen.add(k.asbytes())
                yield k

    def _load_key(self, path: str, required: bool) -> paramiko.PKey | None:
        if not os.path.isfile(path):
            if required:
                raise errors.AuthError(f"identity file {path} does not exist",
                                       "fix identity_file in irq.toml or IdentityFile in your ssh config")
            return None
        try:
            return paramiko.PKey.from_path(path)
        except paramiko.PasswordRequiredException:
            ask = self.prompt or default_prompt()
            if ask is None:
                return None  # an agent may hold it
            try:
                return paramiko.PKey.from_path(path, _ask_one(ask, f"Passphrase for key {path}: "))
            except paramiko.SSHException:
                raise errors.AuthError(f"wrong passphrase for {path}", "try again, or load the key with ssh-add") from None
        except (paramiko.SSHException, OSError, ValueError) as exc:
            if required:
                raise errors.AuthError(f"cannot read identity file {path}: {exc}",
                                       "is it a private key OpenSSH can use?") from None
            return None

    def _authenticate(self, t: paramiko.Transport, ep: Endpoint) -> None:
        user = ep.user
        allowed: list[str] | None = None
        tried = 0
        for key in self._keys(ep):
            tried += 1
            try:
                rest = t.auth_publickey(user, key)
            except paramiko.BadAuthenticationType as exc:
                allowed = list(exc.allowed_types)
                break
            except paramiko.AuthenticationException:
                continue
            if t.is_authenticated():
                return
            allowed = list(rest)  # partial success: a second factor follows
            break
        if allowed is None:
            try:
                t.auth_none(user)
            except paramiko.BadAuthenticationType as exc:
                allowed = list(exc.allowed_types)
            except paramiko.AuthenticationException:
                allowed = []
            if t.is_authenticated():
                return
        can_interact = self.cfg.allow_keyboard_interactive and (
            "keyboard-interactive" in allowed or "password" in allowed)
        if not can_interact:
            raise errors.AuthError(
                f"{user}@{ep.where} refused the login: no key was accepted ({tried} tried); "
                f"the server allows {', '.join(allowed) or 'nothing else'}",
                "check the user and key for this cluster (irq.toml user/identity_file, or User/IdentityFile "
                "in ~/.ssh/config) and that the public key is in the cluster's ~/.ssh/authorized_keys",
            )
        ask = self.prompt or default_prompt()
        if ask is None:
            raise errors.AuthError(
                f"logging in to {user}@{ep.where} needs a person: the server asks for a password or "
                f"one-time code and no one is at a terminal to answer",
                "run the irq command in a terminal (it asks for the code), or use a key the cluster "
                "accepts on its own; a daemon cannot answer two-factor prompts",
            )
        t.auth_timeout = INTERACTIVE_AUTH_TIMEOUT
        try:
            for _ in range(4):  # e.g. password, then one-time code as a second round
                if "keyboard-interactive" in allowed:
                    rest = t.auth_interactive(user, self._interactive_handler(ask))
                else:
                    rest = t.auth_password(user, _ask_one(ask, f"Password for {user}@{ep.hostname}: "))
                if t.is_authenticated():
                    return
                allowed = list(rest or [])
                if not ("keyboard-interactive" in allowed or "password" in allowed):
                    break
        except paramiko.AuthenticationException:
            pass
        finally:
            t.auth_timeout = self.cfg.connect_timeout
        raise errors.AuthError(f"{user}@{ep.where} rejected the password or one-time code",
                               "try again (one-time codes expire quickly)")

    @staticmethod
    def _interactive_handler(ask: Prompt):
        def handler(title: str, instructions: str, prompts: list[tuple[str, bool]]) -> list[str]:
            if not prompts:  # some servers send an empty round (e.g. a banner): nothing to ask
                return []
            answers = list(ask(title, instructions, [(text, bool(echo)) for text, echo in prompts]) or [])
            return (answers + [""] * len(prompts))[: len(prompts)]

        return handler

    # ------------------------------------------------------------------ commands
    def run(self, cmd: Sequence[str] | str, *, stdin: str | bytes | None = None,
            timeout: float | None = None, calls: Sequence[str] | None = None) -> tuple[int, str, str]:
        """Run one command remotely: (exit code, stdout, stderr). A list is quoted per argument.
        `calls` names the scheduler commands it runs (for the counter; default: the program)."""
        command = cmd if isinstance(cmd, str) else shlex.join(list(cmd))
        if calls is None:
            calls = () if isinstance(cmd, str) else (os.path.basename(cmd[0]),)
        what = ", ".join(calls) or (command if len(command) < 40 else command[:37] + "...")
        limit = timeout if timeout is not None else self.command_timeout
        t = self.connect()
        self.counter.add(*calls, round_trips=1)
        try:
            chan = t.open_session(timeout=self.cfg.connect_timeout)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            self._drop()
            raise errors.BackendError(f"SSH to {self.endpoint.where}: cannot open a channel for {what}: {exc}",
                                      errors.BackendError.default_hint) from None
        try:
            chan.exec_command(command)
            if stdin is not None:
                chan.sendall(stdin.encode() if isinstance(stdin, str) else stdin)
            chan.shutdown_write()
            out, err = bytearray(), bytearray()
            deadline = time.monotonic() + limit
            while True:
                while chan.recv_ready():
                    out += chan.recv(65536)
                while chan.recv_stderr_ready():
                    err += chan.recv_stderr(65536)
                if chan.exit_status_ready():
                    # sshd may send the exit status before the last of the output: read to EOF
                    chan.settimeout(max(1.0, deadline - time.monotonic()))
                    try:
                        while chunk := chan.recv(65536):
                            out += chunk
                        while chunk := chan.recv_stderr(65536):
                            err += chunk
                    except socket.timeout:
                        self._drop()
                        raise errors.BackendError(
                            f"the output of {what} from {self.endpoint.where} never ended",
                            "irq keeps every experiment as it was; the next command or daemon cycle reconnects",
                        ) from None
                    rc = chan.recv_exit_status()
                    if rc == -1 and not t.is_active():  # closed, not exited: the link dropped
                        self._drop()
                        raise errors.BackendError(
                            f"the connection to {self.endpoint.where} dropped during {what}",
                            "irq keeps every experiment as it was; the next command or daemon cycle reconnects",
                        )
                    break
                if chan.closed or not t.is_active():
                    self._drop()
                    raise errors.BackendError(
                        f"the connection to {self.endpoint.where} dropped during {what}",
                        "irq keeps every experiment as it was; the next command or daemon cycle reconnects",
                    )
                left = deadline - time.monotonic()
                if left <= 0:
                    self._drop()
                    raise errors.BackendError(
                        f"no answer from {self.endpoint.where} within {limit:g}s during {what}",
                        "the connection or the login node hangs; irq keeps every experiment as it was "
                        "and tries again next time",
                    )
                select.select([chan], [], [], min(left, 0.5))
        except errors.IrqError:
            raise
        except (paramiko.SSHException, OSError, EOFError) as exc:
            self._drop()
            raise errors.BackendError(f"SSH to {self.endpoint.where} failed during {what}: {exc}",
                                      errors.BackendError.default_hint) from None
        finally:
            chan.close()
        return rc, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")

    # ------------------------------------------------------------------ SFTP
    def sftp(self) -> paramiko.SFTPClient:
        t = self.connect()
        if self._sftp is None or self._sftp.sock.closed:
            try:
                self._sftp = paramiko.SFTPClient.from_transport(t)
            except (paramiko.SSHException, OSError, EOFError) as exc:
                raise errors.BackendError(f"SFTP to {self.endpoint.where} unavailable: {exc}",
                                          "the cluster must allow SFTP (the sftp subsystem of sshd)") from None
            assert self._sftp is not None
            self._sftp.get_channel().settimeout(self.command_timeout)
        return self._sftp

    def _sftp_fault(self, what: str, exc: BaseException) -> errors.BackendError:
        if isinstance(exc, (socket.timeout, TimeoutError, EOFError, paramiko.SSHException)):
            self._drop()
        return errors.BackendError(f"SFTP {what} on {self.endpoint.where} failed: {exc or type(exc).__name__}",
                                   errors.BackendError.default_hint)

    def put_text(self, path: str, text: str, mode: int = 0o644) -> None:
        """Write a remote file (one SFTP call: open, write, close)."""
        sftp = self.sftp()
        self.counter.add(round_trips=1)
        try:
            with sftp.open(path, "w") as f:
                f.write(text.encode())
            sftp.chmod(path, mode)
        except (OSError, paramiko.SSHException, EOFError) as exc:
            raise self._sftp_fault(f"write of {path}", exc) from None

    def read_tail(self, path: str, max_bytes: int = 65536) -> str | None:
        """The last max_bytes of a remote file, or None if it does not exist."""
        sftp = self.sftp()
        self.counter.add(round_trips=1)
        try:
            with sftp.open(path, "rb") as f:
                size = f.stat().st_size or 0
                if size > max_bytes:
                    f.seek(size - max_bytes)
                data = f.read(max_bytes)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if getattr(exc, "errno", None) == errno.ENOENT:
                return None
            raise self._sftp_fault(f"read of {path}", exc) from None
        except (paramiko.SSHException, EOFError) as exc:
            raise self._sftp_fault(f"read of {path}", exc) from None
        return data.decode("utf-8", "replace")

    def get_tree(self, remote_dir: str, local_dir: Path, exclude: Sequence[str] = ()) -> list[Path]:
        """Copy a remote folder recursively (folders named in `exclude` skipped at any depth);
        return the local files written. A missing remote_dir copies nothing."""
        sftp = self.sftp()
        copied: list[Path] = []
        local_dir = Path(local_dir)

        def walk(rdir: str, ldir: Path) -> None:
            self.counter.add(round_trips=1)
            try:
                entries = sftp.listdir_attr(rdir)
            except FileNotFoundError:
                return
            except OSError as exc:
                if getattr(exc, "errno", None) == errno.ENOENT:
                    return
                raise
            ldir.mkdir(parents=True, exist_ok=True)
            for e in sorted(entries, key=lambda e: e.filename):
                name = e.filename
                if name in (".", "..") or "/" in name:
                    continue
                rpath = f"{rdir.rstrip('/')}/{name}"
                mode = e.st_mode or 0
                if stat.S_ISLNK(mode):
                    try:
                        mode = sftp.stat(rpath).st_mode or 0
                    except OSError:
                        continue  # a dangling link
                if stat.S_ISDIR(mode):
                    if name not in exclude:
                        walk(rpath, ldir / name)
                elif stat.S_ISREG(mode):
                    self.counter.add(round_trips=1)
                    sftp.get(rpath, str(ldir / name))
                    if e.st_mtime is not None:
                        os.utime(ldir / name, (e.st_atime or e.st_mtime, e.st_mtime))
                    copied.append(ldir / name)

        try:
            walk(remote_dir, local_dir)
        except (OSError, paramiko.SSHException, EOFError) as exc:
            raise self._sftp_fault(f"copy of {remote_dir}", exc) from None
        return copied

    # ------------------------------------------------------------------ teardown
    def _drop(self) -> None:
        """Forget a connection that failed (the next call reconnects)."""
        self.close()

    def close(self) -> None:
        if self._sftp is not None:
            try:
                self._sftp.close()
            except Exception:
                pass
            self._sftp = None
        for t in [self._transport, *reversed(self._hops)]:
            if t is not None:
                try:
                    t.close()
                except Exception:
                    pass
        self._transport = None
        self._hops = []


# ---------------------------------------------------------------------- irq trust
def fetch_host_key(cfg: ClusterConfig) -> tuple[str, str, paramiko.PKey]:
    """Connect far enough to see the cluster's host key (no login): (key type, SHA256
    fingerprint, key). For `irq trust`: show the fingerprint, then trust_host(cfg, key)."""
    session = SSHSession(cfg)
    ep = session.endpoint
    try:
        sock = session._socket_for(ep)
        t = paramiko.Transport(sock)
        t.banner_timeout = t.handshake_timeout = cfg.connect_timeout
        try:
            t.start_client(timeout=cfg.connect_timeout)
            key = t.get_remote_server_key()
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise errors.BackendError(f"SSH to {ep.where} failed during the handshake: {exc}",
                                      "check the host and port, then try again") from None
        finally:
            t.close()
    finally:
        session.close()
    return key.get_name(), fingerprint(key), key


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
