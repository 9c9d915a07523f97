"""Acting with SF2's actor-critic: one batched forward for many environments."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from maestromotif.training.trajectories import PolicyStep, StepObservation


def act(
    model: Any,
    obs: dict[str, torch.Tensor],
    rnn_states: torch.Tensor,
    policy_version: int,
    *,
    deterministic: bool = False,
) -> tuple[PolicyStep, torch.Tensor]:
    """Sample actions for a batch; returns numpy outputs and the new recurrent states.

    Runs under ``no_grad`` (not ``inference_mode``: tensors made there cannot enter
    training later). The caller holds the weight lock if training runs concurrently.
    """
    from sample_factory.algo.utils.rl_utils import prepare_and_normalize_obs

    with torch.no_grad():
        normalized = prepare_and_normalize_obs(model, dict(obs))
        # Not model(...)/forward_tail: SF2 keeps the last action distribution on the model
        # object, and the training thread reads it back; acting must leave it untouched.
        head = model.forward_head(normalized)
        core, new_rnn = model.forward_core(head, rnn_states)
        decoded = model.decoder(core)
        action_logits, _ = model.action_parameterization(decoded)
        result = {"action_logits": action_logits, "values": model.critic_linear(decoded), "new_rnn_states": new_rnn}
        logits = result["action_logits"]
        log_softmax = torch.log_softmax(logits, dim=-1)
        if deterministic:
            actions = logits.argmax(dim=-1)
        else:
            actions = torch.multinomial(log_softmax.exp(), 1).squeeze(1)
        log_probs = log_softmax.gather(1, actions[:, None]).squeeze(1)
        n = rnn_states.shape[0]
        step = PolicyStep(
            actions=actions.reshape(n).to("cpu", torch.int64).numpy(),
            action_logits=logits.reshape(n, -1).float().cpu().numpy(),
            log_prob_actions=log_probs.reshape(n).float().cpu().numpy(),
            values=result["values"].reshape(n).float().cpu().numpy(),
            policy_version=int(policy_version),
        )
        return step, result["new_rnn_states"].reshape(n, -1)


def reset_done_states(rnn_states: torch.Tensor, dones: np.ndarray) -> torch.Tensor:
    """Zero the recurrent state of envs whose episode just ended (skill switches keep it)."""
    if dones.any():
        mask = torch.from_numpy(~dones.astype(bool)).to(rnn_states.device, rnn_states.dtype)
        rnn_states = rnn_states * mask[:, None]
    return rnn_states


def resolve_checkpoint(path: str | os.PathLike[str]) -> Path:
    """A checkpoint file, or an experiment folder standing for its latest checkpoint.

    Raises ValueError with the reason when there is none.
    """
    found = Path(path)
    if found.is_dir():
        files = sorted(found.glob("checkpoint_p0/checkpoint_*.pth"))
        if not files:
            raise ValueError(f"checkpoint: no checkpoint_p0/checkpoint_*.pth under {found}")
        return files[-1]
    if not found.is_file():
        raise ValueError(f"checkpoint: {found} does not exist")
    return found


class CheckpointPolicy:
    """A trained skill policy loaded from a learner checkpoint, acting for n envs in this process.

    Actions are sampled as in training; each env keeps its own recurrent state, reset when its
    episode ends. Raises ValueError for a missing or unreadable checkpoint.
    """

    def __init__(self, checkpoint: str | os.PathLike[str], num_envs: int, device: str = "cpu") -> None:
        from maestromotif.training.sf2 import load_policy_for_inference, rnn_size_of, zeros_rnn

        self.path = resolve_checkpoint(checkpoint)
        self.model, self.info = load_policy_for_inference(self.path, device=device)
        self.device = next(self.model.parameters()).device
        self.rnn = zeros_rnn(num_envs, rnn_size_of(self.model), self.device)

    def __call__(self, obs: dict[str, np.ndarray], dones: np.ndarray) -> np.ndarray:
        """Actions for the envs' compact observations; ``dones``: which episodes the last step ended."""
        self.rnn = reset_done_states(self.rnn, dones)
        step_obs = StepObservation.for_acting(obs, dones)
        step, self.rnn = act(self.model, step_obs.policy_obs(self.device), self.rnn, 0)
        return step.actions
