"""Play NLE episodes with a policy over skills inside the skill controller, scored by a task's detector.

Used to put a generated policy beside the hand-written reference policy on the same seeds. No
trained skill network is loaded here. Two stand-ins for the skills:

- ``random``: every skill acts with uniformly random actions (what ``maestromotif env run``
  does). The actions then do not depend on the policy over skills, so two policies on the same
  seed play the *same* game; only which skill is credited differs.
- ``stairs``: the descender and ascender are scripted in wizard mode (map the level, teleport
  onto a staircase of the right kind, then the real ``>``/``<`` action; on the fork level either
  down staircase, at random), the other skills act at random. Now the policy's choices move the
  hero between levels and branches, so navigation tasks can tell two policies apart.

A policy that raises, times out or returns a bad skill is a recorded failure of its episode (the
controller falls back to the discoverer); it never stops the run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import random

import numpy as np

from maestromotif.codegen.fixtures import stairs_move
from maestromotif.env.actions import NUM_ACTIONS, Action
from maestromotif.env.nethack_env import NetHackMonk
from maestromotif.skills.contract import PolicyOverSkills
from maestromotif.skills.controller import SkillController
from maestromotif.skills.ids import Skill
from maestromotif.tasks import TASKS, TaskTracker


@dataclass(frozen=True)
class EpisodeResult:
    seed: int
    steps: int
    end: str  # died, step limit, task done
    outcome: dict[str, Any]
    switches: int
    selections: int
    policy_failures: int
    failure_messages: tuple[str, ...]
    max_depth: int


SKILL_STAND_INS = ("random", "stairs")


def play_episode(policy: PolicyOverSkills, task: str, seed: int, *, max_steps: int = 10_000,
                 skills: str = "random") -> EpisodeResult:
    """One episode of ``task`` on dungeon seed ``seed``; ``skills`` picks the stand-in (module docstring)."""
    if skills not in SKILL_STAND_INS:
        raise ValueError(f"skills: {skills!r} not one of {SKILL_STAND_INS}")
    spec = TASKS[task]
    scripted = skills == "stairs"
    env = NetHackMonk(seed=seed, max_episode_steps=max_steps, pass_climb_prompts=spec.pass_climb_prompts,
                      wizard=scripted)
    try:
        controller = SkillController(policy, seed=seed)
        tracker = TaskTracker(spec)
        rng = np.random.default_rng(seed)
        stairs_rng = random.Random(seed)
        env.reset_game()
        view = env.view()
        controller.reset(view)
        tracker.reset(view)
        end = "running"
        moved_run = -1
        while True:
            action = int(rng.integers(NUM_ACTIONS))
            skill = controller.skill
            run_id = int(controller.stats.skill_runs.sum())
            if scripted and skill in (Skill.DESCENDER, Skill.ASCENDER) and run_id != moved_run:
                moved_run = run_id  # one scripted move per run; the run ends when the depth changes
                down = skill == Skill.DESCENDER
                on_stairs = stairs_move(env, down, stairs_rng)
                action = int(Action.DOWN if down else Action.UP) if on_stairs else int(Action.SEARCH)
            _, terminated, truncated = env.act(action)
            view = env.view()
            controller.step(view, 0.0)
            tracker.update(view)
            if terminated or truncated or tracker.done:
                end = "died" if terminated else ("step limit" if truncated else "task done")
                break
        stats = controller.finish()
    finally:
        env.close()
    return EpisodeResult(seed, stats.steps, end, tracker.outcome.as_dict(), stats.switches, stats.selections,
                         stats.policy_failures, tuple(stats.failure_messages), stats.max_depth)
