"""Trajectory assembly: per-actor rollout buffers and SF2 training batches.

An actor steps its ``n`` environments in lockstep, so one buffer per actor with a single
time index suffices. Sample ``t`` of a trajectory holds the observation *before* action
``t``, the policy outputs for it, and the outcome of that action (env reward, done), which
arrives with the next observation. A trajectory of length T needs T+1 observations (the
last one only bootstraps the value); it is emitted only when complete, so training never
sees a half-filled rollout, and a buffer dropped with its actor is simply discarded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from maestromotif.models.policy import (
    CROP_SIZE,
    MESSAGE_LENGTH,
    NUM_ACTIONS,
    OBS_MESSAGE,
    OBS_STATS,
    OBS_TTY_CHARS,
    OBS_TTY_COLORS,
    STATS_LENGTH,
)

STAT_CHANGE_LENGTH = 5

from maestromotif.skills.competence import NUM_SIGNALS


@dataclass
class StepObservation:
    """Compact observations of all n envs of one actor at one step (numpy, owned by the caller)."""

    tty_chars: np.ndarray  # uint8 [n, 12, 12]
    tty_colors: np.ndarray  # uint8 [n, 12, 12]
    messages: np.ndarray  # uint8 [n, 256]
    stats: np.ndarray  # float32 [n, 35]
    skills: np.ndarray  # uint8 [n]
    message_counts: np.ndarray  # float32 [n]
    stat_changes: np.ndarray  # float32 [n, 5]
    rewards: np.ndarray  # float32 [n], env reward of the previous action
    dones: np.ndarray  # bool [n], the previous action ended the episode
    time_outs: np.ndarray  # bool [n]
    # float32 [n, 4] competence signals of these observations (maestromotif.skills.competence), None if unknown
    competence: np.ndarray | None = None

    @classmethod
    def for_acting(cls, obs: dict[str, np.ndarray], dones: np.ndarray) -> StepObservation:
        """The envs' compact observations as the policy reads them outside training (no rewards)."""
        n = len(dones)
        return cls(
            tty_chars=obs["tty_chars"], tty_colors=obs["tty_colors"], messages=obs["messages"], stats=obs["stats"],
            skills=obs["skills"], message_counts=obs["message_counts"], stat_changes=obs["stat_changes"],
            rewards=np.zeros(n, np.float32), dones=dones.astype(bool), time_outs=np.zeros(n, bool),
        )

    @property
    def num_envs(self) -> int:
        return int(self.skills.shape[0])

    def policy_obs(self, device: torch.device | str) -> dict[str, torch.Tensor]:
        return {
            OBS_TTY_CHARS: torch.from_numpy(self.tty_chars).to(device),
            OBS_TTY_COLORS: torch.from_numpy(self.tty_colors).to(device),
            OBS_MESSAGE: torch.from_numpy(self.messages).to(device),
            OBS_STATS: torch.from_numpy(self.stats).to(device),
        }


@dataclass
class PolicyStep:
    """Policy outputs for n envs at one step (numpy)."""

    actions: np.ndarray  # int64 [n]
    action_logits: np.ndarray  # float32 [n, 28]
    log_prob_actions: np.ndarray  # float32 [n]
    values: np.ndarray  # float32 [n]
    policy_version: int


