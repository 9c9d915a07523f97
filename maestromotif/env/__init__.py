"""The NetHack environment of the method (NLE 1.0.0): game, macro actions,
compact observations, vectorized envs and the torch renderer.

Modules: ``actions`` (Discrete(28) action set), ``nethack_env`` (one game),
``compact`` (the observation actors send; field names of ``EnvStepBatch``),
``vec`` (N games in one process or over worker processes), ``view`` (the
``GameView`` the skill controller reads), ``render`` (crops -> 3x72x72 images,
imports torch, so it is not imported here).
"""

from maestromotif.env.actions import NUM_ACTIONS, Action
from maestromotif.env.compact import FIELDS as COMPACT_FIELDS
from maestromotif.env.nethack_env import NetHackMonk, episode_seeds
from maestromotif.env.vec import EpisodeStats, ProcessVecEnv, VecEnv
from maestromotif.env.view import GameView

__all__ = [
    "NUM_ACTIONS",
    "Action",
    "COMPACT_FIELDS",
    "NetHackMonk",
    "episode_seeds",
    "EpisodeStats",
    "ProcessVecEnv",
    "VecEnv",
    "GameView",
]
