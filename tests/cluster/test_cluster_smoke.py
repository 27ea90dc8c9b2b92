"""The loopback SLURM cluster behaves like the production cluster irq talks to.

Everything goes over real SSH with paramiko (host key checked against the cluster's
known_hosts, RejectPolicy), as irq's client does. Run:

    .venv/bin/python -m pytest tests/cluster -m cluster -x -q
"""
from __future__ import annotations

import os
import re
import time
from datetime import datetime, timedelta

import paramiko
import pytest

from tests.cluster.fixture import (
    Cluster,  # the `slurm_cluster` fixture comes from tests/conftest.py
)

pytestmark = pytest.mark.cluster

QOS_REFUSAL = ("sbatch: error: QOSMaxSubmitJobPerUserLimit",
               "sbatch: error: Batch job submission failed: Job violates accounting/QOS policy "
               "(job submit limit, user's size and/or time limits)")


class Remote:
    """One paramiko connection as the test user."""

    def __init__(self, cluster: Cluster, known_hosts: str | None = None) -> None:
        self.cluster = cluster
        self.client = paramiko.SSHClient()
        self.client.load_host_keys(known_hosts or str(cluster.known_hosts))
        self.client.set_missing_host_key_policy(paramiko.RejectPolicy())
        self.client.connect(cluster.host, port=cluster.port, username=cluster.user,
                            key_filename=str(cluster.key), look_for_keys=False,
                            allow_agent=False, timeout=10)

    def run(self, cmd: str, timeout: float = 60) -> tuple[int, str, str]:
        _, stdout, stderr = self.client.exec_command(cmd, timeout=timeout)
        out, err = stdout.read().decode(), stderr.read().decode()
        return stdout.channel.recv_exit_status(), out, err

    def write(self, path: str, text: str) -> None:
        with self.client.open_sftp() as sftp, sftp.open(path, "w") as fh:
            fh.write(text)

    def read(self, path: str) -> str:
        with self.client.open_sftp() as sftp, sftp.open(path) as fh:
            return fh.read().decode()

    def sbatch(self, args: str) -> str:
        code, out, err = self.run(f"sbatch --parsable {args}")
        assert code == 0, (out, err)
        return out.strip().split(";")[0]

    def close(self) -> None:
        self.client.close()


@pytest.fixture
def remote(slurm_cluster: Cluster):
    slurm_cluster.cancel_all()
    r = Remote(slurm_cluster)
    yield r
    r.close()
    slurm_cluster.cancel_all()


@pytest.fixture
def since() -> datetime:
    return datetime.now() - timedelta(seconds=5)


@pytest.fixture
def jobdir(remote: Remote, slurm_cluster: Cluster, request) -> str:
    path = f"{slurm_cluster.workdir}/smoke/{request.node.name}"
    code, _, err = remote.run(f"rm -rf {path} && mkdir -p {path}")
    assert code == 0, err
    return path


