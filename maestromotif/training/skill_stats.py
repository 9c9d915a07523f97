"""Per-skill intrinsic returns: one definition for the learner, evaluation and baselines.

A *skill run* is a maximal stretch of steps of one env under one skill; it ends when the
skill changes or the episode ends. Its return is the sum of the intrinsic rewards of its
samples (sample t is credited to the skill active in observation t). Given the env's
competence signals (:mod:`maestromotif.skills.competence`), a run also gets its competence
measure, with the same boundaries.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from maestromotif.skills.competence import RunCompetence, is_competent


class ClosedRun(NamedTuple):
    """A finished skill run: its skill, return, length in steps, the tag it started with and,
    when competence signals were given, its competence measure (NaN otherwise)."""

    skill: int
    ret: float
    steps: int
    tag: int
    competence: float = math.nan

    @property
    def competent(self) -> bool:
        return not math.isnan(self.competence) and is_competent(self.skill, self.competence)


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
        self.competence = RunCompetence(num_envs)
        self.has_signals = False

    def starting(self, skills: np.ndarray) -> np.ndarray:
        """Which envs begin a new run with this step's skills (a switch, or the first step of an episode)."""
        return np.asarray(skills, np.int64) != self.skill

    def step(
        self, skills: np.ndarray, rewards: np.ndarray, dones: np.ndarray, tags: np.ndarray | None = None,
        signals: np.ndarray | None = None,
    ) -> list[ClosedRun]:
        """Add one step (skill of each env's observation, its reward, whether the action ended the episode).

        ``tags``: per env, the tag of a run that starts at this step (ignored for continuing runs).
        ``signals``: the env's competence signals of these observations (float32 [n, 4]); without
        them runs carry no competence measure.
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
        if signals is not None:
            signals = np.asarray(signals, np.float64)
            self.has_signals = True
            self.competence.start(starting, signals)
            self.competence.add(signals)
        self.ret += rewards
        self.steps += 1
        for e in np.nonzero(np.asarray(dones, bool))[0]:
            closed.append(self._close(int(e)))
            self.skill[e] = -1
        return [c for c in closed if c.steps > 0]

    def _close(self, e: int) -> ClosedRun:
        skill, steps = int(self.skill[e]), int(self.steps[e])
        measure = self.competence.measure(e, skill, steps) if self.has_signals else math.nan
        out = ClosedRun(skill, float(self.ret[e]), steps, int(self.tag[e]), measure)
        self.ret[e] = 0.0
        self.steps[e] = 0
        return out
