"""Initiation, termination and the controller on real NetHack states (NLE 1.0, wizard mode)."""

from __future__ import annotations

import random

import numpy as np
import pytest
from skills_helpers import create_monster, find_fork, level_teleport, map_level, teleport_to, wish, wizard_env

from maestromotif.env.actions import Action
from maestromotif.skills import Skill, SkillState
from maestromotif.skills import rules
from maestromotif.skills.controller import SkillController, crop_view
from maestromotif.skills.reference import load_reference

pytestmark = pytest.mark.filterwarnings("ignore")


class Always:
    """Test double: always asks for the same skill."""

    has_custom_preconditions = False
    has_custom_termination = False

    def __init__(self, skill: int, base_turns: int = 50) -> None:
        self.name, self.skill, self.base_turns = "always", skill, base_turns
        self.states: list[SkillState] = []

    def start(self, rng: random.Random) -> None:
        pass

    def choose(self, state: SkillState) -> object:
        self.states.append(state)
        return self.skill


def pre(env) -> tuple[bool, bool]:
    v = env.view()
    return rules.preconditions(v.glyphs, v.hero_row, v.hero_col, v.acquired_items)


def step_off(env) -> None:
    start = (env.view().hero_row, env.view().hero_col)
    for a in (Action.E, Action.W, Action.N, Action.S, Action.NE, Action.NW, Action.SE, Action.SW):
        env.act(a)
        if (env.view().hero_row, env.view().hero_col) != start:
            return
    raise AssertionError("could not step off")


def test_worshipper_initiation_next_to_a_real_altar() -> None:
    env = wizard_env(3)
    wish(env, "altar")  # an altar under the hero
    assert b"altar" in env.message
    step_off(env)
    assert pre(env) == (False, False)  # no acquired item yet
    wish(env, "ring of adornment")
    assert env.view().acquired_items == 1
    assert pre(env) == (True, False)
    # the generated-code view of the same crop names the feature
    assert any(f == "altar" for row in crop_view(env.view()).features for f in row)
    c = SkillController(Always(Skill.WORSHIPPER), seed=0)
    c.reset(env.view())
    assert c.step(env.view()) == Skill.WORSHIPPER  # the precondition ends the discoverer at once


def test_merchant_initiation_needs_a_shopkeeper_not_a_priest() -> None:
    env = wizard_env(3)
    wish(env, "ring of adornment")
    create_monster(env, "aligned priest")
    v = env.view()
    assert np.isin(v.glyphs, [rules.GLYPH_PRIEST]).any()
    crop = rules.hero_crop(v.tty_chars, v.tty_colors, v.glyphs, v.hero_row, v.hero_col)
    assert rules.legacy_preconditions(crop.chars, crop.colors, v.acquired_items)[1]  # the original fires (D9)
    assert pre(env) == (False, False)
    create_monster(env, "shopkeeper")
    assert pre(env) == (False, True)


def test_descender_and_ascender_terminate_on_real_level_changes() -> None:
    env = wizard_env(5)
    policy = Always(Skill.DESCENDER)
    c = SkillController(policy, seed=0)
    c.reset(env.view())
    level_teleport(env, 2)  # arrive below the start: a level change the discoverer ignores
    c.step(env.view())
    assert c.skill == Skill.DISCOVERER
    # make the discoverer end (D game turns) with the rest macro, then descend for real
    while c.skill == Skill.DISCOVERER:
        env.act(Action.REST)
        c.step(env.view())
    assert c.skill == Skill.DESCENDER
    map_level(env)
    ys, xs = np.nonzero(env.buf["glyphs"] == rules.GLYPH_DOWNSTAIR)
    teleport_to(env, int(ys[0]), int(xs[0]))
    env.act(Action.DOWN)
    assert b"You descend the stairs" in env.message
    policy.skill = Skill.ASCENDER
    assert c.step(env.view()) == Skill.ASCENDER
    assert c.depth_change == 1.0
    env.act(Action.UP)
    assert b"You climb up the stairs" in env.message
    policy.skill = Skill.DISCOVERER
    assert c.step(env.view()) == Skill.DISCOVERER
    assert c.depth_change == -1.0
    assert c.stats.skill_runs.tolist()[:3] == [2, 1, 1]


def test_fork_found_on_the_real_fork_level_and_gnomish_policy_descends_there() -> None:
    env = wizard_env(3)
    c = SkillController(load_reference("gnomish"), seed=0)
    c.reset(env.view())
    fork = find_fork(env)
    c.step(env.view())
    assert c.branch_depth == fork
    # take each down staircase until one leads into the Mines; the descender inference agrees
    stairs = list(zip(*np.nonzero(env.buf["glyphs"] == rules.GLYPH_DOWNSTAIR)))
    c2 = SkillController(Always(Skill.DESCENDER, base_turns=1), seed=0)
    for y, x in stairs:
        level_teleport(env, fork)
        teleport_to(env, int(y), int(x))
        c2.reset(env.view())
        env.act(Action.REST)
        c2.step(env.view())  # discoverer ends after D=1 turn -> descender from the fork
        env.act(Action.DOWN)
        c2.step(env.view())
        if env.view().dungeon_number == 2:
            assert c2.branch_depth == fork
            break
        assert c2.branch_depth is None
    else:
        raise AssertionError("no staircase led into the Mines")
