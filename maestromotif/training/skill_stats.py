"""Per-skill intrinsic returns: one definition for the learner, evaluation and baselines.

A *skill run* is a maximal stretch of steps of one env under one skill; it ends when the
skill changes or the episode ends. Its return is the sum of the intrinsic rewards of its
samples (sample t is credited to the skill active in observation t).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class ClosedRun(NamedTuple):
    """A finished skill run: its skill, return, length in steps and the tag it started with."""

    skill: int
    ret: float
    steps: int
    tag: int


class SkillRunTracker:
    """Accumulates skill-run returns for n envs, one step at a time.

    Each run may carry an integer *tag* (e.g. which policy played it), taken from the step
    that starts the run; evaluation uses it to split trained from random-action runs.
    """

    def __init__(self, num_envs: int) -> None:
        self.skill = np.full(num_envs, -1, np.int64)
        self.tag = np.zeros(num_envs, np.int64)
        self.ret = np.zeros(num_envs, np.float64)
        self.steps = np.zeros(num_envs, np.int64)

    def starting(self, skills: np.ndarray) -> np.ndarray:
        """Which envs begin a new run with this step's skills (a switch, or the first step of an episode)."""
        return np.asarray(skills, np.int64) != self.skill

    def step(
        self, skills: np.ndarray, rewards: np.ndarray, dones: np.ndarray, tags: np.ndarray | None = None
    ) -> list[ClosedRun]:
        """Add one step (skill of each env's observation, its reward, whether the action ended the episode).

        ``tags``: per env, the tag of a run that starts at this step (ignored for continuing runs).
        Returns the runs closed by this step.
        """
        closed: list[ClosedRun] = []
        skills = np.asarray(skills, np.int64)
        starting = skills != self.skill
        for e in np.nonzero(starting & (self.skill >= 0))[0]:
            closed.append(self._close(int(e)))
        if tags is not None:
            self.tag[starting] = np.asarray(tags, np.int64)[starting]
        self.skill = skills.copy()
        self.ret += rewards
        self.steps += 1
        for e in np.nonzero(np.asarray(dones, bool))[0]:
            closed.append(self._close(int(e)))
            self.skill[e] = -1
        return [c for c in closed if c.steps > 0]

    def _close(self, e: int) -> ClosedRun:
        out = ClosedRun(int(self.skill[e]), float(self.ret[e]), int(self.steps[e]), int(self.tag[e]))
        self.ret[e] = 0.0
        self.steps[e] = 0
        return out
