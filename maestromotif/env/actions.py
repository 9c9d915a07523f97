"""The Discrete(28) macro action set of the method (method.md section 2.2).

Key codes come from NLE's own enums (``nle.nethack``) so that they match the
game binary this package is pinned to.
"""

from __future__ import annotations

import enum

from nle import nethack

NUM_ACTIONS = 28


class Action(enum.IntEnum):
    """Action ids, in the order of the method's table."""

    MORE = 0
    N = 1
    E = 2
    S = 3
    W = 4
    NE = 5
    SE = 6
    SW = 7
    NW = 8
    RUN_N = 9
    RUN_E = 10
    RUN_S = 11
    RUN_W = 12
    RUN_NE = 13
    RUN_SE = 14
    RUN_SW = 15
    RUN_NW = 16
    UP = 17
    DOWN = 18
    REST = 19
    KICK = 20
    EAT = 21
    SEARCH = 22
    CAST = 23
    ENHANCE = 24
    PRAY = 25
    QUAFF = 26
    DROP = 27


_D = nethack.CompassDirection
_DL = nethack.CompassDirectionLonger
_C = nethack.Command

# The key each action types first; macros add hidden keys after it (see env).
BASE_KEYS: tuple[int, ...] = (
    int(nethack.MiscAction.MORE),
    int(_D.N), int(_D.E), int(_D.S), int(_D.W), int(_D.NE), int(_D.SE), int(_D.SW), int(_D.NW),
    int(_DL.N), int(_DL.E), int(_DL.S), int(_DL.W), int(_DL.NE), int(_DL.SE), int(_DL.SW), int(_DL.NW),
    int(nethack.MiscDirection.UP),
    int(nethack.MiscDirection.DOWN),
    int(nethack.MiscDirection.WAIT),
    int(_C.KICK),
    int(_C.EAT),
    int(_C.SEARCH),
    int(_C.CAST),
    int(_C.ENHANCE),
    int(_C.PRAY),
    int(_C.QUAFF),
    int(_C.DROP),
)
assert len(BASE_KEYS) == NUM_ACTIONS

KEY_ESC = int(_C.ESC)
KEY_SPACE = ord(" ")
KEY_ENTER = int(nethack.MiscAction.MORE)
KEY_SELF = int(nethack.MiscDirection.WAIT)  # "." answers a direction prompt with "myself"
REST_COUNT = 25  # the resting macro types this count before "."
REST_KEYS: tuple[int, ...] = tuple(ord(c) for c in str(REST_COUNT)) + (int(nethack.MiscDirection.WAIT),)

ACTION_NAMES: tuple[str, ...] = tuple(a.name.lower() for a in Action)


def check_action(action: object) -> int:
    """Return ``action`` as an int id, or raise ValueError naming the bad id."""
    if type(action) is int and 0 <= action < NUM_ACTIONS:  # the common case, cheaply
        return action
    if isinstance(action, bool) or not isinstance(action, (int,)) and not hasattr(action, "__index__"):
        raise ValueError(f"invalid action id {action!r}: expected an integer in [0, {NUM_ACTIONS})")
    a = int(action.__index__())  # type: ignore[attr-defined]
    if not 0 <= a < NUM_ACTIONS:
        raise ValueError(f"invalid action id {a}: expected an integer in [0, {NUM_ACTIONS})")
    return a
