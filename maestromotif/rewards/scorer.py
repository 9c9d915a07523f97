"""Batched reward scoring for serving: dynamic batching, an LRU cache, hot reload.

:class:`RewardScorer` is the reward service's engine, kept free of gRPC so it
can be used and tested in-process. Callers hand it columnar numpy arrays; it

* merges concurrent calls into one model pass (waiting at most ``max_wait_s``
  for company, up to ``max_merge_rows`` rows),
* scores each merged batch with all five skill models (one pass per skill),
  only on the rows that are neither cached nor duplicates of another row,
* caches raw outputs by (bundle-set version, message, depth change) in a
  bounded LRU; shaped rewards depend on the message count, so they are always
  computed after the cache with :func:`shape_rewards`,
* reloads bundles when the root's manifest changes, swapping the whole set at
  once while calls in flight finish on the set they started with.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from maestromotif.rewards.bundles import BundleError, BundleSet, load_bundle_set, manifest_digest
from maestromotif.rewards.constants import ALPHA_LLM, COUNT_EXPONENT, NUM_SKILLS
from maestromotif.rewards.model import MESSAGE_LENGTH, STAT_CHANGE_DIM, pick_device
from maestromotif.rewards.shaping import shape_rewards

log = logging.getLogger(__name__)

KEY_BYTES = MESSAGE_LENGTH + 8  # message + float32 depth change + 4 zero bytes (rows of 33 uint64 words)
_HASH_MULTIPLIERS = (np.arange(1, KEY_BYTES // 8 + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)) | np.uint64(1)


@dataclass(frozen=True)
class ScoreResult:
    version: str
    raw: np.ndarray  # float32 [n, 5]
    shaped: np.ndarray  # float32 [n, 5]
    skill_rewards: np.ndarray  # float32 [n]
    cache_hits: int


class RawCache:
    """Bounded LRU of raw outputs (all five skills) keyed by bytes; thread-safe."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._data: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._data)

    def get_many(self, keys: list[bytes]) -> list[np.ndarray | None]:
        with self._lock:
            out: list[np.ndarray | None] = []
            for key in keys:
                value = self._data.get(key)
                if value is not None:
                    self._data.move_to_end(key)
                out.append(value)
            return out

    def put_many(self, keys: list[bytes], values: np.ndarray) -> None:
        if self.max_entries <= 0:
            return
        with self._lock:
            for key, value in zip(keys, values):
                self._data[key] = value
                self._data.move_to_end(key)
            while len(self._data) > self.max_entries:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


@dataclass
class _Job:
    messages: np.ndarray  # uint8 [n, 256]
    depth: np.ndarray  # float32 [n]: the only stat change the models read
    use_cache: bool
    future: Future[tuple[BundleSet, np.ndarray, np.ndarray]]  # (set, raw [n, 5], hit flags [n])

    def __len__(self) -> int:
        return len(self.depth)


