from __future__ import annotations

import numpy as np
import pytest
import torch

from maestromotif.rewards.constants import ALPHA_LLM, COUNT_EXPONENT
from maestromotif.rewards.shaping import shape_rewards, shape_rewards_np


def test_method_constants() -> None:
    assert ALPHA_LLM == 0.1 and COUNT_EXPONENT == 3.0


def test_rule_by_hand() -> None:
    # mean 1, std 2, threshold 0.5: h = (raw - 1) / 2
    raw = torch.tensor([1.0, 2.0, 2.2, 5.0, 5.0, 5.0])
    counts = torch.tensor([1.0, 1.0, 1.0, 1.0, 2.0, 3.0])
    out = shape_rewards(raw, torch.full((6,), 1.0), torch.full((6,), 2.0), torch.full((6,), 0.5), counts)
    # h = 0 -> 0; h = 0.5 is not above the threshold -> 0; h = 0.6 kept whole (not 0.6 - 0.5)
    expected = torch.tensor([0.0, 0.0, 0.1 * 0.6, 0.1 * 2.0, 0.1 * 2.0 / 8, 0.1 * 2.0 / 27])
    assert torch.allclose(out, expected, atol=1e-7)


def test_all_skills_matches_own_skill_form() -> None:
    rng = np.random.default_rng(0)
    raw = torch.from_numpy(rng.normal(size=(50, 5)).astype(np.float32))
    mean = torch.tensor([0.1, -0.2, 0.0, 0.3, 0.05])
    std = torch.tensor([0.5, 1.0, 2.0, 0.7, 1.5])
    tau = torch.tensor([0.95, 1.32, 1.27, 1.38, 1.34])
    counts = torch.from_numpy(rng.integers(1, 5, 50).astype(np.float32))
    skills = torch.from_numpy(rng.integers(0, 5, 50))
    full = shape_rewards(raw, mean, std, tau, counts)
    own = shape_rewards(raw[torch.arange(50), skills], mean[skills], std[skills], tau[skills], counts)
    assert torch.allclose(full[torch.arange(50), skills], own)
    assert (full >= 0).all()  # sparse and positive
    assert (full > 0).any()
    np.testing.assert_allclose(
        shape_rewards_np(raw.numpy(), mean.numpy(), std.numpy(), tau.numpy(), counts.numpy()), full.numpy()
    )


def test_rejects_bad_rank() -> None:
    with pytest.raises(ValueError, match="raw"):
        shape_rewards(torch.zeros(2, 2, 2), torch.zeros(2), torch.ones(2), torch.zeros(2), torch.ones(2))
