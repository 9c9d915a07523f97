"""Annotator service: labels pairs of transitions with an LLM (``maestromotif.v1.Annotator``).

Runs on the service kit. ``AnnotatePairs`` labels a small inline batch;
``StartJob`` labels one shard of a pair dataset on the server's storage as a
resumable, exactly-once job (``maestromotif.annotation.job``). Paths in
requests are confined to ``data_root``.
"""

from __future__ import annotations

import logging
import math
import os
import re
import threading
from pathlib import Path
from typing import Literal

import grpc
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from pydantic import Field

from maestromotif import __version__
from maestromotif.annotation.job import FAILED, RUNNING, SUCCEEDED, WAITING, AnnotationJob, JobSpec, JobStatus
from maestromotif.annotation.schema import DatasetError, Transition, compute_pair_id
from maestromotif.annotation.strategies import (
    DEFAULT_DEPTH_PRIOR,
    AnnotationObserver,
    Annotator,
    ScoreCache,
    default_strategy,
    label_source,
)
from maestromotif.kit import ServiceConfig, ServiceContext, ServiceSpec
from maestromotif.llm import BackendUnavailable, LLMBackend, LLMError, ScoringUnsupported, make_backend
from maestromotif.skills.ids import SKILL_NAMES, Skill
from maestromotif.v1 import annotator_pb2, annotator_pb2_grpc, common_pb2

log = logging.getLogger(__name__)

_PAIR_ID_RE = re.compile(r"[0-9a-f]{32}")
_MAX_PATH_CHARS = 4096  # PATH_MAX on Linux


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):  # e.g. a component longer than NAME_MAX: no dataset there
        return False
_STATE = {RUNNING: annotator_pb2.RUNNING, SUCCEEDED: annotator_pb2.SUCCEEDED, FAILED: annotator_pb2.FAILED,
          WAITING: annotator_pb2.WAITING_FOR_BACKEND}


class AnnotatorConfig(ServiceConfig):
    backend: Literal["embedded", "openai", "tgi"] = Field("embedded", description="LLM backend kind.")
    llm_url: str = Field("", description="Base URL of the LLM server (openai, tgi).")
    model: str = Field("", description="Embedded: 0.5b or 1.5b; remote: model id (empty: ask the server).")
    model_dir: str = Field("", description="Cache directory of the assembled embedded model (empty: default).")
    llm_timeout_s: float = Field(120.0, gt=0, le=3600, description="Timeout of one LLM request.")
    llm_concurrency: int = Field(8, ge=1, le=256, description="Concurrent requests to a remote LLM.")
    tgi_template: Literal["llama3", "chatml"] = Field("llama3", description="Prompt template for TGI /generate.")
    default_strategy: Literal["", "compare", "score"] = Field(
        "", description="Strategy when a request says DEFAULT (empty: score for embedded, compare otherwise).")
    tie_margin: float = Field(0.1, ge=0, le=100, description="Score strategy: |s1 - s2| at or below this is a tie.")
    depth_prior: float = Field(DEFAULT_DEPTH_PRIOR, ge=0, le=100,
                               description="Score strategy: weight of a HAND-CODED depth-direction prior from each "
                                           "skill's goal, added to the LLM's score (0, the default: the LLM alone).")
    max_pairs_per_call: int = Field(64, ge=1, le=4096, description="Largest AnnotatePairs batch accepted.")
    data_root: Path = Field(Path("data"), description="StartJob paths must lie under this directory.")
    max_jobs: int = Field(16, ge=1, le=1024, description="Jobs kept in memory (running or finished).")


