"""SkillController on synthetic views: call-and-return switching, Δdepth, fork inference, guard."""

from __future__ import annotations

import random

import pytest
from skills_helpers import make_view

from maestromotif.skills import RandomSkillPolicy, Skill, SkillState
from maestromotif.skills import rules
from maestromotif.skills.controller import SkillController
from maestromotif.skills.reference import load_reference
from maestromotif.skills.sandbox import load_policy


class Scripted:
    """Test double: returns the queued answers in order (an Exception instance is raised)."""

    has_custom_preconditions = False
    has_custom_termination = False

    def __init__(self, answers: list[object], base_turns: int = 50) -> None:
        self.name = "scripted"
        self.base_turns = base_turns
        self.answers = list(answers)
        self.states: list[SkillState] = []

    def start(self, rng: random.Random) -> None:
        pass

    def choose(self, state: SkillState) -> object:
        self.states.append(state)
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer


def test_discoverer_runs_d_game_turns_then_policy_chooses() -> None:
    policy = Scripted([Skill.DESCENDER])
    c = SkillController(policy, seed=0)
    assert c.reset(make_view(turn=1)) == Skill.DISCOVERER
    assert c.step(make_view(turn=30)) == Skill.DISCOVERER  # 29 turns < D = 50
    assert c.step(make_view(turn=51)) == Skill.DESCENDER  # 50 turns: ends
    assert c.acting_skill == Skill.DISCOVERER
    assert policy.states[-1].skill == Skill.DISCOVERER and policy.states[-1].skill_turns == 50
    # descender runs until one level deeper
    assert c.step(make_view(turn=400)) == Skill.DESCENDER
    policy.answers.append(Skill.ASCENDER)
    assert c.step(make_view(turn=401, depth=2)) == Skill.ASCENDER
    assert c.stats.skill_runs.tolist() == [1, 1, 1, 0, 0]
    assert c.stats.switches == 2


def test_depth_change_fifo_cleared_at_termination() -> None:
    c = SkillController(Scripted([Skill.DESCENDER, Skill.DISCOVERER]), seed=0)
    c.reset(make_view(depth=1, turn=1))
    c.step(make_view(depth=1, turn=2))
    assert c.depth_change == 0.0
    c.step(make_view(depth=1, turn=60))  # discoverer ends -> descender; FIFO restarts at depth 1
    c.step(make_view(depth=1, turn=61))
    assert c.depth_change == 0.0
    c.step(make_view(depth=2, turn=62))  # descent ends the descender
    assert c.depth_change == 1.0  # computed before the FIFO is cleared
    c.step(make_view(depth=2, turn=63))
    assert c.depth_change == 0.0


def test_depth_change_is_the_sign_since_the_skill_started() -> None:
    c = SkillController(Scripted([]), seed=0)  # discoverer never ends within these turns
    c.reset(make_view(depth=3))
    c.step(make_view(depth=5, turn=2))
    assert c.depth_change == 1.0
    c.step(make_view(depth=2, turn=3))
    assert c.depth_change == -1.0


def test_precondition_ends_any_skill_and_state_reports_availability() -> None:
    policy = Scripted([Skill.MERCHANT, Skill.MERCHANT])
    c = SkillController(policy, seed=0)
    c.reset(make_view())
    shop = {(10, 41): rules.GLYPH_SHOPKEEPER}
    assert c.step(make_view(items=1, glyphs=shop, turn=2)) == Skill.MERCHANT
    assert policy.states[-1].merchant_available and policy.states[-1].available == (0, 1, 2, 4)
    assert c.step(make_view(items=1, glyphs=shop, turn=3)) == Skill.MERCHANT  # re-chosen every step
    assert c.stats.selections == 2 and c.stats.switches == 1


def test_fork_inferred_from_two_down_staircases_in_the_main_dungeon() -> None:
    c = SkillController(Scripted([]), seed=0)
    c.reset(make_view())
    stairs = {(2, 3): rules.GLYPH_DOWNSTAIR, (15, 70): rules.GLYPH_DOWNSTAIR}
    c.step(make_view(depth=3, glyphs={(2, 3): rules.GLYPH_DOWNSTAIR}, turn=2))
    assert c.branch_depth is None
    c.step(make_view(depth=3, dungeon=2, glyphs=stairs, turn=3))  # not in the main dungeon: ignored
    assert c.branch_depth is None
    c.step(make_view(depth=3, glyphs=stairs, turn=4))
    assert c.branch_depth == 3


