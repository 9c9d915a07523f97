"""Actor service: vectorized NetHack games driven by the learner's central inference.

The service process runs ``processes`` worker processes (``services.actors.worker``), each
stepping ``envs_per_process`` games with per-env skill controllers (the reference training
policy over skills by default) and streaming compact observations to the learner. Workers
register and reconnect on their own with jittered backoff; a worker that dies is restarted.
The service itself serves health and ``/metrics`` (per-skill episode statistics); the
Agent API for play/evaluation is a later addition.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import queue
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from prometheus_client import Counter, Gauge, Histogram
from pydantic import Field, model_validator

from maestromotif.codegen.artifacts import ArtifactPolicyLoader
from maestromotif.kit.config import ConfigError, ServiceConfig, instance_name, instance_seed
from maestromotif.kit.server import ServiceContext, ServiceSpec
from maestromotif.skills.ids import skill_name
from services.actors.worker import WorkerSettings, run_worker

log = logging.getLogger("maestromotif.actors")

NUM_SKILLS = 5


class ActorsConfig(ServiceConfig):
    learner_address: str = Field("127.0.0.1:50051", description="learner service host:port")
    processes: int = Field(1, ge=1, le=256, description="worker processes in this pod")
    envs_per_process: int = Field(16, ge=1, le=4096, description="games stepped together by one worker")
    skill_policy: Literal["exploration", "none"] = Field(
        "exploration", description="policy over skills during training (exploration = reference, method.md 3.3)"
    )
    policy_artifact: str = Field(
        "", pattern=r"^([0-9a-f]{64})?$",
        description="SHA-256 of a validated generated training policy in artifact_dir; replaces skill_policy",
    )
    skill_functions_artifact: str = Field(
        "", pattern=r"^([0-9a-f]{64})?$",
        description="SHA-256 of validated generated initiation/termination functions (with policy_artifact)",
    )
    artifact_dir: Path = Field(Path("data/artifacts"), description="artifact store of the generated code")
    seed: int | None = Field(
        None, ge=0, le=2**31 - 1,
        description="base seed; workers and envs derive theirs from it (default: a hash of POD_NAME or the "
                    "hostname, so that replicas play different dungeons)",
    )
    actor_name: str = Field("actor", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    backoff_initial_s: float = Field(0.2, gt=0, le=60)
    backoff_max_s: float = Field(5.0, gt=0, le=600)
    restart_workers: bool = Field(True, description="restart a worker process that died")
    max_steps_per_process: int = Field(0, ge=0, description="stop a worker after this many env steps (0: never)")

    @model_validator(mode="after")
    def _check_actors(self) -> "ActorsConfig":
        if self.backoff_max_s < self.backoff_initial_s:
            raise ValueError("backoff_max_s: must be >= backoff_initial_s")
        if self.skill_functions_artifact and not self.policy_artifact:
            raise ValueError("skill_functions_artifact: needs policy_artifact (they run together)")
        return self

    def training_policy(self) -> str | ArtifactPolicyLoader:
        """The policy over skills the workers run: a reference name, or a loader of generated code.

        A generated policy is loaded once here, so that a missing or unvalidated artifact stops
        the service at start with the reason, not each worker later.
        """
        if not self.policy_artifact:
            return self.skill_policy
        loader = ArtifactPolicyLoader(str(self.artifact_dir), self.policy_artifact,
                                      self.skill_functions_artifact or None)
        try:
            loader.check()
        except Exception as exc:  # noqa: BLE001 - any failure to load generated code is a config error
            raise ConfigError(f"policy_artifact: {exc}") from exc
        return loader


def base_seed(config: ActorsConfig, env: Mapping[str, str] | None = None) -> int:
    """The seed this replica's workers derive theirs from.

    ``seed`` when configured (``MAESTROMOTIF_ACTORS_SEED``), else a stable hash of the pod name
    (``POD_NAME``) or hostname: replicas of a Deployment share one config, and would otherwise
    replay each other's games.
    """
    return config.seed if config.seed is not None else instance_seed(instance_name(env))


class _Metrics:
    def __init__(self, registry: Any) -> None:
        p = "maestromotif_actor_"
        self.env_steps = Counter(p + "env_steps_total", "Environment steps taken", registry=registry)
        self.episodes = Counter(p + "episodes_total", "Finished episodes", registry=registry)
        self.episode_return = Histogram(
            p + "episode_env_return", "Environment (score) return of finished episodes", registry=registry,
            buckets=(0, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000),
        )
        self.episode_steps = Histogram(
            p + "episode_steps", "Steps of finished episodes", registry=registry,
            buckets=(10, 50, 100, 200, 500, 1000, 2000, 5000, 10000),
        )
        self.skill_steps = Histogram(
            p + "skill_episode_steps", "Steps spent under each skill in a finished episode", ["skill"],
            registry=registry, buckets=(0, 1, 10, 50, 100, 200, 500, 1000, 2000, 5000, 10000),
        )
        self.max_depth = Histogram(
            p + "episode_max_depth", "Deepest level of finished episodes", registry=registry,
            buckets=(1, 2, 3, 4, 5, 6, 8, 10),
        )
        self.round_trip = Histogram(
            p + "inference_round_trip_seconds", "Send observations -> receive actions", registry=registry,
            buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2),
        )
        self.env_step = Histogram(
            p + "env_step_seconds", "Stepping all games of one worker once", registry=registry,
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2),
        )
        self.connected = Gauge(p + "connected_workers", "Workers with an open learner stream", registry=registry)
        self.workers = Gauge(p + "worker_processes", "Live worker processes", registry=registry)
        self.reconnects = Counter(p + "reconnects_total", "Learner streams re-opened", ["code"], registry=registry)
        self.restarts = Counter(p + "worker_restarts_total", "Worker processes restarted", registry=registry)
        self.policy_version = Gauge(p + "policy_version", "Latest policy version seen", registry=registry)


class ActorPool:
    """Starts, watches and stops the worker processes; turns their events into metrics."""

    def __init__(self, config: ActorsConfig, metrics: _Metrics) -> None:
        self.config = config
        self.metrics = metrics
        self._ctx = mp.get_context("spawn")  # no forked torch/grpc state in workers
        self._events: Any = self._ctx.Queue(maxsize=100_000)
        self._stop = self._ctx.Event()
        self._procs: dict[int, Any] = {}
        self._connected: set[int] = set()
        self.env_steps = 0
        self.episodes = 0
        self.skill_steps = [0] * NUM_SKILLS
        self._closing = threading.Event()
        self.seed = base_seed(config)
        source = "configured" if config.seed is not None else f"hash of {instance_name()!r}"
        log.info("actor base seed %d (%s)", self.seed, source)
        token = config.token()
        self._base = dict(
            learner_address=config.learner_address,
            num_envs=config.envs_per_process,
            skill_policy=config.training_policy(),
            actor_name=config.actor_name,
            deadline_s=config.peer_deadline_s,
            auth_token=token,
            tls_ca_file=str(config.peer_tls_ca_file) if config.peer_tls_ca_file else None,
            tls_client_cert_file=str(config.peer_tls_cert_file) if config.peer_tls_cert_file else None,
            tls_client_key_file=str(config.peer_tls_key_file) if config.peer_tls_key_file else None,
            tls_server_name=config.peer_tls_server_name,
            max_message_bytes=config.max_message_bytes,
            backoff_initial_s=config.backoff_initial_s,
            backoff_max_s=config.backoff_max_s,
            max_steps=config.max_steps_per_process,
            parent_pid=os.getpid(),
        )
        for i in range(config.processes):
            self._spawn(i)
        self._threads = [
            threading.Thread(target=self._drain, name="actor-events", daemon=True),
            threading.Thread(target=self._watch, name="actor-watch", daemon=True),
        ]
        for t in self._threads:
            t.start()

    def _spawn(self, index: int) -> None:
        settings = WorkerSettings(index=index, seed=self.seed, **self._base)
        proc = self._ctx.Process(target=run_worker, args=(settings, self._events, self._stop), daemon=True,
                                 name=f"actor-{index}")
        proc.start()
        self._procs[index] = proc
        self.metrics.workers.set(sum(p.is_alive() for p in self._procs.values()))

    def pids(self) -> list[int]:
        return [p.pid for p in self._procs.values() if p.is_alive()]

    def _watch(self) -> None:
        while not self._closing.wait(1.0):
            for index, proc in list(self._procs.items()):
                if not proc.is_alive() and not self._closing.is_set():
                    finished = self.config.max_steps_per_process and proc.exitcode == 0
                    if self.config.restart_workers and not finished:
                        log.warning("worker %d exited with %s; restarting", index, proc.exitcode)
                        self.metrics.restarts.inc()
                        self._connected.discard(index)
                        self._spawn(index)
            self.metrics.workers.set(sum(p.is_alive() for p in self._procs.values()))
            self.metrics.connected.set(len(self._connected))

    def _drain(self) -> None:
        while not (self._closing.is_set() and self._stop.is_set() and not any(p.is_alive() for p in self._procs.values())):
            try:
                event = self._events.get(timeout=0.2)
            except queue.Empty:
                continue
            except (EOFError, OSError):
                return
            index, kind, *rest = event
            if kind == "step":
                n, rtt, env_s, version = rest
                self.env_steps += n
                self.metrics.env_steps.inc(n)
                self.metrics.round_trip.observe(rtt)
                self.metrics.env_step.observe(env_s)
                self.metrics.policy_version.set(version)
            elif kind == "episode":
                steps, ret, skill_steps, max_depth = rest
                self.episodes += 1
                self.metrics.episodes.inc()
                self.metrics.episode_steps.observe(steps)
                self.metrics.episode_return.observe(ret)
                self.metrics.max_depth.observe(max_depth)
                for k, s in enumerate(skill_steps[:NUM_SKILLS]):
                    self.skill_steps[k] += s
                    self.metrics.skill_steps.labels(skill=skill_name(k)).observe(s)
            elif kind == "connected":
                (self._connected.add if rest[0] else self._connected.discard)(index)
                self.metrics.connected.set(len(self._connected))
            elif kind == "reconnect":
                self.metrics.reconnects.labels(code=str(rest[0])).inc()

    def close(self, timeout_s: float = 10.0) -> None:
        self._closing.set()  # first: the watcher must not restart workers that are told to stop
        self._stop.set()
        deadline = time.monotonic() + timeout_s
        for proc in self._procs.values():
            proc.join(max(0.1, deadline - time.monotonic()))
        for proc in self._procs.values():
            if proc.is_alive():
                proc.terminate()
                proc.join(2.0)
            if proc.is_alive():
                proc.kill()
                proc.join(1.0)
        for t in self._threads:
            t.join(timeout=2.0)
        self._events.close()
        self._events.cancel_join_thread()


def build(config: ActorsConfig, ctx: ServiceContext) -> Any:
    metrics = _Metrics(ctx.registry)
    pool = ActorPool(config, metrics)
    ctx.actors = pool  # type: ignore[attr-defined]  # tests reach the pool through this
    return pool.close


SPEC = ServiceSpec(
    name="actors",
    config_cls=ActorsConfig,
    build=build,
    default_port=50052,
    default_metrics_port=9092,
    depends_on=("learner",),
    description="Vectorized NetHack games with skill controllers, streaming to the learner.",
)
