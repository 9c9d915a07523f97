"""Training throughput: our distributed system vs sample-factory 2's own runner, same run.

Both train the same network (preset) with the same batch size and rollout on the same
env wrapper: our ``VecEnv`` (vectorized NetHack with the reference skill controllers)
stepping ``BENCH_TRAINING_ENVS / PROCESSES`` games in each of ``PROCESSES`` processes
(default 16 games, 2 processes). Ours: one actor worker process per VecEnv; SF2: one
rollout worker per VecEnv, the VecEnv handed to SF2 as one vectorized (multi-agent) env,
sampled with SF2's batched sampler (``BENCH_TRAINING_SF2_SAMPLING=non_batched`` for its
per-agent sampler) and one split (no double buffering on either side).
Neither side writes checkpoints while it is measured.

Ratio = our trained samples/s divided by SF2's. Ours: the learner's own counter
(``GetStatus.samples_trained``, polled every 0.1 s). SF2: its own counter (the runner's
``env_steps``, which its learner reports after each training step), read by an
``AlgoObserver`` at each training step; the observer ends the run when the window is over.
On both sides the window opens on the second training step and closes on a training step, once
it is at least ``BENCH_TRAINING_SECONDS`` long and holds at least ``BENCH_TRAINING_MIN_BATCHES``
batches, so both count whole batches over the time they took.

Where the time goes is printed for both sides, as seconds spent per second of wall time
(so 2.0 = two processes busy all the time): ours from the services' Prometheus histograms
over the measured window; SF2 from its components' own profiles (``Timing``) over its whole
run (warm-up included), divided by the run's length.
Work that only our side does: the intrinsic reward (five reward models in the reward
service) for every sample; SF2's env returns the game's own reward.

    python -m benchmarks training          # both presets, 40 s windows
    BENCH_TRAINING_SECONDS=20 BENCH_TRAINING_PRESETS=small python -m benchmarks training
    BENCH_TRAINING_SCALING=1 ...           # also env steps/s of the actor service, 1 vs 2 processes

Result: benchmarks/results/training.json.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from typing import Any

import numpy as np

SECONDS = float(os.environ.get("BENCH_TRAINING_SECONDS", "40"))
PRESETS = os.environ.get("BENCH_TRAINING_PRESETS", "small,paper").split(",")
ENVS = int(os.environ.get("BENCH_TRAINING_ENVS", "16"))
PROCESSES = int(os.environ.get("BENCH_TRAINING_PROCESSES", "2"))
BATCH = int(os.environ.get("BENCH_TRAINING_BATCH", "1024"))
SF2_SAMPLING = os.environ.get("BENCH_TRAINING_SF2_SAMPLING", "batched")
GAMES_PER_PROCESS = max(1, ENVS // PROCESSES)
# Each side's window runs from a training step to a training step (both counters move once per
# batch), lasts at least SECONDS and holds at least MIN_BATCHES batches: with the paper network
# on 2 cores a batch takes about 30 s, and a fixed-time window would count 1 batch or 2 by phase.
MIN_BATCHES = int(os.environ.get("BENCH_TRAINING_MIN_BATCHES", "4"))
POLL_S = 0.1


def _make_sf2_env(full_env_name: str, cfg: Any, env_config: Any = None, render_mode: Any = None) -> Any:
    import gymnasium as gym

    from maestromotif.env.vec import VecEnv
    from maestromotif.models.policy import policy_action_space, policy_observation_space
    from maestromotif.skills.controller import controller_factory

    worker = getattr(env_config, "worker_index", 0) if env_config is not None else 0
    batched = bool(getattr(cfg, "batched_sampling", False))
    keys = ("tty_chars", "tty_colors", "messages", "stats")

    class Games(gym.Env):
        """Our actors' wrapper (VecEnv + controllers, auto-reset), as one vectorized env for SF2."""

        is_multiagent = True

        def __init__(self) -> None:
            seed = 1000 * worker
            self.num_agents = GAMES_PER_PROCESS
            self.vec = VecEnv([seed + i for i in range(self.num_agents)],
                              controller_factory=controller_factory("exploration", seed))
            self.observation_space = policy_observation_space()
            self.action_space = policy_action_space()
            self._infos = [{} for _ in range(self.num_agents)]

        def _obs(self) -> Any:
            o = self.vec.obs
            if batched:  # a dict of arrays [games, ...]: what SF2's batched sampler consumes
                return {k: o[k] for k in keys}
            return [{k: o[k][i] for k in keys} for i in range(self.num_agents)]

        def reset(self, *, seed: int | None = None, options: Any = None) -> tuple[Any, list]:
            self.vec.reset()
            return self._obs(), list(self._infos)

        def step(self, actions: Any) -> tuple[Any, Any, Any, Any, list]:
            a = actions.numpy() if hasattr(actions, "numpy") else np.asarray(actions)
            _, r, d, to, _ = self.vec.step(a.reshape(-1).astype(np.int64))
            terminated = d.astype(bool) & ~to.astype(bool)
            truncated = to.astype(bool)
            if batched:
                return self._obs(), r.astype(np.float32), terminated, truncated, list(self._infos)
            return self._obs(), r.tolist(), terminated.tolist(), truncated.tolist(), list(self._infos)

        def close(self) -> None:
            self.vec.close()

    return Games()