@dataclass
class Trajectories:
    """Complete trajectories of several envs (numpy; leading dim = trajectory)."""

    tty_chars: np.ndarray  # [k, T+1, 12, 12]
    tty_colors: np.ndarray
    messages: np.ndarray  # [k, T+1, 256]
    stats: np.ndarray  # [k, T+1, 35]
    rnn_states: np.ndarray  # [k, T+1, H]
    values: np.ndarray  # [k, T+1]
    actions: np.ndarray  # [k, T]
    action_logits: np.ndarray  # [k, T, 28]
    log_prob_actions: np.ndarray  # [k, T]
    policy_version: np.ndarray  # [k, T]
    env_rewards: np.ndarray  # [k, T]
    dones: np.ndarray  # [k, T]
    time_outs: np.ndarray  # [k, T]
    skills: np.ndarray  # [k, T] skill active when the action was taken (reward selection)
    message_counts: np.ndarray  # [k, T]
    stat_changes: np.ndarray  # [k, T, 5]
    rewards: np.ndarray | None = None  # [k, T] training reward, filled by the reward stage
    competence: np.ndarray | None = None  # [k, T, 4] competence signals of observation t (None: unknown)

    @property
    def count(self) -> int:
        return int(self.actions.shape[0])

    @property
    def length(self) -> int:
        return int(self.actions.shape[1])

    def reward_inputs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(skills [m], messages [m,256], stat_changes [m,5], message_counts [m]) for m = k*T samples.

        Sample t is scored from observation t (method.md 6 timing): the outcome of action
        t-1 under the skill active in observation t.
        """
        k, t = self.count, self.length
        return (
            self.skills.reshape(k * t),
            self.messages[:, :t].reshape(k * t, MESSAGE_LENGTH),
            self.stat_changes.reshape(k * t, STAT_CHANGE_LENGTH),
            self.message_counts.reshape(k * t),
        )

    def select(self, index: np.ndarray | slice) -> "Trajectories":
        fields = {name: getattr(self, name) for name in self.__dataclass_fields__}
        return Trajectories(**{n: (None if v is None else v[index]) for n, v in fields.items()})

    @staticmethod
    def concat(parts: list["Trajectories"]) -> "Trajectories":
        if not parts:
            raise ValueError("concat: no trajectories")
        out = {}
        for name in Trajectories.__dataclass_fields__:
            values = [getattr(p, name) for p in parts]
            out[name] = None if any(v is None for v in values) else np.concatenate(values, axis=0)
        return Trajectories(**out)


class RolloutBuffer:
    """Rollout buffer of one actor's n envs; emits complete T-step trajectories."""

    def __init__(self, num_envs: int, rollout: int, rnn_size: int) -> None:
        if num_envs < 1 or rollout < 1:
            raise ValueError("RolloutBuffer: num_envs and rollout must be >= 1")
        n, t1 = num_envs, rollout + 1
        self.num_envs, self.rollout, self.rnn_size = num_envs, rollout, rnn_size
        self.tty_chars = np.zeros((n, t1, CROP_SIZE, CROP_SIZE), np.uint8)
        self.tty_colors = np.zeros((n, t1, CROP_SIZE, CROP_SIZE), np.uint8)
        self.messages = np.zeros((n, t1, MESSAGE_LENGTH), np.uint8)
        self.stats = np.zeros((n, t1, STATS_LENGTH), np.float32)
        self.rnn_states = np.zeros((n, t1, rnn_size), np.float32)
        self.values = np.zeros((n, t1), np.float32)
        self.skills = np.zeros((n, t1), np.uint8)
        self.message_counts = np.ones((n, t1), np.float32)
        self.stat_changes = np.zeros((n, t1, STAT_CHANGE_LENGTH), np.float32)
        self.actions = np.zeros((n, rollout), np.int64)
        self.action_logits = np.zeros((n, rollout, NUM_ACTIONS), np.float32)
        self.log_prob_actions = np.zeros((n, rollout), np.float32)
        self.policy_version = np.zeros((n, rollout), np.int64)
        self.env_rewards = np.zeros((n, rollout), np.float32)
        self.dones = np.zeros((n, rollout), bool)
        self.time_outs = np.zeros((n, rollout), bool)
        self.competence = np.zeros((n, t1, NUM_SIGNALS), np.float32)
        self._competence_known = True  # every observation of this rollout carried signals
        self.t = 0  # index of the step whose observation was written last
        self._pending = False  # an action was chosen for step t and its outcome is awaited
        self._has_obs = False

    def add_observation(self, obs: StepObservation, rnn_states: np.ndarray) -> Trajectories | None:
        """Record the observation that follows the pending action; returns trajectories completed by it.

        ``rnn_states`` [n, H] is the recurrent state the policy will use for this observation
        (already zeroed where an episode just ended).
        """
        if obs.num_envs != self.num_envs:
            raise ValueError(f"num_envs: got {obs.num_envs}, buffer holds {self.num_envs}")
        done: Trajectories | None = None
        if self._pending:
            # the outcome of action t arrives with this observation
            self.env_rewards[:, self.t] = obs.rewards
            self.dones[:, self.t] = obs.dones
            self.time_outs[:, self.t] = obs.time_outs
            self.t += 1
            self._pending = False
            if self.t == self.rollout:
                self._write_obs(self.rollout, obs, rnn_states)
                done = self._emit()
                self.t = 0
        self._write_obs(self.t, obs, rnn_states)
        self._has_obs = True
        return done

    def add_policy_step(self, step: PolicyStep) -> None:
        if not self._has_obs or self._pending:
            raise RuntimeError("add_policy_step: needs exactly one observation before each policy step")
        t = self.t
        self.actions[:, t] = step.actions
        self.action_logits[:, t] = step.action_logits
        self.log_prob_actions[:, t] = step.log_prob_actions
        self.values[:, t] = step.values
        self.policy_version[:, t] = step.policy_version
        self._pending = True

    def _write_obs(self, t: int, obs: StepObservation, rnn_states: np.ndarray) -> None:
        self.tty_chars[:, t] = obs.tty_chars
        self.tty_colors[:, t] = obs.tty_colors
        self.messages[:, t] = obs.messages
        self.stats[:, t] = obs.stats
        self.skills[:, t] = obs.skills
        self.message_counts[:, t] = obs.message_counts
        self.stat_changes[:, t] = obs.stat_changes
        if obs.competence is None:
            self._competence_known = False
        else:
            self.competence[:, t] = obs.competence
        self.rnn_states[:, t] = rnn_states
        self.values[:, t] = 0.0  # the learner recomputes the bootstrap value

    def _emit(self) -> Trajectories:
        t = self.rollout
        competence = self.competence[:, :t].copy() if self._competence_known else None
        # observation t (= rollout) starts the next rollout: its signals decide whether that one is known
        self._competence_known = True
        return Trajectories(
            tty_chars=self.tty_chars.copy(),
            tty_colors=self.tty_colors.copy(),
            messages=self.messages.copy(),
            stats=self.stats.copy(),
            rnn_states=self.rnn_states.copy(),
            values=self.values.copy(),
            actions=self.actions.copy(),
            action_logits=self.action_logits.copy(),
            log_prob_actions=self.log_prob_actions.copy(),
            policy_version=self.policy_version.copy(),
            env_rewards=self.env_rewards.copy(),
            dones=self.dones.copy(),
            time_outs=self.time_outs.copy(),
            skills=self.skills[:, :t].copy(),
            message_counts=self.message_counts[:, :t].copy(),
            stat_changes=self.stat_changes[:, :t].copy(),
            competence=competence,
        )


