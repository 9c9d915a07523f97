"""The nine evaluation tasks: prompts, parameters and the paper's numbers (method.md 4).

Prompts are our own wording of each task, written for the coder LLM that composes skills.
``max_depth`` and ``base_turns`` (D) are the controller parameters of method.md 4.2; the
reference policies in ``maestromotif.skills.reference`` use the same values.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

Metric = Literal["success", "count"]
Kind = Literal["navigation", "interaction", "composite"]


@dataclass(frozen=True, slots=True)
class PaperNumbers:
    """Table of method.md 4.3 (mean ± s.e. over 9 seeds); rates in %, counts per episode."""

    maestromotif: str
    llm_policy: str
    motif: str
    embedding: str
    privileged: str


@dataclass(frozen=True, slots=True)
class TaskSpec:
    name: str
    kind: Kind
    metric: Metric
    prompt: str
    max_depth: int
    base_turns: int  # D
    # Navigation and composite tasks end at success; interaction tasks count until death or the
    # step limit (fix D1: they never end at the first descent).
    ends_on_success: bool
    # goldenexit needs the "climb" question handed to the agent (method.md 2.2).
    pass_climb_prompts: bool
    legacy_rule: str  # what the original measured
    strict_rule: str  # what this implementation also measures (fix D4)
    paper: PaperNumbers


def _t(**kw: object) -> TaskSpec:
    return TaskSpec(**kw)  # type: ignore[arg-type]


TASKS = MappingProxyType(
    {
        "gnomish": _t(
            name="gnomish", kind="navigation", metric="success", max_depth=5, base_turns=50,
            ends_on_success=True, pass_climb_prompts=False,
            prompt="Get into the Gnomish Mines. The Mines branch off the main dungeon from a level between "
            "depth 2 and 4 that has two staircases down; one of them leads into the Mines.",
            legacy_rule="overview shows 'Gnomish Mines' (= dungeon number 2)",
            strict_rule="dungeon number is 2 (blstats[23])",
            paper=PaperNumbers("46% ± 1.70", "0.1% ± 0.03", "9% ± 2.30", "3% ± 0.10", "3.20% ± 0.27"),
        ),
        "delphi": _t(
            name="delphi", kind="navigation", metric="success", max_depth=10, base_turns=50,
            ends_on_success=True, pass_climb_prompts=False,
            prompt="Reach the level of the Oracle of Delphi, somewhere between depth 5 and 9 of the main "
            "dungeon, as quickly as possible: do not waste time exploring and stay out of the Gnomish Mines.",
            legacy_rule="depth 7 reached in any branch (the original's 'Level 7' proxy)",
            strict_rule="the Oracle or her centaur statues seen on a main-dungeon level",
            paper=PaperNumbers("29% ± 1.20", "0%", "2% ± 0.70", "0%", "0%"),
        ),
        "minetown": _t(
            name="minetown", kind="navigation", metric="success", max_depth=5, base_turns=50,
            ends_on_success=True, pass_climb_prompts=False,
            prompt="Find the Gnomish Mines, then go straight down through them to Minetown, the town with "
            "shops and a temple three or four levels into the Mines.",
            legacy_rule="visited Mines depths span 3 levels with (first, last) in {(2,4),(3,5),(4,6)}",
            strict_rule="a Minetown feature (altar, fountain, shopkeeper, priest, watch) on a Mines level",
            paper=PaperNumbers("7.2% ± 0.50", "0%", "0%", "0%", "0%"),
        ),
        "transactions": _t(
            name="transactions", kind="interaction", metric="count", max_depth=5, base_turns=500,
            ends_on_success=False, pass_climb_prompts=False,
            prompt="Sell items to shopkeepers: collect things you find and sell them in shops. There are no "
            "shops on the first level.",
            legacy_rule="steps whose message contains 'sold'",
            strict_rule="'You sold ...' messages",
            paper=PaperNumbers("0.66 ± 0.01", "0.00", "0.08", "0.00", "0.01"),
        ),
        "price": _t(
            name="price", kind="interaction", metric="count", max_depth=5, base_turns=500,
            ends_on_success=False, pass_climb_prompts=False,
            prompt="Identify the price of items: offer them to shopkeepers for sale, since a shopkeeper's "
            "offer reveals an item's base price.",
            legacy_rule="sales right after an offer of N gold where 2N is a base price of a potion, scroll, "
            "ring, wand, cloak, boots or helmet",
            strict_rule="as legacy, with 2N a base price of the offered item's own class",
            paper=PaperNumbers("0.47 ± 0.01", "0.00", "0.02", "0.00", "0.00"),
        ),
        "buc": _t(
            name="buc", kind="interaction", metric="count", max_depth=5, base_turns=500,
            ends_on_success=False, pass_climb_prompts=False,
            prompt="Find out whether your items are blessed, uncursed or cursed by dropping them on an altar. "
            "Altars can appear from the first level on.",
            legacy_rule="drop steps whose message mentions 'altar' but neither 'cursed' nor 'blessed'",
            strict_rule="drop steps onto an altar ('flash as ... the altar' or '... on the altar') of an item "
            "whose curse status was unknown",
            paper=PaperNumbers("1.60 ± 0.01", "0.00", "0.05", "0.00", "0.00"),
        ),
        "goldenexit": _t(
            name="goldenexit", kind="composite", metric="success", max_depth=3, base_turns=500,
            ends_on_success=True, pass_climb_prompts=True,
            prompt="Visit each of the first three levels of the main dungeon at least once, gather at least "
            "20 gold and kill at least 25 monsters, then try to leave the dungeon by the up staircase of the "
            "first level.",
            legacy_rule="after 25 'kill'/'destroy' messages, gold >= 20 and max depth >= 3 (any branch): "
            "'climb' on screen",
            strict_rule="after 25 'You kill/destroy', gold >= 20 and main depths 1-3 visited: the leave "
            "question at the depth-1 up staircase",
            paper=PaperNumbers("24.80% ± 1.18", "0%", "0%", "0%", "—"),
        ),
        "levelupsell": _t(
            name="levelupsell", kind="composite", metric="success", max_depth=5, base_turns=500,
            ends_on_success=True, pass_climb_prompts=False,
            prompt="Stay on the first level until you reach experience level 4, then sell an item to a "
            "shopkeeper, then stay alive for 300 more steps.",
            legacy_rule="any 'sold' message, then more than 300 steps alive (XP and depth not checked)",
            strict_rule="XP 4 without leaving depth 1, then 'You sold ...', then more than 300 steps alive",
            paper=PaperNumbers("7.09% ± 0.99", "0%", "0%", "0%", "—"),
        ),
        "discoveryhunger": _t(
            name="discoveryhunger", kind="composite", metric="success", max_depth=10, base_turns=500,
            ends_on_success=True, pass_climb_prompts=False,
            prompt="First find the Gnomish Mines and eat something there once you are hungry; then go back to "
            "the main dungeon and reach the Oracle's level (depth 5 to 9).",
            legacy_rule="an inventory eat inside the Mines (hunger not checked), then depth 7 in any branch",
            strict_rule="an inventory eat inside the Mines while Hungry or worse, then the Oracle level",
            paper=PaperNumbers("7.91% ± 1.47", "0%", "0%", "0%", "—"),
        ),
    }
)
TASK_NAMES: tuple[str, ...] = tuple(TASKS)


def get_task(name: str) -> TaskSpec:
    """The task called ``name``; raises ``KeyError`` listing the valid names."""
    try:
        return TASKS[name]
    except KeyError:
        raise KeyError(f"unknown task {name!r}; choose one of {', '.join(TASK_NAMES)}") from None
