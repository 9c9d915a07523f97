"""Benchmark results are JSON files with the machine they ran on, and the README's table is made from them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.report import RESULTS_DIR, Run, load_results, table

ROOT = Path(__file__).resolve().parents[1]


def test_result_file_records_ratios_sides_and_machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENCH_RESULTS_DIR", str(tmp_path))
    run = Run("demo")
    path = run.write(ratios={"ours / theirs": 0.93456}, sides={"ours": 93.4, "theirs": 100.0},
                     settings={"n": 1}, workload="nothing", notes=["a note"])
    data = json.loads(path.read_text())
    assert path == tmp_path / "demo.json" and data["benchmark"] == "demo"
    assert data["ratios"] == {"ours / theirs": 0.9346} and data["sides"] == {"ours": 93.4, "theirs": 100.0}
    machine = data["machine"]
    assert machine["cores"] >= 1 and machine["cpu_model"]
    assert len(machine["load_average_at_start"]) == 3 and len(machine["load_average_at_end"]) == 3
    assert "gpu" in machine  # None on a machine without one
    assert data["command"] == "python -m benchmarks demo"
    assert "| `demo` | ours / theirs | 0.93 |" in table(load_results(tmp_path))


def test_malformed_result_is_named(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text(json.dumps({"benchmark": "x", "ratios": {}}))
    with pytest.raises(ValueError, match=r"x\.json: no 'sides'"):
        load_results(tmp_path)


def test_readme_benchmark_table_is_the_one_made_from_the_result_files() -> None:
    results = load_results(RESULTS_DIR)
    assert {"env", "kit", "reward", "annotate", "training"} <= set(results)
    readme = (ROOT / "README.md").read_text()
    assert table(results) in readme, "README's benchmark table is stale: paste `python -m benchmarks.report`"
