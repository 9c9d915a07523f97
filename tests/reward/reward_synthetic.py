"""A small labelled preference set whose preferences are clear, for reward-training tests.

Messages come from NetHack-like templates with random fillers, so held-out
pairs hold messages never seen in training. Preferences:
- discoverer: a message mentioning gold beats one that does not;
- descender: going down (depth +1) beats staying, which beats going up;
- otherwise a tie.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from maestromotif.annotation.schema import (
    LABEL_FIRST,
    LABEL_SECOND,
    LABEL_TIE,
    LabelRecord,
    PairRecord,
    Transition,
    labels_table,
    write_label_file,
    write_pair_dataset,
)

MONSTERS = ["newt", "jackal", "grid bug", "sewer rat", "kobold", "gnome", "lichen", "fox", "goblin", "acid blob"]
ITEMS = ["a scroll", "a potion", "an apple", "a dagger", "2 food rations", "a ring", "a wand", "a cloak"]
TEMPLATES_PLAIN = [
    "You hit the {m}.",
    "You kill the {m}!",
    "The {m} bites!",
    "You miss the {m}.",
    "{i} - {i2}.",
    "There is a doorway here.",
    "You are hit by the {m}.",
    "",
]
TEMPLATES_GOLD = [
    "You find {n} gold pieces.",
    "$ - {n} gold pieces.",
    "There are {n} gold pieces here.",
    "You pick up {n} gold pieces and {i}.",
]


def message(rng: np.random.Generator, gold: bool) -> str:
    template = rng.choice(TEMPLATES_GOLD if gold else TEMPLATES_PLAIN)
    return str(template).format(
        m=rng.choice(MONSTERS), i=rng.choice(ITEMS), i2=rng.choice(ITEMS), n=int(rng.integers(1, 500))
    )


def transition(rng: np.random.Generator) -> Transition:
    depth = int(rng.integers(2, 6))
    change = int(rng.integers(-1, 2))
    before = (depth, int(rng.integers(0, 100)), 10, 12, 1, 1)
    after = (depth + change, before[1], 9, 12, 1, 1)
    return Transition(message(rng, False), message(rng, bool(rng.random() < 0.4)), before, after)


def preference(skill: str, first: Transition, second: Transition) -> int:
    if skill == "discoverer":
        a, b = ("gold" in first.message), ("gold" in second.message)
    elif skill == "descender":
        a = first.stats_after[0] - first.stats_before[0]
        b = second.stats_after[0] - second.stats_before[0]
    else:
        return LABEL_TIE
    if a == b:
        return LABEL_TIE
    return LABEL_FIRST if a > b else LABEL_SECOND


def make_dataset(root: Path, n_pairs: int, seed: int = 0, skills: tuple[str, ...] = ("discoverer", "descender")) -> tuple[Path, Path]:
    """Write a pair dataset and label sets under root; returns (pairs_dir, labels_dir)."""
    rng = np.random.default_rng(seed)
    records = [PairRecord(transition(rng), transition(rng), source="synthetic", seed=seed, gap_steps=100) for _ in range(n_pairs)]
    pairs_dir, labels_dir = root / "pairs", root / "labels"
    manifest = write_pair_dataset(pairs_dir, records, gap_steps=100)
    kept = {}
    for r in records:
        kept.setdefault(r.pair_id, r)
    for skill in skills:
        labels = [
            LabelRecord(pid, preference(skill, r.first, r.second), raw_text="synthetic", model="rule", strategy="rule")
            for pid, r in kept.items()
        ]
        write_label_file(labels_dir, skill, "labels-00000.parquet", labels_table(labels))
    assert manifest["num_pairs"] == len(kept)
    return pairs_dir, labels_dir
