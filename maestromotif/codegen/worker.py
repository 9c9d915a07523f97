"""The validation driver that runs inside the isolated child (stages isolated-run, harness, llm-tests).

``run(request, emit)`` loads the candidate through the in-process sandbox (restricted builtins,
per-call budget), replays recorded NLE states through it, then runs the LLM's tests. For every
stage it emits ``{"event": "begin", "stage": ...}`` and then ``{"event": "end", "stage": ...,
"passed": ..., "detail": ...}``; the parent attributes a child that dies or times out to the stage
that began last. It stops at the first failed stage.

The recorded states come from games played by the reference policies: the candidate sees each
recorded episode's states in order, with its ``memory`` kept across the episode, but its answers
do not steer those games (the harness checks answers, it does not replay the candidate's play).
"""

from __future__ import annotations

import random
import time
import types
from collections.abc import Callable
from typing import Any

from maestromotif.codegen import ArtifactKind
from maestromotif.codegen.testapi import MAX_TESTS, TEST_HELPERS, TEST_PREFIX
from maestromotif.skills.contract import CropView, PolicyError, SkillState
from maestromotif.skills.ids import SKILL_NAMES, SkillIdError, parse_skill
from maestromotif.skills.sandbox import SandboxedModule, SandboxedPolicy, SandboxedSkillFunctions

Emit = Callable[[dict[str, Any]], None]

STAGE_ISOLATED_RUN, STAGE_HARNESS, STAGE_LLM_TESTS = "isolated-run", "harness", "llm-tests"


class StageFailure(Exception):
    """The current stage failed; the message is its verdict detail."""


def state_from_dict(d: dict[str, Any]) -> SkillState:
    fields = dict(d)
    fields["visited_main_depths"] = frozenset(fields["visited_main_depths"])
    return SkillState(**fields)


def crop_from_dict(d: dict[str, Any]) -> CropView:
    return CropView(
        chars=tuple(d["chars"]),
        colors=tuple(tuple(row) for row in d["colors"]),
        monsters=tuple(tuple(row) for row in d["monsters"]),
        features=tuple(tuple(row) for row in d["features"]),
    )


def _describe(state: SkillState) -> str:
    return (f"skill={SKILL_NAMES[state.skill]} depth={state.depth} dungeon={state.dungeon} "
            f"branch_depth={state.branch_depth} available={[SKILL_NAMES[s] for s in state.available]}")


def _load(kind: ArtifactKind, source: str, name: str, limits: dict[str, Any]) -> SandboxedModule:
    if kind is ArtifactKind.SKILL_FUNCTIONS:
        return SandboxedSkillFunctions(source, name=name, **limits)
    return SandboxedPolicy(source, name=name, **limits)


class _Timer:
    """Slowest call seen, for the harness detail."""

    def __init__(self) -> None:
        self.worst = 0.0

    def __call__(self, fn: Callable[[], Any]) -> Any:
        t = time.perf_counter()
        try:
            return fn()
        finally:
            self.worst = max(self.worst, time.perf_counter() - t)


def _play_episode(policy: SandboxedPolicy, e: int, episode: dict[str, Any], timer: _Timer) -> list[int]:
    """The candidate's answers to one recorded episode's states (checked: available skill ids)."""
    try:
        policy.start(random.Random(int(episode["seed"])))
    except PolicyError as exc:
        raise StageFailure(f"episode {e}: {exc}") from None
    answers = []
    for i, raw in enumerate(episode["selections"]):
        state = state_from_dict(raw)
        where = f"episode {e} state {i} ({_describe(state)})"
        try:
            out = timer(lambda: policy.choose(state))
        except PolicyError as exc:
            raise StageFailure(f"{where}: {exc}") from None
        try:
            skill = parse_skill(out)
        except SkillIdError as exc:
            raise StageFailure(f"{where}: choose_skill() returned an invalid skill: {exc}") from None
        if int(skill) not in state.available:
            raise StageFailure(f"{where}: choose_skill() returned {SKILL_NAMES[skill]}, whose initiation "
                               "does not hold (it is not in state.available)")
        answers.append(int(skill))
    return answers


