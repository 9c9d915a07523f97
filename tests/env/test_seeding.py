"""Seeding: same seed, same trajectory; different seeds and successive episodes, different dungeons."""

from __future__ import annotations

import numpy as np
import pytest

from maestromotif.env.actions import NUM_ACTIONS
from maestromotif.env.nethack_env import NetHackMonk, episode_seeds


def _rollout(seed: int, steps: int, action_seed: int = 0) -> list[dict[str, np.ndarray]]:
    env = NetHackMonk(seed=seed, max_episode_steps=60)  # short episodes: resets happen inside the rollout
    rng = np.random.default_rng(action_seed)
    obs, _ = env.reset()
    out = [obs]
    try:
        for _ in range(steps):
            obs, _, term, trunc, _ = env.step(int(rng.integers(NUM_ACTIONS)))
            out.append(obs)
            if term or trunc:
                obs, _ = env.reset()
                out.append(obs)
    finally:
        env.close()
    return out


def _map(env: NetHackMonk) -> bytes:
    return env.buf["tty_chars"][1:22].tobytes()


def test_same_seed_same_trajectory() -> None:
    a = _rollout(7, 200)
    b = _rollout(7, 200)
    assert len(a) == len(b)
    for x, y in zip(a, b):
        for k in x:
            np.testing.assert_array_equal(x[k], y[k], err_msg=k)


def test_different_seeds_different_dungeons() -> None:
    maps = set()
    for seed in range(4):
        env = NetHackMonk(seed=seed)
        env.reset_game()
        maps.add(_map(env))
        env.close()
    assert len(maps) == 4


def test_successive_episodes_get_new_dungeons_reproducibly() -> None:
    def maps(seed: int) -> list[bytes]:
        env = NetHackMonk(seed=seed)
        out = []
        for _ in range(3):
            env.reset_game()
            out.append(_map(env))
        env.close()
        return out

    first = maps(5)
    assert len(set(first)) == 3
    assert maps(5) == first


def test_gym_reset_seed_restarts_the_episode_sequence() -> None:
    env = NetHackMonk(seed=1)
    try:
        env.reset(seed=9)
        m0 = _map(env)
        env.reset()
        env.reset(seed=9)
        assert _map(env) == m0 and env.episode == 0
    finally:
        env.close()


def test_episode_seeds_are_deterministic_and_distinct() -> None:
    assert episode_seeds(3, 4) == episode_seeds(3, 4)
    seen = {episode_seeds(s, e) for s in range(20) for e in range(20)}
    assert len(seen) == 400
    assert all(0 <= c < 2**63 and 0 <= d < 2**63 for c, d in seen)
    with pytest.raises(ValueError, match="seed"):
        episode_seeds(-1, 0)
    with pytest.raises(ValueError, match="seed"):
        NetHackMonk(seed=-3)
