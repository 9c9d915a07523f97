"""One episode of a task as a stream of events, and the per-caller bound on open episodes.

Plain Python (no gRPC): the agent service turns these events into ``PlayEvent`` messages.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from maestromotif.tasks.detect import TaskOutcome
from maestromotif.tasks.evaluation import ActionSource, TaskGame


@dataclass(slots=True)
class StepInfo:
    step: int
    turn: int
    action: int
    skill: int
    message: str
    depth: int
    dungeon: int
    screen: str | None
    progress: TaskOutcome


@dataclass(slots=True)
class SwitchInfo:
    step: int
    from_skill: int
    to_skill: int


@dataclass(slots=True)
class MessageInfo:
    step: int
    text: str


@dataclass(slots=True)
class EndInfo:
    steps: int
    success: bool  # the task's legacy (headline) metric
    count: float
    reason: str  # success | death | step_limit | policy_error | cancelled
    error: str
    skill_steps: list[int]
    progress: TaskOutcome


Event = StepInfo | SwitchInfo | MessageInfo | EndInfo


def _copy(o: TaskOutcome) -> TaskOutcome:
    return TaskOutcome(**o.as_dict())


def play_session(
    game: TaskGame,
    actions: ActionSource,
    seed: int,
    *,
    step_every: int = 0,
    include_screen: bool = False,
    should_stop: Callable[[], bool] | None = None,
) -> Iterator[Event]:
    """Play one episode of ``game`` on dungeon ``seed``; yields events, an ``EndInfo`` last.

    ``step_every``: a ``StepInfo`` every this many steps (0: none). ``should_stop`` is checked
    before every step; when it says so the episode ends with reason ``cancelled``.
    """
    obs = game.start(seed)
    dones = np.ones(1, bool)
    reason = "cancelled"
    step = 0
    while True:
        if should_stop is not None and should_stop():
            break
        batch = {k: v[None] for k, v in obs.items()}
        action = int(actions(batch, dones)[0])
        dones = np.zeros(1, bool)
        out = game.step(action)
        obs = out.obs
        step += 1
        view = game.env.view()
        if game.env.message:
            yield MessageInfo(step, game.env.message.decode("latin-1"))
        if out.selected is not None:
            yield SwitchInfo(step, out.selected[0], out.selected[1])
        if step_every and step % step_every == 0:
            bl = view.blstats
            yield StepInfo(step, int(bl[20]), action, out.skill, game.env.message.decode("latin-1"), int(bl[12]),
                           int(bl[23]), game.screen() if include_screen else None, _copy(game.outcome))
        if out.done:
            reason = out.reason or "death"
            break
    stats = game.controller.last_episode or game.controller.stats
    o = game.outcome
    error = ""
    if stats.policy_failures:
        error = "; ".join(stats.failure_messages)[:2000]
        if reason != "success":
            reason = "policy_error"
    success = o.legacy_success if game.spec.metric == "success" else False
    yield EndInfo(int(stats.steps), success, float(o.legacy_count), reason, error,
                  [int(s) for s in stats.skill_steps], _copy(o))


@dataclass
class CallerSlots:
    """At most ``per_caller`` open episodes per caller and ``total`` in all (thread-safe)."""

    per_caller: int
    total: int
    _open: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def acquire(self, caller: str) -> str | None:
        """Take a slot; returns None, or the reason it was refused (``caller_limit`` or ``server_limit``)."""
        with self._lock:
            if self._open.get(caller, 0) >= self.per_caller:
                return "caller_limit"
            if sum(self._open.values()) >= self.total:
                return "server_limit"
            self._open[caller] = self._open.get(caller, 0) + 1
            return None

    def release(self, caller: str) -> None:
        with self._lock:
            left = self._open.get(caller, 0) - 1
            if left > 0:
                self._open[caller] = left
            else:
                self._open.pop(caller, None)

    def open(self, caller: str | None = None) -> int:
        with self._lock:
            return self._open.get(caller, 0) if caller is not None else sum(self._open.values())
