"""Call-and-return skill controller (method.md 3.2), one per environment.

After every environment step the controller checks whether the active skill terminates; when it
does, it asks the policy over skills for the next one (among the skills whose initiation holds
when ``mask_unavailable`` is set; the original does not enforce availability, method.md 10). It
also infers the fork depth, keeps the Δdepth FIFO the reward models read, counts per-skill
steps, game turns and returns, and records which skill generated each transition.

A policy that raises, runs out of budget or returns something that is not an available skill id
is a *recorded failure* of that episode: the controller falls back to the discoverer, counts the
failure and keeps the message; nothing propagates out of ``reset()`` or ``step()``. With
``end_episode_on_failure`` (generated policies) the first failure also sets ``episode_failed``,
and the vectorized env ends that episode there, reported as a policy failure.
"""

from __future__ import annotations

import logging
import random
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from nle import nethack

from maestromotif.env.view import GameView
from maestromotif.skills import rules
from maestromotif.skills.contract import CropView, PolicyError, PolicyOverSkills, SkillState
from maestromotif.skills.ids import NUM_SKILLS, SKILL_NAMES, Skill, parse_skill

log = logging.getLogger(__name__)

DEPTH_FIFO_LEN = 1_000  # method.md 2.3
MAX_SEGMENTS = 2_000  # per-episode skill runs kept in detail (all are counted)
MAX_FAILURE_MESSAGES = 20
DUNGEON_MAIN, DUNGEON_MINES = 0, 2


@dataclass(slots=True)
class SkillRun:
    """One uninterrupted run of a skill (a segment between two selections)."""

    skill: int
    start_step: int  # first transition it generated (1-based agent step)
    start_turn: int
    start_depth: int
    end_step: int = -1  # last transition it generated; -1 while running
    end_turn: int = -1
    end_depth: int = -1
    reward: float = 0.0


@dataclass(slots=True)
class EpisodeStats:
    """Per-episode counters kept by the controller."""

    steps: int = 0
    skill_steps: np.ndarray = field(default_factory=lambda: np.zeros(NUM_SKILLS, np.int64))
    skill_turns: np.ndarray = field(default_factory=lambda: np.zeros(NUM_SKILLS, np.int64))
    skill_returns: np.ndarray = field(default_factory=lambda: np.zeros(NUM_SKILLS, np.float64))
    skill_runs: np.ndarray = field(default_factory=lambda: np.zeros(NUM_SKILLS, np.int64))
    switches: int = 0  # selections that changed the skill
    selections: int = 0  # times the policy over skills was asked
    policy_failures: int = 0
    failure_messages: list[str] = field(default_factory=list)
    branch_depth: int | None = None
    max_depth: int = 1
    kills: int = 0
    sales: int = 0
    ate_in_mines: bool = False
    runs: list[SkillRun] = field(default_factory=list)

    def summary(self) -> dict[str, object]:
        """Plain-Python view for logs, metrics and the CLI."""
        return {
            "steps": self.steps,
            "skill_steps": {SKILL_NAMES[i]: int(v) for i, v in enumerate(self.skill_steps)},
            "skill_turns": {SKILL_NAMES[i]: int(v) for i, v in enumerate(self.skill_turns)},
            "skill_returns": {SKILL_NAMES[i]: float(v) for i, v in enumerate(self.skill_returns)},
            "skill_runs": {SKILL_NAMES[i]: int(v) for i, v in enumerate(self.skill_runs)},
            "switches": self.switches,
            "selections": self.selections,
            "policy_failures": self.policy_failures,
            "branch_depth": self.branch_depth,
            "max_depth": self.max_depth,
            "kills": self.kills,
            "sales": self.sales,
            "ate_in_mines": self.ate_in_mines,
        }


_MONSTER_NAMES: list[str] | None = None
_FEATURE_NAMES: list[str] | None = None


def _glyph_names() -> tuple[list[str], list[str]]:
    """Monster and map-feature names by glyph id (built once, for generated precondition code)."""
    global _MONSTER_NAMES, _FEATURE_NAMES
    if _MONSTER_NAMES is None or _FEATURE_NAMES is None:
        monsters = [""] * (nethack.MAX_GLYPH + 1)
        features = [""] * (nethack.MAX_GLYPH + 1)
        for g in range(nethack.MAX_GLYPH):
            if nethack.glyph_is_monster(g):
                monsters[g] = nethack.permonst(nethack.glyph_to_mon(g)).mname
            elif nethack.glyph_is_cmap(g):
                features[g] = nethack.symdef.from_idx(nethack.glyph_to_cmap(g)).explanation
        _MONSTER_NAMES, _FEATURE_NAMES = monsters, features
    return _MONSTER_NAMES, _FEATURE_NAMES


