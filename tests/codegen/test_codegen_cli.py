"""The codegen CLI: validate, show, list, and clear errors for bad input (no LLM needed)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from maestromotif.cli import app
from maestromotif.skills.reference import reference_source

runner = CliRunner()


def _text(result) -> str:
    """Output with rich's error box and line wrapping removed."""
    return " ".join(result.output.replace("│", " ").replace("╭", " ").replace("╰", " ").replace("─", "").split())
MEASURED = Path(__file__).resolve().parents[2] / "experiments" / "results" / "codegen" / "artifacts"


def test_validate_reference_policy_and_hostile_code(tmp_path: Path) -> None:
    good = tmp_path / "good.py"
    good.write_text(reference_source("minetown"))
    result = runner.invoke(app, ["codegen", "validate", str(good)])
    assert result.exit_code == 0, result.output
    assert "[ok  ] harness" in result.output and result.output.strip().endswith("valid")
    bad = tmp_path / "bad.py"
    bad.write_text("SKILL_TURNS = 5\ndef start(m):\n    pass\ndef choose_skill(s, m):\n    return ().__class__\n")
    result = runner.invoke(app, ["codegen", "validate", str(bad), "--json"])
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert report["valid"] is False and report["stages"][-1]["stage"] == "allow-list"


def test_validate_with_tests_file(tmp_path: Path) -> None:
    code = tmp_path / "p.py"
    code.write_text(reference_source("delphi"))
    tests = tmp_path / "t.py"
    tests.write_text("def test_never_ascends_at_top():\n    m = Memory()\n    start(m)\n"
                     "    assert choose_skill(make_state(depth=1), m) == ASCENDER\n")
    result = runner.invoke(app, ["codegen", "validate", str(code), "--tests", str(tests), "--json"])
    assert result.exit_code == 1  # the test asserts something false about delphi
    stages = json.loads(result.output)["stages"]
    assert stages[-1]["stage"] == "llm-tests" and not stages[-1]["passed"]


def test_bad_arguments_fail_clearly(tmp_path: Path) -> None:
    result = runner.invoke(app, ["codegen", "validate", str(tmp_path / "missing.py")])
    assert result.exit_code == 2 and "cannot read" in _text(result)
    (tmp_path / "x.py").write_text("x = 1\n")
    result = runner.invoke(app, ["codegen", "validate", str(tmp_path / "x.py"), "--kind", "poem"])
    assert result.exit_code == 2 and "unknown artifact kind" in _text(result)
    (tmp_path / "bin.py").write_bytes(b"\xff\xfe\x00")
    result = runner.invoke(app, ["codegen", "validate", str(tmp_path / "bin.py")])
    assert result.exit_code == 2 and "not UTF-8" in _text(result)
    # compose checks its arguments before loading any model
    result = runner.invoke(app, ["compose", "Go down.", "--detector-task", "moon"])
    assert result.exit_code == 2 and "gnomish" in _text(result)
    result = runner.invoke(app, ["compose", "x" * 4001])
    assert result.exit_code == 2 and "4000" in _text(result)
    result = runner.invoke(app, ["compose", "Go down.", "--task-name", "a b"])
    assert result.exit_code == 2 and "task_name" in _text(result)
    result = runner.invoke(app, ["codegen", "skills", "--skill", "dancer"])
    assert result.exit_code == 2 and "unknown skill name" in _text(result)


def test_show_and_list_measured_artifacts() -> None:
    result = runner.invoke(app, ["codegen", "list", "--store", str(MEASURED), "--json"])
    assert result.exit_code == 0
    rows = json.loads(result.output)
    assert rows and all(r["error"] is None for r in rows)
    sha = rows[0]["sha256"]
    result = runner.invoke(app, ["codegen", "show", sha, "--store", str(MEASURED), "--transcript"])
    assert result.exit_code == 0 and "--- assistant ---" in result.output and "model_digest" in result.output
    result = runner.invoke(app, ["codegen", "show", "0" * 64, "--store", str(MEASURED)])
    assert result.exit_code == 1 and "no artifact" in _text(result)
