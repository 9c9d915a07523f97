"""Zero-shot task evaluation: the frozen skill network plays the nine tasks (method.md 4).

Each task runs its policy over skills (a reference policy from ``maestromotif.skills.reference``
or a validated generated one) through the call-and-return controller; the skill network picks
every action. The task detectors of :mod:`maestromotif.tasks.detect` read success or counts
(legacy and strict) from game state each step. Three *conditions* are measured on the same
dungeons (episode ``i`` of every task and condition uses dungeon seed ``seed + i``):

- ``trained``: the checkpoint's skill network (actions sampled, as in training);
- ``untrained``: the same architecture and policy over skills, freshly initialised (seeded);
- ``random``: uniformly random actions, the same policy over skills.

A result keeps every episode's record, so that evaluations run in parallel processes or on
other machines pool exactly (:func:`pool_evaluations`): statistics are recomputed from all
episodes, never averaged from averages. Success rates carry a 95% Wilson interval; counts a
mean with its standard error (:func:`maestromotif.tasks.detect.summarize`).
"""

from __future__ import annotations

import math
import os
import platform
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from maestromotif.skills.contract import PolicyOverSkills
from maestromotif.skills.ids import NUM_SKILLS, SKILL_NAMES
from maestromotif.tasks.detect import TaskOutcome, TaskTracker, summarize
from maestromotif.tasks.specs import TASK_NAMES, TaskSpec, get_task

Condition = Literal["trained", "untrained", "random"]
CONDITIONS: tuple[Condition, ...] = ("trained", "untrained", "random")
EndReason = Literal["success", "death", "step_limit"]
MAX_STEPS = 10_000  # method.md 2.1
Z95 = 1.959963984540054  # two-sided 95% normal quantile
RESULT_FORMAT = 1


class TaskEvaluationError(ValueError):
    """Bad evaluation arguments or inputs (the message says which)."""


# ---------------------------------------------------------------------------- statistics
def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (95% by default); (nan, nan) for n = 0.

    Unlike the normal approximation it stays inside [0, 1] and is not degenerate at 0 or n
    successes, which matters here: most rates are near 0 with a few dozen episodes.
    """
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"wilson_interval: need 0 <= successes <= n, got {successes}/{n}")
    if n == 0:
        return math.nan, math.nan
    p = successes / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    # At 0 and n successes the bound is exactly 0 or 1; rounding would leave e.g. 3e-18 at n = 100,
    # which made the chart's error bar negative.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


def parse_paper_number(text: str) -> tuple[float | None, float | None]:
    """``"46% ± 1.70"`` -> (46.0, 1.70); ``"0.66 ± 0.01"`` -> (0.66, 0.01); ``"—"`` -> (None, None)."""
    head, _, tail = text.partition("±")
    try:
        value = float(head.strip().rstrip("%"))
    except ValueError:
        return None, None
    try:
        se = float(tail.strip().rstrip("%")) if tail else 0.0
    except ValueError:
        se = None
    return value, se


# ---------------------------------------------------------------------------- episodes
@dataclass(slots=True)
class EpisodeRecord:
    """One evaluated episode (what pooling and the statistics are computed from)."""

    task: str
    condition: str
    seed: int
    steps: int
    reason: str  # success | death | step_limit
    legacy_success: bool
    strict_success: bool
    legacy_count: int
    strict_count: int
    precondition_seen: bool
    policy_failures: int
    skill_steps: list[int]
    seconds: float  # its share of the wall time of the lockstep steps that played it (cost of one episode)

    def outcome(self) -> TaskOutcome:
        return TaskOutcome(
            task=self.task, legacy_success=self.legacy_success, strict_success=self.strict_success,
            legacy_count=self.legacy_count, strict_count=self.strict_count,
            precondition_seen=self.precondition_seen, steps=self.steps,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EpisodeRecord:
        try:
            rec = cls(
                task=str(data["task"]), condition=str(data["condition"]), seed=int(data["seed"]),
                steps=int(data["steps"]), reason=str(data["reason"]),
                legacy_success=bool(data["legacy_success"]), strict_success=bool(data["strict_success"]),
                legacy_count=int(data["legacy_count"]), strict_count=int(data["strict_count"]),
                precondition_seen=bool(data["precondition_seen"]), policy_failures=int(data["policy_failures"]),
                skill_steps=[int(s) for s in data["skill_steps"]], seconds=float(data["seconds"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise TaskEvaluationError(f"episode record {data!r:.200}: {exc!r}") from exc
        if rec.task not in TASK_NAMES:
            raise TaskEvaluationError(f"episode record: unknown task {rec.task!r}")
        if rec.condition not in CONDITIONS:
            raise TaskEvaluationError(f"episode record: unknown condition {rec.condition!r}")
        if rec.steps < 0 or rec.legacy_count < 0 or rec.strict_count < 0 or len(rec.skill_steps) != NUM_SKILLS:
            raise TaskEvaluationError(f"episode record of {rec.task}/{rec.condition} seed {rec.seed}: bad counts")
        return rec


class ActionSource(Protocol):
    """Chooses actions for a batch of games from their compact observations."""

    def __call__(self, obs: dict[str, np.ndarray], dones: np.ndarray) -> np.ndarray: ...


class RandomActions:
    """Uniformly random actions (the random baseline), seeded."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def __call__(self, obs: dict[str, np.ndarray], dones: np.ndarray) -> np.ndarray:
        from maestromotif.env.actions import NUM_ACTIONS

        return self.rng.integers(0, NUM_ACTIONS, len(dones))


