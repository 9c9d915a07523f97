"""Play NLE episodes with a policy over skills inside the skill controller, scored by a task's detector.

Used to put a generated policy beside the hand-written reference policy on the same seeds. No
trained skill network is loaded here: each skill acts with uniformly random actions (what
``maestromotif env run`` does), so what differs between two policies is only which skill runs
when. A policy that raises, times out or returns a bad skill is a recorded failure of its
episode (the controller falls back to the discoverer); it never stops the run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from maestromotif.env.actions import NUM_ACTIONS
from maestromotif.env.nethack_env import NetHackMonk
from maestromotif.skills.contract import PolicyOverSkills
from maestromotif.skills.controller import SkillController
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


def play_episode(policy: PolicyOverSkills, task: str, seed: int, *, max_steps: int = 10_000) -> EpisodeResult:
    """One episode of ``task`` on dungeon seed ``seed``, skills acting at random with the same seed."""
    spec = TASKS[task]
    env = NetHackMonk(seed=seed, max_episode_steps=max_steps, pass_climb_prompts=spec.pass_climb_prompts)
    try:
        controller = SkillController(policy, seed=seed)
        tracker = TaskTracker(spec)
        rng = np.random.default_rng(seed)
        env.reset_game()
        view = env.view()
        controller.reset(view)
        tracker.reset(view)
        end = "running"
        while True:
            _, terminated, truncated = env.act(int(rng.integers(NUM_ACTIONS)))
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
