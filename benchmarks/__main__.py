"""Run every benchmark (``make bench``), or only those named: ``python -m benchmarks env reward``."""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time

import benchmarks


def main(argv: list[str]) -> int:
    names = sorted(m.name for m in pkgutil.iter_modules(benchmarks.__path__) if m.name.startswith("bench_"))
    wanted = {f"bench_{a.removeprefix('bench_')}" for a in argv}
    unknown = wanted - set(names)
    if unknown:
        print(f"unknown benchmark(s): {', '.join(sorted(unknown))}; available: {', '.join(names)}", file=sys.stderr)
        return 2
    failures = 0
    for name in names:
        if wanted and name not in wanted:
            continue
        print(f"=== {name} ===", flush=True)
        start = time.perf_counter()
        try:
            importlib.import_module(f"benchmarks.{name}").main()
        except Exception as exc:  # report and go on with the other benchmarks
            failures += 1
            print(f"{name} FAILED: {exc!r}", file=sys.stderr)
        print(f"=== {name} done in {time.perf_counter() - start:.1f}s ===", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
