"""Agent service (the actors' ``agent`` mode): play tasks with the trained skills, zero-shot.

``maestromotif serve agent`` serves ``agent.proto`` from the actors' code and image:

- ``ComposeTask`` forwards the prompt to the Codegen service; an artifact that fails validation
  is answered FAILED_PRECONDITION with the failed checks, and the result in trailing metadata
  (trimmed to fit gRPC's default 8 KiB metadata limit: the full artifact stays in codegen's store);
- ``PlayTask`` plays one episode and streams steps (with the screen if asked), game messages,
  skill switches and the end with the task's outcome;
- ``Evaluate`` plays a fixed number of episodes and reports rates with 95% Wilson intervals or
  mean counts with standard errors (legacy and strict);
- ``GetServerInfo``.

Actions come from a local checkpoint (``inference=local``, loaded on first use and reloaded when
a newer checkpoint appears) or from the learner in serve mode (``inference=learner``: one Act
stream per episode). Each caller (its bearer token when auth is on, else its peer address) may
have ``max_episodes_per_caller`` episodes open; past that, RESOURCE_EXHAUSTED. A cancelled
stream ends its episode before the next step and frees its env at once.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
from pathlib import Path
from typing import Any, Iterator, Literal

import grpc
import numpy as np
from prometheus_client import Counter, Gauge
from pydantic import Field, model_validator

from maestromotif.agent.session import CallerSlots, EndInfo, MessageInfo, StepInfo, SwitchInfo, play_session
from maestromotif.kit.config import ServiceConfig
from maestromotif.kit.server import ServiceContext, ServiceSpec
from maestromotif.tasks.detect import TaskOutcome
from maestromotif.tasks.evaluation import (
    MAX_STEPS,
    NetworkActions,
    TaskEvaluationError,
    TaskGame,
    condition_summary,
    play_episodes,
)
from maestromotif.tasks.specs import TASK_NAMES, TaskSpec, get_task
from maestromotif.v1 import agent_pb2, agent_pb2_grpc, codegen_pb2, codegen_pb2_grpc, common_pb2, learner_pb2, learner_pb2_grpc

log = logging.getLogger("maestromotif.agent")

RESULT_METADATA_KEY = "maestromotif-generation-result-bin"
MAX_PROMPT_CHARS = 4_000
# Clients refuse response metadata beyond 8 KiB by default (grpc.max_metadata_size): a refusal's
# status details (percent-encoded) and its GenerationResult (base64, x4/3) must fit together, or
# the caller gets RESOURCE_EXHAUSTED "metadata size exceeds soft limit" instead of the report.
MAX_REFUSAL_DETAILS_CHARS = 1_000
MAX_METADATA_RESULT_BYTES = 4_000
MAX_NAME_ECHO = 64  # characters of a caller's task name quoted back in an error


class AgentConfig(ServiceConfig):
    inference: Literal["local", "learner"] = Field(
        "local", description="actions from a local checkpoint, or from the learner in serve mode")
    checkpoint: Path = Field(Path("runs/policy"), description="local inference: checkpoint file or experiment folder")
    device: str = Field("cpu", description="local inference device: cpu or cuda[:N]")
    learner_address: str = Field("127.0.0.1:50051", description="learner (serve mode) host:port")
    codegen_address: str = Field("127.0.0.1:50055", description="codegen service host:port")
    max_episodes_per_caller: int = Field(2, ge=1, le=1024, description="open episodes per caller (token or peer)")
    max_active_episodes: int = Field(16, ge=1, le=4096, description="open episodes in all")
    max_evaluate_episodes: int = Field(200, ge=1, le=100_000, description="largest Evaluate request")
    evaluate_batch: int = Field(4, ge=1, le=256, description="games played in lockstep by one Evaluate")
    compose_deadline_s: float = Field(900.0, gt=0, le=86_400, description="deadline of ComposeTask calls to codegen")
    max_episode_s: float = Field(900.0, gt=0, le=86_400, description=(
        "wall-clock limit of one PlayTask stream: then it is cancelled and its env and slot freed (a client that "
        "stops reading blocks the stream once gRPC's flow-control window is full, forever if it set no deadline)"))
    max_compose_calls: int = Field(4, ge=1, le=1024, description=(
        "ComposeTask calls waiting on codegen at once; more get RESOURCE_EXHAUSTED (each holds a handler thread)"))

    @model_validator(mode="after")
    def _check_threads(self) -> "AgentConfig":
        # Open episodes and ComposeTask calls each hold a handler thread for their whole length:
        # they must leave threads free for cheap calls (GetServerInfo, health), or a burst of them
        # would stall every caller instead of being refused.
        held = self.max_active_episodes + self.max_compose_calls
        if self.max_workers < held + 4:
            raise ValueError(f"max_workers: {self.max_workers} leaves no room for cheap calls beside "
                             f"max_active_episodes + max_compose_calls = {held} (need at least {held + 4})")
        return self


class _Metrics:
    def __init__(self, registry: Any) -> None:
        p = "maestromotif_agent_"
        self.episodes = Counter(p + "episodes_total", "Finished episodes by task and outcome "
                                "(success|failure|error|cancelled)", ["task", "outcome"], registry=registry)
        self.active = Gauge(p + "active_episodes", "Episodes being played now", registry=registry)
        self.rejected = Counter(p + "rejected_total", "Calls refused, by reason", ["reason"], registry=registry)
        self.success_ratio = Gauge(p + "task_success_ratio", "Success rate (legacy) of the last Evaluate of a task",
                                   ["task"], registry=registry)


def _caller(context: grpc.ServicerContext) -> str:
    """The bearer token (hashed) when the call carries one, else the peer's host."""
    for key, value in context.invocation_metadata() or ():
        if key == "authorization" and isinstance(value, str) and value.startswith("Bearer "):
            return "token:" + hashlib.sha256(value[7:].encode()).hexdigest()[:16]
    peer = context.peer() or "unknown"
    host = peer.rsplit(":", 1)[0] if peer.count(":") >= 2 else peer  # "ipv4:127.0.0.1:53712" -> ipv4:127.0.0.1
    return "peer:" + host


