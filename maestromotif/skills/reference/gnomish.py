"""Task gnomish: enter the Gnomish Mines.

Sweep the main dungeon until the fork level (two down staircases) is known, then take its stairs
down; a descent from the fork lands in either branch, so after landing in the main dungeon climb
back and try again.
"""

SKILL_TURNS = 50


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


def reach_gnomish_mines(state, memory):
    if state.dungeon == 0 and state.branch_depth is not None:
        if state.depth == state.branch_depth:
            return DESCENDER
        if state.depth == state.branch_depth + 1:
            return ASCENDER  # wrong branch: go back up and try again
    return select_skill(state, memory)


def choose_skill(state, memory):
    return reach_gnomish_mines(state, memory)