def _check_no_hidden_state(module: SandboxedModule) -> None:
    """Functions of the code must carry no attributes: that would be state outliving an episode.

    The allow-list refuses ``choose_skill.x = ...``; this catches the same through an alias
    (``f = choose_skill; f.x = ...``) after the code has run.
    """
    for name, value in module._namespace.items():  # noqa: SLF001 - our own sandbox
        if isinstance(value, types.FunctionType) and not name.startswith("_") and value.__dict__:
            keys = ", ".join(sorted(value.__dict__))[:200]
            raise StageFailure(f"the code set attributes on its function {name}() ({keys}): "
                               "state must live in memory")


def _harness_policy(policy: SandboxedPolicy, episodes: list[dict[str, Any]], timer: _Timer) -> str:
    n_states = n_steps = 0
    chosen = [0] * len(SKILL_NAMES)
    first: list[int] = []
    for e, episode in enumerate(episodes):
        answers = _play_episode(policy, e, episode, timer)
        first = first or answers
        for skill in answers:
            chosen[skill] += 1
        n_states += len(answers)
        if policy.has_custom_preconditions or policy.has_custom_termination:
            for j, step in enumerate(episode["skill_steps"]):
                try:
                    if policy.has_custom_preconditions:
                        crop = crop_from_dict(step["crop"])
                        timer(lambda: policy.preconditions(crop, int(step["num_items"])))
                    if policy.has_custom_termination:
                        timer(lambda: policy.termination(*step["termination"]))
                except PolicyError as exc:
                    raise StageFailure(f"episode {e} step record {j}: {exc}") from None
                n_steps += 1
    _check_no_hidden_state(policy)
    # Same episode, same seed, fresh memory: the same answers, unless the code kept state elsewhere.
    if episodes and _play_episode(policy, 0, episodes[0], timer) != first:
        raise StageFailure("replaying the first recorded episode with the same seed gave different answers: "
                           "the code keeps state between episodes outside memory")
    picks = ", ".join(f"{SKILL_NAMES[s]} {n}" for s, n in enumerate(chosen) if n)
    extra = f" and {n_steps} initiation/termination inputs" if n_steps else ""
    return (f"{n_states} recorded states from {len(episodes)} episodes{extra}: every answer an available skill "
            f"({picks}); replaying an episode gives the same answers; slowest call {timer.worst * 1000:.1f} ms")


def _harness_skill_functions(
    module: SandboxedSkillFunctions, episodes: list[dict[str, Any]], timer: _Timer
) -> tuple[str, dict[str, float]]:
    agree: dict[str, list[int]] = {}

    def count(key: str, same: bool) -> None:
        hits = agree.setdefault(key, [0, 0])
        hits[0] += int(same)
        hits[1] += 1

    n = 0
    for e, episode in enumerate(episodes):
        module.seed(random.Random(int(episode["seed"])))
        for j, step in enumerate(episode["skill_steps"]):
            crop = crop_from_dict(step["crop"])
            args = step["termination"]
            try:
                pre = timer(lambda: module.preconditions(crop, int(step["num_items"])))
                end = timer(lambda: module.termination(*args))
            except PolicyError as exc:
                raise StageFailure(f"episode {e} step record {j}: {exc}") from None
            rule_pre = step["rule_pre"]
            count("worshipper.initiation", pre[0] == bool(rule_pre[0]))
            count("merchant.initiation", pre[1] == bool(rule_pre[1]))
            count(f"{SKILL_NAMES[int(args[0])]}.termination", end == bool(step["rule_termination"]))
            n += 1
    _check_no_hidden_state(module)
    agreement = {k: round(v[0] / v[1], 4) for k, v in sorted(agree.items())}
    low = ", ".join(f"{k} {v:.2f}" for k, v in agreement.items())
    return (f"{n} recorded initiation/termination inputs from {len(episodes)} episodes, all well-typed; "
            f"agreement with the hand-written rules: {low}; slowest call {timer.worst * 1000:.1f} ms"), agreement


