"""The skill reward network (method.md 6), shared by training and serving.

One :class:`RewardNet` scores one skill: a character-level CNN over the current
message plus a small MLP over the stat change, joined by a two-layer trunk and a
scalar head (356,993 parameters). :class:`RewardEnsemble` holds the five skill
models and scores a batch with all of them (one forward pass per skill).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

MESSAGE_LENGTH = 256
"""Bytes per message; each byte is a character id (< 256), 0 is padding."""
STAT_CHANGE_DIM = 5
"""clip(change in [depth, gold, HP, XP level, hunger], -1, 1); only depth is used."""
NUM_PARAMETERS = 356_993
"""Trainable parameters of one RewardNet, per method.md 6."""


class CharCNN(nn.Module):
    """Character-level CNN over a 256-byte message -> 128 features.

    Embedding(256, 32, pad 0); Conv 32->64 k7, pool 3; Conv 64->64 k7, pool 3;
    4x Conv 64->64 k3; pool 3; the length goes 256->250->83->77->25->17->5, so
    the flattened size is 64*5 = 320 -> Linear 128. Also the message block of the
    policy network (method.md 7), hence its own class.
    """

    out_features = 128

    def __init__(self, embed_dim: int = 32, channels: int = 64, out_features: int = 128) -> None:
        # The defaults are the method's sizes; the policy's ``small`` preset narrows them.
        super().__init__()
        self.out_features = out_features
        self.embedding = nn.Embedding(256, embed_dim, padding_idx=0)
        layers: list[nn.Module] = [
            nn.Conv1d(embed_dim, channels, kernel_size=7),
            nn.ReLU(),
            nn.MaxPool1d(3),
            nn.Conv1d(channels, channels, kernel_size=7),
            nn.ReLU(),
            nn.MaxPool1d(3),
        ]
        for _ in range(4):
            layers += [nn.Conv1d(channels, channels, kernel_size=3), nn.ReLU()]
        layers.append(nn.MaxPool1d(3))
        self.convs = nn.Sequential(*layers)
        self.fc = nn.Sequential(nn.Linear(channels * 5, out_features), nn.ReLU())

    def forward(self, messages: torch.Tensor) -> torch.Tensor:
        """messages: integer [B, 256] (uint8 or long) -> float [B, 128]."""
        x = self.embedding(messages.long()).transpose(1, 2)  # [B, 32, 256]: channels first for Conv1d
        x = self.convs(x)
        return self.fc(x.flatten(1))


class RewardNet(nn.Module):
    """Reward model of one skill: (message, stat change) -> scalar reward."""

    def __init__(self) -> None:
        super().__init__()
        self.stats_mlp = nn.Sequential(
            nn.Linear(STAT_CHANGE_DIM, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU()
        )
        self.message_cnn = CharCNN()
        self.trunk = nn.Sequential(nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 512))
        self.head = nn.Sequential(nn.ReLU(), nn.Linear(512, 1))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Orthogonal weights and zero bias on Linear layers; Conv1d/Embedding keep torch defaults."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.orthogonal_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, messages: torch.Tensor, stat_changes: torch.Tensor) -> torch.Tensor:
        """messages: int [B, 256]; stat_changes: float [B, 5] -> rewards [B]."""
        stats = only_depth_change(stat_changes.to(self.head[1].weight.dtype))
        features = torch.cat([self.stats_mlp(stats), self.message_cnn(messages)], dim=1)
        return self.head(self.trunk(features)).squeeze(1)


def only_depth_change(stat_changes: torch.Tensor) -> torch.Tensor:
    """Zero every stat change but depth's (method.md 5.1: only Δdepth is kept).

    Done inside the model so that training, serving and caching can never
    disagree on which inputs matter.
    """
    out = torch.zeros_like(stat_changes)
    out[:, 0] = stat_changes[:, 0]
    return out


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())  # frozen (serving) models count too


class RewardEnsemble(nn.Module):
    """The five skill reward models; scores a batch with all of them.

    One forward pass per skill over the whole batch (never per sample), so the
    cost is five batched passes whatever the mix of skills in the batch.
    """

    def __init__(self, models: Sequence[RewardNet]) -> None:
        super().__init__()
        if len(models) == 0:
            raise ValueError("RewardEnsemble needs at least one model")
        self.models = nn.ModuleList(models)

    @property
    def num_skills(self) -> int:
        return len(self.models)

    def forward(self, messages: torch.Tensor, stat_changes: torch.Tensor) -> torch.Tensor:
        """messages int [B, 256], stat_changes float [B, 5] -> raw rewards float [B, num_skills]."""
        return torch.stack([model(messages, stat_changes) for model in self.models], dim=1)


def pick_device(requested: str | None = None) -> torch.device:
    """The device to run on: the requested one, else CUDA when present, else CPU."""
    if requested and requested != "auto":
        device = torch.device(requested)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device: {requested!r} requested but CUDA is not available")
        return device
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
