"""Load policy-over-skills source held to a small Python subset, and run it with a budget.

Generated code is untrusted. Before it runs, ``check_source`` walks its syntax tree against an
allow-list (node types, names, imports, attribute names) and rejects anything else with a
``SubsetError`` naming the line and the reason. The accepted tree is then instrumented: every
function entry, loop iteration and comprehension item costs one tick of a per-call budget, and
``*``, ``**`` and ``<<`` go through size checks, so a call that loops forever or builds a huge
value raises ``PolicyTimeout``/``PolicyError`` instead of hanging an actor. The code executes
with a restricted ``__builtins__``; ``import random`` yields a facade bound to the controller's
seeded generator and ``import math`` a facade of pure functions.

This is the in-process layer used inside actors. The code-generation service additionally tests
candidates in a separate, rlimited process before they are ever loaded here.
"""

from __future__ import annotations

import ast
import hashlib
import math
import random
import resource
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from maestromotif.skills.contract import (
    SKILL_CONSTANTS,
    CropView,
    Memory,
    PolicyError,
    PolicyTimeout,
    SkillState,
    SubsetError,
)

MAX_SOURCE_CHARS = 64_000
MAX_AST_NODES = 20_000
MAX_TICKS = 200_000  # function calls + loop iterations per policy call
DEFAULT_TIME_LIMIT_S = 1.0  # wall-clock budget per policy call (checked every 256 ticks)
MAX_SEQUENCE = 100_000  # longest list/str a policy may build with * or range()
MAX_INT_BITS = 4_096  # largest integer a policy may build with *, ** or <<
MAX_MEMORY_GROWTH_KB = 256 * 1024  # peak-memory growth allowed during one policy call
MIN_BASE_TURNS, MAX_BASE_TURNS = 1, 100_000
# What ``memory`` may hold between calls, in items (a container entry is one, a string one per 64
# characters). The per-call memory check restarts at every call, so without this a policy adding
# a little on each call grows an actor without limit over a long episode.
MAX_MEMORY_ITEMS = 200_000

REQUIRED_FUNCTIONS: dict[str, int] = {"start": 1, "choose_skill": 2}  # name -> number of parameters
OPTIONAL_FUNCTIONS: dict[str, int] = {"skill_precondition": 2, "skill_termination": 7}

_ALLOWED_NODES: frozenset[type] = frozenset(
    {
        ast.Module, ast.Expr, ast.Import, ast.ImportFrom, ast.alias, ast.Assign, ast.AugAssign,
        ast.AnnAssign, ast.FunctionDef, ast.arguments, ast.arg, ast.Return, ast.If, ast.For,
        ast.While, ast.Break, ast.Continue, ast.Pass, ast.Assert, ast.BoolOp, ast.BinOp, ast.UnaryOp,
        ast.Compare, ast.Call, ast.keyword, ast.IfExp, ast.Attribute, ast.Subscript, ast.Slice,
        ast.Name, ast.Constant, ast.List, ast.Tuple, ast.Dict, ast.Set, ast.ListComp, ast.SetComp,
        ast.DictComp, ast.GeneratorExp, ast.comprehension, ast.JoinedStr, ast.FormattedValue,
        ast.Load, ast.Store,
        # operators
        ast.And, ast.Or, ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow,
        ast.LShift, ast.RShift, ast.BitOr, ast.BitAnd, ast.BitXor, ast.USub, ast.UAdd, ast.Not,
        ast.Invert, ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.In, ast.NotIn, ast.Is,
        ast.IsNot,
    }
)
_TOP_LEVEL: tuple[type, ...] = (ast.Import, ast.ImportFrom, ast.Assign, ast.AnnAssign, ast.FunctionDef, ast.Expr)

