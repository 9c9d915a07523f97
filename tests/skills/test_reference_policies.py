"""Reference policies over skills on a grid of states: always a valid skill, and the intended choices."""

from __future__ import annotations

import itertools
import random
from dataclasses import replace

import pytest

from maestromotif.skills import Skill, SkillState
from maestromotif.skills.reference import REFERENCE_NAMES, TASK_POLICIES, load_reference
from maestromotif.tasks import TASKS

BASE = SkillState(
    skill=Skill.DISCOVERER, skill_turns=50, skill_steps=40, depth=1, dungeon=0, branch_depth=None, max_depth=1,
    xp_level=1, gold=0, kills=0, ate_in_mines=False, sales=0, turn=100, step=40,
    worshipper_available=False, merchant_available=False, visited_main_depths=frozenset({1}),
)


def grid() -> list[SkillState]:
    states = []
    for skill, depth, dungeon, branch, (w, m), xp, eaten, sales in itertools.product(
        list(Skill), [1, 2, 3, 4, 5, 9, 10], [0, 2, 3], [None, 2, 4], [(False, False), (True, False), (False, True)],
        [1, 5], [False, True], [0, 1],
    ):
        states.append(replace(BASE, skill=int(skill), depth=depth, dungeon=dungeon, branch_depth=branch,
                              worshipper_available=w, merchant_available=m, xp_level=xp, ate_in_mines=eaten,
                              sales=sales, gold=30 * sales, kills=30 * sales,
                              visited_main_depths=frozenset(range(1, depth + 1))))
    return states


GRID = grid()


@pytest.mark.parametrize("name", REFERENCE_NAMES)
def test_every_state_gets_a_valid_skill(name: str) -> None:
    policy = load_reference(name)
    for seed in range(3):
        policy.start(random.Random(seed))
        for state in GRID:
            assert int(policy.choose(state)) in range(5), state


@pytest.mark.parametrize("name", TASK_POLICIES)
def test_task_policies_use_the_tasks_parameters(name: str) -> None:
    policy = load_reference(name)
    policy.start(random.Random(0))
    assert policy.base_turns == TASKS[name].base_turns
    assert policy.memory.max_depth == TASKS[name].max_depth


def choose(name: str, seed: int = 0, **changes: object) -> int:
    policy = load_reference(name)
    policy.start(random.Random(seed))
    return int(policy.choose(replace(BASE, **changes)))


def test_exploration_sweeps_down_then_up() -> None:
    policy = load_reference("exploration")
    policy.start(random.Random(0))
    policy.memory.mines = False
    policy.memory.max_depth = 3
    seq, depth, skill = [], 1, int(Skill.DISCOVERER)
    for _ in range(10):
        skill = int(policy.choose(replace(BASE, skill=skill, depth=depth)))
        seq.append((depth, Skill(skill).name))
        depth += {Skill.DESCENDER: 1, Skill.ASCENDER: -1}.get(Skill(skill), 0)
    assert [d for d, _ in seq] == [1, 2, 2, 3, 3, 2, 2, 1, 1, 2]
    assert [s for _, s in seq][:4] == ["DESCENDER", "DISCOVERER", "DESCENDER", "DISCOVERER"]
    assert seq[4] == (3, "ASCENDER") and seq[8] == (1, "DESCENDER")


def test_exploration_episode_parameters_are_drawn_per_episode() -> None:
    policy = load_reference("exploration")
    drawn = set()
    rng = random.Random(0)
    for _ in range(40):
        policy.start(rng)
        drawn.add((policy.memory.max_depth, policy.memory.mines))
    assert drawn == {(d, m) for d in (2, 3, 4) for m in (False, True)}


@pytest.mark.parametrize(
    ("name", "changes", "expected"),
    [
        ("gnomish", dict(depth=3, branch_depth=3), Skill.DESCENDER),
        ("gnomish", dict(depth=4, branch_depth=3, skill=Skill.DESCENDER), Skill.ASCENDER),  # wrong branch
        ("gnomish", dict(depth=1, skill=Skill.DISCOVERER), Skill.DESCENDER),
        ("delphi", dict(depth=4, dungeon=2, branch_depth=3), Skill.ASCENDER),
        ("delphi", dict(depth=6), Skill.DESCENDER),
        ("minetown", dict(depth=5, dungeon=2, branch_depth=3), Skill.DESCENDER),
        ("minetown", dict(depth=8, dungeon=2, branch_depth=3), Skill.DISCOVERER),
        ("transactions", dict(depth=3, merchant_available=True, skill=Skill.MERCHANT), Skill.MERCHANT),
        ("transactions", dict(depth=4, dungeon=2, branch_depth=3, skill=Skill.DESCENDER), Skill.ASCENDER),
        ("price", dict(depth=2, merchant_available=True), Skill.MERCHANT),
        ("buc", dict(depth=1, worshipper_available=True, merchant_available=True), Skill.WORSHIPPER),
        ("goldenexit", dict(depth=3, gold=25, kills=30, visited_main_depths=frozenset({1, 2, 3})), Skill.ASCENDER),
        ("goldenexit", dict(depth=2, gold=25, kills=30, visited_main_depths=frozenset({1, 2})), Skill.DESCENDER),
        ("goldenexit", dict(depth=4, dungeon=2), Skill.ASCENDER),
        ("goldenexit", dict(depth=2, dungeon=3), Skill.ASCENDER),  # other branch: no crash (D7)
        ("levelupsell", dict(xp_level=3), Skill.DISCOVERER),
        ("levelupsell", dict(xp_level=4, depth=2, merchant_available=True), Skill.MERCHANT),
        ("levelupsell", dict(xp_level=4, skill=Skill.DISCOVERER), Skill.DESCENDER),
        ("discoveryhunger", dict(depth=4, dungeon=2), Skill.DISCOVERER),
        ("discoveryhunger", dict(depth=4, dungeon=2, ate_in_mines=True), Skill.ASCENDER),
        ("discoveryhunger", dict(depth=5, ate_in_mines=True), Skill.DESCENDER),
    ],
)
def test_intended_choices(name: str, changes: dict[str, object], expected: Skill) -> None:
    assert choose(name, **changes) == expected
