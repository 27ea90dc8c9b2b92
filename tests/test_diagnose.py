"""Every FAILED attempt gets an error, a root cause and a fix from a catalogue of known
failures, matched on the job's log and the scheduler's state. These logs are recorded from
real jobs (the SLURM cluster tests produce the ones a loopback cluster can)."""
from __future__ import annotations

import pytest

from irq.policy.diagnose import diagnose

TRACEBACK = """\
irq: job 12 of Q-003 on vm at 2026-11-23T17:00:00Z
Traceback (most recent call last):
  File "/tmp/irq-job-12/trainer/__main__.py", line 5, in <module>
    main()
  File "/tmp/irq-job-12/trainer/train.py", line 88, in train
    loss = objective(batch)
ValueError: shapes (256,100) and (256,400) not aligned
irq: trainer exited with 1
"""

CASES = [
    ("FAILED", 127, "/var/spool/slurmd/job55131103/slurm_script: line 14: python: command not found\n",
     "command_not_found", "`python: command not found`"),
    ("FAILED", 3, 'Lmod has detected the following error:  The following module(s) are unknown: "python/3.9"\n',
     "module_missing", "Module not found - `python/3.9` doesn't exist on cluster"),
    ("FAILED", 2, "python: can't open file '/tmp/irq-job-9/experiments/matrix_inversion_mining.py': [Errno 2] No such file or directory\n",
     "file_missing", "File not found - `/tmp/irq-job-9/experiments/matrix_inversion_mining.py` doesn't exist in the job's clone"),
    ("FAILED", 4, "irq: job 7 of lr-01 on vm at 2026-12-03T19:30:23Z\n/tmp/tmp56x68gx5/job.sbatch: line 20: cd: "
     "/tmp/tmp56x68gx5/scratch/irq-job-7/my experiments: No such file or directory\nirq: folder my experiments not "
     "found in commit 037bcc38a06b0d796381eea9d72a3edc8868349e of /tmp/tmp56x68gx5/mono.git\n",
     "project_folder_missing", "folder my experiments not found in commit 037bcc38a06b0d796381eea9d72a3edc8868349e"),
    ("FAILED", 1, TRACEBACK, "traceback", "ValueError: shapes (256,100) and (256,400) not aligned"),
    ("FAILED", 1, "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB\n", "cuda_oom", "CUDA out of memory"),
    ("FAILED", 1, "RuntimeError: Found no NVIDIA driver on your system.\n", "cuda_unavailable",
     "CUDA unavailable: Found no NVIDIA driver"),
    ("FAILED", 3, "step 420 | loss nan\nerror: NaN loss at step 420\n", "nan_loss", "NaN loss at step 420"),
    ("OUT_OF_MEMORY", 0, "slurmstepd: error: Detected 1 oom_kill event in StepId=77.batch.\n", "oom_killed",
     "OUT_OF_MEMORY: the job exceeded its memory limit"),
    ("TIMEOUT", 0, "slurmstepd: error: *** JOB 78 ON vm CANCELLED AT 2026-11-23T17:01:05 DUE TO TIME LIMIT ***\n",
     "timeout", "TIMEOUT: the job reached its time limit"),
    ("NODE_FAIL", 0, "", "node_fail", "NODE_FAIL: the node running the job failed"),
    ("PREEMPTED", 0, "slurmstepd: error: *** JOB 80 ON vm CANCELLED AT 2026-11-23T17:01:05 DUE TO PREEMPTION ***\n",
     "preempted", "PREEMPTED: a higher-priority job took the node"),
    ("CANCELLED", 0, "slurmstepd: error: *** JOB 81 ON vm CANCELLED AT 2026-11-23T17:01:05 ***\n", "cancelled", "CANCELLED"),
]


@pytest.mark.parametrize("state, code, log, pattern, error", CASES, ids=[c[3] for c in CASES])
def test_known_failures(state, code, log, pattern, error):
    d = diagnose(state, code, log)
    assert d.pattern == pattern
    assert d.error == error
    assert d.root_cause and d.fix


def test_a_traceback_names_its_last_frame():
    d = diagnose("FAILED", 1, TRACEBACK)
    assert 'File "/tmp/irq-job-12/trainer/train.py", line 88, in train' in d.root_cause


def test_a_job_killed_for_memory_that_exits_zero_is_still_out_of_memory():
    d = diagnose("OUT_OF_MEMORY", 0, "all went well, apparently\n")
    assert d.pattern == "oom_killed"


