"""Experiment ids are slugs (lr-sweep-3, ablation.v2); queue.md import and export keep them."""
from __future__ import annotations

import pytest

from irq import errors
from irq.experiments.edit import add_experiment
from irq.formats.queue_io import export_queue, import_queue
from irq.ledger.database import Ledger, validate_id


@pytest.mark.parametrize("good", ["Q-003", "lr-sweep-3", "ablation.v2", "run_1", "a", "A" * 64])
def test_slugs_are_ids(good):
    assert validate_id(good) == good


@pytest.mark.parametrize("bad", ["3-lr", "-lr", "lr sweep", "lr/3", "é", "a" * 65, "", "lr:3"])
def test_other_text_is_refused(bad):
    with pytest.raises(errors.InvalidId):
        validate_id(bad)


def test_queue_md_round_trips_slug_ids_and_their_dependencies(tmp_path, ledger):
    add_experiment(ledger, "lr-01", "Small learning rate", params={"lr": 0.01}, seeds="0-2")
    add_experiment(ledger, "lr.02", "Larger", params={"lr": 0.1})
    add_experiment(ledger, "Q-003", "Both before", depends_on=["lr-01", "lr.02"], command="python t.py --lr {lr}",
                   params={"lr": 1})
    first = export_queue(ledger, tmp_path / "a.md")
    other = Ledger(tmp_path / "b.db", create=True)
    import_queue(other, tmp_path / "a.md")
    assert export_queue(other, tmp_path / "b.md") == first
    with other.transaction() as s:
        exps = {e.id: e for e in Ledger.experiments(s)}
    assert list(exps) == ["lr-01", "lr.02", "Q-003"]
    assert exps["Q-003"].depends_on == ["lr-01", "lr.02"]
    assert exps["Q-003"].command == "python t.py --lr {lr}"
    assert exps["lr-01"].seeds == [0, 1, 2]
