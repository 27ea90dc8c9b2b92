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
