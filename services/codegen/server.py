"""Codegen service: an LLM writes skill functions and policies over skills (``maestromotif.v1.Codegen``).

A thin server on the service kit around ``maestromotif.codegen``: the generation loop
(prompt, extract, validate in an isolated process, repair), the artifact store (content
addressed, only validated artifacts load) and the validator. The LLM backend is the one the
annotator uses (``maestromotif.llm``). Generations run one at a time per backend that allows
only one (the embedded model); others wait up to ``queue_timeout_s`` and then get
RESOURCE_EXHAUSTED.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any, Literal

import grpc
from prometheus_client import CollectorRegistry, Counter, Histogram
from pydantic import Field

from maestromotif import __version__
from maestromotif.codegen import ArtifactKind
from maestromotif.codegen.artifacts import ArtifactError, ArtifactRecord, ArtifactStore
from maestromotif.codegen.generate import GenerationResult, Generator, Sampling
from maestromotif.codegen.prompts import PromptError
from maestromotif.codegen.validate import ValidationReport, validate_code
from maestromotif.fileio import NO_SPACE_ERRNOS
from maestromotif.kit import ServiceConfig, ServiceContext, ServiceSpec
from maestromotif.llm import BackendUnavailable, LLMBackend, LLMError, make_backend
from maestromotif.skills.ids import Skill
from maestromotif.v1 import codegen_pb2, codegen_pb2_grpc, common_pb2

log = logging.getLogger(__name__)

MAX_CODE_BYTES = 64 * 1024  # ValidateCode (codegen.proto)
_KIND_TO_PB = {ArtifactKind.SKILL_FUNCTIONS: codegen_pb2.SKILL_FUNCTIONS,
               ArtifactKind.TRAINING_POLICY: codegen_pb2.TRAINING_POLICY,
               ArtifactKind.TASK_POLICY: codegen_pb2.TASK_POLICY}
_PB_TO_KIND = {v: k for k, v in _KIND_TO_PB.items()}


class CodegenConfig(ServiceConfig):
    backend: Literal["embedded", "openai", "tgi"] = Field("embedded", description="LLM backend kind.")
    llm_url: str = Field("", description="Base URL of the LLM server (openai, tgi).")
    model: str = Field("", description="Embedded: 0.5b or 1.5b (empty: the codegen default); remote: model id.")
    model_dir: str = Field("", description="Cache directory of the assembled embedded model (empty: default).")
    n_ctx: int = Field(8192, ge=2048, le=32768, description="Embedded: context length in tokens.")
    llm_timeout_s: float = Field(600.0, gt=0, le=3600, description="Timeout of one remote LLM request.")
    tgi_template: Literal["llama3", "chatml"] = Field("llama3", description="Prompt template for TGI /generate.")
    store_dir: Path = Field(Path("data/artifacts"), description="Directory of the artifact store.")
    temperature: float = Field(0.2, ge=0, le=2, description="Default sampling temperature (method.md 8.2).")
    repair_temperature: float = Field(0.7, ge=0, le=2, description=(
        "Temperature of repair rounds (the method: 0.2 throughout; small models repeat a failing answer at 0.2)."))
    max_tokens: int = Field(900, ge=64, le=8192, description="Default and largest tokens per LLM reply.")
    max_repair_rounds: int = Field(3, ge=0, le=3, description="Default repair rounds after a failed validation.")
    samples: int = Field(1, ge=1, le=8, description="Default samples per request.")
    max_samples: int = Field(4, ge=1, le=8, description="Most samples a request may ask for.")
    reply_time_limit_s: float = Field(300.0, ge=1, le=3600, description="Wall-clock limit of one LLM reply.")
    queue_timeout_s: float = Field(600.0, ge=0, le=7200,
                                   description="How long a generation waits for the backend before RESOURCE_EXHAUSTED.")


class PromObserver:
    """The loop's events as the ``maestromotif_codegen_*`` metrics."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.generations = Counter("maestromotif_codegen_generations_total",
                                   "Generation requests answered, by kind and verdict of the chosen sample.",
                                   ["kind", "verdict"], registry=registry)
        self.stages = Counter("maestromotif_codegen_stage_verdicts_total", "Validation stage verdicts.",
                              ["stage", "verdict"], registry=registry)
        self.repairs = Histogram("maestromotif_codegen_repair_rounds", "Repair rounds taken per sample.",
                                 buckets=(0, 1, 2, 3), registry=registry)
        self.latency = Histogram("maestromotif_codegen_latency_seconds", "Wall-clock time of one generation request.",
                                 ["kind"], buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1200, 2400), registry=registry)
        self.tokens = Counter("maestromotif_codegen_tokens_total", "Tokens processed by the LLM.", ["direction"],
                              registry=registry)

    def llm_call(self, seconds: float, prompt_tokens: int, completion_tokens: int) -> None:
        self.tokens.labels("prompt").inc(prompt_tokens)
        self.tokens.labels("completion").inc(completion_tokens)

    def validation(self, report: ValidationReport) -> None:
        for stage in report.stages:
            self.stages.labels(stage.stage, "pass" if stage.passed else "fail").inc()

    def sample_done(self, kind: ArtifactKind, valid: bool, repair_rounds: int) -> None:
        self.repairs.observe(repair_rounds)

    def generation_done(self, kind: ArtifactKind, valid: bool, seconds: float) -> None:
        self.generations.labels(str(kind), "valid" if valid else "invalid").inc()
        self.latency.labels(str(kind)).observe(seconds)


