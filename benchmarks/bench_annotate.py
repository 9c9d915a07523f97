"""Annotation throughput with the embedded 0.5B model and the score strategy.

Baseline, measured in the same run: scoring every transition from scratch
(KV cache cleared before each call, no kept prefix states, no score cache).
Then: the same pairs with the few-shot prefixes reused (the one in llama.cpp's
KV cache, or a kept state of each phrasing's prefix), and a second pass with
the per-(skill, message) score cache warm. Prints pairs/s and ratios.
"""

from __future__ import annotations

import time

from maestromotif.annotation.checkset import load_checkset
from maestromotif.annotation.strategies import Annotator, ScoreCache
from maestromotif.llm.embedded import EmbeddedBackend


def main() -> None:
    backend = EmbeddedBackend("0.5b")
    cases = load_checkset()[:8]  # small: the no-reuse baseline is slow on 2 cores

    class NoPrefix(EmbeddedBackend):
        """Same model, but the context is reset before each call (no prefix reuse)."""

        def __init__(self, inner: EmbeddedBackend) -> None:
            self.__dict__.update(inner.__dict__)
            self.prefix_states = 0  # no kept prefix states either

        def yes_no_score(self, messages):  # type: ignore[no-untyped-def]
            with self._lock:
                self._llm.n_tokens = 0
            return super().yes_no_score(messages)

    def run(annotator: Annotator) -> float:
        start = time.perf_counter()
        for case in cases:
            annotator.annotate(case.skill, case.first, case.second)
        return len(cases) / (time.perf_counter() - start)

    base = run(Annotator(NoPrefix(backend), "score", cache=ScoreCache(capacity=1)))
    prefix = run(Annotator(backend, "score", cache=ScoreCache(capacity=1)))
    warm = Annotator(backend, "score")
    run(warm)
    cached = run(warm)
    print(f"threads={backend.n_threads} pairs={len(cases)}")
    print(f"no prefix reuse (baseline): {base:8.2f} pairs/s")
    print(f"KV prefix reuse:            {prefix:8.2f} pairs/s  ratio {prefix / base:6.2f}x")
    print(f"score cache warm:           {cached:8.2f} pairs/s  ratio {cached / base:6.2f}x")


if __name__ == "__main__":
    main()
