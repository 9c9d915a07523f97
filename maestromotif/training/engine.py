"""The learner's engine: batched inference for all actors, trajectories, rewards, APPO.

Plain Python and torch (no gRPC): the learner service feeds it decoded observations and
a reward-scoring function. Threads:

- callers (one per actor stream) submit a step and block for its actions;
- the inference thread merges whatever steps are waiting (with a small wait limit, or
  until every connected actor has submitted), runs one forward pass, updates each
  actor's rollout buffer, and answers;
- completed trajectories are scored by ``score_fn`` on a small pool (pipelined: inference
  never waits for rewards), then released in submission order. When ``score_fn`` raises
  :class:`RewardUnavailable` (the reward service is down), the engine *holds back*: it retries
  with backoff, the backlog bound stops inference (so the actors wait, and memory stays
  bounded), and training resumes when rewards come back. A missing reward is never replaced;
  trajectories whose scoring fails for good are dropped, never trained on;
- the training thread trains SF2's Learner on batches of ``batch_size`` samples and
  writes checkpoints every ``checkpoint_every`` samples.
"""

from __future__ import annotations

import collections
import logging
import queue
import random
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from maestromotif.training.acting import act, reset_done_states
from maestromotif.training.skill_stats import SkillRunTracker
from maestromotif.training.trajectories import (
    RolloutBuffer,
    StepObservation,
    Trajectories,
    build_batch,
    training_rewards,
)

log = logging.getLogger("maestromotif.training.engine")

# (skills [m] uint8, messages [m,256] uint8, stat_changes [m,5] f32, message_counts [m] f32) -> shaped rewards [m]
ScoreFn = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]

NUM_SKILLS = 5


class EngineObserver:
    """Hooks for metrics; the service overrides them (defaults do nothing)."""

    def on_inference(self, batch_size: int, latency_s: float) -> None: ...
    def on_env_steps(self, n: int) -> None: ...
    def on_train(self, samples: int, stats: dict[str, float], policy_lag: float, duration_s: float) -> None: ...
    def on_reward_call(self, samples: int, latency_s: float, ok: bool) -> None: ...
    def on_skill_run(self, skill: int, intrinsic_return: float, steps: int) -> None: ...
    def on_skill_competence(self, skill: int, competent: bool, recent_mean: float) -> None: ...
    def on_dropped(self, trajectories: int, reason: str) -> None: ...
    def on_actors(self, actors: int, envs: int) -> None: ...
    def on_checkpoint(self, path: str) -> None: ...
    def on_checkpoint_error(self, error: str) -> None: ...
    def on_accepted(self, trajectories: int) -> None: ...
    def on_trained(self, trajectories: int) -> None: ...
    def on_reward_outage(self, active: bool, waiting: int, duration_s: float) -> None: ...


class RewardUnavailable(RuntimeError):
    """``score_fn`` could not reach the reward service now (transient): hold back and retry."""


class ActorGone(RuntimeError):
    """The actor was removed (disconnected or unknown)."""


class ActorBusy(RuntimeError):
    """The actor already has an open stream; a second one would interleave its rollouts."""


@dataclass
class _Actor:
    actor_id: str
    name: str
    num_envs: int
    rnn: torch.Tensor
    buffer: RolloutBuffer | None
    generation: int = 0  # increments on removal so late trajectories are recognised
    alive: bool = True
    runs: SkillRunTracker = field(default_factory=lambda: SkillRunTracker(0))  # per-skill returns
    registered_at: float = field(default_factory=time.monotonic)
    claimed: bool = False  # an Act stream serves this actor


@dataclass
class _Request:
    actor: _Actor
    obs: StepObservation
    done: threading.Event = field(default_factory=threading.Event)
    actions: np.ndarray | None = None
    policy_version: int = 0
    error: BaseException | None = None


