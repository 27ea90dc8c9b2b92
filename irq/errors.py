"""Typed errors. Each carries a one-line message and a hint that says what to do next.

The CLI prints ``error: <message>`` and ``hint: <hint>`` and exits with ``exit_code``;
nothing else in irq prints errors, so every failure reads the same way.
"""
from __future__ import annotations


class IrqError(Exception):
    """Base of every error irq reports to the user."""

    exit_code = 1
    default_hint = ""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint if hint is not None else self.default_hint

    def __str__(self) -> str:
        return self.message


class UsageError(IrqError):
    exit_code = 2
    default_hint = "see `irq COMMAND --help` and docs/errors.md"


class InvalidId(UsageError):
    default_hint = ("an id starts with a letter and holds letters, digits, '.', '_' or '-' "
                    "(at most 64 characters): Q-003, lr-sweep-3")


class NotFound(IrqError):
    """An experiment (or attempt) id that the ledger does not hold."""

    def __init__(self, what: str, suggestions: list[str] | None = None) -> None:
        self.suggestions = suggestions or []
        hint = (
            "did you mean " + ", ".join(self.suggestions) + "?"
            if self.suggestions
            else "run `irq status` to list the experiments"
        )
        super().__init__(f"unknown experiment {what}", hint)


class DuplicateId(IrqError):
    default_hint = "pick another id, or change the existing one with `irq edit ID` (or `irq retire ID`)"


class IllegalTransition(IrqError):
    default_hint = "`irq status` shows every experiment's state"


class ParseError(IrqError):
    """Malformed input file; the message names file:line."""

    exit_code = 2
    default_hint = "fix the place named (file:line), then run the command again; see docs/errors.md"

    def __init__(self, path: str, line: int | None, message: str, hint: str | None = None) -> None:
        where = f"{path}:{line}" if line else path
        self.path, self.line = path, line
        super().__init__(f"{where}: {message}", hint)


class SchemaTooNew(IrqError):
    default_hint = "upgrade irq (pip install -U irq) to read this ledger"


class LedgerError(IrqError):
    default_hint = "check the path given with --db or IRQ_DB"


class ConfigError(IrqError):
    exit_code = 2
    default_hint = "see docs/configuration.md for the valid keys"


class TemplateError(IrqError):
    default_hint = "every value the template uses must be set on the experiment or in irq.toml"


class BackendError(IrqError):
    """An infrastructure fault (SSH down, squeue failing): never a reason to mark FAILED."""

    default_hint = "irq keeps every experiment as it was; try again when the cluster answers"


class HostKeyError(BackendError):
    default_hint = "check the fingerprint with your admins, then run `irq trust HOST`"


class AuthError(BackendError):
    default_hint = "check the user, key or password for this cluster in irq.toml / ~/.ssh/config"


class NeedsLogin(AuthError):
    """Logging in needs a person (a one-time code, a password) and no master connection is up:
    unattended commands stop here instead of prompting; experiments keep their states."""

    default_hint = "run `irq login CLUSTER` in a terminal; every command and the daemon then use that connection"


class Interrupted(IrqError):
    """Ctrl-C in the middle of work that was partly done: what was done is said, then exit 130."""

    exit_code = 130


class SubmissionRefused(IrqError):
    """The scheduler refused a job for a reason other than the job limit."""

    default_hint = "fix the job's resources or partition, then `irq retry ID`"


class SlotLimit(IrqError):
    """No free job slot (the per-user submit limit): the experiment stays queued locally."""

    default_hint = "irq keeps it queued locally; `irq daemon` submits it when a slot frees up"


class PreflightFailed(IrqError):
    default_hint = "fix the problems listed above, then submit again (or `irq check ID`)"
