"""Each macro action on a real (wizard-mode) NetHack game: messages and inventory before/after."""

from __future__ import annotations

import re

import numpy as np
import pytest
from nle import nethack

from maestromotif.env.actions import NUM_ACTIONS, Action
from maestromotif.env.nethack_env import NetHackMonk, hide_messages

from envtest_helpers import (
    SEED_HEALING,
    SEED_PROTECTION,
    SEED_SLEEP,
    energy,
    inventory,
    level_teleport,
    teleport_to_down_stairs,
    turn,
    wish,
    wizard_env,
)


@pytest.fixture
def env() -> NetHackMonk:
    e = wizard_env(11)
    yield e
    e.close()


def _count(desc: str) -> int:
    m = re.match(r"(\d+) ", desc)
    return int(m.group(1)) if m else 1


def test_character_is_a_neutral_human_male_monk_without_pet(env: NetHackMonk) -> None:
    status = bytes(env.buf["tty_chars"][22]).decode()
    assert "Agent" not in status or "Candidate" in status  # wizard mode renames the player
    assert "Candidate" in status and "Neutral" in status  # Monk's first rank title
    inv = inventory(env)
    assert any("spellbook of" in d for d in inv.values())
    # no pet: the only monster glyphs on the map are the hero's own
    glyphs = env.buf["glyphs"]
    mons = (glyphs >= nethack.GLYPH_MON_OFF) & (glyphs < nethack.GLYPH_INVIS_OFF)
    assert int(mons.sum()) == 1


def test_move_changes_position_or_says_why(env: NetHackMonk) -> None:
    before = env.buf["blstats"][:2].copy()
    moved = False
    for a in (Action.N, Action.E, Action.S, Action.W):
        env.act(a)
        if not np.array_equal(env.buf["blstats"][:2], before):
            moved = True
            break
    assert moved


def test_eat_then_nw_eats_the_first_offered_item(env: NetHackMonk) -> None:
    env.act(Action.EAT)
    assert env.message.startswith(b"What do you want to eat? [")
    first = chr(re.search(rb"\[([a-zA-Z])", env.message).group(1)[0])
    before = inventory(env)[first]
    env.act(Action.NW)
    after = inventory(env).get(first, "")
    assert after != before  # fewer of them, partly eaten, or gone
    assert env.just_eaten
    assert env.view().just_eaten


def test_eat_then_other_action_cancels(env: NetHackMonk) -> None:
    inv = inventory(env)
    t = turn(env)
    env.act(Action.EAT)
    env.act(Action.SE)
    assert env.message == b"Never mind."
    assert inventory(env) == inv and turn(env) == t and not env.just_eaten


def test_quaff_then_nw_drinks_first_potion(env: NetHackMonk) -> None:
    env.act(Action.QUAFF)
    assert env.message.startswith(b"What do you want to drink? [")
    letter = chr(re.search(rb"\[([a-zA-Z])", env.message).group(1)[0])
    n = _count(inventory(env)[letter])
    env.act(Action.NW)
    assert _count(inventory(env).get(letter, "0 gone")) == n - 1
    assert not env.just_eaten  # drinking is not eating


def test_drop_drops_an_item_acquired_this_episode(env: NetHackMonk) -> None:
    start = inventory(env)
    # nothing acquired yet: drop is a no-op (Esc), the turn does not pass
    t = turn(env)
    env.act(Action.DROP)
    assert turn(env) == t and inventory(env) == start
    wish(env, "ring of adornment")
    inv = inventory(env)
    new = set(inv) - set(start)
    assert len(new) == 1 and env.acquired_items() == 1
    (letter,) = new
    env.act(Action.DROP)
    assert env.message.startswith(b"You drop ")
    assert letter not in inventory(env)
    assert env.acquired_items() == 0
    assert set(inventory(env)) == set(start)  # starting items are never dropped


def _step_somewhere(env: NetHackMonk) -> Action:
    """Move one square in some direction; return the direction taken."""
    for a in (Action.N, Action.E, Action.S, Action.W, Action.NE, Action.SE, Action.SW, Action.NW):
        pos = env.buf["blstats"][:2].copy()
        env.act(a)
        if not np.array_equal(env.buf["blstats"][:2], pos):
            return a
    raise AssertionError("the hero cannot move")


_BACK = {Action.N: Action.S, Action.S: Action.N, Action.E: Action.W, Action.W: Action.E,
         Action.NE: Action.SW, Action.SW: Action.NE, Action.SE: Action.NW, Action.NW: Action.SE}


def test_seen_and_heard_messages_are_hidden(env: NetHackMonk) -> None:
    wish(env, "ring of adornment")
    env.act(Action.DROP)  # on the up staircase: "There is a staircase up here.  You see here ..."
    env.trace = []
    env.act(_BACK[_step_somewhere(env)])
    assert any(b"staircase up here.  You see here" in m for m in env.trace)
    assert env.message == b"There is a staircase up here."
    assert bytes(env.buf["tty_chars"][0]).rstrip() == b"There is a staircase up here."
    env.act(_BACK[_step_somewhere(env)])
    env.act(Action.DROP)
    _step_somewhere(env)  # off the staircase: the drop and the check happen on plain floor
    wish(env, "ring of adornment")
    env.act(Action.DROP)
    # step off the ring and back on: NetHack says "You see here a topaz ring."
    env.trace = []
    env.act(_BACK[_step_somewhere(env)])
    assert any(m.startswith(b"You see here") for m in env.trace)
    assert env.message == b""
    assert not bytes(env.buf["message"]).strip(b"\0")
    assert b"You see" not in bytes(env.buf["tty_chars"][0])


