"""The policy subset checker and sandbox: what is rejected, and budgets at run time."""

from __future__ import annotations

import random
import re

import pytest

from maestromotif.skills import PolicyError, PolicyTimeout, SubsetError
from maestromotif.skills.reference import REFERENCE_NAMES, load_reference, reference_source
from maestromotif.skills.sandbox import check_source, load_policy

HEADER = "SKILL_TURNS = 50\n\ndef start(memory):\n    memory.n = 0\n\n"


def policy_with(body: str) -> str:
    return HEADER + "def choose_skill(state, memory):\n" + "".join(f"    {line}\n" for line in body.splitlines())


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ("import os\n", "import of 'os' is not allowed"),
        ("import random, sys\n", "import of 'sys'"),
        ("from os import path\n", "import from 'os'"),
        ("from random import Random\n", "random.Random is not allowed"),
        (policy_with("return open('/etc/passwd')"), "'open'"),
        (policy_with("return eval('1')"), "'eval'"),
        (policy_with("exec('x=1')"), "'exec'"),
        (policy_with("return __import__('os')"), "names starting with '_'"),
        (policy_with("return ().__class__"), "attribute '__class__'"),
        (policy_with("return state.__dict__"), "attribute '__dict__'"),
        (policy_with("return getattr(state, 'depth')"), "'getattr'"),
        (policy_with("g = (x for x in [1])\nreturn g.gi_frame"), "attribute 'gi_frame'"),
        (policy_with("return '{0.__class__}'.format(state)"), "attribute 'format'"),
        (policy_with("return f'{state.depth:>999999}'"), "format specs"),
        (policy_with("return (lambda: 1)()"), "Lambda"),
        (policy_with("try:\n    pass\nexcept Exception:\n    pass"), "Try"),
        (policy_with("global X"), "Global"),
        (policy_with("print('hi')"), "'print'"),
        (policy_with("return undefined_name"), "'undefined_name' is not defined"),
        (policy_with("x = b'raw'"), "bytes literals"),
        ("class P:\n    pass\n", "ClassDef"),
        ("for i in range(3):\n    pass\n", "For is not allowed at module level"),
        ("start(1)\n", "bare expressions"),
        ("def f(:\n", "syntax error"),
        ("x" * 70_000, "more than"),
    ],
)
def test_checker_rejects(source: str, fragment: str) -> None:
    with pytest.raises(SubsetError, match=fragment):
        load_policy(source)


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ("SKILL_TURNS = 5\ndef start(memory):\n    pass\n", "choose_skill"),
        ("def start(memory):\n    pass\ndef choose_skill(state, memory):\n    return 0\n", "SKILL_TURNS"),
        (HEADER + "def choose_skill(state):\n    return 0\n", "2 parameter"),
        (HEADER.replace("50", "0") + "def choose_skill(state, memory):\n    return 0\n", "SKILL_TURNS must be"),
        (HEADER.replace("50", "True") + "def choose_skill(state, memory):\n    return 0\n", "SKILL_TURNS must be"),
    ],
)
def test_contract_enforced(source: str, fragment: str) -> None:
    with pytest.raises(SubsetError, match=fragment):
        load_policy(source)


def test_annotations_and_allowed_constructs_pass() -> None:
    src = (
        '"""doc"""\nimport math\nimport random as rnd\nSKILL_TURNS: int = 50\n'
        "def start(memory) -> None:\n    memory.order = sorted([3, 1, 2])\n"
        "def choose_skill(state, memory: object) -> int:\n"
        "    total = sum(x * 2 for x in range(4)) + math.floor(1.5)\n"
        "    if state is None and total > 0:\n        return rnd.choice([DESCENDER, ASCENDER])\n"
        "    return {'a': MERCHANT}['a']\n"
    )
    check_source(src)
    p = load_policy(src, name="ok")
    p.start(random.Random(0))
    assert p.memory.order == [1, 2, 3]
    assert p.choose(None) in (1, 2)
    assert p.base_turns == 50 and len(p.sha256) == 64


