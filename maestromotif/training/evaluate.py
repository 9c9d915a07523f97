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
from typing import Any

import numpy as np

from maestromotif.skills.ids import NUM_SKILLS, SKILL_NAMES
from maestromotif.training.skill_stats import SkillRunTracker

TRAINED, RANDOM = 0, 1  # run tags


@dataclass
class RunStats:
    """Returns of one kind of run (trained or random) of one skill."""

    runs: int = 0
    mean_return: float | None = None
    stderr: float | None = None  # standard error of the mean (None below 2 runs)
    mean_steps: float | None = None

    @classmethod
    def of(cls, returns: list[float], steps: list[int]) -> RunStats:
        if not returns:
            return cls()
        values = np.asarray(returns, np.float64)
        se = float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else None
        return cls(len(values), float(values.mean()), se, float(np.mean(steps)))


@dataclass
class SkillComparison:
    trained: RunStats
    random: RunStats

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
        return out


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
        scorer = RewardScorer(bundle_dir, device="cpu")
    except (OSError, ValueError) as exc:
        raise EvaluationError(f"reward bundles: {exc}") from exc

    rng = np.random.default_rng(seed)
    tracker = SkillRunTracker(num_envs)
    plays_random = np.zeros(num_envs, bool)
    returns = {(k, tag): [] for k in range(NUM_SKILLS) for tag in (TRAINED, RANDOM)}
    lengths = {key: [] for key in returns}
    depths: dict[int, int] = {}
    episodes = 0
    done_steps = 0
    try:
        with VecEnv([seed * 1000 + i for i in range(num_envs)], controller_factory=controller_factory("exploration", seed)) as env:
            obs = env.reset()
            dones = np.zeros(num_envs, bool)
            while done_steps < steps:
                skills = obs["skills"].copy()
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
                for run in tracker.step(skills, rewards, dones, tags=tags):
                    if 0 <= run.skill < NUM_SKILLS:
                        returns[(run.skill, run.tag)].append(run.ret)
                        lengths[(run.skill, run.tag)].append(run.steps)
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
            RunStats.of(returns[(k, TRAINED)], lengths[(k, TRAINED)]),
            RunStats.of(returns[(k, RANDOM)], lengths[(k, RANDOM)]),
        )
        for k in range(NUM_SKILLS)
    }
    return EvaluationResult(
        checkpoint=str(policy.path),
        policy_version=int(policy.info["policy_version"]),
        bundle_version=scorer.version,
        env_steps=done_steps,
        episodes=episodes,
        random_fraction=random_fraction,
        seed=seed,
        skills=skills_out,
        max_depth_counts=dict(sorted(depths.items())),
    )
