"""The pipeline's second collection round (issue 14, item 7): more diverse pairs from the trained policy.

round 1 (the pipeline's stages 1-4) -> the trained checkpoint plays and its pairs are collected ->
the LLM labels them -> the reward models are retrained on both rounds' pairs -> a second policy
is trained on them -> both policies are evaluated (return and competence, trained against random
actions from the same states) -> ``WORKDIR/round2/report.json``. Every stage is skipped when its
output exists (pair/label/bundle manifests, the report), the policy training resumes from its
latest checkpoint, so the pipeline stays resumable.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from maestromotif.fileio import atomic_write_text


def _val_accuracy(bundle_root: Path) -> dict[str, Any]:
    """Per skill: held-out agreement with the labels (decisive pairs only) and the label source."""
    from maestromotif.rewards.bundles import load_bundle, read_manifest

    out: dict[str, Any] = {}
    for skill, entry in read_manifest(bundle_root)["skills"].items():
        meta = load_bundle(bundle_root / entry["path"]).meta
        report_path = bundle_root / entry["path"] / "report.json"
        report = json.loads(report_path.read_text()) if report_path.is_file() else {}
        out[skill] = {"val_accuracy": meta.metrics.get("val_accuracy"), "val_pairs": meta.metrics.get("val_pairs"),
                      "label_source": report.get("label_source", "unrecorded")}
    return out


def second_round(
    workdir: Path,
    *,
    annotate: Callable[[Path, Path], None],
    collect_steps: int,
    collect_envs: int,
    seed: int,
    config: Any,
    train: Callable[[Path, str], int],
    eval_steps: int,
    stage: Callable[[int, str], None],
    console: Any,
) -> int:
    """Run stages 5-9; returns 0, or the failing training's exit code."""
    from tqdm import tqdm

    from maestromotif.annotation.collect import collect_pairs
    from maestromotif.annotation.diversity import message_diversity, messages_of
    from maestromotif.rewards.train import train_reward_models
    from maestromotif.training.evaluate import evaluate_skills

    r1_pairs, r1_labels, r1_bundles = workdir / "pairs", workdir / "labels", workdir / "reward_bundles"
    root = workdir / "round2"
    pairs, labels, bundles = root / "pairs", root / "labels", root / "reward_bundles"
    policy1 = workdir / "runs" / "policy"

    stage(5, "round 2: collect pairs with the trained policy")
    if (pairs / "manifest.json").exists():
        console.print(f"{pairs} exists: skipped")
    else:
        with tqdm(total=collect_steps, unit="step", desc="collect round 2") as bar:
            result = collect_pairs(pairs, steps=collect_steps, policy="checkpoint", checkpoint=str(policy1),
                                   num_envs=collect_envs, seed=seed + 1, progress=bar.update)
        console.print(f"{result.pairs} pairs from {result.steps} steps -> {pairs}")

    stage(6, "round 2: label the new pairs (LLM)")
    annotate(pairs, labels)

    stage(7, "round 2: retrain the reward models on both rounds")
    if (bundles / "manifest.json").exists():
        console.print(f"{bundles} exists: skipped")
    else:
        train_reward_models(r1_pairs, r1_labels, bundles, "all", config, extra_rounds=[(pairs, labels)])

    stage(8, "round 2: train a policy on the retrained reward models")
    code = train(bundles, "policy_round2")
    if code != 0:
        return code

    stage(9, "round 2: compare the rounds")
    report_path = root / "report.json"
    if report_path.exists():
        console.print(f"{report_path} exists: skipped")
        return 0
    round1_messages = messages_of(r1_pairs)
    report: dict[str, Any] = {
        "diversity": {
            "round1": message_diversity(r1_pairs, r1_labels),
            "round2": message_diversity(pairs, labels, known=round1_messages),
        },
        "reward_models": {"round1": _val_accuracy(r1_bundles), "round1+2": _val_accuracy(bundles)},
        "reward_models_note": "held-out agreement with the LLM's labels on decisive pairs (not ground truth); "
                              "each training has its own held-out pairs",
        "evaluation_note": "trained vs random actions from the same states; returns use each round's own reward "
                           "models (not comparable across rounds), competence is measured on the game",
    }
    for name, checkpoint, bundle_dir in (("round1", policy1, r1_bundles),
                                         ("round2", workdir / "runs" / "policy_round2", bundles)):
        with tqdm(total=eval_steps, unit="step", desc=f"evaluate {name}") as bar:
            result = evaluate_skills(checkpoint, bundle_dir, steps=eval_steps, seed=seed, progress=bar.update)
        report.setdefault("evaluation", {})[name] = result.to_dict()
    atomic_write_text(report_path, json.dumps(report, indent=2))
    console.print(f"round report -> {report_path}")
    return 0
