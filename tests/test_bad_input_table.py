"""Every everyday mistake, as a table: one `error:` line, one `hint:` line, a non-zero exit, no
traceback, and the ledger exactly as it was (every row of every table), no stray .tmp file.

A case is (name, irq.toml text or None to keep the default, extra files, argv, words the
error must contain). Config mistakes must also point to docs/configuration.md.
"""
from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from irq.ledger.database import Ledger

CLUSTER = ('[clusters.fasrc]\nhost = "login.example.edu"\nrepo_url = "git@example.edu:me/repo.git"\n'
           'workdir = "/n/home/me/irq"\n')
DOCS = "docs/configuration.md"

TOML = [  # (name, irq.toml, words)
    ("binary irq.toml", b"\x00\xff\xfe\x89PNG\r\n", "not a text file"),
    ("export = 5", "export = 5\n", "export = 5 has the wrong type"),
    ("export empty", 'export = ""\n', "must be a path"),
    ("slots = 0", "[local]\nslots = 0\n", "[local] slots = 0"),
    ("slots = -3", "[local]\nslots = -3\n", "[local] slots = -3"),
    ("slots as text", '[local]\nslots = "2"\n', "slots = '2' has the wrong type"),
    ("slots fractional", "[local]\nslots = 2.5\n", "slots = 2.5 has the wrong type"),
    ("interval = 0", "[daemon]\ninterval = 0\n", "[daemon] interval = 0"),
    ("interval < 0", "[daemon]\ninterval = -5\n", "[daemon] interval = -5"),
    ("interval = inf", "[daemon]\ninterval = inf\n", "[daemon] interval = inf: must be a finite number"),
    ("max_interval = 0", "[daemon]\nmax_interval = 0\n", "[daemon] max_interval = 0"),
    ("unknown local key", "[local]\nslot = 2\n", "unknown key 'local.slot'"),
    ("unknown top key", "colour = 'blue'\n", "unknown key 'colour'"),
    ("unknown cluster key", CLUSTER + "hostname = 'x'\n", "unknown key 'clusters.fasrc.hostname'"),
    ("cluster without repo_url", "[clusters.x]\nhost = 'h'\n", "[clusters.x] needs repo_url, workdir"),
    ("partition with newline", CLUSTER + 'partition = "gpu\\nx"\n', "[clusters.fasrc] partition"),
    ("partition with quote", CLUSTER + "partition = 'gpu\"x'\n", "[clusters.fasrc] partition"),
    ("port 0", CLUSTER + "port = 0\n", "[clusters.fasrc] port = 0"),
    ("port too big", CLUSTER + "port = 70000\n", "[clusters.fasrc] port = 70000"),
    ("job_limit 0", CLUSTER + "job_limit = 0\n", "[clusters.fasrc] job_limit = 0"),
    ("poll_interval 0", CLUSTER + "poll_interval = 0\n", "poll_interval = 0"),
    ("connect_timeout < 0", CLUSTER + "connect_timeout = -1\n", "connect_timeout = -1"),
    ("keyboard flag as text", CLUSTER + 'allow_keyboard_interactive = "yes"\n', "allow_keyboard_interactive"),
    ("modules not a list", CLUSTER + 'modules = "python"\n', "modules"),
    ("goal up", '[project]\ngoal = "up"\n', "[project] goal = 'up'"),
    ("metric empty", '[project]\nmetric = ""\n', "[project] metric"),
    ("backend nowhere", 'backend = "nowhere"\n', "names no [clusters.nowhere] table"),
    ("not TOML", "[local\n", "not valid TOML"),
    ("local not a table", "local = 3\n", "[local] must be a table"),
    ("workdir empty", '[local]\nworkdir = ""\n', "[local] workdir"),
    ("python with newline", '[local]\npython = "py\\nthon"\n', "[local] python"),
]

# an attempt of an experiment that the same file lists as proposed: refused, not imported with an
# attempt no export would show
PROPOSED_THAT_RAN = """# Experiment Queue

## FAILED

### Q-009: idea - ATTEMPT 1
- **Status**: FAILED
- **Job ID**: 123

## Future Extensions

- [ ] **Q-009**: idea
"""

FIFO = "a named pipe nobody writes to"  # as a file's content: the file is made with mkfifo

