"""Real distributed training through gRPC on loopback: reward + learner + actor processes.

One scenario (services are slow to start on 2 cores, so it is one test):
train a few thousand steps; add an actor service and kill one actor process mid-run while
the learner keeps training; stop the learner without a final checkpoint (as a crash would)
and start it again on the same port: it resumes from its periodic checkpoint, its counters
continue and the actors reconnect by themselves.
"""

from __future__ import annotations

import math
import os
import signal
import time
from typing import Callable

import grpc
import numpy as np
import pytest

from maestromotif.kit.testing import running
from maestromotif.v1 import common_pb2, learner_pb2, learner_pb2_grpc
from services.actors.server import SPEC as ACTORS
from services.learner.server import SPEC as LEARNER
from services.learner.server import decode_step
from services.reward.server import SPEC as REWARD

pytestmark = pytest.mark.timeout(300)


def _wait(cond: Callable[[], bool], timeout_s: float, what: str) -> None:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def _status(channel: grpc.Channel) -> learner_pb2.LearnerStatus:
    return learner_pb2_grpc.LearnerStub(channel).GetStatus(learner_pb2.GetStatusRequest(), timeout=10)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_distributed_training_survives_actor_churn_and_learner_restart(tmp_path) -> None:
    port = _free_port()
    learner_cfg = dict(
        port=port,
        train_dir=str(tmp_path),
        preset="small",
        batch_size=512,
        checkpoint_every_samples=2048,
        checkpoint_on_exit=False,  # the restart below must resume from a periodic checkpoint
        torch_threads=1,
    )
    with running(REWARD, init_random=True, threads=1) as reward:
        learner_cfg["reward_address"] = reward.address
        learner = running(LEARNER, **learner_cfg)
        ln = learner.__enter__()
        try:
            addr = ln.address
            with running(ACTORS, learner_address=addr, processes=1, envs_per_process=8, seed=1) as actors_a:
                # 1. real training: versions advance, losses finite
                _wait(lambda: _status(ln.channel).policy_version >= 4, 150, "4 training steps")
                s = _status(ln.channel)
                assert s.mode == "training" and s.samples_trained >= 4 * 512
                assert s.connected_actors == 1 and s.connected_envs == 8
                assert s.losses and all(math.isfinite(v) for v in s.losses.values())
                assert s.env_steps >= s.samples_trained
                # per-skill returns rest on counted runs (every game starts with the discoverer)
                _wait(lambda: _status(ln.channel).skill_runs["discoverer"] > 0, 60, "a finished discoverer run")
                s = _status(ln.channel)
                assert set(s.skill_runs) <= set(s.skill_returns) and math.isfinite(s.skill_returns["discoverer"])

                # 2. another actor service joins; one of its processes is then killed
                with running(ACTORS, learner_address=addr, processes=2, envs_per_process=4, seed=2) as actors_b:
                    _wait(lambda: _status(ln.channel).connected_actors == 3, 90, "3 connected actors")
                    v_before = _status(ln.channel).policy_version
                    victim = actors_b.service.ctx.actors.pids()[0]
                    os.kill(victim, signal.SIGKILL)
                    _wait(lambda: _status(ln.channel).connected_actors <= 2, 30, "the killed actor to be dropped")
                    _wait(lambda: _status(ln.channel).policy_version >= v_before + 3, 120, "training after the kill")
                    # the pool restarts its dead worker, which registers again
                    _wait(lambda: _status(ln.channel).connected_actors == 3, 90, "the restarted actor")

                _wait(lambda: bool(_status(ln.channel).last_checkpoint), 60, "a periodic checkpoint")
                before = _status(ln.channel)
                learner.__exit__(None, None, None)  # no checkpoint on exit: like a crash
                learner = None
                # restart on the same port: it resumes and the running actors reconnect to it
                learner = running(LEARNER, **learner_cfg)
                ln = learner.__enter__()
                resumed = _status(ln.channel)
                # a periodic checkpoint may have landed between the status call and the stop: resume
                # is from the newest file in the folder, which is at least the one seen before
                newest = sorted((tmp_path / "policy" / "checkpoint_p0").glob("checkpoint_*.pth"))[-1]
                ckpt_version = int(newest.name.split("_")[1])
                assert ckpt_version >= int(os.path.basename(before.last_checkpoint).split("_")[1]) > 0
                assert resumed.policy_version == ckpt_version
                assert resumed.samples_trained == ckpt_version * 512
                assert resumed.env_steps > 0  # the env-step counter continues too
                assert resumed.last_checkpoint == str(newest)
                _wait(lambda: _status(ln.channel).connected_actors >= 1, 60, "actors reconnecting")
                _wait(lambda: _status(ln.channel).policy_version >= ckpt_version + 2, 120, "training after restart")
                assert actors_a.service.ctx.actors.env_steps > 0
        finally:
            if learner is not None:
                learner.__exit__(None, None, None)


