"""Task buc: learn the curse status of items at an altar (altars can be on depth 1).

Use the altar whenever one is next to the agent and it carries something it found; otherwise
sweep the first five levels.
"""

SKILL_TURNS = 500


def start(memory):
    memory.max_depth = 5
    memory.direction = "down"


def select_skill(state, memory):
    if state.merchant_available:
        return MERCHANT
    if state.worshipper_available:
        return WORSHIPPER
    if state.skill != DISCOVERER:
        return DISCOVERER
    if memory.direction == "down":
        if state.depth < memory.max_depth:
            return DESCENDER
        memory.direction = "up"
    if state.depth > 1:
        return ASCENDER
    memory.direction = "down"
    return DESCENDER


def choose_skill(state, memory):
    if state.worshipper_available:
        return WORSHIPPER
    return select_skill(state, memory)
