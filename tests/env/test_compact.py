"""Compact observation: crop geometry, stats scaling, message counts, validation."""

from __future__ import annotations

import numpy as np
import pytest

from maestromotif.env import compact
from maestromotif.env.nethack_env import MessageCounter, NetHackMonk


def test_crop_is_centred_and_black_off_screen() -> None:
    tty = np.arange(24 * 80, dtype=np.int64).reshape(1, 24, 80) % 251 + 1  # no zeros on screen
    tty = tty.astype(np.uint8)
    # hero in the middle: plain slice
    c = compact.crop_around_hero(tty, np.array([10]), np.array([40]))
    np.testing.assert_array_equal(c[0], tty[0, 4:16, 34:46])
    assert c[0, 6, 6] == tty[0, 10, 40]
    # hero at the top-left corner: rows/cols before 0 are zero
    c = compact.crop_around_hero(tty, np.array([1]), np.array([0]))
    assert (c[0, :5] == 0).all() and (c[0, :, :6] == 0).all()
    np.testing.assert_array_equal(c[0, 5:, 6:], tty[0, 0:7, 0:6])
    # bottom-right: rows >= 24 and cols >= 80 are zero
    c = compact.crop_around_hero(tty, np.array([21]), np.array([78]))
    assert (c[0, 9:] == 0).all() and (c[0, :, 8:] == 0).all()
    np.testing.assert_array_equal(c[0, :9, :8], tty[0, 15:24, 72:80])


def test_crop_of_real_game_has_hero_at_centre() -> None:
    env = NetHackMonk(seed=2)
    try:
        obs, _ = env.reset()
        assert obs["tty_chars"][6, 6] == ord("@")
        assert obs["tty_chars"].dtype == np.uint8 and obs["tty_chars"].shape == (12, 12)
        assert obs["stats"].shape == (35,)
        assert obs["stats"][compact.SKILL_ONEHOT_OFFSET] == 1.0  # skill 0 without controllers
        bl = env.buf["blstats"]
        assert obs["stats"][0] == pytest.approx(bl[0] / 79)
        assert obs["stats"][20] == pytest.approx(bl[20] / 1000)
        assert obs["stats"][12] == 0.0  # depth is hidden from the policy
        assert obs["stats"][13] == 0.0  # gold too
        assert obs["stats"][28] >= 1  # a Monk starts with potions of healing
        assert obs["stats"][29] >= 1  # and food
    finally:
        env.close()


def test_fill_stats_scale_and_onehot() -> None:
    bl = np.full((2, 27), 10, dtype=np.int64)
    out = np.zeros((2, 35), dtype=np.float32)
    compact.fill_stats(bl, np.array([[2, 3, 4], [0, 0, 0]], dtype=np.float32), np.array([4, 1]), out)
    assert out[0, 0] == pytest.approx(10 / 79) and out[0, 1] == pytest.approx(10 / 21)
    assert out[0, 10] == pytest.approx(1.0) and out[0, 20] == pytest.approx(0.01)
    assert out[0, 25] == 10  # condition bitmask raw, unclipped
    assert out[0, 12] == 0  # depth
    assert out[0, 27:30].tolist() == [2, 3, 4]
    assert out[0, 30:].tolist() == [0, 0, 0, 0, 1]
    assert out[1, 30:].tolist() == [0, 1, 0, 0, 0]


def test_message_counter_lru() -> None:
    c = MessageCounter(size=3)
    assert [c.count(m) for m in (b"", b"a", b"a", b"")] == [1, 1, 2, 2]
    c.count(b"b")
    c.count(b"c")  # evicts the least recently used: b"a"
    assert c.count(b"a") == 1
    assert c.count(b"c") == 2
    c.reset()
    assert c.count(b"c") == 1


def test_validate_names_the_field() -> None:
    b = compact.allocate(3)
    assert compact.validate(b) == 3
    b["stats"] = b["stats"][:, :34]
    with pytest.raises(ValueError, match="stats: shape"):
        compact.validate(b)
    b = compact.allocate(3)
    b["skills"] = b["skills"].astype(np.int64)
    with pytest.raises(ValueError, match="skills: dtype"):
        compact.validate(b)
    with pytest.raises(ValueError, match="misses"):
        compact.validate({})
    assert compact.nbytes_per_env() == 144 + 144 + 256 + 140 + 1 + 4 + 20


def test_cropper_matches_naive_crop_everywhere() -> None:
    rng = np.random.default_rng(0)
    n = 64
    tty = rng.integers(1, 256, size=(n, 24, 80), dtype=np.uint8)
    rows = rng.integers(0, 24, size=n)
    cols = rng.integers(0, 80, size=n)
    got = compact.Cropper(n)(tty, rows, cols)
    for i in range(n):
        want = np.zeros((12, 12), dtype=np.uint8)
        for dr in range(12):
            for dc in range(12):
                r, c = rows[i] - 6 + dr, cols[i] - 6 + dc
                if 0 <= r < 24 and 0 <= c < 80:
                    want[dr, dc] = tty[i, r, c]
        np.testing.assert_array_equal(got[i], want)
    signed = tty.view(np.int8) & 15  # int8 colours crop to the same values as uint8
    np.testing.assert_array_equal(compact.Cropper(n)(signed, rows, cols), compact.Cropper(n)(tty & 15, rows, cols))


def test_hide_messages_drops_only_seen_and_heard_parts() -> None:
    from maestromotif.env.nethack_env import hide_messages

    assert hide_messages(b"You see here a topaz ring.") == b""
    assert hide_messages(b"You hear some noises in the distance.") == b""
    assert hide_messages(b"There is a staircase up here.  You see here a topaz ring.") == b"There is a staircase up here."
    assert hide_messages(b"You hear a door open.  You kill the newt!") == b"You kill the newt!"
    assert hide_messages(b"The newt bites!") == b"The newt bites!"
    assert hide_messages(b"") == b""