@pytest.mark.parametrize(
    ("body", "error", "fragment"),
    [
        ("while True:\n    memory.n = memory.n + 1", PolicyTimeout, "budget"),
        ("return [0] * 10000000", PolicyError, "exceeds the limit"),
        ("return 10 ** 100000", PolicyError, "integer power"),
        ("return 1 << 100000", PolicyError, "shift"),
        ("return list(range(10 ** 7))", PolicyError, "range of"),
        ("return '%0200000d' % 1", PolicyError, "%-formatting"),
        ("return choose_skill(state, memory)", PolicyError, "RecursionError"),
        ("return 1 // 0", PolicyError, "ZeroDivisionError"),
        ("return memory.missing", PolicyError, "AttributeError"),
    ],
)
def test_runtime_failures_become_policy_errors(body: str, error: type, fragment: str) -> None:
    p = load_policy(policy_with(body), name="bad")
    p.start(random.Random(0))
    with pytest.raises(error, match=fragment) as info:
        p.choose(None)
    assert "bad.choose_skill()" in str(info.value)


def test_module_level_budget_applies() -> None:
    with pytest.raises(PolicyError, match="exceeds"):
        load_policy("X = [1] * 10000000\n" + HEADER + "def choose_skill(state, memory):\n    return 0\n")


def test_random_is_the_controllers_seeded_generator() -> None:
    src = "import random\nSKILL_TURNS = 5\ndef start(memory):\n    memory.r = [random.randint(0, 10**6) for i in range(5)]\n" \
          "def choose_skill(state, memory):\n    return 0\n"
    a, b = load_policy(src), load_policy(src)
    a.start(random.Random(7))
    b.start(random.Random(7))
    assert a.memory.r == b.memory.r
    b.start(random.Random(8))
    assert a.memory.r != b.memory.r


@pytest.mark.parametrize("name", REFERENCE_NAMES)
def test_reference_policies_load_through_the_checker(name: str) -> None:
    check_source(reference_source(name))
    p = load_reference(name)
    assert 1 <= p.base_turns <= 500


def test_unknown_reference_is_a_clear_error() -> None:
    with pytest.raises(KeyError, match="no reference policy 'nope'"):
        reference_source("nope")


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("x = [0]\nfor i in range(40):\n    x = x + x\nreturn 0", "concatenation"),
        ("x = [0]\nfor i in range(40):\n    x += x\nreturn 0", "concatenation"),
        ("s = 'ab'\nfor i in range(40):\n    s = f'{s}{s}'\nreturn 0", "string of"),
        ("return str([0] * 1000)", "str() only converts"),
        ("return sum([[1]] * 10, [])", "sum() only adds numbers"),
        ("keep = []\nbig = list(range(100000))\nfor i in range(100000):\n    keep.append(big.copy())\nreturn 0",
         "grew the process"),
    ],
)
def test_size_bombs_are_stopped(body: str, fragment: str) -> None:
    p = load_policy(policy_with(body), name="bomb", max_memory_growth_mb=32)
    p.start(random.Random(0))
    with pytest.raises(PolicyError, match=re.escape(fragment)):
        p.choose(None)


@pytest.mark.parametrize(
    ("body", "fragment"),
    [("return ''.join(['a'])", "'join'"), ("x = [1]\nx.extend(x)", "'extend'"), ("x = [1]\nx[0] += 1", "augmented")],
)
def test_amplifying_methods_rejected(body: str, fragment: str) -> None:
    with pytest.raises(SubsetError, match=fragment):
        load_policy(policy_with(body))


def test_augmented_assignment_still_works() -> None:
    p = load_policy(policy_with("memory.n += 2\nk = 3\nk *= 2\nk -= 1\nreturn memory.n + k - 5"))
    p.start(random.Random(0))
    assert p.choose(None) == 2


def test_contract_text_documents_every_state_field() -> None:
    from maestromotif.skills.contract import STATE_FIELDS, contract_text

    text = contract_text()
    assert all(f"state.{name}:" in text for name in STATE_FIELDS)
    assert "MERCHANT = 4" in text and "SKILL_TURNS" in text