def crop_view(view: GameView) -> CropView:
    """The centred 7x7 crop as plain Python values (for generated ``skill_precondition``)."""
    crop = rules.hero_crop(view.tty_chars, view.tty_colors, view.glyphs, view.hero_row, view.hero_col)
    monsters, features = _glyph_names()
    glyphs = crop.glyphs.tolist()
    return CropView(
        chars=tuple(bytes(row).decode("latin-1") for row in crop.chars),
        colors=tuple(tuple(int(c) for c in row) for row in crop.colors),
        monsters=tuple(tuple(monsters[g] for g in row) for row in glyphs),
        features=tuple(tuple(features[g] for g in row) for row in glyphs),
    )


class SkillController:
    """Call-and-return execution of skills under a policy over skills (see module docstring).

    ``reset(view)`` at episode start returns the first skill (the discoverer); ``step(view,
    reward)`` after every environment step returns the skill for the next action. ``reward`` is
    the reward of the transition that produced ``view`` and is credited to the skill that acted
    (``acting_skill``); leave it 0 if returns are computed elsewhere.
    """

    def __init__(
        self,
        policy: PolicyOverSkills,
        *,
        seed: int,
        mask_unavailable: bool = False,
        record_trace: bool = False,
        end_episode_on_failure: bool = False,
    ) -> None:
        for attr in ("start", "choose", "base_turns"):
            if not hasattr(policy, attr):
                raise TypeError(f"policy over skills lacks {attr!r}; see maestromotif.skills.contract")
        base_turns = policy.base_turns
        if isinstance(base_turns, bool) or not isinstance(base_turns, int) or base_turns < 1:
            raise ValueError(f"policy.base_turns (D) must be a positive int, got {base_turns!r}")
        self.policy = policy
        self.seed = int(seed)
        self.mask_unavailable = mask_unavailable
        self.record_trace = record_trace
        self.end_episode_on_failure = end_episode_on_failure
        self._rng = random.Random(self.seed)
        self._custom_pre = bool(getattr(policy, "has_custom_preconditions", False))
        self._custom_end = bool(getattr(policy, "has_custom_termination", False))
        self._fifo: deque[int] = deque(maxlen=DEPTH_FIFO_LEN)
        self._skill = int(Skill.DISCOVERER)
        self._acting = int(Skill.DISCOVERER)
        self._depth_change = 0.0
        self._stats = EpisodeStats()
        self._run: SkillRun | None = None
        self._start_turn = 0
        self._start_depth = 1
        self._start_dungeon = DUNGEON_MAIN
        self._run_start_step = 0
        self._last_turn = 0
        self._last_depth = 1
        self._pre = (False, False)
        self._visited_main: set[int] = set()
        self._trace: list[int] = []
        self.last_episode: EpisodeStats | None = None
        self.last_trace: np.ndarray | None = None
        self.episodes = 0

    # ------------------------------------------------------------------ properties
    @property
    def skill(self) -> int:
        """Skill that will generate the next transition."""
        return self._skill

    @property
    def acting_skill(self) -> int:
        """Skill that generated the transition ending in the latest view."""
        return self._acting

    @property
    def depth_change(self) -> float:
        """clip(depth - depth_ref, -1, 1); depth_ref = oldest depth in the FIFO (method.md 2.3)."""
        return self._depth_change

    @property
    def branch_depth(self) -> int | None:
        """Depth of the main-dungeon fork to the Mines, once inferred this episode."""
        return self._stats.branch_depth

    @property
    def preconditions(self) -> tuple[bool, bool]:
        """(worshipper_pre, merchant_pre) at the latest view."""
        return self._pre

    @property
    def episode_failed(self) -> str | None:
        """With ``end_episode_on_failure``: the first policy failure of this episode (else None)."""
        st = self._stats
        if not (self.end_episode_on_failure and st.policy_failures):
            return None
        return st.failure_messages[0] if st.failure_messages else "policy failure"

    @property
    def stats(self) -> EpisodeStats:
        """Live counters of the current episode."""
        return self._stats

    @property
    def trace(self) -> np.ndarray:
        """Skill that generated each transition of this episode (only with ``record_trace``)."""
        return np.asarray(self._trace, dtype=np.int8)

    # ------------------------------------------------------------------ episode boundaries
    def _close_run(self, step: int, turn: int, depth: int) -> None:
        run = self._run
        if run is None:
            return
        run.end_step, run.end_turn, run.end_depth = step, turn, depth
        self._stats.skill_turns[run.skill] += max(turn - run.start_turn, 0)
        self._run = None

    def _open_run(self, skill: int, view_step: int, turn: int, depth: int, dungeon: int) -> None:
        self._skill = skill
        self._start_turn, self._start_depth, self._start_dungeon = turn, depth, dungeon
        self._stats.skill_runs[skill] += 1
        self._run = SkillRun(skill, view_step + 1, turn, depth)
        if len(self._stats.runs) < MAX_SEGMENTS:
            self._stats.runs.append(self._run)

    def finish(self) -> EpisodeStats:
        """Close the episode's open skill run and return its statistics (also kept as ``last_episode``)."""
        if self._run is not None:
            self._close_run(self._stats.steps, self._last_turn, self._last_depth)
        self.last_episode = self._stats
        self.last_trace = self.trace if self.record_trace else None
        return self._stats

    def reset(self, view: GameView) -> int:
        """Start an episode; returns the first skill (always the discoverer)."""
        if self._run is not None or self._stats.steps:
            self.finish()
        self.episodes += 1
        self._stats = EpisodeStats()
        self._trace = []
        self._visited_main = set()
        self._run_start_step = 0
        bl = view.blstats
        depth, turn, dungeon = int(bl[12]), int(bl[20]), int(bl[23])
        self._last_turn, self._last_depth = turn, depth
        self._stats.max_depth = depth
        if dungeon == DUNGEON_MAIN:
            self._visited_main.add(depth)
        self._fifo.clear()
        self._fifo.append(depth)
        self._depth_change = 0.0
        self._pre = (False, False)
        try:
            self.policy.start(self._rng)
        except Exception as exc:  # noqa: BLE001 - an untrusted policy must not crash the actor
            self._record_failure(f"start: {exc}")
        self._acting = int(Skill.DISCOVERER)
        self._open_run(int(Skill.DISCOVERER), 0, turn, depth, dungeon)
        return self._skill

    # ------------------------------------------------------------------ per step
    def _record_failure(self, message: str) -> None:
        st = self._stats
        st.policy_failures += 1
        if len(st.failure_messages) < MAX_FAILURE_MESSAGES:
            st.failure_messages.append(f"step {st.steps}: {message}"[:400])
        if st.policy_failures == 1:
            log.warning("policy over skills %r failed (episode %d): %s", getattr(self.policy, "name", "?"),
                        self.episodes, message[:400])

    def _compute_preconditions(self, view: GameView) -> tuple[bool, bool]:
        if self._custom_pre:
            try:
                return self.policy.preconditions(crop_view(view), int(view.acquired_items))
            except Exception as exc:  # noqa: BLE001
                self._record_failure(f"skill_precondition: {exc}")
        return rules.preconditions(view.glyphs, view.hero_row, view.hero_col, view.acquired_items)

    def _terminates(self, skill_turns: int, depth: int, pre: tuple[bool, bool]) -> bool:
        if self._custom_end:
            try:
                return bool(
                    self.policy.termination(
                        self._skill, skill_turns, depth, self._start_depth, pre[0], pre[1], self.policy.base_turns
                    )
                )
            except Exception as exc:  # noqa: BLE001
                self._record_failure(f"skill_termination: {exc}")
        return rules.termination(self._skill, skill_turns, depth, self._start_depth, pre[0], pre[1],
                                 self.policy.base_turns)

    def _state(self, view: GameView, depth: int, dungeon: int, turn: int, pre: tuple[bool, bool]) -> SkillState:
        st = self._stats
        bl = view.blstats
        return SkillState(
            skill=self._skill,
            skill_turns=turn - self._start_turn,
            skill_steps=st.steps - self._run_start_step,
            depth=depth,
            dungeon=dungeon,
            branch_depth=st.branch_depth,
            max_depth=st.max_depth,
            xp_level=int(bl[18]),
            gold=int(bl[13]),
            kills=st.kills,
            ate_in_mines=st.ate_in_mines,
            sales=st.sales,
            turn=turn,
            step=st.steps,
            worshipper_available=pre[0],
            merchant_available=pre[1],
            visited_main_depths=frozenset(self._visited_main),
        )

    def _select(self, state: SkillState) -> int:
        self._stats.selections += 1
        try:
            chosen = parse_skill(self.policy.choose(state))
            if self.mask_unavailable and int(chosen) not in state.available:
                raise PolicyError(f"returned {SKILL_NAMES[chosen]}, whose initiation does not hold")
            return int(chosen)
        except Exception as exc:  # noqa: BLE001 - includes SkillIdError for out-of-range ids
            self._record_failure(f"choose_skill: {exc}")
            return int(Skill.DISCOVERER)

    def step(self, view: GameView, reward: float = 0.0) -> int:
        """Account for the transition that produced ``view``; returns the skill for the next action."""
        st = self._stats
        acting = self._skill
        self._acting = acting
        st.steps += 1
        st.skill_steps[acting] += 1
        st.skill_returns[acting] += reward
        if self._run is not None:
            self._run.reward += reward
        if self.record_trace:
            self._trace.append(acting)

        bl = view.blstats
        depth, turn, dungeon = int(bl[12]), int(bl[20]), int(bl[23])
        if depth < 1:
            # NLE zeroes blstats once the game is over: the final transition is counted, but there
            # is no state to terminate on or to choose from.
            self._depth_change = 0.0
            return self._skill
        self._last_turn, self._last_depth = turn, depth
        if depth > st.max_depth:
            st.max_depth = depth
        msg = view.message
        if msg:
            # Strict kill count: only the hero's own kills ("killer bee" is not one, D4).
            st.kills += msg.count(b"You kill") + msg.count(b"You destroy")
            st.sales += msg.count(b"You sold ")
        if view.just_eaten and dungeon == DUNGEON_MINES:
            st.ate_in_mines = True
        if dungeon == DUNGEON_MAIN:
            self._visited_main.add(depth)
            # The fork level is the only main-dungeon level above Medusa with two down staircases.
            if st.branch_depth is None and np.count_nonzero(view.glyphs == rules.GLYPH_DOWNSTAIR) > 1:
                st.branch_depth = depth

        pre = self._compute_preconditions(view)
        self._pre = pre
        self._fifo.append(depth)
        delta = depth - self._fifo[0]
        self._depth_change = 1.0 if delta > 0 else (-1.0 if delta < 0 else 0.0)

        if self._terminates(turn - self._start_turn, depth, pre):
            # A descent from the main dungeon that lands outside it started on the fork level
            # (checked on the start dungeon too, unlike the original).
            if (
                acting == Skill.DESCENDER
                and st.branch_depth is None
                and self._start_dungeon == DUNGEON_MAIN
                and dungeon != DUNGEON_MAIN
            ):
                st.branch_depth = self._start_depth
            new = self._select(self._state(view, depth, dungeon, turn, pre))
            self._close_run(st.steps, turn, depth)
            if new != acting:
                st.switches += 1
            self._run_start_step = st.steps
            self._open_run(new, st.steps, turn, depth, dungeon)
            # Cleared after this step's Δdepth was computed (method.md 2.3), then seeded with the
            # depth the new skill starts at: a descent on the new skill's very first step (e.g. a
            # descender chosen while standing on the stairs) then still reads +1, where an empty
            # FIFO would read 0. Every other step is identical to the original.
            self._fifo.clear()
            self._fifo.append(depth)
        return self._skill


