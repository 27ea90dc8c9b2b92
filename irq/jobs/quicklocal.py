"""`irq status`'s refresh on the local backend when nothing changed, without the ORM or pydantic.

Local jobs are folders under `[local] workdir` that the local backend reads with the standard
library (irq/backends/local.py). A status whose active attempts are all local asks it about them,
and when recording the answer would change nothing (irq/jobs/observed.py: the very decision the
full refresh makes) it writes only the scheduler calls and tells the slots: the cost of an offline
status plus reading a few JSON files. The settings it needs (the default backend, the workdir
resolved, the slots) are those the last status validated, kept beside irq's other per-user state
under the digest of the merged irq.toml and where it was found: another file, or the same file
seen from elsewhere, is validated in full (irq.config) first, and a bad one raises as any
command's would.

Anything else (a state changed, a job not found, a submission to adopt, another backend) returns
None and the full refresh runs (irq/jobs/sync.py).
"""
from __future__ import annotations

import hashlib
import json
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from irq.ledger import reader
from irq.ledger.states import ACTIVE_STATES, SUBMITTING

COLUMNS = "id, experiment_id, backend, job_id, token, state, submitted_at, started_at, exit_code, tasks, unknown_since"
MEMO_KEEP = 50  # projects remembered (ledgers x folders)


def refresh(path: Path, config_path: Path | None) -> dict[str, Any] | None:
    """The status info of a local refresh that changed nothing, or None: the full refresh must run."""
    marks = ", ".join("?" for _ in ACTIVE_STATES)
    with reader.reading(path) as conn:
        atts = list(reader.records(conn, f"SELECT {COLUMNS} FROM attempt WHERE backend != 'imported' "
                                         f"AND state IN ({marks})", tuple(s.value for s in ACTIVE_STATES)))
    if not atts or any(a.state == SUBMITTING.value or a.backend != "local" or not a.job_id for a in atts):
        return None
    settings = local_settings(path, config_path)
    if settings is None:
        return None
    from irq.backends.local import LocalBackend
    from irq.jobs.observed import unchanged
    from irq.ledger.calls import append_calls

    backend = LocalBackend(Path(settings["workdir"]), settings["slots"])
    now = datetime.now(timezone.utc)
    rows = backend.query([a.job_id for a in atts], min(a.submitted_at or now for a in atts) - timedelta(hours=1))
    if not all(unchanged(a, rows.get(a.job_id.split("_", 1)[0])) for a in atts):
        return None
    sl = backend.slots()
    calls = append_calls(path, "local", backend.counter.calls)
    return {"scheduler_calls_last_hour": calls, "limit": sl.limit, "used": sl.used, "free": sl.free,
            "summary": sl.summary()}


def local_settings(path: Path, config_path: Path | None) -> dict[str, Any] | None:
    """{"workdir", "slots"} of the local backend, or None when it is not the default backend (the
    slots a status shows are the default backend's). From the memo when the configuration is the
    one a status validated last, else validated now (and remembered)."""
    from irq.config_files import config_data

    data, found = config_data(config_path)
    digest = hashlib.sha256(json.dumps([data, str(found), os.getcwd()], sort_keys=True, default=repr)
                            .encode()).hexdigest()
    key = str(path.resolve())
    memo = _read_memo().get(key)
    if isinstance(memo, dict) and memo.get("config") == digest and _well_formed(memo.get("local")):
        return memo["local"]
    from irq.config import load_config

    config = load_config(config_path)
    local = ({"workdir": str(config.resolve(config.local.workdir).resolve()), "slots": config.local.slots}
             if config.backend == "local" else None)
    _write_memo(key, {"config": digest, "local": local})
    return local


def _well_formed(local: Any) -> bool:
    return local is None or (isinstance(local, dict) and isinstance(local.get("workdir"), str)
                             and type(local.get("slots")) is int and local["slots"] >= 1)


def _memo_path() -> Path:
    from irq.backends.ssh.ahead import control_dir

    return control_dir() / "status-local.json"


def _read_memo() -> dict[str, Any]:
    """The memo, from a file of this user's that nobody else may write (else none)."""
    try:
        path = _memo_path()
        st = path.stat()
        if st.st_uid != os.getuid() or st.st_mode & 0o022:
            return {}
        memo = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return memo if isinstance(memo, dict) else {}


def _write_memo(key: str, value: dict[str, Any]) -> None:
    """Keep value under key for the next status (a cache: failing to write it costs only time)."""
    memo = _read_memo()
    memo.pop(key, None)
    memo[key] = value
    while len(memo) > MEMO_KEEP:  # the oldest go
        memo.pop(next(iter(memo)))
    try:
        path = _memo_path()
        tmp = path.with_name(f"{path.name}.{os.getpid()}")
        tmp.write_text(json.dumps(memo))
        os.replace(tmp, path)
    except OSError:
        pass