def _module_names(module: SandboxedModule) -> dict[str, Any]:
    """Public names of the code under test, for its tests; functions go through ``call``."""
    out: dict[str, Any] = {}
    for name, value in module._namespace.items():  # noqa: SLF001 - our own sandbox
        if name.startswith("_") or name in ("random", "math"):
            continue
        if callable(value):
            out[name] = (lambda fn_name: lambda *args: module.call(fn_name, *args))(name)
        elif isinstance(value, (int, float, str, bool, tuple, frozenset)) or value is None:
            out[name] = value
    return out


def _llm_tests(module: SandboxedModule, tests_source: str, limits: dict[str, Any]) -> str:
    predefined = {**_module_names(module), **TEST_HELPERS}
    try:
        tests = SandboxedModule(tests_source, name="tests", required={}, optional={}, needs_turns=False,
                                what="tests", predefined=predefined, **limits)
    except PolicyError as exc:
        raise StageFailure(f"the tests did not load: {exc}") from None
    names = [n for n in tests._namespace if n.startswith(TEST_PREFIX) and tests.function(n)]  # noqa: SLF001
    if not names:
        raise StageFailure(f"the tests define no function named {TEST_PREFIX}*()")
    if len(names) > MAX_TESTS:
        raise StageFailure(f"the tests define {len(names)} test functions, more than {MAX_TESTS}")
    failures = []
    for name in names:
        module.seed(random.Random(0))
        tests.seed(random.Random(0))
        try:
            tests.call(name)
        except PolicyError as exc:
            failures.append(str(exc))
    if failures:
        raise StageFailure(f"{len(failures)} of {len(names)} tests failed: " + " | ".join(failures)[:3000])
    return f"{len(names)} tests passed: {', '.join(names)}"[:1000]


def run(request: dict[str, Any], emit: Emit) -> None:
    """Run the stages isolated-run, harness and llm-tests (see the module docstring)."""
    kind = ArtifactKind(request["kind"])
    limits = dict(request["limits"])
    name = str(request.get("name", "candidate"))

    def stage(name_: str, fn: Callable[[], Any]) -> Any:
        emit({"event": "begin", "stage": name_})
        t = time.perf_counter()
        try:
            result = fn()
        except StageFailure as exc:
            emit({"event": "end", "stage": name_, "passed": False, "detail": str(exc)[:4000],
                  "seconds": time.perf_counter() - t})
            return None
        detail, extra = result if isinstance(result, tuple) else (result, {})
        emit({"event": "end", "stage": name_, "passed": True, "detail": str(detail)[:4000],
              "seconds": time.perf_counter() - t, **extra})
        return result

    holder: dict[str, SandboxedModule] = {}

    def isolated_run() -> str:
        try:
            holder["module"] = _load(kind, request["source"], name, limits)
        except PolicyError as exc:
            raise StageFailure(f"loading the code failed: {exc}") from None
        m = holder["module"]
        if isinstance(m, SandboxedPolicy):
            return f"loaded in the isolated process; SKILL_TURNS = {m.base_turns}"
        return "loaded in the isolated process"

    if stage(STAGE_ISOLATED_RUN, isolated_run) is None:
        return
    module = holder["module"]
    timer = _Timer()

    def harness() -> Any:
        if isinstance(module, SandboxedSkillFunctions):
            detail, agreement = _harness_skill_functions(module, request["episodes"], timer)
            return detail, {"agreement": agreement}
        assert isinstance(module, SandboxedPolicy)
        return _harness_policy(module, request["episodes"], timer)

    if stage(STAGE_HARNESS, harness) is None:
        return
    tests_source = request.get("tests_source")
    if tests_source is None:
        emit({"event": "begin", "stage": STAGE_LLM_TESTS})
        emit({"event": "end", "stage": STAGE_LLM_TESTS, "passed": True, "detail": "skipped: no tests were given",
              "seconds": 0.0})
        return
    stage(STAGE_LLM_TESTS, lambda: _llm_tests(module, tests_source, limits))
