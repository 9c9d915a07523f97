"""Resumable, exactly-once annotation of one shard of a pair dataset.

Every label goes into a SQLite ledger (one file per shard) the moment the LLM
answers, under the primary key (skill, pair_id) with ``INSERT OR IGNORE``: a
pair can never get two labels, and a ``kill -9`` at any moment loses at most
the answers in flight, which the same command asks again when re-run. Label
files are written from the ledger at the end (atomically; re-running rewrites
them identically), so the outputs always hold exactly one label per pair.

A backend that is down (``BackendUnavailable``) makes the job wait with
backoff and report ``waiting_for_backend``; nothing is skipped or lost.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from maestromotif.annotation.schema import (
    LABELS_SCHEMA,
    NUM_LABELS,
    LabelRecord,
    PairDataset,
    labels_table,
    read_pair_dataset,
    row_transitions,
    write_label_file,
)
from maestromotif.annotation.strategies import Annotation, Annotator
from maestromotif.llm.base import BackendResponseError, BackendUnavailable, ScoringUnsupported
from maestromotif.skills.ids import SKILL_NAMES, Skill

log = logging.getLogger(__name__)

RUNNING, SUCCEEDED, FAILED, WAITING = "running", "succeeded", "failed", "waiting_for_backend"


class JobError(RuntimeError):
    """The job cannot go on (bad input, ledger of another dataset, unusable backend)."""


def parse_shard(value: str | None, env: dict[str, str] | None = None) -> tuple[int, int]:
    """``I/N`` from the option, else ``JOB_COMPLETION_INDEX`` (Kubernetes Indexed Job) with
    ``MAESTROMOTIF_NUM_SHARDS``, else the whole dataset (0/1)."""
    env = dict(os.environ) if env is None else env
    if value:
        parts = value.split("/")
        if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
            raise ValueError(f"--shard: {value!r} is not I/N (e.g. 0/4)")
        index, count = int(parts[0]), int(parts[1])
    elif env.get("JOB_COMPLETION_INDEX") is not None:
        raw_index, raw_count = env["JOB_COMPLETION_INDEX"], env.get("MAESTROMOTIF_NUM_SHARDS", "")
        if not raw_index.isdigit() or not raw_count.isdigit():
            raise ValueError("JOB_COMPLETION_INDEX needs MAESTROMOTIF_NUM_SHARDS (both non-negative integers), got "
                             f"{raw_index!r} and {raw_count!r}")
        index, count = int(raw_index), int(raw_count)
    else:
        return 0, 1
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"shard index {index} not in [0, {count})")
    return index, count


class Ledger:
    """Append-only SQLite ledger of labels keyed by (skill, pair_id)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        with self._named():
            self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")  # a committed label survives power loss too
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS labels (skill INTEGER NOT NULL, pair_id TEXT NOT NULL,"
                " label INTEGER NOT NULL, raw_text TEXT NOT NULL, first_score REAL, second_score REAL,"
                " model TEXT NOT NULL, strategy TEXT NOT NULL, created REAL NOT NULL, PRIMARY KEY (skill, pair_id))"
            )
            self._db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")

    @contextlib.contextmanager
    def _named(self) -> Iterator[None]:
        """SQLite's errors ("database or disk is full", "file is not a database") name no file: add it."""
        try:
            yield
        except sqlite3.Error as exc:
            raise JobError(f"ledger {self.path}: {exc} (labels committed before are kept; "
                           "fix the cause and run again to resume)") from exc

    def bind(self, meta: dict[str, str]) -> None:
        """Tie the ledger to one dataset/shard/strategy; refuse to mix."""
        with self._lock, self._named():
            for key, value in meta.items():
                row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
                if row is None:
                    self._db.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (key, value))
                elif row[0] != value:
                    raise JobError(f"ledger {self.path}: {key} is {row[0]!r}, this job has {value!r}; "
                                   "use another --out or the original settings")

    def record(self, skill: int, pair_id: str, result: Annotation, model: str, strategy: str) -> bool:
        """Insert one label; False if the pair already had one (it is kept)."""
        with self._lock, self._named():
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO labels VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (skill, pair_id, result.label, result.raw_text, result.first_score, result.second_score, model,
                 strategy, time.time()),
            )
            return cursor.rowcount == 1

    def done_ids(self, skill: int) -> set[str]:
        with self._lock:
            return {r[0] for r in self._db.execute("SELECT pair_id FROM labels WHERE skill=?", (skill,))}

    def counts(self, skill: int) -> list[int]:
        out = [0] * NUM_LABELS
        with self._lock:
            for label, count in self._db.execute(
                "SELECT label, COUNT(*) FROM labels WHERE skill=? GROUP BY label", (skill,)
            ):
                out[int(label)] = int(count)
        return out

    def records(self, skill: int) -> list[LabelRecord]:
        with self._lock:
            rows = self._db.execute(
                "SELECT pair_id, label, raw_text, first_score, second_score, model, strategy FROM labels "
                "WHERE skill=? ORDER BY pair_id", (skill,)
            ).fetchall()
        nan = float("nan")
        return [LabelRecord(r[0], r[1], r[2], nan if r[3] is None else r[3], nan if r[4] is None else r[4], r[5], r[6])
                for r in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()


@dataclass
class SkillProgress:
    skill: Skill
    total: int = 0
    done: int = 0
    label_counts: list[int] = field(default_factory=lambda: [0] * NUM_LABELS)


@dataclass
class JobStatus:
    job_id: str
    state: str = RUNNING
    progress: dict[int, SkillProgress] = field(default_factory=dict)
    pairs_per_second: float = 0.0
    error: str = ""


@dataclass(frozen=True)
class JobSpec:
    pairs_dir: str
    labels_dir: str
    skills: tuple[Skill, ...] = tuple(Skill)
    shard_index: int = 0
    num_shards: int = 1

    def job_id(self, strategy: str) -> str:
        key = json.dumps([os.path.abspath(self.pairs_dir), os.path.abspath(self.labels_dir),
                          sorted(int(s) for s in self.skills), self.shard_index, self.num_shards, strategy])
        return hashlib.sha256(key.encode()).hexdigest()[:16]


class AnnotationJob:
    """Label one shard of a dataset for some skills; resumable; thread-safe status."""

    def __init__(self, spec: JobSpec, annotator: Annotator, *, concurrency: int | None = None,
                 wait_initial_s: float = 1.0, wait_max_s: float = 60.0, max_response_errors: int = 3,
                 on_progress: Callable[[int], None] | None = None) -> None:
        if not spec.skills:
            raise JobError("no skills to label")
        if spec.num_shards < 1 or not 0 <= spec.shard_index < spec.num_shards:
            raise JobError(f"shard index {spec.shard_index} not in [0, {spec.num_shards})")
        self.spec = spec
        self.annotator = annotator
        self.concurrency = max(1, concurrency or annotator.backend.max_concurrency)
        self.wait_initial_s = wait_initial_s
        self.wait_max_s = wait_max_s
        self.max_response_errors = max_response_errors
        self.on_progress = on_progress
        self.status = JobStatus(spec.job_id(annotator.strategy))
        self._status_lock = threading.Lock()
        self._recent: collections.deque[float] = collections.deque()
        self.stop_event = threading.Event()
        self._waiting = 0

    @property
    def shard_name(self) -> str:
        return f"shard{self.spec.shard_index:05d}-of-{self.spec.num_shards:05d}"

    def snapshot(self) -> JobStatus:
        with self._status_lock:
            now = time.monotonic()
            while self._recent and now - self._recent[0] > 60.0:
                self._recent.popleft()
            window = min(60.0, max(1e-9, now - self._recent[0])) if self._recent else 0.0
            rate = len(self._recent) / window if window else 0.0
            return JobStatus(
                self.status.job_id, self.status.state,
                {k: SkillProgress(v.skill, v.total, v.done, list(v.label_counts)) for k, v in self.status.progress.items()},
                rate, self.status.error,
            )

    def _set_state(self, state: str, error: str = "") -> None:
        with self._status_lock:
            self.status.state = state
            if error:
                self.status.error = error

    def run(self) -> JobStatus:
        try:
            self._run()
        except Exception as exc:
            self._set_state(FAILED, f"{type(exc).__name__}: {exc}")
            log.error("annotation job %s failed: %s", self.status.job_id, exc)
        return self.snapshot()

    def _run(self) -> None:
        dataset: PairDataset = read_pair_dataset(self.spec.pairs_dir)
        rows = dataset.shard(self.spec.shard_index, self.spec.num_shards).to_pylist()
        manifest_hash = hashlib.sha256(json.dumps(dataset.manifest, sort_keys=True).encode()).hexdigest()
        ledger = Ledger(Path(self.spec.labels_dir) / "ledger" / f"{self.shard_name}.sqlite")
        try:
            ledger.bind({"pairs_manifest_sha256": manifest_hash, "shard": self.shard_name,
                         "strategy": self.annotator.strategy, "model": self.annotator.model_id,
                         "settings": self.annotator.settings_fingerprint})
            for skill in self.spec.skills:
                done = ledger.done_ids(int(skill))
                with self._status_lock:
                    self.status.progress[int(skill)] = SkillProgress(skill, len(rows), len(done), ledger.counts(int(skill)))
            for skill in self.spec.skills:
                if self.stop_event.is_set():
                    break
                self._label_skill(ledger, skill, rows)
            if self.stop_event.is_set():
                self._set_state(FAILED, "stopped before the end; run again to resume")
                return
            for skill in self.spec.skills:
                self._write_labels(ledger, skill, dataset)
            self._set_state(SUCCEEDED)
        finally:
            ledger.close()

    def _label_skill(self, ledger: Ledger, skill: Skill, rows: Sequence[dict]) -> None:
        done = ledger.done_ids(int(skill))
        todo = [row for row in rows if row["pair_id"] not in done]
        if not todo:
            return
        model, strategy = self.annotator.model_id, self.annotator.strategy
        with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="annotate") as pool:
            pending: set[Future] = set()
            queue = iter(todo)
            for row in self._take(queue, self.concurrency * 2):
                pending.add(pool.submit(self._label_one, skill, row))
            while pending:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    pair_id, result = future.result()  # errors that end the job propagate here
                    if result is None:
                        continue
                    inserted = ledger.record(int(skill), pair_id, result, model, strategy)
                    self._count(skill, result.label if inserted else None)
                    self.annotator.observer.label(skill, result.label)
                if not self.stop_event.is_set():
                    for row in self._take(queue, len(finished)):
                        pending.add(pool.submit(self._label_one, skill, row))

    @staticmethod
    def _take(iterator: Iterable[dict], n: int) -> list[dict]:
        out = []
        for row in iterator:
            out.append(row)
            if len(out) >= n:
                break
        return out

    def _count(self, skill: Skill, label: int | None) -> None:
        with self._status_lock:
            if label is not None:
                progress = self.status.progress[int(skill)]
                progress.done += 1
                progress.label_counts[label] += 1
            self._recent.append(time.monotonic())
        if self.on_progress:
            self.on_progress(1)

    def _label_one(self, skill: Skill, row: dict) -> tuple[str, Annotation | None]:
        first, second = row_transitions(row)
        delay = self.wait_initial_s
        response_errors = 0
        while not self.stop_event.is_set():
            try:
                # Per-pair seed so that a re-run asks the same way (method.md: chunk index + 1516).
                seed = 1516 + int(row["pair_id"][:8], 16) % 100_000
                result = self.annotator.annotate(skill, first, second, seed=seed)
                self._leave_waiting()
                return row["pair_id"], result
            except BackendUnavailable as exc:
                self._enter_waiting(str(exc))
                log.warning("backend unavailable (%s); retrying in %.1fs", exc, delay)
                self.stop_event.wait(delay)
                delay = min(self.wait_max_s, delay * 2)
            except ScoringUnsupported:
                raise
            except BackendResponseError as exc:
                response_errors += 1
                if response_errors >= self.max_response_errors:
                    raise JobError(f"pair {row['pair_id']}: backend gave {response_errors} unusable replies: {exc}") from exc
        return row["pair_id"], None

    def _enter_waiting(self, error: str) -> None:
        with self._status_lock:
            self._waiting += 1
            self.status.state = WAITING
            self.status.error = error

    def _leave_waiting(self) -> None:
        with self._status_lock:
            if self._waiting:
                self._waiting = 0
                self.status.state = RUNNING
                self.status.error = ""

    def _write_labels(self, ledger: Ledger, skill: Skill, dataset: PairDataset) -> None:
        records = ledger.records(int(skill))
        table = labels_table(records) if records else LABELS_SCHEMA.empty_table()
        write_label_file(
            self.spec.labels_dir, SKILL_NAMES[int(skill)], f"labels-{self.shard_name}.parquet", table,
            extra={"pairs_dir": os.path.abspath(self.spec.pairs_dir),
                   "pairs_num_pairs": dataset.num_pairs, **self.annotator.provenance},
        )
