"""Learner service: batched central inference for all actors, APPO training, checkpoints.

``mode=train`` (default): actors stream compact observations on ``Act``; the engine
(``maestromotif.training.engine``) batches inference across all of them, assembles
trajectories, gets intrinsic rewards from the reward service per finished rollout, and
trains with sample-factory 2's Learner, checkpointing every ``checkpoint_every_samples``
and resuming from the latest checkpoint in ``train_dir/experiment`` on restart.

``mode=serve``: inference only, from ``checkpoint`` (a file) or the latest in
``train_dir/experiment``; no reward service needed.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterator, Literal

import grpc
import numpy as np
import torch
from prometheus_client import Counter, Gauge, Histogram
from pydantic import Field, model_validator

import maestromotif
from maestromotif.env import compact
from maestromotif.kit.config import ServiceConfig
from maestromotif.kit.server import ServiceContext, ServiceSpec
from maestromotif.models.policy import NUM_ACTIONS
from maestromotif.skills.competence import NUM_SIGNALS
from maestromotif.skills.ids import skill_name
from maestromotif.training.engine import ActorBusy, ActorGone, EngineObserver, RewardUnavailable, TrainingEngine
from maestromotif.training.settings import TrainingFields
from maestromotif.training.trajectories import StepObservation
from maestromotif.v1 import common_pb2, learner_pb2, learner_pb2_grpc, reward_pb2, reward_pb2_grpc

log = logging.getLogger("maestromotif.learner")

NUM_SKILLS = compact.NUM_SKILLS


class LearnerConfig(ServiceConfig, TrainingFields):
    """Learner settings: the service fields, plus the training fields (method.md 7 defaults)."""

    mode: Literal["train", "serve"] = Field("train", description="train, or serve (inference only)")
    train_dir: Path = Field(Path("runs"), description="folder of experiments (checkpoints, config.json)")
    experiment: str = Field("policy", pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="experiment folder name")
    checkpoint: Path | None = Field(None, description="serve mode: checkpoint file (default: latest in train_dir)")
    checkpoint_every_samples: int = Field(
        1_000_000, ge=0, description="write a checkpoint every this many trained samples (0: only at exit)"
    )
    reward_address: str = Field("127.0.0.1:50053", description="reward service host:port")
    reward_deadline_s: float = Field(30.0, gt=0, le=600)
    reward_workers: int = Field(2, ge=1, le=32, description="concurrent reward calls (pipelined with inference)")
    max_envs_per_actor: int = Field(1024, ge=1, le=65536)
    max_actors: int = Field(64, ge=1, le=4096)
    register_timeout_s: float = Field(
        60.0, gt=0, le=3600, description="a registered actor that opens no Act stream within this long loses its slot"
    )
    inference_wait_ms: float = Field(5.0, ge=0, le=1000, description="how long to merge steps of several actors")
    max_backlog_batches: float = Field(
        2.0, gt=0, le=64, description="batches of trajectories that may wait for training before actors are slowed"
    )
    checkpoint_on_exit: bool = Field(True, description="write a last checkpoint on shutdown")
    torch_threads: int = Field(1, ge=1, le=256, description="torch intra-op threads on CPU")
    max_workers: int = Field(96, ge=1, le=1024, description="gRPC handler threads (one per open actor stream)")

    @model_validator(mode="after")
    def _check_learner(self) -> "LearnerConfig":
        if self.mode == "serve" and self.checkpoint is not None and not self.checkpoint.is_file():
            raise ValueError(f"checkpoint: no such file: {self.checkpoint}")
        if self.max_workers < self.max_actors + 4:
            raise ValueError(f"max_workers: {self.max_workers} leaves no room for {self.max_actors} actor streams")
        return self


class _Metrics(EngineObserver):
    """Prometheus metrics of the learner (maestromotif_learner_*)."""

    def __init__(self, registry: Any) -> None:
        p = "maestromotif_learner_"
        self.env_steps = Counter(p + "env_steps_total", "Environment steps received from actors", registry=registry)
        self.samples = Counter(p + "samples_trained_total", "Samples consumed by training", registry=registry)
        self.sps = Gauge(p + "samples_per_second", "Training samples per second (recent)", registry=registry)
        self.version = Gauge(p + "policy_version", "Policy version (SGD steps)", registry=registry)
        self.lag = Gauge(p + "policy_lag", "Mean policy lag of the last trained batch", registry=registry)
        self.infer_batch = Histogram(
            p + "inference_batch_size", "Environments per inference batch", registry=registry,
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096),
        )
        self.infer_latency = Histogram(
            p + "inference_latency_seconds", "Inference batch latency", registry=registry,
            buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2),
        )
        self.train_latency = Histogram(p + "train_step_seconds", "Duration of one training batch", registry=registry)
        self.loss = Gauge(p + "loss", "Last training losses", ["kind"], registry=registry)
        self.reward_latency = Histogram(
            p + "reward_call_latency_seconds", "Reward service call latency", registry=registry,
            buckets=(0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10),
        )
        self.reward_errors = Counter(p + "reward_call_errors_total", "Failed reward calls", registry=registry)
        self.dropped = Counter(p + "dropped_trajectories_total", "Trajectories dropped", ["reason"], registry=registry)
        for reason in ("reward", "actor_gone", "malformed", "partial_rollout"):  # exported at 0 from the start (the engine's reasons)
            self.dropped.labels(reason=reason)
        # Accounting: samples_trained_total == trajectories_trained_total * rollout, and
        # trained <= accepted (each scored trajectory is trained on at most once).
        self.accepted = Counter(p + "trajectories_accepted_total",
                                "Trajectories (env rows of one rollout) scored and queued for training", registry=registry)
        self.trained = Counter(p + "trajectories_trained_total", "Trajectories trained on", registry=registry)
        self.backlog = Gauge(p + "backlog_trajectories", "Trajectories waiting for rewards or training", registry=registry)
        self.backlog_limit = Gauge(p + "backlog_limit_trajectories",
                                   "Backlog past which inference (and so the actors) pauses", registry=registry)
        # Reward service outages: training holds back (never trains on a missing reward).
        self.reward_holding_back = Gauge(p + "reward_holding_back",
                                         "1 while the reward service is unreachable and training waits", registry=registry)
        self.reward_outages = Counter(p + "reward_outages_total", "Times the reward service became unreachable",
                                      registry=registry)
        self.reward_outage_seconds = Counter(p + "reward_outage_seconds_total",
                                             "Seconds training held back for the reward service", registry=registry)
        self.checkpoint_errors = Counter(p + "checkpoint_errors_total",
                                         "Checkpoints that could not be written (the previous one is kept)",
                                         registry=registry)
        self.checkpoint_unreadable = Counter(p + "checkpoint_unreadable_total",
                                             "Checkpoint files that failed to load at start (set aside)", registry=registry)
        self.actors = Gauge(p + "connected_actors", "Connected actor streams", registry=registry)
        self.envs = Gauge(p + "connected_envs", "Environments across connected actors", registry=registry)
        self.skill_return = Histogram(
            p + "skill_intrinsic_return", "Intrinsic return of one skill run", ["skill"], registry=registry,
            buckets=(0, 0.01, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20),
        )
        self.skill_duration = Histogram(
            p + "skill_run_steps", "Steps of one skill run", ["skill"], registry=registry,
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000),
        )
        self.episode_steps = Histogram(
            p + "episode_steps", "Steps of finished episodes", registry=registry,
            buckets=(10, 50, 100, 200, 500, 1000, 2000, 5000, 10000),
        )
        self.checkpoints = Counter(p + "checkpoints_total", "Checkpoints written", registry=registry)
        # Alerts tell a stalled training learner from a serve-mode one (which trains nothing).
        self.training = Gauge(p + "training", "1 in train mode, 0 in serve (inference-only) mode", registry=registry)
        # competence from the game itself (maestromotif.skills.competence), beside the returns above
        self.competence = Gauge(
            p + "skill_competence",
            "Mean competence over recent finished skill runs (fraction competent; new squares/step for discoverer)",
            ["skill"], registry=registry)
        self.competent_runs = Counter(p + "skill_competent_runs", "Finished skill runs that did the skill",
                                      ["skill"], registry=registry)
        self.engine: TrainingEngine | None = None

    def on_inference(self, batch_size: int, latency_s: float) -> None:
        self.infer_batch.observe(batch_size)
        self.infer_latency.observe(latency_s)

    def on_env_steps(self, n: int) -> None:
        self.env_steps.inc(n)

    def on_train(self, samples: int, stats: dict[str, float], policy_lag: float, duration_s: float) -> None:
        self.samples.inc(samples)
        self.lag.set(policy_lag)
        self.train_latency.observe(duration_s)
        for k in ("loss", "policy_loss", "value_loss", "entropy", "kl_divergence"):
            if k in stats:
                self.loss.labels(kind=k).set(stats[k])
        if self.engine is not None:
            self.sps.set(self.engine.samples_per_second())
            self.version.set(self.engine.policy_version)

    def on_reward_call(self, samples: int, latency_s: float, ok: bool) -> None:
        self.reward_latency.observe(latency_s)
        if not ok:
            self.reward_errors.inc()

    def on_skill_competence(self, skill: int, competent: bool, recent_mean: float) -> None:
        name = skill_name(skill)
        counter = self.competent_runs.labels(skill=name)  # the series exists (at 0) from the first run on
        if competent:
            counter.inc()
        self.competence.labels(skill=name).set(recent_mean)

    def on_skill_run(self, skill: int, intrinsic_return: float, steps: int) -> None:
        name = skill_name(skill)
        self.skill_return.labels(skill=name).observe(intrinsic_return)
        self.skill_duration.labels(skill=name).observe(steps)

    def on_dropped(self, trajectories: int, reason: str) -> None:
        self.dropped.labels(reason=reason).inc(trajectories)

    def on_actors(self, actors: int, envs: int) -> None:
        self.actors.set(actors)
        self.envs.set(envs)

    def on_checkpoint(self, path: str) -> None:
        self.checkpoints.inc()

    def on_checkpoint_error(self, error: str) -> None:
        self.checkpoint_errors.inc()

    def on_accepted(self, trajectories: int) -> None:
        self.accepted.inc(trajectories)

    def on_trained(self, trajectories: int) -> None:
        self.trained.inc(trajectories)

    def on_reward_outage(self, active: bool, waiting: int, duration_s: float) -> None:
        self.reward_holding_back.set(1 if active else 0)
        if active:
            self.reward_outages.inc()
        else:
            self.reward_outage_seconds.inc(duration_s)


def _array(data: bytes, dtype: Any, shape: tuple[int, ...], name: str) -> np.ndarray:
    expected = int(np.prod(shape)) * np.dtype(dtype).itemsize
    if len(data) != expected:
        raise ValueError(f"{name}: {len(data)} bytes, expected {expected} for {np.dtype(dtype).name}{list(shape)}")
    return np.frombuffer(data, dtype=np.dtype(dtype).newbyteorder("<")).astype(dtype, copy=True).reshape(shape)


def decode_step(msg: learner_pb2.EnvStepBatch, num_envs: int) -> StepObservation:
    """Validate and decode one EnvStepBatch (untrusted); ValueError names the field and reason."""
    n = num_envs
    if msg.num_envs != n:
        raise ValueError(f"num_envs: got {msg.num_envs}, actor registered {n}")
    c = compact.CROP_SIZE
    obs = StepObservation(
        tty_chars=_array(msg.tty_chars, np.uint8, (n, c, c), "tty_chars"),
        tty_colors=_array(msg.tty_colors, np.uint8, (n, c, c), "tty_colors"),
        messages=_array(msg.messages, np.uint8, (n, compact.MESSAGE_LENGTH), "messages"),
        stats=_array(msg.stats, np.float32, (n, compact.STATS_LENGTH), "stats"),
        skills=_array(msg.skills, np.uint8, (n,), "skills"),
        message_counts=_array(msg.message_counts, np.float32, (n,), "message_counts"),
        stat_changes=_array(msg.stat_changes, np.float32, (n, compact.STAT_CHANGE_LENGTH), "stat_changes"),
        rewards=_array(msg.rewards, np.float32, (n,), "rewards") if msg.rewards else np.zeros(n, np.float32),
        dones=(_array(msg.dones, np.uint8, (n,), "dones") if msg.dones else np.zeros(n, np.uint8)).astype(bool),
        time_outs=(_array(msg.time_outs, np.uint8, (n,), "time_outs") if msg.time_outs else np.zeros(n, np.uint8)).astype(bool),
        competence=_array(msg.competence, np.float32, (n, NUM_SIGNALS), "competence") if msg.competence else None,
    )
    if np.any(obs.skills >= NUM_SKILLS):
        raise ValueError(f"skills: values must be < {NUM_SKILLS}, got max {int(obs.skills.max())}")
    if np.any(obs.tty_colors > 15):
        raise ValueError("tty_colors: values must be < 16")
    for name in ("stats", "stat_changes", "rewards", "message_counts"):
        if not np.all(np.isfinite(getattr(obs, name))):
            raise ValueError(f"{name}: non-finite values")
    if np.any(obs.message_counts < 1):
        raise ValueError("message_counts: values must be >= 1")
    if np.any(np.abs(obs.stats) > 1e6):
        raise ValueError("stats: values beyond +-1e6")
    if obs.competence is not None and not (np.all(np.isfinite(obs.competence)) and np.all(obs.competence >= 0)
                                           and np.all(obs.competence <= 2000)):
        raise ValueError("competence: values must be finite and in [0, 2000]")
    return obs


# Codes that mean "the reward service cannot answer now": the engine holds back and retries.
# (UNAVAILABLE: down or restarting; DEADLINE_EXCEEDED: hung or overloaded; RESOURCE_EXHAUSTED:
# shedding load. Requests are chunked to its max batch size, so it is never an oversized message.)
_REWARD_TRANSIENT = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED)


class RewardClient:
    """score_fn over the reward service: chunks to its max batch size, one call per chunk.

    A transient failure raises :class:`RewardUnavailable` (the engine holds back and retries);
    any other failure propagates (those trajectories are dropped, never trained on).
    """

    def __init__(self, channel: grpc.Channel, deadline_s: float) -> None:
        self.stub = reward_pb2_grpc.RewardStub(channel)
        self.deadline_s = deadline_s
        self._max_batch: int | None = None
        self.model_version = ""

    def _limit(self) -> int:
        if self._max_batch is None:
            info = self.stub.GetModelInfo(reward_pb2.GetModelInfoRequest(), timeout=self.deadline_s)
            self._max_batch = max(1, int(info.max_batch_size) or 4096)
        return self._max_batch

    def __call__(self, skills: np.ndarray, messages: np.ndarray, stat_changes: np.ndarray, counts: np.ndarray) -> np.ndarray:
        try:
            return self._score(skills, messages, stat_changes, counts)
        except grpc.RpcError as exc:
            code = exc.code()  # type: ignore[attr-defined]
            if code in _REWARD_TRANSIENT:
                raise RewardUnavailable(f"{code.name}: {exc.details()}") from exc  # type: ignore[attr-defined]
            raise

    def _score(self, skills: np.ndarray, messages: np.ndarray, stat_changes: np.ndarray, counts: np.ndarray) -> np.ndarray:
        m = len(skills)
        limit = self._limit()
        out = np.empty(m, np.float32)
        for lo in range(0, m, limit):
            hi = min(m, lo + limit)
            resp = self.stub.Score(
                reward_pb2.ScoreRequest(
                    count=hi - lo,
                    skills=np.ascontiguousarray(skills[lo:hi], np.uint8).tobytes(),
                    messages=np.ascontiguousarray(messages[lo:hi], np.uint8).tobytes(),
                    stat_changes=np.ascontiguousarray(stat_changes[lo:hi], "<f4").tobytes(),
                    message_counts=np.ascontiguousarray(counts[lo:hi], "<f4").tobytes(),
                ),
                timeout=self.deadline_s,
            )
            out[lo:hi] = _array(resp.skill_rewards, np.float32, (hi - lo,), "skill_rewards")
            self.model_version = resp.model_version
        return out


class LearnerServicer(learner_pb2_grpc.LearnerServicer):
    def __init__(self, config: LearnerConfig, ctx: ServiceContext) -> None:
        torch.set_num_threads(config.torch_threads)
        self.config = config
        self.ctx = ctx
        self.metrics = _Metrics(ctx.registry)
        self.metrics.training.set(1 if config.mode == "train" else 0)
        self.driver = None
        self.reward_channel = None
        settings = config.training_settings()
        device = settings.resolved_device()
        if config.mode == "train":
            from maestromotif.training.sf2 import LearnerDriver, rnn_size_of

            self.driver = LearnerDriver(settings, config.train_dir, config.experiment)
            self.reward_channel = ctx.peer_channel(config.reward_address)
            counters = self.driver.resumed_counters
            self.engine = TrainingEngine(
                self.driver.actor_critic,
                self.driver.device,
                rnn_size_of(self.driver.actor_critic),
                driver=self.driver,
                score_fn=RewardClient(self.reward_channel, config.reward_deadline_s),
                rollout=settings.rollout,
                batch_size=settings.batch_size,
                extrinsic=(settings.extrinsic_weight, settings.extrinsic_scale, settings.extrinsic_clip),
                max_wait_s=config.inference_wait_ms / 1000.0,
                checkpoint_every=config.checkpoint_every_samples,
                reward_workers=config.reward_workers,
                observer=self.metrics,
                lock=self.driver.lock,
                env_steps=int(counters.get("env_steps", 0)),
                max_backlog_batches=config.max_backlog_batches,
            )
            self.preset = self.driver.preset
            self.config_hash = settings.config_hash()
            for path in self.driver.unreadable_checkpoints:
                self.metrics.checkpoint_unreadable.inc()
                log.error("checkpoint %s could not be loaded (set aside as %s.corrupt)", path, path)
            if self.driver.latest_checkpoint():
                self.engine.last_checkpoint = self.driver.latest_checkpoint() or ""
                log.info("resumed from %s at policy version %d", self.engine.last_checkpoint, self.engine.policy_version)
        else:
            from maestromotif.training.sf2 import load_policy_for_inference, rnn_size_of

            # a named file must load; otherwise the newest readable one in the folder (an unreadable
            # newer file is named in the log and skipped, not renamed: serving only reads)
            candidates = [config.checkpoint] if config.checkpoint else _checkpoints_newest_first(
                config.train_dir / config.experiment)
            for i, path in enumerate(candidates):
                try:
                    model, info = load_policy_for_inference(path, device)
                    break
                except ValueError as exc:
                    if i == len(candidates) - 1:
                        raise
                    self.metrics.checkpoint_unreadable.inc()
                    log.error("%s; trying the previous checkpoint", exc)
            self.engine = TrainingEngine(
                model,
                device,
                rnn_size_of(model),
                max_wait_s=config.inference_wait_ms / 1000.0,
                observer=self.metrics,
                policy_version=info["policy_version"],
            )
            self.engine.last_checkpoint = str(path)
            self.preset = info["preset"]
            self.config_hash = info["config_hash"]
        self.metrics.engine = self.engine
        self.metrics.backlog.set_function(lambda: self.engine.backlog)
        self.metrics.backlog_limit.set(self.engine.backlog_limit)
        self.metrics.version.set(self.engine.policy_version)
        self.device = str(device)

    def close(self) -> None:
        self.engine.close(save=self.config.checkpoint_on_exit)
        if self.reward_channel is not None:
            self.reward_channel.close()

    # --- RPCs ------------------------------------------------------------------------------
    def RegisterActor(self, request: learner_pb2.RegisterActorRequest, context: grpc.ServicerContext) -> Any:
        if not 1 <= request.num_envs <= self.config.max_envs_per_actor:
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"num_envs: must be in 1..{self.config.max_envs_per_actor}, got {request.num_envs}",
            )
        if len(request.actor_name) > 256:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "actor_name: longer than 256 characters")
        stale = self.engine.purge_unclaimed(self.config.register_timeout_s)
        if stale:
            log.info("forgot %d registered actors that never opened an Act stream", stale)
        if self.engine.connected()[0] >= self.config.max_actors:
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, f"actors: at most {self.config.max_actors} connected")
        actor_id = self.engine.add_actor(int(request.num_envs), request.actor_name)
        log.info("actor registered: %s (%s, %d envs)", actor_id, request.actor_name, request.num_envs)
        return learner_pb2.RegisterActorResponse(
            actor_id=actor_id,
            spec=learner_pb2.ObservationSpec(
                crop_size=compact.CROP_SIZE,
                message_length=compact.MESSAGE_LENGTH,
                stats_length=compact.STATS_LENGTH,
                num_actions=NUM_ACTIONS,
            ),
            policy_version=self.engine.policy_version,
            max_envs_per_actor=self.config.max_envs_per_actor,
        )

    def Act(self, request_iterator: Iterator[learner_pb2.EnvStepBatch], context: grpc.ServicerContext) -> Iterator[Any]:
        actor_id: str | None = None
        try:
            for msg in _until_cancelled(request_iterator):
                if self.ctx.stopping.is_set():
                    context.abort(grpc.StatusCode.UNAVAILABLE, "learner: shutting down")
                if actor_id is None:
                    if not msg.actor_id:
                        context.abort(grpc.StatusCode.INVALID_ARGUMENT, "actor_id: missing on the first message")
                    try:
                        self.engine.claim(msg.actor_id)
                    except ActorGone as exc:
                        context.abort(grpc.StatusCode.NOT_FOUND, f"{exc}; register again")
                    except ActorBusy as exc:
                        context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
                    # Only a stream that claimed the actor may remove it when it ends.
                    actor_id = msg.actor_id
                elif msg.actor_id and msg.actor_id != actor_id:
                    context.abort(grpc.StatusCode.INVALID_ARGUMENT, "actor_id: changed within one stream")
                try:
                    num_envs = self.engine.actor_envs(actor_id)
                except ActorGone as exc:
                    context.abort(grpc.StatusCode.NOT_FOUND, f"{exc}; register again")
                try:
                    obs = decode_step(msg, num_envs)
                except ValueError as exc:
                    context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
                for ep in msg.finished_episodes:
                    self.metrics.episode_steps.observe(ep.steps)
                try:
                    actions, version = self.engine.step(actor_id, obs)
                except ActorGone as exc:
                    context.abort(grpc.StatusCode.NOT_FOUND, f"{exc}; register again")
                except TimeoutError as exc:
                    context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
                yield learner_pb2.ActionBatch(sequence=msg.sequence, actions=actions.tobytes(), policy_version=version)
        finally:
            if actor_id is not None:
                # a vanished actor's partial rollout and unscored trajectories are dropped
                self.engine.remove_actor(actor_id)
                log.info("actor stream closed: %s", actor_id)

    def GetStatus(self, request: learner_pb2.GetStatusRequest, context: grpc.ServicerContext) -> Any:
        actors, envs = self.engine.connected()
        returns, runs = self.engine.skill_stats()
        competence, competent = self.engine.competence_stats()
        return learner_pb2.LearnerStatus(
            mode="training" if self.engine.training else "serving",
            env_steps=int(self.engine.env_steps),
            samples_trained=int(self.engine.samples_trained),
            policy_version=int(self.engine.policy_version),
            connected_actors=actors,
            connected_envs=envs,
            mean_policy_lag=float(self.engine.mean_policy_lag),
            samples_per_second=float(self.engine.samples_per_second()),
            losses={k: float(v) for k, v in self.engine.last_losses.items()},
            skill_returns={skill_name(k): v for k, v in returns.items()},
            last_checkpoint=self.engine.last_checkpoint,
            skill_runs={skill_name(k): n for k, n in runs.items()},
            skill_competence={skill_name(k): v for k, v in competence.items()},
            skill_competent_runs={skill_name(k): n for k, n in competent.items()},
        )

    def GetServerInfo(self, request: common_pb2.GetServerInfoRequest, context: grpc.ServicerContext) -> Any:
        return common_pb2.ServerInfo(
            service="learner",
            version=maestromotif.__version__,
            model_version=f"{self.preset}-{self.config_hash}-v{self.engine.policy_version}",
            details={
                "device": self.device,
                "preset": self.preset,
                "mode": self.config.mode,
                "config_hash": self.config_hash,
                "torch_threads": str(torch.get_num_threads()),
            },
        )


def _until_cancelled(it: Iterator[Any]) -> Iterator[Any]:
    """Iterate a request stream; a client that went away just ends it (no error log)."""
    try:
        yield from it
    except grpc.RpcError:
        return


def _checkpoints_newest_first(folder: Path) -> list[Path]:
    from maestromotif.training.sf2 import checkpoint_files

    found = checkpoint_files(folder / "checkpoint_p0")
    if not found:
        raise FileNotFoundError(f"checkpoint: none found under {folder / 'checkpoint_p0'}; train first or pass checkpoint=")
    return [Path(f) for f in reversed(found)]


def build(config: LearnerConfig, ctx: ServiceContext) -> Any:
    servicer = LearnerServicer(config, ctx)
    learner_pb2_grpc.add_LearnerServicer_to_server(servicer, ctx.server)
    ctx.learner = servicer  # type: ignore[attr-defined]  # tests reach the engine through this
    return servicer.close


SPEC = ServiceSpec(
    name="learner",
    config_cls=LearnerConfig,
    build=build,
    default_port=50051,
    default_metrics_port=9091,
    depends_on=("reward",),
    description="Batched central inference and APPO training of the skill policy (sample-factory 2).",
)
