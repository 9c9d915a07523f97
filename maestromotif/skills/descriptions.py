"""Natural-language descriptions of the five skills.

These texts are read by LLMs: the annotator uses them to judge which of two moments of play
better fits a skill, and code generation uses the one-line summaries when it writes a policy
over skills. They describe intent, not mechanics, so they are written for a reader who knows
NetHack but not this code base.
"""

from __future__ import annotations

from types import MappingProxyType

from maestromotif.skills.ids import Skill

# One line per skill, for code-generation prompts ("the agent can use these skills: ...").
SKILL_SUMMARIES = MappingProxyType(
    {
        Skill.DISCOVERER: "explores the level it is on: walks into unseen rooms and corridors, fights what it "
        "meets, picks up gold and scrolls, and never takes a staircase",
        Skill.DESCENDER: "looks for a staircase leading down and takes it; it ends as soon as the agent is one "
        "level deeper",
        Skill.ASCENDER: "looks for a staircase leading up and takes it; it ends as soon as the agent is one "
        "level higher (taking the up staircase of the first level leaves the dungeon)",
        Skill.WORSHIPPER: "drops the items it found onto an altar to learn whether they are blessed, uncursed or "
        "cursed; it does not pray",
        Skill.MERCHANT: "offers the items it found to a shopkeeper and sells them at a fair price; it never "
        "steals from the shop",
    }
)

# Longer statement of each skill's goal, for the annotator's preference prompt.
SKILL_DESCRIPTIONS = MappingProxyType(
    {
        Skill.DISCOVERER: (
            "The player should make the most of the level it is currently on. Good play means actively "
            "uncovering the map, entering new rooms, fighting and defeating monsters, and collecting gold and "
            "scrolls (keeping them rather than dropping them). Any change of dungeon level, up or down, goes "
            "against this goal."
        ),
        Skill.DESCENDER: (
            "The player should get deeper into the dungeon as quickly as it can. Finding a staircase down and "
            "using it is what matters; lingering on the same level is undesirable, and climbing to a shallower "
            "level is even worse."
        ),
        Skill.ASCENDER: (
            "The player should get closer to the surface. The only real progress is moving up to a shallower "
            "level by an up staircase; staying on the same level is disliked no matter what else happens there."
        ),
        Skill.WORSHIPPER: (
            "The player should use an altar to find out whether its items are blessed, uncursed or cursed, by "
            "dropping them on the altar and watching for flashes. Praying is not the goal, and nothing should "
            "anger the god."
        ),
        Skill.MERCHANT: (
            "The player should trade with shopkeepers: bargain over and sell the items it carries for gold. "
            "Stealing from a shop or angering the shopkeeper is unacceptable."
        ),
    }
)

# A rule shared by every skill in the annotator's prompt.
SHARED_RULE = "Whatever the skill, never do anything that angers the god."