def _flat_profile(timing: Any) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in dict(timing).items():
        if str(key).startswith("_"):
            continue
        if isinstance(value, (int, float)):
            out[str(key)] = float(value)
        elif hasattr(value, "values"):  # SF2's AvgTime: a window of recent values
            values = list(value.values)
            if values:
                out[f"{key} (avg)"] = float(sum(values) / len(values))
    return out


def _sf2_child(preset: str, train_dir: str, seconds: float, out_path: str) -> None:
    """Runs in its own process group: SF2's own runner, stopped by an observer after the window."""
    from sample_factory.algo.runners.runner import AlgoObserver
    from sample_factory.algo.utils.misc import ExperimentStatus
    from sample_factory.envs.env_utils import register_env
    from sample_factory.train import make_runner

    from maestromotif.models.policy import register_policy_model
    from maestromotif.training.settings import TrainingSettings
    from maestromotif.training.sf2 import build_sf2_config, patch_sf2_vtrace_summaries, quiet_sf2_logs

    register_env("maestromotif_nethack", _make_sf2_env)
    register_policy_model()
    patch_sf2_vtrace_summaries()
    quiet_sf2_logs()
    cfg = build_sf2_config(TrainingSettings(preset=preset, batch_size=BATCH, device="cpu"), train_dir, "sf2")
    cfg.num_workers = PROCESSES
    cfg.num_envs_per_worker = 1
    cfg.worker_num_splits = 1
    cfg.batched_sampling = SF2_SAMPLING == "batched"
    cfg.train_for_env_steps = 10**12
    cfg.save_every_sec = 10**9  # no checkpoints while measuring (ours writes none either)
    cfg.save_best_every_sec = 10**9
    cfg.keep_checkpoints = 1
    cfg.force_envs_single_thread = True
    cfg.decorrelate_envs_on_one_worker = False
    cfg.decorrelate_experience_max_seconds = 0

    class Window(AlgoObserver):
        """SF2's own trained-step counter at each training step; ends the run after the window."""

        def __init__(self) -> None:
            self.points: list[tuple[float, int, int]] = []
            self.started = time.monotonic()
            self.first_skipped = False

        def on_start(self, runner: Any) -> None:  # samplers and learner started: their profiles begin
            self.started = time.monotonic()

        def on_training_step(self, runner: Any, training_iteration_since_resume: int) -> None:
            steps = int(runner.env_steps.get(0, 0))
            if steps <= 0:
                return
            self.points.append((time.monotonic(), steps, int(sum(runner.samples_collected))))
            if len(self.points) == 1 and self.first_skipped is False:
                self.first_skipped = True  # as ours: the window opens on the second training step
                self.points.clear()
                return
            (t0, s0, _), (t1, s1, _) = self.points[0], self.points[-1]
            if t1 - t0 >= seconds and s1 - s0 >= MIN_BATCHES * BATCH:
                runner.cfg.train_for_env_steps = 0  # SF2 ends training after this iteration (its own check)

    cfg, runner = make_runner(cfg)
    window = Window()
    runner.register_observer(window)
    status = runner.init()
    if status == ExperimentStatus.SUCCESS:
        runner.run()
    ended = time.monotonic()
    profiles = {str(name): _flat_profile(timing) for name, timing in runner.component_profiles}
    with open(out_path, "w") as f:
        json.dump({"points": window.points, "run_seconds": ended - window.started, "profiles": profiles}, f)


