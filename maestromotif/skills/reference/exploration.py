"""Training-time policy over skills (method.md 3.3).

Each episode picks how deep to sweep (2 to 4 levels) and whether to sweep the Gnomish Mines or
the main dungeon. The sweep alternates exploring a level with moving one level along the current
direction, turning round at the bottom and at the top, and uses a shop or an altar whenever one
is next to the agent.
"""

import random

SKILL_TURNS = 500


def start(memory):
    memory.max_depth = random.choice([2, 3, 4])
    memory.mines = random.random() < 0.5
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
    # The fork level has the second down staircase; a descent from it lands in either branch.
    if state.dungeon == 0 and state.branch_depth is not None:
        if state.depth == state.branch_depth:
            return DESCENDER
        if state.depth == state.branch_depth + 1:
            return ASCENDER  # wrong branch: go back up and try again
    return select_skill(state, memory)


def reach_dungeons_of_doom(state, memory):
    if state.branch_depth is not None:
        if state.dungeon == 0 and state.depth == state.branch_depth:
            return DESCENDER
        if state.dungeon == 2 and state.depth == state.branch_depth + 1:
            return ASCENDER  # landed in the Mines: go back up and try again
    return select_skill(state, memory)


def choose_skill(state, memory):
    if memory.mines:
        return reach_gnomish_mines(state, memory)
    return reach_dungeons_of_doom(state, memory)
