"""Vectorized env throughput against raw NLE stepping, per core, in the same run.

Ours: ``VecEnv`` (one process, so one core) stepping N games with random
actions, building the compact batch and, when available, running a skill
controller with the reference training policy over skills in every env.
Baseline: NLE's own gymnasium env (``nle.env.NLE``) on one core with random
actions, the same 28 keys and the same game options, auto-resetting.
Printed: steps/s of each and the ratio ours / baseline (issue goal >= 0.5),
the median over rounds that alternate the two measurements (the machine may
be shared). The same key set matters: random prayers kill the Monk often, so
resets are a real share of the cost on both sides.
Environment variables: BENCH_ENV_STEPS (agent steps per measurement, default
20000), BENCH_ENV_N (games in the vectorized env, default 16), BENCH_ENV_ROUNDS (3).
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable

import numpy as np

from maestromotif.env.actions import BASE_KEYS, NUM_ACTIONS
from maestromotif.env.nethack_env import MAX_EPISODE_STEPS, OPTIONS
from maestromotif.env.vec import VecEnv


def _controller_factory() -> tuple[Callable[[int], Any] | None, str]:
    """The skills helper's controller with the training policy, if it exists in this tree."""
    try:
        from maestromotif.skills.controller import SkillController
        from maestromotif.skills.reference import TRAINING_POLICY, load_reference
    except ImportError as e:
        return None, f"no skill controller ({e}); compact observation only"

    def make(i: int) -> Any:
        return SkillController(load_reference(TRAINING_POLICY), seed=i)

    return make, f"SkillController + reference policy {TRAINING_POLICY!r}"


def bench_nle(steps: int, seed: int) -> float:
    import nle.env

    env = nle.env.NLE(
        observation_keys=("tty_chars", "tty_colors", "blstats", "message"),
        actions=BASE_KEYS,
        options=OPTIONS,
        max_episode_steps=MAX_EPISODE_STEPS,
    )
    env.seed(seed, seed + 1, False)
    env.reset()
    acts = np.random.default_rng(seed).integers(env.action_space.n, size=steps).tolist()
    t = time.perf_counter()
    for a in acts:
        _, _, term, trunc, _ = env.step(a)
        if term or trunc:
            env.reset()
    dt = time.perf_counter() - t
    env.close()
    return steps / dt


def bench_vec(steps: int, n: int, seed: int, factory: Callable[[int], Any] | None) -> float:
    rounds = max(1, steps // n)
    with VecEnv([seed * 1000 + i for i in range(n)], controller_factory=factory) as v:
        v.reset()
        acts = np.random.default_rng(seed).integers(NUM_ACTIONS, size=(rounds, n))
        t = time.perf_counter()
        for a in acts:
            v.step(a)
        dt = time.perf_counter() - t
    return rounds * n / dt


def main() -> None:
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    steps = int(os.environ.get("BENCH_ENV_STEPS", "20000"))
    n = int(os.environ.get("BENCH_ENV_N", "16"))
    factory, what = _controller_factory()
    print(f"vectorized env: {n} games in one process, {what}; {steps} random steps per measurement")
    # alternate the measurements so that load changes on a shared machine hit both sides
    rounds = int(os.environ.get("BENCH_ENV_ROUNDS", "3"))
    base, ours = [], []
    for r in range(rounds):
        base.append(bench_nle(steps, 100 + r))
        ours.append(bench_vec(steps, n, 100 + r, factory))
    ratios = sorted(o / b for o, b in zip(ours, base))
    print(f"raw NLE (nle.env.NLE, same 28 keys and options), 1 core: {np.median(base):10.0f} steps/s (median of {rounds})")
    print(f"VecEnv compact obs{' + controllers' if factory else ''}, 1 core: {np.median(ours):10.0f} steps/s (median of {rounds})")
    print(f"ratio per core (ours / raw NLE): {np.median(ratios):.2f}  (goal >= 0.5; per round: {', '.join(f'{x:.2f}' for x in ratios)})")


if __name__ == "__main__":
    main()
