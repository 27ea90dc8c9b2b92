"""SSH login without a cluster: an in-process paramiko SSH server on 127.0.0.1 speaking the real
protocol (host key check, publickey refused, keyboard-interactive password + one-time code);
plus the squeue/sacct/sacctmgr parsers on recorded output of the loopback SLURM 22.05 cluster."""
from __future__ import annotations

import socket
import subprocess
import threading
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import paramiko
import pytest

from irq import errors
from irq.backends.slurm_output import (
    classify_sbatch_error,
    expand_job_id,
    merge,
    parse_sacct,
    parse_sacctmgr_limit,
    parse_squeue,
    parse_time,
    split_sections,
)
from irq.backends.ssh.endpoint import Endpoint, resolve_endpoint
from irq.backends.ssh.hostkeys import check_host_key, fingerprint, trust_host
from irq.backends.ssh.session import SSHSession
from irq.config import ClusterConfig

PASSWORD, CODE = "correct horse", "123456"


class TwoFactorServer(paramiko.ServerInterface):
    """Allows keyboard-interactive only: a password prompt and a one-time-code prompt."""

    def __init__(self) -> None:
        self.answers: list[str] = []
        self.commands: list[bytes] = []
        self.exec_event = threading.Event()
        self.drop = False  # close the connection instead of answering the command

    def get_allowed_auths(self, username: str) -> str:
        return "publickey,keyboard-interactive"

    def check_auth_publickey(self, username, key) -> int:
        return paramiko.AUTH_FAILED

    def check_auth_interactive(self, username, submethods):
        q = paramiko.InteractiveQuery("Two-factor login", "Enter your password, then the code from your app.")
        q.add_prompt("Password: ", False)
        q.add_prompt("Verification code: ", True)
        return q

    def check_auth_interactive_response(self, responses) -> int:
        self.answers = list(responses)
        return paramiko.AUTH_SUCCESSFUL if self.answers == [PASSWORD, CODE] else paramiko.AUTH_FAILED

    def check_channel_request(self, kind, chanid) -> int:
        return paramiko.OPEN_SUCCEEDED if kind == "session" else paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_exec_request(self, channel, command) -> bool:
        self.commands.append(command)
        self.exec_event.set()
        return True


@pytest.fixture
def server(tmp_path: Path):
    """(port, host key, ServerInterface); serves one connection at a time until the test ends."""
    host_key = paramiko.Ed25519Key.from_private_key_file(_keygen(tmp_path / "host"))
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    listener.settimeout(0.2)
    iface = TwoFactorServer()
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except (socket.timeout, OSError):
                continue
            t = paramiko.Transport(conn)
            t.add_server_key(host_key)
            try:
                t.start_server(server=iface)
                chan = t.accept(5)
                if chan is not None and iface.exec_event.wait(5) and iface.drop:
                    iface.exec_event.clear()
                    t.close()  # the link dies mid-command: no output, no exit status
                elif chan is not None and iface.exec_event.is_set():
                    chan.sendall(b"hello from the login node\n")
                    chan.send_exit_status(0)
                    chan.close()
                    iface.exec_event.clear()
            except Exception:
                pass
            finally:
                while t.is_active() and not stop.is_set():
                    stop.wait(0.05)
                t.close()

    th = threading.Thread(target=serve, daemon=True)
    th.start()
    yield listener.getsockname()[1], host_key, iface
    stop.set()
    listener.close()
    th.join(5)


def _keygen(path: Path) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return str(path)