def test_fork_inferred_when_a_descent_leaves_the_main_dungeon() -> None:
    policy = Scripted([Skill.DESCENDER, Skill.DESCENDER, Skill.DISCOVERER])
    c = SkillController(policy, seed=0)
    c.reset(make_view(depth=2))
    c.step(make_view(depth=2, turn=60))  # -> descender from depth 2, main dungeon
    c.step(make_view(depth=3, dungeon=0, turn=61))  # main -> main: no inference
    assert c.branch_depth is None
    c.step(make_view(depth=4, dungeon=2, turn=62))  # descender that started at 3 in dungeon 0 ends in the Mines
    assert c.branch_depth == 3
    assert policy.states[-1].branch_depth == 3


def test_descent_inside_the_mines_does_not_set_the_fork() -> None:
    c = SkillController(Scripted([Skill.DESCENDER, Skill.DISCOVERER]), seed=0)
    c.reset(make_view(depth=4, dungeon=2))
    c.step(make_view(depth=4, dungeon=2, turn=60))
    c.step(make_view(depth=5, dungeon=2, turn=61))
    assert c.branch_depth is None


@pytest.mark.parametrize(
    "bad",
    [RuntimeError("boom"), 7, -1, "prayer", None, 2.5, True],
)
def test_guard_records_failures_and_falls_back_to_discoverer(bad: object) -> None:
    policy = Scripted([Skill.DESCENDER, bad, Skill.ASCENDER])
    c = SkillController(policy, seed=0)
    c.reset(make_view())
    assert c.step(make_view(turn=60)) == Skill.DESCENDER
    assert c.step(make_view(turn=61, depth=2)) == Skill.DISCOVERER  # the bad answer
    assert c.stats.policy_failures == 1
    assert "choose_skill" in c.stats.failure_messages[0]
    assert c.step(make_view(turn=200, depth=2)) == Skill.ASCENDER  # the policy is asked again later


def test_out_of_range_id_message_is_clear() -> None:
    c = SkillController(Scripted([9]), seed=0)
    c.reset(make_view())
    c.step(make_view(turn=60))
    assert "skill id 9 out of range 0..4" in c.stats.failure_messages[0]


def test_unavailable_skill_is_a_failure_only_with_the_mask() -> None:
    for mask, expected, failures in ((False, Skill.MERCHANT, 0), (True, Skill.DISCOVERER, 1)):
        c = SkillController(Scripted([Skill.MERCHANT]), seed=0, mask_unavailable=mask)
        c.reset(make_view())
        assert c.step(make_view(turn=60)) == expected
        assert c.stats.policy_failures == failures


def test_sandboxed_policy_that_hangs_or_raises_in_start_never_escapes() -> None:
    src = (
        "SKILL_TURNS = 5\ndef start(memory):\n    memory.x = 1 // 0\n"
        "def choose_skill(state, memory):\n    while True:\n        pass\n"
    )
    c = SkillController(load_policy(src, name="hang", max_ticks=5_000), seed=0)
    assert c.reset(make_view()) == Skill.DISCOVERER
    assert c.step(make_view(turn=10)) == Skill.DISCOVERER
    assert c.stats.policy_failures == 2
    assert "ZeroDivisionError" in c.stats.failure_messages[0]
    assert "budget" in c.stats.failure_messages[1]


