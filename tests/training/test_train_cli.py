"""``maestromotif train`` refuses to train on untrained reward models unless told it is a smoke run."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from maestromotif.cli import app
from maestromotif.cli.train import run_training


def _invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["train", "--steps", "1", *args], env={"COLUMNS": "300"})
    return result.exit_code, " ".join(result.output.split())


def test_train_without_bundles_is_an_error_naming_the_options() -> None:
    code, output = _invoke()
    assert code == 2, output
    assert "--reward-bundles: required" in output and "--smoke-untrained-rewards" in output
    assert "starting" not in output  # no service was started


def test_train_with_a_folder_that_holds_no_bundles(tmp_path: Path) -> None:
    code, output = _invoke("--reward-bundles", str(tmp_path / "nothing"))
    assert code == 2, output
    assert "no reward bundles here" in output and "manifest.json" in output


def test_train_smoke_flag_and_bundles_exclude_each_other(tmp_path: Path) -> None:
    code, output = _invoke("--reward-bundles", str(tmp_path), "--smoke-untrained-rewards")
    assert code == 2, output
    assert "exclude each other" in output


def test_run_training_defaults_to_requiring_bundles() -> None:
    # the library entry point (pipeline, scripts) has the same guard, not only the CLI
    assert run_training(steps=1) == 2
