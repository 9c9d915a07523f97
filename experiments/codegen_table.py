"""Merge the JSON files of ``codegen_models.py`` runs (the nine tasks may be split over several
processes) into one file, and print the README's markdown tables.

    python experiments/codegen_table.py experiments/results/codegen/models-*.json \\
        --out experiments/results/codegen/models.json [--compare experiments/results/codegen/compare.json]

When a task was measured by more than one run, the first file given wins (each run is one
independent sample with seed 0, so a second one is a repeat, kept under ``repeats``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

TASK_ORDER = ("gnomish", "delphi", "minetown", "transactions", "price", "buc", "goldenexit", "levelupsell",
              "discoveryhunger")


def merge(files: list[Path]) -> dict[str, Any]:
    out: dict[str, Any] = {"sources": [str(f) for f in files], "models": {}}
    for path in files:
        data = json.loads(path.read_text())
        out.setdefault("what", data.get("what"))
        out.setdefault("sampling", data.get("sampling"))
        out.setdefault("machines", []).append(data.get("machine"))
        for model, entry in data["models"].items():
            merged = out["models"].setdefault(model, {k: v for k, v in entry.items() if k != "tasks"} | {"tasks": {},
                                                                                                      "repeats": {}})
            for task, result in entry.get("tasks", {}).items():
                if task in merged["tasks"]:
                    merged["repeats"].setdefault(task, []).append(result)
                else:
                    merged["tasks"][task] = result
    for entry in out["models"].values():
        entry["tasks"] = {t: entry["tasks"][t] for t in TASK_ORDER if t in entry["tasks"]}
        entry["measured"] = len(entry["tasks"])
        entry["validated"] = sum(1 for r in entry["tasks"].values() if r["valid"])
    return out


def table(merged: dict[str, Any]) -> str:
    models = list(merged["models"])
    head = "| task | " + " | ".join(f"{m}: validated (repair rounds) | {m}: tokens in+out, s" for m in models) + " |"
    lines = [head, "|---|" + "---|---|" * len(models)]
    for task in TASK_ORDER:
        cells = []
        for m in models:
            r = merged["models"][m]["tasks"].get(task)
            if r is None:
                cells += ["not measured", ""]
                continue
            verdict = f"yes ({r['repair_rounds']})" if r["valid"] else f"no (failed {r['failed_stage']})"
            cells += [verdict, f"{r['prompt_tokens']}+{r['completion_tokens']}, {r['seconds']:.0f}"]
        lines.append(f"| {task} | " + " | ".join(cells) + " |")
    totals = []
    for m in models:
        e = merged["models"][m]
        totals += [f"**{e['validated']}/{e['measured']}**", ""]
    lines.append("| validated | " + " | ".join(totals) + " |")
    return "\n".join(lines)


def compare_table(compare: dict[str, Any]) -> str:
    lines = ["| task (metric) | generated: successes or count | reference: successes or count | generated / reference "
             "mean steps | generated policy failures |", "|---|---|---|---|---|"]
    for task in TASK_ORDER:
        row = compare["tasks"].get(task)
        if row is None:
            continue
        ref = row["reference"]
        metric = ref["metric"]
        value = (lambda r: f"{r['legacy_success']}/{len(r['episodes'])}" if metric == "success"
                 else str(r["legacy_count"]))
        gen = row.get("generated")
        lines.append(f"| {task} ({metric}) | {value(gen) if gen else 'no validated policy'} | {value(ref)} | "
                     f"{format(gen['mean_steps'], '.0f') if gen else '-'} / {ref['mean_steps']:.0f} | "
                     f"{gen['policy_failures'] if gen else '-'} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--compare", type=Path, default=None)
    args = parser.parse_args()
    merged = merge(args.files)
    args.out.write_text(json.dumps(merged, indent=2))
    print(table(merged))
    if args.compare and args.compare.exists():
        print()
        print(compare_table(json.loads(args.compare.read_text())))


if __name__ == "__main__":
    main()
