"""The skill-conditioned policy network of method.md section 7, for sample-factory 2.

One network acts for all five skills; the only conditioning is the skill one-hot that
sits inside the stats vector ([30..34]). It reads the *compact* observation that actors
send (12x12 tty crop, message bytes, normalized stats) and renders the crop into the
72x72 RGB image on its own device inside ``forward``, so actors never ship images.

Sample-factory 2 builds the rest: its GRU core (``rnn_size``), identity decoder, value
head (Linear core->1) and policy head (Linear core->28). We only register the encoder,
so SF2's own APPO code trains exactly this network.

Presets share one definition:
- ``paper``: the method's sizes (about 2.92M parameters), the default on GPU;
- ``small``: narrower encoders and core, same inputs and outputs, for CPU-only machines.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor, nn

# The message block is the reward model's char-CNN (method.md 7: "char-CNN as in section 6").
from maestromotif.rewards.model import CharCNN

# Shapes of the compact observation come from the env layer (one definition).
from maestromotif.env.compact import CROP_SIZE, MESSAGE_LENGTH, STATS_LENGTH  # noqa: E402
from maestromotif.env.render import IMAGE_SIZE, CropRenderer  # noqa: E402

from maestromotif.env.actions import NUM_ACTIONS  # noqa: E402

# Keys of the policy's observation dict (a subset of the actor's compact observation).
OBS_TTY_CHARS = "tty_chars"
OBS_TTY_COLORS = "tty_colors"
OBS_MESSAGE = "messages"
OBS_STATS = "stats"
POLICY_OBS_KEYS = (OBS_TTY_CHARS, OBS_TTY_COLORS, OBS_MESSAGE, OBS_STATS)

@dataclass(frozen=True)
class PolicyPreset:
    """Sizes of one network variant; inputs and outputs are the same for all presets."""

    name: str
    conv_channels: tuple[int, int, int]  # image encoder: k8s4, k4s2, k3s2
    image_out: int  # Linear after the convolutions
    stats_hidden: int  # width of the 3-layer stats MLP
    message_embed: int  # char-CNN embedding width
    message_channels: int  # char-CNN convolution width
    message_out: int  # char-CNN output width
    core: int  # GRU hidden size

    @property
    def encoder_out(self) -> int:
        # the raw stats vector is concatenated to the MLP's output (method.md 7: 128 + 35 = 163)
        return self.image_out + self.stats_hidden + STATS_LENGTH + self.message_out


PRESETS: dict[str, PolicyPreset] = {
    "paper": PolicyPreset("paper", (32, 64, 128), 512, 128, 32, 64, 128, 512),
    # Sized for 2 CPU cores (~12x fewer multiply-adds than paper): the char-CNN and the image
    # encoder were ~90% of paper's compute, so they shrink most.
    "small": PolicyPreset("small", (8, 16, 16), 128, 64, 8, 16, 64, 128),
}


def get_preset(name: str) -> PolicyPreset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"policy preset: unknown value {name!r}; expected one of {sorted(PRESETS)}") from None


def default_preset_name() -> str:
    """``paper`` on GPU, ``small`` on CPU-only machines."""
    return "paper" if torch.cuda.is_available() else "small"


def policy_observation_space() -> gym.spaces.Dict:
    """The gymnasium Dict space SF2 needs; integer inputs stay uint8 (no normalizer touches them)."""
    return gym.spaces.Dict(
        {
            OBS_TTY_CHARS: gym.spaces.Box(0, 255, (CROP_SIZE, CROP_SIZE), np.uint8),
            OBS_TTY_COLORS: gym.spaces.Box(0, 255, (CROP_SIZE, CROP_SIZE), np.uint8),
            OBS_MESSAGE: gym.spaces.Box(0, 255, (MESSAGE_LENGTH,), np.uint8),
            OBS_STATS: gym.spaces.Box(-np.inf, np.inf, (STATS_LENGTH,), np.float32),
        }
    )


def policy_action_space() -> gym.spaces.Discrete:
    return gym.spaces.Discrete(NUM_ACTIONS)


class ImageEncoder(nn.Module):
    """obs/255 -> Conv k8s4, k4s2, k3s2 with ELU (72 -> 17 -> 7 -> 3) -> Linear, ELU."""

    def __init__(self, channels: tuple[int, int, int], out: int) -> None:
        super().__init__()
        c1, c2, c3 = channels
        self.convs = nn.Sequential(
            nn.Conv2d(3, c1, 8, stride=4),
            nn.ELU(),
            nn.Conv2d(c1, c2, 4, stride=2),
            nn.ELU(),
            nn.Conv2d(c2, c3, 3, stride=2),
            nn.ELU(),
        )
        self.fc = nn.Sequential(nn.Linear(c3 * 3 * 3, out), nn.ELU())

    def forward(self, image_u8: Tensor) -> Tensor:
        x = image_u8.float() * (1.0 / 255.0)
        return self.fc(self.convs(x).flatten(1))


class StatsEncoder(nn.Module):
    """3x (Linear, ELU) over the normalized stats, plus the raw vector itself."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(STATS_LENGTH, hidden),
            nn.ELU(),
            nn.Linear(hidden, hidden),
            nn.ELU(),
            nn.Linear(hidden, hidden),
            nn.ELU(),
        )

    def forward(self, stats: Tensor) -> Tensor:
        return torch.cat([self.mlp(stats), stats], dim=1)


