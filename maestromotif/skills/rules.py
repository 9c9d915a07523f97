"""Default initiation and termination rules of the five skills (method.md 3.1, with the fixes of 9).

Fixes relative to the original implementation:
- D10: the 7x7 crop is centred on the hero (tty row = map y + 1) and padded at the map edge
  instead of using negative slices;
- D9: the merchant precondition looks for the *shopkeeper* monster glyph, not any white ``@``
  (aligned priests, watchmen and the hero itself are white or ``@`` too);
- the altar is found by its map glyph as well (``_`` in grey is also what an iron chain can
  look like);
- skill durations count game turns (``blstats[20]``), not agent steps.

The original character/colour rules are kept as ``legacy_preconditions`` so that generated
initiation code can be compared against both.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from nle import nethack

from maestromotif.skills.ids import Skill

CROP = 7  # side of the square the preconditions look at
_HALF = CROP // 2
MAP_ROWS, MAP_COLS = 21, 79  # NLE glyph map

# Skill run limits, in game turns, as multiples of the task's D (method.md 3.1).
LONG_SKILL_FACTOR = 20  # worshipper and merchant last at most 20·D turns


def _cmap_glyph(explanation: str) -> int:
    """Glyph id of a map feature, looked up by NetHack's own description (no hard-coded offsets)."""
    for idx in range(nethack.MAXPCHARS):
        if nethack.symdef.from_idx(idx).explanation == explanation:
            return nethack.GLYPH_CMAP_OFF + idx
    raise RuntimeError(f"NLE has no map symbol {explanation!r}")  # pragma: no cover - NLE guard


def _monster_index(name: str) -> int:
    for idx in range(nethack.NUMMONS):
        if nethack.permonst(idx).mname == name:
            return idx
    raise RuntimeError(f"NLE has no monster {name!r}")  # pragma: no cover - NLE guard


GLYPH_DOWNSTAIR: int = _cmap_glyph("staircase down")  # 2383 in NLE 1.0 (method.md 2.3)
GLYPH_UPSTAIR: int = _cmap_glyph("staircase up")
GLYPH_ALTAR: int = _cmap_glyph("altar")
GLYPH_FOUNTAIN: int = _cmap_glyph("fountain")
PM_SHOPKEEPER: int = _monster_index("shopkeeper")
GLYPH_SHOPKEEPER: int = nethack.GLYPH_MON_OFF + PM_SHOPKEEPER  # a peaceful or angry shopkeeper in view
# Monsters that only live in Minetown (within the Mines) or the Oracle level: used by task detectors.
GLYPH_WATCHMAN: int = nethack.GLYPH_MON_OFF + _monster_index("watchman")
GLYPH_WATCH_CAPTAIN: int = nethack.GLYPH_MON_OFF + _monster_index("watch captain")
GLYPH_PRIEST: int = nethack.GLYPH_MON_OFF + _monster_index("aligned priest")
GLYPH_ORACLE: int = nethack.GLYPH_MON_OFF + _monster_index("Oracle")
GLYPH_CENTAUR_STATUES: tuple[int, ...] = tuple(
    nethack.GLYPH_STATUE_OFF + _monster_index(n) for n in ("plains centaur", "forest centaur", "mountain centaur")
)

# Original rule: the precondition characters and their tty colours (method.md 3.2 step 2).
LEGACY_COLOR_MAP: dict[str, int] = {"@": 15, "_": 7}


class Crop(NamedTuple):
    """7x7 neighbourhood of the hero, centred; cells off the map are padded.

    ``chars`` (uint8, pad 32 = space) and ``colors`` (int8, pad 0) come from the tty rows of
    the map; ``glyphs`` (int16, pad ``nethack.MAX_GLYPH``) from the glyph map. The hero's own
    cell has colour 0 and glyph ``MAX_GLYPH`` so that the hero never matches anything.
    """

    chars: np.ndarray
    colors: np.ndarray
    glyphs: np.ndarray


def _window(center: int, size: int) -> tuple[int, int, int, int]:
    """Source [lo, hi) clipped to [0, size) and destination offset for a CROP-wide window."""
    lo, hi = center - _HALF, center + _HALF + 1
    src_lo, src_hi = max(lo, 0), min(hi, size)
    return src_lo, src_hi, src_lo - lo, src_hi - lo