def make_keys(messages: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """uint8 [n, 264]: each row's model input in bytes (message, float32 depth change, zero padding)."""
    keys = np.zeros((len(depth), KEY_BYTES), dtype=np.uint8)
    keys[:, :MESSAGE_LENGTH] = messages
    keys[:, MESSAGE_LENGTH : MESSAGE_LENGTH + 4] = (depth.astype(np.float32) + np.float32(0.0)).view(np.uint8).reshape(-1, 4)
    return keys  # (+ 0.0 above turns -0.0 into 0.0: same model input, same key)


def unique_rows(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(unique key rows [u, KEY_BYTES], inverse [n]) with no per-row Python.

    Rows are grouped by a 64-bit hash (fast integer sort), then checked byte for
    byte against their group's representative; on a hash collision it falls back
    to an exact (slower) sort of the raw bytes, so the result is always exact.
    """
    words = keys.view(np.uint64)  # [n, 33]
    hashes = ((words ^ (words >> np.uint64(29))) * _HASH_MULTIPLIERS).sum(axis=1, dtype=np.uint64)
    _, first, inverse = np.unique(hashes, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    representatives = keys[first]
    if np.array_equal(representatives[inverse], keys):
        return representatives, inverse
    exact, inverse = np.unique(keys.view(np.dtype((np.void, KEY_BYTES))).ravel(), return_inverse=True)
    return exact.view(np.uint8).reshape(-1, KEY_BYTES), inverse.reshape(-1)


class RewardScorer:
    """Scores (message, stat change) batches with the five skill models; see the module doc."""

    def __init__(
        self,
        bundle_dir: str | Path | None,
        *,
        device: str | None = None,
        init_random: bool = False,
        seed: int = 0,
        cache_size: int = 200_000,
        max_wait_s: float = 0.002,
        max_merge_rows: int = 16_384,
        target_rows: int = 4_096,
        forward_batch: int = 8_192,
        scale: float = ALPHA_LLM,
        count_exponent: float = COUNT_EXPONENT,
        on_forward: Callable[[int], None] | None = None,
        on_reload: Callable[[BundleSet], None] | None = None,
        on_reload_failed: Callable[[str], None] | None = None,
    ) -> None:
        self.bundle_dir = Path(bundle_dir) if bundle_dir is not None else None
        self.device = pick_device(device)
        self.init_random = init_random
        self.seed = seed
        self.scale = scale
        self.count_exponent = count_exponent
        self.max_wait_s = max_wait_s
        self.max_merge_rows = max_merge_rows
        self.target_rows = min(target_rows, max_merge_rows)  # enough rows to stop waiting for company
        self.forward_batch = forward_batch
        self.cache = RawCache(cache_size)
        self._on_forward = on_forward
        self._on_reload = on_reload
        self._on_reload_failed = on_reload_failed
        self._set = load_bundle_set(self.bundle_dir, device=self.device, init_random_missing=init_random, seed=seed)
        self._set_lock = threading.Lock()
        self._reload_lock = threading.Lock()
        self._failed_digest: str | None = None
        self.last_reload_error: str | None = None
        self.reloads = 0
        self._pending: list[_Job] = []
        self._cond = threading.Condition()
        self._closed = False
        self._batcher = threading.Thread(target=self._batch_loop, name="reward-batcher", daemon=True)
        self._batcher.start()
        self._watcher: threading.Thread | None = None
        self._stop_watch = threading.Event()

    # ------------------------------------------------------------------ public

    @property
    def bundle_set(self) -> BundleSet:
        with self._set_lock:
            return self._set

    @property
    def version(self) -> str:
        return self.bundle_set.version

    def score(
        self,
        skills: np.ndarray,
        messages: np.ndarray,
        stat_changes: np.ndarray,
        message_counts: np.ndarray,
        *,
        use_cache: bool = True,
        timeout: float | None = 60.0,
    ) -> ScoreResult:
        """Score n transitions: skills uint8 [n], messages uint8 [n, 256], stat_changes float32 [n, 5],
        message_counts float32 [n] (>= 1). Inputs must already be validated (see ``validate``)."""
        job = _Job(messages, np.ascontiguousarray(stat_changes[:, 0], dtype=np.float32), use_cache, Future())
        with self._cond:
            if self._closed:
                raise RuntimeError("reward scorer is closed")
            self._pending.append(job)
            self._cond.notify()
        bundle_set, raw, hits = job.future.result(timeout=timeout)
        return self._finish(bundle_set, skills, raw, hits, message_counts)

    def _finish(
        self, bundle_set: BundleSet, skills: np.ndarray, raw: np.ndarray, hits: np.ndarray, counts: np.ndarray
    ) -> ScoreResult:
        shaped = shape_rewards(
            torch.from_numpy(raw),
            bundle_set.mean.cpu(),
            bundle_set.std.cpu(),
            bundle_set.threshold.cpu(),
            torch.from_numpy(np.array(counts, dtype=np.float32)),  # a copy: the input may be a read-only buffer view
            scale=self.scale,
            count_exponent=self.count_exponent,
        ).numpy()
        own = shaped[np.arange(len(skills)), skills.astype(np.int64)]
        return ScoreResult(bundle_set.version, raw, shaped, own, int(hits.sum()))

    def reload_if_changed(self) -> bool:
        """Load the bundle set again if the manifest changed; True when a new set was swapped in.

        A set that fails validation is logged and skipped (the old one keeps
        serving) until the manifest changes again.
        """
        if self.bundle_dir is None:
            return False
        with self._reload_lock:
            digest = manifest_digest(self.bundle_dir)
            if digest == self.bundle_set.manifest_digest or digest == self._failed_digest or not digest:
                return False
            try:
                new = load_bundle_set(
                    self.bundle_dir, device=self.device, init_random_missing=self.init_random, seed=self.seed
                )
            except (BundleError, OSError) as exc:
                self._failed_digest = digest
                self.last_reload_error = str(exc)
                log.error("reward bundle reload failed; still serving %s: %s", self.version, exc)
                if self._on_reload_failed is not None:
                    self._on_reload_failed(str(exc))
                return False
            self._failed_digest = None
            self.last_reload_error = None
            with self._set_lock:
                old, self._set = self._set, new
            if new.version != old.version:
                self.cache.clear()  # old-version entries can never hit again
            self.reloads += 1
            log.info("reward bundles reloaded: %s -> %s", old.version, new.version)
            if self._on_reload is not None:
                self._on_reload(new)
            return True

    def start_watching(self, interval_s: float = 1.0) -> None:
        """Poll the manifest every ``interval_s`` seconds in a background thread."""
        if self._watcher is not None or self.bundle_dir is None:
            return

        def loop() -> None:
            while not self._stop_watch.wait(interval_s):
                try:
                    self.reload_if_changed()
                except Exception:  # noqa: BLE001 - the watcher must survive anything a reload throws
                    log.exception("reward bundle watcher")

        self._watcher = threading.Thread(target=loop, name="reward-bundle-watch", daemon=True)
        self._watcher.start()

    def close(self) -> None:
        self._stop_watch.set()
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._batcher.join(timeout=10)
        if self._watcher is not None:
            self._watcher.join(timeout=10)

    # ------------------------------------------------------------------ batching

    def _take_jobs(self) -> list[_Job] | None:
        """Block for a first job, then wait up to max_wait_s for more (up to max_merge_rows)."""
        with self._cond:
            while not self._pending and not self._closed:
                self._cond.wait()
            if not self._pending:
                return None
            deadline = time.monotonic() + self.max_wait_s
            while not self._closed:
                rows = sum(len(j) for j in self._pending)
                remaining = deadline - time.monotonic()
                if rows >= self.target_rows or remaining <= 0:
                    break
                self._cond.wait(remaining)
            taken, rows = [], 0
            while self._pending and (not taken or rows + len(self._pending[0]) <= self.max_merge_rows):
                job = self._pending.pop(0)
                taken.append(job)
                rows += len(job)
            return taken

    def _batch_loop(self) -> None:
        torch.set_grad_enabled(False)
        while True:
            jobs = self._take_jobs()
            if jobs is None:
                return
            try:
                self._run(jobs)
            except BaseException as exc:  # noqa: BLE001 - hand the failure to the callers, keep batching
                for job in jobs:
                    if not job.future.done():
                        job.future.set_exception(exc)

    def _run(self, jobs: list[_Job]) -> None:
        bundle_set = self.bundle_set  # one set for the whole merged batch
        cached = [j for j in jobs if j.use_cache]
        direct = [j for j in jobs if not j.use_cache]
        if direct:
            messages, depth = self._merge(direct)
            raw = self._forward(bundle_set, messages, depth)
            self._deliver(direct, bundle_set, raw, np.zeros(len(depth), dtype=bool))
        if cached:
            messages, depth = self._merge(cached)
            raw, hits = self._cached_forward(bundle_set, make_keys(messages, depth))
            self._deliver(cached, bundle_set, raw, hits)

    @staticmethod
    def _merge(jobs: list[_Job]) -> tuple[np.ndarray, np.ndarray]:
        if len(jobs) == 1:
            return jobs[0].messages, jobs[0].depth
        return np.concatenate([j.messages for j in jobs]), np.concatenate([j.depth for j in jobs])

    def _deliver(self, jobs: list[_Job], bundle_set: BundleSet, raw: np.ndarray, hits: np.ndarray) -> None:
        start = 0
        for job in jobs:
            stop = start + len(job)
            job.future.set_result((bundle_set, raw[start:stop], hits[start:stop]))
            start = stop

    def _cached_forward(self, bundle_set: BundleSet, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Raw outputs [n, 5] and per-row cache-hit flags; scores only unique, uncached rows."""
        rows, inverse = unique_rows(keys)
        prefix = bundle_set.version.encode()
        cache_keys = [prefix + row.tobytes() for row in rows]  # one per distinct input, not per sample
        found = self.cache.get_many(cache_keys)
        hit = np.fromiter((v is not None for v in found), dtype=bool, count=len(found))
        values = np.empty((len(rows), NUM_SKILLS), dtype=np.float32)
        if hit.any():
            values[hit] = np.stack([v for v in found if v is not None])
        miss = np.flatnonzero(~hit)
        if len(miss):
            todo = rows[miss]
            depth = np.ascontiguousarray(todo[:, MESSAGE_LENGTH : MESSAGE_LENGTH + 4]).view(np.float32).reshape(-1)
            computed = self._forward(bundle_set, todo[:, :MESSAGE_LENGTH], depth)
            values[miss] = computed
            self.cache.put_many([cache_keys[i] for i in miss], computed.copy())
        return values[inverse], hit[inverse]

    def _forward(self, bundle_set: BundleSet, messages: np.ndarray, depth: np.ndarray) -> np.ndarray:
        """Run the ensemble on messages uint8 [n, 256] and depth changes float32 [n] in chunks; float32 [n, 5]."""
        n = len(depth)
        out = np.empty((n, NUM_SKILLS), dtype=np.float32)
        device = bundle_set.device
        for start in range(0, n, self.forward_batch):
            stop = min(n, start + self.forward_batch)
            rows = stop - start
            # On CUDA, pad to a power-of-two row count: cuDNN builds a plan for every new input shape,
            # and the cache's small, ever-changing miss batches would otherwise pay that each time.
            padded = min(self.forward_batch, max(16, 1 << (rows - 1).bit_length())) if device.type == "cuda" else rows
            m_host = np.zeros((padded, MESSAGE_LENGTH), dtype=np.uint8)  # a copy: request buffers are read-only
            m_host[:rows] = messages[start:stop]
            d_host = np.zeros(padded, dtype=np.float32)
            d_host[:rows] = depth[start:stop]
            m = torch.from_numpy(m_host).to(device, non_blocking=True)
            stats = torch.zeros(padded, STAT_CHANGE_DIM, device=device)
            stats[:, 0] = torch.from_numpy(d_host).to(device)
            with torch.inference_mode():
                out[start:stop] = bundle_set.ensemble(m, stats)[:rows].float().cpu().numpy()
        if self._on_forward is not None:
            self._on_forward(n)
        return out


class BatchError(ValueError):
    """An invalid scoring batch; the message names the field and the reason."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field


def parse_batch(
    count: int,
    skills: bytes,
    messages: bytes,
    stat_changes: bytes,
    message_counts: bytes,
    *,
    max_batch_size: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Columnar little-endian bytes -> validated (skills uint8 [n], messages uint8 [n, 256],
    stat_changes float32 [n, 5], message_counts float32 [n]); BatchError otherwise.

    Zero-copy views (np.frombuffer) plus vectorized checks: no per-sample loop.
    """
    if count <= 0:
        raise BatchError("count", "empty batch (count must be >= 1)")
    if count > max_batch_size:
        raise BatchError("count", f"{count} transitions, more than the maximum batch size {max_batch_size}")

    def expect(field: str, data: bytes, per_row: int, unit: str) -> None:
        if len(data) != count * per_row:
            raise BatchError(
                field, f"expected count*{per_row} = {count * per_row} bytes ({unit}), got {len(data)}"
            )

    expect("skills", skills, 1, "uint8 per transition")
    expect("messages", messages, MESSAGE_LENGTH, f"{MESSAGE_LENGTH} bytes per message, zero-padded; longer messages are not allowed")
    expect("stat_changes", stat_changes, 4 * STAT_CHANGE_DIM, f"float32[{STAT_CHANGE_DIM}] per transition")
    expect("message_counts", message_counts, 4, "float32 per transition")
    skill_arr = np.frombuffer(skills, dtype=np.uint8)
    bad = np.flatnonzero(skill_arr >= NUM_SKILLS)
    if len(bad):
        raise BatchError("skills", f"row {int(bad[0])}: unknown skill id {int(skill_arr[bad[0]])} (valid: 0..{NUM_SKILLS - 1})")
    message_arr = np.frombuffer(messages, dtype=np.uint8).reshape(count, MESSAGE_LENGTH)
    stats = np.frombuffer(stat_changes, dtype="<f4").reshape(count, STAT_CHANGE_DIM)
    finite = np.isfinite(stats)
    if not finite.all():
        row = int(np.flatnonzero(~finite.all(axis=1))[0])
        raise BatchError("stat_changes", f"row {row}: non-finite value (NaN or infinity)")
    outside = np.abs(stats) > 1.0
    if outside.any():
        row = int(np.flatnonzero(outside.any(axis=1))[0])
        raise BatchError("stat_changes", f"row {row}: values must be clipped to [-1, 1]")
    counts = np.frombuffer(message_counts, dtype="<f4")
    ok = np.isfinite(counts) & (counts >= 1.0)
    if not ok.all():
        row = int(np.flatnonzero(~ok)[0])
        raise BatchError("message_counts", f"row {row}: {float(counts[row])} is not a finite count >= 1")
    return skill_arr, message_arr, stats, counts