class BadRequest(ValueError):
    pass


def report_to_pb(report: ValidationReport | dict[str, Any]) -> codegen_pb2.ValidationReport:
    data = report if isinstance(report, dict) else report.to_dict()
    out = codegen_pb2.ValidationReport(valid=bool(data.get("valid")),
                                       sandbox_output=str(data.get("sandbox_output") or "")[:8000])
    for stage in data.get("stages") or []:
        out.checks.append(codegen_pb2.ValidationCheck(name=str(stage.get("stage", "")), passed=bool(stage.get("passed")),
                                                      detail=str(stage.get("detail") or "")[:4000]))
    return out


def record_to_pb(sha: str, record: ArtifactRecord) -> codegen_pb2.Artifact:
    sampling = record.sampling
    generation = record.generation or {}
    return codegen_pb2.Artifact(
        sha256=sha, kind=_KIND_TO_PB[ArtifactKind(record.kind)], code=record.code,
        validation=report_to_pb(record.validation), prompt=record.prompt, model=record.model_id,
        sampling=codegen_pb2.SamplingSettings(
            temperature=sampling.temperature, max_tokens=sampling.max_tokens, seed=sampling.seed or 0,
            max_repair_rounds=int(generation.get("max_repair_rounds", 0)), samples=sampling.samples),
        created_unix=int(record.created.timestamp()),
        transcript_json=json.dumps([m.model_dump() for m in record.transcript], ensure_ascii=False),
        task_name=record.task or "", detector_task=record.detector_task or "",
        model_digest=record.model_digest, backend=record.backend, tests=record.tests or "",
    )