class PromObserver(AnnotationObserver):
    def __init__(self, registry: CollectorRegistry) -> None:
        self.annotations = Counter("maestromotif_annotator_annotations_total", "Labels produced.",
                                   ["skill", "label"], registry=registry)
        self.parse_failures = Counter("maestromotif_annotator_parse_failures_total",
                                      "Replies without a verdict (final: also after the retry).", ["final"],
                                      registry=registry)
        self.latency = Histogram("maestromotif_annotator_llm_latency_seconds", "Latency of one LLM call.", ["kind"],
                                 buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120), registry=registry)
        self.tokens = Counter("maestromotif_annotator_llm_tokens_total", "Tokens processed by the LLM.",
                              ["direction"], registry=registry)
        self.tokens_per_second = Gauge("maestromotif_annotator_llm_tokens_per_second",
                                       "Tokens (prompt + completion) per second of the last LLM call.",
                                       registry=registry)
        self.cache_hits = Counter("maestromotif_annotator_cache_hits_total", "Score-cache hits.", registry=registry)
        self.llm_calls = Counter("maestromotif_annotator_llm_calls_total", "LLM calls.", ["kind"], registry=registry)

    def llm_call(self, kind: str, seconds: float, prompt_tokens: int, completion_tokens: int) -> None:
        self.llm_calls.labels(kind).inc()
        self.latency.labels(kind).observe(seconds)
        self.tokens.labels("prompt").inc(prompt_tokens)
        self.tokens.labels("completion").inc(completion_tokens)
        if seconds > 0:
            self.tokens_per_second.set((prompt_tokens + completion_tokens) / seconds)

    def cache_hit(self) -> None:
        self.cache_hits.inc()

    def parse_failure(self, final: bool) -> None:
        self.parse_failures.labels(str(final).lower()).inc()

    def label(self, skill: Skill, label: int) -> None:
        self.annotations.labels(SKILL_NAMES[int(skill)], str(label)).inc()


class BadRequest(ValueError):
    pass


def _stats(msg: common_pb2.GameStats) -> tuple[int, int, int, int, int, int]:
    return (msg.depth, msg.gold, msg.hp, msg.hp_max, msg.xp_level, msg.hunger)


def _transition(msg: annotator_pb2.Transition, where: str) -> Transition:
    try:
        return Transition(msg.previous_message, msg.current_message, _stats(msg.stats_before), _stats(msg.stats_after))
    except DatasetError as exc:
        raise BadRequest(f"{where}.{exc}") from None


