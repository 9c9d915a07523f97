"""Training hyperparameters (method.md 7), validated, with the method's values as defaults.

This is the one schema for APPO training; the learner service's config embeds it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from maestromotif.models.policy import PRESETS


class TrainingFields(BaseModel):
    """The fields alone, so that a service config can inherit them flat (one schema)."""

    preset: str = Field("auto", description="policy network preset: paper, small, or auto (paper on GPU)")
    device: str = Field("auto", description="auto (CUDA when present), cpu or cuda")
    rollout: int = Field(32, ge=2, le=1024, description="trajectory length T (= recurrence)")
    batch_size: int = Field(4096, ge=2, le=1 << 20, description="samples per SGD step")
    num_epochs: int = Field(1, ge=1, le=16)
    learning_rate: float = Field(1e-4, gt=0, le=1.0)
    adam_eps: float = Field(1e-6, gt=0, le=1.0)
    max_grad_norm: float = Field(4.0, ge=0)
    gamma: float = Field(0.99, gt=0, le=1.0)
    ppo_clip_ratio: float = Field(0.1, gt=0, le=1.0)
    ppo_clip_value: float = Field(1.0, gt=0)
    value_loss_coeff: float = Field(0.5, ge=0)
    entropy_coeff: float = Field(0.003, ge=0)
    max_policy_lag: int = Field(10_000, ge=1, description="samples older than this many SGD steps are masked")
    extrinsic_weight: float = Field(0.0, ge=0, description="alpha_ext; 0 in skill training")
    extrinsic_scale: float = Field(0.1, ge=0, description="env reward x this, clipped to +-extrinsic_clip")
    extrinsic_clip: float = Field(10.0, gt=0)
    seed: int = Field(0, ge=0, le=2**31 - 1)
    keep_checkpoints: int = Field(5, ge=1, le=1000)

    def training_settings(self) -> "TrainingSettings":
        return TrainingSettings(**{name: getattr(self, name) for name in TrainingFields.model_fields})

    @model_validator(mode="after")
    def _check_training(self) -> "TrainingFields":
        if self.preset != "auto" and self.preset not in PRESETS:
            raise ValueError(f"preset: unknown value {self.preset!r}; expected auto or one of {sorted(PRESETS)}")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ValueError(f"device: {self.device!r} is not auto, cpu or cuda[:N]")
        if self.batch_size % self.rollout != 0:
            raise ValueError(f"batch_size: {self.batch_size} is not a multiple of rollout {self.rollout}")
        return self

class TrainingSettings(TrainingFields):
    """APPO / V-trace settings with the method's values as defaults (see sf2.build_sf2_config)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @property
    def trajectories_per_batch(self) -> int:
        return self.batch_size // self.rollout

    def resolved_preset(self) -> str:
        if self.preset != "auto":
            return self.preset
        return "paper" if self.resolved_device().startswith("cuda") else "small"

    def resolved_device(self) -> str:
        import torch

        if self.device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"device: {self.device!r} requested but CUDA is not available")
        return self.device

    def config_hash(self) -> str:
        """Short hash of the settings that change what is learned (written into checkpoints)."""
        payload = json.dumps(self.model_dump(exclude={"keep_checkpoints", "device"}), sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


Preset = Literal["auto", "paper", "small"]
