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


def test_every_key_is_documented_with_its_type_range_and_default():
    from dataclasses import fields
    from pathlib import Path

    from irq.config import (
        ClusterConfig,
        DaemonConfig,
        FileConfig,
        LocalConfig,
        ProjectConfig,
    )

    doc = (Path(__file__).resolve().parent.parent / "docs" / "configuration.md").read_text(encoding="utf-8")
    rows = {line.split("|")[1].strip().strip("`") for line in doc.splitlines() if line.startswith("| `")}
    for cls in (FileConfig, LocalConfig, DaemonConfig, ProjectConfig, ClusterConfig):
        for f in fields(cls):
            if f.name in ("name", "local", "clusters", "daemon", "project"):
                continue
            assert f.name in rows, f"docs/configuration.md has no row for {cls.__name__}.{f.name}"


@pytest.mark.parametrize("text, words", [
    ("[local]\nslots = 0\n", "[local] slots = 0: must be greater than or equal to 1"),
    ("[local]\nslots = -3\n", "[local] slots = -3"),
    ("[daemon]\ninterval = 0\n", "[daemon] interval = 0: must be greater than 0"),
    ("export = 5\n", "export = 5 has the wrong type (expected a string)"),
    ("[clusters.c]\nhost = 'h'\nrepo_url = 'r'\nworkdir = '/w'\npartition = \"gpu\\nx\"\n", "one line"),
])
def test_ranges_are_checked_and_point_to_the_docs(tmp_path, text, words):
    (tmp_path / "irq.toml").write_text(text)
    with pytest.raises(errors.ConfigError) as exc:
        load_config(start=tmp_path)
    assert words in exc.value.message and "docs/configuration.md" in exc.value.hint


def test_a_bare_cluster_name_is_accepted_as_a_backend(tmp_path):
    (tmp_path / "irq.toml").write_text(CLUSTER)
    cfg = load_config(start=tmp_path)
    assert cfg.backend_name("fasrc") == cfg.backend_name("slurm:fasrc") == "slurm:fasrc"
    assert cfg.backend_name(None) == "slurm:fasrc" and cfg.backend_name("local") == "local"
    with pytest.raises(errors.UsageError) as exc:
        cfg.backend_name("nowhere")
    assert "slurm:fasrc" in exc.value.hint


def test_defaults_are_kept(tmp_path):
    cfg = load_config(start=tmp_path)
    assert (cfg.local.slots, cfg.local.workdir, cfg.local.python) == (2, ".irq/local", "")
    assert (cfg.daemon.interval, cfg.daemon.max_interval) == (60, 600)
    assert (cfg.project.metric, cfg.project.goal, cfg.export) == ("val_mse", "min", None)


def test_backend_flag_takes_the_irq_toml_form(tmp_path, irq):
    irq("init")
    (tmp_path / "irq.toml").write_text(CLUSTER.replace('backend = "fasrc"', 'backend = "local"'))
    irq("add", "Q-001", "--title", "x")
    bare, full = irq("render", "Q-001", "--backend", "fasrc"), irq("render", "Q-001", "--backend", "slurm:fasrc")
    assert (bare.code, bare.out, bare.err) == (full.code, full.out, full.err)
    assert "unknown backend" not in bare.err