def _sum_keys(profiles: dict[str, dict[str, float]], component: str, keys: tuple[str, ...]) -> float:
    return sum(v for name, prof in profiles.items() if component in name
               for k, v in prof.items() if k in keys)


def sf2_runner_samples_per_second(preset: str, seconds: float) -> tuple[float, dict[str, Any]]:
    """SF2's own runner (samplers, inference worker, batcher, learner) on our wrapper."""
    import signal
    import subprocess
    import sys

    tmp = tempfile.mkdtemp(prefix="bench_sf2_")
    out = os.path.join(tmp, "result.json")
    log_path = os.path.join(tmp, "sf2.log")
    code = (f"from benchmarks.bench_training import _sf2_child; "
            f"_sf2_child({preset!r}, {tmp!r}, {seconds!r}, {out!r})")
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True, stdout=log, stderr=log)
        try:
            proc.wait(timeout=seconds + 600)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise RuntimeError(f"SF2 runner did not finish; its log: {log_path}") from None
        finally:
            try:  # anything of its process group still alive (SF2 workers)
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    if not os.path.exists(out):
        raise RuntimeError(f"SF2 runner wrote no result (exit {proc.returncode}); its log: {log_path}")
    with open(out) as f:
        data = json.load(f)
    points = data["points"]
    if len(points) < 2:
        raise RuntimeError(f"SF2 runner trained fewer than two steps; its log: {log_path}")
    (t0, s0, c0), (t1, s1, c1) = points[0], points[-1]
    rate = (s1 - s0) / (t1 - t0)
    p, run_s = data["profiles"], max(data["run_seconds"], 1e-9)
    stages = {
        "env stepping (rollout workers: env_step)": _sum_keys(p, "RolloutWorker", ("env_step",)) / run_s,
        "rollout bookkeeping (rollout workers: outputs, trajectories)": _sum_keys(
            p, "RolloutWorker", ("process_policy_outputs", "post_env_step", "process_env_step", "finalize_trajectories",
                                "save_policy_outputs", "overhead", "complete_rollouts")) / run_s,
        "inference (inference worker: normalize, forward, outputs)": _sum_keys(
            p, "InferenceWorker", ("obs_to_device_normalize", "forward", "prepare_outputs")) / run_s,
        "transport (rollout: enqueue requests; inference: deserialize, stack, send)": (
            _sum_keys(p, "RolloutWorker", ("enqueue_policy_requests",))
            + _sum_keys(p, "InferenceWorker", ("deserialize", "stack", "send_messages"))) / run_s,
        "training (learner: train)": _sum_keys(p, "LearnerWorker", ("train",)) / run_s,
        "batching (batcher/learner: prepare_batch, batching)": _sum_keys(
            p, "LearnerWorker", ("prepare_batch",)) / run_s + _sum_keys(p, "Batcher", ("batching",)) / run_s,
        "reward models": 0.0,
    }
    detail = {
        "trained_samples_per_s": round(rate, 1),
        "window_s": round(t1 - t0, 2),
        "trained_samples_in_window": s1 - s0,
        "collected_samples_per_s": round((c1 - c0) / (t1 - t0), 1),
        "run_s": round(run_s, 1),
        "seconds_per_second_whole_run": {k: round(v, 3) for k, v in stages.items()},
        "component_profiles_s": p,
        "log": log_path,
    }
    return rate, detail


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _metric_sums(port: int) -> dict[str, float]:
    """Sums of the histograms (seconds spent) and counters on a service's /metrics."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.endswith("_sum") or sample.name.endswith("_total"):
                out[sample.name] = out.get(sample.name, 0.0) + sample.value
    return out


# (label, service, metric): seconds per second of wall time spent in each stage
_STAGES = (
    ("env stepping (actor processes)", "actors", "maestromotif_actor_env_step_seconds_sum"),
    ("inference (learner: batched forward)", "learner", "maestromotif_learner_inference_latency_seconds_sum"),
    ("actors waiting for actions (transport + queueing + inference)", "actors",
     "maestromotif_actor_inference_round_trip_seconds_sum"),
    ("training (learner: SF2 Learner.train)", "learner", "maestromotif_learner_train_step_seconds_sum"),
    ("reward models (learner's reward calls, pipelined)", "learner", "maestromotif_learner_reward_call_latency_seconds_sum"),
)


def ours_samples_per_second(preset: str, seconds: float, processes: int = PROCESSES) -> tuple[float, float, dict[str, Any]]:
    """Reward, learner and actor services as separate processes on loopback (as ``up`` runs them).

    Returns (trained samples/s, env steps/s, details) over a window that starts after the first update.
    """
    import signal
    import subprocess
    import sys

    from maestromotif.kit.client import ClientOptions, make_channel, wait_for_serving
    from maestromotif.v1 import learner_pb2, learner_pb2_grpc

    tmp = tempfile.mkdtemp(prefix="bench_ours_")
    ports = {name: (_free_port(), _free_port()) for name in ("reward", "learner", "actors")}
    sets = {
        "reward": ["init_random=true", "threads=1"],
        "learner": [
            f"reward_address=127.0.0.1:{ports['reward'][0]}", f"train_dir={tmp}", f"preset={preset}",
            f"batch_size={BATCH}", "checkpoint_every_samples=0", "checkpoint_on_exit=false", "device=cpu",
        ],
        "actors": [
            f"learner_address=127.0.0.1:{ports['learner'][0]}", f"processes={processes}",
            f"envs_per_process={max(1, ENVS // processes)}",
        ],
    }
    procs: list[subprocess.Popen] = []
    try:
        for name in ("reward", "learner", "actors"):
            argv = [sys.executable, "-m", "maestromotif.kit", name, "--port", str(ports[name][0]),
                    "--metrics-port", str(ports[name][1])]
            for item in sets[name]:
                argv += ["--set", item]
            procs.append(subprocess.Popen(argv, start_new_session=True, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL))
            wait_for_serving(f"127.0.0.1:{ports[name][0]}", timeout_s=180, alive=lambda p=procs[-1]: p.poll() is None)
        channel = make_channel(f"127.0.0.1:{ports['learner'][0]}", ClientOptions(deadline_s=10.0))
        stub = learner_pb2_grpc.LearnerStub(channel)

        def next_update(after: int) -> tuple[Any, float]:
            # the learner's counter moves once per trained batch: poll often, so that the window's
            # ends fall on training steps, as SF2's observer sees them
            while True:
                status = stub.GetStatus(learner_pb2.GetStatusRequest())
                if status.samples_trained > after:
                    return status, time.perf_counter()
                time.sleep(POLL_S)

        first, _ = next_update(0)
        s0, t0 = next_update(first.samples_trained)  # the window opens on the second training step
        m0 = {n: _metric_sums(ports[n][1]) for n in ("learner", "actors")}
        s1, t1 = s0, t0
        while t1 - t0 < seconds or (s1.samples_trained - s0.samples_trained) < MIN_BATCHES * BATCH:
            s1, t1 = next_update(s1.samples_trained)
        m1 = {n: _metric_sums(ports[n][1]) for n in ("learner", "actors")}
        channel.close()
    finally:
        for proc in reversed(procs):
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for proc in reversed(procs):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    dt = t1 - t0
    stages = {label: (m1[svc].get(name, 0) - m0[svc].get(name, 0)) / dt for label, svc, name in _STAGES}
    trained = (s1.samples_trained - s0.samples_trained) / dt
    env_rate = (s1.env_steps - s0.env_steps) / dt
    detail = {
        "trained_samples_per_s": round(trained, 1),
        "env_steps_per_s": round(env_rate, 1),
        "window_s": round(dt, 2),
        "trained_samples_in_window": s1.samples_trained - s0.samples_trained,
        "actor_processes": processes,
        "games_per_process": max(1, ENVS // processes),
        "seconds_per_second_window": {k: round(v, 3) for k, v in stages.items()},
    }
    return trained, env_rate, detail


def _print_stages(side: str, stages: dict[str, float]) -> None:
    print(f"  {side}: where the time goes (seconds per second):")
    for label, value in stages.items():
        print(f"    {value:6.2f}  {label}")


def main() -> None:
    from benchmarks.report import Run

    run = Run("training")
    ratios: dict[str, float] = {}
    sides: dict[str, Any] = {}
    for preset in PRESETS:
        ours, env_rate, ours_detail = ours_samples_per_second(preset, SECONDS)
        theirs, sf2_detail = sf2_runner_samples_per_second(preset, SECONDS)
        print(
            f"preset={preset}: ours {ours:,.0f} samples/s (env {env_rate:,.0f} steps/s), "
            f"SF2 runner {theirs:,.0f} samples/s, ratio {ours / max(theirs, 1e-9):.2f} (goal >= 0.9)",
            flush=True,
        )
        _print_stages("ours, measured window", ours_detail["seconds_per_second_window"])
        _print_stages("SF2, whole run", sf2_detail["seconds_per_second_whole_run"])
        ratios[f"{preset}: ours / SF2 runner, trained samples/s"] = ours / max(theirs, 1e-9)
        sides[preset] = {"ours": ours_detail, "sf2": sf2_detail}
    if os.environ.get("BENCH_TRAINING_SCALING") == "1":
        env1 = ours_samples_per_second("small", SECONDS / 2, processes=1)[1]
        env2 = ours_samples_per_second("small", SECONDS / 2, processes=2)[1]
        print(f"env throughput 1 -> 2 actor processes: {env1:,.0f} -> {env2:,.0f} steps/s, scaling {env2 / max(env1, 1e-9):.2f}x")
        ratios["actor env steps/s, 2 processes / 1"] = env2 / max(env1, 1e-9)
        sides["scaling"] = {"env_steps_per_s_1_process": round(env1, 1), "env_steps_per_s_2_processes": round(env2, 1)}
    run.write(
        ratios=ratios, sides=sides,
        settings={"seconds": SECONDS, "min_batches": MIN_BATCHES, "presets": PRESETS, "games": ENVS, "processes": PROCESSES,
                  "games_per_process": GAMES_PER_PROCESS, "batch_size": BATCH, "device": "cpu",
                  "sf2_sampling": SF2_SAMPLING, "checkpoints_while_measuring": "none on either side"},
        workload=(f"{ENVS} NetHack games ({PROCESSES} processes x {GAMES_PER_PROCESS}, VecEnv + reference skill "
                  f"controllers), batch {BATCH}; ours also scores every sample with five reward models"),
        notes=["SF2's stage figures cover its whole run (warm-up included); ours cover the measured window only"],
    )


if __name__ == "__main__":
    main()
