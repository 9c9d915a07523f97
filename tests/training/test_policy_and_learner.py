"""Policy network, rollout assembly and the SF2 learner driver (no gRPC)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from maestromotif.models.policy import PRESETS, count_parameters, get_preset
from maestromotif.training.acting import act
from maestromotif.training.settings import TrainingSettings
from maestromotif.training.sf2 import LearnerDriver, load_policy_for_inference, rnn_size_of
from maestromotif.training.trajectories import RolloutBuffer, StepObservation, Trajectories, build_batch

torch.set_num_threads(1)


def _obs(rng: np.random.Generator, n: int, done_p: float = 0.0) -> StepObservation:
    stats = rng.normal(size=(n, 35)).astype(np.float32)
    skills = rng.integers(0, 5, n).astype(np.uint8)
    stats[:, 30:] = 0
    stats[np.arange(n), 30 + skills] = 1
    return StepObservation(
        tty_chars=rng.integers(32, 128, (n, 12, 12), dtype=np.uint8),
        tty_colors=rng.integers(0, 16, (n, 12, 12), dtype=np.uint8),
        messages=rng.integers(0, 128, (n, 256), dtype=np.uint8),
        stats=stats,
        skills=skills,
        message_counts=rng.integers(1, 4, n).astype(np.float32),
        stat_changes=np.zeros((n, 5), np.float32),
        rewards=np.zeros(n, np.float32),
        dones=rng.random(n) < done_p,
        time_outs=np.zeros(n, bool),
    )


def test_paper_preset_has_the_methods_size_and_small_keeps_inputs_outputs(tmp_path) -> None:
    drivers = {}
    for preset in ("paper", "small"):
        drivers[preset] = LearnerDriver(TrainingSettings(preset=preset, device="cpu", batch_size=64), tmp_path, preset)
    paper = count_parameters(drivers["paper"].actor_critic)
    # method.md 7: about 2.92M (encoder 803 -> GRU 512, heads 1 + 28)
    assert paper == 2_920_445
    assert get_preset("paper").encoder_out == 803
    small = count_parameters(drivers["small"].actor_critic)
    assert small < paper / 5
    rng = np.random.default_rng(0)
    obs = _obs(rng, 3)
    for preset, d in drivers.items():
        rnn = torch.zeros(3, rnn_size_of(d.actor_critic))
        step, new_rnn = act(d.actor_critic, obs.policy_obs("cpu"), rnn, 0)
        assert step.action_logits.shape == (3, 28)
        assert step.actions.shape == (3,) and np.all((0 <= step.actions) & (step.actions < 28))
        assert new_rnn.shape == (3, PRESETS[preset].core)
    with pytest.raises(ValueError, match="preset"):
        TrainingSettings(preset="huge")


def test_rollout_buffer_emits_only_complete_trajectories() -> None:
    rng = np.random.default_rng(1)
    buf = RolloutBuffer(num_envs=2, rollout=4, rnn_size=3)
    emitted: list[Trajectories] = []
    observations = [_obs(rng, 2) for _ in range(10)]
    for i, o in enumerate(observations):
        o.rewards[:] = i  # reward of the action taken at step i-1
        out = buf.add_observation(o, np.full((2, 3), i, np.float32))
        if out is not None:
            emitted.append(out)
        from maestromotif.training.trajectories import PolicyStep

        buf.add_policy_step(
            PolicyStep(np.array([i % 28, 1]), np.zeros((2, 28), np.float32), np.zeros(2, np.float32), np.zeros(2, np.float32), 7)
        )
    # 10 observations -> steps 0..8 have outcomes -> two full trajectories of 4 (obs 0..4 and 4..8)
    assert len(emitted) == 2
    first, second = emitted
    assert first.tty_chars.shape == (2, 5, 12, 12) and first.actions.shape == (2, 4)
    np.testing.assert_array_equal(first.tty_chars[:, 4], observations[4].tty_chars)
    np.testing.assert_array_equal(second.tty_chars[:, 0], observations[4].tty_chars)
    np.testing.assert_array_equal(first.env_rewards[0], [1, 2, 3, 4])  # outcome of action t arrives with obs t+1
    np.testing.assert_array_equal(first.rnn_states[0, :, 0], [0, 1, 2, 3, 4])
    np.testing.assert_array_equal(first.actions[0], [0, 1, 2, 3])
    skills, messages, _, counts = first.reward_inputs()
    np.testing.assert_array_equal(skills.reshape(2, 4), np.stack([o.skills for o in observations[:4]], 1))
    np.testing.assert_array_equal(messages.reshape(2, 4, 256)[:, 2], observations[2].messages)
    with pytest.raises(RuntimeError):
        buf.add_policy_step(
            PolicyStep(np.zeros(2), np.zeros((2, 28), np.float32), np.zeros(2, np.float32), np.zeros(2, np.float32), 0)
        )


def _trajectories(driver: LearnerDriver, rng: np.random.Generator, n_envs: int) -> Trajectories:
    rollout = driver.settings.rollout
    buf = RolloutBuffer(n_envs, rollout, rnn_size_of(driver.actor_critic))
    rnn = torch.zeros(n_envs, rnn_size_of(driver.actor_critic))
    for _ in range(rollout + 1):
        o = _obs(rng, n_envs, done_p=0.05)
        rnn = rnn * torch.from_numpy(~o.dones)[:, None].float()
        out = buf.add_observation(o, rnn.numpy())
        if out is not None:
            out.rewards = (out.skills == 1).astype(np.float32)  # a learnable signal
            return out
        step, rnn = act(driver.actor_critic, o.policy_obs("cpu"), rnn, driver.policy_version)
        buf.add_policy_step(step)
    raise AssertionError("no trajectory emitted")


def test_training_step_is_finite_and_checkpoint_round_trip_gives_identical_actions(tmp_path) -> None:
    settings = TrainingSettings(preset="small", device="cpu", batch_size=8 * 32)
    driver = LearnerDriver(settings, tmp_path, "exp")
    rng = np.random.default_rng(2)
    for _ in range(2):
        stats = driver.train(build_batch(_trajectories(driver, rng, 8), "cpu"))
        assert stats is not None
        for v in stats.values():
            assert np.isfinite(v)
    assert driver.policy_version == 2 and driver.samples_trained == 512
    path = driver.save({"env_steps": 1234})
    model, info = load_policy_for_inference(path, "cpu")
    assert info["preset"] == "small" and info["policy_version"] == 2
    obs = _obs(rng, 5).policy_obs("cpu")
    rnn = torch.randn(5, rnn_size_of(model))
    a, _ = act(driver.actor_critic, obs, rnn, 2, deterministic=True)
    b, _ = act(model, obs, rnn, 2, deterministic=True)
    np.testing.assert_array_equal(a.actions, b.actions)
    np.testing.assert_allclose(a.action_logits, b.action_logits, rtol=0, atol=1e-6)
    torch.manual_seed(5)
    s1, _ = act(driver.actor_critic, obs, rnn, 2)
    torch.manual_seed(5)
    s2, _ = act(model, obs, rnn, 2)
    np.testing.assert_array_equal(s1.actions, s2.actions)

    # a new driver on the same folder resumes: step counters, optimizer and our counters
    resumed = LearnerDriver(settings, tmp_path, "exp")
    assert resumed.policy_version == 2 and resumed.samples_trained == 512
    assert resumed.resumed_counters == {"env_steps": 1234}
    assert resumed.learner.optimizer.state_dict()["state"]  # Adam moments came back
    with pytest.raises(ValueError, match="preset"):
        LearnerDriver(TrainingSettings(preset="paper", device="cpu", batch_size=256), tmp_path, "exp")


def test_learner_changes_parameters_and_learns_from_a_learnable_signal(tmp_path) -> None:
    """Rewards that can be learnt: one step moves the weights; with reward only for one action the
    policy comes to prefer that action; then, with a reward the policy cannot change (0.1 whenever
    the skill is 1), the critic learns it and the value loss falls."""
    torch.manual_seed(0)
    target, envs = 5, 4
    driver = LearnerDriver(TrainingSettings(preset="small", device="cpu", batch_size=envs * 32, learning_rate=3e-3),
                           tmp_path, "exp")
    rng = np.random.default_rng(7)
    probe = _obs(np.random.default_rng(8), 64).policy_obs("cpu")
    probe_rnn = torch.zeros(64, rnn_size_of(driver.actor_critic))

    def p_target() -> float:
        step, _ = act(driver.actor_critic, probe, probe_rnn, driver.policy_version, deterministic=True)
        return float(torch.softmax(torch.from_numpy(step.action_logits), -1)[:, target].mean())

    def train(reward: str) -> dict[str, float]:
        out = _trajectories(driver, rng, envs)
        out.rewards = ((out.actions == target) if reward == "action" else 0.1 * (out.skills == 1)).astype(np.float32)
        stats = driver.train(build_batch(out, "cpu"))
        assert stats is not None and all(np.isfinite(v) for v in stats.values())
        return stats

    before = {name: p.detach().clone() for name, p in driver.actor_critic.named_parameters()}
    p0 = p_target()
    train("action")
    changed = {name for name, p in driver.actor_critic.named_parameters() if not torch.equal(p.detach(), before[name])}
    for part in ("action_parameterization", "critic_linear", "core", "encoder"):
        assert any(part in name for name in changed), (part, sorted(changed))
    for _ in range(3):
        train("action")
    p1 = p_target()
    assert p1 > 3 * p0, (p0, p1)  # the rewarded action became much more likely

    # SF2 reports loss summaries only when its summary clock says so (every 2 s early on): the test
    # winds that clock back before each step, so that every step reports and nothing depends on speed
    value_losses: list[float] = []
    for _ in range(10):
        driver.learner.last_summary_time = 0
        stats = train("skill")
        assert "value_loss" in stats, sorted(stats)
        value_losses.append(stats["value_loss"])
    assert len(value_losses) >= 2 and value_losses[-1] < 0.5 * value_losses[0], value_losses
