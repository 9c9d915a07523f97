"""The hostile/broken corpus: every program is rejected or contained with the right stage verdict."""

from __future__ import annotations

import os
import tempfile

import pytest
from hostile_corpus import CASES, VALID_POLICY, Case

from maestromotif.codegen.validate import STAGES, validate_code


def test_corpus_is_large_and_covers_every_stage() -> None:
    assert len(CASES) >= 30
    assert len({c.id for c in CASES}) == len(CASES)
    assert {c.stage for c in CASES} == set(STAGES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_rejected_at_the_right_stage(case: Case) -> None:
    report = validate_code(case.source, case.kind, tests_source=case.tests)
    assert not report.valid
    assert report.failed_stage == case.stage, report.errors
    assert case.fragment in report.stages[-1].detail, report.errors
    # every stage before the failing one passed, none after it ran
    assert [s.stage for s in report.stages] == list(STAGES[: STAGES.index(case.stage) + 1])
    assert all(s.passed for s in report.stages[:-1])
    if STAGES.index(case.stage) >= STAGES.index("isolated-run"):
        assert "seccomp" in report.isolation or "netns" in report.isolation, report.isolation


def _isolated_dirs() -> set[str]:
    return {n for n in os.listdir(tempfile.gettempdir()) if n.startswith("mm-isolated-")}


@pytest.mark.parametrize("bad", ["infinite-loop", "memory-bomb", "load-time-int-bomb"])
def test_valid_program_after_a_hostile_one(bad: str) -> None:
    before = _isolated_dirs()
    case = next(c for c in CASES if c.id == bad)
    assert not validate_code(case.source, case.kind).valid
    report = validate_code(VALID_POLICY, "task_policy")
    assert report.valid, report.errors
    assert _isolated_dirs() <= before  # nothing left behind
