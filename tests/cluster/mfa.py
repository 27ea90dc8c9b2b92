"""The second-factor sshd of the loopback cluster (cluster.sh start-sshd-mfa), and a person at a
terminal: run a command in a pseudo-terminal and type the one-time code when it is asked for."""
from __future__ import annotations

import os
import pty
import re
import select
import time
from dataclasses import dataclass
from pathlib import Path

PROMPT = re.compile(rb"(assword|code|erification)[^\n]*:\s*$", re.I)


@dataclass
class SecondFactor:
    """cluster.sh start-sshd-mfa: an sshd on `port` that wants the key, then the code in `dir/code`."""

    port: int
    dir: Path

    @property
    def code(self) -> str:
        return (self.dir / "code").read_text().strip()

    def set_code(self, code: str) -> None:
        (self.dir / "code").write_text(code + "\n")

    def runs(self) -> list[str]:
        """One line per login that reached the second factor: "ok USER" or "bad USER"."""
        p = self.dir / "runs"
        return p.read_text().splitlines() if p.exists() else []


def run_in_pty(argv: list[str], answer: str | None, *, env: dict, cwd: Path | str,
               timeout: float = 60) -> tuple[int, str, int]:
    """Run argv with a pseudo-terminal as its controlling terminal (as in a person's shell);
    type `answer` + Enter at every code/password prompt. Returns (exit code, output, prompts seen)."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: stdin/stdout/stderr and /dev/tty are the pty
        try:
            os.chdir(cwd)
            os.execvpe(argv[0], argv, env)
        finally:
            os._exit(127)
    out = bytearray()
    prompts = 0
    answered_at = 0
    deadline = time.monotonic() + timeout
    status = None
    try:
        while time.monotonic() < deadline:
            r, _, _ = select.select([fd], [], [], 0.2)
            if r:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:  # EIO: the child closed the terminal
                    chunk = b""
                if not chunk:
                    break
                out += chunk
                if PROMPT.search(bytes(out[answered_at:])):
                    prompts += 1
                    answered_at = len(out)
                    if answer is None:
                        break
                    os.write(fd, answer.encode() + b"\n")
            else:
                done, st = os.waitpid(pid, os.WNOHANG)
                if done:
                    status = st
                    break
        if status is None:
            if time.monotonic() >= deadline or answer is None:
                os.kill(pid, 9)
            _, status = os.waitpid(pid, 0)
    finally:
        os.close(fd)
    code = os.waitstatus_to_exitcode(status)
    return code, out.decode("utf-8", "replace"), prompts