CLI = [  # (name, files, argv, words)
    ("import of a named pipe", {"pipe": FIFO}, ["import", "pipe"], "pipe: is a pipe or device with nothing to read"),
    ("config file a named pipe", {"pipe": FIFO}, ["add", "Q-010", "-c", "pipe"], "pipe: is a pipe or device"),
    ("--db a named pipe", {"pipe": FIFO}, ["--db", "pipe", "status"], "pipe is not a regular file"),
    ("--config a named pipe", {"pipe": FIFO}, ["--config", "pipe", "status"], "pipe: not a file"),
    ("--config a folder", {"d/x": ""}, ["--config", "d", "status"], "d: not a file (a folder"),
    ("--backend unknown name", {}, ["render", "Q-001", "--backend", "fasrc"], "unknown backend 'fasrc'"),
    ("--backend slurm:unknown", {}, ["render", "Q-001", "--backend", "slurm:nowhere"], "no cluster 'nowhere'"),
    ("submit --backend unknown", {}, ["submit", "Q-001", "--backend", "nowhere"], "unknown backend 'nowhere'"),
    ("non-JSON config file", {"c.json": "rank: 20\n"}, ["add", "Q-010", "-t", "x", "-c", "c.json"], "not valid JSON"),
    ("binary config file", {"c.json": b"\x89PNG\r\n\x1a\n\x00\xff"}, ["add", "Q-010", "-t", "x", "-c", "c.json"],
     "not a text file"),
    ("missing config file", {}, ["add", "Q-010", "-t", "x", "-c", "nope.json"], "cannot read"),
    ("config file is a list", {"c.json": "[1, 2]"}, ["add", "Q-010", "-t", "x", "-c", "c.json"], "a JSON object"),
    ("config file unknown key", {"c.json": '{"colour": 1}'}, ["add", "Q-010", "-t", "x", "-c", "c.json"],
     "unknown trainer key 'colour'"),
    ("config file bad mining", {"c.json": '{"mining": "greedy"}'}, ["add", "Q-010", "-t", "x", "-c", "c.json"],
     "mining = 'greedy'"),
    ("config file rank 0", {"c.json": '{"rank": 0}'}, ["add", "Q-010", "-t", "x", "-c", "c.json"], "rank = 0"),
    ("hostile mining", {}, ["add", "Q-010", "-t", "x", "-p", "mining=adversarial; touch x"], "mining = "),
    ("mining the trainer refuses", {}, ["add", "Q-010", "-t", "x", "-p", "mining=greedy"], "not one of"),
    ("rank 0", {}, ["add", "Q-010", "-t", "x", "-p", "rank=0"], "rank = 0 must be >= 1"),
    ("rank as text", {}, ["add", "Q-010", "-t", "x", "-p", "rank=twenty"], "is not an int"),
    ("learning_rate 0", {}, ["add", "Q-010", "-t", "x", "-p", "learning_rate=0"], "learning_rate = 0"),
    ("faithful as number", {}, ["add", "Q-010", "-t", "x", "-p", "faithful=3"], "is not a bool"),
    ("device unknown", {}, ["add", "Q-010", "-t", "x", "-p", "device=tpu"], "device = 'tpu'"),
    ("--param without =", {}, ["add", "Q-010", "-t", "x", "-p", "mining"], "--param wants KEY=VALUE"),
    ("--gpus -1", {}, ["add", "Q-010", "-t", "x", "--gpus", "-1"], "--gpus -1"),
    ("--gpus past any cluster", {}, ["add", "Q-010", "-t", "x", "--gpus", "99999999999999999999"],
     "--gpus 99999999999999999999: a GPU count is 0 to 1024"),
    ("--cpus past any cluster", {}, ["add", "Q-010", "-t", "x", "--cpus", "100001"], "--cpus 100001: a CPU count is 1 to 100,000"),
    ("--mem past any cluster", {}, ["add", "Q-010", "-t", "x", "--mem", "99999999TB"], "--mem 99999999TB: at most 1,024 TB a job"),
    ("--time past a year", {}, ["add", "Q-010", "-t", "x", "--time", "400 days"], "--time 400 days: at most 365 days a job"),
    ("import of 10^20 GPUs", {"q.md": "# Q\n\n## READY\n\n### Q-010: x\n- **Resources**: 99999999999999999999 GPUs\n"},
     ["import", "q.md"], "q.md:6: 99999999999999999999 GPUs: a job may ask for at most 1024"),
    ("--cpus 0", {}, ["add", "Q-010", "-t", "x", "--cpus", "0"], "--cpus 0"),
    ("partition newline", {}, ["add", "Q-010", "-t", "x", "--partition", "gpu\nx"], "#SBATCH"),
    ("partition quote", {}, ["add", "Q-010", "-t", "x", "--partition", 'gpu"x'], "#SBATCH"),
    ("partition space", {}, ["add", "Q-010", "-t", "x", "--partition", "gpu test"], "#SBATCH"),
    ("partition dollar", {}, ["add", "Q-010", "-t", "x", "--partition", "$(id)"], "#SBATCH"),
    ("--mem lots", {}, ["add", "Q-010", "-t", "x", "--mem", "lots"], "lots"),
    ("--mem 0", {}, ["add", "Q-010", "-t", "x", "--mem", "0GB"], "more than zero"),
    ("--time fortnight", {}, ["add", "Q-010", "-t", "x", "--time", "a fortnight"], "a fortnight"),
    ("Arabic-Indic digits", {}, ["add", "Q-٠١١", "-t", "x"], "invalid experiment id"),
    ("id starting with a digit", {}, ["add", "1-lr", "-t", "x"], "invalid experiment id '1-lr'"),
    ("duplicate id", {}, ["add", "Q-001", "-t", "again"], "already exists"),
    ("unknown dependency", {}, ["add", "Q-010", "-t", "x", "--after", "Q-999"], "Q-999"),
    ("self dependency", {}, ["add", "Q-010", "-t", "x", "--after", "Q-010"], "cannot depend on itself"),
    ("title with newline", {}, ["add", "Q-010", "-t", "a\nb"], "one line"),
    ("empty title", {}, ["add", "Q-010", "-t", " "], "needs a title"),
    ("parameter name with a space", {}, ["add", "Q-010", "-t", "x", "-p", "a b=1"], "parameter name 'a b' is not a name"),
    ("parameter name with a line break", {}, ["add", "Q-010", "-t", "x", "-p", "a\nb=1"], "is not a name"),
    ("priority URGENT", {}, ["add", "Q-010", "-t", "x", "--priority", "URGENT"], "'URGENT' is not one of"),
    ("edit to priority URGENT", {}, ["edit", "Q-001", "--priority", "URGENT"], "'URGENT' is not one of 'highest'"),
    ("bad seeds", {}, ["add", "Q-010", "-t", "x", "--seeds", "x-y"], "x-y"),
    ("export into a missing folder", {}, ["export", "nodir/queue.md"], "does not exist"),
    ("export onto a folder", {"sub/keep": "x"}, ["export", "sub"], "is a folder"),
    ("render -o into a missing folder", {}, ["render", "Q-001", "-o", "nodir/job.sh"], "does not exist"),
    ("render -o onto a folder", {"sub/keep": "x"}, ["render", "Q-001", "-o", "sub"], "is a folder"),
    ("edit a DONE experiment", {}, ["edit", "Q-002", "-t", "new"], "Q-002 is DONE"),
    ("edit with a refused value", {}, ["edit", "Q-001", "-p", "mining=greedy"], "mining = 'greedy'"),
    ("edit an unknown id", {}, ["edit", "Q-999", "-t", "x"], "unknown experiment Q-999"),
    ("edit with a parameter name that is not one", {}, ["edit", "Q-001", "-p", "x: y=1"], "is not a name"),
    ("edit --unset a missing key", {}, ["edit", "Q-001", "--unset", "rank"], "has no parameter 'rank'"),
    ("edit --gpus -1", {}, ["edit", "Q-001", "--gpus", "-1"], "--gpus -1"),
    ("rm a DONE experiment", {}, ["rm", "Q-002"], "Q-002 is DONE"),
    ("rm a dependency", {}, ["rm", "Q-003"], "Q-004 depends on Q-003"),
    ("retire a DONE experiment", {}, ["retire", "Q-002"], "Q-002 is DONE"),
    ("ready a DONE experiment", {}, ["ready", "Q-002"], "Q-002 is DONE"),
    ("ready a READY experiment", {}, ["ready", "Q-001"], "Q-001 is already READY"),
    ("retry a READY experiment", {}, ["retry", "Q-001"], "only a FAILED experiment"),
    ("import a missing file", {}, ["import", "nope.md"], "nope.md"),
    ("import an empty file", {"empty.md": ""}, ["import", "empty.md"], "empty.md: holds no experiment"),
    ("config file that never ends", {}, ["add", "Q-010", "-t", "x", "-c", "/dev/zero"],
     "/dev/zero: is larger than 1 MB: not a trainer config"),
    ("import a file with no experiment", {"notes.md": "# My notes\n\nnothing queued\n"}, ["import", "notes.md"],
     "holds no experiment"),
    ("status --watch nan", {}, ["status", "--watch", "nan"], "nan is not a number of seconds"),
    ("status --watch inf", {}, ["status", "--watch", "inf"], "inf is not a number of seconds"),
    ("log -f --interval nan", {}, ["log", "Q-001", "-f", "--interval", "nan"], "nan is not a number of seconds"),
    ("import a proposed experiment that ran", {"q.md": PROPOSED_THAT_RAN}, ["import", "q.md"],
     "q.md:11: Q-009 is in the proposed list but has an attempt (line 5)"),
    ("show an unknown id", {}, ["show", "Q-999"], "unknown experiment Q-999"),
    ("daemon --interval 0", {}, ["daemon", "run", "--interval", "0"], "--interval 0"),
    ("daemon --interval -1", {}, ["daemon", "run", "--interval", "-1"], "--interval -1"),
    ("plot more than a figure draws", {}, ["plot", "final", *(f"Q-{k:03d}" for k in range(1, 23))],
     "a figure draws at most 20 experiments (22 named)"),
    # an output named by mistake onto the ledger or irq.toml destroyed it (render -o wrote the script over queue.db)
    # an imported Job ID or Run ID became a path: the local backend ran a runner in '../../evil', fetch copied to '../x'
    ("import a Job ID that is a path", {"q.md": "# Q\n\n## IN_PROGRESS\n\n### X-1: a\n- **Command**: `echo`\n\n"
                                               "### X-1: a - ATTEMPT 1\n- **Status**: RUNNING\n- **Backend**: local\n"
                                               "- **Job ID**: ../../../evil\n"},
     ["import", "q.md"], "q.md:11: Job ID '../../../evil' is not a plain name"),
    ("import a Run ID that is a path", {"q.md": "# Q\n\n## IN_PROGRESS\n\n### X-1: a\n- **Command**: `echo`\n\n"
                                               "### X-1: a - ATTEMPT 1\n- **Status**: RUNNING\n- **Run ID**: /tmp/escaped\n"},
     ["import", "q.md"], "q.md:10: Run ID '/tmp/escaped' is not a plain name"),
    # each of these ended "irq failed unexpectedly"
    ("local workdir that is a file", {"irq.toml": '[local]\nworkdir = "/dev/null"\n'}, ["submit", "Q-001"],
     "[local] workdir /dev/null: cannot make its jobs folder there"),
    ("status --watch past a day", {}, ["status", "--watch", "1e20", "--count", "2"], "seconds is more than a day"),
    ("log -f --interval past a day", {}, ["log", "Q-001", "-f", "--interval", "1e10"], "seconds is more than a day"),
    ("status --limit past SQLite's integers", {}, ["status", "--offline", "--limit", "99999999999999999999"],
     "is not in the range 1<=x<=1000000000"),
    ("a trainer config nested too deeply", {"c.json": "[" * 100_000 + "]" * 100_000},
     ["add", "Q-010", "-t", "x", "-c", "c.json"], "c.json: nested too deeply to be a trainer config"),
    ("a template that fails as it runs", {"templates/queue.md.j2": "{{ 1/0 }}"}, ["export"],
     "template queue.md.j2 failed while rendering: ZeroDivisionError"),
    ("a template that extends itself", {"templates/queue.md.j2": '{% extends "queue.md.j2" %}'}, ["export"],
     "template queue.md.j2 failed while rendering: RecursionError"),
    # digits of another script were read as numbers (int() reads '٢' as 2); ids and seeds already refused them
    ("--gpus in Arabic-Indic digits", {}, ["add", "Q-010", "-t", "x", "--gpus", "٢"], "'٢' is not a whole number (digits 0-9)"),
    ("--mem in Arabic-Indic digits", {}, ["add", "Q-010", "-t", "x", "--mem", "٢GB"], "not an amount of memory: '٢GB'"),
    ("--time in Arabic-Indic digits", {}, ["add", "Q-010", "-t", "x", "--time", "٢ hours"], "not a duration: '٢ hours'"),
    ("import a NUL character", {"q.md": "# Q\n\n## READY\n\n### X-1: a\n- **Command**: `echo {tag}`\n"
                                       "- **Parameters**:\n  - `tag`: a\x00b\n"},
     ["import", "q.md"], "q.md:8: a NUL character: a queue.md is text"),
    # Python's JSON reader takes these; the value reached the job's params.json (not JSON then), or one value was lost
    ("a trainer config with Infinity", {"c.json": '{"learning_rate": Infinity}'}, ["add", "Q-010", "-t", "x", "-c", "c.json"],
     "c.json: Infinity is not a JSON number"),
    ("a trainer config with a key twice", {"c.json": '{"rank": 3, "rank": 4}'}, ["add", "Q-010", "-t", "x", "-c", "c.json"],
     "c.json: key 'rank' is given twice"),
    ("record a result twice", {}, ["record", "Q-001", "completed", "-r", "val_mse=1", "-r", "val_mse=2"],
     "--result val_mse is given twice"),
    # accepted, then ignored or unable to act
    ("status --count without --watch", {}, ["status", "--count", "3"], "--count goes with --watch"),
    ("log --count without -f", {}, ["log", "Q-001", "--count", "2"], "--count and --interval go with -f"),
    ("daemon --interval inf", {}, ["daemon", "run", "--once", "--interval", "inf"], "inf is not a number of seconds"),
    ("edit to an empty command", {}, ["edit", "Q-001", "--command", ""], "--command '' runs nothing"),
    ("add with --seeds ''", {}, ["add", "Q-010", "-p", "a=1", "--seeds", ""], "--seeds '' names no seed"),
    ("sweep with --seeds ''", {}, ["sweep", "Q-001", "rank=4,8", "--seeds", ""], "cannot read seeds ''"),
    ("a retry cap below the time asked", {}, ["add", "Q-010", "-p", "a=1", "--time", "1 hour", "--retry-on", "TIMEOUT",
                                              "--retry-max-time", "30 minutes"], "the policy could never act"),
    ("retry attempts past any use", {}, ["add", "Q-010", "-p", "a=1", "--time", "1 hour", "--retry-on", "TIMEOUT",
                                         "--retry-max-attempts", "99999999999999999999"], "at most 20"),
    ("--backend slurm: with no name", {}, ["render", "Q-001", "--backend", "slurm:"], "--backend slurm: names no cluster"),
    ("render onto the ledger", {}, ["render", "Q-001", "-o", "queue.db"], "queue.db is a SQLite database (an irq ledger?)"),
    ("report onto the ledger", {}, ["report", "-o", "queue.db"], "queue.db is a SQLite database (an irq ledger?)"),
    ("export onto the ledger", {}, ["export", "queue.db"], "queue.db is a SQLite database (an irq ledger?)"),
    ("export onto irq.toml", {}, ["export", "irq.toml"], "irq.toml is a project's irq.toml: irq never writes over it"),
    ("plot an unknown kind", {}, ["plot", "violin"], "'violin' is not one of 'curves', 'final'"),
    ("results in an unknown format", {}, ["results", "--format", "xml"], "'xml' is not one of 'rich', 'md'"),
    ("results --goal up", {}, ["results", "--goal", "up"], "'up' is not one of 'min', 'max'"),
    ("results criterion without baseline", {}, ["results", "--criterion", "val_mse -20%"], "compares with a baseline"),
    ("results --metric empty", {}, ["results", "--metric", ""], "--metric '' names no metric"),
    ("results --threshold nan", {}, ["results", "--threshold", "nan"], "a threshold is a finite number"),
    ("report --threshold inf", {}, ["report", "--threshold", "inf"], "a threshold is a finite number"),
    ("report into a file's folder", {"f": "x"}, ["report", "-o", "f/summary.md"], "cannot make the folder f"),
    ("plot with no fetched results", {}, ["plot", "final"], "no experiment has fetched results to plot"),
    ("sweep override without values", {}, ["sweep", "Q-001", "rank="], "gives no values"),
    ("a hundred million seeds", {}, ["add", "Q-010", "-p", "a=1", "--seeds", "0-100000000"],
     "are 100,000,001: an experiment runs at most 10,000"),  # once a 1 GB row in the ledger
    ("a seed past 2^31", {}, ["add", "Q-010", "-p", "a=1", "--seeds", "3000000000"], "seed 3000000000 is too large"),
    ("seeds in Arabic-Indic digits", {}, ["add", "Q-010", "-p", "a=1", "--seeds", "٣"], "cannot read seeds"),
    ("sweep of a hundred million seeds", {}, ["sweep", "Q-001", "rank=4,8", "--seeds", "0-99999999"],
     "an experiment runs at most 10,000"),
    ("import of a hundred million seeds", {"q.md": "# Q\n\n## READY\n\n### Q-010: x\n- **Seeds**: 0-100000000\n"},
     ["import", "q.md"], "q.md:6: "),
    ("login on the local backend", {}, ["login"], "the backend is local (this machine): no cluster to log in to"),
    ("trust on the local backend", {}, ["trust"], "the backend is local (this machine)"),
    ("results --baseline unknown", {}, ["results", "--baseline", "Q-909"], "unknown experiment Q-909"),
    ("import of an attempt in no job state", {"q.md": "# Q\n\n## FAILED\n\n### Q-010: x - ATTEMPT 1\n- **Status**: SUCCESS\n"},
     ["import", "q.md"], "q.md:6: Status 'SUCCESS' is not a job state"),
    ("import of a definition whose Status contradicts its section",
     {"q.md": "# Q\n\n## READY\n\n### Q-010: x\n- **Status**: DONE\n"}, ["import", "q.md"],
     "q.md:6: Q-010 is under READY but its Status says DONE"),
    ("results --resamples 100000000", {}, ["results", "--resamples", "100000000"], "100<=x<=1000000"),
    ("sweep override repeating a value", {}, ["sweep", "Q-001", "rank=4,4"], "repeats a value"),
    # a parameter once took the place of irq's value: a "3-seed" array ran seed 7 three times
    ("parameter named seed", {}, ["add", "Q-010", "--command", "echo {seed}", "--seeds", "0-2", "-p", "seed=7"],
     "parameter 'seed' is irq's own: seeds come from --seeds"),
    # for the bundled trainer too: it was taken as the run's seed, and render said it was not passed
    ("parameter named seed, bundled trainer", {}, ["add", "Q-010", "-p", "rank=3", "-p", "seed=7"],
     "parameter 'seed' is irq's own: seeds come from --seeds"),
    ("parameter named run_dir", {}, ["add", "Q-010", "--command", "echo {run_dir}", "-p", "run_dir=/tmp/x"],
     "parameter 'run_dir' is irq's own {run_dir}"),
    ("parameters sharing one variable", {}, ["add", "Q-010", "--command", "echo x", "-p", "a.b=1", "-p", "a_b=2"],
     "parameters 'a.b' and 'a_b' are both IRQ_PARAM_A_B"),
    # one transaction per id: the known ones changed, then the typo failed the command
    ("retire of a known id and a typo", {}, ["retire", "Q-003", "Q-0033"], "unknown experiment Q-0033"),
    ("rm of a known id and a typo", {}, ["rm", "Q-004", "Q-0044"], "unknown experiment Q-0044"),
    ("ready of a known id and a typo", {}, ["ready", "Q-001", "Q-0011"], "unknown experiment Q-0011"),
    ("retry of a known id and a typo", {}, ["retry", "Q-002", "Q-0022"], "unknown experiment Q-0022"),
    # a policy that could never act, or whose export could not be imported back
    ("retry policy of -2 attempts", {}, ["add", "Q-010", "--time", "1 hour", "--retry-on", "TIMEOUT",
                                         "--retry-max-attempts", "-2"], "max attempts -2: an experiment runs at least once"),
    ("retry cap without --retry-on", {}, ["add", "Q-010", "--retry-max-time", "1 hour"], "add --retry-on TIMEOUT"),
    ("retry on TIMEOUT without a time", {}, ["add", "Q-010", "--retry-on", "TIMEOUT"], "asks for none"),
    ("daemon start --interval 0", {}, ["daemon", "start", "--interval", "0"],
     "the daemon exited at once: --interval 0"),  # once dropped: the daemon ran with irq.toml's interval
    ("daemon run --json without --dry-run", {}, ["daemon", "run", "--once", "--json"], "--json prints a --dry-run's plan"),
    ("status of an unknown state", {}, ["status", "--state", "bogus"], "unknown state 'bogus'"),
    ("sweep override with a trailing comma", {}, ["sweep", "Q-001", "rank=4,", "--dry-run"], "has an empty value"),
    ("sweep choice with an empty value", {}, ["sweep", "Q-001", "rank=choice(4,,8)", "--dry-run"], "has an empty value"),
    ("sweep of three billion points", {}, ["sweep", "Q-001", "rank=range(1,3000000000)", "--dry-run"],
     "gives 2,999,999,999 points; a sweep makes at most 1,000"),
    ("edit making a dependency cycle", {}, ["edit", "Q-003", "--after", "Q-004"],
     "--after would make a dependency cycle: Q-003 runs after Q-004, which runs after Q-003"),
    ("import of a dependency cycle",
     {"q.md": "# Q\n\n## READY\n\n### Q-010: x\n- **Dependencies**: Q-012\n\n### Q-011: y\n- **Dependencies**: Q-010\n"
              "\n### Q-012: z\n- **Dependencies**: Q-011\n"},
     ["import", "q.md"], "q.md:5: dependency cycle: Q-010 runs after Q-012, which runs after Q-011, which runs after Q-010"),
    ("sweep of 1,600 combinations", {}, ["sweep", "Q-001", "rank=range(1,41)", "train_steps=range(1,41)"],
     "gives 1,600 points"),
    # hand edits of queue.md that silently lost or changed data
    ("import of a key given twice", {"q.md": "# Q\n\n## READY\n\n### Q-010: x\n- **Notes**: first\n- **Notes**: second\n"},
     ["import", "q.md"], "q.md:7: 'Notes' is given twice in this block of Q-010 (also line 6)"),
    ("import of a parameter given twice",
     {"q.md": "# Q\n\n## READY\n\n### Q-010: x\n- **Parameters**:\n  - Rank: 20\n  - `rank`: 30\n"},
     ["import", "q.md"], "parameter 'rank' is given twice (line 8)"),
    ("import of a result given twice",
     {"q.md": "# Q\n\n## FAILED\n\n### Q-010: x - ATTEMPT 1\n- **Status**: FAILED\n- **Results**:\n  - val_mse: 1\n"
              "  - val_mse: 2\n"}, ["import", "q.md"], "result 'val_mse' is given twice (line 9)"),
    ("import of an attempt key given twice",
     {"q.md": "# Q\n\n## FAILED\n\n### Q-010: x - ATTEMPT 1\n- **Status**: FAILED\n- **Job ID**: 1\n- **Job ID**: 2\n"},
     ["import", "q.md"], "q.md:8: 'Job ID' is given twice"),
    ("import of a comment never closed",
     {"q.md": "# Q\n\n## READY\n\n### Q-010: x\n- **Notes**: a\n<!-- TODO ask Sam\n### Q-011: y\n- **Notes**: b\n"},
     ["import", "q.md"], "q.md:7: an HTML comment starts here and is never closed"),
    ("import of a running attempt under READY",
     {"q.md": "# Q\n<!-- irq:queue v1 -->\n\n## READY\n\n### B-1: moved\n- **Command**: `echo 1`\n\n"
              "### B-1: moved - ATTEMPT 1\n- **Status**: RUNNING\n- **Job ID**: 123\n"},
     ["import", "q.md"], "q.md:6: B-1 is under READY but its attempt 1 is RUNNING (line 9)"),
    ("import of IN_PROGRESS with nothing running",
     {"q.md": "# Q\n<!-- irq:queue v1 -->\n\n## IN_PROGRESS\n\n### B-1: moved\n- **Command**: `echo 1`\n\n"
              "### B-1: moved - ATTEMPT 1\n- **Status**: COMPLETED\n- **Job ID**: 123\n"},
     ["import", "q.md"], "q.md:6: B-1 is under IN_PROGRESS but has no running job, no job left to fetch"),
    ("import of a huge exit code",
     {"q.md": "# Q\n\n## FAILED\n\n### Q-010: x - ATTEMPT 1\n- **Status**: FAILED\n- **Exit code**: 99999999999999999999\n"},
     ["import", "q.md"], "q.md:7: exit code 99999999999999999999 is out of range"),
    ("import of a huge attempt number",
     {"q.md": "# Q\n\n## FAILED\n\n### Q-010: x - ATTEMPT 99999999999999999999\n- **Status**: FAILED\n"},
     ["import", "q.md"], "q.md:5: Q-010 attempt 99999999999999999999 is past the last number irq keeps"),
    ("import of an attempt 0",
     {"q.md": "# Q\n\n## FAILED\n\n### Q-010: x - ATTEMPT 0\n- **Status**: FAILED\n"},
     ["import", "q.md"], "q.md:5: Q-010 attempt 0: attempts are numbered from 1"),
    ("import of a partition with $(…)",
     {"q.md": "# Q\n\n## READY\n\n### Q-010: x\n- **Resources**: 1 GPU, gpu$(x) partition\n"},
     ["import", "q.md"], "q.md:6: partition 'gpu$(x)' cannot go on an #SBATCH line"),
    ("import of zero memory", {"q.md": "# Q\n\n## READY\n\n### Q-010: x\n- **Resources**: 1 GPU, 0GB RAM, 2 hours\n"},
     ["import", "q.md"], "q.md:6: memory and time must be more than zero"),
    ("import of a dependency on an unknown id in words",
     {"q.md": "# Q\n\n## READY\n\n### Q-010: x\n- **Dependencies**: Run after lr-01 for comparison\n"},
     ["import", "q.md"], "q.md:6: the dependencies name 'lr-01', which is no experiment of this file or the ledger"),
    ("import of a bullet indented under another",
     {"q.md": "# Q\n\n## READY\n\n### Q-010: x\n- **Dependencies**: Q-001\n  - **Notes**: indented\n"},
     ["import", "q.md"], "q.md:7: 'Notes' is indented under 'Dependencies'"),
    ("an argument that is not UTF-8", {}, ["add", "Q-010", "--title", "t", "--command", "echo", "--notes", "a\udc85b"],
     "an argument is not UTF-8 text: a\\x85b"),
]


