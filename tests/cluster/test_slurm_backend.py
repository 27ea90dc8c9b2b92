"""The SLURM-over-SSH backend against the real loopback cluster (tests/cluster/cluster.sh).

Nothing is faked: irq's own SSHSession logs in over 127.0.0.1:2222, sbatch/squeue/sacct/
sacctmgr/scancel answer as on a production cluster. Most jobs are `--hold` (queued, never run)
or a couple of seconds long, so the file stays well under three minutes.

    IRQ_CLUSTER_KEEP=1 .venv/bin/python -m pytest tests/cluster/test_slurm_backend.py -q
"""
from __future__ import annotations

import dataclasses
import re
import subprocess
import time
import uuid
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import paramiko
import pytest

from irq import errors
from irq.backends.base import JobInfo, JobRequest
from irq.backends.slurm import SlurmBackend
from irq.backends.ssh.hostkeys import fingerprint, trust_host
from irq.backends.ssh.session import SSHSession, fetch_host_key
from irq.config import ClusterConfig
from irq.ledger.states import is_active
from tests.cluster.fixture import Cluster

pytestmark = pytest.mark.cluster


def script(body: str, *sbatch: str) -> str:
    lines = ["#!/bin/bash", *(f"#SBATCH {o}" for o in sbatch), body, ""]
    return "\n".join(lines)


def now() -> datetime:
    return datetime.now(timezone.utc)


@pytest.fixture
def cluster(slurm_cluster: Cluster) -> Cluster:
    slurm_cluster.cancel_all()
    return slurm_cluster


@pytest.fixture
def cfg(cluster: Cluster, tmp_path: Path, control_dir: Path) -> ClusterConfig:
    empty = tmp_path / "ssh_config"  # never the machine's ~/.ssh/config
    empty.write_text("")
    return ClusterConfig(
        name="loopback", host=cluster.host, port=cluster.port, user=cluster.user,
        identity_file=str(cluster.key), known_hosts=str(cluster.known_hosts), ssh_config=str(empty),
        repo_url="unused", workdir=str(cluster.workdir), scratch=str(cluster.scratch), connect_timeout=10,
    )


@pytest.fixture
def backend(cfg: ClusterConfig):
    b = SlurmBackend(cfg)
    yield b
    b.close()


@pytest.fixture
def run_dir(cluster: Cluster) -> str:
    return f"{cluster.workdir}/backend-tests/{uuid.uuid4().hex[:8]}"


def request(run_dir: str, body: str, *sbatch: str, name: str | None = None, array: str | None = None) -> JobRequest:
    token = uuid.uuid4().hex[:10]
    return JobRequest(token=token, name=name or f"T-001.{token}", script=script(body, *sbatch),
                      run_dir=run_dir, array=array)


def poll(backend: SlurmBackend, job_id: str, since: datetime, done, timeout: float = 60) -> list[list[JobInfo]]:
    """Query every 0.3 s until done(rows); return every answer seen."""
    seen: list[list[JobInfo]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = backend.query([job_id], since).get(job_id, [])
        seen.append(rows)
        if rows and done(rows):
            return seen
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} not done after {timeout}s; last: {seen[-1:]}")


