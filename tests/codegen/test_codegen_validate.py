"""Positive controls and the report: every reference policy and the rules as skill functions validate."""

from __future__ import annotations

import json

import pytest
from hostile_corpus import VALID_POLICY

from maestromotif.codegen import ArtifactKind
from maestromotif.codegen.fixtures import FixtureError
from maestromotif.codegen.testapi import HelperError, describe_test_api, make_crop, make_state
from maestromotif.codegen.validate import STAGES, ValidationLimits, ValidationReport, validate_code
from maestromotif.skills.reference import (
    REFERENCE_NAMES,
    TRAINING_POLICY,
    reference_skill_functions_source,
    reference_source,
)


@pytest.mark.parametrize("name", REFERENCE_NAMES)
def test_reference_policies_validate(name: str) -> None:
    kind = ArtifactKind.TRAINING_POLICY if name == TRAINING_POLICY else ArtifactKind.TASK_POLICY
    report = validate_code(reference_source(name), kind)
    assert report.valid, report.errors
    assert [s.stage for s in report.stages] == list(STAGES)
    assert "every answer an available skill" in report.stage("harness").detail
    assert report.agreement is None
    assert "rlimit-cpu" in report.isolation


def test_rules_as_skill_functions_validate_and_agree_fully() -> None:
    report = validate_code(reference_skill_functions_source(), ArtifactKind.SKILL_FUNCTIONS)
    assert report.valid, report.errors
    assert report.agreement is not None
    # every skill's termination and both initiations, each in agreement on every recorded input
    assert {k for k in report.agreement} >= {"worshipper.initiation", "merchant.initiation",
                                             "discoverer.termination", "descender.termination"}
    assert all(v == 1.0 for v in report.agreement.values()), report.agreement


def test_skill_functions_that_differ_from_the_rules_show_lower_agreement() -> None:
    source = (
        "def skill_precondition(crop, num_items):\n    return (False, False)\n\n\n"
        "def skill_termination(skill, skill_turns, depth, start_depth, worshipper_pre, merchant_pre, base_turns):\n"
        "    return skill_turns >= base_turns\n"
    )
    report = validate_code(source, "skill_functions")
    assert report.valid, report.errors
    assert report.agreement is not None
    assert report.agreement["worshipper.initiation"] < 1.0  # the fixture has altars next to the hero
    assert report.agreement["descender.termination"] < 1.0


def test_passing_llm_tests() -> None:
    tests = (
        "def test_descends_from_the_top():\n"
        "    assert choose_skill(make_state(depth=1), Memory()) == DESCENDER\n\n\n"
        "def test_explores_deep():\n"
        "    memory = Memory()\n"
        "    start(memory)\n"
        "    assert choose_skill(make_state(depth=3, visited_main_depths=[1, 2, 3]), memory) == DISCOVERER\n"
        "    assert SKILL_TURNS == 50\n"
    )
    report = validate_code(VALID_POLICY, "task_policy", tests_source=tests)
    assert report.valid, report.errors
    assert report.stage("llm-tests").detail.startswith("2 tests passed")


def test_skill_function_tests_with_a_crop() -> None:
    tests = (
        "def test_altar():\n"
        "    crop = make_crop(features={(2, 3): 'altar'})\n"
        "    assert skill_precondition(crop, 1) == (True, False)\n"
        "    assert skill_precondition(crop, 0) == (False, False)\n"
        "    assert skill_precondition(make_crop(monsters={(3, 4): 'shopkeeper'}), 2) == (False, True)\n"
    )
    report = validate_code(reference_skill_functions_source(), "skill_functions", tests_source=tests)
    assert report.valid, report.errors


def test_no_tests_is_a_skipped_pass() -> None:
    report = validate_code(VALID_POLICY, "task_policy")
    assert report.valid
    assert report.stage("llm-tests").detail.startswith("skipped")


