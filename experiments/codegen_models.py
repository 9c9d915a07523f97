"""Measure embedded coder models on the nine task prompts (issue 11, item 5).

For each model and each task: ComposeTask with the task's own prompt (its reference policy left
out of the few-shot examples), one sample, seed 0, temperature 0.2, at most three repair rounds;
records whether a validated policy came out, after how many repair rounds, tokens and latency,
and stores every artifact (with its transcript) in ``--store``. Also records each model's
install size (its part packages and the assembled GGUF) and load time. Results go to ``--out``
as JSON, rewritten after every task so that an interrupted run keeps what it measured.

    nice -n 10 python experiments/codegen_models.py --models 0.5b 1.5b --threads 1 \\
        --out experiments/results/codegen/models.json --store experiments/results/codegen/artifacts
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any


def part_sizes(model: str) -> dict[str, int]:
    from maestromotif.llm.models import _part_path, get_spec

    spec = get_spec(model)
    return {d: _part_path(d).stat().st_size for d in spec.distributions}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["0.5b", "1.5b"])
    parser.add_argument("--tasks", nargs="+", default=None, help="default: the nine tasks")
    parser.add_argument("--threads", type=int, default=1, help="llama.cpp threads (the machine is shared)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repair-temperature", type=float, default=0.7)
    parser.add_argument("--max-tokens", type=int, default=900)
    parser.add_argument("--repair-rounds", type=int, default=3)
    parser.add_argument("--time-limit", type=float, default=3600.0,
                        help="wall-clock limit of one answer; high by default so that a busy machine does not cut "
                             "answers short (answers are bounded by --max-tokens)")
    parser.add_argument("--out", type=Path, default=Path("experiments/results/codegen/models.json"))
    parser.add_argument("--store", type=Path, default=Path("experiments/results/codegen/artifacts"))
    args = parser.parse_args()

    from maestromotif.codegen.artifacts import ArtifactStore
    from maestromotif.codegen.generate import EMBEDDED_CONTEXT, Generator, Sampling, first_failed_stage
    from maestromotif.llm.embedded import EmbeddedBackend
    from maestromotif.llm.models import ensure_model_file, get_spec
    from maestromotif.tasks.specs import TASK_NAMES, TASKS

    tasks = args.tasks or list(TASK_NAMES)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    store = ArtifactStore(args.store)
    sampling = Sampling(temperature=0.2, repair_temperature=args.repair_temperature, max_tokens=args.max_tokens, seed=args.seed,
                        max_repair_rounds=args.repair_rounds, samples=1, time_limit_s=args.time_limit)
    results: dict[str, Any] = {
        "what": "ComposeTask on the nine task prompts, one sample each; validated = every validation stage passed "
                "within the repair rounds",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores shared with other jobs (load average at start "
                   f"{os.getloadavg()[0]:.1f}), llama.cpp threads {args.threads}",
        "sampling": sampling.as_dict(),
        "models": {},
    }

    def save() -> None:
        tmp = args.out.with_suffix(".tmp")
        tmp.write_text(json.dumps(results, indent=2))
        tmp.replace(args.out)

    for model in args.models:
        spec = get_spec(model)
        entry: dict[str, Any] = {"model": spec.name, "sha256": spec.sha256, "tasks": {}}
        results["models"][model] = entry
        try:
            parts = part_sizes(model)
        except Exception as exc:  # noqa: BLE001 - reported in the JSON, the other model still runs
            entry["error"] = f"not installed: {exc}"
            save()
            continue
        entry["install_bytes_parts"] = sum(parts.values())
        t0 = time.perf_counter()
        path = ensure_model_file(model)
        entry["assemble_seconds"] = round(time.perf_counter() - t0, 2)
        entry["gguf_bytes"] = path.stat().st_size
        t0 = time.perf_counter()
        backend = EmbeddedBackend(model, n_ctx=EMBEDDED_CONTEXT, n_threads=args.threads)
        entry["load_seconds"] = round(time.perf_counter() - t0, 2)
        generator = Generator(backend, store)
        for task in tasks:
            t0 = time.perf_counter()
            result = generator.compose_task(TASKS[task].prompt, task_name=task, detector_task=task, sampling=sampling)
            best = result.best
            entry["tasks"][task] = {
                "valid": best.valid, "repair_rounds": best.repair_rounds, "llm_calls": best.llm_calls,
                "failed_stage": first_failed_stage(best.report), "prompt_tokens": best.prompt_tokens,
                "completion_tokens": best.completion_tokens, "seconds": round(time.perf_counter() - t0, 1),
                "sha256": best.sha256, "examples": best.record.generation.get("examples"),
                "finish_reasons": [r.get("finish_reason") for r in best.record.generation.get("rounds", [])],
            }
            done = entry["tasks"].values()
            entry["validated"] = sum(1 for t in done if t["valid"])
            entry["measured"] = len(entry["tasks"])
            print(f"{model} {task}: valid={best.valid} rounds={best.repair_rounds} "
                  f"tokens={best.prompt_tokens}+{best.completion_tokens} {entry['tasks'][task]['seconds']} s", flush=True)
            save()
        backend.close()
    rates = {m: e.get("validated", 0) / max(1, e.get("measured", 0)) for m, e in results["models"].items()}
    results["validated_rate"] = rates
    save()
    print(json.dumps(rates))


if __name__ == "__main__":
    main()
