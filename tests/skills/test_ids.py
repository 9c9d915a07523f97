"""Skill ids come from the proto enum; bad ids fail with a clear error."""

from __future__ import annotations

import numpy as np
import pytest

from maestromotif.skills import NUM_SKILLS, SKILL_DESCRIPTIONS, SKILL_NAMES, SKILL_SUMMARIES, Skill, SkillIdError, parse_skill
from maestromotif.v1 import common_pb2


def test_ids_match_proto_enum() -> None:
    assert {s.name: int(s) for s in Skill} == dict(common_pb2.Skill.items())
    assert SKILL_NAMES == ("discoverer", "descender", "ascender", "worshipper", "merchant")
    assert NUM_SKILLS == 5
    assert set(SKILL_DESCRIPTIONS) == set(SKILL_SUMMARIES) == set(Skill)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0, Skill.DISCOVERER), (np.int64(4), Skill.MERCHANT), ("Descender", Skill.DESCENDER), (Skill.ASCENDER, Skill.ASCENDER)],
)
def test_parse_accepts_ids_and_names(value: object, expected: Skill) -> None:
    assert parse_skill(value) is expected


@pytest.mark.parametrize(
    ("value", "fragment"),
    [(5, "out of range 0..4"), (-1, "out of range"), (True, "bool"), ("prayer", "unknown skill name"),
     (None, "NoneType"), (1.0, "float")],
)
def test_parse_rejects_with_clear_error(value: object, fragment: str) -> None:
    with pytest.raises(SkillIdError, match=fragment):
        parse_skill(value)
