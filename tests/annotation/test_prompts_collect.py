"""Verdict parsing (last match, D20), the six lines, the check set, and collection from real envs."""

from __future__ import annotations

from pathlib import Path

import pytest

from maestromotif.annotation.checkset import load_checkset
from maestromotif.annotation.collect import CollectError, collect_pairs
from maestromotif.annotation.prompts import compare_messages, describe_transition, parse_verdict, score_text
from maestromotif.annotation.schema import Transition, read_pair_dataset
from maestromotif.skills.ids import Skill


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("reasoning...\nbest_description: 1", 0),
        ("best_description: 2", 1),
        ("BEST\\_DESCRIPTION: None", 2),
        ("first I thought best_description: 1 but finally best_description: 2", 1),  # last match (D20)
        ('"best description": "2"', 1),
        ("**best_description**: is 1", 0),
        ("best_description: 12 gold is more", None),  # a digit inside a number is no verdict
        ("I cannot decide.", None),
    ],
)
def test_parse_verdict(text: str, label: int | None) -> None:
    assert parse_verdict(text) == label


def test_six_lines_and_prompts() -> None:
    t = Transition("Hello", "You descend the stairs.", (2, 10, 12, 14, 3, 1), (3, 15, 10, 14, 4, 2))
    lines = describe_transition(t)
    assert list(lines) == ["messages", "dungeon level", "gold", "hit points", "experience level", "hunger"]
    assert lines["dungeon level"] == "went down from level 2 to level 3"
    assert lines["hunger"] == "normal -> hungry" and lines["hit points"] == "12/14 -> 10/14"
    up = Transition("", "", (3, 0, 1, 1, 1, 1), (2, 0, 1, 1, 1, 1))
    assert describe_transition(up)["dungeon level"] == "went up from level 3 to level 2"
    messages = compare_messages(Skill.DESCENDER, t, up)
    assert "best_description" in messages[-1].content and "Description 2" in messages[-1].content
    assert "angers the god" in messages[-1].content
    assert score_text(t) == 'Message: "You descend the stairs. (The player went down from level 2 to level 3.)"'


def test_checkset_is_balanced() -> None:
    cases = load_checkset()
    assert len(cases) >= 60
    for skill in Skill:
        mine = [c for c in cases if c.skill == skill]
        assert len(mine) >= 12
        assert {c.expected for c in mine} == {0, 1}


def test_collect_random(tmp_path: Path) -> None:
    out = tmp_path / "pairs"
    result = collect_pairs(out, steps=600, policy="random", num_envs=2, gap_steps=10, sample_prob=0.5, seed=3)
    dataset = read_pair_dataset(out)
    assert dataset.num_pairs == result.pairs > 0
    assert dataset.manifest["gap_steps"] == 10 and dataset.manifest["policy"] == "random"
    assert set(dataset.table.column("gap_steps").to_pylist()) == {10}
    assert len(set(dataset.pair_ids())) == dataset.num_pairs
    with pytest.raises(CollectError, match="already holds"):
        collect_pairs(out, steps=10, num_envs=1)
    with pytest.raises(CollectError, match="checkpoint"):
        collect_pairs(tmp_path / "c", steps=10, policy="checkpoint")
