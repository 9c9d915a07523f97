"""Shared fixtures: small pair datasets written with the real writer."""

from __future__ import annotations

from pathlib import Path

import pytest

from maestromotif.annotation.schema import PairRecord, Transition, write_pair_dataset

MESSAGES = ["You kill the newt!", "You descend the stairs.", "", "You climb up the stairs.", "$ - 12 gold pieces.",
            "It's solid stone.", "You find a hidden passage.", "There is a black flash as a dagger hits the altar."]


def make_records(n: int) -> list[PairRecord]:
    records = []
    for k in range(n):
        d = 1 + k % 5
        first = Transition("", MESSAGES[k % len(MESSAGES)], (d, k, 12, 14, 1, 1), (d + (k % 3 == 0), k, 12, 14, 1, 1))
        second = Transition("Hello", MESSAGES[(k * 3 + 1) % len(MESSAGES)], (d, 0, 10, 14, 1, 1), (d, 7, 10, 14, 2, 1))
        records.append(PairRecord(first, second, "test", k, 100))
    return records


@pytest.fixture
def records():
    return make_records


@pytest.fixture
def pairs_dir(tmp_path: Path) -> Path:
    out = tmp_path / "pairs"
    write_pair_dataset(out, make_records(24), gap_steps=100, shard_rows=10)
    return out