def controller_factory(
    policy: str | Callable[[], PolicyOverSkills],
    seed: int,
    *,
    end_episode_on_failure: bool | None = None,
) -> Callable[[int], SkillController] | None:
    """Per-env skill controllers running a policy over skills (None for 'none').

    ``policy`` is a reference policy's name, or a zero-argument factory of policies (e.g.
    ``maestromotif.codegen.artifacts.ArtifactPolicyLoader`` for generated code). Env ``i`` gets its
    own policy instance seeded ``seed * 1000 + i``: independent, reproducible episodes. A policy
    failure ends the episode (``end_episode_on_failure``) by default for factories (generated
    code) and falls back to the discoverer for reference policies. Actors, collection with a
    trained policy and evaluation all build controllers here.
    """
    if isinstance(policy, str):
        if policy == "none":
            return None
        from maestromotif.skills.reference import load_reference

        name = policy
        loader: Callable[[], PolicyOverSkills] = lambda: load_reference(name)  # noqa: E731
        end = bool(end_episode_on_failure)
    elif callable(policy):
        loader = policy
        end = True if end_episode_on_failure is None else end_episode_on_failure
    else:
        raise TypeError(f"policy must be a reference name or a policy factory, got {type(policy).__name__}")

    def make(i: int) -> SkillController:
        return SkillController(loader(), seed=seed * 1000 + i, end_episode_on_failure=end)

    return make
