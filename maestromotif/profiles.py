"""Pipeline profiles: every stage's scale and hyperparameters, in one place.

``maestromotif pipeline --profile tiny|small|paper`` reads one of these. ``paper`` carries the
method's values (method.md 5-8) for a cluster; ``small`` and ``tiny`` shrink the scale to fit one
machine, and each says exactly how it departs from the method in ``deviations`` (the report
prints them), so that no figure made at a small scale passes for the paper's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from maestromotif.tasks.specs import TASK_NAMES


class _Stage(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CollectStage(_Stage):
    steps: int = Field(ge=1, description="env steps to collect pairs from")
    envs: int = Field(8, ge=1, le=256, description="games played at once")
    policy: Literal["reference", "random"] = "reference"


class AnnotateStage(_Stage):
    check_set: bool = Field(True, description="also measure label agreement on the shipped check set")


class RewardStage(_Stage):
    learning_rate: float = Field(gt=0)
    batch_size: int = Field(ge=1)
    epochs: int = Field(ge=1)
    val_fraction: float = Field(0.1, ge=0.0, lt=1.0)


class CodegenStage(_Stage):
    samples: int = Field(ge=1, le=8, description="independent samples per prompt; the best validated one is kept")
    max_repair_rounds: int = Field(ge=0, le=3)
    max_tokens: int = Field(ge=64, le=8192)
    temperature: float = Field(0.2, ge=0.0, le=2.0)
    repair_temperature: float = Field(0.7, ge=0.0, le=2.0, description="temperature of repair rounds (the method: "
                                      "0.2 throughout; small models repeat a failing answer at 0.2)")
    seed: int = Field(0, ge=0)
    tasks: tuple[str, ...] = Field(TASK_NAMES, min_length=1, description="tasks composed from their prompts")

    @field_validator("tasks")
    @classmethod
    def _known_tasks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [t for t in value if t not in TASK_NAMES]
        if unknown:
            raise ValueError(f"unknown tasks {', '.join(unknown)}; choose from {', '.join(TASK_NAMES)}")
        return value


class TrainStage(_Stage):
    samples: int = Field(ge=1, description="policy samples to train")
    actors: int = Field(1, ge=1, le=64, description="actor processes")
    envs: int = Field(16, ge=1, le=4096, description="games per actor process")
    preset: Literal["auto", "paper", "small"] = "auto"
    batch_size: int = Field(4096, ge=32)
    learning_rate: float = Field(1e-4, gt=0)


class SkillEvalStage(_Stage):
    steps: int = Field(ge=1, description="env steps of the trained-vs-random skill evaluation")
    envs: int = Field(16, ge=1, le=256)


class TaskEvalStage(_Stage):
    episodes: int = Field(ge=1, description="episodes per task and condition")
    max_steps: int = Field(ge=1, le=10_000, description="step cap per episode (10,000 in the method)")
    workers: int = Field(1, ge=1, le=64)


class Profile(_Stage):
    name: str
    summary: str
    deviations: tuple[str, ...] = Field(description="how this profile departs from the method, in words")
    collect: CollectStage
    annotate: AnnotateStage = AnnotateStage()
    rewards: RewardStage
    codegen: CodegenStage
    train: TrainStage
    skill_eval: SkillEvalStage
    task_eval: TaskEvalStage


_PAPER = Profile(
    name="paper",
    summary="The method's values (method.md 5-8), for a GPU cluster: days of compute.",
    deviations=(
        "pairs come from this system's own collection with the reference policy, not the paper's 661k pairs "
        "from RL agents and human games (those files are unavailable)",
        "the embedded LLM is the default; the paper labelled with Llama-3.1-70B and wrote code with "
        "Llama-3.1-405B: set --backend openai --url for a served model of that class",
        "task evaluation plays a fixed set of started episodes (method.md D3), not a sliding window",
        "at most 8,192 tokens per code reply (the paper: 10,000; the code generator's bound)",
    ),
    collect=CollectStage(steps=30_000_000, envs=64),
    rewards=RewardStage(learning_rate=1e-5, batch_size=1000, epochs=20, val_fraction=0.1),
    codegen=CodegenStage(samples=3, max_repair_rounds=3, max_tokens=8192, temperature=0.2, repair_temperature=0.2),
    train=TrainStage(samples=4_000_000_000, actors=24, envs=20, preset="paper", batch_size=4096, learning_rate=1e-4),
    skill_eval=SkillEvalStage(steps=3_000_000, envs=64),
    task_eval=TaskEvalStage(episodes=1000, max_steps=10_000, workers=16),
)

_SMALL = Profile(
    name="small",
    summary="One workstation for a few hours: enough training for the skills' returns to move.",
    deviations=(
        "100k collected env steps (a few thousand pairs, a few hundred distinct messages) instead of 661k pairs",
        "reward models at lr 3e-4, batch 128, 10 epochs (the paper: 1e-5, 1,000, 20) - the small set needs larger steps",
        "2M policy samples with the small network at batch 1,024 and lr 3e-4 (the paper: 4e9 samples, "
        "the 2.9M-parameter network, batch 4,096, lr 1e-4)",
        "one code sample per prompt, repair rounds at temperature 0.7 (the paper: three code seeds, 0.2 throughout)",
        "20 episodes per task capped at 5,000 steps (the paper: sliding mean over 1,000 episodes of up to 10,000)",
    ),
    collect=CollectStage(steps=100_000, envs=8),
    rewards=RewardStage(learning_rate=3e-4, batch_size=128, epochs=10),
    codegen=CodegenStage(samples=1, max_repair_rounds=3, max_tokens=1024),
    train=TrainStage(samples=2_000_000, actors=1, envs=16, preset="small", batch_size=1024, learning_rate=3e-4),
    skill_eval=SkillEvalStage(steps=200_000, envs=16),
    task_eval=TaskEvalStage(episodes=20, max_steps=5_000, workers=2),
)

_TINY = Profile(
    name="tiny",
    summary="What `make run` runs: every stage of the method, end to end, in minutes on 2 CPU cores.",
    deviations=(
        "12k collected env steps (about 150 pairs, 750 labels) instead of 661k pairs, so that annotation by the "
        "embedded LLM fits the 45-minute budget of `make run` on 2 cores",
        "reward models at lr 3e-4, batch 128, 10 epochs (the paper: 1e-5, 1,000, 20)",
        "150k policy samples with the small network at batch 1,024 and lr 3e-4: far too few for skills to be "
        "learned (the paper trains 4e9); the task table shows that the machinery runs, not what the method reaches",
        "one code sample per prompt with at most one repair round (at temperature 0.7) and 768 tokens (the paper: three seeds, "
        "three rounds, 10,000 tokens)",
        "2 episodes per task capped at 1,000 steps: intervals are wide and counts near zero",
    ),
    collect=CollectStage(steps=12_000, envs=8),
    rewards=RewardStage(learning_rate=3e-4, batch_size=128, epochs=10),
    codegen=CodegenStage(samples=1, max_repair_rounds=1, max_tokens=768),
    train=TrainStage(samples=150_000, actors=1, envs=16, preset="small", batch_size=1024, learning_rate=3e-4),
    skill_eval=SkillEvalStage(steps=20_000, envs=16),
    task_eval=TaskEvalStage(episodes=2, max_steps=1_000, workers=1),
)

PROFILES: dict[str, Profile] = {p.name: p for p in (_TINY, _SMALL, _PAPER)}


def get_profile(name: str, overrides: Sequence[str] = ()) -> Profile:
    """A profile, with ``stage.field=value`` overrides applied and validated (each named in ``deviations``)."""
    try:
        base = PROFILES[name]
    except KeyError:
        raise ValueError(f"profile: unknown {name!r}; choose from {', '.join(PROFILES)}") from None
    if not overrides:
        return base
    data = base.model_dump()
    for item in overrides:
        key, sep, value = item.partition("=")
        stage, dot, field = key.strip().partition(".")
        if not sep or not dot or stage not in data or not isinstance(data[stage], dict):
            raise ValueError(f"--set {item!r}: expected stage.field=value with stage one of "
                             f"{', '.join(k for k, v in data.items() if isinstance(v, dict))}")
        if field not in data[stage]:
            raise ValueError(f"--set {item!r}: {stage} has no field {field!r}; fields: {', '.join(data[stage])}")
        data[stage][field] = yaml.safe_load(value) if value.strip() else value
    data["deviations"] = (*base.deviations, *(f"overridden on the command line: {o}" for o in overrides))
    try:
        return Profile.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ValueError(f"--set: {'.'.join(str(p) for p in first['loc'])}: {first['msg']}") from None


__all__ = ["PROFILES", "Profile", "get_profile"]
