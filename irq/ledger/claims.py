"""Which SUBMITTING attempts a live irq process is still sending.

An attempt is written SUBMITTING before its job is sent; if irq dies in between, ``reconcile``
later finds no job carrying its token and puts the experiment back in the local queue. Time alone
cannot tell a dead sender from a slow one (an sbatch that takes a minute, an `irq submit`
suspended with Ctrl-Z, a laptop asleep mid-submit): giving up on a live sender's attempt sends the
experiment a second time. So the sender holds a claim on its attempt from the transaction that
writes it until the job's id is recorded: a POSIX byte-range lock (one byte at the attempt's id)
on a file beside the ledger. The kernel drops it when the process ends however it ends (kill -9
included) and keeps it while the process is stopped, so a claim still held means "in flight,
wait"; a free one means the sender is gone or done.

POSIX locks belong to the process, and a process does not conflict with its own: the ranges this
process holds are also kept in ``mine`` and count as held.
"""
from __future__ import annotations

import fcntl
import os
from pathlib import Path


def lock_beside(ledger_path: Path, suffix: str) -> Path:
    """The lock file of a ledger, beside the file it really is: one ledger opened through a
    symlink (or a linked folder) and by its own path has one lock, as SQLite's own locks do."""
    real = Path(os.path.realpath(ledger_path))
    return real.with_name(real.name + suffix)


class Claims:
    def __init__(self, ledger_path: Path) -> None:
        self.ledger = Path(os.path.realpath(ledger_path))
        self.path = lock_beside(ledger_path, ".submit.lock")
        self.fd: int | None = None
        self.mine: set[int] = set()

    def _open(self) -> int:
        """The lock file, made with the ledger's own permissions (as SQLite makes its -wal and
        -shm): whoever may write a shared ledger may claim, and see claims, in it."""
        if self.fd is None:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                fd = os.open(self.path, os.O_RDWR)
            try:  # made now, or by an older irq (0600): as open as the ledger, when the file is ours
                want, st = os.stat(self.ledger).st_mode & 0o666, os.fstat(fd)
                if st.st_uid == os.geteuid() and want & ~st.st_mode & 0o666:
                    os.fchmod(fd, (st.st_mode | want) & 0o666)
            except OSError:
                pass
            self.fd = fd
        return self.fd

    def hold(self, attempt_id: int) -> None:
        """Claim an attempt being sent (a LedgerError when the file cannot be opened: the caller's
        write transaction fails with it, and nothing is sent)."""
        try:
            fcntl.lockf(self._open(), fcntl.LOCK_EX | fcntl.LOCK_NB, 1, attempt_id)
        except OSError as exc:
            from irq import errors

            raise errors.LedgerError(f"cannot claim the submission in {self.path}: {exc.strerror or exc}",
                                     "it must be a file you may write, as the ledger is (`chmod g+rw` it on a "
                                     "shared ledger); nothing was sent") from None
        self.mine.add(attempt_id)

    def release(self, attempt_id: int) -> None:
        if attempt_id in self.mine and self.fd is not None:
            fcntl.lockf(self.fd, fcntl.LOCK_UN, 1, attempt_id)
        self.mine.discard(attempt_id)

    def in_flight(self, attempt_id: int) -> bool:
        """Whether a live process (this one included) still sends this attempt."""
        if attempt_id in self.mine:
            return True
        try:
            fd = self._open()
        except OSError:
            # there but not ours to open: whether another user's irq sends it cannot be told, so it
            # may; none there, and none can be made (a read-only folder): nobody could have claimed it
            return os.path.lexists(self.path)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, attempt_id)
        except OSError:  # EACCES or EAGAIN: another process holds it
            return True
        fcntl.lockf(fd, fcntl.LOCK_UN, 1, attempt_id)
        return False

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # drops every lock this process holds on the file
            self.fd, self.mine = None, set()