def test_rest_waits_many_turns_in_one_step(env: NetHackMonk) -> None:
    t = turn(env)
    env.act(Action.REST)
    # 25 rests; a Monk is fast, so fewer game turns pass than moves
    assert 10 <= turn(env) - t <= 25
    assert env.episode_step == 1


def test_pray_needs_no_confirmation(env: NetHackMonk) -> None:
    t = turn(env)
    env.act(Action.PRAY)
    assert env._pending == 0
    assert b"prayer" in env.message or b"You feel" in env.message
    assert turn(env) > t


def test_kick_passes_direction_prompt_to_agent(env: NetHackMonk) -> None:
    env.act(Action.KICK)
    assert b"direction?" in env.message and env._pending != 0
    env.act(Action.N)
    assert env._pending == 0 and b"direction?" not in env.message


def test_cast_healing_targets_self() -> None:
    env = wizard_env(SEED_HEALING)
    try:
        assert env.spell == 0
        pw = energy(env)
        env.act(Action.CAST)
        assert energy(env) == pw - 5  # cast, no direction prompt left open
        assert env._pending == 0
    finally:
        env.close()


def test_cast_protection_has_no_prompt() -> None:
    env = wizard_env(SEED_PROTECTION)
    try:
        assert env.spell == 1
        ac = int(env.buf["blstats"][nethack.NLE_BL_AC])
        env.act(Action.CAST)
        assert int(env.buf["blstats"][nethack.NLE_BL_AC]) < ac
        assert env._pending == 0
    finally:
        env.close()


def test_cast_sleep_asks_the_agent_for_a_direction() -> None:
    env = wizard_env(SEED_SLEEP)
    try:
        assert env.spell == 2
        env.act(Action.CAST)
        assert b"direction?" in env.message and env._pending != 0
        env.act(Action.E)
        assert env._pending == 0
    finally:
        env.close()


def test_stairs_down_and_up_change_depth(env: NetHackMonk) -> None:
    level_teleport(env, 3)
    assert env.view().depth == 3
    teleport_to_down_stairs(env)
    env.act(Action.DOWN)
    assert env.view().depth == 4
    assert env.message == b"You descend the stairs."
    env.act(Action.UP)
    assert env.view().depth == 3


def test_enhance_and_search_do_not_leave_prompts(env: NetHackMonk) -> None:
    for a in (Action.ENHANCE, Action.SEARCH, Action.MORE):
        env.act(a)
        assert env._pending == 0
        assert not env._misc.any()


def test_auto_enhance_advances_the_first_skill(env: NetHackMonk) -> None:
    # wizard mode may advance without practice; a real game gets here after "You feel more confident"
    env.wizard_free_advance = True
    env.trace = []
    env._enhance([])
    assert b"You are now more skilled in martial arts." in env.trace
    assert not env._misc.any()


def test_invalid_action_id_is_a_clear_error(env: NetHackMonk) -> None:
    for bad in (NUM_ACTIONS, -1, 100):
        with pytest.raises(ValueError, match=f"invalid action id {bad}"):
            env.act(bad)
    with pytest.raises(ValueError, match="invalid action id"):
        env.step("k")  # type: ignore[arg-type]
    env.act(Action.SEARCH)  # the game is still usable


def test_random_play_never_leaves_hidden_prompts_or_messages() -> None:
    env = NetHackMonk(seed=3)
    rng = np.random.default_rng(3)
    env.reset_game()
    try:
        for _ in range(1500):
            _, term, trunc = env.act(int(rng.integers(NUM_ACTIONS)))
            if term or trunc:
                env.reset_game()
                continue
            in_yn, in_getlin, more = env._misc.tolist()
            assert not in_getlin and not more
            if in_yn:
                assert any(w in env.message for w in (b"eat", b"attack", b"direction?", b"pray", b"drop", b"drink", b"Sell"))
            assert hide_messages(env.message) == env.message  # nothing left to hide
            assert 1 <= env.message_count <= env.episode_step + 1
    finally:
        env.close()


def test_episode_step_limit_truncates() -> None:
    env = NetHackMonk(seed=1, max_episode_steps=3)
    try:
        env.reset()
        out = [env.step(Action.SEARCH)[2:4] for _ in range(3)]
        assert out == [(False, False), (False, False), (False, True)]
        with pytest.raises(RuntimeError, match="reset"):
            env.step(Action.SEARCH)
        obs, info = env.reset()
        assert info["episode"] == 1 and info["episode_step"] == 0
    finally:
        env.close()


def test_climb_prompt_is_declined_unless_passed() -> None:
    # the Monk starts on the up staircase of depth 1: "<" asks whether to leave the dungeon
    env = NetHackMonk(seed=4)
    try:
        env.reset_game()
        env.trace = []
        env.act(Action.UP)
        assert any(b"climb" in m for m in env.trace)  # asked, and declined by the hidden Esc
        assert env._pending == 0 and not env.done and env.view().depth == 1
    finally:
        env.close()
    env = NetHackMonk(seed=4, pass_climb_prompts=True)
    try:
        env.reset_game()
        env.act(Action.UP)
        assert b"climb" in env.message and env._pending != 0
        env.act(Action.MORE)  # Enter takes the default answer: no
        assert env._pending == 0 and not env.done and env.view().depth == 1
        env.act(Action.UP)
        _, terminated, _ = env.act(Action.NW)  # yes: the game ends
        assert terminated
    finally:
        env.close()
