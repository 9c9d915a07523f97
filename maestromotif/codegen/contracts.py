"""What each artifact kind must define, as text for code-generation prompts (one place per kind).

Policies reuse ``maestromotif.skills.contract.contract_text()``; skill functions are described
here from the same definitions (``CropView``, the skill ids, the sandbox's required functions).
"""

from __future__ import annotations

from maestromotif.codegen import ArtifactKind
from maestromotif.codegen.testapi import describe_test_api
from maestromotif.skills.contract import contract_text
from maestromotif.skills.ids import Skill
from maestromotif.skills.rules import LONG_SKILL_FACTOR


def skill_functions_text() -> str:
    """The skill-functions contract (initiation of the two conditional skills, termination of all five)."""
    names = ", ".join(f"{s.name} = {int(s)}" for s in Skill)
    return (
        "Write Python in a small subset: no imports except random and math, no classes, no lambda, no try, "
        "no I/O, no names or attributes starting with '_', module-level values only numbers, strings or tuples.\n"
        f"Skill ids are predefined constants: {names}.\n"
        "Define at module level exactly these two functions (helpers are allowed):\n"
        "  def skill_precondition(crop, num_items): -> (worshipper_pre, merchant_pre)\n"
        "      whether WORSHIPPER (use an altar) and MERCHANT (sell to a shopkeeper) may start now.\n"
        "      crop is the 7x7 view centred on the hero (the hero's own cell is blank):\n"
        "        crop.chars: 7 strings of 7 characters as on screen; crop.colors: 7 rows of 7 colour numbers;\n"
        "        crop.monsters: 7 rows of 7 monster names ('shopkeeper', 'aligned priest', ... or '');\n"
        "        crop.features: 7 rows of 7 map feature names ('altar', 'staircase down', ... or '').\n"
        "      num_items: how many items the agent picked up this episode (it needs one to test or sell).\n"
        "  def skill_termination(skill, skill_turns, depth, start_depth, worshipper_pre, merchant_pre, base_turns):"
        " -> bool\n"
        "      whether the running skill ends now; skill_turns: game turns it has run; start_depth: the depth it "
        "started at; base_turns: the task's D.\n"
        f"      Usual rule: DISCOVERER runs D turns, DESCENDER until one level deeper, ASCENDER until one level "
        f"higher, WORSHIPPER and MERCHANT at most {LONG_SKILL_FACTOR}*D turns, and any skill ends as soon as "
        "WORSHIPPER or MERCHANT may start."
    )


def contract_for(kind: ArtifactKind | str, *, with_tests: bool = True) -> str:
    """The contract text of one kind, optionally followed by the unit-test API."""
    kind = ArtifactKind(kind)
    text = skill_functions_text() if kind is ArtifactKind.SKILL_FUNCTIONS else contract_text()
    return text + ("\n\n" + describe_test_api() if with_tests else "")
