"""Helpers for env tests: drive a wizard-mode game into the states a test needs."""

from __future__ import annotations

from nle import nethack

from maestromotif.env.nethack_env import NetHackMonk, _inventory

# wizard-mode seeds whose Monk starts with this spell and at least 5 Pw
SEED_HEALING = 0
SEED_PROTECTION = 2
SEED_SLEEP = 6


def wizard_env(seed: int) -> NetHackMonk:
    env = NetHackMonk(seed=seed, wizard=True)
    env.reset_game()
    return env


def type_keys(env: NetHackMonk, keys: list[int | str]) -> None:
    """Type raw keys (test setup only), then let the env settle prompts as after a step."""
    for k in keys:
        for code in ([k] if isinstance(k, int) else [ord(c) for c in k]):
            env._send(code)
    env._settle([], [False])
    env._finish_message()


def wish(env: NetHackMonk, item: str) -> None:
    type_keys(env, [nethack.C("w"), item, "\r"])


def level_teleport(env: NetHackMonk, depth: int) -> None:
    type_keys(env, [nethack.C("v"), str(depth), "\r"])


def teleport_to_down_stairs(env: NetHackMonk) -> None:
    """Map the level (^F), then wizard-teleport (^T) onto a down staircase."""
    type_keys(env, [nethack.C("f")])
    type_keys(env, [nethack.C("t"), ">", "."])


def inventory(env: NetHackMonk) -> dict[str, str]:
    return {chr(k): v.decode() for k, v in _inventory(env.buf).items()}


def turn(env: NetHackMonk) -> int:
    return int(env.buf["blstats"][nethack.NLE_BL_TIME])


def energy(env: NetHackMonk) -> int:
    return int(env.buf["blstats"][nethack.NLE_BL_ENE])
