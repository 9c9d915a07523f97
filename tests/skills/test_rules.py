"""Default initiation/termination rules on synthetic states (centred crop, glyph-based shopkeeper)."""

from __future__ import annotations

import numpy as np
import pytest
from nle import nethack
from skills_helpers import make_view

from maestromotif.skills import Skill
from maestromotif.skills import rules


def pre(view):
    return rules.preconditions(view.glyphs, view.hero_row, view.hero_col, view.acquired_items)


def test_glyph_ids_from_nle() -> None:
    assert rules.GLYPH_DOWNSTAIR == 2383  # the id method.md 2.3 names
    assert nethack.permonst(rules.PM_SHOPKEEPER).mname == "shopkeeper"


@pytest.mark.parametrize("offset", [(-3, -3), (3, 3), (0, -3), (-3, 2), (1, 0)])
def test_altar_and_shopkeeper_within_the_centred_crop(offset: tuple[int, int]) -> None:
    y, x = 10 + offset[0], 40 + offset[1]
    assert pre(make_view(items=1, glyphs={(y, x): rules.GLYPH_ALTAR})) == (True, False)
    assert pre(make_view(items=1, glyphs={(y, x): rules.GLYPH_SHOPKEEPER})) == (False, True)
    assert pre(make_view(items=0, glyphs={(y, x): rules.GLYPH_SHOPKEEPER})) == (False, False)  # nothing to sell


@pytest.mark.parametrize("offset", [(-4, 0), (4, 0), (0, 4), (0, -4)])
def test_nothing_outside_the_crop(offset: tuple[int, int]) -> None:
    y, x = 10 + offset[0], 40 + offset[1]
    assert pre(make_view(items=1, glyphs={(y, x): rules.GLYPH_SHOPKEEPER})) == (False, False)


def test_priest_and_white_at_sign_are_not_shopkeepers() -> None:
    priest = make_view(items=1, glyphs={(9, 40): rules.GLYPH_PRIEST}, chars={(9, 40): ("@", 15)})
    assert pre(priest) == (False, False)
    crop = rules.hero_crop(priest.tty_chars, priest.tty_colors, priest.glyphs, priest.hero_row, priest.hero_col)
    assert rules.legacy_preconditions(crop.chars, crop.colors, 1) == (False, True)  # the original's D9 defect


@pytest.mark.parametrize("hero", [(0, 0), (20, 78), (0, 78), (20, 0), (1, 2)])
def test_crop_at_the_map_edge_is_padded_not_wrapped(hero: tuple[int, int]) -> None:
    y, x = hero
    # altar on the opposite side of the map: a negative slice would wrap onto it
    far = (20 - y, 78 - x)
    view = make_view(hero=hero, items=1, glyphs={far: rules.GLYPH_ALTAR})
    assert pre(view) == (False, False)
    crop = rules.hero_crop(view.tty_chars, view.tty_colors, view.glyphs, view.hero_row, view.hero_col)
    assert crop.chars.shape == crop.glyphs.shape == (7, 7)
    assert crop.colors[3, 3] == 0 and crop.glyphs[3, 3] == nethack.MAX_GLYPH  # own cell blanked
    # near neighbour is found even at the edge
    ny, nx = y + (1 if y < 10 else -1), x
    assert pre(make_view(hero=hero, items=1, glyphs={(ny, nx): rules.GLYPH_ALTAR})) == (True, False)


def test_crop_is_centred_on_the_tty_row_of_the_hero() -> None:
    view = make_view(chars={(7, 40): ("A", 1), (13, 40): ("B", 2), (9, 41): ("C", 3)})
    crop = rules.hero_crop(view.tty_chars, view.tty_colors, view.glyphs, view.hero_row, view.hero_col)
    assert chr(crop.chars[0, 3]) == "A" and chr(crop.chars[6, 3]) == "B" and chr(crop.chars[2, 4]) == "C"
    assert chr(crop.chars[3, 3]) == "@"


@pytest.mark.parametrize(
    ("skill", "turns", "depth", "start", "pres", "expected"),
    [
        (Skill.DISCOVERER, 49, 1, 1, (False, False), False),
        (Skill.DISCOVERER, 50, 1, 1, (False, False), True),
        (Skill.DISCOVERER, 3, 2, 1, (False, False), False),  # level changes do not end it
        (Skill.DESCENDER, 10_000, 3, 3, (False, False), False),
        (Skill.DESCENDER, 1, 4, 3, (False, False), True),
        (Skill.DESCENDER, 1, 2, 3, (False, False), False),
        (Skill.ASCENDER, 1, 2, 3, (False, False), True),
        (Skill.ASCENDER, 1, 4, 3, (False, False), False),
        (Skill.WORSHIPPER, 999, 1, 1, (False, False), False),
        (Skill.WORSHIPPER, 1000, 1, 1, (False, False), True),
        (Skill.MERCHANT, 1000, 1, 1, (False, False), True),
        (Skill.DESCENDER, 0, 1, 1, (True, False), True),  # either precondition ends any skill
        (Skill.MERCHANT, 0, 1, 1, (False, True), True),
    ],
)
def test_termination(skill, turns, depth, start, pres, expected) -> None:
    assert rules.termination(skill, turns, depth, start, *pres, base_turns=50) is expected


def test_available_skills() -> None:
    assert rules.available_skills(False, False) == (0, 1, 2)
    assert rules.available_skills(True, True) == (0, 1, 2, 3, 4)
    assert np.array_equal(rules.available_skills(False, True), [0, 1, 2, 4])
