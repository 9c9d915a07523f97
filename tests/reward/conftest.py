"""Shared fixtures of the reward tests: one small trained bundle root per session."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from maestromotif.rewards.bundles import write_random_bundle
from maestromotif.rewards.train import TrainConfig, TrainResult, train_reward_models
from reward_synthetic import make_dataset

torch.set_num_threads(1)  # 2 shared cores: keep every test single-threaded

FAST = TrainConfig(learning_rate=1e-3, batch_size=100, epochs=4, val_fraction=0.2, threads=1)


@dataclass
class Trained:
    pairs: Path
    labels: Path
    bundles: Path
    results: dict[str, TrainResult]


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """discoverer and descender trained on clear preferences; the other skills untrained bundles."""
    root = tmp_path_factory.mktemp("reward")
    pairs, labels = make_dataset(root, 600, seed=1)
    bundles = root / "bundles"
    results = train_reward_models(pairs, labels, bundles, "all", FAST, progress=False)
    for skill in ("ascender", "worshipper", "merchant"):
        write_random_bundle(bundles, skill, seed=3)
    return Trained(pairs, labels, bundles, {r.skill: r for r in results})
