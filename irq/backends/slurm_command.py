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

SACCT_NOT_RUN = "sacct not run: every job is live in squeue"

# One exec, under TZ=UTC0: squeue (the user's jobs, tasks expanded), then sacct unless squeue
# already shows every job asked about as a live plain job; a marker line before the first and
# after each with its exit code. $1 the marker, $2 the user, $3 squeue's format, $4 the job ids
# asked about (comma-separated; empty: sacct runs), then sacct's arguments. sacct asks slurmdbd
# and takes several times squeue's time, and squeue knows a live job best (merge() prefers it):
# sacct is needed only for a job squeue no longer shows, or an array (whose finished tasks only
# sacct lists). When it is not run, its marker line says so (SACCT_NOT_RUN) and its section is empty.
SQUEUE_SACCT = ('export TZ=UTC0; set -f; m=$1; u=$2; f=$3; ids=$4; shift 4; echo "$m"; '
                'q=$(squeue -h -r -u "$u" -o "$f"; echo "$m rc=$?"); printf \'%s\\n\' "$q"; '
                'need=; [ -n "$ids" ] || need=1; case "$q" in *"$m rc=0") ;; *) need=1;; esac; '
                'IFS=,; for j in $ids; do case "\n$q" in *"\n$j|"*) ;; *) need=1;; esac; done; unset IFS; '
                'if [ -n "$need" ]; then sacct -X -P -n "$@"; echo "$m rc=$?"; '
                'else echo "$m rc=0 $SACCT_NOT_RUN"; fi').replace("$SACCT_NOT_RUN", SACCT_NOT_RUN)


def squeue_sacct_command(user: str, sacct_args: list[str], sacct_fields: Sequence[str] = SACCT_FIELDS) -> list[str]:
    """The command of one refresh round trip (a list: the transport quotes each argument). The
    jobs of sacct's `-j` are those squeue may answer for alone."""
    ids = sacct_args[sacct_args.index("-j") + 1] if "-j" in sacct_args[:-1] else ""
    return ["sh", "-c", SQUEUE_SACCT, "irq", MARK, user, SQUEUE_FORMAT, ids, *sacct_args, "-o", ",".join(sacct_fields)]


def query_args(job_ids: Iterable[str], since: datetime) -> tuple[list[str], list[str]]:
    """(base job ids, sacct's arguments) of a query about these jobs submitted since then."""
    ids = sorted({j.split("_", 1)[0] for j in job_ids if j})
    return ids, ["--starttime", slurm_time(since - SINCE_MARGIN), "-j", ",".join(ids)]


def slurm_time(when: datetime) -> str:
    """A datetime as SLURM reads it under TZ=UTC0 (naive datetimes count as local time)."""
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


# each run folder (an argument, $1…, never part of the script's text) and the first SLURM log in it
# (slurm-1810.out, or slurm-1810_3.out of an array), a line each, tab-separated
RUN_LOGS = ('for d do f=$(ls -1 "$d" 2>/dev/null | grep -m1 -E "^slurm-[0-9]+(_[0-9]+)?[.]out$"); '
            'printf "%s\\t%s\\n" "$d" "$f"; done')


def run_logs_command(run_dirs: Sequence[str]) -> list[str]:
    return ["sh", "-c", RUN_LOGS, "irq", *run_dirs]
