"""Shared fixtures: every test gets its own temporary directory, ledger and config;
nothing here reads the user's ~/.config or writes the repository's queue.db."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

settings.register_profile("default", max_examples=40)
settings.register_profile("thorough", max_examples=1000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

REPO = Path(__file__).resolve().parent.parent
SEED_QUEUE = REPO / "tests" / "data" / "seed_queue.md"

try:  # the real loopback SLURM cluster (tests/cluster): session fixture `slurm_cluster`
    from tests.cluster.fixture import slurm_cluster  # noqa: F401
except ImportError:  # pragma: no cover - tooling not present
    pass


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist: no error where it is not loaded
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    """pytest-xdist's scheduler, with every test under tests/cluster/ in one scope: they run one
    after another in one worker, which holds the loopback cluster for its session (a cluster test
    in the other worker would wait for the session lock until the first worker ends), while the
    other worker runs the rest, a module at a time. The cluster tests mostly wait for jobs, so the
    two overlap well on 2 cores."""
    from xdist.scheduler import LoadScopeScheduling

    class ClusterApart(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return "tests/cluster" if nodeid.startswith("tests/cluster/") else super()._split_scope(nodeid)

    return ClusterApart(config, log)


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IRQ_USER_CONFIG", str(tmp_path / "no-user-config.toml"))
    monkeypatch.setenv("IRQ_CACHE_DIR", str(tmp_path / "irq-cache"))  # the results and export caches: never the user's
    monkeypatch.delenv("IRQ_DB", raising=False)
    # a bug raises with its traceback (irq/cli/app.py's last boundary would turn it into one line)
    monkeypatch.setenv("IRQ_DEBUG", "1")
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def ledger(tmp_path: Path):
    from irq.ledger.database import Ledger

    lg = Ledger(tmp_path / "queue.db", create=True)
    yield lg
    lg.close()


class CliResult:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err

    def __repr__(self) -> str:
        return f"CliResult(code={self.code}, out={self.out[-500:]!r}, err={self.err[-500:]!r})"


@pytest.fixture
def irq(capsys: pytest.CaptureFixture[str]):
    """Run the irq command line in-process: irq("status", "--json") -> CliResult."""
    from irq.cli import main

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        return CliResult(code, out, err)

    return run


@pytest.fixture
def seed_queue() -> Path:
    return SEED_QUEUE