def _progress(o: TaskOutcome) -> agent_pb2.TaskProgress:
    return agent_pb2.TaskProgress(legacy_success=o.legacy_success, strict_success=o.strict_success,
                                  legacy_count=o.legacy_count, strict_count=o.strict_count,
                                  precondition_seen=o.precondition_seen)


def _encode_obs(obs: dict[str, np.ndarray], actor_id: str, seq: int, dones: np.ndarray) -> learner_pb2.EnvStepBatch:
    from services.actors.worker import _encode

    n = len(dones)
    return _encode(obs, np.zeros(n, np.float32), dones, np.zeros(n, np.uint8), actor_id, seq, [])


def _ascii(text: str, limit: int) -> str:
    """``text`` as printable ASCII (escapes for the rest), cut to ``limit`` characters."""
    escaped = text.encode("ascii", "backslashreplace").decode("ascii")
    return escaped if len(escaped) <= limit else escaped[: limit - 3] + "..."


def result_for_metadata(result: codegen_pb2.GenerationResult,
                        limit: int = MAX_METADATA_RESULT_BYTES) -> codegen_pb2.GenerationResult:
    """A copy of ``result`` that serializes to at most ``limit`` bytes, cut in order of what a
    caller needs least: the transcript first, then long texts (kept: the sha256 to fetch the whole
    artifact from codegen, the verdicts, the tail of the sandbox output)."""
    out = codegen_pb2.GenerationResult()
    out.CopyFrom(result)
    art = out.artifact
    steps = [
        lambda: art.ClearField("transcript_json"),
        lambda: setattr(art, "prompt", art.prompt[:300]),
        lambda: setattr(art, "tests", art.tests[:300]),
        lambda: setattr(art.validation, "sandbox_output", art.validation.sandbox_output[-1500:]),
        lambda: [setattr(c, "detail", c.detail[:200]) for c in art.validation.checks],
        lambda: setattr(art, "code", art.code[:1000]),
        lambda: [art.ClearField(f) for f in ("code", "prompt", "tests")],
        lambda: setattr(art.validation, "sandbox_output", art.validation.sandbox_output[-300:]),
        lambda: [setattr(c, "detail", "") for c in art.validation.checks],
        lambda: out.ClearField("sample_sha256"),
    ]
    for step in steps:
        if out.ByteSize() <= limit:
            break
        step()
    return out


