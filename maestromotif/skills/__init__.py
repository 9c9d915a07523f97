"""Skills: ids, descriptions, initiation/termination rules, the policy-over-skills contract,
the sandbox that loads policy source, the reference policies and the call-and-return controller.

Skill ids have one definition, the proto enum ``maestromotif.v1.common_pb2.Skill``; ``Skill``
here is an IntEnum built from it.
"""

from maestromotif.skills.contract import (
    CropView,
    Memory,
    PolicyError,
    PolicyOverSkills,
    PolicyTimeout,
    RandomSkillPolicy,
    SkillState,
    SubsetError,
)
from maestromotif.skills.descriptions import SHARED_RULE, SKILL_DESCRIPTIONS, SKILL_SUMMARIES
from maestromotif.skills.ids import NUM_SKILLS, SKILL_NAMES, Skill, SkillIdError, parse_skill, skill_name

__all__ = [
    "NUM_SKILLS",
    "SHARED_RULE",
    "SKILL_DESCRIPTIONS",
    "SKILL_NAMES",
    "SKILL_SUMMARIES",
    "CropView",
    "Memory",
    "PolicyError",
    "PolicyOverSkills",
    "PolicyTimeout",
    "RandomSkillPolicy",
    "Skill",
    "SkillIdError",
    "SkillState",
    "SubsetError",
    "parse_skill",
    "skill_name",
]
