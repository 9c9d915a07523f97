"""Skill ids: the one definition, built from the proto enum ``maestromotif.v1.common_pb2.Skill``.

The library must not import grpc, but the generated ``*_pb2`` modules depend only on
protobuf, so reading the enum descriptor here keeps a single source of truth.
"""

from __future__ import annotations

import enum

from maestromotif.v1 import common_pb2

_DESCRIPTOR = common_pb2.DESCRIPTOR.enum_types_by_name["Skill"]

# IntEnum generated from the proto enum: Skill.DISCOVERER == 0, ... Skill.MERCHANT == 4.
Skill = enum.IntEnum("Skill", [(v.name, v.number) for v in _DESCRIPTOR.values])
Skill.__doc__ = "The five skills; values are the proto enum numbers (maestromotif.v1.Skill)."
Skill.__module__ = __name__

NUM_SKILLS: int = len(Skill)
# Lower-case names used in prompts, generated code and CLI output ("discoverer", ...).
SKILL_NAMES: tuple[str, ...] = tuple(s.name.lower() for s in sorted(Skill))

if tuple(int(s) for s in sorted(Skill)) != tuple(range(NUM_SKILLS)):  # pragma: no cover - proto guard
    raise RuntimeError("maestromotif.v1.Skill must number its values 0..N-1 without gaps")


class SkillIdError(ValueError):
    """A value that does not name one of the five skills."""


def parse_skill(value: object) -> Skill:
    """Turn an id (int, numpy integer, Skill) or a name (any case) into a ``Skill``.

    Raises ``SkillIdError`` naming the value and the accepted range otherwise; never returns junk.
    """
    if isinstance(value, Skill):
        return value
    if isinstance(value, bool):  # bool is an int subclass; True is not a skill
        raise SkillIdError(f"skill id must be an int in 0..{NUM_SKILLS - 1} or a name, got bool {value!r}")
    if isinstance(value, str):
        key = value.strip().lower()
        if key in SKILL_NAMES:
            return Skill(SKILL_NAMES.index(key))
        raise SkillIdError(f"unknown skill name {value[:40]!r}; expected one of {', '.join(SKILL_NAMES)}")
    try:
        index = value.__index__()  # type: ignore[attr-defined]  # ints and numpy integers
    except (AttributeError, TypeError):
        raise SkillIdError(
            f"skill id must be an int in 0..{NUM_SKILLS - 1} or a name, got {type(value).__name__}"
        ) from None
    if not 0 <= index < NUM_SKILLS:
        raise SkillIdError(f"skill id {index} out of range 0..{NUM_SKILLS - 1}")
    return Skill(index)


def skill_name(value: object) -> str:
    """Lower-case name of a skill id or name."""
    return SKILL_NAMES[parse_skill(value)]