@pytest.fixture
def cfg(server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ClusterConfig:
    port, host_key, _ = server
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no default keys, no ~/.ssh/config
    kh = tmp_path / "known_hosts"
    kh.write_text(f"[127.0.0.1]:{port} {host_key.get_name()} {host_key.get_base64()}\n")
    empty = tmp_path / "ssh_config"
    empty.write_text("")
    return ClusterConfig(name="twofa", host="127.0.0.1", port=port, user="me", known_hosts=str(kh),
                         ssh_config=str(empty), repo_url="unused", workdir="/tmp", connect_timeout=5)


def test_keyboard_interactive_password_and_code(cfg: ClusterConfig, server) -> None:
    _, _, iface = server
    asked: list[tuple[str, str, list]] = []

    def prompt(title: str, instructions: str, prompts: list[tuple[str, bool]]) -> list[str]:
        asked.append((title, instructions, prompts))
        return [PASSWORD if "Password" in text else CODE for text, _ in prompts]

    with SSHSession(cfg, prompt=prompt) as s:
        rc, out, _ = s.run(["echo", "it's me"])
    assert (rc, out) == (0, "hello from the login node\n")
    assert iface.commands == [b"echo 'it'\"'\"'s me'"]
    # one round, both prompts; the password is not echoed, the code is
    assert asked == [("Two-factor login", "Enter your password, then the code from your app.",
                      [("Password: ", False), ("Verification code: ", True)])]
    assert iface.answers == [PASSWORD, CODE]


def test_a_connection_lost_mid_command_raises_and_the_next_call_reconnects(cfg: ClusterConfig, server) -> None:
    _, _, iface = server
    iface.drop = True
    prompt = lambda title, instr, prompts: [PASSWORD if "Password" in p else CODE for p, _ in prompts]  # noqa: E731
    with SSHSession(cfg, prompt=prompt) as s:
        with pytest.raises(errors.BackendError) as exc:
            s.run(["squeue"])
        assert exc.value.message == f"the connection to 127.0.0.1:{cfg.port} dropped during squeue"
        assert "next command or daemon cycle reconnects" in exc.value.hint
        iface.drop = False
        assert s.run(["echo", "again"]) == (0, "hello from the login node\n", "")
        assert s.counter.calls == ["squeue", "echo"] and s.counter.round_trips == 2


def test_wrong_code_is_auth_error(cfg: ClusterConfig) -> None:
    with pytest.raises(errors.AuthError) as exc:
        SSHSession(cfg, prompt=lambda title, instr, prompts: ["wrong"] * len(prompts)).run(["true"])
    assert "rejected the password or one-time code" in exc.value.message


def test_no_prompt_and_no_tty_needs_a_person(cfg: ClusterConfig, server, monkeypatch: pytest.MonkeyPatch) -> None:
    _, _, iface = server
    monkeypatch.setattr("sys.stdin", open("/dev/null"))  # a daemon: no terminal
    with pytest.raises(errors.AuthError) as exc:
        SSHSession(cfg).run(["true"])
    assert "needs a person" in exc.value.message and "one-time code" in exc.value.message
    assert "daemon" in exc.value.hint
    assert iface.answers == []  # nothing was sent as a guess


def test_keyboard_interactive_can_be_disabled(cfg: ClusterConfig) -> None:
    with pytest.raises(errors.AuthError) as exc:
        SSHSession(replace(cfg, allow_keyboard_interactive=False), prompt=lambda t, i, p: [CODE] * len(p)).run(["true"])
    assert "refused the login" in exc.value.message


def test_unknown_host_key_names_fingerprint(cfg: ClusterConfig, server, tmp_path: Path) -> None:
    port, host_key, _ = server
    (tmp_path / "known_hosts").write_text("")
    with pytest.raises(errors.HostKeyError) as exc:
        SSHSession(cfg, prompt=lambda t, i, p: [""] * len(p)).run(["true"])
    assert fingerprint(host_key) in exc.value.message and f"[127.0.0.1]:{port}" in exc.value.message
    assert "irq trust twofa" in exc.value.hint


def test_changed_host_key_is_refused_before_login(cfg: ClusterConfig, server, tmp_path: Path) -> None:
    port, host_key, iface = server
    other = paramiko.Ed25519Key.from_private_key_file(_keygen(tmp_path / "impostor"))
    kh = tmp_path / "known_hosts"
    kh.write_text(f"[127.0.0.1]:{port} {other.get_name()} {other.get_base64()}\n")  # recorded: another key
    asked: list[object] = []
    with pytest.raises(errors.HostKeyError) as exc:
        SSHSession(cfg, prompt=lambda *a: asked.append(a) or [PASSWORD, CODE]).run(["true"])
    msg = exc.value.message
    assert "HAS CHANGED" in msg and "man-in-the-middle" in msg
    assert fingerprint(host_key) in msg and fingerprint(other) in msg  # what it shows, what was recorded
    assert f"ssh-keygen -R '[127.0.0.1]:{port}'" in exc.value.hint and "irq trust twofa" in exc.value.hint
    assert asked == [] and iface.answers == [] and iface.commands == []  # no password sent to it
    with pytest.raises(errors.HostKeyError, match="already records another ssh-ed25519 key"):
        trust_host(cfg, host_key)  # `irq trust` never replaces a recorded key
    assert kh.read_text().count("\n") == 1


def test_check_host_key_compares_the_key_not_the_name(tmp_path: Path) -> None:
    a = paramiko.Ed25519Key.from_private_key_file(_keygen(tmp_path / "a"))
    b = paramiko.Ed25519Key.from_private_key_file(_keygen(tmp_path / "b"))
    kh = tmp_path / "kh"
    kh.write_text(f"login.example.org {a.get_name()} {a.get_base64()}\n")
    ep = Endpoint(alias="c", hostname="login.example.org", port=22, user="me", known_hosts=[str(kh)])
    check_host_key(ep, a, "c")  # the recorded key passes
    with pytest.raises(errors.HostKeyError, match="HAS CHANGED"):
        check_host_key(ep, b, "c")
    with pytest.raises(errors.HostKeyError, match="is not known"):
        check_host_key(replace(ep, port=2222), a, "c")  # [host]:2222 is another entry


def test_known_hosts_markers_are_read_as_openssh_reads_them(tmp_path: Path) -> None:
    """`@cert-authority` and `@revoked` lines (common in site-managed known_hosts) crashed every
    command over paramiko and `irq trust` ("InvalidHostKey: Incorrect padding"). A CA line is
    skipped (irq checks keys, not certificates), a revoked key is refused, even by `irq trust`."""
    a = paramiko.Ed25519Key.from_private_key_file(_keygen(tmp_path / "a"))
    b = paramiko.Ed25519Key.from_private_key_file(_keygen(tmp_path / "b"))
    kh = tmp_path / "kh"
    kh.write_text(f"# site file\n@cert-authority *.example.org {a.get_name()} {a.get_base64()}\n"
                  f"@revoked login.example.org {b.get_name()} {b.get_base64()}\n"
                  f"login.example.org {a.get_name()} {a.get_base64()}\n")
    ep = Endpoint(alias="c", hostname="login.example.org", port=22, user="me", known_hosts=[str(kh)])
    check_host_key(ep, a, "c")
    kh.write_text(f"@revoked login.example.org {b.get_name()} {b.get_base64()}\n"
                  f"login.example.org {b.get_name()} {b.get_base64()}\n")
    with pytest.raises(errors.HostKeyError, match="is marked @revoked"):
        check_host_key(ep, b, "c")  # recorded, but also revoked: refused
    cfg = ClusterConfig(name="c", host="login.example.org", port=22, user="me", known_hosts=str(kh), repo_url="x",
                        workdir="/w", ssh_config=str(kh.with_name("ssh_config")))
    kh.with_name("ssh_config").write_text("")
    kh.write_text(f"@revoked login.example.org {b.get_name()} {b.get_base64()}\n")
    with pytest.raises(errors.HostKeyError, match="is marked @revoked .* irq will not record it"):
        trust_host(cfg, b)
    kh.write_text(f"@cert-authority *.example.org {a.get_name()} {a.get_base64()}\n")
    with pytest.raises(errors.HostKeyError, match="is not known"):
        check_host_key(ep, a, "c")  # known only through its CA: unknown to irq
    kh.write_text(f"login.example.org {a.get_name()} not-base64!\n")
    with pytest.raises(errors.HostKeyError, match="line 1"):
        check_host_key(ep, a, "c")


def test_connection_refused_is_backend_error(cfg: ClusterConfig) -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(errors.BackendError) as exc:
        SSHSession(replace(cfg, port=port)).run(["true"])
    assert f"127.0.0.1:{port}" in exc.value.message and "refused" in exc.value.message


def test_ssh_config_alias_and_explicit_values(tmp_path: Path) -> None:
    conf = tmp_path / "ssh_config"
    conf.write_text("Host fasrc\n  HostName login.rc.example.edu\n  User alice\n  Port 2200\n"
                    "  IdentityFile ~/.ssh/fasrc_key\n  ProxyJump bob@bastion.example.edu:2022\n")
    base = dict(name="c", host="fasrc", ssh_config=str(conf), repo_url="x", workdir="/w")
    ep = resolve_endpoint(ClusterConfig(**base))
    assert (ep.hostname, ep.port, ep.user, ep.proxy_jump) == ("login.rc.example.edu", 2200, "alice",
                                                              "bob@bastion.example.edu:2022")
    assert ep.identity_files[0].endswith("/.ssh/fasrc_key") and ep.key_name == "[login.rc.example.edu]:2200"
    ep = resolve_endpoint(ClusterConfig(**base, user="carol", port=22, identity_file="/k"))
    assert (ep.user, ep.port, ep.identity_files, ep.key_name) == ("carol", 22, ["/k"], "login.rc.example.edu")


# ---------------------------------------------------------------------- parsers (recorded output)
SQUEUE = """\
8_2|PENDING|JobArrayTaskLimit|N/A|Q-003.irq-0a1b2c3d4e
8_3|PENDING|JobArrayTaskLimit|N/A|Q-003.irq-0a1b2c3d4e
8_0|RUNNING|None|2026-11-23T16:58:08|Q-003.irq-0a1b2c3d4e
8_1|RUNNING|None|2026-11-23T16:58:08|Q-003.irq-0a1b2c3d4e
9|PENDING|QOSMaxJobsPerUserLimit|N/A|name|with|pipes
12_[4-6%2]|PENDING|JobArrayTaskLimit|N/A|unexpanded
"""

SACCT = """\
4|COMPLETED|0:0|2026-11-23T16:58:08|2026-11-23T16:58:10|Q-001.irq-aaaa
5|CANCELLED by 1001|0:15|2026-11-23T16:58:11|2026-11-23T16:58:15|Q-002.irq-bbbb
6|FAILED|127:0|2026-11-23T16:58:11|2026-11-23T16:58:12|nomodule.sbatch
7|OUT_OF_MEMORY|0:125|2026-11-23T16:58:16|2026-11-23T16:58:17|oom.sbatch
10|TIMEOUT|0:0|2026-11-23T16:58:20|2026-11-23T16:59:37|slow
11|CANCELLED by 0|0:0|None|2026-11-23T17:00:00|never started
8_0|COMPLETED|0:0|2026-11-23T16:58:08|2026-11-23T16:58:10|Q-003.irq-0a1b2c3d4e
8_1|RUNNING|0:0|2026-11-23T16:58:08|Unknown|Q-003.irq-0a1b2c3d4e
8_[2-3%2]|PENDING|0:0|Unknown|Unknown|Q-003.irq-0a1b2c3d4e
"""


def test_parse_squeue() -> None:
    rows = {r.job_id: r for r in parse_squeue(SQUEUE)}
    assert rows["8_2"].state == "PENDING" and rows["8_2"].reason == "JobArrayTaskLimit" and rows["8_2"].start is None
    assert rows["8_0"].reason is None and rows["8_0"].start == datetime(2026, 11, 23, 16, 58, 8, tzinfo=timezone.utc)
    assert rows["9"].name == "name|with|pipes" and rows["9"].reason == "QOSMaxJobsPerUserLimit"
    assert [k for k in rows if k.startswith("12_")] == ["12_4", "12_5", "12_6"]
    assert rows["8_3"].base_id == "8" and rows["8_3"].task_id == 3


def test_parse_sacct() -> None:
    rows = {r.job_id: r for r in parse_sacct(SACCT)}
    assert (rows["4"].state, rows["4"].exit_code, rows["4"].signal) == ("COMPLETED", 0, 0)
    assert rows["4"].end == datetime(2026, 11, 23, 16, 58, 10, tzinfo=timezone.utc)
    assert (rows["5"].state, rows["5"].reason, rows["5"].signal) == ("CANCELLED", "by 1001", 15)
    assert (rows["6"].state, rows["6"].exit_code) == ("FAILED", 127)
    assert (rows["7"].state, rows["7"].exit_code, rows["7"].signal) == ("OUT_OF_MEMORY", 0, 125)
    assert rows["10"].state == "TIMEOUT"
    assert rows["11"].start is None and rows["11"].reason == "by 0"
    assert rows["8_1"].end is None and rows["8_1"].exit_code is None  # not finished: no exit code yet
    assert rows["8_2"].state == rows["8_3"].state == "PENDING" and "8_[2-3%2]" not in rows


def test_merge_prefers_squeue_for_live_and_sacct_for_finished() -> None:
    out = merge(parse_squeue(SQUEUE), parse_sacct(SACCT), ["8", "5", "99"])
    assert sorted(out) == ["5", "8"]  # 99: unknown to both, absent
    tasks = out["8"]
    assert [r.job_id for r in tasks] == ["8_0", "8_1", "8_2", "8_3"]
    assert tasks[0].state == "COMPLETED"  # sacct (which ran after squeue) saw it finish
    assert tasks[1].state == "RUNNING" and tasks[2].reason == "JobArrayTaskLimit"
    assert out["5"][0].state == "CANCELLED"


def test_merge_placeholder_and_cancelled_array_remainder() -> None:
    # recorded: a 1-second job that failed, while slurmdbd still had only its batch step
    placeholder = "83|FAILED|3:0|2026-11-23T17:22:16|2026-11-23T17:22:16|allocation\n"
    (row,) = merge([], parse_sacct(placeholder), ["83"])["83"]
    assert (row.state, row.exit_code) == ("COMPLETING", None)  # not final until the real record lands
    # recorded: array 0-3%2 cancelled while tasks 2-3 were pending
    cancelled = ("101_0|CANCELLED by 0|0:0|2026-11-23T17:22:48|2026-11-23T17:22:50|arr\n"
                 "101_1|CANCELLED by 0|0:0|2026-11-23T17:22:48|2026-11-23T17:22:50|arr\n"
                 "101|CANCELLED by 0|0:0|2026-11-23T17:22:50|2026-11-23T17:22:50|arr\n")
    rows = merge([], parse_sacct(cancelled), ["101"])["101"]
    assert [r.job_id for r in rows] == ["101", "101_0", "101_1"]
    assert all(r.state == "CANCELLED" and r.reason == "by 0" for r in rows)


def test_small_parsers() -> None:
    assert expand_job_id("5_[0-6:2]") == ["5_0", "5_2", "5_4", "5_6"]
    assert expand_job_id("7_[1,3-4%1]") == ["7_1", "7_3", "7_4"]
    assert parse_time("Unknown") is parse_time("None") is parse_time("N/A") is None
    assert parse_time("2026-01-14T04:20:54-05:00") == datetime(2026, 1, 14, 9, 20, 54, tzinfo=timezone.utc)
    assert split_sections("motd\n@@irq-section@@\na\n@@irq-section@@ rc=0\nb\n@@irq-section@@ rc=1\n", 2) == [
        ("a\n", 0), ("b\n", 1)]
    with pytest.raises(ValueError):
        split_sections("@@irq-section@@\na\n", 2)


def test_sbatch_errors() -> None:
    limit = classify_sbatch_error(
        "sbatch: error: QOSMaxSubmitJobPerUserLimit\nsbatch: error: Batch job submission failed: Job violates "
        "accounting/QOS policy (job submit limit, user's size and/or time limits)\n")
    assert isinstance(limit, errors.SlotLimit) and "QOSMaxSubmitJobPerUserLimit" in limit.message
    assert isinstance(classify_sbatch_error("sbatch: error: AssocMaxSubmitJobLimit"), errors.SlotLimit)
    bad = classify_sbatch_error("sbatch: error: invalid partition specified: nope\n"
                                "sbatch: error: Batch job submission failed: Invalid partition name specified")
    assert type(bad) is errors.SubmissionRefused and "invalid partition specified: nope" in bad.message
    down = classify_sbatch_error("sbatch: error: Batch job submission failed: Unable to contact slurm "
                                 "controller (connect failure)")
    assert type(down) is errors.BackendError


def test_sacctmgr_limit() -> None:
    assoc = "loopback|irq||normal,twojobs|twojobs|\nother|irq||normal|normal|1\n"  # recorded, plus one
    qos = "normal||\ntwojobs|2|\n"
    assert parse_sacctmgr_limit(assoc, qos, "irq\n", "loopback") == (2, "sacctmgr QOS twojobs MaxSubmitJobsPerUser")
    assert parse_sacctmgr_limit("loopback|irq||normal|normal|1\n", qos, "irq", "loopback") == (
        1, "sacctmgr association irq MaxSubmitJobs")
    assert parse_sacctmgr_limit("loopback|irq||normal|normal|\n", "normal|10|4\n", "irq", "loopback") == (
        4, "sacctmgr QOS normal MaxJobsPerUser")
    assert parse_sacctmgr_limit("loopback|irq||normal|normal|\n", "normal||\n", "irq", "loopback")[0] is None