class NetworkActions:
    """A skill network acting for ``num_envs`` games; the model may be shared with other sources.

    Each row keeps its own recurrent state, zeroed when ``dones`` says its episode restarted.
    Actions are sampled from the network's distribution (as in training) with this source's own
    seeded generator, so a seed replays the same game even while other episodes share the model.
    """

    def __init__(self, model: Any, info: dict[str, Any], num_envs: int, *, seed: int = 0) -> None:
        from maestromotif.training.sf2 import rnn_size_of, zeros_rnn

        self.model = model
        self.info = info
        self.device = next(model.parameters()).device
        self.rnn = zeros_rnn(num_envs, rnn_size_of(model), self.device)
        self.rng = np.random.default_rng(seed)

    def __call__(self, obs: dict[str, np.ndarray], dones: np.ndarray) -> np.ndarray:
        from maestromotif.training.acting import act, reset_done_states
        from maestromotif.training.trajectories import StepObservation

        self.rnn = reset_done_states(self.rnn, dones)
        n = len(dones)
        step_obs = StepObservation.for_acting(obs, dones)
        step, self.rnn = act(self.model, step_obs.policy_obs(self.device), self.rnn, 0, deterministic=True)
        logits = step.action_logits.astype(np.float64)
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        # inverse-CDF sampling, one uniform per row (the distribution torch.multinomial samples)
        u = self.rng.random((n, 1))
        return np.minimum((probs.cumsum(axis=1) < u).sum(axis=1), probs.shape[1] - 1)


def load_trained(checkpoint: str | os.PathLike[str], device: str = "cpu") -> tuple[Any, dict[str, Any], Path]:
    """The checkpoint's skill network: (model, info, resolved checkpoint file)."""
    from maestromotif.training.acting import resolve_checkpoint
    from maestromotif.training.sf2 import load_policy_for_inference

    try:
        path = resolve_checkpoint(checkpoint)
        model, info = load_policy_for_inference(path, device=device)
    except ValueError as exc:
        raise TaskEvaluationError(str(exc)) from exc
    return model, info, path