# Names that are never allowed, with the reason given back to the author (or the LLM).
_FORBIDDEN_NAMES: dict[str, str] = {
    n: "is not allowed (no I/O, no dynamic code, no introspection)"
    for n in (
        "open", "eval", "exec", "compile", "input", "print", "globals", "locals", "vars", "getattr",
        "setattr", "delattr", "hasattr", "type", "object", "super", "breakpoint", "help", "exit", "quit",
        "memoryview", "bytearray", "classmethod", "staticmethod", "property", "id", "dir", "iter",
        "next", "callable", "issubclass", "format", "pow", "chr", "ord", "hash", "bytes",
    )
}
# Attribute names that reach interpreter internals or build unbounded strings.
_FORBIDDEN_ATTRS = frozenset(
    {"format", "format_map", "mro", "ljust", "rjust", "center", "zfill", "expandtabs", "translate",
     # these can multiply the size of a value in one call (s.join([s] * n), a.extend(a), ...)
     "join", "replace", "extend"}
)
_FORBIDDEN_ATTR_PREFIXES = ("_", "gi_", "f_", "co_", "tb_", "cr_", "ag_", "func_")


# CPython 3.11 keeps the AST constructor's recursion counter per interpreter, not per thread: when
# a garbage collection during ast.parse runs a finalizer that lets another thread parse too, one of
# them fails with SystemError "AST constructor recursion depth mismatch" (python/cpython#106905).
# Seen in the agent under concurrent PlayTask calls (benchmarks/bench_load_agent.py). Every parse
# of source text and every compile of a tree in this process goes through this lock.
AST_LOCK = threading.Lock()


def parse_source(source: str, filename: str = "<unknown>") -> ast.Module:
    """``ast.parse`` under ``AST_LOCK`` (thread-safe on CPython 3.11)."""
    with AST_LOCK:
        return ast.parse(source, filename=filename)


def _safe_range(*args: int) -> range:
    r = range(*args)
    if len(r) > MAX_SEQUENCE:
        raise PolicyError(f"range of {len(r)} items exceeds the limit of {MAX_SEQUENCE}")
    return r


def _safe_str(value: Any = "") -> str:
    # str() of a container can be as large as all it references; policies only need numbers as text
    if value is not None and not isinstance(value, (int, float, str)):
        raise PolicyError(f"str() only converts numbers and strings, not {type(value).__name__}")
    return str(value)


def _safe_sum(values: Iterable[Any], start: Any = 0) -> Any:
    if isinstance(start, bool) or not isinstance(start, (int, float)):
        raise PolicyError("sum() only adds numbers")
    return sum(values, start)


_SAFE_BUILTINS: dict[str, Any] = {
    "abs": abs, "all": all, "any": any, "bool": bool, "dict": dict, "divmod": divmod,
    "enumerate": enumerate, "filter": filter, "float": float, "frozenset": frozenset, "int": int,
    "isinstance": isinstance, "len": len, "list": list, "map": map, "max": max, "min": min,
    "range": _safe_range, "reversed": reversed, "round": round, "set": set, "sorted": sorted,
    "str": _safe_str, "sum": _safe_sum, "tuple": tuple, "zip": zip,
}

_MATH_NAMES = (
    "ceil", "floor", "trunc", "sqrt", "exp", "log", "log2", "log10", "fabs", "hypot", "sin", "cos",
    "tan", "atan", "atan2", "copysign", "isfinite", "isnan", "isinf", "fsum", "pi", "e", "inf", "tau",
)
_RANDOM_NAMES = ("random", "randint", "randrange", "choice", "choices", "shuffle", "sample", "uniform", "gauss")
_MODULE_NAMES: dict[str, tuple[str, ...]] = {"math": _MATH_NAMES, "random": _RANDOM_NAMES}


