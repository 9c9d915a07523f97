"""Hand-written reference policies over skills, stored as source in the policy subset.

They are the training policy (``exploration``, method.md 3.3) and one policy per task
(method.md 4.2). They are loaded through the same checker and sandbox as generated code, since
they are also its few-shot examples and the evaluation baselines.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from maestromotif.skills.sandbox import SandboxedPolicy, load_policy

TRAINING_POLICY = "exploration"
# Task order of the paper's tables.
TASK_POLICIES: tuple[str, ...] = (
    "gnomish",
    "delphi",
    "minetown",
    "transactions",
    "price",
    "buc",
    "goldenexit",
    "levelupsell",
    "discoveryhunger",
)
REFERENCE_NAMES: tuple[str, ...] = (TRAINING_POLICY, *TASK_POLICIES)
# The default initiation/termination rules (maestromotif.skills.rules) written as skill functions.
SKILL_FUNCTIONS_NAME = "skill_functions"


def reference_source(name: str) -> str:
    """Source text of a reference policy; raises ``KeyError`` naming the valid choices."""
    if name not in REFERENCE_NAMES:
        raise KeyError(f"no reference policy {name!r}; choose one of {', '.join(REFERENCE_NAMES)}")
    return resources.files(__package__).joinpath(f"{name}.py").read_text(encoding="utf-8")


def load_reference(name: str, **limits: Any) -> SandboxedPolicy:
    """Load a reference policy through the subset checker and sandbox."""
    return load_policy(reference_source(name), name=name, **limits)


def reference_skill_functions_source() -> str:
    """Source of the default rules written as skill functions (``skill_precondition``, ``skill_termination``)."""
    return resources.files(__package__).joinpath(f"{SKILL_FUNCTIONS_NAME}.py").read_text(encoding="utf-8")