def test_learner_rejects_malformed_steps_and_unknown_actors(tmp_path) -> None:
    with running(REWARD, init_random=True, threads=1) as reward:
        with running(LEARNER, reward_address=reward.address, train_dir=str(tmp_path), preset="small", batch_size=256) as ln:
            stub = learner_pb2_grpc.LearnerStub(ln.channel)
            with pytest.raises(grpc.RpcError) as err:
                stub.RegisterActor(learner_pb2.RegisterActorRequest(actor_name="x", num_envs=0), timeout=10)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "num_envs" in err.value.details()
            reg = stub.RegisterActor(learner_pb2.RegisterActorRequest(actor_name="x", num_envs=2), timeout=10)
            assert reg.spec.crop_size == 12 and reg.spec.num_actions == 28
            bad = learner_pb2.EnvStepBatch(actor_id=reg.actor_id, num_envs=2, tty_chars=b"\x00" * 10)
            with pytest.raises(grpc.RpcError) as err:
                list(stub.Act(iter([bad]), timeout=10))
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "tty_chars" in err.value.details()
            with pytest.raises(grpc.RpcError) as err:
                list(stub.Act(iter([learner_pb2.EnvStepBatch(actor_id="nope", num_envs=2)]), timeout=10))
            assert err.value.code() == grpc.StatusCode.NOT_FOUND
            # still serving, and the decoder names fields for NaN / out-of-range values
            assert stub.GetStatus(learner_pb2.GetStatusRequest(), timeout=10).mode == "training"
    n = 1
    msg = learner_pb2.EnvStepBatch(
        num_envs=n,
        tty_chars=bytes(144),
        tty_colors=bytes(144),
        messages=bytes(256),
        stats=np.full(35, np.nan, "<f4").tobytes(),
        skills=bytes([0]),
        message_counts=np.ones(1, "<f4").tobytes(),
        stat_changes=bytes(20),
    )
    with pytest.raises(ValueError, match="stats: non-finite"):
        decode_step(msg, n)
    msg.stats = np.zeros(35, "<f4").tobytes()
    msg.skills = bytes([7])
    with pytest.raises(ValueError, match="skills"):
        decode_step(msg, n)


def test_serve_mode_acts_from_a_checkpoint_without_training(tmp_path) -> None:
    import torch

    from maestromotif.training.settings import TrainingSettings
    from maestromotif.training.sf2 import LearnerDriver

    torch.set_num_threads(1)
    driver = LearnerDriver(TrainingSettings(preset="small", device="cpu", batch_size=256), tmp_path, "served")
    path = driver.save({"env_steps": 0})
    with running(LEARNER, mode="serve", checkpoint=path) as ln:
        stub = learner_pb2_grpc.LearnerStub(ln.channel)
        assert stub.GetStatus(learner_pb2.GetStatusRequest(), timeout=10).mode == "serving"
        info = stub.GetServerInfo(common_pb2.GetServerInfoRequest(), timeout=10)
        assert info.details["preset"] == "small" and info.details["mode"] == "serve"
        reg = stub.RegisterActor(learner_pb2.RegisterActorRequest(actor_name="eval", num_envs=3), timeout=10)
        rng = np.random.default_rng(0)
        stats = np.zeros((3, 35), "<f4")
        stats[:, 30] = 1
        steps = [
            learner_pb2.EnvStepBatch(
                actor_id=reg.actor_id, sequence=i, num_envs=3,
                tty_chars=rng.integers(32, 127, 432, dtype=np.uint8).tobytes(),
                tty_colors=rng.integers(0, 16, 432, dtype=np.uint8).tobytes(),
                messages=bytes(768), stats=stats.tobytes(), skills=bytes(3),
                message_counts=np.ones(3, "<f4").tobytes(), stat_changes=bytes(60),
            )
            for i in range(4)
        ]
        replies = list(stub.Act(iter(steps), timeout=30))
        assert [r.sequence for r in replies] == [0, 1, 2, 3]
        for r in replies:
            actions = np.frombuffer(r.actions, np.uint8)
            assert actions.shape == (3,) and np.all(actions < 28)
            assert r.policy_version == 0
        assert stub.GetStatus(learner_pb2.GetStatusRequest(), timeout=10).samples_trained == 0
