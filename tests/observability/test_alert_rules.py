"""The Prometheus alert rules: valid for the real ``promtool``, and every alert unit-tested
both firing and not firing (``rules_test.yaml``)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "helm/maestromotif/files/rules/maestromotif.rules.yaml"
UNIT_TESTS = Path(__file__).with_name("rules_test.yaml")


def _alerts() -> list[str]:
    doc = yaml.safe_load(RULES.read_text())
    return [r["alert"] for g in doc["groups"] for r in g["rules"] if "alert" in r]


def test_rules_pass_promtool_check(promtool: str) -> None:
    out = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(_alerts())} rules found" in out.stdout


def test_rules_unit_tests_pass(promtool: str) -> None:
    out = subprocess.run([promtool, "test", "rules", str(UNIT_TESTS)], capture_output=True, text=True, timeout=120,
                         cwd=UNIT_TESTS.parent)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    doc = yaml.safe_load(UNIT_TESTS.read_text())
    assert doc["rule_files"] == [str(Path("../..") / RULES.relative_to(ROOT))]
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in doc["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    alerts = set(_alerts())
    assert alerts == firing, f"alerts never shown firing: {sorted(alerts - firing)}; unknown: {sorted(firing - alerts)}"
    assert alerts == quiet, f"alerts never shown quiet: {sorted(alerts - quiet)}; unknown: {sorted(quiet - alerts)}"


def test_operator_alerts_are_present() -> None:
    # what issue 13 asks an operator to be told about
    alerts = set(_alerts())
    for name in ("MaestroMotifLearnerStalled", "MaestroMotifNoActorsConnected", "MaestroMotifRewardServiceDown",
                 "MaestroMotifRewardServiceErrors", "MaestroMotifRewardCallsFailing", "MaestroMotifPolicyLagHigh",
                 "MaestroMotifAnnotationJobFailed"):
        assert name in alerts
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            assert rule["labels"]["severity"] in {"warning", "critical"}
            assert rule["annotations"]["summary"] and rule["annotations"]["description"]