class CodegenServicer(codegen_pb2_grpc.CodegenServicer):
    def __init__(self, config: CodegenConfig, backend: LLMBackend, registry: CollectorRegistry,
                 stopping: threading.Event) -> None:
        self.config = config
        self.backend = backend
        self.store = ArtifactStore(config.store_dir)
        for stale in self.store.clean_temp():  # left by a writer killed mid-write (readers never see them)
            log.info("removed stale temp file %s", stale)
        self.observer = PromObserver(registry)
        self.generator = Generator(backend, self.store, observer=self.observer)
        self.stopping = stopping
        self._slots = threading.BoundedSemaphore(max(1, backend.max_concurrency))

    # -- helpers ---------------------------------------------------------------------------------

    def _sampling(self, msg: codegen_pb2.SamplingSettings) -> Sampling:
        c = self.config
        if msg.max_tokens > c.max_tokens:
            raise BadRequest(f"sampling.max_tokens: {msg.max_tokens} more than the server's limit {c.max_tokens}")
        if msg.samples > c.max_samples:
            raise BadRequest(f"sampling.samples: {msg.samples} more than the server's limit {c.max_samples}")
        if msg.max_repair_rounds > 3:
            raise BadRequest(f"sampling.max_repair_rounds: {msg.max_repair_rounds} more than 3")
        if msg.temperature < 0 or msg.temperature > 2 or msg.temperature != msg.temperature:
            raise BadRequest(f"sampling.temperature: {msg.temperature} not in [0, 2]")
        # zero values take the server's defaults (codegen.proto)
        return Sampling(
            temperature=msg.temperature or c.temperature,
            repair_temperature=c.repair_temperature,
            max_tokens=msg.max_tokens or c.max_tokens,
            seed=msg.seed,
            max_repair_rounds=msg.max_repair_rounds or c.max_repair_rounds,
            samples=msg.samples or c.samples,
            time_limit_s=c.reply_time_limit_s,
        )

    def _generate(self, context: grpc.ServicerContext, run: Any) -> codegen_pb2.GenerationResult:
        if not self._slots.acquire(timeout=self.config.queue_timeout_s):
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                          f"the LLM backend is busy; waited {self.config.queue_timeout_s:g} s")
        try:
            if self.stopping.is_set():
                context.abort(grpc.StatusCode.UNAVAILABLE, "server is shutting down")
            result: GenerationResult = run()
        except PromptError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except BackendUnavailable as exc:
            context.abort(grpc.StatusCode.UNAVAILABLE, f"LLM backend unavailable: {exc}")
        except LLMError as exc:
            context.abort(grpc.StatusCode.INTERNAL, f"LLM backend error: {exc}")
        except OSError as exc:  # the artifact store could not be written (WriteError names the file)
            code = grpc.StatusCode.RESOURCE_EXHAUSTED if exc.errno in NO_SPACE_ERRNOS else grpc.StatusCode.INTERNAL
            log.error("artifact store: %s", exc)
            context.abort(code, f"artifact store: {exc}")
        finally:
            self._slots.release()
        best = result.best
        return codegen_pb2.GenerationResult(
            artifact=record_to_pb(best.sha256, best.record), attempts=result.attempts,
            sample_sha256=[s.sha256 for s in result.samples], repair_rounds=best.repair_rounds,
        )

    # -- RPCs ------------------------------------------------------------------------------------

    def GenerateSkillFunctions(self, request: codegen_pb2.GenerateSkillFunctionsRequest, context: grpc.ServicerContext):
        try:
            for value in request.skills:
                if value not in range(len(Skill)):
                    raise BadRequest(f"skills: {value} is not a Skill value (0..{len(Skill) - 1})")
            skills = tuple(Skill(v) for v in request.skills)
            sampling = self._sampling(request.sampling)
        except (BadRequest, PromptError) as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        return self._generate(context, lambda: self.generator.skill_functions(skills, sampling=sampling))

    def GenerateTrainingPolicy(self, request: codegen_pb2.GenerateTrainingPolicyRequest, context: grpc.ServicerContext):
        try:
            sampling = self._sampling(request.sampling)
        except (BadRequest, PromptError) as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        return self._generate(context, lambda: self.generator.training_policy(sampling=sampling))

    def ComposeTask(self, request: codegen_pb2.ComposeTaskRequest, context: grpc.ServicerContext):
        try:
            sampling = self._sampling(request.sampling)
        except (BadRequest, PromptError) as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        return self._generate(context, lambda: self.generator.compose_task(
            request.prompt, task_name=request.task_name, detector_task=request.detector_task, sampling=sampling))

    def ValidateCode(self, request: codegen_pb2.ValidateCodeRequest, context: grpc.ServicerContext):
        kind = _PB_TO_KIND.get(request.kind)
        if kind is None:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          "kind: must be SKILL_FUNCTIONS, TRAINING_POLICY or TASK_POLICY")
        if len(request.code.encode("utf-8")) > MAX_CODE_BYTES:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"code: {len(request.code.encode('utf-8'))} bytes, more than {MAX_CODE_BYTES}")
        report = validate_code(request.code, kind)
        self.observer.validation(report)
        return report_to_pb(report)

    def GetArtifact(self, request: codegen_pb2.GetArtifactRequest, context: grpc.ServicerContext):
        sha = request.sha256
        if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"sha256: {sha[:80]!r} is not 64 lower-case hex digits")
        try:
            record = self.store.get(sha)
        except ArtifactError as exc:
            if not self.store.path(sha).exists():
                context.abort(grpc.StatusCode.NOT_FOUND, f"no artifact {sha}")
            context.abort(grpc.StatusCode.DATA_LOSS, str(exc))
        return record_to_pb(sha, record)

    def GetServerInfo(self, request: common_pb2.GetServerInfoRequest, context: grpc.ServicerContext):
        info = self.generator.info
        return common_pb2.ServerInfo(
            service="codegen", version=__version__, model_version=info.model,
            details={"backend": info.kind, "model_digest": info.digest, "store_dir": str(self.config.store_dir),
                     "temperature": str(self.config.temperature), "max_tokens": str(self.config.max_tokens),
                     "max_repair_rounds": str(self.config.max_repair_rounds), "samples": str(self.config.samples)},
        )

    def close(self) -> None:
        self.backend.close()


def make_config_backend(config: CodegenConfig) -> LLMBackend:
    from maestromotif.codegen.generate import make_codegen_backend

    if config.backend == "embedded":
        return make_codegen_backend("embedded", model=config.model, model_dir=config.model_dir or None,
                                    n_ctx=config.n_ctx)
    if config.backend == "openai":
        return make_backend("openai", url=config.llm_url, model=config.model or None, timeout_s=config.llm_timeout_s)
    return make_backend("tgi", url=config.llm_url, model=config.model or "tgi", timeout_s=int(config.llm_timeout_s),
                        template=config.tgi_template)


def build(config: CodegenConfig, ctx: ServiceContext):
    backend = make_config_backend(config)
    servicer = CodegenServicer(config, backend, ctx.registry, ctx.stopping)
    codegen_pb2_grpc.add_CodegenServicer_to_server(servicer, ctx.server)
    return [servicer.close]


SPEC = ServiceSpec(
    name="codegen", config_cls=CodegenConfig, build=build, default_port=50055, default_metrics_port=9095,
    description="An LLM writes skill functions and policies over skills; each is validated in an isolated process.",
)