def test_who_cancelled_it_when_known():
    d = diagnose("CANCELLED", 0, "", reason="by 1001")
    assert d.error == "CANCELLED by 1001"


def test_an_unknown_failure_shows_the_last_lines_of_its_log():
    log = "\n".join(f"line {i}" for i in range(20)) + "\nsomething odd happened\n"
    d = diagnose("FAILED", 9, log)
    assert d.pattern == "unknown" and d.error == "FAILED (exit code 9)"
    assert d.root_cause.endswith("line 16\nline 17\nline 18\nline 19\nsomething odd happened")


def test_completed_without_results():
    d = diagnose("COMPLETED", 0, "irq: trainer exited with 0\n", trainer_error=None)
    assert d.pattern == "no_results"


MISSING_TORCH = """\
irq: job 77 of Q-004 on vm at 2026-12-03T16:00:00Z
Traceback (most recent call last):
  File "<frozen runpy>", line 198, in _run_module_as_main
  File "/tmp/irq-job-77/trainer/__main__.py", line 3, in <module>
    import torch
ModuleNotFoundError: No module named 'torch'
irq: trainer exited with 1
"""


def test_a_missing_python_package_is_an_environment_problem_with_an_environment_fix():
    d = diagnose("FAILED", 1, MISSING_TORCH)
    assert d.pattern == "python_package_missing"
    assert d.error == "ModuleNotFoundError: No module named 'torch'"
    assert "environment" in d.root_cause and "`torch`" in d.root_cause
    assert "pip install torch" in d.fix and "commit" not in d.fix.replace("no commit needed", "")
    sub = diagnose("FAILED", 1, "ModuleNotFoundError: No module named 'numpy.core'\n")
    assert sub.pattern == "python_package_missing" and "pip install numpy`" in sub.fix


@pytest.mark.parametrize("log", [
    "setting soft memory limit to 4GB\nassertion failed: shapes differ\n",
    "per-batch time limit: 5s\nbad input\n",
    "early stopping: CANCELLED remaining epochs\n",
])
def test_a_log_that_merely_mentions_a_limit_or_a_cancel_is_no_such_failure(log):
    """A FAILED job whose output said "memory limit", "time limit" or "CANCELLED" was diagnosed
    OUT_OF_MEMORY, TIMEOUT or CANCELLED, with fixes that do not apply."""
    d = diagnose("FAILED", 1, log)
    assert d.pattern == "unknown" and d.error == "FAILED (exit code 1)", d


def test_a_command_sh_cannot_find_is_command_not_found():
    """dash's wording ("train.sh: 7: tool: not found"), and exit 127 whatever the wording."""
    d = diagnose("FAILED", 127, "train.sh: 7: nonexistent_tool: not found\n")
    assert d.pattern == "command_not_found" and d.error == "`nonexistent_tool: command not found`"
    d = diagnose("FAILED", 127, "zsh: no such program: nonexistent_tool\n")
    assert d.pattern == "command_not_found" and "nonexistent_tool" in d.root_cause


@pytest.mark.parametrize("state, log", [
    ("TIMEOUT", "*** JOB 78 ON vm CANCELLED AT 2026-11-23T17:01:05 DUE TO TIME LIMIT ***\n"),
    ("OUT_OF_MEMORY", "slurmstepd: error: Detected 1 oom_kill event in StepId=77.batch.\n"),
])
def test_the_fix_for_a_limit_is_one_a_person_can_follow(state, log):
    """It said to raise the experiment's resources, which `irq edit` refuses once it ran."""
    fix = diagnose(state, 0, log).fix
    assert "irq add NEW" in fix and "--retry-on" in fix and "resources" not in fix


def test_a_failure_the_job_explained_in_status_json_has_that_as_its_root_cause():
    """status.json's `{"status": "failed", "error": ...}` reached the error line, but the root cause
    still read "unknown: last lines of the log"."""
    d = diagnose("FAILED", 1, "step 10\nstep 20\n", trainer_error="dataset shard 3 is corrupt")
    assert d.error == "FAILED (exit code 1): dataset shard 3 is corrupt"
    assert d.root_cause == "the job reported: dataset shard 3 is corrupt" and d.pattern == "job_reported"
    assert diagnose("FAILED", 1, "step 10\n").root_cause.startswith("unknown: last lines of the log")
