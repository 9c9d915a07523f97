"""Validate generated code, stage by stage, stopping at the first failure.

Stages (``STAGES``), each with its own verdict:

1. ``size``: the source (and the tests) within byte and line limits, valid UTF-8 text;
2. ``parse``: Python syntax;
3. ``allow-list``: the policy subset of ``maestromotif.skills.sandbox`` (``check_source``), the
   members the kind requires (``check_contract``), and rules for generated code on top: no
   rebinding of predefined names (skill constants, builtins, test helpers), module-level values
   immutable and no mutable default arguments or attribute assignment to module-level objects (so
   nothing outlives an episode except through ``memory``); the tests are checked the same way;
4. ``isolated-run``: the code is loaded (executed) in a separate, locked-down process
   (``maestromotif.codegen.isolation``) through the in-process sandbox;
5. ``harness``: in that same process, the code runs on the recorded NLE states of
   ``maestromotif.codegen.fixtures`` (at least ``min_states``); policies must return an available
   skill id for every state, skill functions well-typed results, within the per-call budget. For
   skill functions the report gives per-skill agreement with the hand-written rules;
6. ``llm-tests``: the LLM's own unit tests (API: ``maestromotif.codegen.testapi``), in the same
   process; passes with "skipped" when no tests were given.
"""

from __future__ import annotations

import ast
import builtins
import functools
import json
from dataclasses import dataclass, field
from typing import Any

from maestromotif.codegen import ArtifactKind, parse_kind
from maestromotif.codegen.isolation import IsolatedResult, IsolationError, IsolationLimits, run_isolated
from maestromotif.codegen.testapi import TEST_HELPERS, TEST_PREFIX
from maestromotif.skills import rules
from maestromotif.skills.contract import SKILL_CONSTANTS, SubsetError
from maestromotif.skills.sandbox import _SAFE_BUILTINS, MAX_TICKS, check_contract, check_source, parse_source

STAGE_SIZE = "size"
STAGE_PARSE = "parse"
STAGE_ALLOW_LIST = "allow-list"
STAGE_ISOLATED_RUN = "isolated-run"
STAGE_HARNESS = "harness"
STAGE_LLM_TESTS = "llm-tests"
STAGES: tuple[str, ...] = (STAGE_SIZE, STAGE_PARSE, STAGE_ALLOW_LIST, STAGE_ISOLATED_RUN, STAGE_HARNESS, STAGE_LLM_TESTS)
MAX_DETAIL_CHARS = 4_000
MAX_SANDBOX_OUTPUT = 8_000


@dataclass(frozen=True, slots=True)
class ValidationLimits:
    """Bounds of one validation."""

    max_bytes: int = 32_000  # source, UTF-8
    max_lines: int = 800
    max_test_bytes: int = 16_000
    max_test_lines: int = 400
    per_call_time_s: float = 0.25  # wall-clock budget of every call into the code
    max_ticks: int = MAX_TICKS  # loop iterations + calls per call
    max_memory_growth_mb: int = 128  # peak-memory growth per call
    min_states: int = 100  # recorded states the harness must have
    isolation: IsolationLimits = field(default_factory=IsolationLimits)

    def __post_init__(self) -> None:
        for name in ("max_bytes", "max_lines", "max_test_bytes", "max_test_lines", "per_call_time_s", "max_ticks",
                     "max_memory_growth_mb", "min_states"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"ValidationLimits.{name} must be a positive number, got {value!r}")

    def sandbox_limits(self) -> dict[str, Any]:
        return {"max_ticks": int(self.max_ticks), "time_limit_s": float(self.per_call_time_s),
                "max_memory_growth_mb": int(self.max_memory_growth_mb)}


