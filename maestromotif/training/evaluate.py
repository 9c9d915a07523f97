"""Skill evaluation: a trained policy's intrinsic return per skill, against random actions.

Games run the training policy over skills (the ``exploration`` reference controller), as the
actors do. At the start of every skill run a coin decides who plays that run: the trained
policy (sampling, as in training) or uniformly random actions. Both kinds of run therefore
start from the same states, the ones the trained policy leads the game into, so the comparison
is fair even for skills that random play alone never reaches (an ascender needs a descent first,
a merchant a shopkeeper). Rewards come from the reward models in this process through the one
shaping rule; returns are counted per skill run exactly as the learner counts them
(:mod:`maestromotif.training.skill_stats`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from maestromotif.skills.ids import NUM_SKILLS, SKILL_NAMES
from maestromotif.training.skill_stats import SkillRunTracker

TRAINED, RANDOM = 0, 1  # run tags


@dataclass
class RunStats:
    """Returns and competence of one kind of run (trained or random) of one skill."""

    runs: int = 0
    mean_return: float | None = None
    stderr: float | None = None  # standard error of the mean (None below 2 runs)
    mean_steps: float | None = None
    # intrinsic return per step: all runs' return over all runs' steps
    return_per_step: float | None = None
    # competence (maestromotif.skills.competence): mean measure (fraction of competent runs, or new
    # squares per step for the discoverer), its standard error, and the number of competent runs
    mean_competence: float | None = None
    competence_stderr: float | None = None
    competent_runs: int | None = None

    @classmethod
    def of(cls, returns: list[float], steps: list[int], competence: list[float] | None = None,
           competent: list[bool] | None = None) -> RunStats:
        if not returns:
            return cls()
        values = np.asarray(returns, np.float64)
        se = float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else None
        out = cls(len(values), float(values.mean()), se, float(np.mean(steps)),
                  float(values.sum() / max(1, int(np.sum(steps)))))
        if competence is not None and len(competence) == len(returns):
            c = np.asarray(competence, np.float64)
            out.mean_competence = float(c.mean())
            out.competence_stderr = float(c.std(ddof=1) / math.sqrt(len(c))) if len(c) > 1 else None
            out.competent_runs = int(np.sum(competent)) if competent is not None else None
        return out

    @classmethod
    def pooled(cls, parts: list[RunStats]) -> RunStats:
        """The statistics of all runs of several parts together (exact mean, pooled variance)."""
        parts = [p for p in parts if p.runs]
        n = sum(p.runs for p in parts)
        if n == 0:
            return cls()
        mean, stderr = _pool([(p.runs, p.mean_return, p.stderr) for p in parts])  # type: ignore[misc]
        steps = sum(p.runs * p.mean_steps for p in parts) / n  # type: ignore[operator]
        out = cls(n, mean, stderr, float(steps), mean / steps if steps else None)
        if all(p.mean_competence is not None for p in parts):
            out.mean_competence, out.competence_stderr = _pool(
                [(p.runs, p.mean_competence, p.competence_stderr) for p in parts])  # type: ignore[misc]
            if all(p.competent_runs is not None for p in parts):
                out.competent_runs = sum(p.competent_runs for p in parts)  # type: ignore[misc]
        return out


def _pool(parts: list[tuple[int, float, float | None]]) -> tuple[float, float | None]:
    """Mean and standard error of several parts' values together, from (runs, mean, stderr)."""
    n = sum(runs for runs, _, _ in parts)
    mean = sum(runs * m for runs, m, _ in parts) / n
    # within-part sums of squares (from each part's standard error) plus between-part spread
    squares = sum((runs - 1) * ((se or 0.0) ** 2) * runs + runs * (m - mean) ** 2 for runs, m, se in parts)
    stderr = math.sqrt(squares / (n - 1)) / math.sqrt(n) if n > 1 else None
    return float(mean), stderr


@dataclass
class SkillComparison:
    trained: RunStats
    random: RunStats

    @property
    def competence_above_random(self) -> bool | None:
        """Trained competence above random by more than two standard errors of the difference."""
        a, b = self.trained, self.random
        if a.competence_stderr is None or b.competence_stderr is None or a.mean_competence is None \
                or b.mean_competence is None:
            return None
        return a.mean_competence - b.mean_competence > 2.0 * math.hypot(a.competence_stderr, b.competence_stderr)

    @property
    def trained_above_random(self) -> bool | None:
        """Whether the trained mean is above the random mean by more than two standard errors of
        the difference (None when either side has fewer than 2 runs)."""
        a, b = self.trained, self.random
        if a.stderr is None or b.stderr is None or a.mean_return is None or b.mean_return is None:
            return None
        return a.mean_return - b.mean_return > 2.0 * math.hypot(a.stderr, b.stderr)


