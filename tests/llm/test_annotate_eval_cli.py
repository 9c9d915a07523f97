"""``maestromotif annotate-eval`` end to end with the real embedded 0.5B model, on a tiny check set."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from maestromotif.cli import app

# Clear-cut pairs (from the shipped check set), both orders, that the LLM alone decides: no depth prior.
TINY_CHECKSET = """
- {skill: discoverer, expected: first, first: {message: "h - a scroll labeled ZELGO MER."}, second: {message: ""}}
- {skill: discoverer, expected: second, first: {message: ""}, second: {message: "You kill the newt!"}}
- {skill: merchant, expected: first, first: {message: "You sold a scroll labeled ZELGO MER to Asidonhopo for 20 gold pieces.", gold: [0, 20]}, second: {message: "You kill the newt!"}}
"""


def test_annotate_eval_reports_agreement_on_a_small_checkset(tmp_path: Path) -> None:
    checkset = tmp_path / "tiny.yaml"
    checkset.write_text(TINY_CHECKSET)
    out = tmp_path / "report.json"
    result = CliRunner().invoke(app, ["annotate-eval", "--backend", "embedded", "--strategy", "score",
                                      "--depth-prior", "0", "--checkset", str(checkset), "--json", str(out)],
                                env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert (report["overall"]["agree"], report["overall"]["total"]) == (3, 3), report["overall"]
    assert report["per_skill"]["discoverer"]["total"] == 2 and report["per_skill"]["merchant"]["total"] == 1
    assert report["mistakes"] == []
    assert "overall" in result.output and "3/3" in result.output


def test_annotate_eval_names_a_bad_checkset(tmp_path: Path) -> None:
    missing = CliRunner().invoke(app, ["annotate-eval", "--backend", "embedded", "--checkset", str(tmp_path / "no.yaml")])
    assert missing.exit_code == 2 and "--checkset" in missing.output and "no.yaml" in missing.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("- {skill: discoverer, expected: maybe, first: {message: a}, second: {message: b}}\n")
    wrong = CliRunner().invoke(app, ["annotate-eval", "--backend", "embedded", "--checkset", str(bad)])
    assert wrong.exit_code == 2 and "expected" in wrong.output