class LearnerActions:
    """Actions from the learner's Act stream (serve mode), for one episode's games."""

    def __init__(self, channel: grpc.Channel, num_envs: int, deadline_s: float) -> None:
        import maestromotif

        self.stub = learner_pb2_grpc.LearnerStub(channel)
        resp = self.stub.RegisterActor(
            learner_pb2.RegisterActorRequest(actor_name="agent", num_envs=num_envs, version=maestromotif.__version__),
            timeout=deadline_s,
        )
        self.actor_id = resp.actor_id
        self.policy_version = int(resp.policy_version)
        self._out: queue.Queue[Any] = queue.Queue()
        self._responses = self.stub.Act(iter(self._out.get, None), timeout=24 * 3600.0)
        self._seq = 0

    def __call__(self, obs: dict[str, np.ndarray], dones: np.ndarray) -> np.ndarray:
        self._out.put(_encode_obs(obs, self.actor_id, self._seq, dones.astype(np.uint8)))
        resp = next(self._responses)
        if resp.sequence != self._seq:
            raise RuntimeError(f"learner answered sequence {resp.sequence}, expected {self._seq}")
        self._seq += 1
        self.policy_version = int(resp.policy_version)
        actions = np.frombuffer(resp.actions, np.uint8).astype(np.int64)
        if actions.shape != (len(dones),):
            raise RuntimeError(f"learner sent {actions.shape[0]} actions for {len(dones)} games")
        return actions

    def close(self) -> None:
        self._out.put(None)
        self._responses.cancel()


class _LocalModel:
    """The checkpoint's network, loaded on first use; reloaded when a newer checkpoint appears."""

    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._path: Path | None = None
        self._loaded: tuple[Any, dict[str, Any]] | None = None

    def get(self) -> tuple[Any, dict[str, Any], Path]:
        from maestromotif.training.acting import resolve_checkpoint
        from maestromotif.training.sf2 import load_policy_for_inference

        path = resolve_checkpoint(self.config.checkpoint)  # ValueError: none there
        with self._lock:
            if self._loaded is None or path != self._path:
                self._loaded = load_policy_for_inference(path, device=self.config.device)
                self._path = path
                log.info("loaded checkpoint", extra={"checkpoint": str(path)})
            return self._loaded[0], self._loaded[1], path

    def describe(self) -> tuple[str, str]:
        with self._lock:
            if self._loaded is None:
                return "", "not loaded yet"
            return str(self._loaded[1]["policy_version"]), str(self._path)


