"""The job's python, after its modules load, must import what the run needs: preflight checks
it in the same round trip, and a job that dies of a ModuleNotFoundError is diagnosed as an
environment problem with an environment fix."""
from __future__ import annotations

import json

import pytest

from .conftest import add_tiny, wait_states

pytestmark = pytest.mark.cluster


def test_check_runs_the_jobs_python_and_names_what_it_cannot_import(project, irq):
    add_tiny(irq, "Q-001")
    r = irq("check", "Q-001")
    assert r.code == 0 and "python imports" in r.out + r.err, r  # torch and numpy: the loopback venv has them
    toml = project / "irq.toml"
    toml.write_text(toml.read_text() + 'python_imports = ["torch", "numpy", "irq_no_such_package"]\n')
    r = irq("check", "Q-001")
    assert r.code != 0, r
    assert "cannot import: irq_no_such_package (ModuleNotFoundError)" in r.out + r.err, r
    assert "torch (" not in r.out + r.err


def test_a_job_python_without_torch_is_diagnosed_as_an_environment_problem(project, irq, slurm_cluster):
    toml = project / "irq.toml"  # the system python: no torch; preflight told to expect nothing
    toml.write_text(toml.read_text().replace(f'modules = ["{slurm_cluster.python_module}"]', "modules = []")
                    + 'python = "python3"\npython_imports = []\n')
    add_tiny(irq, "Q-001")
    r = irq("submit", "Q-001")
    assert "submitted" in r.out, r
    wait_states(irq, ["Q-001"])
    irq("fetch")
    att = json.loads(irq("show", "Q-001", "--json").out)["attempts"][0]
    assert "ModuleNotFoundError: No module named" in att["error"], att
    assert "environment" in att["root_cause"] and "pip install" in att["suggested_fix"], att
