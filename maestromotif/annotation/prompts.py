"""What the annotator LLM is shown, and how its answers are read.

* ``describe_transition``: the six lines of method.md 5.2 (previous and current
  message, dungeon level, gold, HP, XP level, hunger by name).
* ``compare_messages``: the paper's comparative prompt, in our own words, with
  the skill's preference from ``maestromotif.skills`` and the shared rule.
* ``score_messages``: a few-shot Yes/No question about the skill for one
  transition alone, in one of several phrasings (the score strategy for small
  models).
* ``parse_verdict``: the LAST ``best_description: 1|2|None`` in a reply (D20).
"""

from __future__ import annotations

import json
import re
from types import MappingProxyType

from maestromotif.annotation.schema import HUNGER_NAMES, Transition
from maestromotif.llm.base import ChatMessage
from maestromotif.skills.descriptions import SHARED_RULE, SKILL_DESCRIPTIONS
from maestromotif.skills.ids import Skill

# --- the six lines -----------------------------------------------------------


def _hunger(value: int) -> str:
    return HUNGER_NAMES[value] if 0 <= value < len(HUNGER_NAMES) else f"unknown ({value})"


def describe_level(before: int, after: int) -> str:
    if after == before:
        return f"unchanged (level {after})"
    # Depth numbers grow downwards: "up" means the number fell.
    direction = "down" if after > before else "up"
    return f"went {direction} from level {before} to level {after}"


def describe_transition(t: Transition) -> dict[str, str]:
    """The six facts the compare prompt shows for one transition."""
    depth0, gold0, hp0, hpmax0, xp0, hunger0 = t.stats_before
    depth1, gold1, hp1, hpmax1, xp1, hunger1 = t.stats_after
    return {
        "messages": f"previous: {t.prev_message!r}, current: {t.message!r}",
        "dungeon level": describe_level(depth0, depth1),
        "gold": f"{gold0} -> {gold1}" if gold0 != gold1 else f"unchanged ({gold1})",
        "hit points": f"{hp0}/{hpmax0} -> {hp1}/{hpmax1}",
        "experience level": f"{xp0} -> {xp1}" if xp0 != xp1 else f"unchanged ({xp1})",
        "hunger": f"{_hunger(hunger0)} -> {_hunger(hunger1)}" if hunger0 != hunger1 else _hunger(hunger1),
    }


# --- compare strategy ----------------------------------------------------------

COMPARE_SYSTEM = (
    "You are an impartial judge of NetHack play. You reason briefly and honestly, and you always finish "
    "with the verdict line in exactly the requested form."
)


def compare_messages(skill: Skill, first: Transition, second: Transition) -> list[ChatMessage]:
    preference = SKILL_DESCRIPTIONS[Skill(skill)]
    blocks = "\n\n".join(
        f"Description {i}:\n" + json.dumps(describe_transition(t), indent=1, ensure_ascii=True)
        for i, t in ((1, first), (2, second))
    )
    user = (
        "Below are two short descriptions of moments from games of NetHack: the messages the game printed "
        "and how the hero's statistics changed.\n"
        "1. Start by saying in a few sentences what you know about NetHack and what the game is about.\n"
        "2. Explain what each description says happened, using only what is written and your knowledge of "
        "the game.\n"
        f"3. Reason from first principles about which description better matches this preference: "
        f"{preference} {SHARED_RULE}\n"
        "4. Be brief. End your reply with a single line of the form\n"
        "best_description: 1\n"
        "(or 2), or best_description: None if neither description is desirable.\n\n"
        f"{blocks}"
    )
    return [ChatMessage("system", COMPARE_SYSTEM), ChatMessage("user", user)]


RETRY_PROMPT = (
    "Which description is best? Answer with one line and nothing else: best_description: 1, "
    "best_description: 2 or best_description: None."
)

# "best", optional (escaped) underscore, "description", punctuation or quotes, an optional
# word made of letters only (so it cannot swallow the digit, D20), then the verdict.
_VERDICT_RE = re.compile(
    r"best[\s\\]*_?[\s]*description[\s\"'`*:=\-]*(?:[a-z]+[\s\"'`*:=\-]+)?[\"'`*]*(1|2|none)\b",
    re.IGNORECASE,
)


def parse_verdict(text: str) -> int | None:
    """Label from a reply: 0 (first), 1 (second), 2 (None/tie) from the LAST verdict; None if absent."""
    matches = _VERDICT_RE.findall(text)
    if not matches:
        return None
    value = matches[-1].lower()
    return {"1": 0, "2": 1, "none": 2}[value]


# --- score strategy ------------------------------------------------------------

