"""A regular install works: `pip install '<repo>[train]'` (not editable) into a fresh venv, then
from an empty folder outside the checkout: init, add, render, export and `irq demo --quick`.

This is what a user does; an editable install hides missing package data (templates, the
trainer's keys.json and configs), so the check builds its own venv. pip's wheel cache and the
local torch CPU wheel keep it to a few minutes.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _source_copy(dest: Path) -> Path:
    """The checkout's files (tracked and new, not ignored): no stale build/ or .venv goes in."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=REPO,
                            capture_output=True, text=True, check=False)
    if listed.returncode != 0:  # not a git checkout: the package folders and metadata
        for name in ("irq", "trainer", "pyproject.toml", "README.md"):
            src = REPO / name
            (shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__")) if src.is_dir()
             else shutil.copy2(src, dest / name))
        return dest
    for rel in filter(None, listed.stdout.split("\0")):
        if (REPO / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, dest / rel)
    return dest


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with irq[train] installed from a copy of the checkout; its bin folder."""
    root = tmp_path_factory.mktemp("install")
    src = _source_copy(root / "src")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PIP_REQUIRE_VIRTUALENV")}
    r = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--no-compile", f"{src}[train]"], env=env,
                       capture_output=True, text=True, timeout=1500)
    assert r.returncode == 0, r.stderr[-3000:]
    return venv / "bin"


def run(bin_: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "IRQ_DB", "IRQ_TEMPLATES")}
    env["IRQ_USER_CONFIG"] = str(cwd / "no-user-config.toml")
    return subprocess.run([str(bin_ / "irq"), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_a_regular_install_runs_init_add_render_export_and_the_demo(installed, tmp_path_factory):
    folder = tmp_path_factory.mktemp("elsewhere")
    assert REPO not in folder.parents
    where = subprocess.run([str(installed / "python"), "-c", "import irq, trainer; print(irq.__file__); "
                            "print(trainer.__file__)"], cwd=folder, capture_output=True, text=True, check=True,
                           env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    irq_file, trainer_file = where.stdout.split()
    assert "site-packages" in irq_file and REPO not in Path(irq_file).parents
    tiny = Path(trainer_file).parent / "configs" / "tiny.json"

    assert run(installed, folder, "init").returncode == 0
    r = run(installed, folder, "add", "Q-001", "-t", "Random negatives", "-c", str(tiny), "-p", "mining=random")
    assert r.returncode == 0, r.stderr
    r = run(installed, folder, "render", "Q-001")
    assert r.returncode == 0, r.stderr
    assert "#SBATCH --job-name=Q-001." in r.stdout and "--mining random" in r.stdout
    assert "not passed to the trainer" not in r.stderr  # the trainer's keys.json is installed
    r = run(installed, folder, "export")
    assert r.returncode == 0 and "### Q-001: Random negatives" in r.stdout, r.stderr

    r = run(installed, folder, "demo", "--quick", "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    rows = json.loads(r.stdout)
    assert [(row["id"], row["state"]) for row in rows] == [("Q-041", "DONE"), ("Q-042", "DONE"), ("Q-043", "DONE")]
    assert all(0 < row["val_mse"] < row["baseline_mean_mse"] for row in rows)
