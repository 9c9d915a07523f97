"""The NetHack environment of the method (NLE 1.0.0): game, macro actions,
compact observations, vectorized envs and the torch renderer.

Modules: ``actions`` (Discrete(28) action set), ``nethack_env`` (one game),
``compact`` (the observation actors send; field names of ``EnvStepBatch``),
``vec`` (N games in one process or over worker processes), ``view`` (the
``GameView`` the skill controller reads), ``render`` (crops -> 3x72x72 images
in torch).

Names are imported lazily, so a learner that only renders (``compact`` and
``render``) does not load NLE.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "NUM_ACTIONS": "actions",
    "Action": "actions",
    "NetHackMonk": "nethack_env",
    "episode_seeds": "nethack_env",
    "EpisodeStats": "vec",
    "ProcessVecEnv": "vec",
    "VecEnv": "vec",
    "GameView": "view",
    "CropRenderer": "render",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'maestromotif.env' has no attribute {name!r}")
    return getattr(importlib.import_module(f"maestromotif.env.{module}"), name)