class TrainingEngine:
    """See the module docstring. ``driver`` is a LearnerDriver, or None in serve mode."""

    def __init__(
        self,
        model: Any,
        device: torch.device | str,
        rnn_size: int,
        *,
        driver: Any | None = None,
        score_fn: ScoreFn | None = None,
        rollout: int = 32,
        batch_size: int = 4096,
        extrinsic: tuple[float, float, float] = (0.0, 0.1, 10.0),
        max_wait_s: float = 0.005,
        checkpoint_every: int = 0,
        reward_workers: int = 2,
        observer: EngineObserver | None = None,
        lock: Any | None = None,
        policy_version: int = 0,
        env_steps: int = 0,
        stats_window: int = 200,
        max_backlog_batches: float = 2.0,
        reward_retry_initial_s: float = 0.5,
        reward_retry_max_s: float = 5.0,
    ) -> None:
        if driver is not None and score_fn is None:
            raise ValueError("TrainingEngine: training needs a score_fn for intrinsic rewards")
        if batch_size % rollout:
            raise ValueError(f"batch_size: {batch_size} is not a multiple of rollout {rollout}")
        self.model = model
        self.device = torch.device(device)
        self.rnn_size = rnn_size
        self.driver = driver
        self.score_fn = score_fn
        self.rollout = rollout
        self.batch_size = batch_size
        self.extrinsic = extrinsic
        self.max_wait_s = max_wait_s
        self.checkpoint_every = checkpoint_every
        self.observer = observer or EngineObserver()
        self._lock = lock if lock is not None else threading.Lock()
        self._serve_version = policy_version

        self._actors: dict[str, _Actor] = {}
        self._actors_lock = threading.Lock()
        self._requests: queue.Queue[_Request] = queue.Queue()
        self._stop = threading.Event()

        self._reward_pool = ThreadPoolExecutor(max_workers=max(1, reward_workers), thread_name_prefix="reward")
        self._scored: queue.Queue[tuple[_Actor, int, Trajectories, Future]] = queue.Queue()
        self._ready: collections.deque[Trajectories] = collections.deque()
        self._ready_cv = threading.Condition()

        # counters (env_steps continues from a checkpoint)
        self.env_steps = env_steps
        self.mean_policy_lag = 0.0
        self.last_losses: dict[str, float] = {}
        self.last_checkpoint = ""
        self._last_checkpoint_samples = driver.samples_trained if driver is not None else 0
        self._train_times: collections.deque[tuple[float, int]] = collections.deque(maxlen=64)
        self.skill_returns: list[collections.deque[float]] = [
            collections.deque(maxlen=stats_window) for _ in range(NUM_SKILLS)
        ]
        self.skill_runs = np.zeros(NUM_SKILLS, np.int64)  # finished runs per skill since start
        # competence measure per run (maestromotif.skills.competence), same window as the returns
        self.skill_competence: list[collections.deque[float]] = [
            collections.deque(maxlen=stats_window) for _ in range(NUM_SKILLS)
        ]
        self.skill_competent_runs = np.zeros(NUM_SKILLS, np.int64)
        self._stats_lock = threading.Lock()
        # recent errors only: a long outage or a full disk must not grow memory without bound
        self.errors: collections.deque[str] = collections.deque(maxlen=100)
        # Backpressure: trajectories waiting for rewards or training, in batches. Past the limit,
        # inference (and so the actors) waits for training, which bounds memory and policy lag.
        self._backlog = 0
        self._max_backlog = max(1, int(max_backlog_batches * (batch_size // rollout)))
        # Reward outage (hold-back) state; see _score.
        self._retry_initial_s = reward_retry_initial_s
        self._retry_max_s = max(reward_retry_max_s, reward_retry_initial_s)
        self._outage_lock = threading.Lock()
        self._outage_since: float | None = None
        self.reward_outages = 0
        # Accounting (since this process started): trajectories (env rows of one rollout) that
        # were scored and queued for training, and those trained on. trained <= accepted, and
        # samples trained here == trajectories_trained * rollout (no row twice, none partial).
        self.trajectories_accepted = 0
        self.trajectories_trained = 0
        self.samples_trained_here = 0

        self._threads = [threading.Thread(target=self._inference_loop, name="inference", daemon=True)]
        if driver is not None:
            self._threads += [
                threading.Thread(target=self._reward_loop, name="reward-order", daemon=True),
                threading.Thread(target=self._train_loop, name="train", daemon=True),
            ]
        for t in self._threads:
            t.start()

    # --- properties ------------------------------------------------------------------------
    @property
    def training(self) -> bool:
        return self.driver is not None

    @property
    def policy_version(self) -> int:
        return self.driver.policy_version if self.driver is not None else self._serve_version

    @property
    def samples_trained(self) -> int:
        return self.driver.samples_trained if self.driver is not None else 0

    def connected(self) -> tuple[int, int]:
        with self._actors_lock:
            actors = [a for a in self._actors.values() if a.alive]
            return len(actors), sum(a.num_envs for a in actors)

    @property
    def holding_back(self) -> bool:
        """True while the reward service is unreachable and training waits for it."""
        return self._outage_since is not None

    @property
    def backlog(self) -> int:
        """Trajectories waiting for rewards or training (bounded: see ``backlog_limit``)."""
        return self._backlog

    @property
    def backlog_limit(self) -> int:
        """Past this many waiting trajectories inference pauses (one more batch of steps may land)."""
        return self._max_backlog

    def samples_per_second(self) -> float:
        times = list(self._train_times)
        if len(times) < 2:
            return 0.0
        (t0, s0), (t1, s1) = times[0], times[-1]
        return (s1 - s0) / max(t1 - t0, 1e-9)

    def skill_stats(self) -> tuple[dict[int, float], dict[int, int]]:
        """One consistent snapshot per skill id: mean return over the recent window, finished runs."""
        with self._stats_lock:  # the reward thread appends while status calls read
            means = {k: float(np.mean(d)) for k, d in enumerate(self.skill_returns) if d}
            runs = {k: int(n) for k, n in enumerate(self.skill_runs) if n}
        return means, runs

    def competence_stats(self) -> tuple[dict[int, float], dict[int, int]]:
        """Per skill id: mean competence measure over the recent window, competent runs since start."""
        with self._stats_lock:
            means = {k: float(np.mean(d)) for k, d in enumerate(self.skill_competence) if d}
            runs = {k: int(self.skill_competent_runs[k]) for k, d in enumerate(self.skill_competence) if d}
        return means, runs

    # --- actors ----------------------------------------------------------------------------
    def add_actor(self, num_envs: int, name: str = "") -> str:
        if num_envs < 1:
            raise ValueError(f"num_envs: must be >= 1, got {num_envs}")
        actor_id = uuid.uuid4().hex
        actor = _Actor(
            actor_id=actor_id,
            name=name,
            num_envs=num_envs,
            rnn=torch.zeros(num_envs, self.rnn_size, device=self.device),
            buffer=RolloutBuffer(num_envs, self.rollout, self.rnn_size) if self.training else None,
            runs=SkillRunTracker(num_envs),
        )
        with self._actors_lock:
            self._actors[actor_id] = actor
        self._report_actors()
        return actor_id

    def remove_actor(self, actor_id: str) -> None:
        """Forget an actor; its partial rollout and any unscored trajectories are dropped."""
        with self._actors_lock:
            actor = self._actors.pop(actor_id, None)
        if actor is not None:
            actor.alive = False
            actor.generation += 1
            if actor.buffer is not None and actor.buffer.t > 0:
                # its rollouts in progress are never completed: counted, never trained on
                self.observer.on_dropped(actor.num_envs, "partial_rollout")
            self._report_actors()

    def claim(self, actor_id: str) -> int:
        """Bind an actor to the stream that serves it; returns its number of envs."""
        with self._actors_lock:
            actor = self._actors.get(actor_id)
            if actor is None:
                raise ActorGone(f"actor_id: unknown or disconnected actor {actor_id[:64]!r}")
            if actor.claimed:
                raise ActorBusy(f"actor_id: actor {actor_id[:64]!r} already has an open Act stream")
            actor.claimed = True
            return actor.num_envs

    def purge_unclaimed(self, older_than_s: float) -> int:
        """Forget actors registered more than ``older_than_s`` ago that never opened a stream.

        Without this, clients that register and vanish would hold every actor slot forever.
        """
        cutoff = time.monotonic() - older_than_s
        with self._actors_lock:
            stale = [a for a in self._actors.values() if not a.claimed and a.registered_at <= cutoff]
        for actor in stale:
            self.remove_actor(actor.actor_id)
        return len(stale)

    def actor_envs(self, actor_id: str) -> int:
        with self._actors_lock:
            actor = self._actors.get(actor_id)
        if actor is None:
            raise ActorGone(f"actor_id: unknown or disconnected actor {actor_id[:64]!r}")
        return actor.num_envs

    def _report_actors(self) -> None:
        self.observer.on_actors(*self.connected())

    # --- acting ----------------------------------------------------------------------------
    def step(self, actor_id: str, obs: StepObservation, timeout_s: float = 60.0) -> tuple[np.ndarray, int]:
        """Submit one step of an actor's envs; blocks until its actions are ready."""
        with self._actors_lock:
            actor = self._actors.get(actor_id)
        if actor is None or not actor.alive:
            raise ActorGone(f"actor_id: unknown or disconnected actor {actor_id[:64]!r}")
        if obs.num_envs != actor.num_envs:
            raise ValueError(f"num_envs: got {obs.num_envs}, actor registered {actor.num_envs}")
        req = _Request(actor, obs)
        self._requests.put(req)
        deadline = time.monotonic() + timeout_s
        while not req.done.wait(min(1.0, max(0.0, deadline - time.monotonic()))):
            if self.holding_back:
                # the engine waits for the reward service on purpose: keep the actor waiting
                # (its stream stays open, its rollout intact) rather than fail it
                deadline = time.monotonic() + timeout_s
            elif time.monotonic() >= deadline:
                raise TimeoutError("inference: no answer in time")
        if req.error is not None:
            raise req.error
        assert req.actions is not None
        return req.actions, req.policy_version

    def _gather(self) -> list[_Request]:
        try:
            first = self._requests.get(timeout=0.1)
        except queue.Empty:
            return []
        batch = [first]
        seen = {first.actor.actor_id}
        n_actors, _ = self.connected()
        deadline = time.perf_counter() + self.max_wait_s
        while len(seen) < n_actors:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                break
            try:
                req = self._requests.get(timeout=remaining)
            except queue.Empty:
                break
            batch.append(req)
            seen.add(req.actor.actor_id)
        # take anything else already queued, without waiting
        while True:
            try:
                batch.append(self._requests.get_nowait())
            except queue.Empty:
                break
        return batch

    def _inference_loop(self) -> None:
        torch.set_grad_enabled(False)
        while not self._stop.is_set():
            if self.training:
                with self._ready_cv:
                    while self._backlog > self._max_backlog and not self._stop.is_set():
                        self._ready_cv.wait(0.1)
            batch = self._gather()
            if not batch:
                continue
            try:
                self._infer(batch)
            except BaseException as exc:  # noqa: BLE001 - answer every waiter, keep serving
                log.exception("inference failed")
                for req in batch:
                    req.error = exc
                    req.done.set()

    def _infer(self, batch: list[_Request]) -> None:
        start = time.perf_counter()
        # one actor may appear twice only if it misbehaves; keep the first step, fail the rest
        unique: dict[str, _Request] = {}
        for req in batch:
            if req.actor.actor_id in unique or not req.actor.alive:
                req.error = ActorGone("actor: duplicate in-flight step or disconnected")
                req.done.set()
            else:
                unique[req.actor.actor_id] = req
        reqs = list(unique.values())
        if not reqs:
            return
        for req in reqs:
            req.actor.rnn = reset_done_states(req.actor.rnn, req.obs.dones)
            if req.actor.buffer is not None:
                finished = req.actor.buffer.add_observation(req.obs, req.actor.rnn.cpu().numpy())
                if finished is not None:
                    self._submit_for_reward(req.actor, finished)
        obs = _concat_obs([r.obs for r in reqs], self.device)
        rnn = torch.cat([r.actor.rnn for r in reqs], dim=0)
        with self._lock:
            version = self.policy_version
            step, new_rnn = act(self.model, obs, rnn, version)
        offset = 0
        for req in reqs:
            n = req.actor.num_envs
            sl = slice(offset, offset + n)
            offset += n
            req.actor.rnn = new_rnn[sl].clone()
            if req.actor.buffer is not None:
                req.actor.buffer.add_policy_step(_slice_step(step, sl))
            req.actions = step.actions[sl].astype(np.uint8)
            req.policy_version = version
            req.done.set()
        self.env_steps += offset
        self.observer.on_env_steps(offset)
        self.observer.on_inference(offset, time.perf_counter() - start)

    # --- rewards ---------------------------------------------------------------------------
    def _submit_for_reward(self, actor: _Actor, traj: Trajectories) -> None:
        assert self.score_fn is not None
        inputs = traj.reward_inputs()
        with self._ready_cv:
            self._backlog += traj.count
        fut = self._reward_pool.submit(self._score, *inputs)
        self._scored.put((actor, actor.generation, traj, fut))

    def _score(self, *inputs: np.ndarray) -> np.ndarray:
        """Score one trajectory batch; while the reward service is unavailable, retry (hold back)."""
        assert self.score_fn is not None
        delay = self._retry_initial_s
        while True:
            start = time.perf_counter()
            try:
                out = np.asarray(self.score_fn(*inputs), np.float32)
            except RewardUnavailable as exc:
                self.observer.on_reward_call(len(inputs[0]), time.perf_counter() - start, False)
                if self._stop.is_set():
                    raise
                self._outage_begins(exc)
                # jittered exponential backoff; stop() cuts the wait short
                self._stop.wait(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, self._retry_max_s)
                continue
            except BaseException:
                self.observer.on_reward_call(len(inputs[0]), time.perf_counter() - start, False)
                raise
            self.observer.on_reward_call(len(inputs[0]), time.perf_counter() - start, True)
            self._outage_ends()
            if out.shape != (len(inputs[0]),):
                raise ValueError(f"reward: got shape {out.shape}, expected ({len(inputs[0])},)")
            if not np.all(np.isfinite(out)):
                raise ValueError("reward: non-finite intrinsic rewards")
            return out

    def _outage_begins(self, exc: BaseException) -> None:
        with self._outage_lock:
            if self._outage_since is not None:
                return
            self._outage_since = time.monotonic()
            self.reward_outages += 1
        log.warning(
            "reward service unavailable (%s); holding back training: %d trajectories wait for rewards or "
            "training (bounded at %d), actors are paused; retrying", exc, self._backlog, self._max_backlog,
        )
        self.observer.on_reward_outage(True, self._backlog, 0.0)

    def _outage_ends(self) -> None:
        with self._outage_lock:
            if self._outage_since is None:
                return
            duration = time.monotonic() - self._outage_since
            self._outage_since = None
        log.info("reward service reachable again after %.1f s; resuming training (%d trajectories held back)",
                 duration, self._backlog)
        self.observer.on_reward_outage(False, self._backlog, duration)

    def _reward_loop(self) -> None:
        while not self._stop.is_set():
            try:
                actor, generation, traj, fut = self._scored.get(timeout=0.1)
            except queue.Empty:
                continue
            try:
                intrinsic = fut.result()
                traj.rewards = training_rewards(traj, intrinsic, *self.extrinsic)
            except Exception as exc:  # noqa: BLE001 - a failed reward call drops data, never trains on it
                log.warning("reward scoring failed; dropping %d trajectories: %s", traj.count, exc)
                self.errors.append(f"reward: {exc}")
                self.observer.on_dropped(traj.count, "reward")
                self._release(traj.count)
                continue
            if not actor.alive or generation != actor.generation:
                self.observer.on_dropped(traj.count, "actor_gone")
                self._release(traj.count)
                continue
            if traj.length != self.rollout:  # only whole rollouts are trained on
                log.error("dropping %d trajectories of length %d (rollout %d)", traj.count, traj.length, self.rollout)
                self.observer.on_dropped(traj.count, "malformed")
                self._release(traj.count)
                continue
            self._record_skill_runs(actor, traj, intrinsic.reshape(traj.count, traj.length))
            with self._ready_cv:
                self._ready.append(traj)
                self.trajectories_accepted += traj.count
                self._ready_cv.notify()
            self.observer.on_accepted(traj.count)

    def _record_skill_runs(self, actor: _Actor, traj: Trajectories, intrinsic: np.ndarray) -> None:
        """Per-skill run returns (a run ends on a switch or episode end)."""
        with self._stats_lock:
            self._record_skill_runs_locked(actor, traj, intrinsic)

    def _record_skill_runs_locked(self, actor: _Actor, traj: Trajectories, intrinsic: np.ndarray) -> None:
        competence = traj.competence
        for t in range(traj.length):
            skills = traj.skills[:, t]
            signals = None if competence is None else competence[:, t]
            for run in actor.runs.step(skills, intrinsic[:, t], traj.dones[:, t], signals=signals):
                if 0 <= run.skill < NUM_SKILLS:
                    self.skill_returns[run.skill].append(run.ret)
                    self.skill_runs[run.skill] += 1
                    self.observer.on_skill_run(run.skill, run.ret, run.steps)
                    if not np.isnan(run.competence):
                        self.skill_competence[run.skill].append(run.competence)
                        self.skill_competent_runs[run.skill] += int(run.competent)
                        self.observer.on_skill_competence(run.skill, run.competent,
                                                          float(np.mean(self.skill_competence[run.skill])))

    def _release(self, count: int) -> None:
        with self._ready_cv:
            self._backlog -= count
            self._ready_cv.notify_all()

    # --- training --------------------------------------------------------------------------
    def _take_batch(self, n_traj: int) -> Trajectories | None:
        with self._ready_cv:
            while sum(t.count for t in self._ready) < n_traj:
                if self._stop.is_set():
                    return None
                self._ready_cv.wait(0.1)
            parts: list[Trajectories] = []
            need = n_traj
            while need > 0:
                head = self._ready.popleft()
                if head.count <= need:
                    parts.append(head)
                    need -= head.count
                else:
                    parts.append(head.select(slice(0, need)))
                    self._ready.appendleft(head.select(slice(need, None)))
                    need = 0
            self._backlog -= n_traj
            self._ready_cv.notify_all()
        return Trajectories.concat(parts)

    def _train_loop(self) -> None:
        assert self.driver is not None
        torch.set_grad_enabled(True)
        n_traj = self.batch_size // self.rollout
        while not self._stop.is_set():
            traj = self._take_batch(n_traj)
            if traj is None:
                return
            try:
                start = time.perf_counter()
                version = self.driver.policy_version
                lag = float(np.mean(version - traj.policy_version))
                batch = build_batch(traj, self.driver.device)
                stats = self.driver.train(batch)
                duration = time.perf_counter() - start
                self.mean_policy_lag = lag
                if stats:
                    self.last_losses = {
                        k: stats[k] for k in ("loss", "policy_loss", "value_loss", "entropy", "kl_divergence") if k in stats
                    }
                    bad = [k for k, v in self.last_losses.items() if not np.isfinite(v)]
                    if bad:
                        raise FloatingPointError(f"training: non-finite {bad}")
                self._train_times.append((time.perf_counter(), self.driver.samples_trained))
                self.trajectories_trained += traj.count
                self.samples_trained_here += traj.count * traj.length
                self.observer.on_trained(traj.count)
                self.observer.on_train(traj.count * traj.length, stats or {}, lag, duration)
            except Exception as exc:  # noqa: BLE001 - report and keep the service alive
                log.exception("training step failed")
                self.errors.append(f"train: {exc}")
                continue
            if (
                self.checkpoint_every
                and self.driver.samples_trained - self._last_checkpoint_samples >= self.checkpoint_every
            ):
                try:
                    self.save_checkpoint()
                except Exception as exc:  # noqa: BLE001 - a full disk must not stop training
                    # nothing half-written is left; the previous checkpoint stays the latest, and
                    # the next batch tries again
                    log.error("%s", exc)
                    self.errors.append(f"checkpoint: {exc}")
                    self.observer.on_checkpoint_error(str(exc))

    def save_checkpoint(self) -> str:
        assert self.driver is not None
        path = self.driver.save({"env_steps": int(self.env_steps)})
        self._last_checkpoint_samples = self.driver.samples_trained
        self.last_checkpoint = path
        self.observer.on_checkpoint(path)
        return path

    def close(self, save: bool = True) -> None:
        """Stop the threads; in training mode write a last checkpoint."""
        self._stop.set()
        for t in self._threads:
            t.join(timeout=30)
        self._reward_pool.shutdown(wait=False, cancel_futures=True)
        while True:  # fail whoever still waits
            try:
                req = self._requests.get_nowait()
            except queue.Empty:
                break
            req.error = ActorGone("learner: shutting down")
            req.done.set()
        if save and self.driver is not None and self.driver.samples_trained > 0:
            try:
                self.save_checkpoint()
            except Exception:  # noqa: BLE001
                log.exception("final checkpoint failed")


def _concat_obs(parts: list[StepObservation], device: torch.device) -> dict[str, torch.Tensor]:
    if len(parts) == 1:
        return parts[0].policy_obs(device)
    merged = StepObservation(
        tty_chars=np.concatenate([p.tty_chars for p in parts]),
        tty_colors=np.concatenate([p.tty_colors for p in parts]),
        messages=np.concatenate([p.messages for p in parts]),
        stats=np.concatenate([p.stats for p in parts]),
        skills=np.concatenate([p.skills for p in parts]),
        message_counts=np.concatenate([p.message_counts for p in parts]),
        stat_changes=np.concatenate([p.stat_changes for p in parts]),
        rewards=np.concatenate([p.rewards for p in parts]),
        dones=np.concatenate([p.dones for p in parts]),
        time_outs=np.concatenate([p.time_outs for p in parts]),
        competence=None,  # not a policy input
    )
    return merged.policy_obs(device)


def _slice_step(step: Any, sl: slice) -> Any:
    from maestromotif.training.trajectories import PolicyStep

    return PolicyStep(
        actions=step.actions[sl],
        action_logits=step.action_logits[sl],
        log_prob_actions=step.log_prob_actions[sl],
        values=step.values[sl],
        policy_version=step.policy_version,
    )
