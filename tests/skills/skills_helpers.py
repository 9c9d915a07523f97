"""Helpers for skills/tasks tests: synthetic GameViews and wizard-mode set-ups on real NetHack."""

from __future__ import annotations

import numpy as np
from nle import nethack

from maestromotif.env.view import GameView

FLOOR = nethack.GLYPH_CMAP_OFF + 19  # "floor of a room"
HERO = nethack.GLYPH_MON_OFF + 333  # the monk


def make_view(
    *,
    depth: int = 1,
    dungeon: int = 0,
    turn: int = 1,
    hero: tuple[int, int] = (10, 40),  # map (y, x)
    items: int = 0,
    glyphs: dict[tuple[int, int], int] | None = None,
    chars: dict[tuple[int, int], tuple[str, int]] | None = None,  # map (y, x) -> (char, colour)
    message: bytes = b"",
    gold: int = 0,
    xp: int = 1,
    hunger: int = 1,
    just_eaten: bool = False,
    step: int = 0,
    last_action: int = -1,
) -> GameView:
    g = np.full((21, 79), FLOOR, dtype=np.int16)
    tty = np.full((24, 80), ord("."), dtype=np.uint8)
    col = np.full((24, 80), 7, dtype=np.int8)
    y, x = hero
    g[y, x] = HERO
    tty[y + 1, x] = ord("@")
    col[y + 1, x] = 15
    for (gy, gx), glyph in (glyphs or {}).items():
        g[gy, gx] = glyph
    for (cy, cx), (ch, c) in (chars or {}).items():
        tty[cy + 1, cx] = ord(ch)
        col[cy + 1, cx] = c
    bl = np.zeros(27, dtype=np.int64)
    bl[0], bl[1] = x, y
    bl[12], bl[13], bl[18], bl[20], bl[21], bl[23] = depth, gold, xp, turn, hunger, dungeon
    return GameView(
        tty_chars=tty,
        tty_colors=col,
        hero_row=y + 1,
        hero_col=x,
        blstats=bl,
        glyphs=g,
        message=message,
        acquired_items=items,
        just_eaten=just_eaten,
        episode_step=step,
        last_action=last_action,
    )


# ---------------------------------------------------------------- real NetHack (wizard mode)
def wizard_env(seed: int, **kwargs: object):  # -> NetHackMonk
    from maestromotif.env.nethack_env import NetHackMonk

    env = NetHackMonk(seed=seed, wizard=True, **kwargs)  # type: ignore[arg-type]
    env.reset_game()
    return env


def type_keys(env, keys: list[int | str], answer_yes: bool = False) -> None:
    """Type raw keys (test set-up only), optionally answer a y/n question with y, then settle."""
    for k in keys:
        for code in [k] if isinstance(k, int) else [ord(c) for c in k]:
            env._send(code)
    if answer_yes and env._misc[0]:
        env._send(ord("y"))
    env._settle([], [False])
    env._finish_message()


def wish(env, item: str) -> None:
    type_keys(env, [nethack.C("w"), item, "\r"])


def create_monster(env, name: str) -> None:
    type_keys(env, [nethack.C("g"), name, "\r"], answer_yes=True)


def level_teleport(env, where: int | str) -> None:
    type_keys(env, [nethack.C("v"), str(where), "\r"])


def map_level(env) -> None:
    type_keys(env, [nethack.C("f")])


def teleport_to(env, y: int, x: int) -> None:
    """Wizard teleport (^T) to map cell (y, x) by moving the cursor from the hero."""
    bl = env.buf["blstats"]
    dy, dx = y - int(bl[1]), x - int(bl[0])
    keys: list[int | str] = [nethack.C("t")]
    keys += ["j" if dy > 0 else "k"] * abs(dy) + ["l" if dx > 0 else "h"] * abs(dx) + ["."]
    type_keys(env, keys)


def find_fork(env) -> int:
    """Level-teleport down the main dungeon until a level shows two down staircases; returns its depth."""
    from maestromotif.skills import rules

    for depth in (2, 3, 4):
        level_teleport(env, depth)
        map_level(env)
        if np.count_nonzero(env.buf["glyphs"] == rules.GLYPH_DOWNSTAIR) > 1:
            return depth
    raise AssertionError("no fork level found at depth 2-4")