def test_custom_rules_from_policy_source_are_used_and_guarded() -> None:
    src = (
        "SKILL_TURNS = 5\ndef start(memory):\n    pass\n"
        "def choose_skill(state, memory):\n    return ASCENDER if state.worshipper_available else DESCENDER\n"
        "def skill_precondition(crop, num_items):\n"
        "    altar = any(f == 'altar' for row in crop.features for f in row)\n"
        "    shk = any(m == 'shopkeeper' for row in crop.monsters for m in row)\n"
        "    return (altar and num_items > 0, shk and num_items > 0)\n"
        "def skill_termination(skill, skill_turns, depth, start_depth, wpre, mpre, base):\n"
        "    return wpre or mpre or skill_turns >= 2 * base\n"
    )
    c = SkillController(load_policy(src, name="custom"), seed=0)
    c.reset(make_view())
    assert c.step(make_view(turn=6)) == Skill.DISCOVERER  # 5 turns < 2·D
    assert c.step(make_view(turn=11)) == Skill.DESCENDER
    assert c.step(make_view(turn=12, items=1, glyphs={(11, 41): rules.GLYPH_ALTAR})) == Skill.ASCENDER
    assert c.stats.policy_failures == 0
    bad = src.replace("return wpre or mpre or skill_turns >= 2 * base", "return 1 // 0")
    c = SkillController(load_policy(bad, name="bad"), seed=0)
    c.reset(make_view())
    assert c.step(make_view(turn=6)) == Skill.DESCENDER  # falls back to the default rule (5 >= D)
    assert c.stats.policy_failures == 1


def test_returns_durations_trace_and_episode_boundary() -> None:
    c = SkillController(Scripted([Skill.DESCENDER, Skill.DISCOVERER]), seed=0, record_trace=True)
    c.reset(make_view(turn=1))
    c.step(make_view(turn=30), reward=1.0)
    c.step(make_view(turn=51), reward=2.0)  # discoverer ends: 50 turns
    c.step(make_view(turn=52), reward=4.0)  # descender acts
    c.step(make_view(turn=55, depth=2), reward=8.0)  # descender ends
    stats = c.finish()
    assert stats.skill_returns.tolist() == [3.0, 12.0, 0.0, 0.0, 0.0]
    assert stats.skill_steps.tolist() == [2, 2, 0, 0, 0]
    assert stats.skill_turns.tolist() == [50, 4, 0, 0, 0]
    assert c.last_trace.tolist() == [0, 0, 1, 1]
    assert [(r.skill, r.start_step, r.end_step) for r in stats.runs] == [(0, 1, 2), (1, 3, 4), (0, 5, 4)]
    c.reset(make_view(turn=1))
    assert c.last_episode is stats and c.stats.steps == 0 and c.trace.size == 0


def test_same_seed_same_skill_sequence() -> None:
    def run(seed: int) -> list[int]:
        c = SkillController(RandomSkillPolicy(base_turns=1), seed=seed)
        c.reset(make_view())
        return [c.step(make_view(turn=t, depth=1 + t % 3)) for t in range(2, 60)]

    assert run(3) == run(3)
    assert run(3) != run(4)


def test_reference_exploration_reproducible_per_seed() -> None:
    def run(seed: int) -> list[int]:
        c = SkillController(load_reference("exploration"), seed=seed)
        out = []
        for episode in range(6):
            c.reset(make_view())
            out.append(c.step(make_view(turn=600)))
        return out

    assert run(1) == run(1)


def test_rejects_malformed_policy_objects() -> None:
    with pytest.raises(TypeError, match="lacks 'start'"):
        SkillController(object(), seed=0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="base_turns"):
        SkillController(Scripted([], base_turns=0), seed=0)


def test_descent_on_the_first_step_of_a_new_skill_is_seen() -> None:
    c = SkillController(Scripted([Skill.DESCENDER, Skill.DISCOVERER]), seed=0)
    c.reset(make_view(depth=3, turn=1))
    c.step(make_view(depth=3, turn=60))  # -> descender, standing on the stairs
    c.step(make_view(depth=4, turn=61))  # its first action descends
    assert c.depth_change == 1.0


def test_game_over_view_is_counted_but_not_acted_on() -> None:
    policy = Scripted([])
    c = SkillController(policy, seed=0)
    c.reset(make_view(depth=2, turn=10))
    dead = make_view(depth=2, turn=70)
    dead.blstats[:] = 0  # what NLE shows after death
    assert c.step(dead, reward=-5.0) == Skill.DISCOVERER
    assert policy.states == [] and c.stats.steps == 1 and c.stats.skill_returns[0] == -5.0
    assert c.finish().skill_turns[0] == 0 and c.stats.max_depth == 2