def all_final(rows: list[JobInfo]) -> bool:
    return all(r.state in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY") for r in rows)


def user_job_ids(cluster: Cluster) -> list[str]:
    return [j["JobID"] for j in cluster.squeue_jobs(array_tasks=True)]


# ---------------------------------------------------------------------- jobs
def test_submit_runs_and_completes(cluster: Cluster, backend: SlurmBackend, run_dir: str) -> None:
    since = now()
    job_id = backend.submit(request(run_dir, "echo hi from irq; sleep 2"))
    assert job_id.isdigit()
    seen = poll(backend, job_id, since, all_final)
    states = [rows[0].state for rows in seen]
    assert states[0] in ("PENDING", "RUNNING"), states
    (final,) = seen[-1]
    assert (final.state, final.exit_code, final.signal) == ("COMPLETED", 0, 0)
    assert final.start and final.end and final.start <= final.end
    # sacct's times are read as UTC (irq runs it under TZ=UTC0): they match this clock
    assert abs(final.start - since) < timedelta(minutes=2), (final.start, since)
    # the script landed in run_dir, and the log (sbatch's default name, in run_dir) is readable
    assert cluster.run_as_user(f"cat {run_dir}/job.sbatch").stdout.startswith("#!/bin/bash")
    assert "hi from irq" in backend.read_file(f"{run_dir}/slurm-{job_id}.out")
    # sacct agrees, independently of irq
    assert cluster.wait_for_job(job_id, since.astimezone().replace(tzinfo=None))["State"] == "COMPLETED"


def test_failing_script_is_failed_with_exit_code(cluster: Cluster, backend: SlurmBackend, run_dir: str) -> None:
    since = now()
    job_id = backend.submit(request(run_dir, "echo about to fail; exit 3"))
    (final,) = poll(backend, job_id, since, all_final)[-1]
    assert (final.state, final.exit_code, final.signal) == ("FAILED", 3, 0)


def test_slot_limit_from_sacctmgr_and_nothing_submitted(cluster: Cluster, backend: SlurmBackend,
                                                        run_dir: str) -> None:
    assert backend.cfg.job_limit is None
    first = backend.slots()
    assert (first.limit, first.used) == (2, 0)
    assert "twojobs" in first.source and "MaxSubmitJobsPerUser" in first.source
    a = backend.submit(request(run_dir, "true", "--hold"))
    b = backend.submit(request(run_dir, "true", "--hold"))
    s = backend.slots()
    assert (s.limit, s.used, s.free) == (2, 2, 0)
    with pytest.raises(errors.SlotLimit) as exc:
        backend.submit(request(run_dir, "true", "--hold"))
    assert "QOSMaxSubmitJobPerUserLimit" in exc.value.message
    assert sorted(user_job_ids(cluster)) == sorted([a, b])
    # the limit was read once per session
    assert backend.counter.calls.count("sacctmgr") == 3


def test_slots_count_jobs_submitted_outside_irq(cluster: Cluster, cfg: ClusterConfig, run_dir: str) -> None:
    cluster.run_as_user("sbatch --hold --qos=normal -J outside --wrap 'true' -o /dev/null", check=True)
    with SlurmBackend(replace(cfg, job_limit=5)) as b:
        s = b.slots()
    assert (s.limit, s.used, s.source) == (5, 1, "config")
    assert b.counter.calls == ["squeue"] and b.counter.round_trips == 1


def test_array_tasks_count_and_report_one_row_each(cluster: Cluster, backend: SlurmBackend, run_dir: str) -> None:
    # every task counts against MaxSubmitJobsPerUser=2: a 4-task array is refused under twojobs
    with pytest.raises(errors.SlotLimit):
        backend.submit(request(run_dir, "true", array="0-3%2"))
    assert user_job_ids(cluster) == []
    since = now()
    job_id = backend.submit(request(run_dir, "sleep 2", "--qos=normal", array="0-3%2"))
    assert backend.slots().used == 4  # pending tasks count one each
    seen = poll(backend, job_id, since, lambda rows: len(rows) == 4 and all_final(rows))
    waiting = [r for rows in seen for r in rows if r.reason == "JobArrayTaskLimit"]
    assert waiting and all(r.state == "PENDING" for r in waiting)
    # never a final state other than COMPLETED on the way (a bare "ID" row may stand in for
    # tasks whose accounting record is not written yet: it is COMPLETING, not final)
    assert all(r.state == "COMPLETED" or is_active(r.state) for rows in seen for r in rows)
    final = seen[-1]
    assert [r.job_id for r in final] == [f"{job_id}_{i}" for i in range(4)]
    assert [r.task_id for r in final] == [0, 1, 2, 3]
    assert all(r.state == "COMPLETED" and r.exit_code == 0 and r.end for r in final)


def test_cancel(cluster: Cluster, backend: SlurmBackend, run_dir: str) -> None:
    since = now()
    job_id = backend.submit(request(run_dir, "sleep 60"))
    backend.cancel(job_id)
    (final,) = poll(backend, job_id, since, all_final)[-1]
    assert final.state == "CANCELLED"
    assert final.reason and final.reason.startswith("by ")
    backend.cancel(job_id)  # cancelling a finished job again is harmless


def test_refusals_are_submission_refused(cluster: Cluster, backend: SlurmBackend, run_dir: str) -> None:
    with pytest.raises(errors.SubmissionRefused) as exc:
        backend.submit(request(run_dir, "true", "--partition=nope"))
    assert "invalid partition" in exc.value.message.lower()
    with pytest.raises(errors.SubmissionRefused) as exc:
        backend.submit(request(run_dir, "true", "--time=03:00:00"))
    assert "time limit" in exc.value.message.lower()
    assert user_job_ids(cluster) == []


def test_shell_metacharacters_in_run_dir_and_name(cluster: Cluster, backend: SlurmBackend) -> None:
    marker = Path(f"/tmp/irq-pwned-{uuid.uuid4().hex[:8]}")
    nasty = f"a b 'q' \"d\" $(touch {marker}); `touch {marker}` & | > x"
    run_dir = f"{cluster.workdir}/backend-tests/{nasty}"
    name = f"T-002.{uuid.uuid4().hex[:6]} ;$(touch {marker}) 'x'"
    since = now()
    job_id = backend.submit(request(run_dir, "echo ran", name=name))
    (final,) = poll(backend, job_id, since, all_final)[-1]
    assert final.state == "COMPLETED"
    assert final.name == name
    assert backend.find([name], since) == {name: job_id}
    assert backend.read_file(f"{run_dir}/slurm-{job_id}.out").strip() == "ran"
    assert not marker.exists()
    assert not Path(f"{cluster.home}/x").exists()


def test_query_costs_one_round_trip_for_one_or_five_jobs(cluster: Cluster, backend: SlurmBackend,
                                                         run_dir: str) -> None:
    since = now()
    ids = [backend.submit(request(run_dir, "true", "--hold", "--qos=normal")) for _ in range(5)]
    before = (backend.counter.round_trips, len(backend.counter))
    one = backend.query(ids[:1], since)
    mid = (backend.counter.round_trips, len(backend.counter))
    five = backend.query(ids, since)
    after = (backend.counter.round_trips, len(backend.counter))
    assert mid[0] - before[0] == after[0] - mid[0] == 1
    assert mid[1] - before[1] == after[1] - mid[1] == 1  # squeue shows every job live: sacct does not run
    assert list(one) == ids[:1] and sorted(five) == sorted(ids)
    assert all(rows[0].state == "PENDING" and rows[0].reason for rows in five.values())
    assert backend.query([], since) == {} and backend.counter.round_trips == after[0]
    backend.cancel(ids[0])  # once gone from squeue, its final state is sacct's
    c = backend.counter
    deadline = time.monotonic() + 60
    while True:
        start = (c.round_trips, c.calls.count("squeue"), c.calls.count("sacct"))
        again = backend.query(ids, since)
        end = (c.round_trips, c.calls.count("squeue"), c.calls.count("sacct"))
        assert [b - a for a, b in zip(start[:2], end[:2])] == [1, 1]  # one round trip, squeue once
        if again[ids[0]][0].state == "CANCELLED":
            break
        assert time.monotonic() < deadline, again[ids[0]]
        time.sleep(1)
    assert end[2] - start[2] == 1  # in that same round trip, sacct said so
    assert all(again[j][0].state == "PENDING" for j in ids[1:])


def test_find_adopts_by_name(cluster: Cluster, backend: SlurmBackend, run_dir: str) -> None:
    since = now()
    req = request(run_dir, "true", "--hold")
    job_id = backend.submit(req)
    assert backend.find([req.name, "T-999.nothing"], since) == {req.name: job_id}


def test_ran_finds_the_log_a_job_wrote_in_its_run_folder(cluster: Cluster, backend: SlurmBackend, run_dir: str) -> None:
    """The evidence reconcile asks for when no job carries an attempt's token (accounting late, or
    a job recorded without its name): the job's log in the run folder, all folders in one round trip."""
    since = now()
    job_id = backend.submit(request(run_dir, "echo ran"))
    poll(backend, job_id, since, all_final)
    empty, odd = f"{run_dir}-empty", f"{run_dir}-it's $(touch pwned)"
    assert backend.remote.run(["mkdir", "-p", empty, odd])[0] == 0
    before = backend.remote.counter.round_trips
    assert backend.ran([run_dir, empty, odd, f"{run_dir}-missing"]) == {run_dir: job_id}
    assert backend.remote.counter.round_trips - before == 1
    assert cluster.run_as_user("test -e ~/pwned || echo clean").stdout.strip() == "clean"  # a name, never run


# ---------------------------------------------------------------------- files
def test_fetch_copies_run_dir_without_checkpoints(cluster: Cluster, backend: SlurmBackend, run_dir: str,
                                                  tmp_path: Path) -> None:
    s = backend.remote
    rc, _, err = s.run(["mkdir", "-p", f"{run_dir}/seed_0", f"{run_dir}/checkpoints"])
    assert rc == 0, err
    s.put_text(f"{run_dir}/metrics.json", '{"mse": 0.07}\n')
    s.put_text(f"{run_dir}/seed_0/log.txt", "step 1\n")
    s.put_text(f"{run_dir}/checkpoints/model.pt", "big")
    got = backend.fetch(run_dir, tmp_path / "out")
    rel = sorted(str(p.relative_to(tmp_path / "out")) for p in got)
    assert rel == ["metrics.json", "seed_0/log.txt"]
    assert (tmp_path / "out" / "metrics.json").read_text() == '{"mse": 0.07}\n'
    assert not (tmp_path / "out" / "checkpoints").exists()
    assert backend.fetch(f"{run_dir}/missing", tmp_path / "none") == []


@pytest.mark.parametrize("transport", ["openssh", "paramiko"])
def test_fetch_copies_files_never_what_links_point_at(cfg: ClusterConfig, run_dir: str, tmp_path: Path,
                                                      transport: str) -> None:
    """Over paramiko, a folder link was followed: a run that left `ln -s . loop` was copied into
    itself level after level, and a link to a dataset copied the dataset. Both transports copy the
    run's own files, as the local backend does."""
    b = SlurmBackend(dataclasses.replace(cfg, transport=transport))
    try:
        s = b.remote
        rc, _, err = s.run(["sh", "-c", 'mkdir -p "$1/data" "$1/run" && echo big > "$1/data/shard" && cd "$1/run" '
                            '&& echo "{}" > metrics.json && ln -s . loop && ln -s ../data data && ln -s metrics.json m',
                            "sh", run_dir])
        assert rc == 0, err
        got = b.fetch(f"{run_dir}/run", tmp_path / "out")
        assert sorted(str(p.relative_to(tmp_path / "out")) for p in got) == ["metrics.json"]
    finally:
        b.close()


def test_a_job_script_that_cannot_be_written_is_a_fault_not_a_refusal(backend: SlurmBackend) -> None:
    """mkdir or the script's write failing (a full quota, a stale mount) was a refusal: the
    experiment FAILED, and each next candidate failed the same way."""
    with pytest.raises(errors.BackendError) as got:
        backend.submit(request("/proc/irq-no-such/run", "true"))
    assert not isinstance(got.value, errors.SubmissionRefused)
    assert "cannot write the job script in /proc/irq-no-such/run" in got.value.message


def test_a_command_killed_by_a_signal_is_a_fault_over_paramiko(cfg: ClusterConfig) -> None:
    """paramiko keeps no exit-signal: exit -1 came back as an exit code, and an sbatch killed that
    way read as the scheduler's refusal (never adopted, though the job may exist)."""
    b = SlurmBackend(dataclasses.replace(cfg, transport="paramiko"))
    try:
        with pytest.raises(errors.BackendError, match="ended without an exit status"):
            b.remote.run(["sh", "-c", 'kill -9 "$$"'])
        assert b.remote.run(["true"])[0] == 0  # and the next command goes on
    finally:
        b.close()


def test_read_file_tails_a_log(cluster: Cluster, backend: SlurmBackend, run_dir: str) -> None:
    backend.remote.run(["mkdir", "-p", run_dir])
    text = "".join(f"line {i}\n" for i in range(20000))
    backend.remote.put_text(f"{run_dir}/big.log", text)
    tail = backend.read_file(f"{run_dir}/big.log", max_bytes=100)
    assert tail == text[-100:] and tail.endswith("line 19999\n")
    assert backend.read_file(f"{run_dir}/big.log") == text[-65536:]
    assert backend.read_file(f"{run_dir}/nope.log") is None


# ---------------------------------------------------------------------- SSH
def test_alias_from_ssh_config(cluster: Cluster) -> None:
    cfg = ClusterConfig(name="loopback", host=cluster.ssh_alias, ssh_config=str(cluster.ssh_config_path),
                        repo_url="unused", workdir=str(cluster.workdir))
    with SSHSession(cfg) as s:
        assert (s.endpoint.hostname, s.endpoint.port, s.user) == (cluster.host, cluster.port, cluster.user)
        assert s.run(["whoami"])[1].strip() == cluster.user
    with SlurmBackend(cfg) as b:
        assert b.slots().limit == 2


def test_proxy_jump_one_hop(cluster: Cluster, tmp_path: Path) -> None:
    """ProxyJump through the cluster's own sshd (a direct-tcpip channel) back to itself."""
    conf = tmp_path / "ssh_config"
    conf.write_text(cluster.ssh_config_path.read_text() + f"""
Host behind-bastion
    HostName {cluster.host}
    Port {cluster.port}
    User {cluster.user}
    IdentityFile {cluster.key}
    UserKnownHostsFile {cluster.known_hosts}
    ProxyJump {cluster.ssh_alias}
""")
    cfg = ClusterConfig(name="loopback", host="behind-bastion", ssh_config=str(conf), repo_url="unused",
                        workdir=str(cluster.workdir))
    with SSHSession(cfg) as s:
        rc, out, _ = s.run(["sh", "-c", 'echo "$SSH_CONNECTION"'])
        assert rc == 0 and out.split()[0] == "127.0.0.1" and len(s._hops) == 1


def test_unknown_host_key_is_refused_with_fingerprint(cluster: Cluster, cfg: ClusterConfig, tmp_path: Path) -> None:
    kh = tmp_path / "known_hosts"
    kh.write_text("")
    cfg = replace(cfg, known_hosts=str(kh))
    expected = subprocess.run(["ssh-keygen", "-lf", str(cluster.known_hosts)], capture_output=True,
                              text=True, check=True).stdout.split()[1]
    with pytest.raises(errors.HostKeyError) as exc:
        SSHSession(cfg).run(["true"])
    assert expected in exc.value.message and f"[{cluster.host}]:{cluster.port}" in exc.value.message
    assert "irq trust loopback" in exc.value.hint
    # what `irq trust` does: show the fingerprint, then record the key
    key_type, fp, key = fetch_host_key(cfg)
    assert (key_type, fp) == ("ssh-ed25519", expected)
    assert trust_host(cfg, key) == kh
    assert trust_host(cfg, key) is None  # already there
    assert kh.read_text().startswith(f"[{cluster.host}]:{cluster.port} ssh-ed25519 ")
    with SSHSession(cfg) as s:
        assert s.run(["true"])[0] == 0


def test_changed_host_key_is_refused_loudly(cluster: Cluster, cfg: ClusterConfig, tmp_path: Path) -> None:
    other = paramiko.Ed25519Key(data=_new_ed25519_blob(tmp_path))
    kh = tmp_path / "known_hosts"
    kh.write_text(f"[{cluster.host}]:{cluster.port} ssh-ed25519 {other.get_base64()}\n")
    cfg = replace(cfg, known_hosts=str(kh))
    with pytest.raises(errors.HostKeyError) as exc:
        SSHSession(cfg).run(["true"])
    msg = exc.value.message
    assert "CHANGED" in msg and "man-in-the-middle" in msg and fingerprint(other) in msg
    assert "ssh-keygen -R" in exc.value.hint
    with pytest.raises(errors.HostKeyError):
        trust_host(cfg, fetch_host_key(cfg)[2])  # trust never replaces a recorded key


def _new_ed25519_blob(tmp_path: Path) -> bytes:
    key = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return paramiko.PKey.from_path(str(key)).asbytes()


def test_command_that_hangs_raises_and_session_recovers(cluster: Cluster, cfg: ClusterConfig) -> None:
    with SSHSession(cfg) as s:
        t0 = time.monotonic()
        with pytest.raises(errors.BackendError) as exc:
            s.run(["sleep", "30"], timeout=1.5)
        assert time.monotonic() - t0 < 5
        assert "within 1.5s" in exc.value.message
        assert s.run(["echo", "back"])[1] == "back\n"  # reconnects


def test_sshd_down_is_backend_error(cluster: Cluster, cfg: ClusterConfig) -> None:
    cluster.stop_sshd()
    try:
        t0 = time.monotonic()
        with pytest.raises(errors.BackendError) as exc:
            SlurmBackend(cfg).query(["1"], now())
        assert not isinstance(exc.value, (errors.HostKeyError, errors.AuthError))
        assert f"{cluster.host}:{cluster.port}" in exc.value.message and "refused" in exc.value.message
        assert exc.value.hint and time.monotonic() - t0 < 5
    finally:
        cluster.start_sshd()
    with SlurmBackend(cfg) as b:
        assert b.slots().used == 0


def test_wrong_key_is_auth_error(cluster: Cluster, cfg: ClusterConfig, tmp_path: Path) -> None:
    key = tmp_path / "id_other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    with pytest.raises(errors.AuthError) as exc:
        SSHSession(replace(cfg, identity_file=str(key))).run(["true"])
    assert re.search(r"refused the login", exc.value.message)
