"""Benchmarks: each ``bench_*.py`` module has ``main() -> None`` and prints a ratio
against a baseline measured in the same run (never an absolute claim alone)."""
