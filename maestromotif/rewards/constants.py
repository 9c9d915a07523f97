"""Numbers of the reward pipeline (method.md 6), in one place.

Skill ids come from the proto enum ``maestromotif.v1.common_pb2.Skill`` (the
project's single definition of skill ids).
"""

from __future__ import annotations

from maestromotif.v1.common_pb2 import Skill

NUM_SKILLS: int = len(Skill.keys())
SKILL_NAMES: tuple[str, ...] = tuple(Skill.Name(i).lower() for i in range(NUM_SKILLS))
"""Skill names by id: discoverer, descender, ascender, worshipper, merchant."""

ALPHA_LLM: float = 0.1
"""Scale of the (thresholded, normalized) LLM reward in RL."""
COUNT_EXPONENT: float = 3.0
"""beta: the shaped reward is divided by message_count ** beta."""

QUANTILE_LEVELS: tuple[float, ...] = tuple(round(0.05 * k, 2) for k in range(1, 20))
"""The 19 quantile levels 0.05 .. 0.95 stored with every bundle."""

THRESHOLD_LEVELS: dict[str, float] = {
    "discoverer": 0.95,
    "descender": 0.85,
    "ascender": 0.85,
    "worshipper": 0.85,
    "merchant": 0.85,
}
"""Quantile level of the normalized reward used as each skill's threshold tau."""

PAPER_THRESHOLDS: dict[str, float] = {
    "discoverer": 0.95,
    "descender": 1.32,
    "ascender": 1.27,
    "worshipper": 1.38,
    "merchant": 1.34,
}
"""tau of the original's released models; used only by untrained (--init-random) bundles."""


def skill_id(name_or_id: str | int) -> int:
    """Skill id from a name (case-insensitive) or an id; ValueError naming the skill otherwise."""
    if isinstance(name_or_id, int):
        if 0 <= name_or_id < NUM_SKILLS:
            return name_or_id
        raise ValueError(f"skill: id {name_or_id} out of range 0..{NUM_SKILLS - 1}")
    name = name_or_id.strip().lower()
    if name in SKILL_NAMES:
        return SKILL_NAMES.index(name)
    raise ValueError(f"skill: unknown skill {name_or_id!r}; expected one of {', '.join(SKILL_NAMES)}")
