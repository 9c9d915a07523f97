"""Preference data for reward training: a pair dataset joined with one skill's labels.

The on-disk formats and their validating readers belong to
``maestromotif.annotation.schema`` (one definition); this module only turns the
validated tables into the reward model's inputs: the *current* message of each
transition as 256 byte ids and clip(depth after - depth before, -1, 1).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from maestromotif.annotation.schema import (
    LABEL_FIRST,
    LABEL_SECOND,
    LABEL_TIE,
    LABEL_UNPARSED,
    DatasetError,
    join_labels,
    read_labels,
    read_pair_dataset,
    stats_array,
)
from maestromotif.rewards.constants import SKILL_NAMES
from maestromotif.rewards.model import MESSAGE_LENGTH

__all__ = [
    "LABEL_FIRST",
    "LABEL_SECOND",
    "LABEL_TIE",
    "LABEL_UNPARSED",
    "DatasetError",
    "PreferenceData",
    "available_skills",
    "encode_messages",
    "load_preferences",
    "preferences_from_table",
]
DEPTH = 0  # index of depth in the six stats


@dataclass(frozen=True)
class PreferenceData:
    """Labelled pairs of one skill, as reward-model inputs.

    messages[i, j] and depth_change[i, j] describe transition j (0 first, 1 second)
    of pair i: the current message as 256 byte ids (zero-padded) and
    clip(depth after - depth before, -1, 1).
    """

    pair_ids: np.ndarray  # object (str) [N]
    messages: np.ndarray  # uint8 [N, 2, 256]
    depth_change: np.ndarray  # float32 [N, 2]
    labels: np.ndarray  # int8 [N], 0 first better, 1 second, 2 tie, 3 unparsed

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, index: np.ndarray) -> PreferenceData:
        return PreferenceData(self.pair_ids[index], self.messages[index], self.depth_change[index], self.labels[index])

    def stat_changes(self) -> np.ndarray:
        """float32 [N, 2, 5]: the model's stat-change input (only depth non-zero, method.md 5.1)."""
        out = np.zeros((len(self), 2, 5), dtype=np.float32)
        out[:, :, 0] = self.depth_change
        return out


def encode_messages(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A string column (already validated: latin-1, <= 256 chars) -> uint8 [N, 256], zero-padded."""
    texts = column.to_pylist()
    out = np.zeros((len(texts), MESSAGE_LENGTH), dtype=np.uint8)
    for i, text in enumerate(texts):  # data preparation, not a hot path
        raw = text.encode("latin-1")
        out[i, : len(raw)] = np.frombuffer(raw, dtype=np.uint8)
    return out


def preferences_from_table(joined: pa.Table) -> PreferenceData:
    """Model inputs from a pairs table with a ``label`` column (``schema.join_labels``)."""
    first = encode_messages(joined.column("first_message"))
    second = encode_messages(joined.column("second_message"))
    d1 = stats_array(joined, "first_stats_after")[:, DEPTH] - stats_array(joined, "first_stats_before")[:, DEPTH]
    d2 = stats_array(joined, "second_stats_after")[:, DEPTH] - stats_array(joined, "second_stats_before")[:, DEPTH]
    return PreferenceData(
        pair_ids=np.asarray(joined.column("pair_id").to_pylist(), dtype=object),
        messages=np.stack([first, second], axis=1),
        depth_change=np.clip(np.stack([d1, d2], axis=1), -1, 1).astype(np.float32),
        labels=joined.column("label").to_numpy().astype(np.int8),
    )


def load_preferences(pairs_dir: str | Path, labels_dir: str | Path, skill: str) -> PreferenceData:
    """Read (validating everything) a pair dataset and one skill's labels, joined."""
    if skill not in SKILL_NAMES:
        raise DatasetError(f"skill: unknown skill {skill!r}; expected one of {', '.join(SKILL_NAMES)}")
    pairs = read_pair_dataset(pairs_dir)
    labels = read_labels(labels_dir, skill, pairs=pairs)
    return preferences_from_table(join_labels(pairs, labels))


def concat_preferences(parts: Sequence[PreferenceData]) -> PreferenceData:
    """Several rounds' pairs as one set; pair ids get their round's index so they stay unique."""
    return PreferenceData(
        np.concatenate([np.array([f"r{i}:{p}" for p in part.pair_ids], dtype=object) for i, part in enumerate(parts)]),
        np.concatenate([part.messages for part in parts]),
        np.concatenate([part.depth_change for part in parts]),
        np.concatenate([part.labels for part in parts]),
    )


def label_provenance(labels_dir: str | Path, skill: str) -> dict[str, Any]:
    """What decided a skill's labels, from its manifest: model, strategy, depth-prior weight and
    ``label_source`` (``llm``, ``llm+depth_prior:W``, or ``unrecorded`` for label sets written
    before the source was recorded, which used the then-default depth prior 3.0 with the score
    strategy)."""
    path = Path(labels_dir) / skill / "manifest.json"
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: cannot read the label manifest ({exc})") from None
    if not isinstance(manifest, dict):
        raise DatasetError(f"{path}: not a JSON object")
    keys = ("model", "strategy", "depth_prior", "tie_margin", "settings")
    out = {k: manifest[k] for k in keys if k in manifest}
    source = manifest.get("label_source")
    out["label_source"] = source if isinstance(source, str) else "unrecorded"
    return out


def available_skills(labels_dir: str | Path) -> list[str]:
    """Skills whose label folder has a manifest, in skill-id order."""
    root = Path(labels_dir)
    return [s for s in SKILL_NAMES if (root / s / "manifest.json").is_file()]