class AnnotatorServicer(annotator_pb2_grpc.AnnotatorServicer):
    def __init__(self, config: AnnotatorConfig, backend: LLMBackend, registry: CollectorRegistry,
                 stopping: threading.Event) -> None:
        self.config = config
        self.backend = backend
        self.observer = PromObserver(registry)
        self.cache = ScoreCache()
        self.default = config.default_strategy or default_strategy(backend.kind)
        self._annotators: dict[str, Annotator] = {}
        self._jobs: dict[str, tuple[AnnotationJob, threading.Thread]] = {}
        self._lock = threading.Lock()
        self.stopping = stopping
        self.jobs_gauge = Gauge("maestromotif_annotator_jobs", "Annotation jobs by state.", ["state"], registry=registry)
        self.jobs_gauge.labels("running").set_function(lambda: self._count_jobs((RUNNING, WAITING)))
        for state in (SUCCEEDED, FAILED, WAITING):
            self.jobs_gauge.labels(state).set_function(lambda s=state: self._count_jobs((s,)))

    def _count_jobs(self, states: tuple[str, ...]) -> int:
        with self._lock:
            return sum(1 for job, _ in self._jobs.values() if job.snapshot().state in states)

    def _annotator(self, strategy: int) -> Annotator:
        name = {annotator_pb2.STRATEGY_DEFAULT: self.default, annotator_pb2.COMPARE: "compare",
                annotator_pb2.SCORE: "score"}.get(strategy)
        if name is None:
            raise BadRequest(f"strategy: {strategy} is not a Strategy value")
        if name == "score" and not self.backend.supports_scoring:
            raise ScoringUnsupported(f"backend {self.backend.kind} cannot score")
        with self._lock:
            if name not in self._annotators:
                self._annotators[name] = Annotator(self.backend, name, tie_margin=self.config.tie_margin,
                                                   depth_prior=self.config.depth_prior, cache=self.cache, observer=self.observer)
            return self._annotators[name]

    @staticmethod
    def _skill(value: int, where: str) -> Skill:
        if value not in range(len(Skill)):
            raise BadRequest(f"{where}: {value} is not a Skill value (0..{len(Skill) - 1})")
        return Skill(value)

    def AnnotatePairs(self, request: annotator_pb2.AnnotatePairsRequest, context: grpc.ServicerContext):
        try:
            skill = self._skill(request.skill, "skill")
            if not request.pairs:
                raise BadRequest("pairs: empty")
            if len(request.pairs) > self.config.max_pairs_per_call:
                raise BadRequest(f"pairs: {len(request.pairs)} pairs, more than {self.config.max_pairs_per_call}")
            parsed = []
            for i, pair in enumerate(request.pairs):
                first = _transition(pair.first, f"pairs[{i}].first")
                second = _transition(pair.second, f"pairs[{i}].second")
                pair_id = pair.pair_id or compute_pair_id(first, second)
                if not _PAIR_ID_RE.fullmatch(pair_id):  # match() let a trailing newline through
                    raise BadRequest(f"pairs[{i}].pair_id: {pair.pair_id[:40]!r} is not 32 lower-case hex chars")
                parsed.append((pair_id, first, second))
            annotator = self._annotator(request.strategy)
        except BadRequest as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except ScoringUnsupported as exc:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        response = annotator_pb2.AnnotatePairsResponse(model=annotator.model_id)
        for pair_id, first, second in parsed:
            if not context.is_active():
                context.abort(grpc.StatusCode.CANCELLED, "cancelled")
            try:
                result = annotator.annotate(skill, first, second, seed=1516 + int(pair_id[:8], 16) % 100_000)
            except BackendUnavailable as exc:
                context.abort(grpc.StatusCode.UNAVAILABLE, f"LLM backend unavailable: {exc}")
            except LLMError as exc:
                context.abort(grpc.StatusCode.INTERNAL, f"LLM backend error: {exc}")
            self.observer.label(skill, result.label)
            response.annotations.append(annotator_pb2.Annotation(
                pair_id=pair_id, skill=int(skill), label=result.label, raw_text=result.raw_text,
                first_score=0.0 if math.isnan(result.first_score) else result.first_score,
                second_score=0.0 if math.isnan(result.second_score) else result.second_score,
            ))
        return response

    def _confined(self, value: str, field: str) -> Path:
        if not value:
            raise BadRequest(f"{field}: empty")
        if len(value) > _MAX_PATH_CHARS or "\x00" in value:
            # resolve() raised ValueError (NUL) or OSError (name too long): UNKNOWN to the caller.
            raise BadRequest(f"{field}: not a usable path (NUL byte, or longer than {_MAX_PATH_CHARS} characters)")
        root = self.config.data_root.resolve()
        try:
            path = (root / value).resolve() if not os.path.isabs(value) else Path(value).resolve()
        except (OSError, ValueError, RuntimeError) as exc:
            raise BadRequest(f"{field}: {value[:80]!r} cannot be resolved ({type(exc).__name__})") from None
        if path != root and root not in path.parents:
            raise BadRequest(f"{field}: {value!r} is outside the data root {root}")
        return path

    def StartJob(self, request: annotator_pb2.StartJobRequest, context: grpc.ServicerContext):
        try:
            pairs_dir = self._confined(request.pairs_dir, "pairs_dir")
            labels_dir = self._confined(request.labels_dir, "labels_dir")
            if not _is_file(pairs_dir / "manifest.json"):
                raise BadRequest(f"pairs_dir: {request.pairs_dir!r} holds no pair dataset (manifest.json)")
            skills = tuple(sorted({self._skill(s, "skills") for s in request.skills})) or tuple(Skill)
            num_shards = request.num_shards or 1
            if request.shard_index >= num_shards:
                raise BadRequest(f"shard_index: {request.shard_index} not in [0, {num_shards})")
            annotator = self._annotator(request.strategy)
        except BadRequest as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except ScoringUnsupported as exc:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        spec = JobSpec(str(pairs_dir), str(labels_dir), skills, request.shard_index, num_shards)
        job_id = spec.job_id(annotator.strategy)
        with self._lock:
            existing = self._jobs.get(job_id)
            if existing and existing[1].is_alive():
                return self._status(existing[0].snapshot())
            # Only one job may write a given shard's ledger at a time.
            if sum(1 for _, t in self._jobs.values() if t.is_alive()) >= self.config.max_jobs:
                context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, f"{self.config.max_jobs} jobs already running")
            job = AnnotationJob(spec, annotator, concurrency=self.backend.max_concurrency)
            thread = threading.Thread(target=job.run, name=f"job-{job_id}", daemon=True)
            self._jobs[job_id] = (job, thread)
            self._evict_finished()
            thread.start()
        return self._status(job.snapshot())

    def _evict_finished(self) -> None:
        finished = [k for k, (_, t) in self._jobs.items() if not t.is_alive()]
        while len(self._jobs) > self.config.max_jobs and finished:
            del self._jobs[finished.pop(0)]

    @staticmethod
    def _status(status: JobStatus) -> annotator_pb2.JobStatus:
        out = annotator_pb2.JobStatus(job_id=status.job_id, state=_STATE[status.state],
                                      pairs_per_second=status.pairs_per_second, error=status.error[:2000])
        for skill, progress in sorted(status.progress.items()):
            out.progress.append(annotator_pb2.SkillProgress(skill=skill, total=progress.total, done=progress.done,
                                                            label_counts=progress.label_counts))
        return out

    def GetJobStatus(self, request: annotator_pb2.GetJobStatusRequest, context: grpc.ServicerContext):
        with self._lock:
            entry = self._jobs.get(request.job_id)
        if entry is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"job_id: {request.job_id[:64]!r} unknown")
        return self._status(entry[0].snapshot())

    def ListJobs(self, request: annotator_pb2.ListJobsRequest, context: grpc.ServicerContext):
        with self._lock:
            jobs = [job for job, _ in self._jobs.values()]
        return annotator_pb2.ListJobsResponse(jobs=[self._status(job.snapshot()) for job in jobs])

    def GetServerInfo(self, request: common_pb2.GetServerInfoRequest, context: grpc.ServicerContext):
        return common_pb2.ServerInfo(
            service="annotator", version=__version__, model_version=self.backend.model_id,
            details={"backend": self.backend.kind, "default_strategy": self.default,
                     "tie_margin": str(self.config.tie_margin), "supports_scoring": str(self.backend.supports_scoring),
                     "depth_prior": str(self.config.depth_prior),
                     "label_source": label_source(self.config.depth_prior)},
        )

    def close(self) -> None:
        with self._lock:
            jobs = list(self._jobs.values())
        for job, _ in jobs:
            job.stop_event.set()
        for _, thread in jobs:
            thread.join(timeout=30)
        self.backend.close()


def make_config_backend(config: AnnotatorConfig) -> LLMBackend:
    if config.backend == "embedded":
        return make_backend("embedded", model=config.model or "0.5b", model_dir=config.model_dir or None)
    if config.backend == "openai":
        return make_backend("openai", url=config.llm_url, model=config.model or None, timeout_s=config.llm_timeout_s,
                            max_concurrency=config.llm_concurrency)
    return make_backend("tgi", url=config.llm_url, model=config.model or "tgi", timeout_s=int(config.llm_timeout_s),
                        max_concurrency=config.llm_concurrency, template=config.tgi_template)


def build(config: AnnotatorConfig, ctx: ServiceContext):
    backend = make_config_backend(config)
    servicer = AnnotatorServicer(config, backend, ctx.registry, ctx.stopping)
    annotator_pb2_grpc.add_AnnotatorServicer_to_server(servicer, ctx.server)
    return [servicer.close]


SPEC = ServiceSpec(
    name="annotator", config_cls=AnnotatorConfig, build=build, default_port=50054, default_metrics_port=9094,
    description="Labels pairs of transitions for each skill with an LLM; resumable annotation jobs.",
)
