"""Generated task policies beside the hand-written reference policies, on the same seeds.

Reads the artifacts chosen by ``codegen_models.py`` (one per task, for one model), loads each
validated one from the artifact store, and plays ``--episodes`` NLE episodes per task with it and
with the task's reference policy, on the same seeds. No skill network checkpoint exists in this
repository's runs yet, so the skills are stand-ins (``maestromotif.codegen.episodes``): by default
the descender and ascender are scripted with wizard-mode stairs and the other skills act at random,
so that the policies' choices move the hero; with random actions alone both policies would play
the same game. It shows how the two policies sequence skills and what the task detector then
measures, not what trained skills achieve. Results go to ``--out`` as JSON.

    nice -n 10 python experiments/codegen_compare.py --models-json experiments/results/codegen/models.json \\
        --model 0.5b --episodes 3 --out experiments/results/codegen/compare.json
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models-json", type=Path, required=True)
    parser.add_argument("--model", default="0.5b")
    parser.add_argument("--store", type=Path, default=Path("experiments/results/codegen/artifacts"))
    parser.add_argument("--episodes", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=100)
    parser.add_argument("--max-steps", type=int, default=10_000)
    parser.add_argument("--skills", choices=("random", "stairs"), default="stairs",
                        help="skill stand-in (maestromotif.codegen.episodes): random actions, or wizard-mode "
                             "scripted stairs for descender/ascender")
    parser.add_argument("--out", type=Path, default=Path("experiments/results/codegen/compare.json"))
    args = parser.parse_args()

    from maestromotif.codegen.artifacts import ArtifactStore
    from maestromotif.codegen.episodes import play_episode
    from maestromotif.skills.reference import load_reference
    from maestromotif.tasks.specs import TASKS

    measured = json.loads(args.models_json.read_text())["models"][args.model]["tasks"]
    store = ArtifactStore(args.store)
    seeds = list(range(args.first_seed, args.first_seed + args.episodes))
    out: dict[str, Any] = {
        "what": "per task, the generated policy and the reference policy over skills on the same seeds; no skill "
                "network checkpoint was available, so skills are stand-ins (see skills)",
        "skills": args.skills, "model": args.model, "seeds": seeds, "max_steps": args.max_steps, "tasks": {},
    }
    for task, entry in measured.items():
        row: dict[str, Any] = {"sha256": entry["sha256"], "valid": entry["valid"]}
        policies = {"reference": load_reference(task)}
        if entry["valid"]:
            policies["generated"] = store.load_policy(entry["sha256"])
        for label, policy in policies.items():
            t0 = time.perf_counter()
            episodes = [play_episode(policy, task, seed, max_steps=args.max_steps, skills=args.skills) for seed in seeds]
            row[label] = {
                "episodes": [asdict(e) for e in episodes],
                "seconds": round(time.perf_counter() - t0, 1),
                "mean_steps": sum(e.steps for e in episodes) / len(episodes),
                "mean_max_depth": sum(e.max_depth for e in episodes) / len(episodes),
                "policy_failures": sum(e.policy_failures for e in episodes),
                "legacy_success": sum(bool(e.outcome.get("legacy_success")) for e in episodes),
                "legacy_count": sum(int(e.outcome.get("legacy_count", 0)) for e in episodes),
                "metric": TASKS[task].metric,
            }
            print(task, label, {k: v for k, v in row[label].items() if k != "episodes"}, flush=True)
        out["tasks"][task] = row
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=2, default=list))


if __name__ == "__main__":
    main()
