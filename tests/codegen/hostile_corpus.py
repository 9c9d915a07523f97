"""Hostile or broken programs for the code validator, each with the stage that must reject it.

Each entry: (id, kind, source, tests_source or None, expected failing stage, fragment of the
verdict detail). Stage names are those of ``maestromotif.codegen.validate.STAGES``.
"""

from __future__ import annotations

from typing import NamedTuple


class Case(NamedTuple):
    id: str
    kind: str
    source: str
    tests: str | None
    stage: str
    fragment: str


HEADER = "SKILL_TURNS = 50\n\n\ndef start(memory):\n    memory.n = 0\n\n\n"
POLICY = "task_policy"
SKILLS = "skill_functions"


def policy_with(body: str, *, header: str = HEADER, extra: str = "") -> str:
    """A policy whose choose_skill has ``body``."""
    lines = "".join(f"    {line}\n" for line in body.splitlines())
    return header + extra + "def choose_skill(state, memory):\n" + lines


def with_start(body: str) -> str:
    """A valid choose_skill, with ``body`` in start()."""
    lines = "".join(f"    {line}\n" for line in body.splitlines())
    return "SKILL_TURNS = 50\n\n\ndef start(memory):\n" + lines + "\n\ndef choose_skill(state, memory):\n    return DISCOVERER\n"


VALID_POLICY = policy_with("if state.depth < 3:\n    return DESCENDER\nreturn DISCOVERER")

SKILL_OK_PRE = "def skill_precondition(crop, num_items):\n    return (False, False)\n\n\n"
SKILL_OK_END = ("def skill_termination(skill, skill_turns, depth, start_depth, worshipper_pre, merchant_pre, "
                "base_turns):\n    return skill_turns >= base_turns\n")


def skills_with(pre_body: str | None = None, end_body: str | None = None) -> str:
    pre = SKILL_OK_PRE if pre_body is None else (
        "def skill_precondition(crop, num_items):\n" + "".join(f"    {x}\n" for x in pre_body.splitlines()) + "\n\n")
    end = SKILL_OK_END if end_body is None else (
        "def skill_termination(skill, skill_turns, depth, start_depth, worshipper_pre, merchant_pre, base_turns):\n"
        + "".join(f"    {x}\n" for x in end_body.splitlines()))
    return pre + end


