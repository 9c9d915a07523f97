"""The score strategy without a model: few-shot examples vs the check set, phrasings, depth prior, halves.

A scripted backend stands in for the LLM here (this tests the strategy that calls it);
tests/llm/test_embedded.py runs the same strategy on the real 0.5B model.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import pytest

from maestromotif.annotation.checkset import HALVES, checkset_half, evaluate, load_checkset
from maestromotif.annotation.prompts import (
    SCORE_EXAMPLES,
    SCORE_QUESTIONS,
    score_messages,
    score_phrasings,
    score_text,
)
from maestromotif.annotation.schema import LABEL_FIRST, LABEL_SECOND, LABEL_TIE, Transition
from maestromotif.annotation.strategies import Annotator, depth_direction, depth_prior
from maestromotif.llm.base import ChatMessage, Completion, GenerationParams, LLMBackend, YesNoScore
from maestromotif.skills.ids import Skill

_NOTE = re.compile(r"\s*\(The player went (?:up|down) from level \d+ to level \d+\.\)$")


def _message_of_example(example: str) -> str:
    return _NOTE.sub("", example).strip()


def _t(message: str, depth: tuple[int, int] = (3, 3)) -> Transition:
    return Transition("", message, (depth[0], 0, 10, 10, 1, 1), (depth[1], 0, 10, 10, 1, 1))


class ScriptedBackend(LLMBackend):
    """Yes/No log-odds from a table keyed by (question, shown text); records every call."""

    kind = "embedded"
    supports_scoring = True

    def __init__(self, table: dict[tuple[str, str], float]) -> None:
        self.table = table
        self.calls: list[tuple[str, str]] = []

    @property
    def model_id(self) -> str:
        return "scripted"

    def chat(self, messages: Sequence[ChatMessage], params: GenerationParams) -> Completion:
        raise AssertionError("the score strategy never generates")

    def yes_no_score(self, messages: Sequence[ChatMessage]) -> YesNoScore:
        text, question = messages[-1].content.rsplit("\n", 1)
        self.calls.append((question, text))
        score = self.table.get((question, text), 0.0)
        return YesNoScore(score, -1.0, -1.0 - score, 10, 0.0)


def test_fewshot_examples_disjoint_from_checkset() -> None:
    """No worked example is a check-set message (else the check set would measure recall)."""
    cases = load_checkset()
    check_messages = {t.message.strip() for c in cases for t in (c.first, c.second)}
    check_texts = {score_text(t) for c in cases for t in (c.first, c.second)}
    assert "You kill the newt!" in check_messages  # the comparison reads real check-set messages
    for skill, examples in SCORE_EXAMPLES.items():
        assert {answer for _, answer in examples} == {"Yes", "No"}, skill
        for example, _ in examples:
            assert _message_of_example(example) not in check_messages, (skill, example)
            assert f'Message: "{example}"' not in check_texts, (skill, example)


def test_score_messages_phrasings() -> None:
    for skill in Skill:
        assert score_phrasings(skill) == len(SCORE_QUESTIONS[skill]) >= 1
        for k in range(score_phrasings(skill)):
            messages = score_messages(skill, 'Message: "x"', k)
            assert messages[0].role == "system" and messages[-1].role == "user"
            assert messages[-1].content == f'Message: "x"\n{SCORE_QUESTIONS[skill][k]}'
            # alternating worked examples, each asked with the same question
            assert len(messages) == 2 + 2 * len(SCORE_EXAMPLES[skill])
            assert all(m.content.endswith(SCORE_QUESTIONS[skill][k]) for m in messages[1:-1:2])
        with pytest.raises(ValueError, match="phrasing"):
            score_messages(skill, 'Message: "x"', score_phrasings(skill))


def test_depth_prior_follows_skill_goals() -> None:
    down, up, stay = _t("a", (2, 3)), _t("b", (4, 3)), _t("c")
    assert (depth_direction(down), depth_direction(up), depth_direction(stay)) == (1, -1, 0)
    assert [depth_prior(Skill.DESCENDER, t) for t in (down, stay, up)] == [1.0, 0.0, -1.0]
    assert [depth_prior(Skill.ASCENDER, t) for t in (down, stay, up)] == [-1.0, 0.0, 1.0]
    assert [depth_prior(Skill.DISCOVERER, t) for t in (down, stay, up)] == [-1.0, 0.0, -1.0]
    for skill in (Skill.WORSHIPPER, Skill.MERCHANT):
        assert [depth_prior(skill, t) for t in (down, stay, up)] == [0.0, 0.0, 0.0]
    # a fall of two levels counts as one step down, like the reward model's clipped diffstats
    assert depth_prior(Skill.DESCENDER, _t("d", (1, 3))) == 1.0


def test_score_averages_phrasings_and_adds_prior() -> None:
    skill = Skill.DESCENDER
    q0, q1 = SCORE_QUESTIONS[skill][:2]
    climb, kill = _t("You climb up the stairs.", (4, 3)), _t("You kill the newt!")
    table = {(q0, score_text(climb)): 2.0, (q1, score_text(climb)): 0.0,  # the LLM likes the climb (mean 1.0)
             (q0, score_text(kill)): -1.0, (q1, score_text(kill)): 0.0}   # and not the kill (mean -0.5)
    llm_only = Annotator(ScriptedBackend(table), "score", depth_prior=0.0)
    result = llm_only.annotate(skill, climb, kill)
    assert result.label == LABEL_FIRST
    assert (result.first_score, result.second_score) == (1.0, -0.5)
    assert len(llm_only.backend.calls) == 2 * score_phrasings(skill)  # type: ignore[attr-defined]
    # with the prior, "going up is worse than staying" (the descender's description) wins
    backend = ScriptedBackend(table)
    annotator = Annotator(backend, "score", depth_prior=3.0)
    result = annotator.annotate(skill, climb, kill)
    assert result.label == LABEL_SECOND
    assert (result.first_score, result.second_score) == (1.0 - 3.0, -0.5)
    assert "depth prior -3.00 +0.00" in result.raw_text
    # the LLM part is cached per (skill, shown text): scoring again makes no call
    calls = len(backend.calls)
    assert annotator.score(skill, climb) == -2.0 and len(backend.calls) == calls
    # the same transition against itself is a tie
    assert annotator.annotate(skill, kill, kill).label == LABEL_TIE
    # the prior does not touch skills without a level goal
    merchant = Annotator(ScriptedBackend({}), "score")
    assert merchant.score(Skill.MERCHANT, climb) == 0.0


@pytest.mark.parametrize("bad", [-0.5, 101.0, math.nan, math.inf])
def test_depth_prior_weight_validated(bad: float) -> None:
    with pytest.raises(ValueError, match="depth_prior"):
        Annotator(ScriptedBackend({}), "score", depth_prior=bad)


def test_checkset_halves() -> None:
    cases = load_checkset()
    assert [checkset_half(i) for i in range(8)] == ["dev", "dev", "holdout", "holdout"] * 2
    assert {c.half for c in cases} == set(HALVES)
    for skill in Skill:
        for half in HALVES:
            mine = [c for c in cases if c.skill == skill and c.half == half]
            assert len(mine) >= 6
            assert {c.expected for c in mine} == {LABEL_FIRST, LABEL_SECOND}, (skill, half)


def test_evaluate_reports_halves() -> None:
    """Agreement per half from a scripted LLM that prefers whatever mentions an altar."""
    cases = [c for c in load_checkset() if c.skill == Skill.WORSHIPPER]
    question = SCORE_QUESTIONS[Skill.WORSHIPPER][0]
    table = {(question, score_text(t)): (1.0 if "altar" in t.message else -1.0)
             for c in cases for t in (c.first, c.second)}
    report = evaluate(Annotator(ScriptedBackend(table), "score"), cases)
    data = report.as_dict()
    assert data["overall"]["total"] == len(cases)
    assert sum(data["per_half"][h]["total"] for h in HALVES) == len(cases)
    # "altar" alone is right except where both or neither transition mentions an altar
    expected_misses = [c.index for c in cases if ("altar" in c.first.message) == ("altar" in c.second.message)]
    assert sorted(m["index"] for m in data["mistakes"]) == expected_misses
    assert all(m["half"] in HALVES for m in data["mistakes"])
