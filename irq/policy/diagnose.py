"""Why a job failed: a catalogue of known failures matched on the job's log tail and on the
scheduler's state and exit code. Each match gives an error, a root cause and a fix, as the
seed's FAILED entries record them by hand."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Diagnosis:
    error: str
    root_cause: str
    fix: str
    pattern: str  # which catalogue entry matched (for tests and `irq show`)


@dataclass(frozen=True)
class Rule:
    name: str
    log: re.Pattern[str] | None  # matched against the log tail
    states: frozenset[str] = frozenset()  # or the scheduler state
    build: Callable[[re.Match[str] | None, str], Diagnosis] | None = None


MODULE_MISSING = re.compile(r"ModuleNotFoundError: No module named '([\w.]+)'")
NO_MODULE = "a module load is missing or commented out"  # a cluster's cause of a command not found


def _d(name: str, error: str, cause: str, fix: str) -> Diagnosis:
    return Diagnosis(error, cause, fix, name)


def _traceback(m: re.Match[str] | None, log: str) -> Diagnosis:
    lines = log.rstrip().splitlines()
    start = max(i for i, line in enumerate(lines) if line.startswith("Traceback (most recent call last)"))
    tb = lines[start:]
    frames = [line.strip() for line in tb if line.strip().startswith('File "')]
    exc = next((line.strip() for line in reversed(tb) if re.match(r"^[\w.]+(Error|Exception|Interrupt|Exit)\b", line.strip())),
               tb[-1].strip() if tb else "exception")
    where = frames[-1] if frames else "unknown frame"
    return _d("traceback", exc, f"Python exception raised at {where}",
              "reproduce locally with the same config and seed (`irq render ID` shows the command), fix, commit, push, `irq retry ID`")


CATALOGUE: list[Rule] = [
    Rule("cuda_oom", re.compile(r"CUDA out of memory|torch\.(cuda\.)?OutOfMemoryError"),
         build=lambda m, log: _d("cuda_oom", "CUDA out of memory", "the model and batch do not fit the GPU's memory",
                                 "lower batch_size, or ask for a GPU with more memory")),
    Rule("cuda_unavailable", re.compile(r"(no CUDA GPUs are available|Found no NVIDIA driver|CUDA driver initialization failed|"
                                        r"Torch not compiled with CUDA enabled|CUDA is not available)"),
         build=lambda m, log: _d("cuda_unavailable", f"CUDA unavailable: {m.group(1)}",
                                 "the job runs without a usable GPU (no --gres=gpu, wrong partition, or a CPU build of torch)",
                                 "request a GPU (gpus = 1) on a GPU partition, or run with device = cpu")),
    Rule("nan_loss", re.compile(r"NaN loss at step (\d+)"),
         build=lambda m, log: _d("nan_loss", f"NaN loss at step {m.group(1)}", "training diverged",
                                 "lower learning_rate, keep grad_clip on, or check the data")),
    Rule("python_package_missing", MODULE_MISSING,
         build=lambda m, log: _d("python_package_missing",
                                 f"ModuleNotFoundError: No module named '{m.group(1)}'",
                                 f"an environment problem, not the code: the job's python cannot import "
                                 f"`{m.group(1).split('.')[0]}` (on a cluster: its python after the modules load)",
                                 f"install `{m.group(1).split('.')[0]}` into the job's python (the venv or conda "
                                 f"env that `python` in irq.toml names: `PYTHON -m pip install "
                                 f"{m.group(1).split('.')[0]}`), or load the module that provides it; then "
                                 "`irq check ID` and `irq retry ID` (no commit needed)")),
    Rule("module_missing", re.compile(r"The following module\(s\) are unknown: \"?([^\"\n]+)\"?|"
                                      r"ERROR: Unable to locate a modulefile for '([^']+)'|module load (\S+) failed"),
         build=lambda m, log: _d("module_missing", f"Module not found - `{(m.group(1) or m.group(2) or m.group(3)).strip()}` doesn't exist on cluster",
                                 "the cluster has no module by that name (clusters use versioned names such as python/3.10.13-fasrc01)",
                                 "list them with `module -t avail`, put the exact name in irq.toml's modules, `irq check ID`")),
    # bash: "line 7: tool: command not found"; dash (sh): "train.sh: 7: tool: not found"
    Rule("command_not_found", re.compile(r"(?:line \d+: )?(\S+): command not found|^\S+: \d+: (\S+): not found$", re.M),
         build=lambda m, log: _d("command_not_found", f"`{m.group(1) or m.group(2)}: command not found`",
                                 f"`{m.group(1) or m.group(2)}` is not on the job's PATH: {NO_MODULE}",
                                 "load the module that provides it (irq.toml modules), then `irq check ID`")),
    Rule("commit_missing", re.compile(r"irq: commit (\S+) not found in (\S+)"),
         build=lambda m, log: _d("commit_missing", f"commit {m.group(1)} not found in {m.group(2)}",
                                 "the commit was not pushed to the repository the cluster clones",
                                 "git push, then `irq retry ID`")),
    Rule("project_folder_missing", re.compile(r"irq: folder (.+) not found in commit (\S+) of (.+)"),
         build=lambda m, log: _d("project_folder_missing", f"folder {m.group(1)} not found in commit {m.group(2)}",
                                 f"the project's folder {m.group(1)} (where irq.toml is) is not in the pinned commit "
                                 f"of {m.group(3).strip()}: irq.toml and the project's files were not committed",
                                 "git add the project's folder, commit, push, then `irq retry ID`")),
    Rule("file_missing", re.compile(r"(?:No such file or directory|can't open file|FileNotFoundError)[^\n]*?'?([\w./-]+\.(?:py|json|yaml|toml))'?"
                                    r"|(\S+\.(?:py|json)): No such file|config file not found: (\S+)"),
         build=lambda m, log: _d("file_missing", f"File not found - `{m.group(1) or m.group(2) or m.group(3)}` doesn't exist in the job's clone",
                                 "the file is not in the pinned commit (not committed, or tracked as a gitlink/submodule)",
                                 "git add the files (not a gitlink), commit, push, then `irq retry ID`")),
    Rule("traceback", re.compile(r"^Traceback \(most recent call last\)", re.M), build=_traceback),
    # the scheduler's and the kernel's own words only: a log that merely mentions "memory limit",
    # "time limit" or "CANCELLED" is no such failure (these also read the log of any state)
    Rule("oom_killed", re.compile(r"oom[-_ ]kill|Out Of Memory|Exceeded job memory limit", re.I),
         states=frozenset({"OUT_OF_MEMORY"}),
         build=lambda m, log: _d("oom_killed", "OUT_OF_MEMORY: the job exceeded its memory limit",
                                 "the job used more memory than --mem allowed",
                                 "a submitted experiment stays as it ran: add it again with more (`irq add NEW ... "
                                 "--mem 32GB`); `--retry-on OUT_OF_MEMORY` on new experiments lets irq do it")),
    Rule("timeout", re.compile(r"DUE TO TIME LIMIT"), states=frozenset({"TIMEOUT"}),
         build=lambda m, log: _d("timeout", "TIMEOUT: the job reached its time limit",
                                 "the run needs more time than it asked for",
                                 "a submitted experiment stays as it ran: add it again with more (`irq add NEW ... "
                                 "--time '8 hours'`); `--retry-on TIMEOUT` on new experiments lets irq do it (the "
                                 "trainer resumes from its last checkpoint)")),
    Rule("node_fail", None, states=frozenset({"NODE_FAIL", "BOOT_FAIL", "LOST"}),
         build=lambda m, log: _d("node_fail", "NODE_FAIL: the node running the job failed",
                                 "an infrastructure failure, not the experiment", "`irq retry ID`")),
    Rule("preempted", None, states=frozenset({"PREEMPTED"}),
         build=lambda m, log: _d("preempted", "PREEMPTED: a higher-priority job took the node",
                                 "preemption on a shared partition", "`irq retry ID` (the trainer resumes from its checkpoint)")),
    Rule("cancelled", re.compile(r"CANCELLED AT \S+ (?:BY|by) (\S+)"), states=frozenset({"CANCELLED"}),
         build=lambda m, log: _d("cancelled", "CANCELLED" + (f" by {m.group(1)}" if m and m.lastindex and m.group(1) else ""),
                                 "the job was cancelled" + (f" by {m.group(1)}" if m and m.lastindex and m.group(1) else ""),
                                 "`irq retry ID` to run it again")),
]

TRACEBACK = re.compile(r"^Traceback \(most recent call last\)", re.M)
STATE_FIRST = {"OUT_OF_MEMORY", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "CANCELLED", "BOOT_FAIL", "LOST"}



def on_this_machine(d: Diagnosis) -> Diagnosis:
    """A diagnosis for a job that ran on this machine (the local backend): no modules here, so a
    command not found is a program missing from its PATH."""
    if d.pattern != "command_not_found":
        return d
    return Diagnosis(d.error, d.root_cause.replace(NO_MODULE, "it is not installed on this machine, or not on its PATH"),
                     "install it, or write its full path in the command; `irq check ID` shows the python a command "
                     "finds", d.pattern)

def diagnose(state: str, exit_code: int | None, log_tail: str, reason: str | None = None,
             trainer_error: str | None = None) -> Diagnosis:
    """The best explanation of one failed attempt."""
    log_tail = log_tail or ""
    if state in STATE_FIRST:
        for rule in CATALOGUE:
            if state in rule.states:
                m = rule.log.search(log_tail) if rule.log else None
                if rule.name == "cancelled" and reason and not (m and m.lastindex and m.group(1)):
                    by = reason.replace("by ", "")
                    return _d("cancelled", f"CANCELLED by {by}", f"the job was cancelled by {by}", "`irq retry ID` to run it again")
                return rule.build(m, log_tail)
    for rule in CATALOGUE:
        if rule.log is None:
            continue
        m = rule.log.search(log_tail)
        if m:
            d = rule.build(m, log_tail)
            if rule.name != "traceback" and TRACEBACK.search(log_tail):
                frame = _traceback(None, log_tail).root_cause.removeprefix("Python exception raised at ")
                d = Diagnosis(d.error, f"{d.root_cause} (raised at {frame})", d.fix, d.pattern)
            return d
    if state == "COMPLETED":
        return _d("no_results", "the job completed but wrote no metrics.json",
                  trainer_error or "the run directory holds no results", "`irq log ID` shows the job's output")
    tail = "\n".join(log_tail.rstrip().splitlines()[-5:])
    if exit_code == 127:  # the shell's code for a command it could not find, whatever its wording
        return _d("command_not_found", "exit code 127: a command was not found",
                  "a command the job runs is not on its PATH (the last lines of the log name it):\n" + tail,
                  "load the module that provides it (irq.toml modules), then `irq check ID`")
    if trainer_error:  # the job's own word (status.json) is the best cause there is
        return _d("job_reported", f"{state} (exit code {exit_code}): {trainer_error}",
                  f"the job reported: {trainer_error}", "`irq log ID` shows the job's output")
    return _d("unknown", f"{state} (exit code {exit_code})",
              "unknown: last lines of the log:\n" + tail if tail else "unknown (the job left no log)",
              "`irq log ID` shows the job's output")
