"""`irq status`'s refresh in the usual case, a second status in a row where nothing changed,
at little more than the cost of `irq status --offline`.

A refresh is one `ssh` exec (squeue + sacct) through the master, and most of a status command's
time is loading irq itself (pydantic for the config, the ORM for the ledger). So:

1. `start`, before the config is loaded: read the active attempts (stdlib sqlite3); when they
   are all on one cluster whose refresh command line this user's last status remembered
   (irq/backends/ssh/ahead.py), start that exec now, with this status's job ids.
2. `refresh`: build the command line from the cluster's settings exactly as the SLURM backend
   builds it (OpenSSHSession.argv, squeue_sacct_command); the settings come from irq.toml
   validated by pydantic, or, when the file is the one a status validated last time (the same
   merged TOML, by digest), from what that status kept. The early exec counts only if it is
   the very same list (BatchMode, StrictHostKeyChecking, known_hosts and all), else it is killed
   unread and this one started. Then read the answer; when recording it would change nothing
   (irq/jobs/observed.py: same state, same facts, nothing unknown), write only the two scheduler
   calls and tell the slots from the same squeue and the limit the ledger cached.

Anything else (a new state, an attempt to adopt, ssh or the scheduler failing, a job limit to
read, several backends, paramiko) returns None and the full refresh runs (irq/jobs/sync.py,
through the ORM); it takes the answer already in hand, so it is still one round trip.
"""
from __future__ import annotations

import json
import shlex
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, NamedTuple

from irq.backends.slurm_command import query_args, squeue_sacct_command
from irq.backends.ssh import ahead
from irq.ledger import reader
from irq.ledger.states import ACTIVE_STATES, SUBMITTING

# Only what `start` needs is imported here (the irq program calls it before anything else loads);
# `refresh` imports the rest.
COLUMNS = "id, experiment_id, backend, job_id, token, state, submitted_at, started_at, exit_code, tasks, unknown_since"
# what the OpenSSH command line and the slots are made of (ClusterConfig's fields)
CLUSTER_KEYS = ("name", "host", "port", "user", "identity_file", "known_hosts", "ssh_config", "connect_timeout",
                "allow_keyboard_interactive", "transport", "job_limit")


class Plan(NamedTuple):
    """One cluster's active attempts and the query about them."""

    backend: str  # "slurm:NAME"
    attempts: list[Any]  # reader Records with COLUMNS
    ids: list[str]  # base job ids
    sacct_args: list[str]
    key: str  # this ledger and backend, for the remembered command line
    limit: dict | None  # the job limit the ledger cached (Meta job_limit:BACKEND)
    memo: dict | None  # what the last status remembered under key
    steady: bool  # the query is the same as long as the attempts are (every one has its submitted_at)


def start(path: Path) -> Plan | None:
    """Read what the refresh asks about and start its exec if the command line is remembered."""
    if reader.access_mode(path) != "rw":
        return None  # a read-only ledger is never refreshed
    marks = ", ".join("?" for _ in ACTIVE_STATES)
    with reader.reading(path) as conn:
        atts = list(reader.records(conn, f"SELECT {COLUMNS} FROM attempt WHERE backend != 'imported' "
                                         f"AND state IN ({marks})", tuple(s.value for s in ACTIVE_STATES)))
        backends = {a.backend for a in atts if a.job_id}
        name = next(iter(backends)) if len(backends) == 1 else ""
        cached = reader.meta(conn, f"job_limit:{name}")
    if any(a.state == SUBMITTING.value for a in atts) or not name.startswith("slurm:"):
        return None  # a submission to adopt, several backends or none: the full refresh
    atts = [a for a in atts if a.job_id]
    now = datetime.now(timezone.utc)
    ids, sacct_args = query_args([a.job_id for a in atts], min(a.submitted_at or now for a in atts) - timedelta(hours=1))
    try:
        limit = json.loads(cached) if cached else None
    except ValueError:
        limit = None
    key = f"{path.resolve()}|{name}"
    plan = Plan(name, atts, ids, sacct_args, key, limit, ahead.remembered(key), all(a.submitted_at for a in atts))
    if plan.memo:
        ahead.start([*plan.memo["ssh"], shlex.join(squeue_sacct_command(plan.memo["user"], sacct_args))])
    return plan


