"""CLI: ``maestromotif tasks`` and ``maestromotif env run`` on real games."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from maestromotif.cli import app

pytestmark = pytest.mark.filterwarnings("ignore")
runner = CliRunner()


def test_tasks_lists_nine_with_paper_numbers() -> None:
    result = runner.invoke(app, ["tasks", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [r["name"] for r in rows][:3] == ["gnomish", "delphi", "minetown"] and len(rows) == 9
    assert rows[0]["paper"]["maestromotif"] == "46% ± 1.70"
    table = runner.invoke(app, ["tasks"])
    assert table.exit_code == 0 and "discoveryhunger" in table.output


def _json_lines(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


@pytest.mark.parametrize("policy", ["reference", "random"])
def test_env_run_plays_reproducible_episodes(policy: str) -> None:
    args = ["env", "run", "--task", "buc", "--policy", policy, "--episodes", "2", "--seed", "4", "--max-steps", "60", "--json"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    records = _json_lines(first.output)
    assert len(records) == 2
    for r in records:
        assert 1 <= r["steps"] <= 60 and sum(r["skill_steps"].values()) == r["steps"]
        assert r["end"] in ("died", "step limit") and "legacy_count" in r["outcome"]
    assert _json_lines(runner.invoke(app, args).output) == records  # same seed, same episodes


def test_env_run_render_and_tables() -> None:
    result = runner.invoke(app, ["env", "run", "--episodes", "1", "--max-steps", "5", "--render"])
    assert result.exit_code == 0, result.output
    assert "discoverer" in result.output and "episode 0" in result.output


def test_env_run_rejects_unknown_task_and_policy() -> None:
    bad = runner.invoke(app, ["env", "run", "--task", "nope"])
    assert bad.exit_code != 0 and "unknown task 'nope'" in bad.output
    bad = runner.invoke(app, ["env", "run", "--policy", "llm"])
    assert bad.exit_code != 0 and "reference" in bad.output