class _Facade:
    """A module stand-in exposing only an allow-listed set of names."""

    __slots__ = ("_values",)

    def __init__(self, values: dict[str, Any]) -> None:
        object.__setattr__(self, "_values", values)

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(f"module has no allowed attribute {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("policy code cannot modify modules")


class _SeededRandom:
    """The ``random`` facade's functions, delegating to whichever generator the episode uses."""

    def __init__(self) -> None:
        self.rng = random.Random(0)

    def facade(self) -> _Facade:
        def bind(name: str) -> Callable[..., Any]:
            def call(*args: Any, **kwargs: Any) -> Any:
                return getattr(self.rng, name)(*args, **kwargs)

            call.__name__ = name
            return call

        return _Facade({n: bind(n) for n in _RANDOM_NAMES})


_MATH_FACADE = _Facade({n: getattr(math, n) for n in _MATH_NAMES})


# ----------------------------------------------------------------------------------------------
# static check
# ----------------------------------------------------------------------------------------------


def _fail(node: ast.AST | None, reason: str) -> SubsetError:
    line = getattr(node, "lineno", None)
    return SubsetError(f"line {line}: {reason}" if line else reason)


def _bound_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.FunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.alias):
            names.add(node.asname or node.name)
    return names


def _strip_annotations(tree: ast.Module) -> None:
    """Annotations are documentation only; drop them so they are neither checked nor evaluated."""
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef):
            node.returns = None
        elif isinstance(node, ast.arg):
            node.annotation = None
    for parent in ast.walk(tree):
        for field in ("body", "orelse"):
            stmts = getattr(parent, field, None)
            if not isinstance(stmts, list):
                continue
            for i, stmt in enumerate(stmts):
                if isinstance(stmt, ast.AnnAssign):
                    if stmt.value is None or not isinstance(stmt.target, ast.Name):
                        raise _fail(stmt, "annotated assignment needs a value and a plain name")
                    stmts[i] = ast.copy_location(ast.Assign(targets=[stmt.target], value=stmt.value), stmt)


def check_source(source: str, *, filename: str = "<policy>", predefined: Iterable[str] = ()) -> ast.Module:
    """Parse and check policy source against the subset; return its (annotation-free) tree.

    ``predefined`` names (besides the skill constants and safe builtins) may be read without being
    defined in the source, e.g. the helpers given to LLM-written unit tests. Raises ``SubsetError``
    with the offending line and reason.
    """
    if not isinstance(source, str):
        raise SubsetError(f"policy source must be text, got {type(source).__name__}")
    if len(source) > MAX_SOURCE_CHARS:
        raise SubsetError(f"policy source has {len(source)} characters, more than {MAX_SOURCE_CHARS}")
    try:
        tree = parse_source(source, filename=filename)
    except SyntaxError as exc:
        raise SubsetError(f"line {exc.lineno}: syntax error: {exc.msg}") from None
    if sum(1 for _ in ast.walk(tree)) > MAX_AST_NODES:
        raise SubsetError(f"policy source has more than {MAX_AST_NODES} syntax nodes")
    _strip_annotations(tree)

    for stmt in tree.body:
        if not isinstance(stmt, _TOP_LEVEL):
            raise _fail(stmt, f"{type(stmt).__name__} is not allowed at module level "
                              "(only imports, constant assignments and function definitions)")
        if isinstance(stmt, ast.Expr) and not (isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str)):
            raise _fail(stmt, "bare expressions at module level are not allowed (only a docstring)")

    allowed_loads = _bound_names(tree) | set(_SAFE_BUILTINS) | set(SKILL_CONSTANTS) | set(predefined)
    for node in ast.walk(tree):
        kind = type(node)
        if kind not in _ALLOWED_NODES:
            raise _fail(node, f"{kind.__name__} is not allowed in policy code")
        if isinstance(node, ast.Name):
            if node.id.startswith("_"):
                raise _fail(node, f"name {node.id!r}: names starting with '_' (dunders) are not allowed")
            if node.id in _FORBIDDEN_NAMES:
                raise _fail(node, f"name {node.id!r} {_FORBIDDEN_NAMES[node.id]}")
            if isinstance(node.ctx, ast.Load) and node.id not in allowed_loads:
                raise _fail(node, f"name {node.id!r} is not defined and is not an allowed builtin")
        elif isinstance(node, ast.Attribute):
            if node.attr.startswith(_FORBIDDEN_ATTR_PREFIXES) or node.attr in _FORBIDDEN_ATTRS:
                raise _fail(node, f"attribute {node.attr!r} is not allowed")
        elif isinstance(node, ast.FunctionDef):
            if node.name.startswith("_"):
                raise _fail(node, f"function {node.name!r}: names starting with '_' are not allowed")
            if node.decorator_list:
                raise _fail(node, "decorators are not allowed")
        elif isinstance(node, ast.arg) and node.arg.startswith("_"):
            raise _fail(node, f"parameter {node.arg!r}: names starting with '_' are not allowed")
        elif isinstance(node, ast.keyword) and node.arg is not None and node.arg.startswith("_"):
            raise _fail(node, f"keyword {node.arg!r}: names starting with '_' are not allowed")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name not in _MODULE_NAMES:
                    raise _fail(node, f"import of {alias.name!r} is not allowed (only random and math)")
                if alias.asname and alias.asname.startswith("_"):
                    raise _fail(node, f"alias {alias.asname!r}: names starting with '_' are not allowed")
        elif isinstance(node, ast.ImportFrom):
            if node.level or node.module not in _MODULE_NAMES:
                raise _fail(node, f"import from {node.module!r} is not allowed (only random and math)")
            for alias in node.names:
                if alias.name not in _MODULE_NAMES[node.module]:
                    raise _fail(node, f"{node.module}.{alias.name} is not allowed")
                if alias.asname and alias.asname.startswith("_"):
                    raise _fail(node, f"alias {alias.asname!r}: names starting with '_' are not allowed")
        elif isinstance(node, ast.AugAssign) and not (
            isinstance(node.target, ast.Name)
            or (isinstance(node.target, ast.Attribute) and isinstance(node.target.value, ast.Name))
        ):
            raise _fail(node, "augmented assignment only to a name or name.attribute; write a[i] = a[i] + x")
        elif isinstance(node, ast.FormattedValue) and node.format_spec is not None:
            raise _fail(node, "format specs in f-strings are not allowed (widths can build huge strings)")
        elif isinstance(node, ast.Constant) and isinstance(node.value, bytes):
            raise _fail(node, "bytes literals are not allowed")
    return tree


