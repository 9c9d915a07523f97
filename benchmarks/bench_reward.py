"""Reward service throughput against an in-process forward of the same models, same run.

Workload: batches of 4096 transitions shaped like the learner's (128 games x 32
steps, in trajectory order) from real NLE games, with the skill controller running
the reference training policy over skills (so skills, depth changes and message
counts are the real ones). Two sources of actions, each measured on its own:

* ``random``: uniformly random actions;
* ``checkpoint``: a trained skill policy (``BENCH_REWARD_CHECKPOINT``: a learner
  checkpoint file or experiment folder) when one is given; otherwise
  ``reference``: the scripted action prior of ``collect --policy reference``
  (walks, runs, searches, takes stairs), which is NOT a trained policy: it only
  stands in for one when no checkpoint exists, and the result says which it was.

With ``BENCH_REWARD_PAIRS=DIR`` the current messages of a collected pair dataset
are used instead (sampled with replacement). The unique fraction of every batch
(distinct (message, depth change) rows / rows) is printed and recorded.

Models: five untrained bundles (``init_random``): the same architecture and
hence the same cost as trained ones; no training data is needed.

Baselines, in this process, on the same device and with the same torch threads as
the service: (a) ``RewardEnsemble`` forward over every row plus the shaping
function; (b) the same with the service's de-duplication (``unique_rows`` on the
same keys, forward on the distinct rows only, scattered back, then shaping).
Service: ``Score`` over gRPC on loopback (the kit's full server, in this
process), with the cache off (compare with (a)) and on (it de-duplicates and
caches: compare with (b), so the ratio shows what the cache adds beyond
de-duplication). With the cache on, a few batches warm it first and the measured
batches are new ones from the same games (steady state of a long run).
Baselines and service runs alternate (baseline, service, baseline) and the
baseline is the mean of the two that bracket the service.
Environment: BENCH_REWARD_BATCHES (measured batches per setting, default 2),
BENCH_REWARD_WARM (cache warm-up batches, default 1), BENCH_REWARD_THREADS
(torch CPU threads, default 2), BENCH_REWARD_PAIRS, BENCH_REWARD_CHECKPOINT (see
above), BENCH_REWARD_NPZ (a file prefix: load each source's batches from
``<prefix>-<source>.npz`` if it exists, else collect them and save them there;
for machines without NLE). Result: benchmarks/results/reward.json.
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


def nle_batches(count: int, seed: int = 0, policy: str = "random",
                checkpoint: str | None = None) -> tuple[list[dict[str, np.ndarray]], str]:
    """``count`` batches of GAMES x STEPS real transitions; actions from ``policy``.

    ``random``: uniform; ``reference``: the scripted action prior of ``collect --policy
    reference``; ``checkpoint``: the trained skill policy in ``checkpoint``.
    """
    from maestromotif.env.actions import NUM_ACTIONS
    from maestromotif.env.vec import VecEnv

    factory, what = _controller_factory()
    rng = np.random.default_rng(seed)
    trained = None
    if policy == "checkpoint":
        from maestromotif.training.acting import CheckpointPolicy

        trained = CheckpointPolicy(checkpoint, GAMES)
        actor = f"trained skill policy {checkpoint}"
    elif policy == "reference":
        from maestromotif.annotation.collect import _reference_prior

        prior = _reference_prior()
        actor = "scripted action prior of `collect --policy reference` (not a trained policy)"
    else:
        prior = np.full(NUM_ACTIONS, 1.0 / NUM_ACTIONS)
        actor = "uniformly random actions"
    batches = []
    with VecEnv([seed * 10_000 + i for i in range(GAMES)], controller_factory=factory) as env:
        obs = env.reset()
        dones = np.zeros(GAMES, dtype=bool)
        for _ in range(count):
            steps: dict[str, list[np.ndarray]] = {k: [] for k in BATCH_KEYS}
            for _ in range(STEPS):
                for key in steps:
                    steps[key].append(obs[key].copy())
                actions = trained(obs, dones) if trained is not None else rng.choice(NUM_ACTIONS, size=GAMES, p=prior)
                obs, _, dones, _, _ = env.step(actions)
            # [STEPS, GAMES, ...] -> trajectory order [GAMES * STEPS, ...], as a learner batch
            batches.append(
                {k: np.ascontiguousarray(np.stack(v, axis=1).reshape(BATCH, *v[0].shape[1:])) for k, v in steps.items()}
            )
    return batches, f"NLE games, {actor}, {what}"


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


def unique_fraction(batch: dict[str, np.ndarray]) -> float:
    """Distinct model inputs (message, depth change) / rows: what de-duplication leaves to score."""
    from maestromotif.rewards.scorer import make_keys, unique_rows

    rows, _ = unique_rows(make_keys(batch["messages"], batch["stat_changes"][:, 0]))
    return len(rows) / len(batch["messages"])


def _load_or_collect(source: str, total: int) -> tuple[list[dict[str, np.ndarray]], str]:
    saved = os.environ.get("BENCH_REWARD_NPZ")
    path = f"{saved}-{source}.npz" if saved else None
    if path and os.path.exists(path):
        with np.load(path, allow_pickle=False) as data:
            batches = [{k: data[f"{i}_{k}"] for k in BATCH_KEYS} for i in range(int(data["count"]))][:total]
            what = str(data["source"]) if "source" in data else source
        if len(batches) < total:
            raise ValueError(f"BENCH_REWARD_NPZ: {path} holds {len(batches)} batches, {total} needed")
        return batches, f"{what} (saved in {path})"
    pairs = os.environ.get("BENCH_REWARD_PAIRS")
    if source == "pairs":
        batches, what = pair_batches(pairs or "", total)
    elif source == "checkpoint":
        batches, what = nle_batches(total, seed=1, policy="checkpoint", checkpoint=os.environ["BENCH_REWARD_CHECKPOINT"])
    else:
        batches, what = nle_batches(total, seed=0 if source == "random" else 1, policy=source)
    if path:
        np.savez_compressed(path, count=len(batches), source=np.array(what),
                            **{f"{i}_{k}": b[k] for i, b in enumerate(batches) for k in BATCH_KEYS})
    return batches, what


def main() -> None:
    import grpc

    from benchmarks.report import Run
    from maestromotif.kit.server import start
    from maestromotif.rewards.bundles import load_bundle_set
    from maestromotif.rewards.model import pick_device
    from maestromotif.rewards.scorer import make_keys, unique_rows
    from maestromotif.rewards.shaping import shape_rewards
    from maestromotif.v1 import reward_pb2, reward_pb2_grpc
    from services.reward.server import SPEC

    run = Run("reward")
    measured = int(os.environ.get("BENCH_REWARD_BATCHES", "2"))
    warm = int(os.environ.get("BENCH_REWARD_WARM", "1"))
    threads = int(os.environ.get("BENCH_REWARD_THREADS", "2"))
    torch.set_num_threads(threads)
    total = 2 * measured + warm
    if os.environ.get("BENCH_REWARD_PAIRS"):
        sources = ["pairs"]
    else:
        sources = ["random", "checkpoint" if os.environ.get("BENCH_REWARD_CHECKPOINT") else "reference"]

    bundle_set = load_bundle_set(None, device=pick_device(None), init_random_missing=True)  # the service's device
    device = bundle_set.device
    print(f"device {device}, torch threads {threads}; five untrained bundles (same cost as trained)")

    def shaped_from_raw(raw: torch.Tensor, b: dict[str, np.ndarray]) -> None:
        shaped = shape_rewards(raw, bundle_set.mean, bundle_set.std, bundle_set.threshold,
                               torch.from_numpy(b["message_counts"]).to(device))
        shaped.cpu()  # results on the host, as the service returns them (also syncs the GPU)

    def in_process(batch_list: list[dict[str, np.ndarray]], dedup: bool) -> float:
        start_t = time.perf_counter()
        for b in batch_list:
            with torch.inference_mode():
                if dedup:  # the service's de-duplication: score each distinct (message, depth change) once
                    rows, inverse = unique_rows(make_keys(b["messages"], b["stat_changes"][:, 0]))
                    messages = torch.from_numpy(np.ascontiguousarray(rows[:, :256])).to(device)
                    stats = torch.zeros(len(rows), b["stat_changes"].shape[1], device=device)
                    stats[:, 0] = torch.from_numpy(np.ascontiguousarray(rows[:, 256:260]).view(np.float32).reshape(-1))
                    raw = bundle_set.ensemble(messages, stats)[torch.from_numpy(inverse).to(device)]
                else:
                    messages = torch.from_numpy(b["messages"]).to(device)
                    stats = torch.from_numpy(b["stat_changes"]).to(device)
                    raw = bundle_set.ensemble(messages, stats)
                shaped_from_raw(raw, b)
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
                # connection and first-call setup, not measured; rows no game produces, so the cache learns nothing
                first = {k: v.copy() for k, v in batch_list[0].items()}
                first["messages"][:] = 255
                stub.Score(request(first), timeout=600)
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

    sides: dict[str, Any] = {}
    ratios: dict[str, float] = {}
    workloads = []
    for source in sources:
        t = time.perf_counter()
        batches, what = _load_or_collect(source, total)
        plain, warmup, fresh = batches[:measured], batches[measured:measured + warm], batches[measured + warm:]
        fractions = [round(unique_fraction(b), 4) for b in batches]
        print(f"[{source}] {len(batches)} batches of {BATCH} from {what} ({time.perf_counter() - t:.1f}s); "
              f"unique fraction per batch (distinct (message, depth change) / rows): "
              f"{', '.join(f'{f:.3f}' for f in fractions)}  (measured no-cache: first {measured}, "
              f"warm-up: next {warm}, measured with cache: last {measured})", flush=True)
        workloads.append(f"{source}: {what}")

        in_process(plain[:1], False)  # warm-up (allocator, kernels)
        in_process(plain[:1], True)
        base1 = in_process(plain, False)
        nocache, _ = service(False, [], plain)
        base2 = in_process(plain, False)
        dedup1 = in_process(fresh, True)
        cached, hit_ratio = service(True, warmup, fresh)
        dedup2 = in_process(fresh, True)
        base, dedup = (base1 + base2) / 2, (dedup1 + dedup2) / 2  # the baselines bracket the service runs
        print(f"[{source}] (a) in-process forward + shaping, every row:      {base:10.0f} samples/s  (runs {base1:.0f}, {base2:.0f})")
        print(f"[{source}]     service, no cache:                             {nocache:10.0f} samples/s  "
              f"ratio {nocache / base:.2f} vs (a)  (goal >= 0.8)")
        print(f"[{source}] (b) in-process, de-duplicated rows + shaping:      {dedup:10.0f} samples/s  (runs {dedup1:.0f}, {dedup2:.0f})")
        print(f"[{source}]     service, de-dup + cache ({warm} warm batches):   {cached:10.0f} samples/s  "
              f"ratio {cached / dedup:.2f} vs (b), {cached / base:.2f} vs (a); hit ratio {hit_ratio:.3f}", flush=True)
        ratios[f"{source}: service no cache / in-process forward"] = nocache / base
        ratios[f"{source}: service with cache / in-process de-duplicated forward"] = cached / dedup
        sides[source] = {
            "source": what,
            "unique_fraction_per_batch": fractions,
            "unique_fraction_measured_no_cache": fractions[:measured],
            "unique_fraction_measured_with_cache": fractions[measured + warm:],
            "in_process_samples_per_s": [round(base1, 1), round(base2, 1)],
            "in_process_dedup_samples_per_s": [round(dedup1, 1), round(dedup2, 1)],
            "service_no_cache_samples_per_s": round(nocache, 1),
            "service_cache_samples_per_s": round(cached, 1),
            "service_cache_hit_ratio": round(hit_ratio, 4),
            "service_cache_vs_every_row_forward": round(cached / base, 3),
        }
    notes = []
    if "reference" in sources:
        notes.append("no trained checkpoint in this checkout: the second workload plays the scripted action prior "
                     "of `collect --policy reference`, not a trained policy; set BENCH_REWARD_CHECKPOINT to use one")
    run.write(ratios=ratios, sides=sides, workload="; ".join(workloads) + f"; batches of {BATCH} ({GAMES} games x {STEPS} steps)",
              settings={"device": str(device), "torch_threads": threads, "measured_batches": measured,
                        "cache_warm_batches": warm, "models": "five untrained bundles (init_random)"},
              notes=notes)


if __name__ == "__main__":
    main()
