"""Task delphi: reach the Oracle's level (main dungeon, at most depth 9) quickly.

Do not explore and stay out of the Mines: climb back whenever outside the main dungeon, descend
until depth 9, then fall back to the sweep.
"""

SKILL_TURNS = 50


def start(memory):
    memory.max_depth = 10
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
    if state.dungeon != 0:
        return ASCENDER
    if state.depth < 9:
        return DESCENDER
    return select_skill(state, memory)
