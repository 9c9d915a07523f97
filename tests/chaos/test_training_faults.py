"""Faults in training (issue 15, item 2): kill -9, a reward outage, a corrupted checkpoint, a full disk.

Unmarked tests are fast (they run in ``make test``): the checkpoint store against truncated,
garbage and foreign files, half-written temp files and a real full disk (a tiny tmpfs), and
the engine holding back while a real reward service *process* is killed with SIGKILL.

Tests marked ``chaos`` (``make chaos``) run reward, learner and actors as real processes on
loopback (``maestromotif.kit.local.LocalProcesses``, as ``maestromotif up`` does) and kill -9
one of them during training, then start it again on the same port. What they assert comes from
the learner's own counters (GetStatus and /metrics), never from sleeps or timings:

- samples trained == trajectories trained x rollout (no rollout trained twice or half-filled),
  and trajectories trained <= trajectories accepted (scored);
- a restarted learner resumes from its newest checkpoint, counters continuing; every
  checkpoint file on disk loads (nothing half-written);
- while the reward service is gone, training holds back with a bounded backlog, says so in a
  metric and a log line, drops nothing as "reward failed", and continues when it returns.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from training_cluster import BATCH, ROLLOUT, Cluster, assert_accounting, free_port, loads, outcome, record, wait_for

from maestromotif.kit.local import LocalProcesses
from maestromotif.training.acting import act
from maestromotif.training.settings import TrainingSettings
from maestromotif.training.sf2 import (
    CORRUPT_SUFFIX,
    CheckpointWriteError,
    LearnerDriver,
    rnn_size_of,
)
from maestromotif.training.trajectories import RolloutBuffer, StepObservation, Trajectories, build_batch
from maestromotif.v1 import learner_pb2, learner_pb2_grpc

torch.set_num_threads(1)


# --- fast: the checkpoint store ---------------------------------------------------------------


def random_obs(rng: np.random.Generator, n: int, done_p: float = 0.02) -> StepObservation:
    """Observations of n envs as an actor would send them (random screens, one skill each)."""
    stats = rng.normal(size=(n, 35)).astype(np.float32)
    skills = rng.integers(0, 5, n).astype(np.uint8)
    stats[:, 30:] = 0
    stats[np.arange(n), 30 + skills] = 1
    return StepObservation(
        tty_chars=rng.integers(32, 128, (n, 12, 12), dtype=np.uint8),
        tty_colors=rng.integers(0, 16, (n, 12, 12), dtype=np.uint8),
        messages=rng.integers(0, 128, (n, 256), dtype=np.uint8),
        stats=stats, skills=skills, message_counts=rng.integers(1, 4, n).astype(np.float32),
        stat_changes=np.zeros((n, 5), np.float32), rewards=np.zeros(n, np.float32),
        dones=rng.random(n) < done_p, time_outs=np.zeros(n, bool),
    )


def _trajectories(driver: LearnerDriver, rng: np.random.Generator, n_envs: int) -> Trajectories:
    """One rollout of n_envs, acted by the driver's policy, rewards set (as the reward service would)."""
    buf = RolloutBuffer(n_envs, ROLLOUT, rnn_size_of(driver.actor_critic))
    rnn = torch.zeros(n_envs, rnn_size_of(driver.actor_critic))
    while True:
        o = random_obs(rng, n_envs)
        rnn = rnn * torch.from_numpy(~o.dones)[:, None].float()
        out = buf.add_observation(o, rnn.numpy())
        if out is not None:
            out.rewards = (out.skills == 1).astype(np.float32)
            return out
        step, rnn = act(driver.actor_critic, o.policy_obs("cpu"), rnn, driver.policy_version)
        buf.add_policy_step(step)