def cluster_config(plan: Plan, config_path: Path | None) -> tuple[Any, str]:
    """The cluster's validated settings and the digest of the configuration they come from.
    irq.toml as it was when a status last validated it (the same merged TOML, by digest) is not
    validated again: pydantic would give the very same values (its checks read nothing else);
    any other file is validated in full (irq.config), and a bad one raises as any command's would."""
    import hashlib
    from types import SimpleNamespace

    from irq.config_files import config_data

    data, _ = config_data(config_path)
    digest = hashlib.sha256(json.dumps(data, sort_keys=True, default=repr).encode()).hexdigest()
    memo = plan.memo or {}
    if memo.get("config") == digest and isinstance(memo.get("cluster"), dict):
        return SimpleNamespace(**memo["cluster"]), digest
    from irq.config import load_config

    return load_config(config_path).clusters.get(plan.backend.split(":", 1)[1]), digest


def refresh(plan: Plan, path: Path, config_path: Path | None) -> dict[str, Any] | None:
    """The status info of a refresh that changed nothing, or None: the full refresh must run."""
    import subprocess

    from irq import errors
    from irq.backends.base import Slots, fresh_limit
    from irq.backends.slurm_output import merge, parse_sacct, parse_squeue, squeue_sacct_sections
    from irq.jobs.observed import unchanged
    from irq.ledger.calls import append_calls, take_back
    cfg, digest = cluster_config(plan, config_path)
    if cfg is None or cfg.transport != "openssh" or (cfg.job_limit is None and not fresh_limit(plan.limit)):
        return None
    from irq.backends.ssh.openssh import OpenSSHSession

    session = OpenSSHSession(cfg)
    argv = session.argv(shlex.join(squeue_sacct_command(session.user, plan.sacct_args)))
    ahead.remember({plan.key: {"ssh": argv[:-1], "user": session.user, "config": digest,
                               "cluster": {k: getattr(cfg, k) for k in CLUSTER_KEYS}}})
    early = ahead.started(argv)
    if early is None:
        ahead.forget()  # started from a command line the configuration no longer gives
        early = ahead.start(argv)
    # While the answer is on its way: record squeue's call (made: the exec runs; sacct's once the
    # answer says it ran: usually not, squeue answers for live jobs) and, once that write is done,
    # the ledger's stamp with this query for the next status, which starts it before reading the
    # ledger if nothing writes to it meanwhile. If the full refresh runs after
    # all, the rows are taken back (it records the calls itself) and the stamp no longer matches.
    rows_written: list[int] = []
    calls = append_calls(path, plan.backend, ("squeue",), rows_written)
    _keep_query(plan, path)
    try:
        rc, out, err = early.answer(session.command_timeout)
        sq, sa = squeue_sacct_sections(out.decode("utf-8", "replace"), err, session.where, cfg.name)
        rows = merge(parse_squeue(sq), parse_sacct(sa or ""), plan.ids)
        same = rc == 0 and all(unchanged(a, rows.get(a.job_id.split("_", 1)[0])) for a in plan.attempts)
    except (subprocess.TimeoutExpired, errors.BackendError):
        same = False  # the full refresh takes the same answer and says what went wrong
    if not same:
        take_back(path, rows_written)
        return None
    ahead.take(argv)
    if sa is not None:  # squeue did not answer for every job alone
        calls = append_calls(path, plan.backend, ("sacct",))
        _keep_query(plan, path)  # the stamp after this write
    used = sum(1 for ln in sq.splitlines() if ln.strip())
    limit, source = (cfg.job_limit, "config") if cfg.job_limit is not None else (plan.limit["limit"],
                                                                                 plan.limit["source"])
    sl = Slots(limit=limit, used=used, source=source)
    return {"scheduler_calls_last_hour": calls, "limit": sl.limit, "used": sl.used,
            "free": sl.free if sl.limit is not None else None, "summary": sl.summary()}


def _keep_query(plan: Plan, path: Path) -> None:
    """Keep this query with the ledger's stamp, for the next status to start before reading it."""
    from irq.ledger.location import stamp

    if plan.steady:
        ahead.remember({ahead.query_key(path): {"key": plan.key, "sacct_args": plan.sacct_args,
                                                 "stamp": stamp(path)}})


def done() -> None:
    """Kill what was started ahead and never used."""
    ahead.forget()
