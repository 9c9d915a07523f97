"""Evaluation results carry competence and return per step; old result files still read."""

from __future__ import annotations

import math

import pytest

from maestromotif.training.evaluate import EvaluationResult, RunStats, SkillComparison, pool_results


def test_run_stats_competence_and_return_per_step() -> None:
    stats = RunStats.of([1.0, 3.0], [10, 30], competence=[1.0, 0.0], competent=[True, False])
    assert stats.return_per_step == pytest.approx(0.1)
    assert stats.mean_competence == 0.5 and stats.competent_runs == 1
    assert stats.competence_stderr == pytest.approx(0.5)
    assert RunStats.of([], []).mean_competence is None


def _result(trained: RunStats, random: RunStats) -> EvaluationResult:
    return EvaluationResult("ck.pth", 3, "b", 100, 2, 0.5, 0, {"descender": SkillComparison(trained, random)}, {1: 2})


def test_pooled_competence_and_verdict_round_trip() -> None:
    a = RunStats.of([1.0] * 10, [5] * 10, [1.0] * 8 + [0.0] * 2, [True] * 8 + [False] * 2)
    b = RunStats.of([1.0] * 30, [5] * 30, [1.0] * 24 + [0.0] * 6, [True] * 24 + [False] * 6)
    r = RunStats.of([0.0] * 40, [5] * 40, [0.0] * 39 + [1.0], [False] * 39 + [True])
    pooled = pool_results([_result(a, r), _result(b, r)])
    t = pooled.skills["descender"].trained
    assert t.runs == 40 and t.mean_competence == pytest.approx(0.8) and t.competent_runs == 32
    direct = RunStats.of([1.0] * 40, [5] * 40, [1.0] * 32 + [0.0] * 8)
    assert t.competence_stderr == pytest.approx(direct.competence_stderr)
    assert pooled.skills["descender"].competence_above_random is True
    data = pooled.to_dict()
    assert data["skills"]["descender"]["competence_above_random"] is True
    back = EvaluationResult.from_dict(data)
    assert back.skills["descender"].trained == t


def test_files_written_before_competence_still_read() -> None:
    old = _result(RunStats.of([1.0, 2.0], [3, 3]), RunStats.of([0.0, 1.0], [3, 3])).to_dict()
    for side in ("trained", "random"):
        for key in ("return_per_step", "mean_competence", "competence_stderr", "competent_runs"):
            del old["skills"]["descender"][side][key]
    back = EvaluationResult.from_dict(old)
    assert back.skills["descender"].trained.mean_competence is None
    assert back.skills["descender"].competence_above_random is None
    bad = _result(RunStats.of([1.0], [3], [1.0], [True]), RunStats()).to_dict()
    bad["skills"]["descender"]["trained"]["competent_runs"] = 5
    with pytest.raises(ValueError, match="competent_runs 5"):
        EvaluationResult.from_dict(bad)
    assert not math.isnan(back.skills["descender"].trained.mean_return)
