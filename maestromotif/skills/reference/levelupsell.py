"""Task levelupsell: reach experience level 4 on the first level, then sell an item, then survive.

Explore the first level until XP 4; then look for a shop (sweeping the main dungeon down to
depth 5) and sell as soon as a shopkeeper is next to the agent; after the first sale keep
sweeping, which is also how the agent stays alive for a while.
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


def reach_dungeons_of_doom(state, memory):
    if state.branch_depth is not None:
        if state.dungeon == 0 and state.depth == state.branch_depth:
            return DESCENDER
        if state.dungeon == 2 and state.depth == state.branch_depth + 1:
            return ASCENDER  # landed in the Mines: go back up and try again
    return select_skill(state, memory)


def choose_skill(state, memory):
    if state.xp_level < 4:
        return DISCOVERER
    if state.sales == 0:
        if state.merchant_available:
            return MERCHANT
        return reach_dungeons_of_doom(state, memory)
    return select_skill(state, memory)
