"""Collect a pair dataset by playing NetHack (phase one of the method, method.md 5.1).

Sampling, as documented in the manifest:

* Each env keeps the last ``gap_steps + 1`` moments (message, six stats) of its
  current episode. At step t >= gap_steps of an episode, with probability
  ``sample_prob``, it records the transition
  ``previous message = message at t-1, current message = message at t,
  stats_before = stats at t - gap_steps, stats_after = stats at t``.
  Transitions never span an episode boundary. The default gap is 100 steps
  (method.md 10: "100 for new data").
* Transitions are de-duplicated, shuffled with the seed, and consecutive ones
  paired (records 2k and 2k+1 form pair k, as in the paper's files); pairs are
  de-duplicated again by their content id.

Policies: ``random`` (uniform over the 28 actions), ``reference`` (a fixed
action prior that favours walking, running, searching and stairs, so more
levels and messages are seen than with uniform actions), and ``checkpoint``
(a trained skill policy from a learner checkpoint, with the training policy over skills choosing skills).
"""

from __future__ import annotations

import collections
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from maestromotif.annotation.schema import (
    STATS_BLSTATS_INDICES,
    PairRecord,
    Transition,
    write_pair_dataset,
)

POLICIES = ("random", "reference", "checkpoint")
DEFAULT_GAP_STEPS = 100


class CollectError(RuntimeError):
    pass


def _reference_prior() -> np.ndarray:
    """Action probabilities of the reference policy (indices of method.md 2.2)."""
    weights = np.ones(28)
    weights[1:9] = 6.0  # single moves
    weights[9:17] = 3.0  # runs
    weights[17] = 2.0  # <
    weights[18] = 4.0  # >
    weights[0] = 2.0  # Enter: answer prompts
    weights[22] = 2.0  # search
    weights[24] = 0.2  # enhance
    weights[25] = 0.1  # pray: rarely
    return weights / weights.sum()


def _message(row: np.ndarray) -> str:
    raw = bytes(row).split(b"\0", 1)[0]
    return raw.decode("latin-1")[:256]


@dataclass
class CollectResult:
    transitions: int
    pairs: int
    steps: int
    manifest: dict[str, Any]


def collect_pairs(out_dir: str | os.PathLike[str], *, steps: int, policy: str = "random", num_envs: int = 4,
                  gap_steps: int = DEFAULT_GAP_STEPS, sample_prob: float = 0.05, seed: int = 0,
                  checkpoint: str | None = None, progress: Callable[[int], None] | None = None) -> CollectResult:
    if policy not in POLICIES:
        raise CollectError(f"policy {policy!r} unknown; choose one of {POLICIES}")
    if steps < 1:
        raise CollectError(f"steps: {steps} < 1")
    if not 1 <= num_envs <= 256:
        raise CollectError(f"num_envs: {num_envs} not in [1, 256]")
    if gap_steps < 1:
        raise CollectError(f"gap_steps: {gap_steps} < 1")
    if not 0.0 < sample_prob <= 1.0:
        raise CollectError(f"sample_prob: {sample_prob} not in (0, 1]")
    if policy == "checkpoint" and not checkpoint:
        raise CollectError("policy 'checkpoint' needs --checkpoint (a checkpoint file or an experiment folder)")
    if Path(out_dir, "manifest.json").exists():
        raise CollectError(f"{out_dir}: already holds a pair dataset")
    # NLE is heavy; only import when collecting
    from maestromotif.env.vec import VecEnv
    from maestromotif.skills.controller import controller_factory

    rng = np.random.default_rng(seed)
    prior = _reference_prior() if policy == "reference" else np.full(28, 1.0 / 28)
    seeds = [seed * 1000 + i for i in range(num_envs)]
    history: list[collections.deque] = [collections.deque(maxlen=gap_steps + 1) for _ in range(num_envs)]
    transitions: dict[tuple, Transition] = {}
    blstats_idx = list(STATS_BLSTATS_INDICES)
    trained = None
    if policy == "checkpoint":
        from maestromotif.training.acting import CheckpointPolicy

        try:
            trained = CheckpointPolicy(checkpoint, num_envs)
        except ValueError as exc:
            raise CollectError(str(exc)) from exc
    # A trained policy is skill-conditioned: its games run the training policy over skills, as actors do.
    controllers = controller_factory("exploration", seed) if trained is not None else None
    with VecEnv(seeds, controller_factory=controllers) as env:
        obs = env.reset()
        dones = np.zeros(num_envs, dtype=bool)
        raw = env.group.raw
        for i in range(num_envs):
            history[i].append((_message(obs["messages"][i]), tuple(int(v) for v in raw["blstats"][i, blstats_idx])))
        done_steps = 0
        while done_steps < steps:
            actions = trained(obs, dones) if trained is not None else rng.choice(28, size=num_envs, p=prior)
            obs, _, dones, _, _ = env.step(actions)
            stats = raw["blstats"][:, blstats_idx]
            for i in range(num_envs):
                if dones[i]:
                    history[i].clear()  # never pair moments of two episodes
                moment = (_message(obs["messages"][i]), tuple(int(v) for v in stats[i]))
                history[i].append(moment)
                if len(history[i]) == gap_steps + 1 and rng.random() < sample_prob:
                    before, prev, now = history[i][0], history[i][-2], history[i][-1]
                    t = Transition(prev[0], now[0], before[1], now[1])  # type: ignore[arg-type]
                    transitions.setdefault((t.prev_message, t.message, t.stats_before, t.stats_after), t)
            done_steps += num_envs
            if progress:
                progress(num_envs)
    items = list(transitions.values())
    order = rng.permutation(len(items))
    items = [items[k] for k in order]
    records = [PairRecord(items[k], items[k + 1], f"collect:{policy}", seed, gap_steps)
               for k in range(0, len(items) - 1, 2)]
    manifest = write_pair_dataset(
        out_dir, records, gap_steps=gap_steps,
        extra={"policy": policy, "steps": done_steps, "num_envs": num_envs, "seed": seed, "sample_prob": sample_prob,
               "transitions": len(items),
               "sampling": "prev message = message at t-1, current = at t, stats_before at t-gap, stats_after at t; "
                           "no episode boundary crossed; shuffled, consecutive transitions paired"},
    )
    return CollectResult(len(items), manifest["num_pairs"], done_steps, manifest)
