"""One place for what every benchmark records: the machine it ran on and its result as JSON.

Each benchmark calls :func:`write_result` once; the file lands in ``benchmarks/results/<name>.json``
(or ``$BENCH_RESULTS_DIR``). A result holds the ratio(s) against the baseline measured in
the same run, both sides' raw figures, the settings, and the machine: CPU model, cores,
load average at the start and at the end (the machine may be shared), GPU if any.

``python -m benchmarks.report`` prints the README's benchmark table from these files, so
that the figures in the README are the ones the files hold.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"
SCHEMA = 1


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _gpu() -> str | None:
    try:
        import torch

        if torch.cuda.is_available():
            return ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
    except Exception:  # noqa: BLE001 - no torch or a broken driver: report no GPU
        pass
    return None


def machine_info() -> dict[str, Any]:
    """CPU model, cores (all, and usable by this process), load average now, memory, GPU."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        mem_gib = round(pages / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        mem_gib = None
    return {
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
        "memory_gib": mem_gib,
        "gpu": _gpu(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


class Run:
    """Start of one benchmark run: remembers the machine's load when it began."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.started = dt.datetime.now(dt.timezone.utc)
        self.machine_at_start = machine_info()

    def write(self, *, ratios: dict[str, float], sides: dict[str, Any], settings: dict[str, Any],
              workload: str, notes: list[str] | None = None) -> Path:
        """Write ``benchmarks/results/<name>.json``; returns its path."""
        return write_result(self.name, ratios=ratios, sides=sides, settings=settings, workload=workload,
                            notes=notes, started=self.started, machine_at_start=self.machine_at_start)


def write_result(name: str, *, ratios: dict[str, float], sides: dict[str, Any], settings: dict[str, Any],
                 workload: str, notes: list[str] | None = None, started: dt.datetime | None = None,
                 machine_at_start: dict[str, Any] | None = None) -> Path:
    end = machine_info()
    start = machine_at_start or end
    result = {
        "schema": SCHEMA,
        "benchmark": name,
        "command": "python -m benchmarks " + name,
        "started_utc": (started or dt.datetime.now(dt.timezone.utc)).isoformat(timespec="seconds"),
        "finished_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "workload": workload,
        "ratios": {k: round(float(v), 4) for k, v in ratios.items()},
        "sides": sides,
        "settings": settings,
        "environment_overrides": {k: v for k, v in sorted(os.environ.items()) if k.startswith("BENCH_")},
        "notes": notes or [],
        "machine": {**{k: v for k, v in end.items() if k != "load_average_1_5_15"},
                    "load_average_at_start": start["load_average_1_5_15"],
                    "load_average_at_end": end["load_average_1_5_15"]},
    }
    out_dir = Path(os.environ.get("BENCH_RESULTS_DIR", RESULTS_DIR))
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2, sort_keys=False) + "\n")
    tmp.replace(path)
    print(f"result -> {path}", flush=True)
    return path


def load_results(directory: Path = RESULTS_DIR) -> dict[str, dict[str, Any]]:
    """Every result file in ``directory``, by benchmark name; a malformed file raises naming it."""
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(directory.glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not JSON ({exc})") from exc
        for key in ("benchmark", "ratios", "sides", "machine", "command"):
            if key not in data:
                raise ValueError(f"{path}: no {key!r}")
        if data["benchmark"] != path.stem:
            raise ValueError(f"{path}: names benchmark {data['benchmark']!r}")
        out[path.stem] = data
    return out


def _fmt_load(machine: dict[str, Any]) -> str:
    a, b = machine["load_average_at_start"][0], machine["load_average_at_end"][0]
    return f"{a:.1f} → {b:.1f}"


def table(results: dict[str, dict[str, Any]]) -> str:
    """The README's table: one row per ratio, with the machine and its load during the run."""
    lines = ["| benchmark | ratio | value | machine (cores, 1-min load start → end) | file |", "|---|---|---|---|---|"]
    for name, data in sorted(results.items()):
        m = data["machine"]
        where = f"{m['cores']}× {m['cpu_model']}" + (f", {m['gpu']}" if m.get("gpu") else "") + f", load {_fmt_load(m)}"
        for key, value in data["ratios"].items():
            lines.append(f"| `{name}` | {key} | {value:.2f} | {where} | `benchmarks/results/{name}.json` |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(load_results(Path(sys.argv[1]) if len(sys.argv) > 1 else RESULTS_DIR)))
