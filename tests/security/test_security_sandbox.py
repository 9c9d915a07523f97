"""The in-actor sandbox layer at run time: state a policy keeps between calls is bounded and per episode.

Validation (tests/codegen/hostile_corpus.py) replays 262 recorded states; a policy may behave
well there and misbehave only later in a long episode, so the run-time layer must hold on its own.
"""

from __future__ import annotations

import random

import pytest

from maestromotif.codegen.testapi import make_state
from maestromotif.skills.contract import PolicyError
from maestromotif.skills.sandbox import MAX_MEMORY_ITEMS, SandboxedPolicy

# Well-behaved on shallow levels (as in the recorded states); hoards 50,000 items a call from depth 5.
HOARDER = """SKILL_TURNS = 50


def start(memory):
    memory.seen = []


def choose_skill(state, memory):
    if state.depth >= 5:
        memory.seen.append([state.depth] * 50000)
    return DISCOVERER
"""

CARRY = """SKILL_TURNS = 50


def start(memory):
    memory.calls = 0


def choose_skill(state, memory):
    memory.calls = memory.calls + 1
    if memory.calls > 1:
        return DESCENDER
    return DISCOVERER
"""


def test_memory_growth_over_an_episode_is_stopped() -> None:
    policy = SandboxedPolicy(HOARDER, name="hoarder")
    policy.start(random.Random(0))
    for _ in range(100):
        policy.choose(make_state(depth=1))  # nothing stored
    calls = 0
    with pytest.raises(PolicyError, match="memory holds more than"):
        for calls in range(1, 100):
            policy.choose(make_state(depth=5))
    assert calls == MAX_MEMORY_ITEMS // 50000  # stopped at the first call past the limit
    # The next episode starts from fresh memory: the policy works again.
    policy.start(random.Random(1))
    assert policy.choose(make_state(depth=1)) == 0


def test_memory_does_not_carry_across_episodes() -> None:
    policy = SandboxedPolicy(CARRY, name="carry")
    policy.start(random.Random(0))
    assert [policy.choose(make_state()) for _ in range(3)] == [0, 1, 1]
    policy.start(random.Random(0))
    assert policy.choose(make_state()) == 0
