"""The CLI stays quick: no torch (or the trainer) is imported by any irq command."""
from __future__ import annotations

import subprocess
import sys

PROBE = """
import sys
from irq.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
bad = sorted(m for m in sys.modules if m == "torch" or m.startswith(("torch.", "trainer")))
print("IMPORTED:", ",".join(bad))
"""


def run(tmp_path, *args):
    return subprocess.run([sys.executable, "-c", PROBE, *args], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)


def test_no_command_imports_torch(tmp_path, seed_queue):
    for args in (["init"], ["import", str(seed_queue)], ["status"], ["show", "Q-004"], ["export"],
                 ["render", "Q-004"], ["daemon", "run", "--dry-run"], ["check", "Q-004"], ["--help"]):
        r = run(tmp_path, *args)
        assert "IMPORTED: \n" in r.stdout, (args, r.stdout[-300:], r.stderr[-500:])


VIEWS_PROBE = """
import sys
from irq.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
heavy = ("pydantic", "sqlalchemy", "sqlmodel", "jinja2", "paramiko")
print("IMPORTED:", ",".join(sorted(m for m in heavy if m in sys.modules)))
"""


def test_read_views_load_no_pydantic_orm_or_jinja(tmp_path, seed_queue):
    """status --offline, show and --json read the ledger and a valid irq.toml on the stdlib path:
    pydantic alone costs about as much CPU as the CLI's start-up (docs/performance.md)."""
    assert run(tmp_path, "import", str(seed_queue)).returncode == 0
    (tmp_path / "irq.toml").write_text('[project]\nmetric = "val_mse"\ngoal = "min"\n')
    for args in (["status", "--offline"], ["status", "--offline", "--json"], ["show", "Q-004"],
                 ["show", "Q-004", "--json"], ["--help"]):
        r = subprocess.run([sys.executable, "-c", VIEWS_PROBE, *args], cwd=tmp_path, capture_output=True,
                           text=True, timeout=120)
        assert "Q-0" in r.stdout or args == ["--help"], (args, r.stdout[-300:], r.stderr[-500:])
        assert "IMPORTED: \n" in r.stdout, (args, r.stdout[-300:])


def test_export_to_a_file_irq_wrote_loads_no_orm(tmp_path, seed_queue):
    """`irq export FILE` over its own earlier export imported the ORM to check the file (4.6 x
    start-up against 1.6 x): irq's digest of what it wrote decides without it."""
    assert run(tmp_path, "import", str(seed_queue)).returncode == 0
    for _ in range(2):  # the first writes the file and its digest, the second checks against it
        r = subprocess.run([sys.executable, "-c", VIEWS_PROBE, "export", "queue.md"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=120)
    assert "wrote queue.md" in r.stdout and "IMPORTED: \n" in r.stdout, (r.stdout[-300:], r.stderr[-500:])
