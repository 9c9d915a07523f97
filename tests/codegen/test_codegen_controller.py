"""Generated artifacts in the skill controller on real NetHack: failures end the episode, never the actor."""

from __future__ import annotations

import numpy as np
import pytest
from test_codegen_artifacts import record_for

from maestromotif.codegen import ArtifactKind
from maestromotif.codegen.artifacts import ArtifactPolicyLoader, ArtifactStore
from maestromotif.codegen.validate import validate_code
from maestromotif.env.actions import NUM_ACTIONS
from maestromotif.env.vec import VecEnv
from maestromotif.skills.controller import controller_factory
from maestromotif.skills.reference import reference_skill_functions_source, reference_source

pytestmark = pytest.mark.filterwarnings("ignore")

# Valid on every recorded state (a recorded episode has at most 30 selections), but from the 41st
# selection of an episode on it misbehaves: a bug only a long game shows.
LATE_BUGS = {
    "invalid id": ("return 99", "99"),
    "raise": ("return [0][memory.calls]", "IndexError"),
    "timeout": ("while True:\n            memory.calls = memory.calls + 1", "exceeded"),
}


def late_bug(body: str) -> str:
    return (
        "SKILL_TURNS = 5\n\n\n"
        "def start(memory):\n    memory.calls = 0\n\n\n"
        "def choose_skill(state, memory):\n"
        "    memory.calls = memory.calls + 1\n"
        f"    if memory.calls > 40:\n        {body}\n"
        "    return DISCOVERER\n"
    )


def store_validated(tmp_path, code: str, kind: ArtifactKind, task: str | None = "gnomish") -> str:
    report = validate_code(code, kind)
    assert report.valid, report.errors
    return ArtifactStore(tmp_path).put(record_for(code, kind, report, task=task))


@pytest.mark.parametrize("bug", list(LATE_BUGS))
def test_runtime_failure_ends_the_episode_not_the_actor(tmp_path, bug: str) -> None:
    body, fragment = LATE_BUGS[bug]
    sha = store_validated(tmp_path, late_bug(body), ArtifactKind.TASK_POLICY)
    loader = ArtifactPolicyLoader(str(tmp_path), sha)
    loader.check()
    rng = np.random.default_rng(0)
    with VecEnv([5], controller_factory=controller_factory(loader, seed=5)) as env:
        env.reset()
        finished = []
        for _ in range(3000):
            _, _, dones, _, ended = env.step(rng.integers(1, 17, size=1))
            finished += ended
            if any(e.policy_failure for e in finished):
                break
        failed = [e for e in finished if e.policy_failure]
        assert failed, "the late bug never fired"
        assert "choose_skill" in failed[0].policy_failure and fragment in failed[0].policy_failure
        assert failed[0].truncated and not failed[0].terminated
        controller = env.group.controllers[0]
        assert controller.episode_failed is None  # a fresh episode started
        for _ in range(20):  # and the actor keeps stepping
            env.step(rng.integers(1, 17, size=1))
        assert controller.stats.steps > 0


def test_validated_artifacts_run_a_full_episode(tmp_path) -> None:
    policy = store_validated(tmp_path, reference_source("gnomish"), ArtifactKind.TASK_POLICY)
    skills = store_validated(tmp_path, reference_skill_functions_source(), ArtifactKind.SKILL_FUNCTIONS, task=None)
    loader = ArtifactPolicyLoader(str(tmp_path), policy, skills)
    rng = np.random.default_rng(1)
    with VecEnv([7], controller_factory=controller_factory(loader, seed=7),
                env_kwargs={"max_episode_steps": 600}) as env:
        env.reset()
        for _ in range(700):
            _, _, _, _, ended = env.step(rng.integers(0, NUM_ACTIONS, size=1))
            if ended:
                break
        assert ended, "the episode did not end within its step limit"
        assert ended[0].policy_failure is None
        stats = env.group.controllers[0].last_episode
        assert stats is not None and stats.policy_failures == 0 and stats.selections >= 1