CASES: tuple[Case, ...] = (
    # ---------------------------------------------------------------- size and parse
    Case("empty-source", POLICY, "   \n", None, "size", "empty"),
    Case("huge-source", POLICY, VALID_POLICY + "#" + "x" * 40_000 + "\n", None, "size", "bytes"),
    Case("too-many-lines", POLICY, VALID_POLICY + "\n" * 900, None, "size", "lines"),
    Case("huge-tests", POLICY, VALID_POLICY, "def test_a():\n    assert True\n" + "#" * 20_000, "size", "tests"),
    Case("syntax-error", POLICY, policy_with("return DISCOVERER +"), None, "parse", "syntax error"),
    Case("null-byte", POLICY, VALID_POLICY + "\x00\n", None, "parse", "null"),
    Case("nesting-bomb", POLICY, "X = " + "(" * 300 + "1" + ")" * 300 + "\n" + VALID_POLICY, None, "parse", "line"),
    # ---------------------------------------------------------------- imports, I/O, processes, network
    Case("import-os", POLICY, "import os\n" + VALID_POLICY, None, "allow-list", "import of 'os'"),
    Case("import-subprocess", POLICY, "import subprocess\n" + VALID_POLICY, None, "allow-list", "'subprocess'"),
    Case("from-ctypes", POLICY, "from ctypes import CDLL\n" + VALID_POLICY, None, "allow-list", "'ctypes'"),
    Case("import-in-function", POLICY, policy_with("import socket\nreturn DISCOVERER"), None, "allow-list", "'socket'"),
    Case("fork", POLICY, policy_with("import os\nos.fork()\nreturn DISCOVERER"), None, "allow-list", "import of 'os'"),
    Case("socket-connect", POLICY, "from socket import create_connection\n" + VALID_POLICY, None, "allow-list",
         "'socket'"),
    Case("dunder-import", POLICY, policy_with("__import__('os').system('id')\nreturn 0"), None, "allow-list",
         "names starting with '_'"),
    Case("open-file", POLICY, policy_with("open('/etc/passwd').read()\nreturn 0"), None, "allow-list", "'open'"),
    Case("write-file", POLICY, policy_with("open('/tmp/x', 'w').write('x')\nreturn 0"), None, "allow-list", "'open'"),
    Case("eval", POLICY, policy_with("return eval('1')"), None, "allow-list", "'eval'"),
    Case("print-bomb", POLICY, policy_with("print('x' * 100000)\nreturn 0"), None, "allow-list", "'print'"),
    # ---------------------------------------------------------------- attribute walks to builtins
    Case("class-subclasses", POLICY, policy_with("return ().__class__.__bases__[0].__subclasses__()"), None,
         "allow-list", "'__subclasses__'"),
    Case("function-globals", POLICY, policy_with("return choose_skill.__globals__"), None, "allow-list",
         "'__globals__'"),
    Case("generator-frame", POLICY, policy_with("g = (x for x in [1])\nreturn g.gi_frame.f_back.f_globals"), None,
         "allow-list", "'f_globals'"),
    Case("generator-code", POLICY, policy_with("g = (x for x in [1])\nreturn g.gi_code.co_consts"), None,
         "allow-list", "'co_consts'"),
    Case("str-format-field", POLICY, policy_with("return '{0.__class__}'.format(state)"), None, "allow-list",
         "'format'"),
    Case("format-map", POLICY, policy_with("return '{s.__class__}'.format_map({'s': state})"), None, "allow-list",
         "'format_map'"),
    Case("fstring-dunder", POLICY, policy_with("return f'{state.__class__}'"), None, "allow-list", "'__class__'"),
    Case("getattr", POLICY, policy_with("return getattr(state, '__class__')"), None, "allow-list", "'getattr'"),
    Case("type-mro", POLICY, policy_with("return type(state).mro()"), None, "allow-list", "'mro'"),
    Case("memory-dict", POLICY, policy_with("memory.__dict__['x'] = 1\nreturn 0"), None, "allow-list",
         "'__dict__'"),
    Case("class-definition", POLICY, "class Evil:\n    pass\n\n" + VALID_POLICY, None, "allow-list", "ClassDef"),
    Case("lambda", POLICY, policy_with("return (lambda: 0)()"), None, "allow-list", "Lambda"),
    # ---------------------------------------------------------------- shared state
    Case("global-statement", POLICY, policy_with("global SKILL_TURNS\nSKILL_TURNS = 1\nreturn 0"), None,
         "allow-list", "Global"),
    Case("module-list-state", POLICY, "SEEN = []\n" + policy_with("SEEN.append(state.depth)\nreturn 0"), None,
         "allow-list", "module-level values"),
    Case("rebind-skill-constant", POLICY, "DISCOVERER = 3\n" + VALID_POLICY, None, "allow-list", "predefined"),
    Case("rebind-builtin", POLICY, policy_with("len = 3\nreturn 0"), None, "allow-list", "predefined"),
    Case("function-attribute-state", POLICY, policy_with("choose_skill.calls = 1\nreturn 0"), None, "allow-list",
         "module-level objects"),
    Case("function-attribute-alias", POLICY, policy_with("f = choose_skill\nf.calls = 1\nreturn 0"), None,
         "harness", "attributes on its function choose_skill()"),
    Case("module-attribute", POLICY, "import random\n" + policy_with("random.random = 1\nreturn 0"), None,
         "allow-list", "module-level objects"),
    Case("mutable-default", POLICY, VALID_POLICY + "\n\ndef helper(x, seen=[]):\n    return seen\n", None,
         "allow-list", "default values"),
    Case("change-state-object", POLICY, policy_with("state.depth = 0\nreturn 0"), None, "harness",
         "FrozenInstanceError"),
    Case("mutate-state-set", POLICY, policy_with("state.visited_main_depths.add(9)\nreturn 0"), None, "harness",
         "AttributeError"),
    Case("type-error", POLICY, policy_with("memory.x = 1\nreturn memory.x + 'a'"), None, "harness",
         "TypeError"),
    # ---------------------------------------------------------------- contract
    Case("missing-choose-skill", POLICY, HEADER, None, "allow-list", "choose_skill"),
    Case("wrong-arity", POLICY, HEADER + "def choose_skill(state):\n    return 0\n", None, "allow-list",
         "2 parameter"),
    Case("missing-skill-turns", POLICY, VALID_POLICY.replace("SKILL_TURNS = 50", "TURNS = 50"), None,
         "allow-list", "SKILL_TURNS"),
    Case("skills-missing-termination", SKILLS, SKILL_OK_PRE, None, "allow-list", "skill_termination"),
    # ---------------------------------------------------------------- fails when loaded (isolated process)
    Case("bad-skill-turns", POLICY, VALID_POLICY.replace("SKILL_TURNS = 50", "SKILL_TURNS = 0"), None,
         "isolated-run", "SKILL_TURNS"),
    Case("string-skill-turns", POLICY, VALID_POLICY.replace("SKILL_TURNS = 50", "SKILL_TURNS = '50'"), None,
         "isolated-run", "SKILL_TURNS"),
    Case("load-time-int-bomb", POLICY, "X = 10 ** 10 ** 10\n" + VALID_POLICY, None, "isolated-run",
         "exceeds the limit"),
    Case("load-time-string-bomb", POLICY, "X = 'a' * 10 ** 9\n" + VALID_POLICY, None, "isolated-run",
         "exceeds the limit"),
    Case("load-time-error", POLICY, "X = 1 // 0\n" + VALID_POLICY, None, "isolated-run", "ZeroDivisionError"),
    # ---------------------------------------------------------------- fails on the recorded states
    Case("infinite-loop", POLICY, policy_with("while True:\n    pass"), None, "harness", "exceeded"),
    Case("infinite-loop-in-start", POLICY, with_start("memory.n = 0\nwhile True:\n    memory.n = memory.n + 1"), None,
         "harness", "start(): exceeded"),
    Case("memory-bomb", POLICY, policy_with("a = []\nwhile True:\n    a.append(list(range(10000)))"), None,
         "harness", "choose_skill()"),  # the memory-growth or the time budget, whichever trips first
    Case("deep-recursion", POLICY, policy_with("return down(0)", extra="def down(n):\n    return down(n + 1)\n\n\n"),
         None, "harness", "RecursionError"),
    Case("slow-per-call", POLICY, policy_with(
        "xs = list(range(2000))\nfor i in range(100000):\n    xs = sorted(xs, reverse=i % 2 == 0)\nreturn 0"),
        None, "harness", "exceeded"),
    Case("invalid-skill-id", POLICY, policy_with("return 7"), None, "harness", "out of range"),
    Case("returns-none", POLICY, policy_with("if state.depth > 0:\n    return None\nreturn 0"), None, "harness",
         "invalid skill"),
    Case("unavailable-skill", POLICY, policy_with("return MERCHANT"), None, "harness", "not in state.available"),
    Case("huge-output", POLICY, policy_with("return 'x' * 100000"), None, "harness", "unknown skill name"),
    Case("raises", POLICY, policy_with("return [0][state.depth + 5]"), None, "harness", "IndexError"),
    Case("skills-wrong-precondition-type", SKILLS, skills_with(pre_body="return 1"), None, "harness",
         "must return (worshipper_pre, merchant_pre)"),
    Case("skills-wrong-termination-type", SKILLS, skills_with(end_body="return 'yes'"), None, "harness",
         "must return a bool"),
    Case("skills-termination-loop", SKILLS, skills_with(end_body="while True:\n    pass"), None, "harness",
         "exceeded"),
    Case("policy-bad-precondition-override", POLICY,
         VALID_POLICY + "\n\ndef skill_precondition(crop, num_items):\n    return 'yes'\n", None, "harness",
         "must return (worshipper_pre, merchant_pre)"),
    Case("policy-termination-override-raises", POLICY,
         VALID_POLICY + "\n\n" + skills_with(end_body="return skill_turns / 0").split("\n\n\n")[1], None,
         "harness", "ZeroDivisionError"),
    # ---------------------------------------------------------------- issue 15 item 4: further escape attempts
    Case("base-subclasses", POLICY, policy_with("return ().__class__.__base__.__subclasses__()"), None,
         "allow-list", "'__subclasses__'"),
    Case("lambda-globals-builtins", POLICY, policy_with("return (lambda: 0).__globals__['__builtins__']"), None,
         "allow-list", "'__globals__'"),
    Case("generator-frame-back", POLICY, policy_with("g = (x for x in [1])\nreturn g.gi_frame.f_back"), None,
         "allow-list", "'f_back'"),
    Case("str-format-unbound", POLICY, policy_with("return str.format('{0.__class__}', state)"), None,
         "allow-list", "'format'"),
    Case("getattr-computed-name", POLICY, policy_with("n = '_' + '_class_' + '_'\nreturn getattr(state, n)"), None,
         "allow-list", "'getattr'"),
    # Python folds identifiers to NFKC: fullwidth and mathematical letters spell the same names.
    Case("homoglyph-open", POLICY, policy_with("\uff4f\uff50\uff45\uff4e('/etc/passwd')\nreturn 0"), None,
         "allow-list", "'open'"),
    Case("homoglyph-eval", POLICY, policy_with("return \U0001d41e\U0001d42f\U0001d41a\U0001d425('1')"), None,
         "allow-list", "'eval'"),
    Case("homoglyph-import", POLICY, "import \uff4f\uff53\n" + VALID_POLICY, None, "allow-list", "import of 'os'"),
    Case("homoglyph-dunder", POLICY, policy_with("return state.\uff3f\uff3fclass\uff3f\uff3f"), None, "parse",
         "invalid character"),
    Case("vars-builtins-import", POLICY, policy_with("return vars()['__builtins__']['__import__']('os')"), None,
         "allow-list", "'vars'"),
    Case("traceback-frame", POLICY,
         policy_with("try:\n    1 / 0\nexcept Exception as e:\n    return e.__traceback__.tb_frame.f_globals\nreturn 0"),
         None, "allow-list", "Try"),
    Case("catastrophic-regex", POLICY, "import re\n" + policy_with("re.match('(a+)+$', 'a' * 40 + 'b')\nreturn 0"),
         None, "allow-list", "import of 're'"),
    Case("runtime-int-bomb", POLICY, policy_with("return 10 ** 10 ** 10"), None, "harness", "integer power"),
    Case("int-parse-bomb", POLICY, policy_with("return int('9' * 90000)"), None, "harness", "ValueError"),
    Case("memory-grows-across-calls", POLICY,
         "SKILL_TURNS = 50\n\n\ndef start(memory):\n    memory.chunks = []\n\n\n"
         "def choose_skill(state, memory):\n    memory.chunks.append([state.depth] * 90000)\n    return DISCOVERER\n",
         None, "harness", "memory holds more than"),
    Case("module-dict-state", POLICY, "SEEN = {}\n" + policy_with("SEEN['x'] = 1\nreturn 0"), None, "allow-list",
         "module-level values"),
    Case("math-module-write", POLICY, "import math\n" + policy_with("math.pi = 3\nreturn 0"), None, "allow-list",
         "module-level objects"),
    Case("random-facade-internals", POLICY, "import random\n" + policy_with("return random.rng.getstate()"), None,
         "harness", "AttributeError"),
    Case("walrus", POLICY, policy_with("if (n := state.depth) > 1:\n    return DESCENDER\nreturn DISCOVERER"), None,
         "allow-list", "NamedExpr"),
    Case("generator-function", POLICY, policy_with("yield DISCOVERER"), None, "allow-list", "Yield"),
    Case("self-referencing-str", POLICY, policy_with("a = []\na.append(a)\nreturn str(a)"), None, "harness",
         "str() only"),
    Case("dunder-keyword", POLICY, policy_with("return dict(__class__=1)"), None, "allow-list", "keyword '__class__'"),
    Case("huge-range", POLICY, policy_with("return max(range(10 ** 9))"), None, "harness", "range of"),
    Case("async-function", POLICY, "async def helper():\n    return 0\n\n\n" + VALID_POLICY, None, "allow-list",
         "AsyncFunctionDef"),
    # ---------------------------------------------------------------- the LLM's own tests
    Case("failing-test", POLICY, VALID_POLICY,
         "def test_merchant_first():\n    assert choose_skill(make_state(), Memory()) == MERCHANT\n",
         "llm-tests", "AssertionError"),
    Case("test-infinite-loop", POLICY, VALID_POLICY, "def test_spin():\n    while True:\n        pass\n",
         "llm-tests", "exceeded"),
    Case("test-bad-helper-field", POLICY, VALID_POLICY, "def test_a():\n    assert make_state(hp=3)\n",
         "llm-tests", "unknown field"),
    Case("test-imports-os", POLICY, VALID_POLICY, "import os\n\n\ndef test_a():\n    assert os\n", "allow-list",
         "tests: line 1: import of 'os'"),
    Case("test-rebinds-code", POLICY, VALID_POLICY,
         "def choose_skill(state, memory):\n    return 0\n\n\ndef test_a():\n    assert choose_skill(0, 0) == 0\n",
         "allow-list", "predefined"),
    Case("test-attribute-walk", POLICY, VALID_POLICY, "def test_a():\n    assert choose_skill.__globals__\n",
         "allow-list", "'__globals__'"),
    Case("test-none-defined", POLICY, VALID_POLICY, "X = 1\n", "allow-list", "test_"),
)
