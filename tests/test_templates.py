"""Templates ship inside the package and a project's own `templates/` beside its irq.toml
overrides them, file by file, for `irq render` (and so `irq submit`) and `irq export`."""
from __future__ import annotations

import re
from importlib import resources

import pytest

from irq import errors
from irq.formats.render import render

PACKAGED = resources.files("irq.formats").joinpath("templates")


def test_the_templates_are_package_data():
    assert {"job.sbatch.j2", "queue.md.j2"} <= {p.name for p in PACKAGED.iterdir()}
    assert render("queue.md.j2", {"q": _EmptyQueue()}).startswith("# Experiment Queue")


class _EmptyQueue:
    title = "Experiment Queue"
    preamble = ""
    sections: dict = {}
    future_heading = "Future Extensions"
    proposed: list = []
    order: list = []


def project(tmp_path, irq):
    (tmp_path / "irq.toml").write_text("")
    assert irq("init").code == 0
    assert irq("add", "Q-001", "-t", "First", "-p", "mining=random").code == 0
    (tmp_path / "templates").mkdir()


def test_a_project_job_template_overrides_the_packaged_one(tmp_path, irq):
    project(tmp_path, irq)
    packaged = irq("render", "Q-001")
    assert packaged.code == 0 and "# site: " not in packaged.out
    text = PACKAGED.joinpath("job.sbatch.j2").read_text(encoding="utf-8")
    (tmp_path / "templates" / "job.sbatch.j2").write_text(text.replace("set -uo pipefail", "set -uo pipefail\n# site: {{ exp_id }}", 1))
    r = irq("render", "Q-001")
    assert r.code == 0, r
    assert "# site: Q-001\n" in r.out
    # only the project's change; the run id carries the second it was rendered in
    assert _run_ids_masked(r.out.replace("# site: Q-001\n", "")) == _run_ids_masked(packaged.out)


def _run_ids_masked(text: str) -> str:
    return re.sub(r"q001_\d{8}_\d{6}", "q001_<run>", text)


def test_a_project_queue_template_overrides_export_and_the_rest_stays_packaged(tmp_path, irq):
    project(tmp_path, irq)
    (tmp_path / "templates" / "queue.md.j2").write_text("{% for name in q.sections %}{{ name }};{% endfor %}\n")
    r = irq("export")
    assert r.code == 0, r
    assert r.out.startswith("READY;")
    assert irq("render", "Q-001").out.startswith("#!/bin/bash")  # job.sbatch.j2 still the packaged one


def test_a_templates_folder_without_an_irq_toml_beside_it_is_not_used(tmp_path, irq):
    assert irq("init").code == 0  # writes irq.toml here: move the project one level down
    (tmp_path / "irq.toml").unlink()
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "queue.md.j2").write_text("not used\n")
    assert irq("add", "Q-001", "-t", "First").code == 0
    r = irq("export")
    assert r.code == 0 and r.out.startswith("# Experiment Queue"), r


def test_a_broken_project_template_is_named_in_the_error(tmp_path, irq):
    project(tmp_path, irq)
    (tmp_path / "templates" / "job.sbatch.j2").write_text("#!/bin/bash\n{{ no_such_value }}\n")
    r = irq("render", "Q-001")
    assert r.code != 0 and "no_such_value" in r.err


def test_an_unknown_template_names_where_irq_looked():
    with pytest.raises(errors.TemplateError) as exc:
        render("nope.j2", {})
    assert "irq.formats/templates" in exc.value.message
