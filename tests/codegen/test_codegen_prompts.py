"""Prompts of the generation loop: contract, skills, leave-one-out examples, bounds; code extraction."""

from __future__ import annotations

import pytest

from maestromotif.codegen import ArtifactKind
from maestromotif.codegen.prompts import (
    EXAMPLE_ORDER,
    MAX_TASK_PROMPT_CHARS,
    PromptError,
    check_task_name,
    extract_code,
    repair_prompt,
    skill_functions_prompt,
    task_policy_prompt,
    training_policy_prompt,
)
from maestromotif.skills.contract import STATE_FIELDS, contract_text
from maestromotif.skills.descriptions import SKILL_SUMMARIES
from maestromotif.skills.ids import Skill
from maestromotif.skills.reference import REFERENCE_NAMES, TASK_POLICIES, TRAINING_POLICY, reference_source
from maestromotif.tasks.specs import TASKS


def _body(name: str) -> str:
    """The code of a reference policy without its docstring (what a copy would reproduce)."""
    source = reference_source(name)
    return source.split('"""', 2)[2].strip()


@pytest.mark.parametrize("task", TASK_POLICIES)
def test_task_prompt_leaves_its_own_reference_out(task: str) -> None:
    prompt = task_policy_prompt(TASKS[task].prompt, exclude_reference=task)
    text = prompt.user_text
    assert task not in prompt.examples and len(prompt.examples) == 2
    assert _body(task) not in text  # its code is not in the prompt ...
    for example in prompt.examples:  # ... while the examples' code is
        assert _body(example) in text
    assert contract_text() in text and TASKS[task].prompt in text
    for skill in Skill:
        assert SKILL_SUMMARIES[skill] in text
    for name in STATE_FIELDS:
        assert f"state.{name}" in text


def test_training_prompt_leaves_the_training_reference_out() -> None:
    prompt = training_policy_prompt()
    assert TRAINING_POLICY not in prompt.examples
    assert _body(TRAINING_POLICY) not in prompt.user_text
    assert prompt.kind == ArtifactKind.TRAINING_POLICY


def test_example_order_covers_every_reference() -> None:
    assert sorted(EXAMPLE_ORDER) == sorted(REFERENCE_NAMES)


def test_skill_functions_prompt_names_the_signatures() -> None:
    prompt = skill_functions_prompt((Skill.MERCHANT, Skill.MERCHANT))
    text = prompt.user_text
    assert "def skill_precondition(crop, num_items)" in text
    assert "def skill_termination(skill, skill_turns, depth, start_depth, worshipper_pre, merchant_pre, base_turns)" in text
    assert "MERCHANT:" in text and "WORSHIPPER:" not in text.split("Skills and their rules:")[1].split("For the other")[0]
    assert prompt.kind == ArtifactKind.SKILL_FUNCTIONS


@pytest.mark.parametrize(
    ("text", "message"),
    [("", "empty"), ("   ", "empty"), ("x" * (MAX_TASK_PROMPT_CHARS + 1), "more than 4000"), ("a ```python", "```")],
)
def test_bad_task_prompts(text: str, message: str) -> None:
    with pytest.raises(PromptError, match=message):
        task_policy_prompt(text, exclude_reference=None)


@pytest.mark.parametrize("name", ["", "a b", "x" * 65, "../etc", "naïve", "semi;colon"])
def test_bad_task_names(name: str) -> None:
    with pytest.raises(PromptError, match="task_name"):
        check_task_name(name)


def test_extract_code_and_tests_from_two_blocks() -> None:
    answer = (
        "The policy descends.\n```python\nSKILL_TURNS = 50\n\ndef start(memory):\n    pass\n\n"
        "def choose_skill(state, memory):\n    return DESCENDER\n```\nTests:\n```python\n"
        "def test_descends():\n    assert choose_skill(make_state(), new_memory()) == DESCENDER\n```\n"
    )
    out = extract_code(answer, ArtifactKind.TASK_POLICY)
    assert out.blocks == 2
    assert "def choose_skill" in out.code and "test_" not in out.code
    assert out.tests.startswith("def test_descends")


def test_extract_moves_inline_tests_out_of_the_code() -> None:
    answer = (
        "```python\nSKILL_TURNS = 50\ndef start(memory):\n    pass\ndef choose_skill(state, memory):\n"
        "    return 0\n\ndef test_one():\n    assert choose_skill(None, None) == 0\n\ntest_one()\n"
        "if __name__ == '__main__':\n    test_one()\n```"
    )
    out = extract_code(answer, ArtifactKind.TASK_POLICY)
    assert "test_one" not in out.code and "__name__" not in out.code
    assert "def test_one" in out.tests and "__name__" not in out.tests


def test_extract_prefers_the_block_with_the_main_function_and_handles_no_block() -> None:
    answer = "```python\nprint('hi')\n```\n```python\ndef skill_precondition(crop, n):\n    return False, False\n```"
    assert extract_code(answer, ArtifactKind.SKILL_FUNCTIONS).code.startswith("def skill_precondition")
    assert extract_code("no code here", ArtifactKind.TASK_POLICY).code == ""
    # an unterminated block (reply cut at max tokens) is still read
    assert "choose_skill" in extract_code("```python\ndef choose_skill(s, m):\n    return", ArtifactKind.TASK_POLICY).code


def test_repair_prompt_keeps_only_the_last_answer_and_bounds_errors() -> None:
    prompt = task_policy_prompt("Go down.", exclude_reference=None)
    messages = repair_prompt(prompt, "answer", "e" * 10_000)
    assert [m.role for m in messages] == ["system", "user", "assistant", "user"]
    assert len(messages[-1].content) < 3_000 and "truncated" in messages[-1].content
