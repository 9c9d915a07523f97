"""What a reward model prefers: its distinct messages ranked by normalised score.

A skill's intrinsic return can rise without the skill being done when the reward model
rewards a message the agent can produce at will (reward hacking). Ranking the messages of a
pair dataset by the model's normalised output, and marking those above the bundle's
threshold (the only ones the shaping rule rewards, see ``shaping.py``), shows which ones.
"""

from __future__ import annotations

import collections
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import torch

from maestromotif.annotation.schema import PairDataset
from maestromotif.rewards.bundles import Bundle
from maestromotif.rewards.data import encode_messages
from maestromotif.rewards.model import STAT_CHANGE_DIM
from maestromotif.rewards.shaping import shape_rewards_np


@dataclass(frozen=True)
class RankedMessage:
    text: str
    occurrences: int  # in the pair dataset, both sides of every pair
    score: float  # (raw - mean) / std, with no depth change
    rewarded: bool  # the shaping rule pays for it (above the bundle's threshold)


def dataset_messages(pairs: PairDataset) -> collections.Counter[str]:
    """Every transition's current message of a pair dataset, with how often it occurs."""
    table = pairs.table
    return collections.Counter(table.column("first_message").to_pylist() + table.column("second_message").to_pylist())


def rank_messages(bundle: Bundle, messages: collections.Counter[str] | Sequence[str],
                  batch_size: int = 1024) -> list[RankedMessage]:
    """Score each distinct message with no depth change; highest score first.

    ``messages`` must already be valid model input (latin-1, at most 256 characters), as a
    validated pair dataset's are.
    """
    counts = messages if isinstance(messages, collections.Counter) else collections.Counter(messages)
    texts = sorted(counts)
    if not texts:
        return []
    encoded = encode_messages(pa.array(texts, type=pa.string()))
    raw = np.empty(len(texts), np.float64)
    bundle.model.eval()
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            chunk = torch.from_numpy(encoded[start : start + batch_size]).long()
            stats = torch.zeros(len(chunk), STAT_CHANGE_DIM)
            raw[start : start + len(chunk)] = bundle.model(chunk, stats).double().numpy()
    meta = bundle.meta
    scores = (raw - meta.mean) / meta.std
    # Whether the shaping rule pays for it: asked of the rule itself (first sight of the message).
    ones = np.ones(len(texts), np.float32)
    shaped = shape_rewards_np(raw, meta.mean * ones, meta.std * ones, meta.threshold * ones, ones)
    order = np.argsort(-scores, kind="stable")
    return [RankedMessage(texts[i], counts[texts[i]], float(scores[i]), bool(shaped[i] != 0.0))
            for i in order]
