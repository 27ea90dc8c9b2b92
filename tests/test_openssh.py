"""The OpenSSH transport's command lines and how it reads ssh's failures (no network: the real
thing runs against the loopback cluster in tests/cluster/test_cluster_login.py)."""
from __future__ import annotations

import stat

import pytest

from irq import errors
from irq.backends.ssh.openssh import OpenSSHSession, classify_ssh_failure
from irq.config import ClusterConfig, load_config


@pytest.fixture
def cfg(tmp_path, monkeypatch) -> ClusterConfig:
    monkeypatch.setenv("IRQ_CONTROL_DIR", str(tmp_path / "cm"))
    (tmp_path / "ssh_config").write_text("")
    return ClusterConfig(name="fasrc", host="login.example.edu", port=2222, user="alice",
                         identity_file=str(tmp_path / "key"), known_hosts=str(tmp_path / "kh"),
                         ssh_config=str(tmp_path / "ssh_config"), repo_url="x", workdir="/w")


def option(args: list[str], name: str) -> str:
    values = [args[i + 1].split("=", 1)[1] for i, a in enumerate(args[:-1])
              if a == "-o" and args[i + 1].startswith(name + "=")]
    assert len(values) == 1, (name, args)
    return values[0]


def test_unattended_ssh_never_prompts_and_checks_host_keys_against_irqs_known_hosts(cfg, tmp_path):
    args = OpenSSHSession(cfg).options(master="auto")
    assert args[-1] == "login.example.edu"
    assert option(args, "BatchMode") == "yes"
    assert option(args, "StrictHostKeyChecking") == "yes"
    assert option(args, "UserKnownHostsFile") == str(tmp_path / "kh")
    assert option(args, "ControlMaster") == "auto"
    assert option(args, "ControlPath") == f"{tmp_path / 'cm'}/%C"
    assert option(args, "ControlPersist")
    assert args[args.index("-p") + 1] == "2222" and args[args.index("-l") + 1] == "alice"
    assert args[args.index("-F") + 1] == str(tmp_path / "ssh_config")
    assert stat.S_IMODE((tmp_path / "cm").stat().st_mode) == 0o700
    assert option(OpenSSHSession(cfg).options(batch=False, master="yes"), "BatchMode") == "no"  # irq login


@pytest.mark.parametrize("stderr, kind, words", [
    ("irqtest@127.0.0.1: Permission denied (keyboard-interactive).\n", errors.NeedsLogin,
     "needs login: run irq login fasrc"),
    ("No ED25519 host key is known for [127.0.0.1]:2223 and you have requested strict checking.\n"
     "Host key verification failed.\n", errors.HostKeyError, "is not known"),
    ("@@@@@@@@@@@\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\n"
     "The fingerprint for the ED25519 key sent by the remote host is\nSHA256:abc+def.\n"
     "Host key verification failed.\n", errors.HostKeyError, "HAS CHANGED (the server shows SHA256:abc+def"),
    ("ssh: connect to host 127.0.0.1 port 2222: Connection refused\n", errors.BackendError, "connection refused"),
])
def test_ssh_failures_become_irq_errors(stderr, kind, words):
    exc = classify_ssh_failure("fasrc", "127.0.0.1:2222", stderr)
    assert type(exc) is kind and words in exc.message, exc.message
    assert exc.hint


def test_needs_login_keeps_states_like_any_backend_fault():
    assert issubclass(errors.NeedsLogin, errors.BackendError)  # refresh keeps states: unknown, never FAILED


def test_transport_is_checked_in_irq_toml(tmp_path):
    base = '[clusters.c]\nhost = "h"\nrepo_url = "r"\nworkdir = "/w"\n'
    (tmp_path / "irq.toml").write_text(base)
    assert load_config(tmp_path / "irq.toml").clusters["c"].transport == "openssh"
    (tmp_path / "irq.toml").write_text(base + 'transport = "telnet"\n')
    with pytest.raises(errors.ConfigError, match="transport"):
        load_config(tmp_path / "irq.toml")


def test_exit_255_from_ssh_itself_is_told_from_a_remote_program_that_exited_255():
    from irq.backends.ssh.openssh import _looks_like_ssh

    assert _looks_like_ssh("irqtest@127.0.0.1: Permission denied (keyboard-interactive).\n")
    assert _looks_like_ssh("ssh: connect to host 127.0.0.1 port 2222: Connection refused\n")
    assert _looks_like_ssh("Host key verification failed.\n")
    assert not _looks_like_ssh("my_script: giving up\n")


def test_logged_in_looks_at_the_socket_and_asks_the_master_only_when_the_socket_is_new(cfg, tmp_path,
                                                                                     monkeypatch):
    """What a daemon waiting for `irq login` asks every half second: no ssh process while the
    socket is missing or unchanged; a new socket (a login) is checked once with `ssh -O check`."""
    import os

    s = OpenSSHSession(cfg)
    sock = tmp_path / "master"  # a file stands in for the socket: only its inode and mtime are read
    monkeypatch.setattr(s, "control_path", lambda: sock)
    asked: list[bool] = []
    answer = {"alive": False}

    def master_alive() -> bool:
        asked.append(True)
        return answer["alive"]

    monkeypatch.setattr(s, "master_alive", master_alive)
    assert not s.logged_in() and not s.logged_in() and asked == []  # no socket: nothing to ask
    sock.write_text("")  # a killed master's socket: nobody answers on it
    os.utime(sock, ns=(1, 1))
    assert not s.logged_in() and not s.logged_in() and len(asked) == 1
    sock.unlink()  # ssh removes the stale socket; `irq login` makes a new one
    answer["alive"] = True
    sock.write_text("")
    os.utime(sock, ns=(2, 2))
    assert s.logged_in() and s.logged_in() and len(asked) == 2
