"""Code generation domain: what the LLM writes, how it is validated, and where it is stored.

Three kinds of artifact (``ArtifactKind``), each a Python source file in the policy subset of
``maestromotif.skills.sandbox``:

- ``training_policy`` and ``task_policy``: a policy over skills, the contract of
  ``maestromotif.skills.contract`` (``SKILL_TURNS``, ``start(memory)``, ``choose_skill(state, memory)``,
  optionally ``skill_precondition``/``skill_termination``);
- ``skill_functions``: the initiation and termination rules alone, ``skill_precondition(crop,
  num_items)`` and ``skill_termination(skill, skill_turns, depth, start_depth, worshipper_pre,
  merchant_pre, base_turns)`` (the contract's optional overrides, here required).

``validate`` checks a candidate stage by stage (size, parse, allow-list, an isolated process, a
harness over recorded NLE states, the LLM's own unit tests); ``isolation`` runs code in a
separate, locked-down process; ``artifacts`` stores validated code content-addressed. Nothing here
imports grpc: the Codegen service wraps it.
"""

from __future__ import annotations

from enum import StrEnum

# Kept free of heavier imports: the isolated child imports this package before it locks down.


class ArtifactKind(StrEnum):
    """What a piece of generated code is (its contract)."""

    SKILL_FUNCTIONS = "skill_functions"
    TRAINING_POLICY = "training_policy"
    TASK_POLICY = "task_policy"

    @property
    def is_policy(self) -> bool:
        return self is not ArtifactKind.SKILL_FUNCTIONS

    @property
    def required_functions(self) -> dict[str, int]:
        """Functions the source must define (name -> number of parameters)."""
        from maestromotif.skills.sandbox import REQUIRED_FUNCTIONS, SKILL_FUNCTIONS

        return dict(SKILL_FUNCTIONS) if self is ArtifactKind.SKILL_FUNCTIONS else dict(REQUIRED_FUNCTIONS)

    @property
    def optional_functions(self) -> dict[str, int]:
        from maestromotif.skills.sandbox import OPTIONAL_FUNCTIONS

        return {} if self is ArtifactKind.SKILL_FUNCTIONS else dict(OPTIONAL_FUNCTIONS)

    @property
    def needs_skill_turns(self) -> bool:
        """Policies set ``SKILL_TURNS`` (D); skill functions receive it as ``base_turns``."""
        return self.is_policy


def parse_kind(value: object) -> ArtifactKind:
    """An ``ArtifactKind`` from its value (``"task_policy"``, ...); ValueError names the choices."""
    try:
        return ArtifactKind(str(value))
    except ValueError:
        raise ValueError(
            f"unknown artifact kind {str(value)[:40]!r}; expected one of {', '.join(k.value for k in ArtifactKind)}"
        ) from None


__all__ = ["ArtifactKind", "parse_kind"]
