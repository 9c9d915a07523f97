"""The policy-over-skills contract: what a (hand-written or generated) policy implements.

A policy over skills decides which skill runs next, each time the active one terminates
(call-and-return, method.md 3.2). Generated code and the hand-written reference policies are
**Python source files in a small subset** (checked by ``maestromotif.skills.sandbox``) with
this shape::

    import random              # optional; ``random`` and ``math`` are the only imports allowed

    SKILL_TURNS = 500          # required: D, the discoverer's run length in game turns
                               # (worshipper and merchant run at most 20·D turns)

    def start(memory):         # required: called at every episode start
        memory.direction = "down"          # the policy's own per-episode variables

    def choose_skill(state, memory):       # required: called whenever the active skill ends
        if state.merchant_available:
            return MERCHANT                # a skill id (int) or name ("merchant")
        return DISCOVERER

    # optional overrides of the default initiation/termination rules (maestromotif.skills.rules)
    def skill_precondition(crop, num_items):  -> (worshipper_pre, merchant_pre)
    def skill_termination(skill, skill_turns, depth, start_depth,
                          worshipper_pre, merchant_pre, base_turns):  -> bool

Inside the code the names ``DISCOVERER, DESCENDER, ASCENDER, WORSHIPPER, MERCHANT`` hold the skill
ids, ``state`` is a read-only ``SkillState`` (below) and ``memory`` is a ``Memory``, a plain
attribute bag that starts empty each episode. ``random`` is seeded by the controller, so runs are
reproducible. This replaces the original's task hooks matched to LLM-chosen method names
(method.md 8.3): everything a task needs (gold, kills, XP, eating in the Mines, sales, ...) is a
typed field of ``SkillState``.

In Python, a policy is any object satisfying ``PolicyOverSkills``; the sandboxed loader turns
source files into one, adding the per-call time budget and error wrapping.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, fields
from typing import Any, NamedTuple, Protocol, runtime_checkable

from maestromotif.skills.ids import SKILL_NAMES, Skill

# Names every policy source can use without defining them.
SKILL_CONSTANTS: dict[str, int] = {s.name: int(s) for s in Skill}


@dataclass(frozen=True, slots=True)
class SkillState:
    """Everything a policy over skills may base its choice on (read-only).

    It deliberately holds no messages, inventory, HP or hunger (method.md 8.1); the counters are
    kept by the controller from game state and are the typed task state of method.md 8.3.
    """

    skill: int  # the skill that just ended (at episode start: DISCOVERER)
    skill_turns: int  # how many game turns it ran
    skill_steps: int  # how many agent steps it ran
    depth: int  # current dungeon depth (1 = top)
    dungeon: int  # dungeon number: 0 = main Dungeons of Doom, 2 = Gnomish Mines
    branch_depth: int | None  # depth of the main-dungeon level with the stairs to the Mines, None if unknown
    max_depth: int  # deepest depth reached this episode, any branch
    xp_level: int  # experience level
    gold: int  # gold carried
    kills: int  # monsters killed or destroyed this episode ("You kill/destroy ..." messages)
    ate_in_mines: bool  # the agent has eaten from its inventory inside the Gnomish Mines this episode
    sales: int  # items sold to a shopkeeper this episode
    turn: int  # game turn
    step: int  # agent steps taken this episode
    worshipper_available: bool  # an altar is next to the agent and it carries an item it found
    merchant_available: bool  # a shopkeeper is next to the agent and it carries an item it found
    visited_main_depths: frozenset[int]  # depths of the main dungeon (dungeon 0) visited this episode

    @property
    def available(self) -> tuple[int, ...]:
        """Ids of the skills whose initiation holds."""
        out = [int(Skill.DISCOVERER), int(Skill.DESCENDER), int(Skill.ASCENDER)]
        if self.worshipper_available:
            out.append(int(Skill.WORSHIPPER))
        if self.merchant_available:
            out.append(int(Skill.MERCHANT))
        return tuple(out)


STATE_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(SkillState))


class Memory:
    """A policy's per-episode variables: set and read attributes freely (not ones starting with ``_``)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_"):
            raise AttributeError(f"memory attribute {name!r}: names starting with '_' are not allowed")
        object.__setattr__(self, name, value)

    def __repr__(self) -> str:
        return f"Memory({vars(self)!r})"


class CropView(NamedTuple):
    """The 7x7 neighbourhood as plain Python values, for generated ``skill_precondition`` code.

    ``chars``: 7 strings of 7 characters (centre = the hero, shown as a space); ``colors``: 7 tuples
    of 7 tty colour indices (7 grey, 15 white, centre 0); ``monsters``: 7 tuples of monster names
    ("shopkeeper", "aligned priest", ... or ""); ``features``: 7 tuples of map feature names
    ("altar", "staircase down", ... or "").
    """

    chars: tuple[str, ...]
    colors: tuple[tuple[int, ...], ...]
    monsters: tuple[tuple[str, ...], ...]
    features: tuple[tuple[str, ...], ...]


