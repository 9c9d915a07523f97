"""Training throughput: our distributed system vs sample-factory 2's own runner, same run.

Both train the same network (preset) on the same env wrapper (our vectorized NetHack with
the reference skill controllers) on this machine. Ratio = our trained samples/s divided
by SF2's. Also env throughput of the actor service with 1 and 2 worker processes.

    python -m benchmarks training          # both presets, 40 s windows
    BENCH_TRAINING_SECONDS=20 BENCH_TRAINING_PRESETS=small python -m benchmarks training
"""

from __future__ import annotations

import os
import tempfile
import time
from typing import Any

import numpy as np

SECONDS = float(os.environ.get("BENCH_TRAINING_SECONDS", "40"))
PRESETS = os.environ.get("BENCH_TRAINING_PRESETS", "small,paper").split(",")
ENVS = int(os.environ.get("BENCH_TRAINING_ENVS", "16"))
BATCH = int(os.environ.get("BENCH_TRAINING_BATCH", "1024"))


def _make_sf2_env(full_env_name: str, cfg: Any, env_config: Any = None, render_mode: Any = None) -> Any:
    import gymnasium as gym

    from maestromotif.env.vec import VecEnv
    from maestromotif.models.policy import policy_action_space, policy_observation_space
    from maestromotif.skills.controller import controller_factory

    worker = getattr(env_config, "worker_index", 0) if env_config is not None else 0
    env_id = getattr(env_config, "env_id", 0) if env_config is not None else 0

    class OneGame(gym.Env):
        """The same wrapper our actors use (VecEnv + controllers), one game, for SF2's runner."""

        def __init__(self) -> None:
            seed = 1000 * worker + env_id
            self.vec = VecEnv([seed], controller_factory=controller_factory("exploration", seed))
            self.observation_space = policy_observation_space()
            self.action_space = policy_action_space()

        def _obs(self) -> dict[str, np.ndarray]:
            o = self.vec.obs
            return {k: o[k][0].copy() for k in ("tty_chars", "tty_colors", "messages", "stats")}

        def reset(self, *, seed: int | None = None, options: Any = None) -> tuple[dict, dict]:
            self.vec.reset()
            return self._obs(), {}

        def step(self, action: Any) -> tuple[dict, float, bool, bool, dict]:
            _, r, d, to, _ = self.vec.step(np.array([int(action)]))
            # VecEnv auto-resets; SF2 also resets on done, which only starts one more fresh episode
            return self._obs(), float(r[0]), bool(d[0]) and not bool(to[0]), bool(to[0]), {}

    return OneGame()


def _sf2_child(preset: str, train_dir: str) -> None:
    """Runs in its own process group: SF2's own runner until killed."""
    from sample_factory.envs.env_utils import register_env
    from sample_factory.train import run_rl

    from maestromotif.models.policy import register_policy_model
    from maestromotif.training.settings import TrainingSettings
    from maestromotif.training.sf2 import build_sf2_config, quiet_sf2_logs

    register_env("maestromotif_nethack", _make_sf2_env)
    register_policy_model()
    quiet_sf2_logs()
    cfg = build_sf2_config(TrainingSettings(preset=preset, batch_size=BATCH, device="cpu"), train_dir, "sf2")
    cfg.num_workers = 2
    cfg.num_envs_per_worker = ENVS // 2
    cfg.worker_num_splits = 2
    cfg.train_for_env_steps = 10**12  # SF2 2.1.1 never advances train_for_seconds; we kill it instead
    cfg.save_every_sec = 3  # the checkpoints' env-step counts are our measurement
    cfg.keep_checkpoints = 1000
    cfg.force_envs_single_thread = True
    cfg.decorrelate_envs_on_one_worker = False
    cfg.decorrelate_experience_max_seconds = 0
    run_rl(cfg)