class AgentServicer(agent_pb2_grpc.AgentServicer):
    def __init__(self, config: AgentConfig, ctx: ServiceContext) -> None:
        self.config = config
        self.ctx = ctx
        self.metrics = _Metrics(ctx.registry)
        self.slots = CallerSlots(config.max_episodes_per_caller, config.max_active_episodes)
        self.compose_slots = threading.BoundedSemaphore(config.max_compose_calls)
        self.local = _LocalModel(config)
        self._codegen: codegen_pb2_grpc.CodegenStub | None = None
        self._learner_channel: grpc.Channel | None = None
        self._lock = threading.Lock()
        self.open_envs = 0  # games alive now (tests assert a cancelled stream frees its env)

    # ------------------------------------------------------------------ peers
    def codegen(self) -> codegen_pb2_grpc.CodegenStub:
        with self._lock:
            if self._codegen is None:
                self._codegen = codegen_pb2_grpc.CodegenStub(self.ctx.peer_channel(self.config.codegen_address))
            return self._codegen

    def learner_channel(self) -> grpc.Channel:
        with self._lock:
            if self._learner_channel is None:
                self._learner_channel = self.ctx.peer_channel(self.config.learner_address)
            return self._learner_channel

    def close(self) -> None:
        if self._learner_channel is not None:
            self._learner_channel.close()

    # ------------------------------------------------------------------ helpers
    def _reject(self, context: grpc.ServicerContext, reason: str, code: grpc.StatusCode, details: str) -> None:
        self.metrics.rejected.labels(reason=reason).inc()
        context.abort(code, details)

    def _resolve(self, selector: agent_pb2.TaskSelector, context: grpc.ServicerContext) -> tuple[TaskSpec, Any, str]:
        """(spec whose detector applies, policy factory, task label) of a TaskSelector."""
        source = selector.WhichOneof("source")
        if source == "task_name":
            name = selector.task_name
            if name not in TASK_NAMES:
                self._reject(context, "invalid_argument", grpc.StatusCode.INVALID_ARGUMENT,
                             f"task.task_name: unknown task {name[:MAX_NAME_ECHO]!r}; choose one of {', '.join(TASK_NAMES)}")
            from maestromotif.skills.reference import load_reference

            return get_task(name), (lambda: load_reference(name)), name
        if source == "artifact_sha256":
            detector = selector.detector_task or "gnomish"
            if detector not in TASK_NAMES:
                self._reject(context, "invalid_argument", grpc.StatusCode.INVALID_ARGUMENT,
                             f"task.detector_task: unknown task {detector[:MAX_NAME_ECHO]!r}; "
                             f"choose one of {', '.join(TASK_NAMES)}")
            factory = self._artifact_factory(selector.artifact_sha256, context)
            return get_task(detector), factory, detector
        self._reject(context, "invalid_argument", grpc.StatusCode.INVALID_ARGUMENT,
                     "task: set task_name or artifact_sha256")
        raise AssertionError("unreachable")

    def _artifact_factory(self, sha: str, context: grpc.ServicerContext) -> Any:
        """Fetch a TASK_POLICY artifact from codegen; only a validated one is loaded (and checked again here)."""
        import re

        from maestromotif.skills.sandbox import load_policy

        if not re.fullmatch(r"[0-9a-f]{64}", sha):
            self._reject(context, "invalid_argument", grpc.StatusCode.INVALID_ARGUMENT,
                         "task.artifact_sha256: expected 64 lowercase hex digits")
        try:
            art = self.codegen().GetArtifact(codegen_pb2.GetArtifactRequest(sha256=sha))
        except grpc.RpcError as exc:
            code = exc.code()  # type: ignore[attr-defined]
            self._reject(context, "artifact", code if code == grpc.StatusCode.NOT_FOUND else grpc.StatusCode.UNAVAILABLE,
                         f"artifact {sha}: codegen answered {code.name}: {exc.details()}")  # type: ignore[attr-defined]
        if art.kind != codegen_pb2.TASK_POLICY or not art.validation.valid:
            self._reject(context, "artifact", grpc.StatusCode.FAILED_PRECONDITION,
                         f"artifact {sha}: not a validated TASK_POLICY (kind {art.kind}, valid {art.validation.valid})")
        if hashlib.sha256(art.code.encode()).hexdigest() != sha:
            self._reject(context, "artifact", grpc.StatusCode.DATA_LOSS, f"artifact {sha}: code does not match its hash")
        code = art.code
        try:
            load_policy(code, name=f"artifact-{sha[:12]}")
        except Exception as exc:  # noqa: BLE001 - the sandbox's checker says what is wrong
            self._reject(context, "artifact", grpc.StatusCode.FAILED_PRECONDITION, f"artifact {sha}: {exc}")
        return lambda: load_policy(code, name=f"artifact-{sha[:12]}")

    def _actions(self, num_envs: int, context: grpc.ServicerContext, seed: int) -> tuple[Any, int, Any]:
        """(action source, policy version, closer) for ``num_envs`` games; local sampling is seeded."""
        if self.config.inference == "learner":
            try:
                src = LearnerActions(self.learner_channel(), num_envs, self.config.peer_deadline_s)
            except grpc.RpcError as exc:
                self._reject(context, "inference", grpc.StatusCode.UNAVAILABLE,
                             f"learner at {self.config.learner_address}: {exc.code().name}: {exc.details()}")  # type: ignore[attr-defined]
            return src, src.policy_version, src.close
        try:
            model, info, _ = self.local.get()
        except ValueError as exc:
            self._reject(context, "inference", grpc.StatusCode.FAILED_PRECONDITION,
                         f"no skill network to play with: {exc}")
        return NetworkActions(model, info, num_envs, seed=seed), int(info["policy_version"]), (lambda: None)

    def _slot(self, context: grpc.ServicerContext) -> str:
        caller = _caller(context)
        refused = self.slots.acquire(caller)
        if refused is not None:
            limit = self.config.max_episodes_per_caller if refused == "caller_limit" else self.config.max_active_episodes
            self._reject(context, refused, grpc.StatusCode.RESOURCE_EXHAUSTED,
                         f"{'this caller' if refused == 'caller_limit' else 'the server'} already has {limit} "
                         f"episodes open (the limit); wait for one to end")
        return caller

    def _should_stop(self, context: grpc.ServicerContext, cancelled: threading.Event) -> Any:
        return lambda: cancelled.is_set() or self.ctx.stopping.is_set() or not context.is_active()

    # ------------------------------------------------------------------ RPCs
    def ComposeTask(self, request: codegen_pb2.ComposeTaskRequest, context: grpc.ServicerContext) -> Any:
        if not request.prompt.strip() or len(request.prompt) > MAX_PROMPT_CHARS:
            self._reject(context, "invalid_argument", grpc.StatusCode.INVALID_ARGUMENT,
                         f"prompt: must be 1..{MAX_PROMPT_CHARS} characters (got {len(request.prompt)})")
        if not self.compose_slots.acquire(blocking=False):
            self._reject(context, "compose_limit", grpc.StatusCode.RESOURCE_EXHAUSTED,
                         f"the server already has {self.config.max_compose_calls} ComposeTask calls waiting on codegen "
                         "(the limit); try again later")
        try:
            result = self.codegen().ComposeTask(request, timeout=self.config.compose_deadline_s)
        except grpc.RpcError as exc:
            code = exc.code()  # type: ignore[attr-defined]
            said = _ascii(exc.details() or "", MAX_REFUSAL_DETAILS_CHARS)  # type: ignore[attr-defined]
            self._reject(context, "codegen", code, f"codegen ComposeTask: {code.name}: {said}")
        finally:
            self.compose_slots.release()
        report = result.artifact.validation
        if not report.valid:
            failed = [f"{c.name}: {c.detail}" for c in report.checks if not c.passed] or ["no check passed"]
            trimmed = result_for_metadata(result)
            context.set_trailing_metadata(((RESULT_METADATA_KEY, trimmed.SerializeToString()),))
            self._reject(context, "no_valid_policy", grpc.StatusCode.FAILED_PRECONDITION,
                         f"no valid policy over skills for this prompt (artifact {result.artifact.sha256[:12]}, "
                         f"{result.attempts} attempts); failed checks: "
                         + _ascii("; ".join(failed), MAX_REFUSAL_DETAILS_CHARS))
        return result

    def PlayTask(self, request: agent_pb2.PlayTaskRequest, context: grpc.ServicerContext) -> Iterator[Any]:
        spec, factory, label = self._resolve(request.task, context)
        max_steps = request.max_steps or MAX_STEPS
        if max_steps > MAX_STEPS:
            self._reject(context, "invalid_argument", grpc.StatusCode.INVALID_ARGUMENT,
                         f"max_steps: {max_steps} > {MAX_STEPS}")
        caller = self._slot(context)
        cancelled = threading.Event()
        game: TaskGame | None = None
        closer: Any = None
        outcome = "error"
        self.metrics.active.inc()
        # A handler blocked in a send (the client stopped reading) checks nothing: only cancelling
        # the call from outside ends it.
        watchdog = threading.Timer(self.config.max_episode_s, self._episode_timed_out, args=(context, label))
        watchdog.daemon = True
        watchdog.start()
        try:
            context.add_callback(cancelled.set)  # runs when the RPC ends for any reason, cancel included
            actions, version, closer = self._actions(1, context, int(request.seed))
            game = TaskGame(spec, factory(), max_steps=max_steps)
            with self._lock:
                self.open_envs += 1
            for ev in play_session(game, actions, int(request.seed), step_every=request.step_event_every,
                                   include_screen=request.include_screen,
                                   should_stop=self._should_stop(context, cancelled)):
                if isinstance(ev, StepInfo):
                    yield agent_pb2.PlayEvent(step=agent_pb2.StepEvent(
                        step=ev.step, turn=ev.turn, action=ev.action, skill=ev.skill, message=ev.message,
                        depth=ev.depth, dungeon_number=ev.dungeon, screen=ev.screen or "", progress=_progress(ev.progress)))
                elif isinstance(ev, SwitchInfo):
                    yield agent_pb2.PlayEvent(skill_switch=agent_pb2.SkillSwitchEvent(
                        step=ev.step, from_skill=ev.from_skill, to_skill=ev.to_skill))
                elif isinstance(ev, MessageInfo):
                    yield agent_pb2.PlayEvent(message=agent_pb2.GameMessageEvent(step=ev.step, text=ev.text))
                elif isinstance(ev, EndInfo):
                    outcome = {"cancelled": "cancelled", "policy_error": "error"}.get(
                        ev.reason, "success" if (ev.success or (spec.metric == "count" and ev.count > 0)) else "failure")
                    if ev.reason == "cancelled":
                        return
                    yield agent_pb2.PlayEvent(end=agent_pb2.EpisodeEndEvent(
                        steps=ev.steps, success=ev.success, count=ev.count, reason=ev.reason, error=ev.error,
                        skill_steps=ev.skill_steps, progress=_progress(ev.progress), policy_version=version))
        except GeneratorExit:
            outcome = "cancelled"
            raise
        finally:
            watchdog.cancel()
            if game is not None:
                game.close()
                with self._lock:
                    self.open_envs -= 1
            if closer is not None:
                closer()
            self.slots.release(caller)
            self.metrics.active.dec()
            self.metrics.episodes.labels(task=label, outcome=outcome).inc()

    def _episode_timed_out(self, context: grpc.ServicerContext, label: str) -> None:
        if context.is_active():
            log.warning("PlayTask stream cancelled: open longer than max_episode_s",
                        extra={"task": label, "max_episode_s": self.config.max_episode_s})
            context.cancel()

    def Evaluate(self, request: agent_pb2.EvaluateRequest, context: grpc.ServicerContext) -> Any:
        spec, factory, label = self._resolve(request.task, context)
        n = int(request.episodes)
        if not 1 <= n <= self.config.max_evaluate_episodes:
            self._reject(context, "invalid_argument", grpc.StatusCode.INVALID_ARGUMENT,
                         f"episodes: {n} not in [1, {self.config.max_evaluate_episodes}]")
        max_steps = request.max_steps or MAX_STEPS
        if max_steps > MAX_STEPS:
            self._reject(context, "invalid_argument", grpc.StatusCode.INVALID_ARGUMENT, f"max_steps: {max_steps} > {MAX_STEPS}")
        caller = self._slot(context)
        cancelled = threading.Event()
        context.add_callback(cancelled.set)
        batch = min(self.config.evaluate_batch, n)
        closer: Any = None
        self.metrics.active.inc()
        try:
            actions, version, closer = self._actions(batch, context, int(request.seed))
            seeds = [int(request.seed) + i for i in range(n)]
            with self._lock:
                self.open_envs += batch
            try:
                records = play_episodes(spec, factory, actions, seeds, condition="trained", batch=batch,
                                        max_steps=max_steps, should_stop=self._should_stop(context, cancelled))
            except TaskEvaluationError as exc:
                self._reject(context, "invalid_argument", grpc.StatusCode.INVALID_ARGUMENT, str(exc))
            finally:
                with self._lock:
                    self.open_envs -= batch
            if len(records) < n:
                self.metrics.episodes.labels(task=label, outcome="cancelled").inc(n - len(records))
                context.abort(grpc.StatusCode.CANCELLED, f"evaluation stopped after {len(records)} of {n} episodes")
            for r in records:
                ok = r.legacy_success if spec.metric == "success" else r.legacy_count > 0
                outcome = "error" if r.policy_failures else ("success" if ok else "failure")
                self.metrics.episodes.labels(task=label, outcome=outcome).inc()
            s = condition_summary(spec, records)
            resp = agent_pb2.EvaluateResponse(episodes=n, policy_errors=sum(r.policy_failures > 0 for r in records),
                                              policy_version=version, metric=spec.metric, mean_steps=s["mean_steps"])
            if spec.metric == "success":
                lg, st = s["legacy"], s["strict"]
                resp.success_rate, resp.success_ci_low, resp.success_ci_high = lg["rate"], lg["ci_low"], lg["ci_high"]
                resp.strict_success_rate, resp.strict_success_ci_low, resp.strict_success_ci_high = (
                    st["rate"], st["ci_low"], st["ci_high"])
                self.metrics.success_ratio.labels(task=label).set(lg["rate"])
            else:
                lg, st = s["legacy"], s["strict"]
                resp.mean_count, resp.count_stderr = lg["mean"], _finite(lg["stderr"])
                resp.strict_mean_count, resp.strict_count_stderr = st["mean"], _finite(st["stderr"])
            return resp
        finally:
            if closer is not None:
                closer()
            self.slots.release(caller)
            self.metrics.active.dec()

    def GetServerInfo(self, request: common_pb2.GetServerInfoRequest, context: grpc.ServicerContext) -> Any:
        import maestromotif

        version, checkpoint = self.local.describe()
        details = {
            "inference": self.config.inference,
            "tasks": ",".join(TASK_NAMES),
            "max_episodes_per_caller": str(self.config.max_episodes_per_caller),
            "codegen_address": self.config.codegen_address,
        }
        if self.config.inference == "local":
            details["checkpoint"] = checkpoint if version else f"{self.config.checkpoint} ({checkpoint})"
        else:
            details["learner_address"] = self.config.learner_address
        return common_pb2.ServerInfo(service="agent", version=maestromotif.__version__, model_version=version,
                                     details=details)


def _finite(x: float) -> float:
    return 0.0 if x is None or x != x else float(x)


def build(config: AgentConfig, ctx: ServiceContext) -> Any:
    servicer = AgentServicer(config, ctx)
    agent_pb2_grpc.add_AgentServicer_to_server(servicer, ctx.server)
    ctx.agent = servicer  # type: ignore[attr-defined]  # tests reach the servicer through this
    return servicer.close


SPEC = ServiceSpec(
    name="agent",
    config_cls=AgentConfig,
    build=build,
    default_port=50056,
    default_metrics_port=9096,
    depends_on=("codegen",),
    description="Agent API: compose, play and evaluate tasks with the trained skills (actors' agent mode).",
)
