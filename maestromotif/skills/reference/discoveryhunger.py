"""Task discoveryhunger: find the Mines and eat there once hungry, then reach the Oracle.

Look for the Mines; inside them explore (the agent eats while exploring) until it has eaten;
then climb back to the main dungeon and descend to depth 9.
"""

SKILL_TURNS = 500


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


def reach_gnomish_mines(state, memory):
    if state.dungeon == 0 and state.branch_depth is not None:
        if state.depth == state.branch_depth:
            return DESCENDER
        if state.depth == state.branch_depth + 1:
            return ASCENDER  # wrong branch: go back up and try again
    return select_skill(state, memory)


def choose_skill(state, memory):
    if not state.ate_in_mines:
        if state.dungeon == 2:
            return DISCOVERER
        return reach_gnomish_mines(state, memory)
    if state.dungeon != 0:
        return ASCENDER
    if state.depth < 9:
        return DESCENDER
    return select_skill(state, memory)
