"""Task detectors firing on real NetHack states reached in wizard mode."""

from __future__ import annotations

import numpy as np
import pytest
from skills_helpers import find_fork, level_teleport, map_level, teleport_to, wizard_env

from maestromotif.env.actions import Action
from maestromotif.skills import rules
from maestromotif.tasks import TaskTracker

pytestmark = pytest.mark.filterwarnings("ignore")


def test_gnomish_and_minetown_on_the_real_mines() -> None:
    env = wizard_env(3)
    gnomish, minetown = TaskTracker("gnomish"), TaskTracker("minetown")
    gnomish.reset(env.view())
    minetown.reset(env.view())
    fork = find_fork(env)
    for y, x in zip(*np.nonzero(env.buf["glyphs"] == rules.GLYPH_DOWNSTAIR)):
        level_teleport(env, fork)
        teleport_to(env, int(y), int(x))
        env.act(Action.DOWN)
        gnomish.update(env.view())
        if env.view().dungeon_number == 2:
            break
    assert gnomish.outcome.legacy_success and gnomish.outcome.strict_success and gnomish.done
    minetown.update(env.view())
    assert not minetown.outcome.strict_success  # the first Mines level is not Minetown
    level_teleport(env, "minetn")
    map_level(env)
    minetown.update(env.view())
    assert env.view().dungeon_number == 2
    assert minetown.outcome.strict_success


def test_delphi_legacy_at_depth_7_and_strict_on_the_oracle_level() -> None:
    env = wizard_env(3)
    t = TaskTracker("delphi")
    t.reset(env.view())
    level_teleport(env, "oracle")
    t.update(env.view())
    oracle_depth = env.view().depth
    assert 5 <= oracle_depth <= 9 and env.view().dungeon_number == 0
    map_level(env)  # the centaur statues around the Oracle come into view
    t.update(env.view())
    assert t.outcome.strict_success
    assert t.outcome.legacy_success == (oracle_depth == 7)
    level_teleport(env, 7)
    t.update(env.view())
    assert t.outcome.legacy_success and t.done
