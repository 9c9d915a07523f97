"""How diverse a pair dataset is: distinct messages overall and among each skill's decisive pairs.

Used to compare collection rounds (issue 14: the first reward models saw 2,272 pairs holding
244 distinct messages). A *message* is a transition's current message (what the reward model
reads), empty ones included as one message. Per skill, only pairs with a decisive label (first
or second better) count, since ties teach the reward model nothing about preference.
"""

from __future__ import annotations

import os
from typing import Any

from maestromotif.annotation.schema import LABEL_FIRST, LABEL_SECOND, read_labels, read_pair_dataset
from maestromotif.skills.ids import SKILL_NAMES


def message_diversity(pairs_dir: str | os.PathLike[str], labels_dir: str | os.PathLike[str] | None = None,
                      *, known: set[str] | None = None) -> dict[str, Any]:
    """Counts for one round: pairs, distinct messages, and per labelled skill decisive pairs and
    their distinct messages. ``known``: messages of earlier rounds; ``new_messages`` counts the
    distinct messages not among them."""
    dataset = read_pair_dataset(pairs_dir)
    table = dataset.table
    first = table.column("first_message").to_pylist()
    second = table.column("second_message").to_pylist()
    messages = set(first) | set(second)
    out: dict[str, Any] = {"pairs": dataset.num_pairs, "distinct_messages": len(messages)}
    if known is not None:
        out["new_messages"] = len(messages - known)
    if labels_dir is None:
        return out
    index = {pair_id: row for row, pair_id in enumerate(dataset.pair_ids())}
    per_skill: dict[str, Any] = {}
    for skill in SKILL_NAMES:
        if not os.path.isfile(os.path.join(labels_dir, skill, "manifest.json")):
            continue
        labels = read_labels(labels_dir, skill, pairs=dataset)
        seen: set[str] = set()
        decisive = 0
        for pair_id, label in zip(labels.column("pair_id").to_pylist(), labels.column("label").to_pylist(),
                                  strict=True):
            if label in (LABEL_FIRST, LABEL_SECOND):
                row = index[pair_id]
                decisive += 1
                seen.add(first[row])
                seen.add(second[row])
        per_skill[skill] = {"decisive_pairs": decisive, "distinct_messages": len(seen)}
    out["per_skill"] = per_skill
    return out


def messages_of(pairs_dir: str | os.PathLike[str]) -> set[str]:
    table = read_pair_dataset(pairs_dir).table
    return set(table.column("first_message").to_pylist()) | set(table.column("second_message").to_pylist())