def check_contract(
    tree: ast.Module,
    *,
    required: Mapping[str, int] = REQUIRED_FUNCTIONS,
    optional: Mapping[str, int] = OPTIONAL_FUNCTIONS,
    needs_turns: bool = True,
    what: str = "policy",
) -> None:
    """The required members exist with the right number of parameters (before running anything).

    The defaults are the policy-over-skills contract; skill-function modules pass their own.
    """
    defs = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    for name, nargs in {**required, **optional}.items():
        fn = defs.get(name)
        if fn is None:
            if name in required:
                raise SubsetError(f"{what} must define function {name}() with {nargs} parameter(s)")
            continue
        a = fn.args
        if a.vararg or a.kwarg or a.kwonlyargs or a.posonlyargs or a.defaults:
            raise _fail(fn, f"{name}() must take exactly {nargs} plain positional parameter(s)")
        if len(a.args) != nargs:
            raise _fail(fn, f"{name}() must take {nargs} parameter(s), it takes {len(a.args)}")
    assigned = {t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
    if needs_turns and "SKILL_TURNS" not in assigned:
        raise SubsetError(f"{what} must set SKILL_TURNS (D, in game turns) at module level")


# ----------------------------------------------------------------------------------------------
# instrumentation and execution
# ----------------------------------------------------------------------------------------------


def _call(name: str, *args: ast.expr) -> ast.Call:
    return ast.Call(func=ast.Name(id=name, ctx=ast.Load()), args=list(args), keywords=[])


class _Instrument(ast.NodeTransformer):
    """Add budget ticks to function entries and loops; route *, ** and << through size checks."""

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.FunctionDef:
        self.generic_visit(node)
        node.body.insert(0, ast.Expr(_call("_mm_tick")))
        return node

    def visit_While(self, node: ast.While) -> ast.While:
        self.generic_visit(node)
        node.body.insert(0, ast.Expr(_call("_mm_tick")))
        return node

    def visit_For(self, node: ast.For) -> ast.For:
        self.generic_visit(node)
        node.iter = _call("_mm_iter", node.iter)
        return node

    def visit_comprehension(self, node: ast.comprehension) -> ast.comprehension:
        self.generic_visit(node)
        node.iter = _call("_mm_iter", node.iter)
        return node

    def visit_AugAssign(self, node: ast.AugAssign) -> ast.Assign:
        # x op= y  ->  x = x op y, so that the size checks of visit_BinOp apply to it too
        target = node.target
        if isinstance(target, ast.Name):
            load: ast.expr = ast.Name(id=target.id, ctx=ast.Load())
        else:
            assert isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name)  # checked before
            load = ast.Attribute(value=ast.Name(id=target.value.id, ctx=ast.Load()), attr=target.attr, ctx=ast.Load())
        binop = ast.copy_location(ast.BinOp(left=load, op=node.op, right=node.value), node)
        return ast.copy_location(ast.Assign(targets=[target], value=self.visit_BinOp(binop)), node)

    def visit_JoinedStr(self, node: ast.JoinedStr) -> ast.expr:
        self.generic_visit(node)
        return ast.copy_location(_call("_mm_strlen", node), node)

    def visit_BinOp(self, node: ast.BinOp) -> ast.expr:
        self.generic_visit(node)
        helper = {ast.Mult: "_mm_mul", ast.Pow: "_mm_pow", ast.LShift: "_mm_lshift", ast.Mod: "_mm_mod",
                  ast.Add: "_mm_add"}.get(
            type(node.op)
        )
        if helper is None:
            return node
        return ast.copy_location(_call(helper, node.left, node.right), node)


