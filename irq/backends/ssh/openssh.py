"""The user's own OpenSSH client as irq's transport, through one shared master connection.

Why: on a cluster that asks for a one-time code at login, a new login per command (paramiko
cannot attach to an OpenSSH master) means a code per command and no daemon. With OpenSSH,
``irq login CLUSTER`` opens one master (``ControlMaster``/``ControlPersist``; the person types
the code once) and every later command and daemon cycle runs through it. ``~/.ssh/config``
(GSSAPI, ProxyJump, agents, an existing setup) applies as it is.

Unattended use never prompts: every command runs ``ssh`` with ``BatchMode=yes`` and
``ControlMaster=auto``: through the master when one is up (one ssh process, no login), else it
opens the master itself when keys alone are enough (many clusters), and when that needs a
person it fails at once and irq raises ``NeedsLogin`` ("run irq login CLUSTER"). ``irq login``
checks the master with ``ssh -O check`` and opens it interactively. Host keys are checked
with ``StrictHostKeyChecking=yes`` against the same known_hosts files the paramiko transport
reads; a master's socket lives in a directory of irq's own (``%C``: a short hash, so the path
fits macOS's 104-byte limit), and a socket whose master died is removed.

``OpenSSHSession`` has SSHSession's seam: ``run(cmd, stdin=, timeout=, calls=)``,
``put_text``, ``read_tail``, ``get_tree``, ``close``, ``counter``, ``user``, ``where``. Every
argument of a list command is quoted; files travel over the same master (``cat``, ``tail``,
``tar`` streams: one round trip each).
"""
from __future__ import annotations

import hashlib
import io
import os
import re
import shlex
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from irq import errors
from irq.backends.base import CallCounter, remote_command
from irq.backends.ssh import ahead
from irq.backends.ssh.ahead import control_dir
from irq.backends.ssh.endpoint import AtEndpoint, _expand, resolve_endpoint

if TYPE_CHECKING:
    from irq.config import ClusterConfig  # (pydantic: not loaded by `irq status`'s quick path)

DEFAULT_COMMAND_TIMEOUT = 120.0
CONTROL_PERSIST = "12h"  # how long an idle master stays up (a working day of commands)
# a link that stops answering (a laptop's network gone, a frozen login node) is given up after
# about 10 s x 3 unanswered keepalives: every command through the master fails then, not after
# minutes; a slow but live link answers them, so long transfers are not cut
KEEPALIVE_SECONDS, KEEPALIVE_MISSES = 10, 3
LOGIN_TIMEOUT = 300.0  # a person typing a one-time code
MISSING = 3  # exit code of our file scripts when the path does not exist


def ssh_binary() -> str:
    found = ahead.ssh_program()
    if not found:
        raise errors.ConfigError("transport = \"openssh\" needs the `ssh` command, which is not on the PATH",
                                 "install OpenSSH's client, or set transport = \"paramiko\" for this cluster")
    return found


def classify_ssh_failure(cluster: str, where: str, stderr: str) -> errors.BackendError:
    """What `ssh` exit 255 means, from its stderr: a host key, a login that needs a person, or the network."""
    text = " ".join(ln.strip() for ln in stderr.splitlines()
                    if ln.strip() and not ln.startswith(("debug", "Warning: Permanently")))
    if re.search(r"REMOTE HOST IDENTIFICATION HAS CHANGED|Host key for .* has changed", stderr):
        fp = re.search(r"(SHA256:[A-Za-z0-9+/=]+)", stderr)
        return errors.HostKeyError(
            f"WARNING: THE HOST KEY OF {where} HAS CHANGED"
            + (f" (the server shows {fp.group(1)})" if fp else "")
            + ". Someone could be intercepting the connection (man-in-the-middle attack), or the "
              "cluster's key was replaced. irq will not connect.",
            "ask your admins whether the key changed; only if they confirm it, remove the old entry with "
            f"`ssh-keygen -R` and run `irq trust {cluster}`")
    if re.search(r"Host key verification failed|host key is known|No \S+ host key is known", stderr):
        return errors.HostKeyError(
            f"the host key of {where} is not known (not in the known_hosts irq uses)",
            f"check the fingerprint with your admins, then run `irq trust {cluster}`")
    if re.search(r"Permission denied|Too many authentication failures|"
                 r"read_passphrase|keyboard-interactive", stderr):
        return errors.NeedsLogin(
            f"needs login: run irq login {cluster} ({where} asks for a code, password or passphrase "
            f"and no master connection is open: {text[:200]})",
            f"run `irq login {cluster}` in a terminal (it asks once); every command and the daemon "
            "then use that connection")
    if re.search(r"Connection refused", stderr):
        return errors.BackendError(f"cannot connect to {where}: connection refused ({text[:200]})",
                                   "the login node or its sshd is down: try again later "
                                   "(irq keeps every experiment as it was)")
    if re.search(r"timed out|Could not resolve|No route|Network is unreachable|Connection closed|"
                 r"Broken pipe|Connection reset|lost connection", stderr, re.I):
        return errors.BackendError(f"SSH to {where} failed: {text[:300]}",
                                   "check your network/VPN; irq keeps every experiment as it was")
    return errors.BackendError(f"ssh to {where} failed: {text[:300] or 'exit 255 without a message'}",
                               errors.BackendError.default_hint)


