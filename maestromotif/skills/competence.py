"""Skill competence from the game itself: did a skill run do what the skill is for?

The intrinsic return says how much the reward model liked a run; it can be earned without
doing the skill (issue 14: the descender's return rose 15x while almost no run left level 1).
Competence is measured on the game state instead, one definition for the learner, evaluation
and reports:

* **descender**: the run ends deeper than it began (dungeon depth of its last observation >
  depth of its first);
* **ascender**: the run ends higher than it began (depth of the last observation < first);
* **discoverer**: map squares newly seen per step. A square is *seen* when its map character
  (tty rows 1-21) is non-blank; a step's *new squares* are the squares non-blank now and
  never before on the current level (the memory restarts on a level change, i.e. a change of
  (branch, depth), and at episode start). Its measure is new squares / steps of the run; a run
  counts as competent at ``DISCOVERER_COMPETENT_RATE`` or more;
* **worshipper**: the run reaches an altar: at some step the hero stands ON an altar square
  (a square where this level's map showed the altar glyph since the hero arrived, or the
  message says "There is an altar ... here", as the look command and objects on it print);
  adjacent does not count, since the skill already starts within 3 squares of one;
* **merchant**: the run sees a price quote or a sale in the messages (``zorkmid`` in a quote
  or list price, "offers N gold pieces for your ...", "Sell it?", "You sold ...").

The env computes four cheap per-step *signals* from the full game state (``CompetenceSignals``,
vectorized over games, called where the env fills its compact observation); the learner and
``evaluate`` accumulate them per skill run (``RunCompetence``) with the same run boundaries as
the intrinsic returns (:mod:`maestromotif.training.skill_stats`). Signals are those of
observation t, as skills and messages are.
"""

from __future__ import annotations

import re

import numpy as np
from nle import nethack

from maestromotif.skills.ids import NUM_SKILLS, Skill
from maestromotif.skills.rules import GLYPH_ALTAR, MAP_COLS, MAP_ROWS

# Columns of the per-step signal array (float32 [n, NUM_SIGNALS]).
SIG_DEPTH, SIG_NEW_SQUARES, SIG_AT_ALTAR, SIG_SHOP = range(4)
NUM_SIGNALS = 4
SIGNAL_NAMES = ("depth", "new_squares", "at_altar", "shop_event")

# A discoverer run that reveals at least this many new map squares per step on average counts as
# competent: walking a corridor reveals about 1-3 squares a step, standing still or pacing a lit
# room already seen reveals none.
DISCOVERER_COMPETENT_RATE = 0.5

# Price quotes ("only 13 zorkmids for this potion", "The list price of ... is 26 zorkmids"),
# offers when selling ("... offers 5 gold pieces for your scroll.  Sell it?") and sales.
SHOP_PATTERN = re.compile(rb"zorkmid|gold pieces? for your|sell it\?|you sold", re.IGNORECASE)
ALTAR_HERE_PATTERN = re.compile(rb"there is an altar .*here", re.IGNORECASE)

_SPACE = ord(" ")


