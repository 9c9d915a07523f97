"""What one environment exposes to the skill controller and task detectors.

This module is the agreed interface between the environment layer and the
skills layer (see the project brief); keep it free of NLE imports so that
skills code can build views in unit tests without the game.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(slots=True)
class GameView:
    """What one environment exposes after reset/step to the skill controller and task detectors.

    Arrays may be views into NLE buffers valid only until the next step: copy what you keep.
    """

    tty_chars: np.ndarray  # uint8 [24, 80]
    tty_colors: np.ndarray  # int8 [24, 80]
    hero_row: int  # tty row of the hero (= map y + 1)
    hero_col: int  # tty column of the hero (= map x)
    blstats: np.ndarray  # int64 [27], raw NLE blstats (depth [12], dungeon number [23], turn [20], gold [13], XP level [18], hunger [21])
    glyphs: np.ndarray  # int16 [21, 79]
    message: bytes  # current top-line message, NUL-stripped, after hiding "You see"/"You hear" messages
    acquired_items: int  # droppable items acquired this episode (non-food, non-coin letters not in the starting inventory)
    just_eaten: bool  # an inventory eat succeeded on this step
    episode_step: int  # agent steps taken in this episode (0 after reset)
    last_action: int  # action id of the step that produced this view (-1 after reset)

    @property
    def depth(self) -> int:
        """Dungeon depth (blstats[12])."""
        return int(self.blstats[12])

    @property
    def dungeon_number(self) -> int:
        """Dungeon number (blstats[23]); 0 = Dungeons of Doom, 2 = Gnomish Mines."""
        return int(self.blstats[23])

    @property
    def turn(self) -> int:
        """Game turn (blstats[20])."""
        return int(self.blstats[20])