def _snapshot(db: Path) -> list:
    con = sqlite3.connect(db)
    try:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
        return [(t, con.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall()) for t in tables]
    finally:
        con.close()


@pytest.fixture
def project(tmp_path, irq):
    assert irq("init").code == 0
    assert irq("add", "Q-001", "--title", "Baseline", "-p", "mining=random").code == 0
    assert irq("add", "Q-002", "--title", "Finished").code == 0
    assert irq("add", "Q-003", "--title", "First").code == 0
    assert irq("add", "Q-004", "--title", "Second", "--after", "Q-003").code == 0
    ledger = Ledger(tmp_path / "queue.db")
    with ledger.transaction() as s:
        e = Ledger.experiment(s, "Q-002")
        Ledger.set_state(s, e, "IN_PROGRESS", "test")
        Ledger.set_state(s, e, "DONE", "test")
    ledger.close()
    return tmp_path


def _check(project: Path, irq, argv: list[str], words: str, config_error: bool = False) -> None:
    before = _snapshot(project / "queue.db")
    r = irq(*argv)
    lines = [ln for ln in r.err.splitlines() if ln.strip()]
    assert r.code != 0, r
    assert "Traceback" not in r.err + r.out
    assert [ln.split(":")[0] for ln in lines] == ["error", "hint"], r.err
    assert words in lines[0], r.err
    if config_error:
        assert DOCS in lines[1], r.err
    assert _snapshot(project / "queue.db") == before
    assert not list(project.rglob("*.tmp"))


def test_the_table_holds_at_least_sixty_mistakes():
    assert len(TOML) + len(CLI) >= 60


@pytest.mark.parametrize("name, text, words", TOML, ids=[c[0] for c in TOML])
def test_config_mistake(project, irq, name, text, words):
    p = project / "irq.toml"
    p.write_bytes(text) if isinstance(text, bytes) else p.write_text(text, encoding="utf-8")
    _check(project, irq, ["render", "Q-001"], words, config_error=True)


@pytest.mark.parametrize("name, files, argv, words", CLI, ids=[c[0] for c in CLI])
@pytest.mark.timeout(60)  # a named pipe once made the command wait for a writer for ever
def test_cli_mistake(project, irq, name, files, argv, words):
    for rel, content in files.items():
        f = project / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        if content is FIFO:
            os.mkfifo(f)
            continue
        f.write_bytes(content) if isinstance(content, bytes) else f.write_text(content, encoding="utf-8")
    _check(project, irq, argv, words)