@dataclass(frozen=True, slots=True)
class StageResult:
    """Verdict of one stage."""

    stage: str
    passed: bool
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "passed": self.passed, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class ValidationReport:
    """What ``validate_code`` found. ``stages`` holds the stages that ran, in order."""

    valid: bool
    stages: tuple[StageResult, ...]
    sandbox_output: str = ""  # stdout + stderr of the isolated process, truncated
    isolation: tuple[str, ...] = ()  # isolation layers that were active ("netns", "seccomp", ...)
    agreement: dict[str, float] | None = None  # skill functions: agreement with rules.py per skill

    @property
    def failed_stage(self) -> str | None:
        """The stage that failed, or None when valid."""
        return next((s.stage for s in self.stages if not s.passed), None)

    @property
    def errors(self) -> str:
        """The failed stage's verdict as one line of text (what goes back to the LLM)."""
        bad = next((s for s in self.stages if not s.passed), None)
        return "" if bad is None else f"{bad.stage}: {bad.detail}"

    def stage(self, name: str) -> StageResult | None:
        return next((s for s in self.stages if s.stage == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "valid": self.valid,
            "stages": [s.to_dict() for s in self.stages],
            "sandbox_output": self.sandbox_output,
            "isolation": list(self.isolation),
            "agreement": dict(self.agreement) if self.agreement is not None else None,
        }

    @classmethod
    def from_dict(cls, data: Any) -> ValidationReport:
        """Rebuild a report from ``to_dict`` output read back from a file; ValueError names what is wrong."""
        if not isinstance(data, dict):
            raise ValueError(f"validation report must be an object, got {type(data).__name__}")
        unknown = set(data) - {"valid", "stages", "sandbox_output", "isolation", "agreement"}
        if unknown:
            raise ValueError(f"validation report: unknown field(s) {sorted(unknown)}")
        valid = data.get("valid")
        if not isinstance(valid, bool):
            raise ValueError("validation report: 'valid' must be true or false")
        raw_stages = data.get("stages")
        if not isinstance(raw_stages, list) or len(raw_stages) > len(STAGES):
            raise ValueError(f"validation report: 'stages' must be a list of at most {len(STAGES)}")
        stages = []
        for i, s in enumerate(raw_stages):
            if not (isinstance(s, dict) and set(s) == {"stage", "passed", "detail"} and s["stage"] in STAGES
                    and isinstance(s["passed"], bool) and isinstance(s["detail"], str)):
                raise ValueError(f"validation report: stage {i} must be {{stage in {STAGES}, passed: bool, detail: str}}")
            stages.append(StageResult(s["stage"], s["passed"], s["detail"]))
        names = [s.stage for s in stages]
        if names != list(STAGES[: len(names)]):
            raise ValueError(f"validation report: stages out of order: {names}")
        if valid != (len(stages) == len(STAGES) and all(s.passed for s in stages)):
            raise ValueError("validation report: 'valid' disagrees with the stage verdicts")
        output = data.get("sandbox_output", "")
        if not isinstance(output, str):
            raise ValueError("validation report: 'sandbox_output' must be text")
        isolation = data.get("isolation", [])
        if not isinstance(isolation, list) or not all(isinstance(x, str) for x in isolation):
            raise ValueError("validation report: 'isolation' must be a list of strings")
        agreement = data.get("agreement")
        if agreement is not None:
            if not isinstance(agreement, dict) or not all(
                isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1
                for k, v in agreement.items()
            ):
                raise ValueError("validation report: 'agreement' must map names to fractions in [0, 1]")
            agreement = {k: float(v) for k, v in agreement.items()}
        return cls(valid, tuple(stages), output, tuple(isolation), agreement)


# ------------------------------------------------------------------------------------------------
# static stages
# ------------------------------------------------------------------------------------------------

# Names code must not rebind: the skill constants, every builtin (allowed or not) and the test helpers.
PROTECTED_NAMES: frozenset[str] = frozenset(SKILL_CONSTANTS) | frozenset(dir(builtins)) | frozenset(TEST_HELPERS)
_CONSTANT_NODES = (ast.Constant, ast.Tuple, ast.Name, ast.UnaryOp, ast.BinOp, ast.Load, ast.operator, ast.unaryop)
_MODULE_IMPORTS = ("random", "math")


def _line(node: ast.AST) -> str:
    return f"line {getattr(node, 'lineno', '?')}: "


def check_generated(tree: ast.Module, *, extra_protected: frozenset[str] = frozenset()) -> None:
    """Rules for generated code on top of the subset (see the module docstring); raises ``SubsetError``."""
    protected = PROTECTED_NAMES | extra_protected
    module_names: set[str] = set()
    for stmt in tree.body:
        if isinstance(stmt, ast.FunctionDef):
            module_names.add(stmt.name)
        elif isinstance(stmt, ast.Assign):
            for target in stmt.targets:
                for node in ast.walk(target):
                    if isinstance(node, ast.Name):
                        module_names.add(node.id)
            if not all(isinstance(n, _CONSTANT_NODES) for n in ast.walk(stmt.value)):
                raise SubsetError(f"{_line(stmt)}module-level values must be numbers, strings, booleans, None or "
                                  "tuples of them; keep state that changes in memory")
        elif isinstance(stmt, (ast.Import, ast.ImportFrom)):
            for alias in stmt.names:
                module_names.add(alias.asname or alias.name)
    for node in ast.walk(tree):
        bound: list[tuple[str, ast.AST]] = []
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            bound.append((node.id, node))
        elif isinstance(node, ast.FunctionDef):
            bound.append((node.name, node))
            for default in node.args.defaults + [d for d in node.args.kw_defaults if d is not None]:
                if not all(isinstance(n, _CONSTANT_NODES) for n in ast.walk(default)):
                    raise SubsetError(f"{_line(node)}{node.name}(): default values must be constants "
                                      "(a mutable default would outlive the episode)")
        elif isinstance(node, ast.arg):
            bound.append((node.arg, node))
        elif isinstance(node, ast.alias) and (node.asname or node.name) not in _MODULE_IMPORTS:
            bound.append((node.asname or node.name, node))
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            base = node.value
            if isinstance(base, ast.Name) and base.id in module_names | set(SKILL_CONSTANTS) | set(_SAFE_BUILTINS):
                raise SubsetError(f"{_line(node)}assigning {base.id}.{node.attr}: module-level objects, modules and "
                                  "builtins cannot be changed; keep state in memory")
            if not isinstance(base, ast.Name):
                raise SubsetError(f"{_line(node)}attribute assignment only to name.attribute (memory.x = ...)")
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Store):
            base = node.value
            while isinstance(base, (ast.Subscript, ast.Attribute)):
                base = base.value
            if isinstance(base, ast.Name) and base.id in module_names:
                raise SubsetError(f"{_line(node)}item assignment into module-level {base.id!r} is not allowed")
        for name, where in bound:
            if name in protected:
                raise SubsetError(f"{_line(where)}{name!r} is predefined and cannot be rebound")