def training_rewards(
    traj: Trajectories, intrinsic: np.ndarray, extrinsic_weight: float, extrinsic_scale: float, extrinsic_clip: float
) -> np.ndarray:
    """r_t = a_ext * clip(scale * env_reward_t, +-clip) + intrinsic_t (already alpha_llm-scaled)."""
    intrinsic = np.asarray(intrinsic, np.float32).reshape(traj.count, traj.length)
    if not np.all(np.isfinite(intrinsic)):
        raise ValueError("intrinsic rewards: non-finite values from the reward stage")
    rewards = intrinsic.copy()
    if extrinsic_weight:
        rewards += extrinsic_weight * np.clip(extrinsic_scale * traj.env_rewards, -extrinsic_clip, extrinsic_clip)
    return rewards


def build_batch(traj: Trajectories, device: torch.device | str, policy_id: int = 0):  # noqa: ANN201
    """SF2 TensorDict of N trajectories x T (obs, rnn_states, values, valids with T+1 steps)."""
    from sample_factory.algo.utils.tensor_dict import TensorDict

    if traj.rewards is None:
        raise ValueError("build_batch: trajectories have no training rewards yet")
    n, t = traj.count, traj.length

    def f(a: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a)).to(device=device, dtype=dtype).contiguous()

    batch = TensorDict()
    batch["obs"] = TensorDict()
    batch["obs"][OBS_TTY_CHARS] = f(traj.tty_chars, torch.uint8)
    batch["obs"][OBS_TTY_COLORS] = f(traj.tty_colors, torch.uint8)
    batch["obs"][OBS_MESSAGE] = f(traj.messages, torch.uint8)
    batch["obs"][OBS_STATS] = f(traj.stats, torch.float32)
    batch["rnn_states"] = f(traj.rnn_states, torch.float32)
    batch["values"] = f(traj.values, torch.float32)
    batch["valids"] = torch.ones((n, t + 1), dtype=torch.bool, device=device)
    batch["actions"] = f(traj.actions.reshape(n, t, 1), torch.float32)
    batch["action_logits"] = f(traj.action_logits, torch.float32)
    batch["log_prob_actions"] = f(traj.log_prob_actions, torch.float32)
    batch["policy_version"] = f(traj.policy_version, torch.float32)
    batch["rewards"] = f(traj.rewards, torch.float32)
    batch["dones"] = f(traj.dones, torch.bool)
    batch["time_outs"] = f(traj.time_outs, torch.bool)
    batch["policy_id"] = torch.full((n, t), policy_id, dtype=torch.int32, device=device)
    return batch