@dataclass
class EvaluationResult:
    checkpoint: str
    policy_version: int
    bundle_version: str
    env_steps: int
    episodes: int
    random_fraction: float
    seed: int
    skills: dict[str, SkillComparison]
    max_depth_counts: dict[int, int] = field(default_factory=dict)  # finished episodes by deepest level

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for name, comparison in self.skills.items():
            out["skills"][name]["trained_above_random"] = comparison.trained_above_random
            out["skills"][name]["competence_above_random"] = comparison.competence_above_random
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvaluationResult:
        """Read back :meth:`to_dict` (e.g. a ``maestromotif evaluate --out`` file)."""
        try:
            skills = {
                str(name): SkillComparison(_run_stats(c["trained"]), _run_stats(c["random"]))
                for name, c in data["skills"].items()
            }
            return cls(
                checkpoint=str(data["checkpoint"]), policy_version=int(data["policy_version"]),
                bundle_version=str(data["bundle_version"]), env_steps=int(data["env_steps"]),
                episodes=int(data["episodes"]), random_fraction=float(data["random_fraction"]), seed=int(data["seed"]),
                skills=skills, max_depth_counts={int(k): int(v) for k, v in data.get("max_depth_counts", {}).items()},
            )
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise EvaluationError(f"not an evaluation result: {exc!r}") from exc


def _run_stats(data: dict[str, Any]) -> RunStats:
    def number(key: str) -> float | None:
        value = data[key]
        return None if value is None else float(value)

    def optional(key: str) -> float | None:  # absent in files written before competence existed
        return number(key) if key in data else None

    runs = int(data["runs"])
    if runs < 0 or (runs > 0 and number("mean_return") is None):
        raise ValueError(f"runs {runs} with mean_return {data['mean_return']!r}")
    competent = optional("competent_runs")
    if competent is not None and not 0 <= competent <= runs:
        raise ValueError(f"competent_runs {competent} not in [0, {runs}]")
    return RunStats(runs, number("mean_return"), number("stderr"), number("mean_steps"), optional("return_per_step"),
                    optional("mean_competence"), optional("competence_stderr"),
                    None if competent is None else int(competent))


def pool_results(results: list[EvaluationResult]) -> EvaluationResult:
    """One result from evaluations of the same checkpoint with the same reward models (e.g. other
    seeds, run in parallel): run statistics pooled, counts summed; ``seed`` is the first part's."""
    if not results:
        raise EvaluationError("pool: no results")
    first = results[0]

    def identity(r: EvaluationResult) -> tuple[str, int, str]:
        return Path(r.checkpoint).name, r.policy_version, r.bundle_version

    for other in results[1:]:
        if identity(other) != identity(first):
            raise EvaluationError(f"pool: {identity(other)} is another checkpoint or reward models than {identity(first)}")
    depths: dict[int, int] = {}
    for r in results:
        for depth, count in r.max_depth_counts.items():
            depths[depth] = depths.get(depth, 0) + count
    return EvaluationResult(
        checkpoint=first.checkpoint,
        policy_version=first.policy_version,
        bundle_version=first.bundle_version,
        env_steps=sum(r.env_steps for r in results),
        episodes=sum(r.episodes for r in results),
        random_fraction=first.random_fraction,
        seed=first.seed,
        skills={
            name: SkillComparison(RunStats.pooled([r.skills[name].trained for r in results]),
                                  RunStats.pooled([r.skills[name].random for r in results]))
            for name in first.skills
        },
        max_depth_counts=dict(sorted(depths.items())),
    )


class EvaluationError(ValueError):
    """Bad evaluation arguments or inputs (the message says which)."""