class _Budget:
    def __init__(self, max_ticks: int, time_limit_s: float, max_memory_growth_kb: int) -> None:
        self.max_ticks = max_ticks
        self.max_memory_growth_kb = max_memory_growth_kb
        self.time_limit_s = time_limit_s
        self.ticks = 0
        self.deadline = math.inf
        self.peak_kb = 0
        self.what = ""

    def begin(self, what: str) -> None:
        self.ticks = 0
        self.what = what
        self.deadline = time.perf_counter() + self.time_limit_s
        self.peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    def tick(self) -> None:
        self.ticks += 1
        if self.ticks > self.max_ticks:
            raise PolicyTimeout(f"exceeded the budget of {self.max_ticks} loop iterations/calls")
        if not self.ticks & 255:
            if time.perf_counter() > self.deadline:
                raise PolicyTimeout(f"exceeded the time limit of {self.time_limit_s:g} s")
            # Copies (a.copy(), a[:], list(a)) are not size-checked one by one: bound their sum
            # through the process's peak memory instead (a memory-bomb loop stops within 256 ticks).
            if resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - self.peak_kb > self.max_memory_growth_kb:
                raise PolicyError(f"grew the process by more than {self.max_memory_growth_kb // 1024} MiB")

    def iterate(self, items: Iterable[Any]) -> Iterator[Any]:
        for item in items:
            self.tick()
            yield item


def _check_size(value: Any) -> Any:
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise PolicyError(f"integer of {value.bit_length()} bits exceeds the limit of {MAX_INT_BITS}")
    return value


def _mul(a: Any, b: Any) -> Any:
    for seq, n in ((a, b), (b, a)):
        if isinstance(seq, (str, list, tuple)) and isinstance(n, int) and len(seq) * max(n, 0) > MAX_SEQUENCE:
            raise PolicyError(f"repeating a sequence to {len(seq) * n} items exceeds the limit of {MAX_SEQUENCE}")
    if isinstance(a, int) and isinstance(b, int) and a.bit_length() + b.bit_length() > MAX_INT_BITS + 1:
        raise PolicyError(f"integer product exceeds the limit of {MAX_INT_BITS} bits")
    return a * b


def _pow(a: Any, b: Any) -> Any:
    if isinstance(a, int) and isinstance(b, int) and b > 0 and max(a.bit_length(), 1) * b > MAX_INT_BITS:
        raise PolicyError(f"integer power exceeds the limit of {MAX_INT_BITS} bits")
    return _check_size(a**b)


