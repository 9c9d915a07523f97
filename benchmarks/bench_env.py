"""Vectorized env throughput against raw NLE stepping, per core, in the same run.

Ours: ``VecEnv`` (one process, so one core) stepping N games with random
actions, building the compact batch and, when available, running a skill
controller with the reference training policy over skills in every env.
Baselines: NLE's own gymnasium env (``nle.env.NLE``) with random actions, the
same 28 keys and the same game options, auto-resetting, on one core:
(a) N such envs stepped in turn in one process (same games per core as ours),
(b) a single env. (a) is the like-for-like figure: many NetHack instances in
one process run slower than one (each game has its own copy of NetHack's
state, and they compete for the CPU caches), whoever steps them.
Time is the process's CPU time, so other load on a shared machine matters
less; measurements alternate and the medians over rounds are printed.
Random prayers kill the Monk often, so resets are a real share of the cost
on every side.
Environment variables: BENCH_ENV_STEPS (agent steps per measurement, default
16000), BENCH_ENV_N (games per process, default 8), BENCH_ENV_ROUNDS (3).
Result: benchmarks/results/env.json.
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable

import numpy as np

from benchmarks.report import Run
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


def bench_nle(steps: int, n: int, seed: int) -> float:
    """Random steps/s of n NLE gym envs stepped in turn (CPU time of this process)."""
    import nle.env

    envs = []
    for i in range(n):
        env = nle.env.NLE(
            observation_keys=("tty_chars", "tty_colors", "blstats", "message"),
            actions=BASE_KEYS,
            options=OPTIONS,
            max_episode_steps=MAX_EPISODE_STEPS,
        )
        env.seed(seed * 1000 + i, seed * 1000 + i + 1, False)
        env.reset()
        envs.append(env)
    rounds = max(1, steps // n)
    acts = np.random.default_rng(seed).integers(NUM_ACTIONS, size=(rounds, n)).tolist()
    t = time.process_time()
    for row in acts:
        for env, a in zip(envs, row):
            _, _, term, trunc, _ = env.step(a)
            if term or trunc:
                env.reset()
    dt = time.process_time() - t
    for env in envs:
        env.close()
    return rounds * n / dt


def bench_vec(steps: int, n: int, seed: int, factory: Callable[[int], Any] | None) -> float:
    rounds = max(1, steps // n)
    with VecEnv([seed * 1000 + i for i in range(n)], controller_factory=factory) as v:
        v.reset()
        acts = np.random.default_rng(seed).integers(NUM_ACTIONS, size=(rounds, n))
        t = time.process_time()
        for a in acts:
            v.step(a)
        dt = time.process_time() - t
    return rounds * n / dt


def main() -> None:
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    steps = int(os.environ.get("BENCH_ENV_STEPS", "16000"))
    n = int(os.environ.get("BENCH_ENV_N", "8"))
    rounds = int(os.environ.get("BENCH_ENV_ROUNDS", "3"))
    factory, what = _controller_factory()
    run = Run("env")
    print(f"vectorized env: {n} games in one process, {what}; {steps} random steps per measurement, CPU time")
    base_n, base_1, ours, bare = [], [], [], []
    for r in range(rounds):  # alternate, so that load changes hit every side
        base_n.append(bench_nle(steps, n, 100 + r))
        ours.append(bench_vec(steps, n, 100 + r, factory))
        base_1.append(bench_nle(steps, 1, 100 + r))
        if factory is not None:
            bare.append(bench_vec(steps, n, 100 + r, None))
    ratio_n = sorted(o / b for o, b in zip(ours, base_n))
    ratio_1 = sorted(o / b for o, b in zip(ours, base_1))
    med = lambda xs: float(np.median(xs))  # noqa: E731
    print(f"(a) raw NLE, {n} nle.env.NLE in one process:  {med(base_n):9.0f} steps/s per core")
    print(f"(b) raw NLE, one nle.env.NLE:                 {med(base_1):9.0f} steps/s per core")
    print(f"ours: VecEnv, compact obs{' + controllers' if factory else ''}:   {med(ours):9.0f} steps/s per core")
    if bare:
        print(f"  (VecEnv without controllers:                {med(bare):9.0f} steps/s per core)")
    print(f"ratio per core, ours / (a) same games per core: {med(ratio_n):.2f}  (goal >= 0.5; rounds {', '.join(f'{x:.2f}' for x in ratio_n)})")
    print(f"ratio per core, ours / (b) one game:            {med(ratio_1):.2f}  (rounds {', '.join(f'{x:.2f}' for x in ratio_1)})")
    run.write(
        ratios={"ours / raw NLE, same games per core": med(ratio_n), "ours / raw NLE, one game": med(ratio_1)},
        sides={
            "raw_nle_same_games_steps_per_cpu_s": [round(x, 1) for x in base_n],
            "raw_nle_one_game_steps_per_cpu_s": [round(x, 1) for x in base_1],
            "ours_steps_per_cpu_s": [round(x, 1) for x in ours],
            "ours_without_controllers_steps_per_cpu_s": [round(x, 1) for x in bare],
            "ratio_rounds_same_games": [round(x, 3) for x in ratio_n],
        },
        settings={"steps_per_measurement": steps, "games_per_process": n, "rounds": rounds, "controllers": what},
        workload="random actions; time is the process's CPU time; medians over alternating rounds",
    )


if __name__ == "__main__":
    main()
