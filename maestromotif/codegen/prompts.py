"""Prompts of the generation loop (method.md 8.2), built from the project's own definitions.

Every prompt states the contract (``contract_text()``), the five skills with their one-line
descriptions, and the state the code may read; policy prompts add few-shot examples taken from
the hand-written reference policies. When a task is composed, its own reference policy is never
among the examples (leave-one-out), or the "generated" policy could be a copy.

The reply format is fixed: one ```python block with the code, then one ```python block with the
LLM's own unit tests (functions named ``test_...``). ``extract_code`` reads them back.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence
from dataclasses import dataclass

from maestromotif.codegen import ArtifactKind
from maestromotif.codegen.contracts import contract_for
from maestromotif.llm import ChatMessage
from maestromotif.skills.descriptions import SKILL_SUMMARIES
from maestromotif.skills.ids import SKILL_NAMES, Skill
from maestromotif.skills.reference import REFERENCE_NAMES, TRAINING_POLICY, reference_source
from maestromotif.skills.sandbox import parse_source

SYSTEM_PROMPT = "You are a careful Python programmer who writes small, correct decision code for a NetHack agent."

MAX_TASK_PROMPT_CHARS = 4_000
TASK_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# Order in which reference policies serve as few-shot examples; the first ones that are not the
# requested task are used. Short, different policies first: one sweep, one branch routine, one
# counter-based composite.
EXAMPLE_ORDER: tuple[str, ...] = ("gnomish", "goldenexit", "transactions", "delphi", "exploration", "buc",
                                  "minetown", "levelupsell", "price", "discoveryhunger")
assert set(EXAMPLE_ORDER) == set(REFERENCE_NAMES), "every reference policy has a place in the example order"
DEFAULT_EXAMPLES = 2
MAX_ERROR_CHARS = 2_000  # validation errors sent back in a repair round
# The last answer quoted back in a repair round: a runaway answer (a remote model may write up to
# 8,192 tokens) must not make the conversation itself invalid (ChatMessage holds 32,000 chars).
MAX_ANSWER_CHARS = 16_000

GAME_FACTS = (
    "Game facts: the hero starts on depth 1 of the main dungeon (dungeon 0). The Gnomish Mines (dungeon 2) "
    "branch off the main dungeon at a level between depth 2 and 4 that has a second staircase down "
    "(state.branch_depth once it is found); a descent from that level lands in either branch, so when you "
    "land in the wrong one, go straight back up and try again. Minetown is 3 or 4 levels into the Mines; "
    "the Oracle is in the main dungeon between depth 5 and 9. Shops appear only below depth 1; altars can "
    "appear from depth 1. Taking the up staircase on depth 1 leaves the dungeon. One skill run can gain "
    "several gold pieces or kills."
)

TESTS_INSTRUCTION = (
    "After the code, write a second ```python block with 2 or 3 unit tests of your policy (test_<something>() "
    "functions that call start and choose_skill with make_state(...) and Memory())."
)
SKILL_TESTS_INSTRUCTION = (
    "After the code, write a second ```python block with 2 or 3 unit tests (test_<something>() functions that "
    "check skill_precondition with make_crop(...) and skill_termination with plain arguments)."
)

# Measured with the 0.5B model: asked to explain first, it wrote 900 tokens of Markdown and no code.
CODE_ONLY = "Reply with the two ```python blocks only: no explanation, no Markdown outside them."


class PromptError(ValueError):
    """A request that cannot become a prompt (too long, bad task name, unknown skill...)."""


def check_task_prompt(text: str) -> str:
    """The task text, stripped; raises ``PromptError`` when empty or too long."""
    if not isinstance(text, str):
        raise PromptError("prompt: must be text")
    text = text.strip()
    if not text:
        raise PromptError("prompt: empty")
    if len(text) > MAX_TASK_PROMPT_CHARS:
        raise PromptError(f"prompt: {len(text)} characters, more than {MAX_TASK_PROMPT_CHARS}")
    if "```" in text:
        raise PromptError("prompt: must not contain ``` (it would break the reply format)")
    return text


def check_task_name(name: str) -> str:
    """A task name of 1-64 letters, digits, '-' or '_'; raises ``PromptError`` otherwise."""
    if not TASK_NAME_RE.match(name or ""):
        raise PromptError(f"task_name: {name[:80]!r} must be 1-64 letters, digits, '-' or '_'")
    return name


def skills_text(skills: Sequence[Skill] = tuple(Skill)) -> str:
    return "\n".join(f"- {s.name} ({int(s)}): {SKILL_SUMMARIES[s]}" for s in skills)


def example_names(exclude: str | None, count: int = DEFAULT_EXAMPLES) -> tuple[str, ...]:
    """The first ``count`` reference policies of ``EXAMPLE_ORDER`` other than ``exclude`` (leave-one-out)."""
    if not 0 <= count < len(EXAMPLE_ORDER):
        raise PromptError(f"examples: {count} not in 0..{len(EXAMPLE_ORDER) - 1}")
    return tuple(n for n in EXAMPLE_ORDER if n != exclude)[:count]


def _examples_text(names: Sequence[str]) -> str:
    blocks = []
    for name in names:
        blocks.append(f"Example ({name}):\n```python\n{reference_source(name).strip()}\n```")
    return "\n\n".join(blocks)


@dataclass(frozen=True)
class Prompt:
    """The first messages of a conversation and what they were built from."""

    kind: ArtifactKind
    messages: tuple[ChatMessage, ...]
    examples: tuple[str, ...]  # reference policies shown as examples
    task_text: str  # what the user asked (task prompt, or the fixed request of the kind)

    @property
    def user_text(self) -> str:
        return self.messages[-1].content


def task_policy_prompt(task_text: str, *, exclude_reference: str | None, examples: int = DEFAULT_EXAMPLES) -> Prompt:
    """ComposeTask: a policy over skills for a task in plain language.

    ``exclude_reference`` is the reference policy that must not be an example: the task's own when
    the task is one of the nine (or matched by name), None for a new task.
    """
    task_text = check_task_prompt(task_text)
    names = example_names(exclude_reference, examples)
    user = (
        "An agent plays NetHack with five skills. A policy over skills picks which skill runs next each time "
        "the running skill ends.\n\nSkills:\n"
        f"{skills_text()}\n\n{contract_for(ArtifactKind.TASK_POLICY)}\n\n{GAME_FACTS}\n\n"
        f"{_examples_text(names)}\n\n"
        f"Task: {task_text}\n\n"
        "Write the complete policy for this task (SKILL_TURNS, start, choose_skill and any helper functions) "
        f"in one ```python block, following the contract exactly. {TESTS_INSTRUCTION} {CODE_ONLY}"
    )
    return Prompt(ArtifactKind.TASK_POLICY, (ChatMessage("system", SYSTEM_PROMPT), ChatMessage("user", user)),
                  names, task_text)


TRAINING_REQUEST = (
    "Write the training-time policy over skills. Each episode it picks how deep to sweep (2, 3 or 4 levels, "
    "at random) and, with probability one half, whether to sweep the Gnomish Mines or the main dungeon. "
    "The sweep alternates DISCOVERER on a level with one level of travel along the current direction "
    "(DESCENDER going down until the chosen depth, then ASCENDER back up to depth 1, then down again), and "
    "uses MERCHANT or WORSHIPPER whenever that skill is available. At the fork level (state.branch_depth) it "
    "goes down towards the chosen branch and climbs back when it lands in the other one. SKILL_TURNS is 500."
)


def training_policy_prompt(*, examples: int = DEFAULT_EXAMPLES) -> Prompt:
    """GenerateTrainingPolicy (method.md 3.3); the training reference policy is left out of the examples."""
    names = example_names(TRAINING_POLICY, examples)
    user = (
        "An agent plays NetHack with five skills. A policy over skills picks which skill runs next each time "
        "the running skill ends.\n\nSkills:\n"
        f"{skills_text()}\n\n{contract_for(ArtifactKind.TRAINING_POLICY)}\n\n{GAME_FACTS}\n\n"
        f"{_examples_text(names)}\n\n"
        f"{TRAINING_REQUEST}\n\n"
        "Write the complete policy in one ```python block, following the contract exactly. "
        f"{TESTS_INSTRUCTION} {CODE_ONLY}"
    )
    return Prompt(ArtifactKind.TRAINING_POLICY, (ChatMessage("system", SYSTEM_PROMPT), ChatMessage("user", user)),
                  names, TRAINING_REQUEST)


SKILL_RULES: dict[Skill, tuple[str, str]] = {
    # skill -> (initiation, termination) in words (method.md 3.1, with fixes D9/D10)
    Skill.DISCOVERER: ("always", "after D game turns"),
    Skill.DESCENDER: ("always", "as soon as the depth is greater than the depth where the skill started"),
    Skill.ASCENDER: ("always", "as soon as the depth is smaller than the depth where the skill started"),
    Skill.WORSHIPPER: ("an altar is in the 7x7 crop around the hero and the hero carries at least one item "
                       "it found", "after 20*D game turns"),
    Skill.MERCHANT: ("a shopkeeper is in the 7x7 crop around the hero and the hero carries at least one item "
                     "it found", "after 20*D game turns"),
}

def skill_functions_prompt(skills: Sequence[Skill] = tuple(Skill)) -> Prompt:
    """GenerateSkillFunctions: initiation and termination of the given skills (all five by default)."""
    if not skills:
        skills = tuple(Skill)
    seen: list[Skill] = []
    for s in skills:
        if s not in seen:
            seen.append(s)
    rules = "\n".join(
        f"- {s.name}: {SKILL_SUMMARIES[s]}. May start: {SKILL_RULES[s][0]}. Ends: {SKILL_RULES[s][1]}."
        for s in seen
    )
    others = [s for s in Skill if s not in seen]
    keep = ("\nFor the other skills (" + ", ".join(s.name for s in others) + ") keep the usual rules: "
            "DISCOVERER ends after D turns, DESCENDER one level deeper, ASCENDER one level higher, "
            "WORSHIPPER and MERCHANT after 20*D turns.") if others else ""
    user = (
        "An agent plays NetHack with five skills. Write the functions that decide when the conditional skills "
        "may start and when the running skill ends.\n\nSkills and their rules:\n"
        f"{rules}{keep}\n\n{contract_for(ArtifactKind.SKILL_FUNCTIONS)}\n\n"
        "Write both functions in one ```python block, following the contract exactly. "
        f"{SKILL_TESTS_INSTRUCTION} {CODE_ONLY}"
    )
    names = ", ".join(SKILL_NAMES[int(s)] for s in seen)
    return Prompt(ArtifactKind.SKILL_FUNCTIONS, (ChatMessage("system", SYSTEM_PROMPT), ChatMessage("user", user)),
                  (), f"initiation and termination of: {names}")


def repair_prompt(prompt: Prompt, answer: str, errors: str) -> tuple[ChatMessage, ...]:
    """A repair round: the original request, the last answer and what failed (bounded).

    Only the last answer is kept, not the whole history, so that the conversation fits a small
    model's context however many rounds there are; the transcript records every round.
    """
    if len(errors) > MAX_ERROR_CHARS:
        errors = errors[:MAX_ERROR_CHARS] + "\n[... truncated]"
    if len(answer) > MAX_ANSWER_CHARS:
        answer = answer[:MAX_ANSWER_CHARS] + "\n[... truncated]"
    fix = (
        "Your code failed validation:\n"
        f"{errors}\n\n"
        "Write the whole corrected code in one ```python block and the tests in a second ```python block. "
        f"{CODE_ONLY}"
    )
    return (*prompt.messages, ChatMessage("assistant", answer), ChatMessage("user", fix))


# ------------------------------------------------------------------------------------------------
# reading code back from an answer
# ------------------------------------------------------------------------------------------------

_BLOCK_RE = re.compile(r"```[ \t]*(?:python|py|Python)?[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL)


@dataclass(frozen=True)
class Extracted:
    code: str
    tests: str  # the LLM's unit tests ("" when none)
    blocks: int  # python blocks found


def _split_tests(source: str) -> tuple[str, str]:
    """Move top-level ``def test_*`` functions (and calls of them) out of ``source`` into a tests part."""
    try:
        tree = parse_source(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):  # null bytes, absurd nesting
        return source, ""
    lines = source.splitlines()
    test_spans: list[tuple[int, int]] = []
    for node in tree.body:
        is_test_def = isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
        is_main = (isinstance(node, ast.If) and isinstance(node.test, ast.Compare)
                   and isinstance(node.test.left, ast.Name) and node.test.left.id == "__name__")
        is_test_call = (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)
                        and isinstance(node.value.func, ast.Name) and node.value.func.id.startswith("test_"))
        if is_test_def or is_main or is_test_call:
            start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
            test_spans.append((start, node.end_lineno or node.lineno))
    if not test_spans:
        return source, ""
    drop = {i for a, b in test_spans for i in range(a, b + 1)}
    code = "\n".join(line for i, line in enumerate(lines, 1) if i not in drop)
    tests = "\n\n".join("\n".join(lines[a - 1:b]) for a, b in test_spans
                        if not lines[a - 1].lstrip().startswith("if __name__"))
    return code.strip() + "\n", tests.strip() + "\n" if tests.strip() else ""


def extract_code(answer: str, kind: ArtifactKind) -> Extracted:
    """The code and the tests from an answer.

    The code block is the first python block that defines the kind's main function
    (``choose_skill``, or ``skill_precondition``/``skill_termination``); the tests are the
    ``test_*`` functions of the other blocks, or of the code block itself when the LLM put
    everything in one. An answer without a block gives empty code (validation then says so).
    """
    blocks = [b.strip("\n") for b in _BLOCK_RE.findall(answer or "")]
    marker = "def choose_skill" if kind != ArtifactKind.SKILL_FUNCTIONS else "def skill_"
    main_index = next((i for i, b in enumerate(blocks) if marker in b), 0 if blocks else -1)
    if main_index < 0:
        return Extracted("", "", 0)
    code, tests = _split_tests(blocks[main_index])
    for i, block in enumerate(blocks):
        if i == main_index:
            continue
        if "def test_" in block:
            tests = (tests + "\n\n" + block).strip() + "\n"
    return Extracted(code, tests, len(blocks))
