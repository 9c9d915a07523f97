"""The small API that LLM-written unit tests get (the "llm-tests" validation stage).

Tests are a second source file in the same policy subset. They define functions named
``test_*`` with no parameters, which use plain ``assert`` statements. Besides the skill constants
and the subset's builtins they may read:

- every module-level name of the code under test (``choose_skill``, ``start``, ``SKILL_TURNS``,
  helper functions, ...); each call into it runs under that code's own per-call budget;
- ``make_state(**fields)``: a ``SkillState`` with every field defaulted to an episode start
  (depth 1, main dungeon, no fork known, nothing available but the three unconditional skills);
  ``visited_main_depths`` may be given as a list;
- ``Memory()``: a fresh, empty per-episode memory;
- ``make_crop(chars=None, colors=None, monsters=None, features=None)``: a 7x7 ``CropView``
  (defaults: grey floor ``.`` around the hero, no monsters, no features); ``monsters`` and
  ``features`` may be given sparsely as ``{(row, col): name}``.

Tests cannot rebind any of these names, define no classes and cannot print; each test runs under
its own budget, in the same isolated process as the harness.
"""

from __future__ import annotations

from typing import Any

from maestromotif.skills.contract import STATE_FIELDS, CropView, Memory, SkillState
from maestromotif.skills.ids import Skill

CROP_SIDE = 7
TEST_PREFIX = "test_"
MAX_TESTS = 50

# Defaults of make_state(): the state at the start of an episode.
STATE_DEFAULTS: dict[str, Any] = {
    "skill": int(Skill.DISCOVERER),
    "skill_turns": 0,
    "skill_steps": 0,
    "depth": 1,
    "dungeon": 0,
    "branch_depth": None,
    "max_depth": 1,
    "xp_level": 1,
    "gold": 0,
    "kills": 0,
    "ate_in_mines": False,
    "sales": 0,
    "turn": 1,
    "step": 0,
    "worshipper_available": False,
    "merchant_available": False,
    "visited_main_depths": frozenset({1}),
}
assert set(STATE_DEFAULTS) == set(STATE_FIELDS), "give every SkillState field a default"

_BOOL_FIELDS = {"ate_in_mines", "worshipper_available", "merchant_available"}


class HelperError(ValueError):
    """A test helper was called with arguments it cannot turn into a state or crop."""


def make_state(**fields: Any) -> SkillState:
    """A ``SkillState`` from keyword fields (the rest defaulted); unknown or ill-typed fields raise."""
    unknown = sorted(set(fields) - set(STATE_FIELDS))
    if unknown:
        raise HelperError(f"make_state(): unknown field(s) {', '.join(unknown)}; fields are {', '.join(STATE_FIELDS)}")
    values = {**STATE_DEFAULTS, **fields}
    for name, value in values.items():
        if name == "visited_main_depths":
            if not isinstance(value, (list, tuple, set, frozenset)) or not all(
                isinstance(d, int) and not isinstance(d, bool) for d in value
            ):
                raise HelperError("make_state(): visited_main_depths must be a collection of ints")
            values[name] = frozenset(value)
        elif name == "branch_depth":
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise HelperError("make_state(): branch_depth must be an int or None")
        elif name in _BOOL_FIELDS:
            if not isinstance(value, bool):
                raise HelperError(f"make_state(): {name} must be True or False")
        elif isinstance(value, bool) or not isinstance(value, int):
            raise HelperError(f"make_state(): {name} must be an int, got {type(value).__name__}")
    return SkillState(**values)


def new_memory() -> Memory:
    """A fresh per-episode memory (exposed to tests as ``Memory()``)."""
    return Memory()


def _grid(value: Any, name: str, default: Any, cell: type) -> tuple[tuple[Any, ...], ...]:
    if value is None:
        return tuple(tuple(default for _ in range(CROP_SIDE)) for _ in range(CROP_SIDE))
    if isinstance(value, dict):
        grid = [[default] * CROP_SIDE for _ in range(CROP_SIDE)]
        for key, item in value.items():
            if not (isinstance(key, tuple) and len(key) == 2 and all(isinstance(k, int) for k in key)
                    and all(0 <= k < CROP_SIDE for k in key)):
                raise HelperError(f"make_crop(): {name} keys must be (row, col) in 0..{CROP_SIDE - 1}")
            if not isinstance(item, cell):
                raise HelperError(f"make_crop(): {name} values must be {cell.__name__}")
            grid[key[0]][key[1]] = item
        return tuple(tuple(row) for row in grid)
    if not (isinstance(value, (list, tuple)) and len(value) == CROP_SIDE):
        raise HelperError(f"make_crop(): {name} must have {CROP_SIDE} rows")
    rows = []
    for row in value:
        if not (isinstance(row, (list, tuple)) and len(row) == CROP_SIDE and all(isinstance(c, cell) for c in row)):
            raise HelperError(f"make_crop(): every row of {name} must hold {CROP_SIDE} {cell.__name__} values")
        rows.append(tuple(row))
    return tuple(rows)


def make_crop(chars: Any = None, colors: Any = None, monsters: Any = None, features: Any = None) -> CropView:
    """A 7x7 ``CropView`` for tests of ``skill_precondition`` (see the module docstring)."""
    if chars is None:
        char_rows = tuple("..." + " " + "..." if r == CROP_SIDE // 2 else "." * CROP_SIDE for r in range(CROP_SIDE))
    else:
        if not (isinstance(chars, (list, tuple)) and len(chars) == CROP_SIDE
                and all(isinstance(r, str) and len(r) == CROP_SIDE for r in chars)):
            raise HelperError(f"make_crop(): chars must be {CROP_SIDE} strings of {CROP_SIDE} characters")
        char_rows = tuple(chars)
    color_grid = _grid(colors, "colors", 7, int)
    if colors is None:
        color_grid = tuple(
            tuple(0 if (r, c) == (CROP_SIDE // 2, CROP_SIDE // 2) else 7 for c in range(CROP_SIDE))
            for r in range(CROP_SIDE)
        )
    return CropView(char_rows, color_grid, _grid(monsters, "monsters", "", str), _grid(features, "features", "", str))


# Names the tests may use besides the code's own; values are what they are bound to.
TEST_HELPERS: dict[str, Any] = {"make_state": make_state, "Memory": new_memory, "make_crop": make_crop}


def describe_test_api() -> str:
    """The test API as plain text, for code-generation prompts."""
    return (
        "Unit tests: a separate python block in the same subset. Define functions named test_<something>() with no "
        "parameters that use plain assert statements. They can call every function of your code and read its "
        "constants, plus these helpers:\n"
        "  make_state(**fields)   # a state; unspecified fields are the episode start (depth=1, dungeon=0, "
        "branch_depth=None, skill=DISCOVERER, worshipper_available=False, merchant_available=False, ...)\n"
        "  Memory()               # a fresh, empty memory\n"
        "  make_crop(chars=None, colors=None, monsters=None, features=None)  # a 7x7 view around the hero; "
        "monsters/features as {(row, col): name}, e.g. features={(2, 3): 'altar'}, monsters={(3, 4): 'shopkeeper'}\n"
        "Example:\n"
        "def test_descends_from_the_top():\n"
        "    memory = Memory()\n"
        "    start(memory)\n"
        "    assert choose_skill(make_state(depth=1), memory) in (DISCOVERER, DESCENDER)\n"
    )
