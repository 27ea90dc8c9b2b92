"""irq.toml is found from the working directory up, merged over the user's defaults, and
validated on load: a bad key names the file, the key and the valid keys."""
from __future__ import annotations

import pytest

from irq import errors
from irq.config import load_config

CLUSTER = """
backend = "fasrc"
[clusters.fasrc]
host = "login.example.edu"
repo_url = "git@example.edu:me/repo.git"
workdir = "/n/home/me/irq"
modules = ["python/3.10.13-fasrc01"]
job_limit = 2
"""


def test_found_by_walking_up_and_merged_over_user_defaults(tmp_path, monkeypatch):
    user = tmp_path / "user.toml"
    user.write_text('[daemon]\ninterval = 120\n[clusters.fasrc]\nuser = "me"\n')
    monkeypatch.setenv("IRQ_USER_CONFIG", str(user))
    (tmp_path / "irq.toml").write_text(CLUSTER)
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    cfg = load_config(start=deep)
    assert cfg.path == tmp_path / "irq.toml" and cfg.root == tmp_path
    c = cfg.cluster()
    assert (c.name, c.host, c.user, c.job_limit, c.modules) == ("fasrc", "login.example.edu", "me", 2,
                                                                 ["python/3.10.13-fasrc01"])
    assert cfg.daemon.interval == 120 and cfg.backend == "fasrc"


def test_no_file_means_the_local_backend(tmp_path):
    cfg = load_config(start=tmp_path)
    assert cfg.backend == "local" and cfg.local.slots == 2 and cfg.clusters == {}


@pytest.mark.parametrize("text, words", [
    ("colour = 'blue'\n", "unknown key 'colour'"),
    ("[local]\nslot = 2\n", "unknown key 'local.slot'"),
    (CLUSTER + "hostname = 'x'\n", "unknown key 'clusters.fasrc.hostname'"),
    ("[local]\nslots = 'two'\n", "[local] slots = 'two' has the wrong type"),
    ("[clusters.x]\nhost = 'h'\n", "[clusters.x] needs repo_url, workdir"),
    ("backend = 'nowhere'\n", "backend = 'nowhere' names no [clusters.nowhere] table"),
    ("[local\n", "not valid TOML"),
])
def test_bad_config_names_file_key_and_valid_keys(tmp_path, text, words, irq):
    (tmp_path / "irq.toml").write_text(text)
    with pytest.raises(errors.ConfigError) as exc:
        load_config(start=tmp_path)
    assert str(tmp_path / "irq.toml") in str(exc.value) and words in str(exc.value)
    if "unknown key" in words:
        assert "valid keys" in exc.value.hint
    irq("init")
    r = irq("submit", "--all-ready")
    assert r.code == 2 and words in r.err
