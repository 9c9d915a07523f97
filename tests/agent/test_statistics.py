"""Evaluation statistics on known inputs: Wilson intervals, standard errors, pooling."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from maestromotif.tasks.evaluation import (
    EpisodeRecord,
    TaskEvaluation,
    TaskEvaluationError,
    condition_summary,
    parse_paper_number,
    plan_units,
    pool_evaluations,
    wilson_interval,
)
from maestromotif.tasks.specs import get_task


@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    [
        (0, 10, 0.0, 0.27753),  # z^2 / (n + z^2)
        (5, 10, 0.23659, 0.76341),
        (10, 10, 0.72247, 1.0),
        (1, 1, 0.20655, 1.0),
        (81, 263, 0.25530, 0.36622),
    ],
)
def test_wilson_interval_known_values(k: int, n: int, low: float, high: float) -> None:
    lo, hi = wilson_interval(k, n)
    assert lo == pytest.approx(low, abs=1e-4) and hi == pytest.approx(high, abs=1e-4)


def test_wilson_interval_edges() -> None:
    assert all(math.isnan(x) for x in wilson_interval(0, 0))
    with pytest.raises(ValueError, match="successes"):
        wilson_interval(3, 2)
    lo, hi = wilson_interval(7, 20)
    assert lo < 7 / 20 < hi
    # Exact bounds at 0 and n successes for every n (rounding once gave 3.5e-18 at n = 64 and 100).
    for n in range(1, 401):
        assert wilson_interval(0, n)[0] == 0.0 and wilson_interval(n, n)[1] == 1.0


def test_chart_of_zero_successes_over_many_episodes(tmp_path: Path) -> None:
    from maestromotif.tasks.evaluation import plot_evaluation

    records = [_rec(t, c, i) for t in ("gnomish", "price") for c in ("trained", "untrained", "random")
               for i in range(100)]
    result = TaskEvaluation(checkpoint="exp/ckpt.pth", checkpoint_name="exp/ckpt.pth", policy_version=1,
                            preset="small", policies="reference", seed=0, max_steps=100, untrained_seed=1,
                            episodes=records)
    png = plot_evaluation(result, tmp_path / "tasks.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_paper_numbers() -> None:
    assert parse_paper_number("46% ± 1.70") == (46.0, 1.70)
    assert parse_paper_number("0.66 ± 0.01") == (0.66, 0.01)
    assert parse_paper_number("0%") == (0.0, 0.0)
    assert parse_paper_number("—") == (None, None)


def _rec(task: str, condition: str, seed: int, *, success: bool = False, count: int = 0, steps: int = 10,
         strict: bool | None = None) -> EpisodeRecord:
    return EpisodeRecord(task=task, condition=condition, seed=seed, steps=steps, reason="success" if success else "death",
                         legacy_success=success, strict_success=success if strict is None else strict,
                         legacy_count=count, strict_count=count, precondition_seen=count > 0, policy_failures=0,
                         skill_steps=[steps, 0, 0, 0, 0], seconds=0.5)


def test_condition_summary_rates_and_counts() -> None:
    recs = [_rec("gnomish", "trained", i, success=i < 3, strict=i < 1) for i in range(10)]
    s = condition_summary(get_task("gnomish"), recs)
    assert s["legacy"]["successes"] == 3 and s["legacy"]["rate"] == pytest.approx(0.3)
    assert (s["legacy"]["ci_low"], s["legacy"]["ci_high"]) == pytest.approx(wilson_interval(3, 10))
    assert s["strict"]["successes"] == 1
    assert s["seconds_per_episode"] == pytest.approx(0.5) and s["steps_per_second"] == pytest.approx(20.0)
    counts = [_rec("transactions", "trained", i, count=c) for i, c in enumerate([0, 1, 2, 3])]
    c = condition_summary(get_task("transactions"), counts)
    assert c["legacy"]["mean"] == pytest.approx(1.5)
    assert c["legacy"]["stderr"] == pytest.approx(math.sqrt(5 / 3) / 2)  # sample sd / sqrt(n)
    assert c["legacy_conditional"]["n"] == 3 and c["legacy_conditional"]["mean"] == pytest.approx(2.0)


def _evaluation(records: list[EpisodeRecord], name: str = "policy/checkpoint_1.pth") -> TaskEvaluation:
    return TaskEvaluation(checkpoint="/x/" + name, checkpoint_name=name, policy_version=7, preset="small",
                          policies="reference", seed=0, max_steps=100, untrained_seed=1, episodes=records)


def test_pooling_equals_the_statistics_of_all_episodes() -> None:
    a = [_rec("gnomish", "trained", i, success=i % 3 == 0) for i in range(7)]
    b = [_rec("gnomish", "trained", 100 + i, success=i % 2 == 0) for i in range(5)]
    c = [_rec("price", "random", i, count=i % 3) for i in range(6)]
    pooled = pool_evaluations([_evaluation(a), _evaluation(b + c)])
    direct = _evaluation(a + b + c)
    assert pooled.summary() == direct.summary()
    assert pooled.summary()["gnomish"]["conditions"]["trained"]["legacy"]["successes"] == 3 + 3
    # the JSON form reads back to the same statistics
    again = TaskEvaluation.from_dict(pooled.to_dict())
    assert again.summary() == direct.summary()


def test_pooling_refuses_mixed_or_duplicated_parts() -> None:
    a = _evaluation([_rec("gnomish", "trained", 0)])
    with pytest.raises(TaskEvaluationError, match="differs"):
        pool_evaluations([a, _evaluation([_rec("gnomish", "trained", 1)], name="other/checkpoint_2.pth")])
    with pytest.raises(TaskEvaluationError, match="twice"):
        pool_evaluations([a, _evaluation([_rec("gnomish", "trained", 0)])])
    with pytest.raises(TaskEvaluationError, match="no results"):
        pool_evaluations([])


def test_bad_result_files_fail_with_the_reason() -> None:
    good = _evaluation([_rec("gnomish", "trained", 0)]).to_dict()
    with pytest.raises(TaskEvaluationError, match="format"):
        TaskEvaluation.from_dict({**good, "format": 99})
    bad = {**good, "episodes": [{**good["episodes"][0], "task": "nope"}]}
    with pytest.raises(TaskEvaluationError, match="unknown task"):
        TaskEvaluation.from_dict(bad)
    bad = {**good, "episodes": [{**good["episodes"][0], "skill_steps": [1, 2]}]}
    with pytest.raises(TaskEvaluationError, match="bad counts"):
        TaskEvaluation.from_dict(bad)


def test_units_share_seeds_across_tasks_and_conditions() -> None:
    units = plan_units(["gnomish", "buc"], ["trained", "random"], episodes=5, seed=10, batch=2)
    assert len(units) == 3 * 2 * 2
    for task in ("gnomish", "buc"):
        for cond in ("trained", "random"):
            seeds = [s for u in units if u.task == task and u.condition == cond for s in u.seeds]
            assert seeds == [10, 11, 12, 13, 14]
