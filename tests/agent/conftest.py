from __future__ import annotations

from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real learner checkpoint (small preset, not trained: what matters here is the format)."""
    from maestromotif.training.settings import TrainingSettings
    from maestromotif.training.sf2 import LearnerDriver

    root = tmp_path_factory.mktemp("train")
    driver = LearnerDriver(TrainingSettings(preset="small", device="cpu", batch_size=8 * 32), root, "exp")
    driver.save({"env_steps": 0})
    return root / "exp"
