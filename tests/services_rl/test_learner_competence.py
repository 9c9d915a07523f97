"""Competence on the learner's side: act-stream field, rollout buffer, run accounting, metrics."""

from __future__ import annotations

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from maestromotif.skills.competence import NUM_SIGNALS
from maestromotif.training.engine import TrainingEngine
from maestromotif.training.skill_stats import SkillRunTracker
from maestromotif.training.trajectories import PolicyStep, RolloutBuffer, StepObservation
from maestromotif.v1 import learner_pb2
from services.actors.worker import _encode
from services.learner.server import _Metrics, decode_step


def _obs(n: int, competence: np.ndarray | None, dones: bool = False) -> StepObservation:
    return StepObservation(
        tty_chars=np.zeros((n, 12, 12), np.uint8), tty_colors=np.zeros((n, 12, 12), np.uint8),
        messages=np.zeros((n, 256), np.uint8), stats=np.zeros((n, 35), np.float32),
        skills=np.full(n, 1, np.uint8), message_counts=np.ones(n, np.float32),
        stat_changes=np.zeros((n, 5), np.float32), rewards=np.zeros(n, np.float32),
        dones=np.full(n, dones), time_outs=np.zeros(n, bool), competence=competence)


def test_act_stream_carries_competence_and_the_learner_validates_it() -> None:
    n = 2
    obs = {"tty_chars": np.zeros((n, 12, 12), np.uint8), "tty_colors": np.zeros((n, 12, 12), np.uint8),
           "messages": np.zeros((n, 256), np.uint8), "stats": np.zeros((n, 35), np.float32),
           "skills": np.zeros(n, np.uint8), "message_counts": np.ones(n, np.float32),
           "stat_changes": np.zeros((n, 5), np.float32)}
    signals = np.array([[1, 3, 0, 0], [4, 0, 1, 1]], np.float32)
    msg = _encode(obs, np.zeros(n), np.zeros(n), np.zeros(n), "a", 0, [], signals)
    np.testing.assert_array_equal(decode_step(msg, n).competence, signals)
    msg.competence = b""  # an older actor: no competence, never zeros passed off as signals
    assert decode_step(msg, n).competence is None
    msg.competence = bytes(12)
    with pytest.raises(ValueError, match="competence: 12 bytes"):
        decode_step(msg, n)
    msg.competence = np.full((n, NUM_SIGNALS), -1.0, "<f4").tobytes()
    with pytest.raises(ValueError, match="competence: values"):
        decode_step(msg, n)


def _fill(buffer: RolloutBuffer, n: int, rows: list[np.ndarray | None]) -> list:
    out = []
    for competence in rows:
        traj = buffer.add_observation(_obs(n, competence), np.zeros((n, 4), np.float32))
        if traj is not None:
            out.append(traj)
        buffer.add_policy_step(PolicyStep(np.zeros(n, np.int64), np.zeros((n, 28), np.float32),
                                          np.zeros(n, np.float32), np.zeros(n, np.float32), 0))
    return out


def test_rollouts_keep_the_signals_of_each_observation() -> None:
    n = 1
    rows = [np.array([[d, d, 0, 0]], np.float32) for d in (1, 1, 2, 2, 3)]
    (traj,) = _fill(RolloutBuffer(n, 4, 4), n, rows)
    assert traj.competence.shape == (1, 4, NUM_SIGNALS)
    np.testing.assert_array_equal(traj.competence[0, :, 0], [1, 1, 2, 2])
    (unknown,) = _fill(RolloutBuffer(n, 4, 4), n, [rows[0], None, rows[2], rows[3], rows[4]])
    assert unknown.competence is None


def test_engine_counts_competent_runs_and_metrics_use_the_fixed_names() -> None:
    registry = CollectorRegistry()
    metrics = _Metrics(registry)
    engine = TrainingEngine.__new__(TrainingEngine)  # only the run accounting, no threads or model
    import collections
    import threading

    engine.skill_returns = [collections.deque(maxlen=200) for _ in range(5)]
    engine.skill_runs = np.zeros(5, np.int64)
    engine.skill_competence = [collections.deque(maxlen=200) for _ in range(5)]
    engine.skill_competent_runs = np.zeros(5, np.int64)
    engine._stats_lock = threading.Lock()
    engine.observer = metrics

    class Actor:
        runs = SkillRunTracker(1)

    # descender (skill 1) runs: 1 -> 2 (competent), then 2 -> 2 after a switch to the discoverer and back
    skills = np.array([[1, 1, 1, 0, 0, 1, 1, 0]], np.uint8)
    depth = np.array([[1, 1, 2, 2, 2, 2, 2, 2]], np.float32)
    competence = np.zeros((1, 8, NUM_SIGNALS), np.float32)
    competence[..., 0] = depth

    class Traj:
        length = 8

    traj = Traj()
    traj.skills, traj.dones, traj.competence = skills, np.zeros((1, 8), bool), competence
    engine._record_skill_runs(Actor(), traj, np.ones((1, 8), np.float32))
    means, competent = engine.competence_stats()
    assert means[1] == 0.5 and competent[1] == 1  # two descender runs closed, one went deeper
    assert engine.skill_stats()[1][1] == 2
    text = generate_latest(registry).decode()
    assert 'maestromotif_learner_skill_competence{skill="descender"} 0.5' in text
    assert 'maestromotif_learner_skill_competent_runs_total{skill="descender"} 1.0' in text
    assert 'maestromotif_learner_skill_competent_runs_total{skill="discoverer"} 0.0' in text
    status_fields = learner_pb2.LearnerStatus.DESCRIPTOR.fields_by_name
    assert "skill_competence" in status_fields and "skill_competent_runs" in status_fields
