"""Reward service throughput against an in-process forward of the same models, same run.

Workload: batches of 4096 transitions shaped like the learner's (128 games x 32
steps, in trajectory order) taken from real NLE games: the env helper's
``VecEnv`` with random actions and, when present, the skill controller running
the reference training policy (so skills, depth changes and message counts are
the real ones). With ``BENCH_REWARD_PAIRS=DIR`` the current messages of a
collected pair dataset are used instead (sampled with replacement).

Models: five untrained bundles (``init_random``): the same architecture and
hence the same cost as trained ones; no training data is needed.

Baseline: ``RewardEnsemble`` forward (five models, one pass each over the
batch) plus the shaping function, in this process, on the same device and with
the same torch threads as the service. Service: ``Score`` over gRPC on
loopback (the kit's full server, in this process), with the cache off and on.
With the cache on, a few batches warm it first and the measured batches are
new ones from the same games (steady state of a long run).
Printed: samples/s of each, the ratios (issue goal: >= 0.8 without cache,
> 1 with it) and the hit ratio.
Environment: BENCH_REWARD_BATCHES (measured batches per setting, default 2),
BENCH_REWARD_WARM (cache warm-up batches, default 1), BENCH_REWARD_THREADS
(torch CPU threads, default 2), BENCH_REWARD_PAIRS (see above), BENCH_REWARD_NPZ (a file: load the batches from it if it
exists, else collect them and save them there; for machines without NLE).
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np
import torch

BATCH = 4096
BATCH_KEYS = ("skills", "messages", "stat_changes", "message_counts")
GAMES, STEPS = 128, 32


def _controller_factory() -> tuple[Any, str]:
    try:
        from maestromotif.skills.controller import SkillController
        from maestromotif.skills.reference import TRAINING_POLICY, load_reference
    except ImportError as exc:
        return None, f"no skill controller ({exc}): skill 0 and zero depth change everywhere"

    def make(i: int) -> Any:
        return SkillController(load_reference(TRAINING_POLICY), seed=i)

    return make, f"skill controller with reference policy {TRAINING_POLICY!r}"


def nle_batches(count: int, seed: int = 0) -> tuple[list[dict[str, np.ndarray]], str]:
    """``count`` batches of GAMES x STEPS real transitions (random actions)."""
    from maestromotif.env.actions import NUM_ACTIONS
    from maestromotif.env.vec import VecEnv

    factory, what = _controller_factory()
    rng = np.random.default_rng(seed)
    batches = []
    with VecEnv([seed * 10_000 + i for i in range(GAMES)], controller_factory=factory) as env:
        obs = env.reset()
        for _ in range(count):
            steps: dict[str, list[np.ndarray]] = {k: [] for k in ("skills", "messages", "stat_changes", "message_counts")}
            for _ in range(STEPS):
                for key in steps:
                    steps[key].append(obs[key].copy())
                obs, *_ = env.step(rng.integers(NUM_ACTIONS, size=GAMES))
            # [STEPS, GAMES, ...] -> trajectory order [GAMES * STEPS, ...], as a learner batch
            batches.append(
                {k: np.ascontiguousarray(np.stack(v, axis=1).reshape(BATCH, *v[0].shape[1:])) for k, v in steps.items()}
            )
    return batches, f"NLE games, random actions, {what}"


def pair_batches(directory: str, count: int, seed: int = 0) -> tuple[list[dict[str, np.ndarray]], str]:
    from maestromotif.annotation.schema import read_pair_dataset
    from maestromotif.rewards.data import encode_messages

    table = read_pair_dataset(directory).table
    messages = np.concatenate([encode_messages(table.column("first_message")), encode_messages(table.column("second_message"))])
    rng = np.random.default_rng(seed)
    batches = []
    for _ in range(count):
        rows = rng.integers(0, len(messages), BATCH)
        stats = np.zeros((BATCH, 5), dtype=np.float32)
        stats[:, 0] = rng.choice([-1.0, 0.0, 1.0], BATCH, p=[0.05, 0.9, 0.05])
        batches.append({
            "skills": rng.integers(0, 5, BATCH).astype(np.uint8),
            "messages": np.ascontiguousarray(messages[rows]),
            "stat_changes": stats,
            "message_counts": np.ones(BATCH, dtype=np.float32),
        })
    return batches, f"current messages of the pair dataset {directory} ({len(messages)} transitions)"


def main() -> None:
    import grpc

    from maestromotif.kit.server import start
    from maestromotif.rewards.bundles import load_bundle_set
    from maestromotif.rewards.model import pick_device
    from maestromotif.rewards.shaping import shape_rewards
    from maestromotif.v1 import reward_pb2, reward_pb2_grpc
    from services.reward.server import SPEC

    measured = int(os.environ.get("BENCH_REWARD_BATCHES", "2"))
    warm = int(os.environ.get("BENCH_REWARD_WARM", "1"))
    threads = int(os.environ.get("BENCH_REWARD_THREADS", "2"))
    torch.set_num_threads(threads)
    pairs = os.environ.get("BENCH_REWARD_PAIRS")
    total = 2 * measured + warm
    t = time.perf_counter()
    saved = os.environ.get("BENCH_REWARD_NPZ")
    if saved and os.path.exists(saved):
        with np.load(saved) as data:
            batches = [{k: data[f"{i}_{k}"] for k in BATCH_KEYS} for i in range(int(data["count"]))][:total]
        source = f"{saved} (batches saved by an earlier run)"
    else:
        batches, source = pair_batches(pairs, total) if pairs else nle_batches(total)
        if saved:
            np.savez_compressed(saved, count=len(batches), **{f"{i}_{k}": b[k] for i, b in enumerate(batches) for k in BATCH_KEYS})
    if len(batches) < total:
        raise ValueError(f"BENCH_REWARD_NPZ: {saved} holds {len(batches)} batches, {total} needed")
    unique = [len(np.unique(np.concatenate([b["messages"], b["stat_changes"][:, :1].view(np.uint8)], axis=1), axis=0))
              for b in batches]
    print(f"workload: {len(batches)} batches of {BATCH} from {source} ({time.perf_counter() - t:.1f}s to collect); "
          f"distinct (message, depth change) per batch: median {int(np.median(unique))}")
    plain, warmup, fresh = batches[:measured], batches[measured:measured + warm], batches[measured + warm:]

    bundle_set = load_bundle_set(None, device=pick_device(None), init_random_missing=True)  # the service's device
    device = bundle_set.device
    print(f"device {device}, torch threads {threads}; five untrained bundles (same cost as trained)")

    def in_process(batch_list: list[dict[str, np.ndarray]]) -> float:
        start_t = time.perf_counter()
        for b in batch_list:
            with torch.inference_mode():
                messages = torch.from_numpy(b["messages"]).to(device)
                stats = torch.from_numpy(b["stat_changes"]).to(device)
                raw = bundle_set.ensemble(messages, stats)
                shaped = shape_rewards(raw, bundle_set.mean, bundle_set.std, bundle_set.threshold,
                                       torch.from_numpy(b["message_counts"]).to(device))
                shaped.cpu()  # results on the host, as the service returns them (also syncs the GPU)
        return len(batch_list) * BATCH / (time.perf_counter() - start_t)

    def request(b: dict[str, np.ndarray]) -> Any:
        return reward_pb2.ScoreRequest(
            count=BATCH, skills=b["skills"].tobytes(), messages=b["messages"].tobytes(),
            stat_changes=b["stat_changes"].tobytes(), message_counts=b["message_counts"].tobytes(),
        )

    def service(cache: bool, warm_list: list, batch_list: list) -> tuple[float, float]:
        overrides = {"host": "127.0.0.1", "port": 0, "metrics_port": 0, "bundle_dir": None, "init_random": True,
                     "cache_enabled": cache, "threads": threads, "reload_interval_s": 0.0}
        svc = start(SPEC, overrides=overrides)
        try:
            with grpc.insecure_channel(svc.address, options=[("grpc.max_receive_message_length", 64 << 20),
                                                              ("grpc.max_send_message_length", 64 << 20)]) as channel:
                stub = reward_pb2_grpc.RewardStub(channel)
                stub.Score(request(batches[0]), timeout=600)  # connection and first-call setup, not measured
                for b in warm_list:
                    stub.Score(request(b), timeout=600)
                hits = 0
                start_t = time.perf_counter()
                for b in batch_list:
                    hits += stub.Score(request(b), timeout=600).cache_hits
                rate = len(batch_list) * BATCH / (time.perf_counter() - start_t)
            return rate, hits / (len(batch_list) * BATCH)
        finally:
            svc.stop(grace=1.0)

    in_process(plain[:1])  # warm-up (allocator, kernels)
    base1 = in_process(plain)
    nocache, _ = service(False, [], plain)
    base2 = in_process(plain)
    cached, hit_ratio = service(True, warmup, fresh)
    base = (base1 + base2) / 2  # the two baselines bracket the service runs on a shared machine
    print(f"in-process forward + shaping:   {base:10.0f} samples/s  (runs: {base1:.0f}, {base2:.0f})")
    print(f"service, no cache:              {nocache:10.0f} samples/s  ratio {nocache / base:.2f}  (goal >= 0.8)")
    print(f"service, cache (after {warm} warm batches): {cached:10.0f} samples/s  ratio {cached / base:.2f}  "
          f"(goal > 1), hit ratio {hit_ratio:.3f}")


if __name__ == "__main__":
    main()
