"""The generation loop with a scripted LLM backend (the only place a fake LLM is used) and the real validator."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from maestromotif.codegen import ArtifactKind
from maestromotif.codegen.artifacts import ArtifactError, ArtifactStore
from maestromotif.codegen.generate import Generator, Sampling
from maestromotif.codegen.prompts import PromptError
from maestromotif.llm import ChatMessage, Completion, GenerationParams, LLMBackend
from maestromotif.skills.reference import reference_source
from maestromotif.tasks.specs import TASKS

GOOD = """SKILL_TURNS = 50


def start(memory):
    memory.direction = "down"


def choose_skill(state, memory):
    if state.merchant_available:
        return MERCHANT
    if state.skill != DISCOVERER:
        return DISCOVERER
    if state.depth < 5:
        return DESCENDER
    return ASCENDER
"""
TESTS = """def test_goes_down():
    memory = Memory()
    start(memory)
    assert choose_skill(make_state(depth=1, skill=DISCOVERER), memory) == DESCENDER
"""
HOSTILE = "import os\nSKILL_TURNS = 50\ndef start(memory):\n    pass\ndef choose_skill(state, memory):\n    return os.getpid()\n"


def answer(code: str, tests: str = "") -> str:
    text = f"Here is the policy.\n```python\n{code}```\n"
    return text + (f"And the tests:\n```python\n{tests}```\n" if tests else "")


class ScriptedBackend(LLMBackend):
    """Answers with the given replies in turn and records what it was asked."""

    kind = "scripted"

    def __init__(self, replies: Sequence[str]) -> None:
        self.replies = list(replies)
        self.calls: list[tuple[tuple[ChatMessage, ...], GenerationParams]] = []

    @property
    def model_id(self) -> str:
        return "scripted-test-model"

    def chat(self, messages: Sequence[ChatMessage], params: GenerationParams) -> Completion:
        self.calls.append((tuple(messages), params))
        text = self.replies.pop(0)
        return Completion(text=text, prompt_tokens=sum(len(m.content) for m in messages) // 4,
                          completion_tokens=len(text) // 4, seconds=0.01, finish_reason="stop")


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore(tmp_path / "artifacts")


def test_repair_round_fixes_a_hostile_answer(store: ArtifactStore) -> None:
    backend = ScriptedBackend([answer(HOSTILE), answer(GOOD, TESTS)])
    result = Generator(backend, store).compose_task(TASKS["gnomish"].prompt, detector_task="gnomish",
                                                    sampling=Sampling(seed=5, max_repair_rounds=3))
    assert result.best.valid and result.best.repair_rounds == 1 and result.attempts == 2
    # the second call carried the first answer and the validator's reason back to the LLM
    repair = backend.calls[1][0]
    assert repair[-2].role == "assistant" and "import os" in repair[-2].content
    assert "allow-list" in repair[-1].content and "os" in repair[-1].content
    # the first answer is sampled at the method's temperature, the repair hotter and with another seed
    first, second = backend.calls[0][1], backend.calls[1][1]
    assert (first.temperature, second.temperature) == (0.2, 0.7) and first.seed != second.seed
    record = store.get(result.best.sha256)
    assert record.sampling.temperature == 0.2 and record.sampling.repair_temperature == 0.7
    # seeds: recorded per round, different per round
    assert backend.calls[0][1].seed == 5 and backend.calls[1][1].seed != 5
    record = store.get(result.best.sha256)
    assert record.code.strip() == GOOD.strip() and record.tests.startswith("def test_goes_down")
    assert record.kind == ArtifactKind.TASK_POLICY and record.model_id == "scripted-test-model"
    assert record.sampling.seed == 5 and record.sampling.temperature == 0.2 and record.sampling.repair_rounds == 1
    assert [t.role for t in record.transcript] == ["system", "user", "assistant", "user", "assistant"]
    rounds = record.generation["rounds"]
    assert [r["valid"] for r in rounds] == [False, True] and rounds[0]["failed_stage"] == "allow-list"
    assert record.detector_task == "gnomish" and "gnomish" not in record.generation["examples"]
    assert record.report.stage("llm-tests").passed and "skipped" not in record.report.stage("llm-tests").detail
    policy = store.load_policy(result.best.sha256)
    assert policy.base_turns == 50


def test_leave_one_out_in_what_is_sent(store: ArtifactStore) -> None:
    for task in ("gnomish", "goldenexit"):
        backend = ScriptedBackend([answer(GOOD)])
        Generator(backend, store).compose_task(TASKS[task].prompt, sampling=Sampling(max_repair_rounds=0))
        sent = backend.calls[0][0][-1].content
        own = reference_source(task).split('"""', 2)[2].strip()
        assert own not in sent  # recognised by its prompt text alone, without a name


def test_every_sample_is_stored_and_the_valid_one_chosen(store: ArtifactStore) -> None:
    backend = ScriptedBackend([answer(HOSTILE), "I cannot write code.", answer(GOOD)])
    result = Generator(backend, store).compose_task("Go down five levels.", task_name="down5",
                                                    sampling=Sampling(samples=3, seed=10, max_repair_rounds=0))
    assert [s.seed for s in result.samples] == [10, 11, 12]
    assert [s.valid for s in result.samples] == [False, False, True]
    assert result.best is result.samples[2]
    assert {a.sha256 for a in store.list()} >= {s.sha256 for s in result.samples}
    invalid = result.samples[0].sha256
    assert store.get(invalid).valid is False
    assert store.get(result.samples[1].sha256).code == "I cannot write code."  # stored as answered
    with pytest.raises(ArtifactError, match="did not pass validation"):
        store.load_policy(invalid)  # only validated artifacts load


def test_gives_up_after_three_repair_rounds(store: ArtifactStore) -> None:
    backend = ScriptedBackend(["no code"] + [answer(HOSTILE)] * 3)
    result = Generator(backend, store).training_policy(sampling=Sampling(max_repair_rounds=3))
    assert not result.best.valid and result.attempts == 4 and result.best.repair_rounds == 3
    assert "the answer had no code" in backend.calls[1][0][-1].content
    assert result.best.record.kind == ArtifactKind.TRAINING_POLICY


def test_bad_requests_fail_before_any_llm_call(store: ArtifactStore) -> None:
    backend = ScriptedBackend([])
    gen = Generator(backend, store)
    with pytest.raises(PromptError, match="task_name"):
        gen.compose_task("Go down.", task_name="bad name!")
    with pytest.raises(PromptError, match="detector_task"):
        gen.compose_task("Go down.", detector_task="nosuchtask")
    with pytest.raises(PromptError, match="4000"):
        gen.compose_task("x" * 4001)
    with pytest.raises(PromptError, match="max_repair_rounds"):
        Sampling(max_repair_rounds=4)
    assert backend.calls == []
