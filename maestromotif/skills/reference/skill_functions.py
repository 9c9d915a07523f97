"""The hand-written initiation and termination rules of maestromotif.skills.rules, as skill functions.

The positive control of code-generation validation (agreement 1.0 with the rules on every
recorded state) and a few-shot example of the skill-functions kind. The crop names what the hero
sees around it; the hero's own cell is blank.
"""

LONG_SKILL_FACTOR = 20


def seen(grid, name):
    for row in grid:
        for cell in row:
            if cell == name:
                return True
    return False


def skill_precondition(crop, num_items):
    # Both conditional skills need an item the agent found (to test at an altar or to sell).
    if num_items < 1:
        return (False, False)
    return (seen(crop.features, "altar"), seen(crop.monsters, "shopkeeper"))


def skill_termination(skill, skill_turns, depth, start_depth, worshipper_pre, merchant_pre, base_turns):
    if worshipper_pre or merchant_pre:
        return True
    if skill == DESCENDER:
        return depth > start_depth
    if skill == ASCENDER:
        return depth < start_depth
    if skill == DISCOVERER:
        return skill_turns >= base_turns
    return skill_turns >= LONG_SKILL_FACTOR * base_turns