class OpenSSHSession(AtEndpoint):
    """Commands and files over the user's `ssh`, through the cluster's master connection."""

    def __init__(self, cfg: ClusterConfig, counter: CallCounter | None = None,
                 command_timeout: float = DEFAULT_COMMAND_TIMEOUT, prompt: object = None) -> None:
        self.cfg = cfg
        self.counter = counter if counter is not None else CallCounter()
        self.command_timeout = command_timeout
        self.endpoint = resolve_endpoint(cfg)
        self._socket: Path | None = None  # the master's socket, once asked (`ssh -G`)
        self._seen: tuple[int, int] | None = None  # that socket's inode and mtime when last asked
        self._alive = False  # ... and whether a master answered on it then

    def __enter__(self) -> "OpenSSHSession":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ ssh command lines
    def control_path(self) -> Path:
        """The master's socket, as ssh expands %C for this destination (`ssh -G`: no network)."""
        args = self.options()
        try:
            p = subprocess.run([*args[:-1], "-G", args[-1]], stdin=subprocess.DEVNULL,
                               capture_output=True, text=True, timeout=15)
            for line in p.stdout.splitlines():
                key, _, value = line.partition(" ")
                if key == "controlpath" and value:
                    return Path(value)
        except subprocess.TimeoutExpired:
            pass
        ep = self.endpoint  # OpenSSH's %C: sha1 of local host, host, port, user
        return control_dir() / hashlib.sha1(f"{os.uname().nodename}{ep.hostname}{ep.port}{ep.user}".encode()).hexdigest()

    def options(self, *, batch: bool = True, master: str = "no") -> list[str]:
        """`ssh` arguments up to and including the destination."""
        cfg, ep = self.cfg, self.endpoint
        args = [ssh_binary()]
        if cfg.ssh_config:
            args += ["-F", _expand(cfg.ssh_config)]
        if cfg.port:
            args += ["-p", str(cfg.port)]
        if cfg.user:
            args += ["-l", cfg.user]
        if cfg.identity_file:
            args += ["-i", _expand(cfg.identity_file), "-o", "IdentitiesOnly=yes"]
        known = " ".join(shlex.quote(f) for f in ep.known_hosts)
        args += [
            "-o", f"ControlPath={control_dir()}/%C",
            "-o", f"ControlMaster={master}",
            "-o", f"ControlPersist={CONTROL_PERSIST}",
            "-o", f"BatchMode={'yes' if batch else 'no'}",
            "-o", "StrictHostKeyChecking=yes",
            "-o", f"UserKnownHostsFile={known}",
            "-o", f"ConnectTimeout={max(1, int(cfg.connect_timeout))}",
            "-o", f"ServerAliveInterval={KEEPALIVE_SECONDS}",
            "-o", f"ServerAliveCountMax={KEEPALIVE_MISSES}",
            "-o", "LogLevel=ERROR",
        ]
        if not cfg.allow_keyboard_interactive:
            args += ["-o", "KbdInteractiveAuthentication=no", "-o", "PasswordAuthentication=no"]
        return [*args, cfg.host]

    def _where(self) -> str:
        return self.endpoint.where

    # ------------------------------------------------------------------ the master
    def master_alive(self) -> bool:
        """`ssh -O check`: asks the local master process, no network."""
        args = self.options()
        try:
            p = subprocess.run([*args[:-1], "-O", "check", args[-1]], stdin=subprocess.DEVNULL,
                               capture_output=True, text=True, timeout=15)
        except subprocess.TimeoutExpired:
            return False
        return p.returncode == 0

    def logged_in(self) -> bool:
        """Whether a master is up, cheaply enough to ask every half second: a look at the socket,
        and `ssh -O check` (local, no network) only when the socket is new since the last look.
        A socket left by a killed master answers False until a login replaces it."""
        if self._socket is None:
            self._socket = self.control_path()
        try:
            st = os.stat(self._socket)
        except OSError:
            self._seen, self._alive = None, False
            return False
        if (st.st_ino, st.st_mtime_ns) != self._seen:
            self._seen, self._alive = (st.st_ino, st.st_mtime_ns), self.master_alive()
        return self._alive

    def clean_stale(self) -> bool:
        """Remove a socket no master answers on (left by a killed master); True if one was removed."""
        sock = self.control_path()
        if sock.exists() and not self.master_alive():
            try:
                sock.unlink()
                return True
            except OSError:
                return False
        return False

    def _with_fingerprint(self, exc: errors.BackendError) -> errors.BackendError:
        """ssh does not print an unknown host's key: look at it (a handshake, no login) so the
        person can compare it with the one the admins publish before `irq trust`."""
        if not isinstance(exc, errors.HostKeyError) or "not known" not in exc.message:
            return exc
        try:
            from irq.backends.ssh.session import fetch_host_key

            key_type, fp, _ = fetch_host_key(self.cfg)
        except errors.IrqError:
            return exc
        return errors.HostKeyError(f"the host key of {self._where()} is not known: {key_type} {fp} "
                                   f"(not in {' '.join(self.endpoint.known_hosts)})", exc.hint)

    def login(self) -> bool:
        """Open the master interactively (ssh asks at the terminal: code, password, passphrase).
        Returns False if one was already up. The master outlives this process (ControlPersist)."""
        if self.master_alive():
            return False
        self.clean_stale()
        try:
            p = subprocess.run([*self.options(batch=False, master="yes"), "true"], timeout=LOGIN_TIMEOUT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        except subprocess.TimeoutExpired:
            raise errors.BackendError(f"login to {self._where()} took longer than {LOGIN_TIMEOUT:g}s",
                                      f"run `irq login {self.cfg.name}` again") from None
        if p.returncode != 0:
            exc = self._with_fingerprint(classify_ssh_failure(self.cfg.name, self._where(), p.stderr))
            if isinstance(exc, errors.NeedsLogin):
                raise errors.AuthError(f"{self.where} refused the login: {p.stderr.strip()[:300]}",
                                       "check the user, key and code, then try again") from None
            raise exc
        if not self.master_alive():
            raise errors.BackendError(f"logged in to {self._where()}, but no master connection stayed up",
                                      "does your ssh config disable ControlMaster for this host?")
        return True

    def logout(self) -> bool:
        """`ssh -O exit`: close the master. False if none was up."""
        if not self.master_alive():
            self.clean_stale()
            return False
        args = self.options()
        subprocess.run([*args[:-1], "-O", "exit", args[-1]], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=15)
        return True

    # ------------------------------------------------------------------ commands
    def _exec(self, command: str, stdin: bytes | None, timeout: float | None, what: str) -> tuple[int, bytes, str]:
        """One `ssh` process: through the master if one is up, else (ControlMaster=auto) it becomes
        the master itself, in BatchMode: keys alone, or NeedsLogin. ssh unlinks a stale socket."""
        limit = timeout if timeout is not None else self.command_timeout
        argv = self.argv(command)
        early = ahead.take(argv) if not stdin else None  # the same command, started ahead (irq status)
        try:
            if early is not None:
                rc, out, err = early.answer(limit)
            else:
                p = subprocess.run(argv, input=stdin if stdin is not None else b"", capture_output=True, timeout=limit)
                rc, out, err = p.returncode, p.stdout, p.stderr.decode("utf-8", "replace")
        except subprocess.TimeoutExpired:
            raise errors.BackendError(
                f"no answer from {self._where()} within {limit:g}s during {what}",
                "the connection or the login node hangs; irq keeps every experiment as it was "
                "and tries again next time") from None
        if rc == 255 and not out and _looks_like_ssh(err):
            raise self._with_fingerprint(classify_ssh_failure(self.cfg.name, self._where(), err))
        return rc, out, err

    def argv(self, command: str) -> list[str]:
        """The whole `ssh` command line of one unattended remote command."""
        return [*self.options(master="auto"), command]

    def run(self, cmd: Sequence[str] | str, *, stdin: str | bytes | None = None,
            timeout: float | None = None, calls: Sequence[str] | None = None) -> tuple[int, str, str]:
        """Run one command remotely: (exit code, stdout, stderr). A list is quoted per argument.
        `calls` names the scheduler commands it runs (for the counter; default: the program)."""
        command, calls, what = remote_command(cmd, calls)
        data = stdin.encode() if isinstance(stdin, str) else stdin
        self.counter.add(*calls, round_trips=1)
        rc, out, err = self._exec(command, data, timeout, what)
        return rc, out.decode("utf-8", "replace"), err

    # ------------------------------------------------------------------ files
    def _sh(self, script: str, *args: str, stdin: bytes | None = None, what: str) -> tuple[int, bytes, str]:
        self.counter.add(round_trips=1)
        return self._exec(shlex.join(["sh", "-c", script, "irq", *args]), stdin, None, what)

    def put_text(self, path: str, text: str, mode: int = 0o644) -> None:
        """Write a remote file (one round trip)."""
        rc, _, err = self._sh('cat > "$1" && chmod "$2" "$1"', path, f"{mode:o}", stdin=text.encode(),
                              what=f"write of {path}")
        if rc != 0:
            raise errors.BackendError(f"writing {path} on {self._where()} failed: {err.strip()[:300]}",
                                      errors.BackendError.default_hint)

    def read_tail(self, path: str, max_bytes: int = 65536) -> str | None:
        """The last max_bytes of a remote file, or None if it does not exist (one round trip)."""
        rc, out, err = self._sh(f'[ -f "$1" ] || exit {MISSING}; tail -c "$2" -- "$1"', path, str(max_bytes),
                                what=f"read of {path}")
        if rc == MISSING:
            return None
        if rc != 0:
            raise errors.BackendError(f"reading {path} on {self._where()} failed: {err.strip()[:300]}",
                                      errors.BackendError.default_hint)
        return out.decode("utf-8", "replace")

    def get_tree(self, remote_dir: str, local_dir: Path, exclude: Sequence[str] = ()) -> list[Path]:
        """Copy a remote folder recursively as one tar stream (folders named in `exclude` skipped
        at any depth); return the local files written. A missing remote_dir copies nothing."""
        script = (f'[ -d "$1" ] || exit {MISSING}; d=$1; shift; '
                  'cd -- "$d" && exec tar -cf - "$@" .')
        rc, out, err = self._sh(script, remote_dir, *[f"--exclude={x}" for x in exclude],
                                what=f"copy of {remote_dir}")
        if rc == MISSING:
            return []
        if rc != 0:
            raise errors.BackendError(f"copying {remote_dir} from {self._where()} failed: {err.strip()[:300]}",
                                      errors.BackendError.default_hint)
        import tarfile

        local_dir = Path(local_dir)
        local_dir.mkdir(parents=True, exist_ok=True)
        copied: list[Path] = []
        with tarfile.open(fileobj=io.BytesIO(out), mode="r:") as tar:
            members = [m for m in tar.getmembers() if m.isfile() or m.isdir()]
            tar.extractall(local_dir, members=members, filter="data")
            copied = sorted(local_dir / os.path.normpath(m.name) for m in members if m.isfile())
        return copied

    def close(self) -> None:
        """Nothing to close: the master outlives the command (that is its point)."""
        return None


def _looks_like_ssh(stderr: str) -> bool:
    """Exit 255 with a message from ssh itself (not a remote program that exited 255)."""
    return bool(re.search(r"^(ssh: |kex_|Host key|Connection |Control socket|mux_client|@@@@|"
                          r"No \S+ host key|Received disconnect|packet_write|client_loop|Timeout|channel \d+)"
                          r"|Permission denied \(|Host key verification failed|Connection refused|"
                          r"Connection timed out|Could not resolve hostname", stderr, re.M)) or not stderr.strip()
