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

import errno
import os
import select
import socket
import stat
import time
from collections.abc import Sequence
from pathlib import Path

import paramiko

from irq import errors
from irq.backends.base import CallCounter, remote_command
from irq.backends.ssh.auth import Prompt, authenticate
from irq.backends.ssh.endpoint import (
    AtEndpoint,
    Endpoint,
    _load_ssh_config,
    _resolve_hop,
    resolve_endpoint,
)
from irq.backends.ssh.hostkeys import (
    _load_host_keys,
    _rsa_aware,
    check_host_key,
    fingerprint,
)
from irq.config import ClusterConfig

DEFAULT_COMMAND_TIMEOUT = 120.0  # seconds an exec may take before the connection counts as dead
RECONNECT_HINT = "irq keeps every experiment as it was; the next command or daemon cycle reconnects"


class SSHSession(AtEndpoint):
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
            authenticate(t, ep, self.cfg, self.prompt)
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

    # ------------------------------------------------------------------ commands
    def run(self, cmd: Sequence[str] | str, *, stdin: str | bytes | None = None,
            timeout: float | None = None, calls: Sequence[str] | None = None) -> tuple[int, str, str]:
        """Run one command remotely: (exit code, stdout, stderr). A list is quoted per argument.
        `calls` names the scheduler commands it runs (for the counter; default: the program)."""
        command, calls, what = remote_command(cmd, calls)
        t = self.connect()
        self.counter.add(*calls, round_trips=1)
        try:
            chan = t.open_session(timeout=self.cfg.connect_timeout)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise self._lost(f"SSH to {self.endpoint.where}: cannot open a channel for {what}: {exc}",
                             errors.BackendError.default_hint) from None
        try:
            chan.exec_command(command)
            if stdin is not None:
                chan.sendall(stdin.encode() if isinstance(stdin, str) else stdin)
            chan.shutdown_write()
            rc, out, err = self._collect(t, chan, what, timeout if timeout is not None else self.command_timeout)
        except errors.IrqError:
            raise
        except (paramiko.SSHException, OSError, EOFError) as exc:
            if not t.is_active():
                raise self._lost(self._dropped(what)) from None
            raise self._lost(f"SSH to {self.endpoint.where} failed during {what}: {exc or type(exc).__name__}",
                             errors.BackendError.default_hint) from None
        finally:
            chan.close()
        return rc, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")

    def _collect(self, t: paramiko.Transport, chan: paramiko.Channel, what: str,
                 limit: float) -> tuple[int, bytearray, bytearray]:
        """Read a running command's output until it exits; raise (and drop the connection) if the
        link dies or nothing ends within `limit` seconds."""
        out, err = bytearray(), bytearray()
        deadline = time.monotonic() + limit
        while True:
            while chan.recv_ready():
                out += chan.recv(65536)
            while chan.recv_stderr_ready():
                err += chan.recv_stderr(65536)
            if chan.exit_status_ready():
                break
            if chan.closed or not t.is_active():
                raise self._lost(self._dropped(what))
            left = deadline - time.monotonic()
            if left <= 0:
                raise self._lost(f"no answer from {self.endpoint.where} within {limit:g}s during {what}",
                                 "the connection or the login node hangs; irq keeps every experiment as it "
                                 "was and tries again next time")
            select.select([chan], [], [], min(left, 0.5))
        # sshd may send the exit status before the last of the output: read to EOF
        chan.settimeout(max(1.0, deadline - time.monotonic()))
        try:
            while chunk := chan.recv(65536):
                out += chunk
            while chunk := chan.recv_stderr(65536):
                err += chunk
        except socket.timeout:
            raise self._lost(f"the output of {what} from {self.endpoint.where} never ended") from None
        rc = chan.recv_exit_status()
        if rc == -1 and not t.is_active():  # closed, not exited: the link dropped
            raise self._lost(self._dropped(what))
        if rc == -1:  # no exit status: the command was killed by a signal (paramiko keeps no exit-signal)
            raise errors.BackendError(f"{what} on {self.endpoint.where} ended without an exit status (killed by a signal?)",
                                      "irq keeps every experiment as it was and looks again next time "
                                      "(a job it may have started is found by its name)")
        return rc, out, err

    def _dropped(self, what: str) -> str:
        return f"the connection to {self.endpoint.where} dropped during {what}"

    def _lost(self, message: str, hint: str = RECONNECT_HINT) -> errors.BackendError:
        """The error for a connection that failed mid-call; forgets it (the next call reconnects)."""
        self._drop()
        return errors.BackendError(message, hint)

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
                    continue  # files only, as the tar stream and the local backend copy: a link may loop or point at a dataset
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

    def logged_in(self) -> bool:
        """This session's connection is open (it logs in anew only when it is not)."""
        return self._transport is not None and self._transport.is_active()

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
