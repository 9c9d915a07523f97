"""The reward service: the five skill reward models behind the ``Reward`` API.

Scoring itself (dynamic batching, cache, hot reload) lives in
:class:`maestromotif.rewards.scorer.RewardScorer`; this module adds the gRPC
contract: columnar bytes in and out, input validation (INVALID_ARGUMENT naming
the field, while the service keeps serving) and metrics.

Run: ``maestromotif serve reward [--set bundle_dir=DIR] [--set init_random=true]``.
Without bundles the service refuses to start, unless ``init_random`` asks for
untrained models (smoke runs only: their rewards mean nothing).
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import grpc
import numpy as np
import torch
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from pydantic import Field

from maestromotif.kit import ConfigError, ServiceConfig, ServiceContext, ServiceSpec, call_budget_s
from maestromotif.rewards.bundles import BundleError, BundleSet
from maestromotif.rewards.model import NUM_PARAMETERS
from maestromotif.rewards.scorer import BatchError, RewardScorer, parse_batch
from maestromotif.v1 import common_pb2, reward_pb2, reward_pb2_grpc

log = logging.getLogger("maestromotif.services.reward")

_BATCH_BUCKETS = (1, 8, 32, 128, 512, 1024, 2048, 4096, 8192, 16384, 32768)
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class RewardConfig(ServiceConfig):
    """Reward service settings (``--set field=value`` or ``MAESTROMOTIF_REWARD_<FIELD>``)."""

    bundle_dir: Path | None = Field(
        Path("data/reward_bundles"), description="Bundle root written by `maestromotif train-reward`."
    )
    init_random: bool = Field(
        False, description="Serve untrained, freshly initialized models for skills without a bundle (smoke runs)."
    )
    seed: int = Field(0, description="Seed of the untrained models of init_random.")
    device: str = Field("auto", description="'auto' (CUDA when present), 'cpu', 'cuda', 'cuda:N'.")
    threads: int | None = Field(None, ge=1, le=256, description="torch CPU threads (default: torch's choice).")
    max_batch_size: int = Field(16384, ge=1, le=65536, description="Largest Score batch accepted.")
    batch_wait_ms: float = Field(2.0, ge=0.0, le=1000.0, description="How long a Score call waits to be merged.")
    max_merge_rows: int = Field(16384, ge=1, le=262144, description="Most rows merged into one model pass.")
    batch_target_rows: int = Field(
        4096, ge=1, le=262144, description="Rows at which a merged batch runs without waiting any longer."
    )
    forward_batch: int = Field(8192, ge=1, le=262144, description="Rows per forward chunk (bounds memory).")
    cache_enabled: bool = Field(True, description="Cache raw outputs by (version, message, depth change).")
    cache_size: int = Field(200_000, ge=0, le=50_000_000, description="LRU entries (about 0.5 KB each).")
    reload_interval_s: float = Field(
        2.0, ge=0.0, le=3600.0, description="How often the bundle manifest is checked for changes (0: never)."
    )


class RewardMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "maestromotif_reward_requests", "Score calls by outcome (ok, invalid, error).", ["outcome"], registry=registry
        )
        # Export every outcome from the start (at 0): an error-rate alert then sees the first error,
        # and a ratio over outcomes has a numerator before anything failed.
        for outcome in ("ok", "invalid", "error"):
            self.requests.labels(outcome)
        self.samples = Counter("maestromotif_reward_samples", "Transitions scored.", registry=registry)
        self.request_batch = Histogram(
            "maestromotif_reward_request_batch_size", "Transitions per Score call.", buckets=_BATCH_BUCKETS,
            registry=registry,
        )
        self.forward_batch = Histogram(
            "maestromotif_reward_batch_size", "Rows per merged model pass (after cache and de-duplication).",
            buckets=_BATCH_BUCKETS, registry=registry,
        )
        self.latency = Histogram(
            "maestromotif_reward_latency_seconds", "Score handling time.", buckets=_LATENCY_BUCKETS, registry=registry
        )
        self.cache_hits = Counter("maestromotif_reward_cache_hits", "Transitions answered from the cache.", registry=registry)
        self.cache_lookups = Counter(
            "maestromotif_reward_cache_lookups", "Transitions looked up in the cache.", registry=registry
        )
        self.cache_hit_ratio = Gauge(
            "maestromotif_reward_cache_hit_ratio", "Cache hits / lookups since start.", registry=registry
        )
        self.cache_entries = Gauge("maestromotif_reward_cache_entries", "Entries in the LRU cache.", registry=registry)
        self.model_info = Gauge(
            "maestromotif_reward_model_info", "1 for the bundle-set version being served.", ["version", "device"],
            registry=registry,
        )
        self.reloads = Counter(
            "maestromotif_reward_model_reloads", "Bundle reloads by result (ok, failed).", ["result"], registry=registry
        )
        self.trained = Gauge(
            "maestromotif_reward_model_trained", "1 if the skill's model is trained, 0 if untrained.", ["skill"],
            registry=registry,
        )
        self._lock = threading.Lock()
        self._hits = 0
        self._lookups = 0
        self._labels: tuple[str, str] | None = None

    def cache(self, hits: int, lookups: int) -> None:
        self.cache_hits.inc(hits)
        self.cache_lookups.inc(lookups)
        with self._lock:
            self._hits += hits
            self._lookups += lookups
            self.cache_hit_ratio.set(self._hits / self._lookups if self._lookups else 0.0)

    def model(self, bundle_set: BundleSet) -> None:
        with self._lock:
            if self._labels is not None:
                self.model_info.remove(*self._labels)
            self._labels = (bundle_set.version, str(bundle_set.device))
            self.model_info.labels(*self._labels).set(1)
        for meta in bundle_set.metas:
            self.trained.labels(meta.skill).set(1 if meta.trained else 0)


class RewardServicer(reward_pb2_grpc.RewardServicer):
    def __init__(self, config: RewardConfig, registry: CollectorRegistry) -> None:
        self.config = config
        self.metrics = RewardMetrics(registry)
        if config.threads:
            torch.set_num_threads(config.threads)
        try:
            self.scorer = RewardScorer(
                config.bundle_dir,
                device=config.device,
                init_random=config.init_random,
                seed=config.seed,
                cache_size=config.cache_size if config.cache_enabled else 0,
                max_wait_s=config.batch_wait_ms / 1000.0,
                max_merge_rows=config.max_merge_rows,
                target_rows=config.batch_target_rows,
                forward_batch=config.forward_batch,
                on_forward=self.metrics.forward_batch.observe,
                on_reload=self._reloaded,
                on_reload_failed=lambda _error: self.metrics.reloads.labels("failed").inc(),
            )
        except BundleError as exc:
            raise ConfigError(f"bundle_dir: {exc}") from exc
        except ValueError as exc:  # e.g. a CUDA device requested on a machine without one
            raise ConfigError(f"device: {exc}") from exc
        self.metrics.model(self.scorer.bundle_set)
        untrained = [m.skill for m in self.scorer.bundle_set.metas if not m.trained]
        if untrained:
            log.warning("serving UNTRAINED reward models for %s (init_random): rewards are meaningless", untrained)
        if config.reload_interval_s > 0:
            self.scorer.start_watching(config.reload_interval_s)

    def _reloaded(self, bundle_set: BundleSet) -> None:
        self.metrics.reloads.labels("ok").inc()
        self.metrics.model(bundle_set)

    def close(self) -> None:
        self.scorer.close()

    def Score(self, request: reward_pb2.ScoreRequest, context: grpc.ServicerContext) -> reward_pb2.ScoreResponse:
        started = time.perf_counter()
        try:
            skills, messages, stat_changes, counts = parse_batch(
                request.count,
                request.skills,
                request.messages,
                request.stat_changes,
                request.message_counts,
                max_batch_size=self.config.max_batch_size,
            )
        except BatchError as exc:
            self.metrics.requests.labels("invalid").inc()
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        try:
            result = self.scorer.score(
                skills, messages, stat_changes, counts,
                use_cache=self.config.cache_enabled,
                timeout=max(call_budget_s(context, self.config.max_call_s), 0.001),
            )
        except TimeoutError:
            self.metrics.requests.labels("error").inc()
            context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "scoring did not finish within the call's deadline")
        except Exception as exc:  # noqa: BLE001 - a model failure answers INTERNAL, the server keeps serving
            self.metrics.requests.labels("error").inc()
            log.exception("scoring failed")
            context.abort(grpc.StatusCode.INTERNAL, f"scoring failed: {type(exc).__name__}: {exc}")
        n = len(skills)
        self.metrics.requests.labels("ok").inc()
        self.metrics.samples.inc(n)
        self.metrics.request_batch.observe(n)
        if self.config.cache_enabled:
            self.metrics.cache(result.cache_hits, n)
            self.metrics.cache_entries.set(len(self.scorer.cache))
        self.metrics.latency.observe(time.perf_counter() - started)
        return reward_pb2.ScoreResponse(
            model_version=result.version,
            raw_rewards=np.ascontiguousarray(result.raw, dtype="<f4").tobytes(),
            shaped_rewards=np.ascontiguousarray(result.shaped, dtype="<f4").tobytes(),
            skill_rewards=np.ascontiguousarray(result.skill_rewards, dtype="<f4").tobytes(),
            cache_hits=result.cache_hits,
        )

    def GetModelInfo(
        self, request: reward_pb2.GetModelInfoRequest, context: grpc.ServicerContext
    ) -> reward_pb2.ModelInfo:
        bundle_set = self.scorer.bundle_set
        return reward_pb2.ModelInfo(
            model_version=bundle_set.version,
            skills=[
                reward_pb2.SkillModelInfo(
                    skill=common_pb2.Skill.Value(meta.skill.upper()),
                    bundle_version=meta.version,
                    mean=meta.mean,
                    std=meta.std,
                    threshold=meta.threshold,
                    num_parameters=NUM_PARAMETERS,
                )
                for meta in bundle_set.metas
            ],
            scale=self.scorer.scale,
            count_exponent=self.scorer.count_exponent,
            device=str(bundle_set.device),
            max_batch_size=self.config.max_batch_size,
        )


def build(config: RewardConfig, ctx: ServiceContext) -> list:
    servicer = RewardServicer(config, ctx.registry)
    reward_pb2_grpc.add_RewardServicer_to_server(servicer, ctx.server)
    return [servicer.close]


SPEC = ServiceSpec(
    name="reward",
    config_cls=RewardConfig,
    build=build,
    default_port=50053,
    default_metrics_port=9093,
    description="The five skill reward models: batched scoring, shaping, cache, hot reload.",
)

__all__ = ["SPEC", "RewardConfig", "RewardServicer"]