# Questions per skill, answerable from a single moment of play; each is one *phrasing*, and a
# transition's score is the mean Yes/No log-odds over its skill's phrasings (averaging smooths
# the small model's sensitivity to wording). The first phrasing names the concrete things the
# message would show (a 0.5B model matches observables far better than it reasons about goals);
# the second states the skill's goal. Worshipper has a single phrasing: its goal question made
# the model rate prayer above a "black flash" (it reads black as bad), so the one question says
# that either flash is what the skill wants.
SCORE_QUESTIONS: MappingProxyType[Skill, tuple[str, ...]] = MappingProxyType(
    {
        Skill.DISCOVERER: (
            "Does this message say the player fought or killed a monster, found something hidden, or picked "
            "up gold or a scroll?",
            "Did the player fight a monster, find something, or pick up gold or a scroll, while staying on the "
            "same level?",
        ),
        Skill.DESCENDER: (
            "Does this message say the player went DOWN to a deeper level, or found a staircase leading down?",
            "Did the player go down to a deeper dungeon level?",
        ),
        Skill.ASCENDER: (
            "Does this message say the player went UP a staircase to a higher level, or found a staircase "
            "leading up?",
            "Did the player go up to a higher dungeon level?",
        ),
        Skill.WORSHIPPER: (
            "Did the player drop an item on an altar (a black or amber flash shows whether it is cursed or "
            "blessed), or find an altar?",
        ),
        Skill.MERCHANT: (
            "Does this message say the player is selling an item to a shopkeeper or is in a shop?",
            "Is the player in a shop, dealing with a shopkeeper to sell items?",
        ),
    }
)

# Worked examples (few-shot turns) that calibrate the Yes/No answer. None of these messages is
# in the check set (a test asserts it), so the check set measures generalisation, not recall.
_DOWN = "(The player went down from level {} to level {}.)"
_UP = "(The player went up from level {} to level {}.)"
SCORE_EXAMPLES: MappingProxyType[Skill, tuple[tuple[str, str], ...]] = MappingProxyType(
    {
        Skill.DISCOVERER: (
            ("You hit the gecko.", "Yes"),
            ("You climb down the ladder. " + _DOWN.format(2, 3), "No"),
            ("g - 2 scrolls labeled KIRJE.", "Yes"),
            ("You are beginning to feel hungry.", "No"),
        ),
        Skill.DESCENDER: (
            ("You climb down the ladder. " + _DOWN.format(2, 3), "Yes"),
            ("You hit the gecko.", "No"),
            ("You climb up the ladder. " + _UP.format(5, 4), "No"),
            ("You float gently to the ground. " + _DOWN.format(4, 5), "Yes"),
        ),
        Skill.ASCENDER: (
            ("You climb up the ladder. " + _UP.format(5, 4), "Yes"),
            ("You hit the gecko.", "No"),
            ("You climb down the ladder. " + _DOWN.format(2, 3), "No"),
            ("You rise up, through the ceiling! " + _UP.format(6, 5), "Yes"),
        ),
        Skill.WORSHIPPER: (
            ("There is an amber flash as a bow hits the altar.", "Yes"),
            ("You hit the gecko.", "No"),
            # The skill description excludes prayer: one prayer message, not the check set's.
            ("You finish your prayer.", "No"),
            ("There is a black flash as a quarterstaff hits the altar.", "Yes"),
            ("You are surrounded by a shimmering light.", "No"),
            ("There is an altar to Anhur (chaotic) here.", "Yes"),
        ),
        Skill.MERCHANT: (
            ("Manlobbi offers 8 gold pieces for your mace.  Sell it?", "Yes"),
            ("You hit the gecko.", "No"),
            ("You sold a wand to Manlobbi for 100 gold pieces.", "Yes"),
            ("You are beginning to feel hungry.", "No"),
        ),
    }
)

SCORE_SYSTEM = "You are a helpful assistant who knows the game NetHack well. Answer Yes or No."


def score_text(t: Transition) -> str:
    """What the score strategy shows: the current message, plus the level change if any.

    Only the current message and the depth change reach the reward model (method.md 6),
    so they are also what the score is computed from.
    """
    message = t.message.strip()
    depth0, depth1 = t.stats_before[0], t.stats_after[0]
    if depth1 != depth0:
        note = (_DOWN if depth1 > depth0 else _UP).format(depth0, depth1)
        return f'Message: "{message} {note}"' if message else f'Message: "{note}"'
    return f'Message: "{message}"' if message else 'Message: "" (nothing happened)'


def score_phrasings(skill: Skill) -> int:
    """How many phrasings (questions) the skill's score averages over."""
    return len(SCORE_QUESTIONS[Skill(skill)])


def score_messages(skill: Skill, text: str, phrasing: int = 0) -> list[ChatMessage]:
    """Few-shot Yes/No chat; the examples form a fixed prefix per (skill, phrasing) (KV-cache reuse)."""
    questions = SCORE_QUESTIONS[Skill(skill)]
    if not 0 <= phrasing < len(questions):
        raise ValueError(f"phrasing: {phrasing} not in [0, {len(questions)}) for skill {Skill(skill).name}")
    question = questions[phrasing]
    messages = [ChatMessage("system", SCORE_SYSTEM)]
    for example, answer in SCORE_EXAMPLES[Skill(skill)]:
        messages += [ChatMessage("user", f'Message: "{example}"\n{question}'), ChatMessage("assistant", answer)]
    messages.append(ChatMessage("user", f"{text}\n{question}"))
    return messages