try:  # SF2 is a hard dependency of training; keep the pure-torch parts usable without it.
    from sample_factory.model.encoder import Encoder as _SFEncoder
except ImportError:  # pragma: no cover - SF2 is pinned in requirements
    _SFEncoder = nn.Module  # type: ignore[misc,assignment]


class PolicyEncoder(_SFEncoder):  # type: ignore[misc,valid-type]
    """SF2 encoder: renders the crop and encodes image, stats and message into one vector."""

    def __init__(self, cfg: Mapping | object, preset: PolicyPreset) -> None:
        super().__init__(cfg)
        self.preset = preset
        # the env layer's glyph table (a non-persistent buffer): moves with the model to its device
        self.renderer = CropRenderer()
        self.image = ImageEncoder(preset.conv_channels, preset.image_out)
        self.stats = StatsEncoder(preset.stats_hidden)
        self.message = CharCNN(
            embed_dim=preset.message_embed, channels=preset.message_channels, out_features=preset.message_out
        )

    def get_out_size(self) -> int:
        return self.preset.encoder_out

    def type_for_input_tensor(self, input_tensor_name: str) -> torch.dtype:
        # chars, colours and message bytes are ids, not magnitudes: keep them integer
        if input_tensor_name == OBS_STATS:
            return torch.float32
        return torch.uint8

    def forward(self, obs: Mapping[str, Tensor]) -> Tensor:
        image = self.renderer(obs[OBS_TTY_CHARS], obs[OBS_TTY_COLORS])
        return torch.cat(
            [self.image(image), self.stats(obs[OBS_STATS].float()), self.message(obs[OBS_MESSAGE])], dim=1
        )


def make_policy_encoder(cfg, obs_space) -> PolicyEncoder:  # noqa: ANN001 - SF2's factory signature
    """SF2 encoder factory; the preset comes from ``cfg.policy_preset``."""
    from maestromotif.training.sf2 import patch_sf2_vtrace_summaries

    patch_sf2_vtrace_summaries()  # runs in whichever process builds the model (SF2 spawns its learner)
    return PolicyEncoder(cfg, get_preset(getattr(cfg, "policy_preset", "paper")))


def register_policy_model() -> None:
    """Make SF2's model factory build our encoder (idempotent; call before creating a Learner)."""
    from sample_factory.algo.utils.context import global_model_factory

    global_model_factory().register_encoder_factory(make_policy_encoder)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