def _module_public_names(tree: ast.Module) -> frozenset[str]:
    names: set[str] = set()
    for stmt in tree.body:
        if isinstance(stmt, ast.FunctionDef):
            names.add(stmt.name)
        elif isinstance(stmt, ast.Assign):
            for target in stmt.targets:
                if isinstance(target, ast.Name):
                    names.add(target.id)
    return frozenset(n for n in names if not n.startswith("_"))


def _size(text: str, what: str, max_bytes: int, max_lines: int) -> str | None:
    if not isinstance(text, str):
        return f"{what} must be text, got {type(text).__name__}"
    try:
        n = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        return f"{what} is not valid UTF-8 text"
    if n == 0 or not text.strip():
        return f"{what} is empty"
    if n > max_bytes:
        return f"{what} has {n} bytes, more than the limit of {max_bytes}"
    lines = text.count("\n") + 1
    if lines > max_lines:
        return f"{what} has {lines} lines, more than the limit of {max_lines}"
    return None


def _parse(text: str, what: str) -> str | None:
    try:
        parse_source(text)
    except SyntaxError as exc:
        where = f"line {exc.lineno}: " if exc.lineno else ""
        return f"{what}: {where}syntax error: {exc.msg}"
    except (ValueError, RecursionError, MemoryError) as exc:  # null bytes, absurd nesting
        return f"{what}: cannot be parsed: {type(exc).__name__}: {str(exc)[:200]}"
    return None


def _allow_list(source: str, kind: ArtifactKind, tests_source: str | None) -> str | None:
    try:
        tree = check_source(source)
        check_contract(tree, required=kind.required_functions, optional=kind.optional_functions,
                       needs_turns=kind.needs_skill_turns, what=kind.value.replace("_", " "))
        check_generated(tree)
    except SubsetError as exc:
        return str(exc)
    except RecursionError:
        return "the code is nested too deeply to check"
    if tests_source is None:
        return None
    names = _module_public_names(tree)
    try:
        tests = check_source(tests_source, filename="<tests>", predefined=names | set(TEST_HELPERS))
        check_generated(tests, extra_protected=names)
    except SubsetError as exc:
        return f"tests: {exc}"
    except RecursionError:
        return "tests: nested too deeply to check"
    if not any(isinstance(s, ast.FunctionDef) and s.name.startswith(TEST_PREFIX) for s in tests.body):
        return f"tests: define at least one function named {TEST_PREFIX}*() with plain asserts"
    for s in tests.body:
        if isinstance(s, ast.FunctionDef) and s.name.startswith(TEST_PREFIX) and s.args.args:
            return f"tests: line {s.lineno}: {s.name}() must take no parameters"
    return None


# ------------------------------------------------------------------------------------------------
# the whole validation
# ------------------------------------------------------------------------------------------------

_DRIVER = "from maestromotif.codegen.worker import run\nrun(request, emit)\n"
_PRELOAD = ("maestromotif.codegen.worker",)


@functools.lru_cache(maxsize=2)
def _episodes_cached(path: str, mtime_ns: int, size: int) -> tuple[int, str]:
    """The harness episodes as JSON-ready data, built once per fixture file version."""
    from maestromotif.codegen.fixtures import load_fixture

    fixture = load_fixture(path)
    episodes = []
    for ep in fixture.episodes:
        steps = []
        for step in ep.skill_steps:
            # The hand-written rule's verdict on the same inputs, computed here (fresh) for the agreement.
            steps.append({**step, "rule_termination": rules.termination(*step["termination"])})
        episodes.append({"seed": ep.seed, "selections": ep.selections, "skill_steps": steps})
    return fixture.num_states, json.dumps(episodes)