def _add(a: Any, b: Any) -> Any:
    if isinstance(a, (str, list, tuple)) and isinstance(b, (str, list, tuple)) and len(a) + len(b) > MAX_SEQUENCE:
        raise PolicyError(f"concatenation to {len(a) + len(b)} items exceeds the limit of {MAX_SEQUENCE}")
    return a + b


def _strlen(value: str) -> str:
    if len(value) > MAX_SEQUENCE:
        raise PolicyError(f"string of {len(value)} characters exceeds the limit of {MAX_SEQUENCE}")
    return value


def _mod(a: Any, b: Any) -> Any:
    if isinstance(a, str):  # %-formatting can pad to any width
        raise PolicyError("%-formatting of strings is not allowed; use f-strings")
    return a % b


def _lshift(a: Any, b: Any) -> Any:
    if isinstance(b, int) and b > MAX_INT_BITS:
        raise PolicyError(f"shift by {b} exceeds the limit of {MAX_INT_BITS} bits")
    return a << b


def _memory_items(memory: Any, limit: int = MAX_MEMORY_ITEMS) -> int:
    """Items reachable from ``memory``'s attributes through containers (each object once); stops past ``limit``."""
    count = 0
    seen: set[int] = set()
    stack: list[Any] = list(vars(memory).values())
    while stack and count <= limit:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        count += 1
        if isinstance(obj, str):
            count += len(obj) // 64
        elif isinstance(obj, int):
            count += obj.bit_length() // 512
        elif isinstance(obj, dict):
            count += len(obj)
            stack.extend(obj.keys())
            stack.extend(obj.values())
        elif isinstance(obj, (list, tuple, set, frozenset)):
            count += len(obj)
            stack.extend(obj)
    return count


def check_memory(memory: Any, limit: int = MAX_MEMORY_ITEMS) -> None:
    """PolicyError when ``memory`` holds more than ``limit`` items (checked after every call)."""
    if _memory_items(memory, limit) > limit:
        raise PolicyError(f"memory holds more than {limit} items; keep per-episode state small")


def _location(exc: BaseException, filename: str) -> str:
    lines = [f.lineno for f in traceback.extract_tb(exc.__traceback__) if f.filename == filename]
    return f" (line {lines[-1]})" if lines else ""


