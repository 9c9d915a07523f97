"""Skill evaluation: trained against random-action runs from the same states, on real games."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from maestromotif.rewards.bundles import write_random_bundle
from maestromotif.skills.ids import SKILL_NAMES
from maestromotif.training.evaluate import (
    EvaluationError,
    EvaluationResult,
    RunStats,
    SkillComparison,
    evaluate_skills,
    pool_results,
)
from maestromotif.training.settings import TrainingSettings
from maestromotif.training.sf2 import LearnerDriver
from maestromotif.training.skill_stats import SkillRunTracker

torch.set_num_threads(1)


def test_tracker_tags_follow_the_run_they_started() -> None:
    tracker = SkillRunTracker(2)
    # env 0: skill 0 (tag 1) for two steps, then skill 1 (tag 0); env 1: skill 2 (tag 0), episode ends
    assert tracker.starting(np.array([0, 2])).tolist() == [True, True]
    assert tracker.step(np.array([0, 2]), np.array([1.0, 5.0]), np.array([0, 0]), tags=np.array([1, 0])) == []
    # a continuing run keeps its tag whatever this step says
    closed = tracker.step(np.array([0, 2]), np.array([2.0, 1.0]), np.array([0, 1]), tags=np.array([0, 1]))
    assert [(r.skill, r.ret, r.steps, r.tag) for r in closed] == [(2, 6.0, 2, 0)]
    assert tracker.starting(np.array([1, 2])).tolist() == [True, True]  # a switch, and a new episode
    closed = tracker.step(np.array([1, 2]), np.array([0.5, 0.0]), np.array([0, 0]), tags=np.array([0, 1]))
    assert [(r.skill, r.ret, r.steps, r.tag) for r in closed] == [(0, 3.0, 2, 1)]
    assert tracker.tag.tolist() == [0, 1]


def test_comparison_needs_a_margin_of_two_standard_errors() -> None:
    high = RunStats.of([1.0, 1.2, 0.8, 1.0], [10] * 4)
    low = RunStats.of([0.0, 0.2, -0.2, 0.0], [10] * 4)
    assert high.runs == 4 and high.mean_return == pytest.approx(1.0) and high.mean_steps == 10
    assert SkillComparison(high, low).trained_above_random is True
    assert SkillComparison(low, high).trained_above_random is False
    assert SkillComparison(high, high).trained_above_random is False  # equal means: not above
    assert SkillComparison(high, RunStats.of([1.0], [3])).trained_above_random is None  # one run: no error bar
    assert RunStats.of([], []).runs == 0


def test_pooled_stats_equal_the_stats_of_all_runs() -> None:
    rng = np.random.default_rng(0)
    a, b, c = rng.normal(1.0, 0.5, 7), rng.normal(2.0, 1.5, 12), np.array([4.0])
    parts = [RunStats.of(list(x), [3] * len(x)) for x in (a, b, c)] + [RunStats()]
    pooled = RunStats.pooled(parts)
    direct = RunStats.of(list(np.concatenate([a, b, c])), [3] * 20)
    assert pooled.runs == direct.runs == 20
    assert pooled.mean_return == pytest.approx(direct.mean_return)
    assert pooled.stderr == pytest.approx(direct.stderr)
    assert pooled.mean_steps == 3
    assert RunStats.pooled([RunStats()]).runs == 0


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("evaluate")
    driver = LearnerDriver(TrainingSettings(preset="small", device="cpu", batch_size=8 * 32), root / "train", "exp")
    driver.save({"env_steps": 0})
    for skill in SKILL_NAMES:
        write_random_bundle(root / "bundles", skill, seed=5)
    return root / "train" / "exp", root / "bundles"


def test_evaluation_splits_runs_between_trained_and_random(setup: tuple[Path, Path]) -> None:
    checkpoint, bundles = setup
    ticks: list[int] = []
    result = evaluate_skills(checkpoint, bundles, steps=1_200, num_envs=4, random_fraction=0.5, seed=2,
                             progress=ticks.append)
    assert result.env_steps == 1_200 and sum(ticks) == 1_200
    assert result.checkpoint.endswith(".pth") and result.bundle_version
    discoverer = result.skills["discoverer"]  # every game starts with it: both kinds get runs
    assert discoverer.trained.runs > 0 and discoverer.random.runs > 0
    for comparison in result.skills.values():
        for stats in (comparison.trained, comparison.random):
            if stats.runs:
                assert math.isfinite(stats.mean_return) and stats.mean_return >= 0.0  # shaped rewards are >= 0
                assert stats.mean_steps >= 1
                # competence is measured on every run: a fraction, or new squares per step (discoverer)
                assert stats.mean_competence is not None and stats.mean_competence >= 0.0
                assert 0 <= stats.competent_runs <= stats.runs
                assert stats.return_per_step == pytest.approx(stats.mean_return / stats.mean_steps)
    assert sum(result.max_depth_counts.values()) == result.episodes
    json.dumps(result.to_dict())  # plain data


def test_random_fraction_zero_and_one(setup: tuple[Path, Path]) -> None:
    checkpoint, bundles = setup
    only_trained = evaluate_skills(checkpoint, bundles, steps=400, num_envs=2, random_fraction=0.0)
    only_random = evaluate_skills(checkpoint, bundles, steps=400, num_envs=2, random_fraction=1.0)
    assert all(c.random.runs == 0 for c in only_trained.skills.values())
    assert all(c.trained.runs == 0 for c in only_random.skills.values())
    assert only_trained.skills["discoverer"].trained.runs > 0 and only_random.skills["discoverer"].random.runs > 0


def test_evaluation_errors(setup: tuple[Path, Path], tmp_path: Path) -> None:
    checkpoint, bundles = setup
    with pytest.raises(EvaluationError, match="steps"):
        evaluate_skills(checkpoint, bundles, steps=0)
    with pytest.raises(EvaluationError, match="random_fraction"):
        evaluate_skills(checkpoint, bundles, random_fraction=1.5)
    with pytest.raises(EvaluationError, match="does not exist"):
        evaluate_skills(tmp_path / "missing.pth", bundles)
    with pytest.raises(EvaluationError, match="reward bundles"):
        evaluate_skills(checkpoint, tmp_path / "no-bundles")


def test_evaluate_command(setup: tuple[Path, Path], tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from maestromotif.cli import app

    checkpoint, bundles = setup
    out = tmp_path / "eval.json"
    result = CliRunner().invoke(app, ["evaluate", "--checkpoint", str(checkpoint), "--reward-bundles", str(bundles),
                                      "--steps", "200", "--envs", "2", "--out", str(out)],
                                env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "discoverer" in result.output and "trained > random" in result.output
    assert "competence" in result.output
    assert json.loads(out.read_text())["env_steps"] == 200
    missing = CliRunner().invoke(app, ["evaluate", "--checkpoint", str(tmp_path / "none.pth"),
                                       "--reward-bundles", str(bundles), "--steps", "10"])
    assert missing.exit_code == 2 and "does not exist" in missing.output


def test_pool_evaluations_of_one_checkpoint(setup: tuple[Path, Path], tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from maestromotif.cli import app

    checkpoint, bundles = setup
    files = []
    for seed in (1, 2):
        files.append(tmp_path / f"e{seed}.json")
        result = CliRunner().invoke(app, ["evaluate", "--checkpoint", str(checkpoint), "--reward-bundles", str(bundles),
                                          "--steps", "160", "--envs", "2", "--seed", str(seed), "--out", str(files[-1])])
        assert result.exit_code == 0, result.output
    parts = [EvaluationResult.from_dict(json.loads(f.read_text())) for f in files]
    pooled_file = tmp_path / "pooled.json"
    result = CliRunner().invoke(app, ["evaluate", "--pool", str(files[0]), "--pool", str(files[1]),
                                      "--out", str(pooled_file)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    pooled = EvaluationResult.from_dict(json.loads(pooled_file.read_text()))
    assert pooled.env_steps == 320 and pooled.episodes == sum(p.episodes for p in parts)
    disc = [p.skills["discoverer"] for p in parts]
    assert pooled.skills["discoverer"].trained.runs == sum(d.trained.runs for d in disc)
    assert pooled == pool_results(parts)
    # another checkpoint, or a file that is not an evaluation, is refused
    other = parts[1].to_dict() | {"policy_version": 99}
    with pytest.raises(EvaluationError, match="another checkpoint"):
        pool_results([parts[0], EvaluationResult.from_dict(other)])
    (tmp_path / "bad.json").write_text("{}")
    bad = CliRunner().invoke(app, ["evaluate", "--pool", str(files[0]), "--pool", str(tmp_path / "bad.json")])
    assert bad.exit_code == 2 and "not an evaluation result" in bad.output
