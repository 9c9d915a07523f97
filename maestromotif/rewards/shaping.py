"""THE shaping rule: raw reward-model output -> RL reward (method.md 6).

Everything that turns raw reward-model outputs into RL rewards calls
:func:`shape_rewards` (the reward service, the learner, tests); the numpy
wrapper only converts types around it.

    h = (raw - mean) / std
    h = h if h > threshold else 0          # keeps h itself, not h - threshold
    r = scale * h / message_count ** beta  # scale = alpha_llm = 0.1, beta = 3
"""

from __future__ import annotations

import numpy as np
import torch

from maestromotif.rewards.constants import ALPHA_LLM, COUNT_EXPONENT


def shape_rewards(
    raw: torch.Tensor,
    mean: torch.Tensor,
    std: torch.Tensor,
    threshold: torch.Tensor,
    message_counts: torch.Tensor,
    *,
    scale: float = ALPHA_LLM,
    count_exponent: float = COUNT_EXPONENT,
) -> torch.Tensor:
    """Shape raw rewards; batched, broadcasting, on any device.

    Shapes (B = batch, S = skills):
    - ``raw`` [B, S] (every skill's output) with ``mean``/``std``/``threshold`` [S]
      and ``message_counts`` [B]; or
    - ``raw`` [B] (each row's own skill) with ``mean``/``std``/``threshold`` [B]
      (already gathered by skill) and ``message_counts`` [B].

    ``message_counts`` are the in-episode counts of the current message, >= 1
    (first sight = 1).
    """
    raw = raw.float()
    counts = message_counts.to(device=raw.device, dtype=raw.dtype)
    if raw.dim() == 2:
        counts = counts.unsqueeze(1)  # one count per row, shared by all skill columns
    elif raw.dim() != 1:
        raise ValueError(f"raw: expected 1 or 2 dimensions, got shape {tuple(raw.shape)}")
    mean = mean.to(device=raw.device, dtype=raw.dtype)
    std = std.to(device=raw.device, dtype=raw.dtype)
    threshold = threshold.to(device=raw.device, dtype=raw.dtype)
    h = (raw - mean) / std
    h = torch.where(h > threshold, h, torch.zeros_like(h))
    return scale * h / counts.pow(count_exponent)


def shape_rewards_np(
    raw: np.ndarray,
    mean: np.ndarray,
    std: np.ndarray,
    threshold: np.ndarray,
    message_counts: np.ndarray,
    *,
    scale: float = ALPHA_LLM,
    count_exponent: float = COUNT_EXPONENT,
) -> np.ndarray:
    """numpy convenience around :func:`shape_rewards` (same rule, same shapes), float32 out."""
    out = shape_rewards(
        torch.from_numpy(np.ascontiguousarray(raw, dtype=np.float32)),
        torch.from_numpy(np.ascontiguousarray(mean, dtype=np.float32)),
        torch.from_numpy(np.ascontiguousarray(std, dtype=np.float32)),
        torch.from_numpy(np.ascontiguousarray(threshold, dtype=np.float32)),
        torch.from_numpy(np.ascontiguousarray(message_counts, dtype=np.float32)),
        scale=scale,
        count_exponent=count_exponent,
    )
    return out.numpy()