def evaluate_skills(
    checkpoint: str | os.PathLike[str],
    bundle_dir: str | os.PathLike[str],
    *,
    steps: int = 100_000,
    num_envs: int = 16,
    random_fraction: float = 0.5,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> EvaluationResult:
    """Play ``steps`` env steps (over all envs) and compare trained with random-action skill runs.

    ``checkpoint``: a learner checkpoint file or experiment folder (its latest checkpoint);
    ``bundle_dir``: the reward bundles the policy was trained with.
    """
    if steps < 1:
        raise EvaluationError(f"steps: {steps} < 1")
    if not 1 <= num_envs <= 256:
        raise EvaluationError(f"num_envs: {num_envs} not in [1, 256]")
    if not 0.0 <= random_fraction <= 1.0:
        raise EvaluationError(f"random_fraction: {random_fraction} not in [0, 1]")
    from maestromotif.env.actions import NUM_ACTIONS
    from maestromotif.env.vec import VecEnv
    from maestromotif.rewards.scorer import RewardScorer
    from maestromotif.skills.controller import controller_factory
    from maestromotif.training.acting import CheckpointPolicy

    try:
        policy = CheckpointPolicy(checkpoint, num_envs)
    except ValueError as exc:
        raise EvaluationError(str(exc)) from exc
    try:
        # one caller: waiting for other callers' rows to batch with would only add latency
        scorer = RewardScorer(bundle_dir, device="cpu", max_wait_s=0.0)
    except (OSError, ValueError) as exc:
        raise EvaluationError(f"reward bundles: {exc}") from exc

    rng = np.random.default_rng(seed)
    tracker = SkillRunTracker(num_envs)
    plays_random = np.zeros(num_envs, bool)
    returns = {(k, tag): [] for k in range(NUM_SKILLS) for tag in (TRAINED, RANDOM)}
    lengths = {key: [] for key in returns}
    competence: dict[tuple[int, int], list[float]] = {key: [] for key in returns}
    competent: dict[tuple[int, int], list[bool]] = {key: [] for key in returns}
    depths: dict[int, int] = {}
    episodes = 0
    done_steps = 0
    try:
        with VecEnv([seed * 1000 + i for i in range(num_envs)], controller_factory=controller_factory("exploration", seed)) as env:
            obs = env.reset()
            dones = np.zeros(num_envs, bool)
            while done_steps < steps:
                skills = obs["skills"].copy()
                signals = env.competence.copy()  # of observation t, as skills
                starting = tracker.starting(skills)
                plays_random[starting] = rng.random(int(starting.sum())) < random_fraction
                # The trained policy sees every step, random runs included, so its recurrent
                # state follows the whole game as it would in training.
                actions = policy(obs, dones)
                actions = np.where(plays_random, rng.integers(0, NUM_ACTIONS, num_envs), actions)
                # sample t's reward scores observation t's message under observation t's skill
                rewards = scorer.score(skills, obs["messages"], obs["stat_changes"], obs["message_counts"]).skill_rewards
                obs, _, step_dones, _, finished = env.step(actions)
                dones = step_dones.astype(bool)
                tags = np.where(plays_random, RANDOM, TRAINED)
                for run in tracker.step(skills, rewards, dones, tags=tags, signals=signals):
                    if 0 <= run.skill < NUM_SKILLS:
                        returns[(run.skill, run.tag)].append(run.ret)
                        lengths[(run.skill, run.tag)].append(run.steps)
                        competence[(run.skill, run.tag)].append(run.competence)
                        competent[(run.skill, run.tag)].append(run.competent)
                for stats in finished:
                    episodes += 1
                    depths[stats.max_depth] = depths.get(stats.max_depth, 0) + 1
                done_steps += num_envs
                if progress is not None:
                    progress(num_envs)
    finally:
        scorer.close()
    skills_out = {
        SKILL_NAMES[k]: SkillComparison(
            RunStats.of(returns[(k, TRAINED)], lengths[(k, TRAINED)], competence[(k, TRAINED)], competent[(k, TRAINED)]),
            RunStats.of(returns[(k, RANDOM)], lengths[(k, RANDOM)], competence[(k, RANDOM)], competent[(k, RANDOM)]),
        )
        for k in range(NUM_SKILLS)
    }
    return EvaluationResult(
        checkpoint=str(policy.path.resolve()),
        policy_version=int(policy.info["policy_version"]),
        bundle_version=scorer.version,
        env_steps=done_steps,
        episodes=episodes,
        random_fraction=random_fraction,
        seed=seed,
        skills=skills_out,
        max_depth_counts=dict(sorted(depths.items())),
    )