def _episodes_payload(kind: ArtifactKind, min_states: int) -> list[dict[str, Any]]:
    from maestromotif.codegen.fixtures import FIXTURE_PATH, FixtureError

    try:
        st = FIXTURE_PATH.stat()
    except OSError as exc:
        raise FixtureError(f"cannot read the state fixture {FIXTURE_PATH}: {exc}") from None
    num_states, episodes_json = _episodes_cached(str(FIXTURE_PATH), st.st_mtime_ns, st.st_size)
    if num_states < min_states:
        raise FixtureError(f"the state fixture has {num_states} states, fewer than {min_states}; "
                           "regenerate it with `python -m maestromotif.codegen.fixtures`")
    return json.loads(episodes_json)  # a fresh copy per validation


def validate_code(
    source: str,
    kind: ArtifactKind | str,
    *,
    tests_source: str | None = None,
    limits: ValidationLimits | None = None,
    name: str = "candidate",
) -> ValidationReport:
    """Validate ``source`` of the given kind (see the module docstring).

    Never raises for bad code: every problem of the code is a stage verdict. Raises ``ValueError``
    for an unknown kind and ``FixtureError`` when the shipped state fixture is missing or too small.
    """
    kind = parse_kind(kind)
    limits = limits or ValidationLimits()
    done: list[StageResult] = []

    def finish(stage: str, detail: str, *, output: str = "", isolation: tuple[str, ...] = (),
               agreement: dict[str, float] | None = None) -> ValidationReport:
        done.append(StageResult(stage, False, detail[:MAX_DETAIL_CHARS]))
        return ValidationReport(False, tuple(done), output[:MAX_SANDBOX_OUTPUT], isolation, agreement)

    problem = _size(source, "code", limits.max_bytes, limits.max_lines)
    if problem is None and tests_source is not None:
        problem = _size(tests_source, "tests", limits.max_test_bytes, limits.max_test_lines)
    if problem:
        return finish(STAGE_SIZE, problem)
    done.append(StageResult(STAGE_SIZE, True, f"{len(source.encode())} bytes, {source.count(chr(10)) + 1} lines"))

    problem = _parse(source, "code") or (_parse(tests_source, "tests") if tests_source is not None else None)
    if problem:
        return finish(STAGE_PARSE, problem)
    done.append(StageResult(STAGE_PARSE, True, "valid Python syntax"))

    problem = _allow_list(source, kind, tests_source)
    if problem:
        return finish(STAGE_ALLOW_LIST, problem)
    done.append(StageResult(STAGE_ALLOW_LIST, True, f"within the subset; defines what a {kind.value} needs"))

    payload = {
        "kind": kind.value,
        "source": source,
        "tests_source": tests_source,
        "name": name,
        "limits": limits.sandbox_limits(),
        "episodes": _episodes_payload(kind, limits.min_states),
    }
    try:
        result = run_isolated(_DRIVER, payload, preload=_PRELOAD, limits=limits.isolation)
    except IsolationError as exc:
        return finish(STAGE_ISOLATED_RUN, f"the isolated process could not start: {exc}")
    return _collect(result, done)


def _collect(result: IsolatedResult, done: list[StageResult]) -> ValidationReport:
    """Turn the child's stage events (and how it ended) into the remaining verdicts."""
    agreement: dict[str, float] | None = None
    current: str | None = STAGE_ISOLATED_RUN  # a child dying before its first event fails this stage
    for event in result.events:
        kind, stage = event.get("event"), event.get("stage")
        if stage not in STAGES[3:]:
            continue
        if kind == "begin":
            current = stage
        elif kind == "end":
            passed = bool(event.get("passed"))
            done.append(StageResult(stage, passed, str(event.get("detail", ""))[:MAX_DETAIL_CHARS]))
            if isinstance(event.get("agreement"), dict):
                agreement = {str(k): float(v) for k, v in event["agreement"].items()}
            current = None
            if not passed:
                break
    if current is not None and not (done and not done[-1].passed):
        why = result.error or "the isolated process ended early"
        done.append(StageResult(current, False, f"the isolated process failed during this stage: {why}"[:MAX_DETAIL_CHARS]))
    elif result.error and all(s.passed for s in done) and len(done) < len(STAGES):
        done.append(StageResult(STAGES[len(done)], False, f"the isolated process failed: {result.error}"))
    valid = len(done) == len(STAGES) and all(s.passed for s in done)
    return ValidationReport(valid, tuple(done), result.output[:MAX_SANDBOX_OUTPUT], result.isolation, agreement)
