"""irq.toml's headline metric on the stdlib path, and the full error when it is not plainly valid."""
from __future__ import annotations

import pytest

from irq import errors
from irq.config_files import ReadSettings, read_settings


@pytest.fixture(autouse=True)
def no_user_file(tmp_path, monkeypatch):
    monkeypatch.setenv("IRQ_USER_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize("text,expected", [
    ("", ReadSettings("val_mse", "min")),
    ('[project]\nmetric = "accuracy"\ngoal = "max"\n', ReadSettings("accuracy", "max")),
    ('[project]\nmetric = "loss"\n', ReadSettings("loss", "min")),
    ('[local]\nslots = 2\n[project]\ngoal = "max"\n', ReadSettings("val_mse", "max")),
])
def test_headline_of_valid_files(tmp_path, text, expected):
    (tmp_path / "irq.toml").write_text(text)
    got = read_settings()
    assert (got.metric, got.goal) == (expected.metric, expected.goal) and got.file == (tmp_path / "irq.toml")
    (tmp_path / "irq.toml").write_bytes(b"\xef\xbb\xbf" + text.encode())  # as some editors save it
    got = read_settings()
    assert (got.metric, got.goal) == (expected.metric, expected.goal) and got.file == (tmp_path / "irq.toml")


@pytest.mark.parametrize("text,words", [
    ('[project]\nmetric = ""\n', "metric"),
    ('[project]\nmetric = 3\n', "metric"),
    ('[project]\nmetric = "a\\nb"\n', "metric"),
    ('[project]\ngoal = "lowest"\n', "goal"),
    ('project = 5\n', "project"),
    ('[project\n', "not valid TOML"),
])
def test_a_bad_headline_gets_the_validated_error(tmp_path, text, words):
    (tmp_path / "irq.toml").write_text(text)
    with pytest.raises(errors.ConfigError) as exc:
        read_settings()
    assert words in str(exc.value.message) + str(exc.value.hint)


def test_the_user_file_is_merged_under_the_project_file(tmp_path, monkeypatch):
    user = tmp_path / "user.toml"
    user.write_text('[project]\nmetric = "acc"\ngoal = "max"\n')
    monkeypatch.setenv("IRQ_USER_CONFIG", str(user))
    (tmp_path / "irq.toml").write_text('[project]\ngoal = "min"\n')
    got = read_settings()
    assert (got.metric, got.goal, got.file) == ("acc", "min", tmp_path / "irq.toml")
