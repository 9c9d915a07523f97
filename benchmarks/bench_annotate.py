"""Annotation throughput with the embedded 0.5B model and the score strategy, same run.

1. KV prefix reuse against no reuse, on the first ``BENCH_ANNOTATE_PAIRS`` check-set pairs.
   Baseline: every transition scored from scratch (llama.cpp's context cleared before
   each call, no kept prefix states, no score cache). Ours: the few-shot prefixes reused
   (the one in llama.cpp's KV cache, or a kept state of each phrasing's prefix), still no
   score cache. The model is warmed first (weights paged in, one call of each side on
   pairs outside the timed set), and the two sides alternate over ``BENCH_ANNOTATE_ROUNDS``
   rounds (order swapped every round); medians are reported.
2. The per-(skill, shown text) score cache on pairs it has NOT seen: pairs collected from
   real games (``collect --policy reference``, a short run), labelled for all five skills
   as an annotation job does. The cache is filled by labelling the first
   ``BENCH_ANNOTATE_WARM`` pairs; then the next ``BENCH_ANNOTATE_UNSEEN`` pairs (other
   pairs; their messages may of course recur, which is what the cache is for) are
   labelled with that cache and, alternating, with an empty cache of capacity 0 (prefix
   reuse on both sides). Hits / lookups on those unseen pairs are reported.
Result: benchmarks/results/annotate.json.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from typing import Any

from maestromotif.annotation.checkset import load_checkset
from maestromotif.annotation.schema import Transition
from maestromotif.annotation.strategies import Annotator, ScoreCache
from maestromotif.llm.embedded import EmbeddedBackend
from maestromotif.skills.ids import Skill

PAIRS = int(os.environ.get("BENCH_ANNOTATE_PAIRS", "4"))
ROUNDS = int(os.environ.get("BENCH_ANNOTATE_ROUNDS", "2"))
WARM = int(os.environ.get("BENCH_ANNOTATE_WARM", "16"))
UNSEEN = int(os.environ.get("BENCH_ANNOTATE_UNSEEN", "4"))
# The check set has no depth-prior opinion of its own; the benchmark measures the LLM's cost, so the
# prior's weight does not matter for speed. It is set explicitly so that the result never depends on a default.
DEPTH_PRIOR = 0.0


class NoPrefix(EmbeddedBackend):
    """Same model, but the context is reset before each call (no prefix reuse, no kept states)."""

    def __init__(self, inner: EmbeddedBackend) -> None:
        self.__dict__.update(inner.__dict__)
        self.prefix_states = 0

    def yes_no_score(self, messages):  # type: ignore[no-untyped-def]
        with self._lock:
            self._llm.n_tokens = 0
        return super().yes_no_score(messages)


def _game_pairs(count: int) -> tuple[list[tuple[Transition, Transition]], str]:
    from maestromotif.annotation.collect import collect_pairs
    from maestromotif.annotation.schema import read_pair_dataset, row_transitions

    steps = 4000
    with tempfile.TemporaryDirectory(prefix="bench_annotate_") as tmp:
        while True:
            out = os.path.join(tmp, f"pairs{steps}")
            collect_pairs(out, steps=steps, policy="reference", num_envs=8, seed=3)
            rows = read_pair_dataset(out).table.to_pylist()
            if len(rows) >= count or steps >= 64_000:
                break
            steps *= 2
    if len(rows) < count:
        raise RuntimeError(f"collected only {len(rows)} pairs, {count} needed")
    return [row_transitions(r) for r in rows[:count]], f"`collect --policy reference`, {steps} steps, 8 games, seed 3"


def main() -> None:
    from benchmarks.report import Run

    run = Run("annotate")
    backend = EmbeddedBackend("0.5b")
    no_prefix = NoPrefix(backend)
    cases = load_checkset()
    timed, spare = cases[:PAIRS], cases[PAIRS:PAIRS + 2]

    def label(annotator: Annotator, items: list[tuple[Skill, Transition, Transition]]) -> float:
        start = time.perf_counter()
        for skill, first, second in items:
            annotator.annotate(skill, first, second)
        return len(items) / (time.perf_counter() - start)

    def fresh(backend_: EmbeddedBackend, cache: ScoreCache | None = None) -> Annotator:
        return Annotator(backend_, "score", depth_prior=DEPTH_PRIOR, cache=cache or ScoreCache(capacity=0))

    # warm-up outside the timed set: weights paged in, both code paths run once
    t = time.perf_counter()
    warm_items = [(c.skill, c.first, c.second) for c in spare]
    label(fresh(backend), warm_items)
    label(fresh(no_prefix), warm_items)
    print(f"threads={backend.n_threads}; model warmed on {len(spare)} other pairs in {time.perf_counter() - t:.1f}s", flush=True)

    items = [(c.skill, c.first, c.second) for c in timed]
    base, prefix = [], []
    for r in range(ROUNDS):
        order = [("base", no_prefix), ("prefix", backend)]
        for name, b in order if r % 2 == 0 else order[::-1]:
            (base if name == "base" else prefix).append(label(fresh(b), items))
        print(f"round {r + 1}: no reuse {base[-1]:.2f} pairs/s, prefix reuse {prefix[-1]:.2f} pairs/s", flush=True)
    base_m, prefix_m = statistics.median(base), statistics.median(prefix)
    print(f"check-set pairs={len(items)} (one skill each), rounds={ROUNDS}")
    print(f"no prefix reuse (baseline): {base_m:8.2f} pairs/s  (rounds {', '.join(f'{x:.2f}' for x in base)})")
    print(f"KV prefix reuse:            {prefix_m:8.2f} pairs/s  ratio {prefix_m / base_m:6.2f}x", flush=True)

    # 2. the score cache on unseen pairs from games, all five skills per pair
    t = time.perf_counter()
    pairs, source = _game_pairs(WARM + UNSEEN)
    print(f"{len(pairs)} game pairs from {source} ({time.perf_counter() - t:.1f}s)", flush=True)
    per_pair = [(s, a, b) for a, b in pairs for s in Skill]
    warm_part, unseen_part = per_pair[: WARM * len(Skill)], per_pair[WARM * len(Skill):]
    cache = ScoreCache()
    t = time.perf_counter()
    label(fresh(backend, cache), warm_part)
    filled = time.perf_counter() - t
    print(f"cache filled by {WARM} pairs x 5 skills in {filled:.1f}s: {len(cache._data)} entries", flush=True)
    hits0, misses0 = cache.hits, cache.misses
    cold: list[float] = []
    warm_rates: list[float] = []
    # Alternate; the warm side must not learn from the unseen pairs between rounds, so each
    # round works on a copy of the cache as it stood after the warm pairs.
    snapshot = dict(cache._data)
    for r in range(ROUNDS):
        order = ["cold", "warm"] if r % 2 == 0 else ["warm", "cold"]
        for side in order:
            if side == "cold":
                cold.append(label(fresh(backend), unseen_part))
            else:
                cache._data.clear()
                cache._data.update(snapshot)
                warm_rates.append(label(fresh(backend, cache), unseen_part))
    lookups = cache.hits - hits0 + cache.misses - misses0
    hit_ratio = (cache.hits - hits0) / max(1, lookups)
    cold_m, warm_m = statistics.median(cold), statistics.median(warm_rates)
    print(f"unseen game pairs={UNSEEN} x 5 skills; prefix reuse, no cache: {cold_m:8.2f} labels/s")
    print(f"  score cache warmed on {WARM} other pairs:  {warm_m:8.2f} labels/s  ratio {warm_m / cold_m:6.2f}x, "
          f"hit ratio {hit_ratio:.3f} on the unseen pairs")
    run.write(
        ratios={
            "KV prefix reuse / no reuse, check-set pairs": prefix_m / base_m,
            "score cache (warmed on other pairs) / no cache, unseen game pairs": warm_m / cold_m,
        },
        sides={
            "no_reuse_pairs_per_s": [round(x, 3) for x in base],
            "prefix_reuse_pairs_per_s": [round(x, 3) for x in prefix],
            "unseen_no_cache_labels_per_s": [round(x, 3) for x in cold],
            "unseen_warm_cache_labels_per_s": [round(x, 3) for x in warm_rates],
            "unseen_cache_hit_ratio": round(hit_ratio, 4),
            "cache_entries_after_warm": len(snapshot),
            "cache_fill_seconds": round(filled, 1),
        },
        settings={"model": backend.model_id, "threads": backend.n_threads, "strategy": "score",
                  "depth_prior": DEPTH_PRIOR, "check_set_pairs": len(items), "rounds": ROUNDS,
                  "cache_warm_pairs": WARM, "unseen_pairs": UNSEEN, "game_pairs_source": source},
        workload="1: first check-set pairs, one skill each; 2: game pairs, all five skills each",
    )


if __name__ == "__main__":
    main()
