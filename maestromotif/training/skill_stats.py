"""Per-skill intrinsic returns: one definition for the learner and for baselines.

A *skill run* is a maximal stretch of steps of one env under one skill; it ends when the
skill changes or the episode ends. Its return is the sum of the intrinsic rewards of its
samples (sample t is credited to the skill active in observation t).
"""

from __future__ import annotations

import numpy as np


class SkillRunTracker:
    """Accumulates skill-run returns for n envs, one step at a time."""

    def __init__(self, num_envs: int) -> None:
        self.skill = np.full(num_envs, -1, np.int64)
        self.ret = np.zeros(num_envs, np.float64)
        self.steps = np.zeros(num_envs, np.int64)

    def step(self, skills: np.ndarray, rewards: np.ndarray, dones: np.ndarray) -> list[tuple[int, float, int]]:
        """Add one step (skill of each env's observation, its reward, whether the action ended the episode).

        Returns the runs closed by this step as (skill, return, steps).
        """
        closed: list[tuple[int, float, int]] = []
        skills = np.asarray(skills, np.int64)
        for e in np.nonzero((skills != self.skill) & (self.skill >= 0))[0]:
            closed.append(self._close(int(e)))
        self.skill = skills.copy()
        self.ret += rewards
        self.steps += 1
        for e in np.nonzero(np.asarray(dones, bool))[0]:
            closed.append(self._close(int(e)))
            self.skill[e] = -1
        return [c for c in closed if c[2] > 0]

    def _close(self, e: int) -> tuple[int, float, int]:
        out = (int(self.skill[e]), float(self.ret[e]), int(self.steps[e]))
        self.ret[e] = 0.0
        self.steps[e] = 0
        return out