def hero_crop(tty_chars: np.ndarray, tty_colors: np.ndarray, glyphs: np.ndarray, hero_row: int, hero_col: int) -> Crop:
    """The centred 7x7 crop around the hero (tty row ``hero_row`` = map row ``hero_row - 1``)."""
    chars = np.full((CROP, CROP), 32, dtype=np.uint8)
    colors = np.zeros((CROP, CROP), dtype=np.int8)
    glyph = np.full((CROP, CROP), nethack.MAX_GLYPH, dtype=np.int16)
    map_row = hero_row - 1
    # Only the map part of the tty (rows 1..21) is cropped: the message line and status lines are not map.
    r0, r1, d0, d1 = _window(map_row, MAP_ROWS)
    c0, c1, e0, e1 = _window(hero_col, MAP_COLS)
    if r0 < r1 and c0 < c1:
        chars[d0:d1, e0:e1] = tty_chars[r0 + 1 : r1 + 1, c0:c1]
        colors[d0:d1, e0:e1] = tty_colors[r0 + 1 : r1 + 1, c0:c1]
        glyph[d0:d1, e0:e1] = glyphs[r0:r1, c0:c1]
    colors[_HALF, _HALF] = 0
    glyph[_HALF, _HALF] = nethack.MAX_GLYPH
    return Crop(chars, colors, glyph)


def glyph_near(glyphs: np.ndarray, hero_row: int, hero_col: int, targets: int | tuple[int, ...]) -> bool:
    """Whether any target glyph lies in the centred 7x7 crop (excluding the hero's own cell)."""
    map_row = hero_row - 1
    r0, r1 = max(map_row - _HALF, 0), min(map_row + _HALF + 1, MAP_ROWS)
    c0, c1 = max(hero_col - _HALF, 0), min(hero_col + _HALF + 1, MAP_COLS)
    if r0 >= r1 or c0 >= c1:
        return False
    window = glyphs[r0:r1, c0:c1]
    if isinstance(targets, int):
        hits = window == targets
    else:
        hits = np.isin(window, targets)
    if 0 <= map_row < MAP_ROWS and 0 <= hero_col < MAP_COLS:
        hits[map_row - r0, hero_col - c0] = False  # the hero's own cell
    return bool(hits.any())


def preconditions(
    glyphs: np.ndarray, hero_row: int, hero_col: int, acquired_items: int
) -> tuple[bool, bool]:
    """Default initiation of the two conditional skills: ``(worshipper_pre, merchant_pre)``.

    worshipper: an altar in the crop and at least one item acquired this episode;
    merchant: a shopkeeper in the crop and at least one item acquired this episode.
    The other three skills may always start.
    """
    if acquired_items < 1:  # both need something to test or sell; skip the crop entirely
        return False, False
    return (
        glyph_near(glyphs, hero_row, hero_col, GLYPH_ALTAR),
        glyph_near(glyphs, hero_row, hero_col, GLYPH_SHOPKEEPER),
    )


def legacy_preconditions(
    chars: np.ndarray, colors: np.ndarray, acquired_items: int, color_map: dict[str, int] = LEGACY_COLOR_MAP
) -> tuple[bool, bool]:
    """The original rule on a (centred) 7x7 crop: grey ``_`` = altar, white ``@`` = shopkeeper (D9)."""
    if acquired_items < 1:
        return False, False
    altar = bool(((chars == ord("_")) & (colors == color_map["_"])).any())
    merchant = bool(((chars == ord("@")) & (colors == color_map["@"])).any())
    return altar, merchant


def available_skills(worshipper_pre: bool, merchant_pre: bool) -> tuple[Skill, ...]:
    """Skills whose initiation holds."""
    out = [Skill.DISCOVERER, Skill.DESCENDER, Skill.ASCENDER]
    if worshipper_pre:
        out.append(Skill.WORSHIPPER)
    if merchant_pre:
        out.append(Skill.MERCHANT)
    return tuple(out)


def skill_turn_limit(skill: int, base_turns: int) -> int | None:
    """Longest run of a skill in game turns for a task's D, or None when only depth ends it."""
    if skill == Skill.DISCOVERER:
        return base_turns
    if skill in (Skill.WORSHIPPER, Skill.MERCHANT):
        return LONG_SKILL_FACTOR * base_turns
    return None


def termination(
    skill: int,
    skill_turns: int,
    depth: int,
    start_depth: int,
    worshipper_pre: bool,
    merchant_pre: bool,
    base_turns: int,
) -> bool:
    """Default termination, checked after every step (method.md 3.1).

    Any skill ends as soon as either conditional skill may start, so that the policy over skills
    can switch to it; otherwise discoverer ends after D game turns, descender one level deeper,
    ascender one level higher, worshipper and merchant after 20·D game turns.
    """
    if worshipper_pre or merchant_pre:
        return True
    if skill == Skill.DESCENDER:
        return depth > start_depth
    if skill == Skill.ASCENDER:
        return depth < start_depth
    limit = skill_turn_limit(skill, base_turns)
    return limit is not None and skill_turns >= limit