def test_host_key_is_checked(slurm_cluster: Cluster, tmp_path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(paramiko.SSHException, match="not found in known_hosts"):
        Remote(slurm_cluster, known_hosts=str(empty))


def test_login_environment(remote: Remote, slurm_cluster: Cluster) -> None:
    # A non-interactive command (what paramiko's exec_command runs): module yes, python no.
    code, out, err = remote.run("type -t module; module -t avail 2>&1; command -v python || echo no-python")
    assert code == 0, err
    assert out.splitlines()[0] == "function"
    assert slurm_cluster.python_module in out and slurm_cluster.cuda_module in out
    assert out.strip().endswith("no-python")
    code, out, err = remote.run(f"module load {slurm_cluster.python_module} && command -v python")
    assert code == 0 and out.strip().endswith("/bin/python"), (out, err)
    code, _, err = remote.run("module load python/3.9")
    assert code != 0 and "The following module(s) are unknown" in err


def test_sbatch_runs_to_completed(remote: Remote, slurm_cluster: Cluster, since, jobdir) -> None:
    job = remote.sbatch(f"-J smoke -D {jobdir} -o out.txt --wrap 'echo hello from $SLURM_JOB_ID'")
    assert re.fullmatch(r"\d+", job)
    row = slurm_cluster.wait_for_job(job, since)
    assert row["State"] == "COMPLETED" and row["ExitCode"] == "0:0", row
    # The same line over ssh, as irq polls it.
    code, out, _ = remote.run("sacct -X -P -n -o JobID,State,ExitCode,Start,End,Elapsed "
                              f"--starttime {since:%Y-%m-%dT%H:%M:%S} -j {job}")
    fields = out.strip().split("|")
    assert code == 0 and fields[:3] == [job, "COMPLETED", "0:0"], out
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", fields[3]) and fields[5].count(":") == 2
    assert remote.read(f"{jobdir}/out.txt").strip() == f"hello from {job}"


def test_qos_refuses_third_submission(remote: Remote, slurm_cluster: Cluster) -> None:
    first = remote.sbatch("--hold --wrap 'sleep 60'")
    second = remote.sbatch("--hold --wrap 'sleep 60'")
    code, out, err = remote.run("sbatch --parsable --wrap 'sleep 60'")
    assert code == 1 and out == ""
    assert err.strip().splitlines() == list(QOS_REFUSAL)
    queued = {j["JobID"] for j in slurm_cluster.squeue_jobs()}
    assert queued == {first, second}
    # An array counts one submission per task: with the default QOS, 4 tasks are refused too.
    remote.run(f"scancel {first} {second}")
    slurm_cluster.cancel_all()
    code, _, err = remote.run("sbatch --parsable --array=0-3%2 --wrap true")
    assert code == 1 and QOS_REFUSAL[0] in err


def test_array_tasks(remote: Remote, slurm_cluster: Cluster, since, jobdir) -> None:
    # QOS "normal" (no submit limit) is also allowed for the test user.
    job = remote.sbatch(f"--qos=normal --array=0-3%2 -D {jobdir} -o 'task-%a.out' "
                        "--wrap 'sleep 2; echo task $SLURM_ARRAY_TASK_ID'")
    time.sleep(1)
    code, out, _ = remote.run("squeue -h -o '%i|%T|%r'")
    assert code == 0
    pending = [line for line in out.splitlines() if "PENDING" in line]
    assert all(line.endswith("JobArrayTaskLimit") for line in pending), out
    assert sum("RUNNING" in line for line in out.splitlines()) <= 2, out
    for task in range(4):
        row = slurm_cluster.wait_for_job(f"{job}_{task}", since)
        assert row["State"] == "COMPLETED", row
    ids = {r["JobID"] for r in slurm_cluster.sacct_jobs(since) if r["JobID"].startswith(f"{job}_")}
    assert ids == {f"{job}_{t}" for t in range(4)}
    assert remote.read(f"{jobdir}/task-3.out").strip() == "task 3"


def test_modules_in_batch_jobs(remote: Remote, slurm_cluster: Cluster, since, jobdir) -> None:
    scripts = {
        "torch": f"module load {slurm_cluster.python_module} {slurm_cluster.cuda_module}\n"
                 "python -c 'import torch, numpy; print(\"torch\", torch.__version__)'\n",
        "badmodule": "module load python/3.9\n",
        "nomodule": "python -c 'print(1)'\n",
    }
    jobs = {}
    for name, body in scripts.items():
        remote.write(f"{jobdir}/{name}.sbatch",
                     "#!/bin/bash\n#SBATCH --time=00:05:00\n#SBATCH --gres=gpu:1\n" + body)
        jobs[name] = remote.sbatch(f"--qos=normal -D {jobdir} -o {name}.out {name}.sbatch")
    rows = {name: slurm_cluster.wait_for_job(job, since) for name, job in jobs.items()}

    assert rows["torch"]["State"] == "COMPLETED", rows
    assert remote.read(f"{jobdir}/torch.out").startswith("torch 2.")
    assert (rows["badmodule"]["State"], rows["badmodule"]["ExitCode"]) == ("FAILED", "1:0"), rows
    assert "The following module(s) are unknown" in remote.read(f"{jobdir}/badmodule.out")
    assert (rows["nomodule"]["State"], rows["nomodule"]["ExitCode"]) == ("FAILED", "127:0"), rows
    assert "python: command not found" in remote.read(f"{jobdir}/nomodule.out")


def test_job_over_memory_is_killed(remote: Remote, slurm_cluster: Cluster, since, jobdir) -> None:
    remote.write(f"{jobdir}/oom.sbatch", (
        "#!/bin/bash\n#SBATCH --mem=100M\n"
        f"module load {slurm_cluster.python_module}\n"
        "python -c 'import time; b = b\"x\" * (600 * 2**20); time.sleep(30)'\n"))
    job = remote.sbatch(f"-D {jobdir} -o oom.out oom.sbatch")
    row = slurm_cluster.wait_for_job(job, since, timeout=45)
    assert row["State"] == slurm_cluster.oom_state, row
    log = remote.read(f"{jobdir}/oom.out")
    if slurm_cluster.memory_enforcement == "cgroup":
        assert row["ExitCode"] == "0:125", row
        assert "oom-kill event" in log
    else:
        assert row["ExitCode"] == "0:9", row
        assert "Exceeded job memory limit" in log


def test_partition_limits_refused_at_submit(remote: Remote) -> None:
    code, _, err = remote.run("sbatch --parsable --time=03:00:00 --wrap true")
    assert code == 1
    assert "Requested time limit is invalid (missing or exceeds some limit)" in err
    code, _, err = remote.run("sbatch --parsable --mem=900G --wrap true")
    assert code == 1
    assert "Requested node configuration is not available" in err


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("IRQ_CLUSTER_SLOW") != "1",
                    reason="takes 60-90 s; set IRQ_CLUSTER_SLOW=1")
def test_time_limit(remote: Remote, slurm_cluster: Cluster, since) -> None:
    job = remote.sbatch("--time=00:01:00 --wrap 'sleep 300'")
    row = slurm_cluster.wait_for_job(job, since, timeout=150)
    assert (row["State"], row["ExitCode"]) == ("TIMEOUT", "0:0"), row