class CompetenceSignals:
    """Per-step competence signals of ``n`` games, from NLE's raw buffers (all games at once)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.seen = np.zeros((n, MAP_ROWS, MAP_COLS), bool)
        self.altars = np.zeros((n, MAP_ROWS, MAP_COLS), bool)
        self.level = np.full((n, 2), -1, np.int64)  # (branch, depth) the memory belongs to
        self.restart = np.ones(n, bool)  # next fill starts the memory afresh (episode start)

    def episode_started(self, i: int) -> None:
        self.restart[i] = True

    def fill(self, raw: dict[str, np.ndarray], out: np.ndarray) -> None:
        """Write this step's signals into ``out`` (float32 [n, NUM_SIGNALS])."""
        bl = raw["blstats"]
        level = np.stack([bl[:, nethack.NLE_BL_DNUM], bl[:, nethack.NLE_BL_DEPTH]], axis=1).astype(np.int64)
        fresh = self.restart | np.any(level != self.level, axis=1)
        self.level[:] = level
        self.restart[:] = False
        # tty columns 0..78 are map columns 0..78 (NLE draws the map from column 0)
        visible = raw["tty_chars"][:, 1 : 1 + MAP_ROWS, :MAP_COLS] != _SPACE
        new = visible & ~self.seen
        counts = new.sum(axis=(1, 2))
        counts[fresh] = 0  # arriving on a level is not discovering it square by square
        self.seen |= visible
        self.seen[fresh] = visible[fresh]
        altar_now = raw["glyphs"] == GLYPH_ALTAR
        self.altars[fresh] = False
        self.altars |= altar_now
        rows = np.clip(bl[:, nethack.NLE_BL_Y].astype(np.int64), 0, MAP_ROWS - 1)
        cols = np.clip(bl[:, nethack.NLE_BL_X].astype(np.int64), 0, MAP_COLS - 1)
        on_altar = self.altars[np.arange(self.n), rows, cols]
        shop = np.zeros(self.n, bool)
        messages = raw["message"]
        for i in np.nonzero(messages[:, 0])[0]:  # only games with a message this step
            text = messages[i].tobytes().split(b"\0", 1)[0]
            shop[i] = SHOP_PATTERN.search(text) is not None
            if not on_altar[i] and ALTAR_HERE_PATTERN.search(text):
                on_altar[i] = True
        out[:, SIG_DEPTH] = level[:, 1]
        out[:, SIG_NEW_SQUARES] = counts
        out[:, SIG_AT_ALTAR] = on_altar
        out[:, SIG_SHOP] = shop


def run_competence(skill: int, start_depth: float, end_depth: float, new_squares: float, steps: int,
                   altar: bool, shop: bool) -> float:
    """The competence measure of one finished run: 0/1 for every skill but the discoverer (new
    squares per step)."""
    if skill == Skill.DESCENDER:
        return float(end_depth > start_depth)
    if skill == Skill.ASCENDER:
        return float(end_depth < start_depth)
    if skill == Skill.DISCOVERER:
        return new_squares / steps if steps > 0 else 0.0
    if skill == Skill.WORSHIPPER:
        return float(altar)
    if skill == Skill.MERCHANT:
        return float(shop)
    return 0.0


def is_competent(skill: int, measure: float) -> bool:
    """Whether a run's measure counts as doing the skill."""
    if skill == Skill.DISCOVERER:
        return measure >= DISCOVERER_COMPETENT_RATE
    return measure > 0.5


class RunCompetence:
    """Accumulates competence signals per skill run for ``n`` envs (driven by ``SkillRunTracker``)."""

    def __init__(self, n: int) -> None:
        self.start_depth = np.zeros(n, np.float64)
        self.end_depth = np.zeros(n, np.float64)
        self.squares = np.zeros(n, np.float64)
        self.altar = np.zeros(n, bool)
        self.shop = np.zeros(n, bool)

    def start(self, mask: np.ndarray, signals: np.ndarray) -> None:
        self.start_depth[mask] = signals[mask, SIG_DEPTH]
        self.squares[mask] = 0.0
        self.altar[mask] = False
        self.shop[mask] = False

    def add(self, signals: np.ndarray) -> None:
        self.end_depth[:] = signals[:, SIG_DEPTH]
        self.squares += signals[:, SIG_NEW_SQUARES]
        self.altar |= signals[:, SIG_AT_ALTAR] > 0
        self.shop |= signals[:, SIG_SHOP] > 0

    def measure(self, e: int, skill: int, steps: int) -> float:
        return run_competence(skill, self.start_depth[e], self.end_depth[e], self.squares[e], steps,
                              bool(self.altar[e]), bool(self.shop[e]))


assert NUM_SKILLS == 5  # the definitions above name all five skills