class SandboxedModule:
    """Checked, instrumented source executed with restricted builtins; call its functions with ``call``.

    Every call runs under a fresh budget; any exception comes out as a ``PolicyError`` subclass
    whose message names the function, the error and the line. ``required``/``optional`` name the
    functions the module must (may) define with their number of parameters; ``predefined`` adds
    names to the module's namespace (trusted helpers, e.g. for LLM-written unit tests).
    """

    def __init__(
        self,
        source: str,
        *,
        name: str = "policy",
        required: Mapping[str, int] = REQUIRED_FUNCTIONS,
        optional: Mapping[str, int] = OPTIONAL_FUNCTIONS,
        needs_turns: bool = True,
        what: str = "policy",
        predefined: Mapping[str, Any] | None = None,
        max_ticks: int = MAX_TICKS,
        time_limit_s: float = DEFAULT_TIME_LIMIT_S,
        max_memory_growth_mb: int = MAX_MEMORY_GROWTH_KB // 1024,
    ) -> None:
        self.name = name
        self.source = source
        self.sha256 = hashlib.sha256(source.encode("utf-8")).hexdigest()
        self._filename = f"<{what}:{name}>"
        predefined = dict(predefined or {})
        tree = check_source(source, filename=self._filename, predefined=predefined)
        check_contract(tree, required=required, optional=optional, needs_turns=needs_turns, what=what)
        tree = ast.fix_missing_locations(_Instrument().visit(tree))
        with AST_LOCK:
            code = compile(tree, self._filename, "exec")

        self._budget = _Budget(max_ticks, time_limit_s, max_memory_growth_mb * 1024)
        self._random = _SeededRandom()
        random_facade = self._random.facade()

        def restricted_import(module: str, globals_: Any = None, locals_: Any = None, fromlist: Any = (), level: int = 0) -> Any:
            if module == "random":
                return random_facade
            if module == "math":
                return _MATH_FACADE
            raise ImportError(f"import of {module!r} is not allowed")

        builtins = dict(_SAFE_BUILTINS)
        builtins["__import__"] = restricted_import
        self._namespace: dict[str, Any] = {
            "__builtins__": builtins,
            "__name__": f"policy_{name}",
            "_mm_tick": self._budget.tick,
            "_mm_iter": self._budget.iterate,
            "_mm_mul": _mul,
            "_mm_pow": _pow,
            "_mm_lshift": _lshift,
            "_mm_mod": _mod,
            "_mm_add": _add,
            "_mm_strlen": _strlen,
            **predefined,
            **SKILL_CONSTANTS,
        }
        self._guarded("module", lambda: exec(code, self._namespace))  # noqa: S102 - checked, instrumented code

    def _guarded(self, what: str, fn: Callable[[], Any]) -> Any:
        self._budget.begin(f"{self.name}.{what}()")
        try:
            return fn()
        except PolicyError as exc:
            raise type(exc)(f"{self.name}.{what}(): {exc}{_location(exc, self._filename)}") from None
        except Exception as exc:  # noqa: BLE001 - anything the untrusted code raises becomes a PolicyError
            raise PolicyError(
                f"{self.name}.{what}() raised {type(exc).__name__}: {str(exc)[:200]}{_location(exc, self._filename)}"
            ) from None

    def seed(self, rng: random.Random) -> None:
        """Bind the module's ``random`` to ``rng`` (the controller's seeded generator)."""
        self._random.rng = rng

    def function(self, name: str) -> Callable[..., Any] | None:
        """A function the module defined at top level, or None."""
        fn = self._namespace.get(name)
        return fn if callable(fn) else None

    def call(self, name: str, *args: Any) -> Any:
        """Call a module-level function under a fresh budget; errors come out as ``PolicyError``."""
        fn = self.function(name)
        if fn is None:
            raise PolicyError(f"{self.name} has no function {name}()")
        return self._guarded(name, lambda: fn(*args))


def _check_preconditions(name: str, out: Any) -> tuple[bool, bool]:
    if not (isinstance(out, (tuple, list)) and len(out) == 2):
        raise PolicyError(f"{name}.skill_precondition() must return (worshipper_pre, merchant_pre), got {out!r:.80}")
    return bool(out[0]), bool(out[1])


def _check_termination(name: str, out: Any) -> bool:
    if not isinstance(out, (bool, int)):
        raise PolicyError(f"{name}.skill_termination() must return a bool, got {type(out).__name__}")
    return bool(out)


