"""The command of one status refresh: squeue and sacct in one exec, and how it is spelled.

Standard library only: `irq status` builds this command before it loads the rest of irq
(irq/jobs/quickstatus.py); irq/backends/slurm.py runs the same for every refresh, and
slurm_output.py reads what it prints.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta, timezone

MARK = "@@irq-section@@"
SQUEUE_FORMAT = "%i|%T|%r|%S|%j"  # name last: it may contain "|"
SACCT_FIELDS = ("JobID", "State", "ExitCode", "Start", "End", "JobName")  # name last, as above
SINCE_MARGIN = timedelta(hours=1)  # clock skew between here and the cluster

# squeue (the user's jobs, tasks expanded) and sacct in one exec, both under TZ=UTC0, a marker line
# after each with its exit code: $1 the marker, $2 the user, $3 squeue's format, then sacct's
# arguments. The two run at once (sacct asks slurmdbd and takes several times squeue's time):
# a background group prints squeue's section as it comes; sacct's output and its marker line are
# kept in a variable ($(...) drops only the newline after that last line) and printed once the
# group is done. So the output is that of running them one after the other (marker, squeue's
# lines, marker rc=N, sacct's lines, marker rc=N), and no file is written.
SQUEUE_SACCT = ('export TZ=UTC0; m=$1; u=$2; f=$3; shift 3; echo "$m"; '
                '{ squeue -h -r -u "$u" -o "$f"; echo "$m rc=$?"; } & '
                's=$(sacct -X -P -n "$@"; echo "$m rc=$?"); wait $!; printf \'%s\\n\' "$s"')


def squeue_sacct_command(user: str, sacct_args: list[str], sacct_fields: Sequence[str] = SACCT_FIELDS) -> list[str]:
    """The command of one refresh round trip (a list: the transport quotes each argument)."""
    return ["sh", "-c", SQUEUE_SACCT, "irq", MARK, user, SQUEUE_FORMAT, *sacct_args, "-o", ",".join(sacct_fields)]


def query_args(job_ids: Iterable[str], since: datetime) -> tuple[list[str], list[str]]:
    """(base job ids, sacct's arguments) of a query about these jobs submitted since then."""
    ids = sorted({j.split("_", 1)[0] for j in job_ids if j})
    return ids, ["--starttime", slurm_time(since - SINCE_MARGIN), "-j", ",".join(ids)]


def slurm_time(when: datetime) -> str:
    """A datetime as SLURM reads it under TZ=UTC0 (naive datetimes count as local time)."""
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