def _train_and_save(driver: LearnerDriver, rng: np.random.Generator, times: int) -> list[str]:
    paths = []
    for _ in range(times):
        driver.train(build_batch(_trajectories(driver, rng, BATCH // ROLLOUT), "cpu"))
        paths.append(driver.save({"env_steps": 1000 * driver.policy_version}))
    return paths


def _settings() -> TrainingSettings:
    return TrainingSettings(preset="small", device="cpu", batch_size=BATCH, rollout=ROLLOUT)


def test_corrupted_latest_checkpoints_are_named_set_aside_and_the_previous_good_one_is_used(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    driver = LearnerDriver(_settings(), tmp_path, "exp")
    v1, v2, v3, v4 = _train_and_save(driver, np.random.default_rng(0), 4)
    # three ways a file goes bad: truncated mid-write, overwritten with garbage, a foreign dict
    Path(v4).write_bytes(Path(v4).read_bytes()[: os.path.getsize(v4) // 3])
    Path(v3).write_bytes(os.urandom(4096))
    torch.save({"weights": torch.zeros(3)}, v2)
    with caplog.at_level(logging.ERROR, logger="maestromotif.training.sf2"):
        resumed = LearnerDriver(_settings(), tmp_path, "exp")
    # the previous good checkpoint: version, samples and our counters all from v1
    assert resumed.policy_version == 1 and resumed.samples_trained == BATCH
    assert resumed.resumed_counters == {"env_steps": 1000}
    errors = "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR)
    for bad in (v4, v3, v2):
        assert f"cannot load {bad}" in errors  # the error names each file
        assert not os.path.exists(bad) and os.path.exists(bad + CORRUPT_SUFFIX)
    assert resumed.unreadable_checkpoints == [v4, v3, v2]
    assert resumed.latest_checkpoint() == v1
    # training goes on from v1; the next checkpoint is the latest, and loads
    (v2b,) = _train_and_save(resumed, np.random.default_rng(1), 1)
    assert resumed.latest_checkpoint() == v2b and loads(v2b) and resumed.policy_version == 2

    # serve mode (read-only) skips an unreadable newest file too, naming it, and serves the previous
    from maestromotif.kit.testing import running
    from services.learner.server import SPEC as LEARNER

    Path(v2b).write_bytes(b"not a zip")
    with caplog.at_level(logging.ERROR, logger="maestromotif.learner"):
        with running(LEARNER, mode="serve", train_dir=str(tmp_path), experiment="exp") as served:
            stub = learner_pb2_grpc.LearnerStub(served.channel)
            st = stub.GetStatus(learner_pb2.GetStatusRequest(), timeout=10)
            assert st.mode == "serving" and st.policy_version == 1 and st.last_checkpoint == v1
    assert any(f"cannot load {v2b}" in r.getMessage() for r in caplog.records)
    assert os.path.exists(v2b)  # serving does not rename files

    # no readable checkpoint at all: a clear error naming the files, not a silent fresh start
    Path(v1).write_bytes(b"")
    with pytest.raises(ValueError, match="no readable checkpoint") as err:
        LearnerDriver(_settings(), tmp_path, "exp")
    assert v1 in str(err.value) and v2b in str(err.value)


def test_half_written_temp_files_of_a_killed_write_are_ignored_and_removed(tmp_path: Path) -> None:
    driver = LearnerDriver(_settings(), tmp_path, "exp")
    (v1,) = _train_and_save(driver, np.random.default_rng(0), 1)
    folder = Path(v1).parent
    # what a learner killed mid-save leaves: our temp name, and SF2 2.1.1's own (which sorts last)
    (folder / f".{Path(v1).name}.abc123.tmp").write_bytes(b"PK\x03\x04 half")
    (folder / "checkpoint_temp").write_bytes(b"PK\x03\x04 half")
    resumed = LearnerDriver(_settings(), tmp_path, "exp")
    assert resumed.policy_version == 1 and resumed.latest_checkpoint() == v1
    assert sorted(p.name for p in folder.iterdir()) == [Path(v1).name, "manifest.json"]


@contextlib.contextmanager
def tiny_tmpfs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"a full disk is simulated with a tmpfs, which needs root: {done.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_full_disk_while_checkpointing_keeps_the_previous_checkpoint(tmp_path: Path) -> None:
    with tiny_tmpfs(tmp_path / "disk", "8m") as disk:
        driver = LearnerDriver(_settings(), disk, "exp")
        (v1,) = _train_and_save(driver, np.random.default_rng(0), 1)
        size = os.path.getsize(v1)
        # fill the disk, leaving less room than one checkpoint
        free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
        filler = disk / "filler"
        filler.write_bytes(b"\0" * max(0, free - size // 2))
        with pytest.raises(CheckpointWriteError, match="cannot write .*checkpoint_000000002.*No space left") as err:
            _train_and_save(driver, np.random.default_rng(1), 1)
        assert v1 in str(err.value)  # says which checkpoint is kept
        folder = Path(v1).parent
        assert sorted(p.name for p in folder.iterdir()) == [Path(v1).name, "manifest.json"]  # no temp left
        assert loads(v1) and driver.latest_checkpoint() == v1
        # training itself was not disturbed, and once there is room the next checkpoint is written
        assert driver.policy_version == 2
        filler.unlink()
        (v3,) = _train_and_save(driver, np.random.default_rng(2), 1)
        assert loads(v3) and driver.latest_checkpoint() == v3
        resumed = LearnerDriver(_settings(), disk, "exp")
        assert resumed.policy_version == 3


# --- the engine holds back while the reward service is gone ----------------------------------


def _recorder() -> Any:
    from maestromotif.training.engine import EngineObserver

    class Recorder(EngineObserver):
        def __init__(self) -> None:
            self.events: list[tuple[bool, int]] = []
            self.dropped: dict[str, int] = {}

        def on_reward_outage(self, active: bool, waiting: int, duration_s: float) -> None:
            self.events.append((active, waiting))

        def on_dropped(self, trajectories: int, reason: str) -> None:
            self.dropped[reason] = self.dropped.get(reason, 0) + trajectories

    return Recorder()


def test_engine_holds_back_while_rewards_are_unavailable_and_never_trains_without_them(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Unit test of the engine's hold-back: its score_fn raises RewardUnavailable while "down".

    (The same with a real reward process killed by SIGKILL is the chaos test below.)
    """
    from maestromotif.training.engine import RewardUnavailable, TrainingEngine

    up = threading.Event()
    up.set()
    scored_while_down: list[int] = []

    def score(skills: np.ndarray, messages: np.ndarray, stat_changes: np.ndarray, counts: np.ndarray) -> np.ndarray:
        if not up.is_set():
            scored_while_down.append(len(skills))
            raise RewardUnavailable("UNAVAILABLE: connection refused")
        return (skills == 1).astype(np.float32)

    driver = LearnerDriver(_settings(), tmp_path, "exp")
    observer = _recorder()
    engine = TrainingEngine(
        driver.actor_critic, "cpu", rnn_size_of(driver.actor_critic), driver=driver, score_fn=score,
        rollout=ROLLOUT, batch_size=BATCH, observer=observer, lock=driver.lock, max_backlog_batches=1.0,
        reward_retry_initial_s=0.05, reward_retry_max_s=0.2,
    )
    n_envs = 8
    actor = engine.add_actor(n_envs, "test")
    engine.claim(actor)
    stop = threading.Event()
    steps = [0]
    failures: list[BaseException] = []
    # an actor's step waits this long for actions, unless the engine holds back; generous, because on a
    # loaded 2-core CI machine an ordinary step behind a training step has taken more than 1 s
    STEP_TIMEOUT_S = 5.0

    def actor_loop() -> None:
        rng = np.random.default_rng(3)
        try:
            while not stop.is_set():
                engine.step(actor, random_obs(rng, n_envs), timeout_s=STEP_TIMEOUT_S)
                steps[0] += 1
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    thread = threading.Thread(target=actor_loop, daemon=True)
    thread.start()
    try:
        wait_for(lambda: engine.policy_version >= 1, 60, "a training step")
        with caplog.at_level(logging.INFO, logger="maestromotif.training.engine"):
            up.clear()
            down_at = time.monotonic()
            wait_for(lambda: engine.holding_back and engine.backlog > engine.backlog_limit
                     and engine.trajectories_accepted - engine.trajectories_trained < BATCH // ROLLOUT, 60,
                     "the backlog at its bound and training through what was scored")
            accepted, trained, steps_then = engine.trajectories_accepted, engine.trajectories_trained, steps[0]
            # stay down for several step timeouts, with more failed retries meanwhile
            tries = len(scored_while_down)
            wait_for(lambda: len(scored_while_down) >= tries + 5 and time.monotonic() - down_at > 2 * STEP_TIMEOUT_S,
                     30, "an outage longer than the actor's step timeout")
            assert steps[0] <= steps_then + 1  # the actor is paused, and its step did not time out
            assert engine.backlog <= engine.backlog_limit + n_envs
            assert (engine.trajectories_accepted, engine.trajectories_trained) == (accepted, trained)
            assert observer.dropped.get("reward", 0) == 0 and not failures
            version = engine.policy_version
            up.set()
            wait_for(lambda: engine.policy_version >= version + 2, 60, "training to continue")
        messages = [r.getMessage() for r in caplog.records]
        assert any("holding back training" in m and "bounded at" in m for m in messages)
        assert any("reachable again" in m for m in messages)
        assert [active for active, _ in observer.events] == [True, False]
        assert observer.dropped.get("reward", 0) == 0 and not failures
        assert engine.samples_trained_here == engine.trajectories_trained * ROLLOUT
    finally:
        stop.set()
        engine.close(save=False)
        thread.join(timeout=30)


@pytest.mark.chaos
def test_reward_service_killed_engine_holds_back_bounded_and_continues(tmp_path: Path,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    """The learner's engine with a real RewardClient; the reward service is a real process, killed -9."""
    from maestromotif.kit.client import ClientOptions, make_channel
    from maestromotif.training.engine import TrainingEngine
    from services.learner.server import RewardClient

    procs = LocalProcesses(grace_s=5.0, log_dir=tmp_path / "logs", env={**os.environ, "OMP_NUM_THREADS": "1"})
    port, mport = free_port(), free_port()
    reward_sets = ["init_random=true", "threads=1"]
    with procs:
        reward = procs.start("reward", port, mport, reward_sets, timeout_s=180)
        driver = LearnerDriver(_settings(), tmp_path, "exp")
        channel = make_channel(f"127.0.0.1:{port}", ClientOptions(deadline_s=10.0, max_backoff_s=1.0))
        observer = _recorder()
        engine = TrainingEngine(
            driver.actor_critic, "cpu", rnn_size_of(driver.actor_critic), driver=driver,
            score_fn=RewardClient(channel, 10.0), rollout=ROLLOUT, batch_size=BATCH, observer=observer,
            lock=driver.lock, max_backlog_batches=1.0, reward_retry_initial_s=0.2, reward_retry_max_s=1.0,
        )
        n_envs = 8
        actor = engine.add_actor(n_envs, "test")
        engine.claim(actor)
        stop = threading.Event()
        steps = [0]
        failures: list[BaseException] = []

        def act() -> None:  # one actor stepping as fast as the engine answers
            rng = np.random.default_rng(3)
            try:
                while not stop.is_set():
                    engine.step(actor, random_obs(rng, n_envs), timeout_s=20.0)
                    steps[0] += 1
            except BaseException as exc:  # noqa: BLE001 - reported below
                failures.append(exc)

        thread = threading.Thread(target=act, daemon=True)
        thread.start()
        try:
            wait_for(lambda: engine.policy_version >= 2, 120, "two training steps with rewards")
            with caplog.at_level(logging.INFO, logger="maestromotif.training.engine"):
                os.kill(reward.proc.pid, signal.SIGKILL)
                reward.proc.wait(timeout=30)
                wait_for(lambda: engine.holding_back, 60, "the engine to notice the outage and hold back")
                # training stops once what was scored is used up, and the actor is paused:
                # the backlog never passes its bound (+ one step of one actor's envs)
                # (what was scored before the kill is trained on, all but less than one batch)
                wait_for(lambda: engine.backlog > engine.backlog_limit
                         and engine.trajectories_accepted - engine.trajectories_trained < BATCH // ROLLOUT, 90,
                         "the backlog at its bound and training through what was scored")
                accepted, steps_then = engine.trajectories_accepted, steps[0]
                time.sleep(2.0)  # let a few retries fail (the assertions below are on counters, not time)
                assert steps[0] <= steps_then + 1  # the actor is paused (at most its step in flight lands)
                held = engine.backlog
                assert held <= engine.backlog_limit + n_envs
                assert engine.trajectories_accepted == accepted  # nothing new was scored: no reward, no training
                assert observer.dropped.get("reward", 0) == 0  # not dropped, not zero-filled: held back
                assert not failures  # the actor waits; its stream is not failed
                version_during = engine.policy_version

                procs.start("reward", port, mport, reward_sets, timeout_s=180)
                wait_for(lambda: not engine.holding_back, 60, "the engine to see the reward service back")
                wait_for(lambda: engine.policy_version >= version_during + 2, 120, "training to continue")
            messages = [r.getMessage() for r in caplog.records]
            assert any("holding back training" in m and "bounded at" in m for m in messages)
            assert any("reachable again" in m for m in messages)
            assert [active for active, _ in observer.events] == [True, False]
            assert observer.dropped.get("reward", 0) == 0 and not failures
            assert engine.samples_trained_here == engine.trajectories_trained * ROLLOUT
            assert engine.trajectories_trained <= engine.trajectories_accepted
        finally:
            stop.set()
            engine.close(save=False)
            thread.join(timeout=30)
            channel.close()


# --- chaos: services as real processes, kill -9 during training --------------------------------


@pytest.mark.chaos
@pytest.mark.timeout(900)
def test_actor_service_killed_and_restarted_reconnects_and_training_continues(tmp_path: Path) -> None:
    import psutil

    with Cluster(tmp_path, actor_processes=2, envs_per_process=4) as c:
        for name in ("reward", "learner", "actors"):
            c.start(name)
        wait_for(lambda: c.status().policy_version >= 3 and c.status().connected_actors == 2, 300,
                 "training with 2 connected actor workers")
        rounds = []
        for round_ in range(2):
            workers = [p.pid for p in psutil.Process(c.current["actors"].proc.pid).children()
                       if "spawn_main" in " ".join(p.cmdline())]  # the worker processes
            assert len(workers) == 2
            before = c.status()
            time.sleep(random.uniform(0, 3))  # a random moment during training (not an assertion)
            c.kill9("actors")
            # its workers notice the service is gone and stop (no orphans playing on)
            wait_for(lambda: not any(psutil.pid_exists(w) and psutil.Process(w).status() != "zombie"
                                     for w in workers), 60, "the killed service's workers to exit")
            wait_for(lambda: c.status().connected_actors == 0, 60, "the learner to drop the dead streams")
            c.start("actors")
            wait_for(lambda: c.status().connected_actors == 2, 120, f"the restarted actors (round {round_})")
            wait_for(lambda: c.status().policy_version >= before.policy_version + 3, 240, "training to continue")
            after = c.status()
            assert after.env_steps > before.env_steps and after.samples_trained > before.samples_trained
            assert after.samples_trained == after.policy_version * BATCH
            assert_accounting(c.metrics())
            rounds.append({"killed_at_version": before.policy_version, "workers_killed": len(workers),
                           "version_after": after.policy_version})
        m = c.metrics()
        assert m["maestromotif_learner_dropped_trajectories_total{reason=reward}"] == 0
        assert m["maestromotif_learner_dropped_trajectories_total{reason=malformed}"] == 0
        # the killed workers' rollouts in progress were counted as lost (a kill lands at step 0 of
        # a rollout for all four workers with probability (1/32)^4)
        assert m["maestromotif_learner_dropped_trajectories_total{reason=partial_rollout}"] > 0
        record("actor_service_kill9", {"rounds": rounds, "learner": outcome(m)})


def kill_during_checkpoint_write(c: Cluster, timeout_s: float = 120.0) -> bool:
    """Poll the checkpoint folder every millisecond; SIGKILL the learner as soon as a temp file appears."""
    folder = c.train_dir / "policy" / "checkpoint_p0"
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if any(n.startswith(".checkpoint_") and n.endswith(".tmp") for n in os.listdir(folder)):
            c.kill9("learner")
            return True
        time.sleep(0.001)
    return False


@pytest.mark.chaos
@pytest.mark.timeout(900)
def test_learner_killed_at_random_moments_resumes_from_its_newest_checkpoint(tmp_path: Path) -> None:
    # a checkpoint every batch, so that some kills land during a write
    with Cluster(tmp_path, checkpoint_every=BATCH) as c:
        for name in ("reward", "learner", "actors"):
            c.start(name)
        previous_version = 0
        rounds = []
        for round_ in range(4):
            wait_for(lambda: c.status().policy_version >= previous_version + 3, 300, f"training (round {round_})")
            before = c.status()
            if round_ < 3:
                time.sleep(random.uniform(0, 2))  # a random moment
                before = c.status()
                c.kill9("learner")
            else:
                # the last kill lands while a checkpoint is being written (its temp file exists)
                assert kill_during_checkpoint_write(c), "no checkpoint write seen to kill it during"
            # nothing half-written: every finished checkpoint file loads (a temp file may remain)
            found = c.checkpoints()
            assert found and all(loads(p) for p in found)
            leftover = [p for p in Path(found[-1]).parent.iterdir() if p.name.endswith((".tmp", "_temp"))]
            newest = found[-1]
            version = int(Path(newest).name.split("_")[1])
            assert version >= int(Path(before.last_checkpoint).name.split("_")[1])
            c.start("learner")
            resumed = c.status()
            assert resumed.policy_version == version and resumed.samples_trained == version * BATCH
            assert resumed.env_steps >= version * BATCH  # the env-step counter continues, not from 0
            assert resumed.last_checkpoint == newest
            folder = Path(newest).parent
            assert not [p for p in folder.iterdir() if p.name.endswith(".tmp") or p.name.endswith("_temp")]
            wait_for(lambda: c.status().connected_actors == 1, 120, "the actor reconnecting by itself")
            wait_for(lambda: c.status().policy_version >= version + 2, 240, "training after the restart")
            assert_accounting(c.metrics())
            previous_version = c.status().policy_version
            rounds.append({"kill": "random moment" if round_ < 3 else "during a checkpoint write",
                           "version_at_kill": before.policy_version, "resumed_version": version,
                           "steps_lost": before.policy_version - version, "checkpoint_files_loaded": len(found),
                           "temp_files_after_kill": len(leftover), "env_steps_resumed": resumed.env_steps})
        record("learner_kill9", {"rounds": rounds, "learner_last_process": outcome(c.metrics())})


@pytest.mark.chaos
@pytest.mark.timeout(900)
def test_reward_service_killed_learner_holds_back_bounded_and_never_trains_without_rewards(tmp_path: Path) -> None:
    with Cluster(tmp_path) as c:
        for name in ("reward", "learner", "actors"):
            c.start(name)
        wait_for(lambda: c.status().policy_version >= 3, 300, "training")
        m0 = c.metrics()
        limit = m0["maestromotif_learner_backlog_limit_trajectories"]
        assert m0["maestromotif_learner_reward_holding_back"] == 0
        c.kill9("reward")
        wait_for(lambda: c.metrics()["maestromotif_learner_reward_holding_back"] == 1, 120,
                 "the learner's holding-back metric")
        # training stops when what was scored is used up; nothing more is accepted without rewards
        wait_for(lambda: (lambda m: m["maestromotif_learner_backlog_trajectories"] > limit
                          and m["maestromotif_learner_trajectories_accepted_total"]
                          - m["maestromotif_learner_trajectories_trained_total"] < BATCH // ROLLOUT)(c.metrics()), 120,
                 "the backlog at its bound and training through what was scored (all but < one batch)")
        held = c.metrics()
        samples: list[dict[str, float]] = []
        for _ in range(6):  # several scrapes during the outage
            samples.append(c.metrics())
            time.sleep(1.0)
        for m in samples:
            assert m["maestromotif_learner_reward_holding_back"] == 1
            assert m["maestromotif_learner_backlog_trajectories"] <= limit + 8  # + one step of one actor
            assert m["maestromotif_learner_trajectories_accepted_total"] == held[
                "maestromotif_learner_trajectories_accepted_total"]
            assert m["maestromotif_learner_dropped_trajectories_total{reason=reward}"] == 0
            assert_accounting(m)
        assert c.status().connected_actors == 1  # the actor waits on its open stream
        assert "holding back training" in c.log("learner")

        c.start("reward")
        wait_for(lambda: c.metrics()["maestromotif_learner_reward_holding_back"] == 0, 120,
                 "the learner to see the reward service back")
        version = c.status().policy_version
        wait_for(lambda: c.status().policy_version >= version + 2, 240, "training to continue")
        m = c.metrics()
        assert m["maestromotif_learner_reward_outages_total"] == 1
        assert m["maestromotif_learner_reward_outage_seconds_total"] > 0
        assert m["maestromotif_learner_dropped_trajectories_total{reason=reward}"] == 0
        assert_accounting(m)
        assert "reachable again" in c.log("learner")
        record("reward_kill9", {"backlog_limit": limit,
                                "backlog_during_outage_max": max(x["maestromotif_learner_backlog_trajectories"]
                                                                 for x in samples),
                                "accepted_during_outage": samples[-1]["maestromotif_learner_trajectories_accepted_total"]
                                - held["maestromotif_learner_trajectories_accepted_total"],
                                "learner": outcome(m)})