@runtime_checkable
class PolicyOverSkills(Protocol):
    """What the skill controller calls. Any exception it raises is caught and recorded."""

    name: str
    base_turns: int  # D
    has_custom_preconditions: bool  # True when preconditions() overrides the default initiation
    has_custom_termination: bool  # True when termination() overrides the default termination

    def start(self, rng: random.Random) -> None:
        """Begin an episode; ``rng`` is the controller's seeded generator."""

    def choose(self, state: SkillState) -> object:
        """Return the next skill (id or name)."""

    def preconditions(self, crop: CropView, acquired_items: int) -> tuple[bool, bool]:
        """(worshipper_pre, merchant_pre); only called when ``has_custom_preconditions``."""

    def termination(
        self,
        skill: int,
        skill_turns: int,
        depth: int,
        start_depth: int,
        worshipper_pre: bool,
        merchant_pre: bool,
        base_turns: int,
    ) -> bool:
        """Whether the active skill ends now; only called when ``has_custom_termination``."""


class PolicyError(Exception):
    """A policy over skills misbehaved (raised, timed out, or broke the contract)."""


class SubsetError(PolicyError):
    """Policy source uses syntax or names outside the allowed subset."""


class PolicyTimeout(PolicyError):
    """A policy call ran past its step or time budget."""


class RandomSkillPolicy:
    """Picks uniformly among the available skills: a baseline, and the CLI's ``--policy random``."""

    has_custom_preconditions = False
    has_custom_termination = False

    def __init__(self, base_turns: int = 500, name: str = "random") -> None:
        if not 1 <= base_turns <= 100_000:
            raise ValueError(f"base_turns must be in 1..100000, got {base_turns}")
        self.name = name
        self.base_turns = base_turns
        self._rng = random.Random(0)

    def start(self, rng: random.Random) -> None:
        self._rng = rng

    def choose(self, state: SkillState) -> object:
        return self._rng.choice(state.available)

    def preconditions(self, crop: CropView, acquired_items: int) -> tuple[bool, bool]:  # pragma: no cover
        raise NotImplementedError

    def termination(self, *args: object) -> bool:  # pragma: no cover
        raise NotImplementedError


__all__ = [
    "SKILL_CONSTANTS",
    "STATE_FIELD_DOCS",
    "contract_text",
    "SKILL_NAMES",
    "STATE_FIELDS",
    "CropView",
    "Memory",
    "PolicyError",
    "PolicyOverSkills",
    "PolicyTimeout",
    "RandomSkillPolicy",
    "SkillState",
    "SubsetError",
]


# One line per SkillState field, for prompts that ask an LLM to write a policy over skills.
STATE_FIELD_DOCS: dict[str, str] = {
    "skill": "id of the skill that just ended (DISCOVERER at the start of an episode)",
    "skill_turns": "game turns the ended skill ran",
    "skill_steps": "agent steps the ended skill ran",
    "depth": "current dungeon depth, 1 = first level",
    "dungeon": "0 = main Dungeons of Doom, 2 = Gnomish Mines (other numbers: other branches)",
    "branch_depth": "depth of the main-dungeon level whose second down staircase leads to the Mines, None if not found yet",
    "max_depth": "deepest depth reached this episode, in any branch",
    "xp_level": "experience level",
    "gold": "gold carried",
    "kills": "monsters the agent killed or destroyed this episode",
    "ate_in_mines": "True once the agent has eaten from its inventory inside the Gnomish Mines",
    "sales": "items sold to shopkeepers this episode",
    "turn": "game turn",
    "step": "agent steps taken this episode",
    "worshipper_available": "an altar is next to the agent and it carries an item it found (WORSHIPPER may start)",
    "merchant_available": "a shopkeeper is next to the agent and it carries an item it found (MERCHANT may start)",
    "visited_main_depths": "set of main-dungeon depths visited this episode",
}
assert set(STATE_FIELD_DOCS) == set(STATE_FIELDS), "document every SkillState field"


def contract_text() -> str:
    """The policy-over-skills contract as plain text, for code-generation prompts."""
    fields_text = "\n".join(f"    state.{name}: {doc}" for name, doc in STATE_FIELD_DOCS.items())
    names = ", ".join(f"{s.name} = {int(s)}" for s in Skill)
    return (
        "Write Python in a small subset: no imports except random and math, no classes, no lambda, no try, "
        "no I/O, no names or attributes starting with '_'.\n"
        f"Skill ids are predefined constants: {names}.\n"
        "Define at module level:\n"
        "  SKILL_TURNS = <int>            # D: the discoverer runs D game turns, worshipper and merchant 20*D\n"
        "  def start(memory): ...         # each episode; store your own variables as memory.<name>\n"
        "  def choose_skill(state, memory): ...  # each time a skill ends; return the next skill id\n"
        "state is read-only and has:\n"
        f"{fields_text}\n"
        "  state.available: ids of the skills that may start now\n"
        "random is seeded for you; use random.random(), random.choice(...), random.randint(a, b)."
    )
