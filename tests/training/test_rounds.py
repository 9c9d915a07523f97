"""The pipeline's second round on real games: collect with a checkpoint, retrain on both rounds,
compare the rounds; a rerun skips every finished stage. The LLM and the policy training are the
two callbacks given to ``second_round``: here a labelling rule and a copy of the checkpoint."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from rich.console import Console

from maestromotif.annotation.collect import collect_pairs
from maestromotif.annotation.schema import LabelRecord, labels_table, read_pair_dataset, write_label_file
from maestromotif.rewards.bundles import write_random_bundle
from maestromotif.rewards.train import TrainConfig
from maestromotif.skills.ids import SKILL_NAMES
from maestromotif.training.rounds import second_round
from maestromotif.training.settings import TrainingSettings
from maestromotif.training.sf2 import LearnerDriver

torch.set_num_threads(1)


def _rule_labels(pairs: Path, labels: Path) -> None:
    """Test double of the LLM: the pair whose current message is longer is better."""
    table = read_pair_dataset(pairs).table.to_pylist()
    records = [LabelRecord(r["pair_id"], 0 if len(r["first_message"]) > len(r["second_message"]) else
                           1 if len(r["second_message"]) > len(r["first_message"]) else 2, "rule", model="rule",
                           strategy="rule") for r in table]
    for skill in SKILL_NAMES:
        write_label_file(labels, skill, "labels-00000.parquet", labels_table(records),
                         extra={"label_source": "test-rule"})


def test_second_round_compares_rounds_and_skips_finished_stages(tmp_path: Path) -> None:
    work = tmp_path / "data"
    collect_pairs(work / "pairs", steps=2_000, policy="random", num_envs=4, seed=3)
    _rule_labels(work / "pairs", work / "labels")
    for skill in SKILL_NAMES:
        write_random_bundle(work / "reward_bundles", skill, seed=5)
    LearnerDriver(TrainingSettings(preset="small", device="cpu", batch_size=8 * 32), work / "runs", "policy").save(
        {"env_steps": 0})
    calls: list[str] = []

    def annotate(pairs: Path, labels: Path) -> None:
        calls.append("annotate")
        if not (labels / "merchant" / "manifest.json").exists():  # as the job: finished labels stay
            _rule_labels(pairs, labels)

    def train(bundles: Path, experiment: str) -> int:
        calls.append(f"train {bundles.name} {experiment}")
        if not (work / "runs" / experiment).exists():
            shutil.copytree(work / "runs" / "policy", work / "runs" / experiment)
        return 0

    kwargs = dict(annotate=annotate, collect_steps=2_000, collect_envs=4, seed=0,
                  config=TrainConfig(learning_rate=1e-3, batch_size=32, epochs=1, val_fraction=0.2, threads=1),
                  train=train, eval_steps=200, stage=lambda i, title: None, console=Console(quiet=True))
    assert second_round(work, **kwargs) == 0
    assert calls == ["annotate", "train reward_bundles policy_round2"]
    report = json.loads((work / "round2" / "report.json").read_text())
    r1, r2 = report["diversity"]["round1"], report["diversity"]["round2"]
    assert r2["pairs"] == read_pair_dataset(work / "round2" / "pairs").num_pairs > 0
    assert read_pair_dataset(work / "round2" / "pairs").manifest["policy"] == "checkpoint"
    assert 0 <= r2["new_messages"] <= r2["distinct_messages"]
    assert set(r1["per_skill"]) == set(SKILL_NAMES)
    both = report["reward_models"]["round1+2"]["descender"]
    assert both["label_source"] == "test-rule" and both["val_accuracy"] is not None
    bundle_report = json.loads(next((work / "round2" / "reward_bundles").glob("descender-*/report.json")).read_text())
    assert [e["num_pairs"] for e in bundle_report["labels"]] == [r1["pairs"], r2["pairs"]]
    for name in ("round1", "round2"):
        evaluation = report["evaluation"][name]
        assert evaluation["env_steps"] >= 200  # whole steps of all 16 games
        assert set(evaluation["skills"]) == set(SKILL_NAMES)  # 13 steps a game: runs may not finish yet
        assert "mean_competence" in evaluation["skills"]["discoverer"]["trained"]

    # a rerun: collection, retraining and the comparison are skipped (their outputs exist)
    stamp = (work / "round2" / "report.json").stat().st_mtime_ns
    bundles_manifest = (work / "round2" / "reward_bundles" / "manifest.json").read_bytes()
    calls.clear()
    assert second_round(work, **kwargs) == 0
    assert calls == ["annotate", "train reward_bundles policy_round2"]
    assert (work / "round2" / "report.json").stat().st_mtime_ns == stamp
    assert (work / "round2" / "reward_bundles" / "manifest.json").read_bytes() == bundles_manifest