def build_untrained(preset: str, seed: int, device: str = "cpu") -> tuple[Any, dict[str, Any]]:
    """A freshly initialised skill network of the given preset (same code path as the learner's)."""
    import tempfile

    import torch
    from sample_factory.model.actor_critic import create_actor_critic

    from maestromotif.models.policy import policy_action_space, policy_observation_space, register_policy_model
    from maestromotif.training.settings import TrainingSettings
    from maestromotif.training.sf2 import build_sf2_config, quiet_sf2_logs

    quiet_sf2_logs()  # before the model registration, which SF2 logs at INFO
    register_policy_model()
    cfg = build_sf2_config(TrainingSettings(preset=preset, device=device), tempfile.gettempdir(), "untrained")
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = create_actor_critic(cfg, policy_observation_space(), policy_action_space())
    finally:
        torch.random.set_rng_state(state)
    model.model_to_device(torch.device(device))
    model.eval()
    return model, {"preset": preset, "policy_version": 0, "config_hash": "", "untrained_seed": seed}


# ---------------------------------------------------------------------------- one game
@dataclass(slots=True)
class GameStep:
    """What one step of a :class:`TaskGame` produced."""

    obs: dict[str, np.ndarray]  # compact observation for the next action
    skill: int  # skill of the next action
    selected: tuple[int, int] | None  # (ended skill, chosen skill) when the policy over skills chose
    done: bool
    reason: str | None  # success | death | step_limit when done


class TaskGame:
    """One NetHack game played under a task's policy over skills, with the task's detector.

    ``start(seed)`` begins an episode on dungeon ``seed``; ``step(action)`` plays one agent action
    and reports selections of the policy over skills and the end of the episode. The env is
    reused across episodes; ``close()`` frees it.
    """

    def __init__(self, spec: TaskSpec, policy: PolicyOverSkills, *, max_steps: int = MAX_STEPS) -> None:
        from maestromotif.env.nethack_env import NetHackMonk

        if not 1 <= max_steps <= MAX_STEPS:
            raise TaskEvaluationError(f"max_steps: {max_steps} not in [1, {MAX_STEPS}]")
        self.spec = spec
        self.policy = policy
        self.max_steps = max_steps
        self.env = NetHackMonk(0, max_episode_steps=max_steps, pass_climb_prompts=spec.pass_climb_prompts)
        self.tracker = TaskTracker(spec)
        self.controller: Any = None
        self.seed = -1

    def start(self, seed: int) -> dict[str, np.ndarray]:
        from maestromotif.skills.controller import SkillController

        self.seed = int(seed)
        self.env.reset(seed=self.seed)
        view = self.env.view()
        # a fresh controller per episode, seeded by the dungeon: the same seed replays the same game
        self.controller = SkillController(self.policy, seed=self.seed)
        skill = self.controller.reset(view)
        self.tracker.reset(view)
        return self.env.compact(skill, 0.0)

    def step(self, action: int) -> GameStep:
        c = self.controller
        before, selections = c.skill, c.stats.selections
        reward, terminated, truncated = self.env.act(int(action))
        view = self.env.view()
        skill = c.step(view, reward)
        self.tracker.update(view)
        selected = (before, skill) if c.stats.selections != selections else None
        reason: str | None = None
        if self.tracker.done:
            reason = "success"
        elif terminated:
            reason = "death"
        elif truncated:
            reason = "step_limit"
        if reason is not None:
            c.finish()
        return GameStep(self.env.compact(skill, c.depth_change), skill, selected, reason is not None, reason)

    def screen(self) -> str:
        """The 24x80 tty screen as text."""
        return self.env.render()

    @property
    def outcome(self) -> TaskOutcome:
        return self.tracker.outcome

    def record(self, condition: str, reason: str, seconds: float) -> EpisodeRecord:
        o = self.tracker.outcome
        stats = self.controller.last_episode or self.controller.stats
        return EpisodeRecord(
            task=self.spec.name, condition=condition, seed=self.seed, steps=int(stats.steps), reason=reason,
            legacy_success=o.legacy_success, strict_success=o.strict_success, legacy_count=o.legacy_count,
            strict_count=o.strict_count, precondition_seen=o.precondition_seen,
            policy_failures=int(stats.policy_failures), skill_steps=[int(s) for s in stats.skill_steps],
            seconds=seconds,
        )

    def close(self) -> None:
        self.env.close()


