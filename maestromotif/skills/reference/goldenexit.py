"""Task goldenexit: visit each of the first three main levels, gather 20 gold and 25 kills, then leave.

Sweep levels 1 to 3 of the main dungeon (out of the Mines, and out of any other branch, which
the original did not handle); once the gold, the kills and the three levels are there, climb
until the agent tries to leave the dungeon from the first level.
"""

SKILL_TURNS = 500


def start(memory):
    memory.max_depth = 3
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
    done = state.gold >= 20 and state.kills >= 25
    seen = 1 in state.visited_main_depths and 2 in state.visited_main_depths and 3 in state.visited_main_depths
    if done and seen:
        return ASCENDER
    if state.dungeon == 0:
        return select_skill(state, memory)
    return ASCENDER  # Mines or any other branch: back to the main dungeon
