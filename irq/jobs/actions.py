"""One call per command that reaches a backend: open the backends once, do the work, re-export.

The CLI parses arguments, calls one of these and renders what it returns; the daemon uses the
lower-level functions (submit, fetch, refresh) inside its own cycle.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Callable

from irq import errors
from irq.backends.registry import Backends, record_calls
from irq.config import Config
from irq.formats.queue_io import derived_for, hand_edits_kept, write_export
from irq.formats.render import project_templates
from irq.jobs.cancel import cancel
from irq.jobs.fetch import Deferred, FetchOutcome, fetch, log_tail, still_finishing
from irq.jobs.follow import Look, follow
from irq.jobs.preflight import preflight_hook
from irq.jobs.submit import SubmitOutcome, submit
from irq.jobs.sync import refresh
from irq.ledger.database import Ledger
from irq.ledger.models import Attempt
from irq.ui import UI

Prompt = Callable[..., Any] | None


def export_after_change(ledger: Ledger, config: Config, ui: UI | None = None) -> None:
    """Keep the configured queue.md export current after a command changed the ledger; changes a
    person made to the file are kept aside, and said (queue_io.write_export)."""
    if config.export:
        from irq.formats.export import export_text

        dest = config.resolve(config.export)
        kept = write_export(dest, export_text(ledger, project_templates(config), derived_for(config, dest)))
        if kept is not None:
            (ui or UI()).note(f"warning: {hand_edits_kept(dest, kept)}")


def submit_experiments(ledger: Ledger, config: Config, ui: UI, ids: list[str], all_ready: bool,
                       backend_name: str | None = None, check: bool = True,
                       prompt: Prompt = None) -> list[SubmitOutcome]:
    """`irq submit`: preflight (unless told not to), submit while slots are free, queue the rest."""
    if not ids and not all_ready:
        raise errors.UsageError("name experiments to submit, or pass --all-ready", "e.g. `irq submit Q-003`")
    preflight = preflight_hook(config, ledger) if check else None
    with Backends(config, prompt=prompt) as backends:
        outs = submit(ledger, config, backends, ui, ids or None, all_ready, preflight, backend_name)
    export_after_change(ledger, config, ui)
    return outs


@dataclass
class FetchReport:
    """What `irq fetch` did, which jobs are still finishing, and a refused host key to fail the
    command with once all of it is shown."""

    outcomes: list[FetchOutcome]
    still: list[Attempt]  # not finished yet (COMPLETING, or still active when named)
    refused: errors.HostKeyError | None = None
    unreachable: dict[str, str] = field(default_factory=dict)  # backend -> why its states could not be asked
    deferred: list[Deferred] = field(default_factory=list)  # finished attempts that could not be fetched yet, and why

    def incomplete(self) -> errors.BackendError | None:
        """What a fetch that could not look everywhere fails with (once all it did is shown): a
        script or cron job must tell "nothing finished" from "could not ask"."""
        if not (self.unreachable or self.deferred):
            return None
        first = next(iter(self.unreachable.values()), None) or str(self.deferred[0])
        local = all(b == "local" for b in [*self.unreachable, *(d.backend for d in self.deferred)])
        return errors.BackendError(f"not everything could be fetched: {first}",
                                   "states are kept; `irq fetch` again once " + (
                                       "the cause above is fixed" if local else "the cluster answers"))


def fetch_results(ledger: Ledger, config: Config, ui: UI, ids: list[str], prompt: Prompt = None) -> FetchReport:
    """`irq fetch`: refresh states, then download what finished and mark experiments DONE or FAILED;
    say which jobs are still finishing rather than "nothing finished"."""
    deferred: list[Deferred] = []
    with Backends(config, prompt=prompt) as backends:
        refreshed = refresh(ledger, backends, ui)
        outs = fetch(ledger, config, backends, ui, ids or None, deferred)
    export_after_change(ledger, config, ui)
    return FetchReport(outs, still_finishing(ledger, ids or None), next(iter(refreshed.refused.values()), None),
                       dict(refreshed.unreachable), deferred)


def cancel_experiments(ledger: Ledger, config: Config, ui: UI, ids: list[str], prompt: Prompt = None) -> list[str]:
    """`irq cancel`: one line per experiment saying what happened."""
    with Backends(config, prompt=prompt) as backends:
        lines = [cancel(ledger, backends, ui, i) for i in dict.fromkeys(ids)]  # each once
    export_after_change(ledger, config, ui)
    return lines


def follow_log(ledger: Ledger, config: Config, exp_id: str, interval: float, count: int | None = None,
               prompt: Prompt = None) -> Iterator[Look]:
    """`irq log -f`: looks at the latest attempt (log tail, learning curve) until it finishes."""
    with Backends(config, prompt=prompt) as backends:
        try:
            yield from follow(ledger, backends, exp_id, interval, count)
        finally:
            record_calls(ledger, backends)


def latest_log(ledger: Ledger, config: Config, exp_id: str, lines: int, prompt: Prompt = None) -> tuple[Attempt, str]:
    """`irq log`: the tail of the latest attempt's output."""
    with Backends(config, prompt=prompt) as backends:
        return log_tail(ledger, backends, exp_id, lines)