def _stack(rows: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {k: np.stack([r[k] for r in rows]) for k in rows[0]}


def play_episodes(
    spec: TaskSpec,
    policy_factory: Callable[[], PolicyOverSkills],
    actions: ActionSource,
    seeds: Sequence[int],
    *,
    condition: str,
    batch: int,
    max_steps: int = MAX_STEPS,
    on_episode: Callable[[EpisodeRecord], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> list[EpisodeRecord]:
    """Play one episode per seed, ``batch`` games in lockstep (one batched forward per step).

    ``actions`` must serve ``batch`` rows. A row whose episode ends starts the next seed; rows
    left without a seed idle. ``should_stop`` (checked every step) abandons unfinished episodes.
    """
    if batch < 1:
        raise TaskEvaluationError(f"batch: {batch} < 1")
    queue = list(seeds)[::-1]
    n = min(batch, len(queue))
    if n == 0:
        return []
    games = [TaskGame(spec, policy_factory(), max_steps=max_steps) for _ in range(n)]
    records: list[EpisodeRecord] = []
    try:
        rows: list[dict[str, np.ndarray]] = [games[i].start(queue.pop()) for i in range(n)]
        live = [True] * n
        # each lockstep iteration's wall time is shared among the games it stepped: the sum over
        # episodes is the run's time, so seconds per episode estimates the cost of one episode
        spent = [0.0] * n
        dones = np.ones(batch, bool)  # every row starts an episode: fresh recurrent states
        while any(live):
            if should_stop is not None and should_stop():
                break
            t0 = time.perf_counter()
            obs = _stack(rows + [rows[0]] * (batch - n))  # pad to the action source's batch
            acts = actions(obs, dones)
            dones = np.zeros(batch, bool)
            finished: list[tuple[int, GameStep]] = []
            for i, game in enumerate(games):
                if not live[i]:
                    continue
                out = game.step(int(acts[i]))
                rows[i] = out.obs
                if out.done:
                    finished.append((i, out))
            share = (time.perf_counter() - t0) / max(1, sum(live))
            for i in range(n):
                if live[i]:
                    spent[i] += share
            for i, out in finished:
                game = games[i]
                rec = game.record(condition, out.reason or "", spent[i])
                spent[i] = 0.0
                records.append(rec)
                if on_episode is not None:
                    on_episode(rec)
                dones[i] = True
                if queue:
                    rows[i] = game.start(queue.pop())
                else:
                    live[i] = False
    finally:
        for game in games:
            game.close()
    return records


# ---------------------------------------------------------------------------- policies over skills
DEFAULT_ARTIFACTS = "data/artifacts"


def policy_factory_for(task: str, policies: str, artifacts: str | os.PathLike[str] = DEFAULT_ARTIFACTS
                       ) -> Callable[[], PolicyOverSkills]:
    """Factory of the policy over skills a task runs under.

    ``policies``: ``reference`` (the hand-written policy of ``maestromotif.skills.reference``),
    ``generated`` (the newest validated TASK_POLICY artifact composed for this task in the artifact
    store ``artifacts``) or the SHA-256 of a validated TASK_POLICY artifact there.
    """
    if policies == "reference":
        from maestromotif.skills.reference import load_reference

        load_reference(task)  # fail now, not in a worker

        def make_reference() -> PolicyOverSkills:
            return load_reference(task)

        return make_reference
    if policies == "generated":
        store = _artifact_store(artifacts)
        found = [s for s in store.list() if s.kind == "task_policy" and s.task == task and s.valid]
        if not found:
            raise TaskEvaluationError(f"policies: no validated task policy for {task!r} in {artifacts} "
                                      f"(compose it first: ComposeTask or the pipeline's compose stage)")
        policies = found[-1].sha256  # newest
    return artifact_policy_factory(policies, artifacts)


def _artifact_store(artifacts: str | os.PathLike[str]) -> Any:
    try:
        from maestromotif.codegen.artifacts import ArtifactStore
    except ImportError as exc:
        raise TaskEvaluationError(f"policies: generated policies need maestromotif.codegen ({exc})") from exc
    return ArtifactStore(artifacts)


def artifact_policy_factory(sha256: str, artifacts: str | os.PathLike[str] = DEFAULT_ARTIFACTS
                            ) -> Callable[[], PolicyOverSkills]:
    """Factory loading a validated policy artifact from the store (the store refuses unvalidated ones)."""
    import re

    if not re.fullmatch(r"[0-9a-f]{64}", sha256):
        raise TaskEvaluationError(f"policies: {sha256!r} is not 'reference', 'generated' or a lowercase hex SHA-256")
    store = _artifact_store(artifacts)

    def make_artifact() -> PolicyOverSkills:
        return store.load_policy(sha256)

    try:
        make_artifact()
    except Exception as exc:  # noqa: BLE001 - the store says why (unknown, unvalidated, ...)
        raise TaskEvaluationError(f"policies: artifact {sha256}: {exc}") from exc
    return make_artifact


# ---------------------------------------------------------------------------- whole evaluations
@dataclass
class TaskEvaluation:
    """Every episode of one evaluation, and what it was run with."""

    checkpoint: str
    checkpoint_name: str
    policy_version: int
    preset: str
    policies: str
    seed: int
    max_steps: int
    untrained_seed: int
    episodes: list[EpisodeRecord] = field(default_factory=list)
    wall_seconds: float = 0.0
    host: str = field(default_factory=lambda: f"{platform.node()} ({os.cpu_count()} CPUs)")
    format: int = RESULT_FORMAT

    def identity(self) -> tuple[str, int, str, int, int]:
        return self.checkpoint_name, self.policy_version, self.policies, self.max_steps, self.untrained_seed

    def summary(self) -> dict[str, dict[str, Any]]:
        """Per task and condition: the paper's metric (legacy and strict) with its uncertainty."""
        out: dict[str, dict[str, Any]] = {}
        for task in TASK_NAMES:
            recs = [r for r in self.episodes if r.task == task]
            if not recs:
                continue
            spec = get_task(task)
            value, se = parse_paper_number(spec.paper.maestromotif)
            entry: dict[str, Any] = {"metric": spec.metric, "paper": spec.paper.maestromotif,
                                     "paper_value": value, "paper_stderr": se, "conditions": {}}
            for condition in CONDITIONS:
                part = [r for r in recs if r.condition == condition]
                if part:
                    entry["conditions"][condition] = condition_summary(spec, part)
            out[task] = entry
        return out

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["summary"] = self.summary()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskEvaluation:
        """Read back :meth:`to_dict` (a ``maestromotif eval --out`` file); validated field by field."""
        if not isinstance(data, dict):
            raise TaskEvaluationError("not a task evaluation: expected a JSON object")
        if data.get("format") != RESULT_FORMAT:
            raise TaskEvaluationError(f"not a task evaluation of format {RESULT_FORMAT} (format {data.get('format')!r})")
        try:
            episodes = data["episodes"]
            if not isinstance(episodes, list):
                raise TypeError("episodes is not a list")
            return cls(
                checkpoint=str(data["checkpoint"]), checkpoint_name=str(data["checkpoint_name"]),
                policy_version=int(data["policy_version"]), preset=str(data["preset"]), policies=str(data["policies"]),
                seed=int(data["seed"]), max_steps=int(data["max_steps"]), untrained_seed=int(data["untrained_seed"]),
                episodes=[EpisodeRecord.from_dict(e) for e in episodes], wall_seconds=float(data.get("wall_seconds", 0.0)),
                host=str(data.get("host", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, TaskEvaluationError):
                raise
            raise TaskEvaluationError(f"not a task evaluation: {exc!r}") from exc


def condition_summary(spec: TaskSpec, records: Sequence[EpisodeRecord]) -> dict[str, Any]:
    """The statistics of one task under one condition."""
    n = len(records)
    stats = summarize([r.outcome() for r in records])
    steps = sum(r.steps for r in records)
    seconds = sum(r.seconds for r in records)
    out: dict[str, Any] = {
        "episodes": n,
        "mean_steps": steps / n,
        "seconds_per_episode": seconds / n,
        "steps_per_second": steps / seconds if seconds > 0 else None,
        "policy_failures": sum(r.policy_failures for r in records),
        "ends": {k: sum(r.reason == k for r in records) for k in ("success", "death", "step_limit")},
        "skill_steps": {SKILL_NAMES[k]: sum(r.skill_steps[k] for r in records) for k in range(NUM_SKILLS)},
    }
    if spec.metric == "success":
        for kind in ("legacy", "strict"):
            k = sum(getattr(r, f"{kind}_success") for r in records)
            low, high = wilson_interval(k, n)
            out[kind] = {"successes": k, "rate": k / n, "ci_low": low, "ci_high": high}
    else:
        for key, est in stats.items():
            out[key] = {"mean": est.mean, "stderr": est.stderr, "n": est.n}
    return out


def pool_evaluations(parts: Sequence[TaskEvaluation]) -> TaskEvaluation:
    """One evaluation from several of the same checkpoint, policies and settings (episodes joined).

    Episodes are pooled as they are: the statistics are then those of all episodes together.
    The same (task, condition, seed) in two parts is refused (it would count one game twice).
    """
    if not parts:
        raise TaskEvaluationError("pool: no results")
    first = parts[0]
    for other in parts[1:]:
        if other.identity() != first.identity():
            raise TaskEvaluationError(
                f"pool: {other.identity()} (checkpoint name, policy version, policies, max steps, untrained seed) "
                f"differs from {first.identity()}"
            )
    seen: set[tuple[str, str, int]] = set()
    episodes: list[EpisodeRecord] = []
    for part in parts:
        for rec in part.episodes:
            key = (rec.task, rec.condition, rec.seed)
            if key in seen:
                raise TaskEvaluationError(f"pool: episode {key} appears twice (same seed in two parts?)")
            seen.add(key)
            episodes.append(rec)
    return TaskEvaluation(
        checkpoint=first.checkpoint, checkpoint_name=first.checkpoint_name, policy_version=first.policy_version,
        preset=first.preset, policies=first.policies, seed=min(p.seed for p in parts), max_steps=first.max_steps,
        untrained_seed=first.untrained_seed, episodes=episodes,
        wall_seconds=max(p.wall_seconds for p in parts), host=first.host,
    )


@dataclass(frozen=True)
class WorkUnit:
    """A batch of episodes of one task under one condition (what a worker process plays)."""

    task: str
    condition: str
    seeds: tuple[int, ...]


@dataclass(frozen=True)
class EvalSettings:
    """Everything a worker needs to play units (picklable)."""

    checkpoint: str
    policies: str
    max_steps: int
    batch: int
    untrained_seed: int
    device: str = "cpu"
    artifacts: str = DEFAULT_ARTIFACTS


_SOURCES: dict[tuple[str, str], Any] = {}  # per process: (checkpoint, condition) -> (model, info)


def _model_for(settings: EvalSettings, condition: str) -> tuple[Any, dict[str, Any]]:
    key = (settings.checkpoint, condition)
    if key not in _SOURCES:
        model, info, _ = load_trained(settings.checkpoint, settings.device)
        if condition == "untrained":
            model, info = build_untrained(info["preset"], settings.untrained_seed, settings.device)
        _SOURCES[key] = (model, info)
    return _SOURCES[key]


def play_unit(settings: EvalSettings, unit: WorkUnit, on_episode: Callable[[EpisodeRecord], None] | None = None,
              should_stop: Callable[[], bool] | None = None) -> list[EpisodeRecord]:
    """Play one unit in this process (models are loaded once per process and kept)."""
    spec = get_task(unit.task)
    base = unit.seeds[0] if unit.seeds else 0
    if unit.condition == "random":
        source: ActionSource = RandomActions(base)
    else:
        model, info = _model_for(settings, unit.condition)
        source = NetworkActions(model, info, settings.batch, seed=base)
    return play_episodes(
        spec, policy_factory_for(unit.task, settings.policies, settings.artifacts), source, unit.seeds, condition=unit.condition,
        batch=settings.batch, max_steps=settings.max_steps, on_episode=on_episode, should_stop=should_stop,
    )


def _worker_init() -> None:
    # one thread per worker process; torch reads this when (and if) a network is loaded
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def _worker_play(settings: EvalSettings, unit: WorkUnit) -> list[EpisodeRecord]:
    return play_unit(settings, unit)


def plan_units(tasks: Sequence[str], conditions: Sequence[str], episodes: int, seed: int, batch: int) -> list[WorkUnit]:
    """Units of at most ``batch`` episodes; episode i uses dungeon seed ``seed + i`` in every task and condition.

    Ordered round-robin over tasks and conditions, so that a cut-short run has some of everything.
    """
    chunks = [tuple(range(seed + i, seed + min(i + batch, episodes))) for i in range(0, episodes, batch)]
    return [WorkUnit(t, c, chunk) for chunk in chunks for t in tasks for c in conditions]


def evaluate_tasks(
    checkpoint: str | os.PathLike[str],
    *,
    tasks: Sequence[str] = TASK_NAMES,
    episodes: int = 20,
    policies: str = "reference",
    conditions: Sequence[str] = CONDITIONS,
    seed: int = 0,
    max_steps: int = MAX_STEPS,
    batch: int = 4,
    workers: int = 1,
    untrained_seed: int = 12345,
    device: str = "cpu",
    artifacts: str | os.PathLike[str] = DEFAULT_ARTIFACTS,
    progress: Callable[[EpisodeRecord], None] | None = None,
    partial: Callable[[TaskEvaluation], None] | None = None,
) -> TaskEvaluation:
    """Evaluate ``tasks`` under ``conditions``, ``episodes`` each, in ``workers`` processes.

    ``progress`` is called once per finished episode (in this process); ``partial`` with the
    result so far after each episode (e.g. to save a run that may be cut short: units are
    ordered so that any prefix covers every task and condition).
    """
    unknown = [t for t in tasks if t not in TASK_NAMES]
    if unknown or not tasks:
        raise TaskEvaluationError(f"tasks: unknown {', '.join(unknown) or '(none given)'}; choose from {', '.join(TASK_NAMES)}")
    bad = [c for c in conditions if c not in CONDITIONS]
    if bad or not conditions:
        raise TaskEvaluationError(f"conditions: unknown {', '.join(bad) or '(none given)'}; choose from {', '.join(CONDITIONS)}")
    if not 1 <= episodes <= 100_000:
        raise TaskEvaluationError(f"episodes: {episodes} not in [1, 100000]")
    if not 1 <= batch <= 256:
        raise TaskEvaluationError(f"batch: {batch} not in [1, 256]")
    if not 1 <= workers <= 64:
        raise TaskEvaluationError(f"workers: {workers} not in [1, 64]")
    if not 1 <= max_steps <= MAX_STEPS:
        raise TaskEvaluationError(f"max_steps: {max_steps} not in [1, {MAX_STEPS}]")
    for t in tasks:
        policy_factory_for(t, policies, artifacts)  # a bad policy fails before anything is played
    _, info, path = load_trained(checkpoint, device)
    settings = EvalSettings(str(path), policies, max_steps, batch, untrained_seed, device, str(artifacts))
    units = plan_units(tasks, conditions, episodes, seed, batch)
    result = TaskEvaluation(
        checkpoint=str(path.resolve()), checkpoint_name=checkpoint_name(path), policy_version=int(info["policy_version"]),
        preset=str(info["preset"]), policies=policies, seed=seed, max_steps=max_steps, untrained_seed=untrained_seed,
    )
    t0 = time.perf_counter()
    for rec in _run_units(settings, units, workers, progress):
        result.episodes.append(rec)
        result.wall_seconds = time.perf_counter() - t0
        if partial is not None:
            partial(result)
    result.wall_seconds = time.perf_counter() - t0
    return result


def _run_units(settings: EvalSettings, units: list[WorkUnit], workers: int,
               progress: Callable[[EpisodeRecord], None] | None) -> Iterator[EpisodeRecord]:
    if workers == 1:
        for unit in units:
            yield from play_unit(settings, unit, on_episode=progress)
        return
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    # spawn: no forked torch or NLE state in the workers
    with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_worker_init) as pool:
        futures = [pool.submit(_worker_play, settings, unit) for unit in units]
        try:
            for fut in as_completed(futures):
                for rec in fut.result():
                    if progress is not None:
                        progress(rec)
                    yield rec
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise


def checkpoint_name(path: Path) -> str:
    """``<experiment>/<checkpoint file>`` (the experiment folder is two levels above the file)."""
    parts = path.resolve().parts
    return "/".join(parts[-3::2]) if len(parts) >= 3 else path.name


# ---------------------------------------------------------------------------- chart
def plot_evaluation(result: TaskEvaluation, out: str | os.PathLike[str]) -> Path:
    """A PNG with one panel of success rates (Wilson 95% intervals) and one of counts (± s.e.),
    each task showing the trained network (legacy and strict), both baselines and the paper."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = result.summary()
    panels = [("success", "success rate (%)"), ("count", "items per episode")]
    fig, axes = plt.subplots(1, 2, figsize=(14, 5), gridspec_kw={"width_ratios": [2, 1]})
    series = [("trained", "legacy", "trained (legacy)"), ("trained", "strict", "trained (strict)"),
              ("untrained", "legacy", "untrained net (legacy)"), ("random", "legacy", "random actions (legacy)")]
    colors = ["#1f77b4", "#6baed6", "#ff7f0e", "#7f7f7f"]
    for ax, (metric, label) in zip(axes, panels):
        names = [t for t, e in summary.items() if e["metric"] == metric]
        if not names:
            ax.set_visible(False)
            continue
        x = np.arange(len(names))
        width = 0.8 / (len(series) + 1)
        for j, (cond, kind, name) in enumerate(series):
            vals, lo, hi = [], [], []
            for t in names:
                c = summary[t]["conditions"].get(cond)
                if c is None:
                    vals.append(np.nan), lo.append(0.0), hi.append(0.0)
                elif metric == "success":
                    v = 100 * c[kind]["rate"]
                    vals.append(v)  # bars never below 0 (result files written before the exact bounds)
                    lo.append(max(0.0, v - 100 * c[kind]["ci_low"]))
                    hi.append(max(0.0, 100 * c[kind]["ci_high"] - v))
                else:
                    m, se = c[kind]["mean"], c[kind]["stderr"]
                    se = 0.0 if se is None or math.isnan(se) else se
                    vals.append(m), lo.append(se), hi.append(se)
            ax.bar(x + (j - len(series) / 2) * width, vals, width, yerr=[lo, hi], capsize=2, label=name,
                   color=colors[j])
        paper = [summary[t]["paper_value"] for t in names]
        paper_se = [summary[t]["paper_stderr"] or 0.0 for t in names]
        ax.errorbar(x + (len(series) / 2) * width, [np.nan if p is None else p for p in paper], yerr=paper_se,
                    fmt="D", color="#d62728", label="paper (MaestroMotif)", capsize=2)
        ax.set_xticks(x, names, rotation=20)
        ax.set_ylabel(label)
        ax.grid(axis="y", alpha=0.3)
    counts = sorted({sum(1 for r in result.episodes if r.task == t and r.condition == c)
                     for t in summary for c in CONDITIONS} - {0})
    fig.suptitle(f"{result.checkpoint_name} (v{result.policy_version}), {result.policies} policies, "
                 f"episodes per task and condition: {', '.join(map(str, counts))}")
    handles, labels = next(ax for ax in axes if ax.get_visible()).get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=9)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