class SandboxedPolicy(SandboxedModule):
    """A policy over skills compiled from checked source; satisfies ``PolicyOverSkills``."""

    def __init__(
        self,
        source: str,
        *,
        name: str = "policy",
        max_ticks: int = MAX_TICKS,
        time_limit_s: float = DEFAULT_TIME_LIMIT_S,
        max_memory_growth_mb: int = MAX_MEMORY_GROWTH_KB // 1024,
        predefined: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(
            source,
            name=name,
            max_ticks=max_ticks,
            time_limit_s=time_limit_s,
            max_memory_growth_mb=max_memory_growth_mb,
            predefined=predefined,
        )
        turns = self._namespace.get("SKILL_TURNS")
        if isinstance(turns, bool) or not isinstance(turns, int) or not MIN_BASE_TURNS <= turns <= MAX_BASE_TURNS:
            raise SubsetError(f"SKILL_TURNS must be an int in {MIN_BASE_TURNS}..{MAX_BASE_TURNS}, got {turns!r}")
        self.base_turns: int = turns
        self._start = self._namespace["start"]
        self._choose = self._namespace["choose_skill"]
        self._precondition = self.function("skill_precondition")
        self._termination = self.function("skill_termination")
        self.has_custom_preconditions = self._precondition is not None
        self.has_custom_termination = self._termination is not None
        self.memory = Memory()

    def start(self, rng: random.Random) -> None:
        self.seed(rng)
        self.memory = Memory()
        self._guarded("start", lambda: self._start(self.memory))
        self._check_memory("start")

    def choose(self, state: SkillState) -> object:
        out = self._guarded("choose_skill", lambda: self._choose(state, self.memory))
        self._check_memory("choose_skill")
        return out

    def _check_memory(self, what: str) -> None:
        try:
            check_memory(self.memory)
        except PolicyError as exc:
            raise PolicyError(f"{self.name}.{what}(): {exc}") from None

    def preconditions(self, crop: CropView, acquired_items: int) -> tuple[bool, bool]:
        if self._precondition is None:
            raise PolicyError(f"{self.name} has no skill_precondition()")
        return _check_preconditions(self.name, self.call("skill_precondition", crop, acquired_items))

    def termination(
        self,
        skill: int,
        skill_turns: int,
        depth: int,
        start_depth: int,
        worshipper_pre: bool,
        merchant_pre: bool,
        base_turns: int,
    ) -> bool:
        if self._termination is None:
            raise PolicyError(f"{self.name} has no skill_termination()")
        out = self.call(
            "skill_termination", skill, skill_turns, depth, start_depth, worshipper_pre, merchant_pre, base_turns
        )
        return _check_termination(self.name, out)


# What a skill-functions module defines: the initiation of the two conditional skills and the
# termination of all five (the optional overrides of the policy contract, here required).
SKILL_FUNCTIONS: dict[str, int] = dict(OPTIONAL_FUNCTIONS)


class SandboxedSkillFunctions(SandboxedModule):
    """Generated initiation/termination rules (``skill_precondition`` and ``skill_termination``)."""

    def __init__(self, source: str, *, name: str = "skills", predefined: Mapping[str, Any] | None = None,
                 **limits: Any) -> None:
        super().__init__(source, name=name, required=SKILL_FUNCTIONS, optional={}, needs_turns=False,
                         what="skill functions", predefined=predefined, **limits)

    def preconditions(self, crop: CropView, acquired_items: int) -> tuple[bool, bool]:
        return _check_preconditions(self.name, self.call("skill_precondition", crop, acquired_items))

    def termination(self, skill: int, skill_turns: int, depth: int, start_depth: int, worshipper_pre: bool,
                    merchant_pre: bool, base_turns: int) -> bool:
        out = self.call(
            "skill_termination", skill, skill_turns, depth, start_depth, worshipper_pre, merchant_pre, base_turns
        )
        return _check_termination(self.name, out)


class ComposedPolicy:
    """A policy over skills whose initiation and termination come from a skill-functions module.

    Satisfies ``PolicyOverSkills``: ``start``/``choose`` go to ``policy``, ``preconditions``/
    ``termination`` to ``skills`` (both run under their own per-call budgets).
    """

    has_custom_preconditions = True
    has_custom_termination = True

    def __init__(self, policy: SandboxedPolicy, skills: SandboxedSkillFunctions) -> None:
        self.policy = policy
        self.skills = skills
        self.name = f"{policy.name}+{skills.name}"
        self.base_turns = policy.base_turns

    def start(self, rng: random.Random) -> None:
        self.skills.seed(rng)
        self.policy.start(rng)

    def choose(self, state: SkillState) -> object:
        return self.policy.choose(state)

    def preconditions(self, crop: CropView, acquired_items: int) -> tuple[bool, bool]:
        return self.skills.preconditions(crop, acquired_items)

    def termination(self, *args: Any) -> bool:
        return self.skills.termination(*args)


def load_policy(source: str, *, name: str = "policy", **limits: Any) -> SandboxedPolicy:
    """Check, instrument and load policy source (see the module docstring); raises ``PolicyError``."""
    return SandboxedPolicy(source, name=name, **limits)


def load_skill_functions(source: str, *, name: str = "skills", **limits: Any) -> SandboxedSkillFunctions:
    """Check, instrument and load skill-function source; raises ``PolicyError``."""
    return SandboxedSkillFunctions(source, name=name, **limits)