def sf2_runner_samples_per_second(preset: str, seconds: float) -> float:
    """SF2's own runner (samplers, batcher, learner) on our wrapper; trained samples/s from its checkpoints."""
    import signal
    import subprocess
    import sys

    tmp = tempfile.mkdtemp(prefix="bench_sf2_")
    code = f"from benchmarks.bench_training import _sf2_child; _sf2_child({preset!r}, {tmp!r})"
    proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckdir = os.path.join(tmp, "sf2", "checkpoint_p0")
    seen: dict[str, tuple[float, int]] = {}
    first: tuple[float, int] | None = None
    try:
        deadline = time.monotonic() + seconds + 300
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.5)
            names = sorted(os.listdir(ckdir)) if os.path.isdir(ckdir) else []
            for name in names:
                if name.endswith(".pth") and name not in seen:
                    seen[name] = (time.monotonic(), int(name.rsplit("_", 1)[1].split(".")[0]))
            trained = [v for v in seen.values() if v[1] > 0]
            if trained and first is None:
                first = min(trained)
            if first is not None and time.monotonic() - first[0] >= seconds:
                break
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
    if first is None:
        raise RuntimeError("SF2 runner produced no checkpoint")
    last = max(seen.values())
    return (last[1] - first[1]) / max(last[0] - first[0], 1e-9)


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
    ("learner: inference", "learner", "maestromotif_learner_inference_latency_seconds_sum"),
    ("learner: training", "learner", "maestromotif_learner_train_step_seconds_sum"),
    ("learner: reward calls (pipelined)", "learner", "maestromotif_learner_reward_call_latency_seconds_sum"),
    ("actors: env stepping (all processes)", "actors", "maestromotif_actor_env_step_seconds_sum"),
    ("actors: waiting for actions (network + queue + inference)", "actors",
     "maestromotif_actor_inference_round_trip_seconds_sum"),
)


def ours_samples_per_second(preset: str, seconds: float, processes: int = 2) -> tuple[float, float]:
    """Reward, learner and actor services as separate processes on loopback (as ``up`` runs them).

    Returns (trained samples/s, env steps/s) over a window that starts after the first update.
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
        while stub.GetStatus(learner_pb2.GetStatusRequest()).samples_trained == 0:
            time.sleep(0.5)
        m0 = {n: _metric_sums(ports[n][1]) for n in ("learner", "actors")}
        s0, t0 = stub.GetStatus(learner_pb2.GetStatusRequest()), time.perf_counter()
        time.sleep(seconds)
        s1, t1 = stub.GetStatus(learner_pb2.GetStatusRequest()), time.perf_counter()
        m1 = {n: _metric_sums(ports[n][1]) for n in ("learner", "actors")}
        channel.close()
        parts = [
            f"{label} {(m1[svc].get(name, 0) - m0[svc].get(name, 0)) / (t1 - t0):.2f}"
            for label, svc, name in _STAGES
        ]
        print(f"  where the time goes ({preset}, {processes} actor processes; seconds per second): " + "; ".join(parts))
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
    return (s1.samples_trained - s0.samples_trained) / dt, (s1.env_steps - s0.env_steps) / dt


def main() -> None:
    for preset in PRESETS:
        ours, env_rate = ours_samples_per_second(preset, SECONDS)
        theirs = sf2_runner_samples_per_second(preset, SECONDS)
        print(
            f"preset={preset}: ours {ours:,.0f} samples/s (env {env_rate:,.0f} steps/s), "
            f"SF2 runner {theirs:,.0f} samples/s, ratio {ours / max(theirs, 1e-9):.2f} (goal >= 0.9)",
            flush=True,
        )
    env1 = ours_samples_per_second("small", SECONDS / 2, processes=1)[1]
    env2 = ours_samples_per_second("small", SECONDS / 2, processes=2)[1]
    print(f"env throughput 1 -> 2 actor processes: {env1:,.0f} -> {env2:,.0f} steps/s, scaling {env2 / max(env1, 1e-9):.2f}x")


if __name__ == "__main__":
    main()
