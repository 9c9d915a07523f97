"""Collection with a trained skill policy (the learner's checkpoint format)."""

from __future__ import annotations

from pathlib import Path

import pytest

from maestromotif.annotation.collect import CollectError, collect_pairs
from maestromotif.annotation.schema import read_pair_dataset
from maestromotif.training.settings import TrainingSettings
from maestromotif.training.sf2 import LearnerDriver


def test_collect_with_a_checkpoint_policy(tmp_path: Path) -> None:
    driver = LearnerDriver(TrainingSettings(preset="small", device="cpu", batch_size=8 * 32), tmp_path / "train", "exp")
    driver.save({"env_steps": 0})
    out = tmp_path / "pairs"
    # an experiment folder stands for its latest checkpoint
    result = collect_pairs(out, steps=400, policy="checkpoint", checkpoint=str(tmp_path / "train" / "exp"),
                           num_envs=2, gap_steps=10, sample_prob=0.5, seed=3)
    assert result.pairs > 0
    assert read_pair_dataset(out).manifest["policy"] == "checkpoint"


def test_collect_checkpoint_policy_errors(tmp_path: Path) -> None:
    with pytest.raises(CollectError, match="needs --checkpoint"):
        collect_pairs(tmp_path / "a", steps=10, policy="checkpoint")
    with pytest.raises(CollectError, match="does not exist"):
        collect_pairs(tmp_path / "b", steps=10, policy="checkpoint", checkpoint=str(tmp_path / "missing.pth"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(CollectError, match="no checkpoint_p0"):
        collect_pairs(tmp_path / "c", steps=10, policy="checkpoint", checkpoint=str(tmp_path / "empty"))
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CollectError, match="cannot load"):
        collect_pairs(tmp_path / "d", steps=10, policy="checkpoint", checkpoint=str(bad))
