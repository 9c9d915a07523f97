"""Skill competence: signals on real NetHack states (wizard mode) and per-run accounting."""

from __future__ import annotations

import math

import numpy as np
import pytest
from skills_helpers import level_teleport, map_level, wish, wizard_env

from maestromotif.env.actions import Action
from maestromotif.skills import rules
from maestromotif.skills.competence import (
    NUM_SIGNALS,
    SHOP_PATTERN,
    SIG_AT_ALTAR,
    SIG_DEPTH,
    SIG_NEW_SQUARES,
    SIG_SHOP,
    CompetenceSignals,
    is_competent,
)
from maestromotif.skills.ids import Skill
from maestromotif.training.skill_stats import SkillRunTracker

pytestmark = pytest.mark.filterwarnings("ignore")


def _fill(signals: CompetenceSignals, env) -> np.ndarray:
    out = np.zeros((1, NUM_SIGNALS), np.float32)
    signals.fill({k: v[None] for k, v in env.buf.items()}, out)
    return out[0]


def _hero(env) -> tuple[int, int]:
    bl = env.buf["blstats"]
    return int(bl[1]), int(bl[0])


def test_new_squares_count_what_became_visible_and_restart_on_a_level_change() -> None:
    env = wizard_env(3)
    signals = CompetenceSignals(1)
    first = _fill(signals, env)
    assert first[SIG_DEPTH] == 1 and first[SIG_NEW_SQUARES] == 0  # episode start: nothing "discovered"
    assert _fill(signals, env)[SIG_NEW_SQUARES] == 0  # nothing changed, nothing new
    map_level(env)  # ^F: the whole level becomes visible
    mapped = _fill(signals, env)
    assert mapped[SIG_NEW_SQUARES] > 100
    assert _fill(signals, env)[SIG_NEW_SQUARES] == 0  # seen squares are not new again
    level_teleport(env, 3)
    arrived = _fill(signals, env)
    assert arrived[SIG_DEPTH] == 3 and arrived[SIG_NEW_SQUARES] == 0  # arriving is not discovering
    map_level(env)
    assert _fill(signals, env)[SIG_NEW_SQUARES] > 100  # the new level's squares count again


def test_standing_on_an_altar_counts_adjacent_does_not() -> None:
    env = wizard_env(3)
    signals = CompetenceSignals(1)
    _fill(signals, env)
    wish(env, "altar")  # an altar under the hero
    altar = _hero(env)
    _fill(signals, env)  # the hero hides the altar it stands on: not known yet (the wish says "An ... altar.")
    for action in (Action.E, Action.W, Action.N, Action.S, Action.NE, Action.NW, Action.SE, Action.SW):
        env.act(action)
        if _hero(env) != altar:
            break
    assert _hero(env) != altar
    assert env.buf["glyphs"][altar] == rules.GLYPH_ALTAR  # visible next to the hero
    assert _fill(signals, env)[SIG_AT_ALTAR] == 0.0
    # back onto it: the hero's glyph hides the altar again, the level's altar memory does not
    dy, dx = altar[0] - _hero(env)[0], altar[1] - _hero(env)[1]
    back = {(0, 1): Action.E, (0, -1): Action.W, (-1, 0): Action.N, (1, 0): Action.S, (-1, 1): Action.NE,
            (-1, -1): Action.NW, (1, 1): Action.SE, (1, -1): Action.SW}[(dy, dx)]
    env.act(back)
    assert _hero(env) == altar
    assert _fill(signals, env)[SIG_AT_ALTAR] == 1.0


@pytest.mark.parametrize(("text", "shop"), [
    (b"For you, esteemed sir; only 13 zorkmids for this potion of healing.", True),
    (b"Asidonhopo offers 5 gold pieces for your scroll.  Sell it? [ynaq] (y)", True),
    (b"You sold a scroll labeled FOOBIE BLETCH for 20 gold pieces.", True),
    (b"You see here 57 gold pieces.", False),
    (b"Hello stranger, welcome to Asidonhopo's general store!", False),
])
def test_shop_messages(text: bytes, shop: bool) -> None:
    assert (SHOP_PATTERN.search(text) is not None) is shop


def _signals(depth: float, new: float = 0.0, altar: float = 0.0, shop: float = 0.0) -> np.ndarray:
    return np.array([[depth, new, altar, shop]], np.float32)


def _run(skill: Skill, rows: list[np.ndarray], done_last: bool = False):
    tracker = SkillRunTracker(1)
    closed = []
    for i, sig in enumerate(rows):
        done = done_last and i == len(rows) - 1
        closed += tracker.step(np.array([int(skill)]), np.array([0.5]), np.array([done]), signals=sig)
    if not done_last:  # a switch to another skill closes the run
        closed += tracker.step(np.array([(int(skill) + 1) % 5]), np.array([0.0]), np.array([False]),
                               signals=rows[-1])
    assert len(closed) == 1
    return closed[0]


def test_run_competence_per_skill() -> None:
    down = _run(Skill.DESCENDER, [_signals(1), _signals(1), _signals(2)])
    assert down.competence == 1.0 and down.competent and down.ret == 1.5 and down.steps == 3
    assert _run(Skill.DESCENDER, [_signals(2), _signals(1)]).competence == 0.0  # up is not descending
    assert _run(Skill.ASCENDER, [_signals(3), _signals(2)], done_last=True).competent
    assert not _run(Skill.ASCENDER, [_signals(3), _signals(3)]).competent
    explore = _run(Skill.DISCOVERER, [_signals(1, 0), _signals(1, 3), _signals(1, 1), _signals(1, 0)])
    assert explore.competence == pytest.approx(1.0) and explore.competent
    idle = _run(Skill.DISCOVERER, [_signals(1, 0)] * 9 + [_signals(1, 2)])
    assert idle.competence == pytest.approx(0.2) and not idle.competent
    assert _run(Skill.WORSHIPPER, [_signals(1), _signals(1, altar=1), _signals(1)]).competent
    assert not _run(Skill.WORSHIPPER, [_signals(1)] * 3).competent
    assert _run(Skill.MERCHANT, [_signals(2, shop=1), _signals(2)]).competent
    assert not _run(Skill.MERCHANT, [_signals(2)] * 4).competent
    assert is_competent(Skill.DISCOVERER, 0.5) and not is_competent(Skill.DESCENDER, 0.0)


def test_runs_without_signals_have_no_competence() -> None:
    tracker = SkillRunTracker(1)
    tracker.step(np.array([1]), np.array([1.0]), np.array([False]))
    (run,) = tracker.step(np.array([2]), np.array([1.0]), np.array([False]))
    assert math.isnan(run.competence) and not run.competent


def test_vec_env_reports_signals_of_each_observation() -> None:
    from maestromotif.env.vec import VecEnv
    from maestromotif.skills.controller import controller_factory

    rng = np.random.default_rng(0)
    with VecEnv([11, 12], controller_factory=controller_factory("exploration", 0)) as env:
        env.reset()
        new_total = 0.0
        for _ in range(60):
            env.step(rng.integers(0, 28, 2))
            sig = env.competence
            assert sig.shape == (2, NUM_SIGNALS)
            np.testing.assert_array_equal(sig[:, SIG_DEPTH], env.group.raw["blstats"][:, 12])
            assert np.all(sig[:, SIG_SHOP] == 0)  # no shop on level 1 within 60 steps
            new_total += float(sig[:, SIG_NEW_SQUARES].sum())
        assert new_total > 0  # random moves reveal some squares