def test_report_round_trip_and_checks() -> None:
    report = validate_code(VALID_POLICY, "task_policy")
    data = json.loads(json.dumps(report.to_dict()))
    assert ValidationReport.from_dict(data) == report
    bad = dict(data, valid=False)
    with pytest.raises(ValueError, match="disagrees"):
        ValidationReport.from_dict(bad)
    with pytest.raises(ValueError, match="out of order"):
        ValidationReport.from_dict(dict(data, stages=list(reversed(data["stages"]))))
    with pytest.raises(ValueError, match="unknown field"):
        ValidationReport.from_dict(dict(data, extra=1))
    with pytest.raises(ValueError, match="agreement"):
        ValidationReport.from_dict(dict(data, agreement={"x": 2.0}))


def test_limits_are_checked() -> None:
    with pytest.raises(ValueError, match="per_call_time_s"):
        ValidationLimits(per_call_time_s=0)
    with pytest.raises(ValueError, match="unknown artifact kind"):
        validate_code(VALID_POLICY, "policy")
    with pytest.raises(FixtureError, match="fewer than"):
        validate_code(VALID_POLICY, "task_policy", limits=ValidationLimits(min_states=10**6))


def test_test_helpers() -> None:
    s = make_state(depth=4, visited_main_depths=[1, 2], merchant_available=True)
    assert s.depth == 4 and s.visited_main_depths == frozenset({1, 2}) and 4 in s.available
    with pytest.raises(HelperError, match="unknown field"):
        make_state(hp=3)
    with pytest.raises(HelperError, match="must be an int"):
        make_state(depth="3")
    crop = make_crop(monsters={(0, 0): "shopkeeper"})
    assert crop.monsters[0][0] == "shopkeeper" and crop.chars[3][3] == " "
    with pytest.raises(HelperError):
        make_crop(chars=["..."])
    assert "make_state" in describe_test_api()


def test_contract_texts() -> None:
    from maestromotif.codegen.contracts import contract_for

    policy = contract_for("task_policy")
    assert "choose_skill(state, memory)" in policy and "make_state" in policy
    skills = contract_for(ArtifactKind.SKILL_FUNCTIONS, with_tests=False)
    assert "skill_precondition(crop, num_items)" in skills and "make_state" not in skills


def test_harness_replay_catches_state_kept_outside_memory() -> None:
    # The subset leaves no way to keep state between episodes except memory; the harness still
    # checks by replaying an episode. Here a trusted predefined counter stands in for such a leak.
    import itertools

    from maestromotif.codegen.validate import _episodes_payload
    from maestromotif.codegen.worker import StageFailure, _harness_policy, _Timer
    from maestromotif.skills.sandbox import SandboxedPolicy

    counter = itertools.count()
    source = VALID_POLICY.replace("if state.depth < 3:", "if next_call() < 3:")
    policy = SandboxedPolicy(source, predefined={"next_call": lambda: next(counter)})
    episodes = _episodes_payload(ArtifactKind.TASK_POLICY, 100)
    with pytest.raises(StageFailure, match="keeps state between episodes"):
        _harness_policy(policy, episodes, _Timer())
    assert "replaying an episode gives the same answers" in _harness_policy(
        SandboxedPolicy(VALID_POLICY), episodes, _Timer())


def test_concurrent_validations_are_independent() -> None:
    # The service validates from several threads at once: each gets its own child and verdict.
    from concurrent.futures import ThreadPoolExecutor

    from hostile_corpus import CASES

    loop = next(c for c in CASES if c.id == "infinite-loop")
    jobs = [(VALID_POLICY, "task_policy"), (loop.source, loop.kind), (reference_skill_functions_source(),
                                                                      "skill_functions")]
    with ThreadPoolExecutor(3) as pool:
        reports = list(pool.map(lambda job: validate_code(*job), jobs))
    assert reports[0].valid and reports[2].valid
    assert reports[1].failed_stage == "harness"
    assert reports[2].agreement is not None and reports[0].agreement is None
