"""Code generation domain (placeholder until h-codegen-validate lands; its version replaces this)."""

from __future__ import annotations

from enum import StrEnum


class ArtifactKind(StrEnum):
    SKILL_FUNCTIONS = "skill_functions"
    TRAINING_POLICY = "training_policy"
    TASK_POLICY = "task_policy"


def parse_kind(value: object) -> ArtifactKind:
    try:
        return ArtifactKind(str(value))
    except ValueError:
        raise ValueError(f"unknown artifact kind {str(value)[:40]!r}") from None
