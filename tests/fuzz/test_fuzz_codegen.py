"""Fuzz every RPC of the codegen service (GenerateSkillFunctions, GenerateTrainingPolicy,
ComposeTask, ValidateCode, GetArtifact, GetServerInfo) with random and mutated messages.

The LLM is the loopback TGI double (``tests/llm/tgi_double.py``): it answers in moments, so a
generation request that passes its checks runs the whole loop (prompt, extract, validate, repair,
store) for real without minutes of model time. Its answer is prose without code, so such
generations end with a stored, invalid artifact, whose address the GetArtifact fuzzing reuses.
"""

from __future__ import annotations

import hashlib
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from fuzzkit import RSS_BOUND_BYTES, Tally, code_of, examples, open_channel, raw_unary, rss
from hypothesis import given, settings
from hypothesis import strategies as st

from maestromotif.codegen.artifacts import ArtifactStore
from maestromotif.kit import load_spec
from maestromotif.kit.testing import LocalService, running
from maestromotif.skills.reference import reference_source
from maestromotif.v1 import codegen_pb2 as pb
from maestromotif.v1 import codegen_pb2_grpc, common_pb2

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "llm"))
from tgi_double import TGIDouble  # noqa: E402

SERVICE = "/maestromotif.v1.Codegen/"
METHODS = ("GenerateSkillFunctions", "GenerateTrainingPolicy", "ComposeTask", "ValidateCode", "GetArtifact",
           "GetServerInfo")
MAX_MESSAGE = 4 * 1024 * 1024
UINT32 = st.one_of(st.integers(0, 10), st.integers(0, 2**32 - 1), st.sampled_from([2**31, 2**32 - 1, 8192, 8193]))
ENUM = st.one_of(st.integers(-3, 8), st.sampled_from([2**31 - 1, -(2**31)]))
FLOATS = st.one_of(st.floats(width=32, allow_nan=True, allow_infinity=True),
                   st.sampled_from([float("nan"), float("inf"), -float("inf"), -0.0, 2.0, 2.0001, 3.4e38, -1e-45]))
NASTY_TEXT = st.one_of(
    st.text(max_size=200),
    st.sampled_from(["", " ", "\x00", "a\x00b", "```python\nimport os\n```", "x" * 4001, "é" * 2000,
                     "../../etc/passwd", "gnomish\n", "GNOMISH", "%s%n{}", "\ud7ff" * 10]),
    st.text(min_size=4000, max_size=20_000),
)
# Field names an INVALID_ARGUMENT must name (one of them).
FIELD_WORDS = ("sampling", "skills", "prompt", "task_name", "detector_task", "kind", "code", "sha256", "deserializ")


@pytest.fixture(scope="module")
def llm() -> Iterator[TGIDouble]:
    with TGIDouble(reply="I would pick the discoverer first, then descend.") as double:
        yield double


@pytest.fixture(scope="module")
def codegen(llm: TGIDouble, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalService]:
    root = tmp_path_factory.mktemp("codegen")
    with running(load_spec("codegen"), backend="tgi", llm_url=llm.url, llm_timeout_s=10.0,
                 store_dir=str(root / "artifacts"), max_message_bytes=MAX_MESSAGE, queue_timeout_s=0.2,
                 max_repair_rounds=1) as svc:
        yield svc


@pytest.fixture(scope="module")
def chan(codegen: LocalService) -> Iterator[grpc.Channel]:
    channel = open_channel(codegen.address)
    yield channel
    channel.close()


@pytest.fixture(scope="module")
def stored(chan: grpc.Channel) -> str:
    """The address of an artifact the service stored (an invalid one: the double answers prose)."""
    result = codegen_pb2_grpc.CodegenStub(chan).ComposeTask(pb.ComposeTaskRequest(prompt="reach the mines"), timeout=60)
    assert not result.artifact.validation.valid and len(result.artifact.sha256) == 64
    return result.artifact.sha256


@pytest.fixture(scope="module")
def baseline(chan: grpc.Channel, stored: str) -> int:
    assert_still_serving(chan, stored)  # warm up: one generation, one validation in the isolated process
    return rss()


def assert_still_serving(channel: grpc.Channel, sha: str) -> None:
    """After any abuse: validation, generation, artifact lookup and info all answer correctly."""
    stub = codegen_pb2_grpc.CodegenStub(channel)
    report = stub.ValidateCode(pb.ValidateCodeRequest(code=reference_source("gnomish"), kind=pb.TASK_POLICY), timeout=60)
    assert report.valid, [c for c in report.checks if not c.passed]
    result = stub.GenerateTrainingPolicy(pb.GenerateTrainingPolicyRequest(), timeout=60)
    assert result.attempts >= 1 and len(result.artifact.sha256) == 64
    assert stub.GetArtifact(pb.GetArtifactRequest(sha256=sha), timeout=30).sha256 == sha
    assert stub.GetServerInfo(common_pb2.GetServerInfoRequest(), timeout=30).service == "codegen"


@st.composite
def sampling(draw: st.DrawFn) -> pb.SamplingSettings:
    s = pb.SamplingSettings()
    # most examples change one setting, so that each limit is reached on its own
    for name in draw(st.lists(st.sampled_from(["temperature", "max_tokens", "seed", "max_repair_rounds", "samples"]),
                              max_size=2, unique=True)):
        if name == "temperature":
            s.temperature = draw(FLOATS)
        else:
            setattr(s, name, draw(UINT32))
    # a valid request runs generations: at most 2 samples of 2 LLM calls keep the fuzzing fast
    if 0 < s.samples <= 4:
        s.samples = min(s.samples, 2)
    return s


@st.composite
def generation(draw: st.DrawFn) -> tuple[str, object]:
    method = draw(st.sampled_from(METHODS[:3]))
    s = draw(sampling())
    if method == "GenerateSkillFunctions":
        return method, pb.GenerateSkillFunctionsRequest(skills=draw(st.lists(ENUM, max_size=7)), sampling=s)
    if method == "GenerateTrainingPolicy":
        return method, pb.GenerateTrainingPolicyRequest(sampling=s)
    prompt = draw(st.one_of(NASTY_TEXT, st.just("get to the gnomish mines")))
    return method, pb.ComposeTaskRequest(
        prompt=prompt, sampling=s,
        task_name=draw(st.one_of(st.just(""), NASTY_TEXT, st.text("ab-_9", min_size=1, max_size=70))),
        detector_task=draw(st.one_of(st.just(""), st.sampled_from(["gnomish", "delphi", "nope"]), NASTY_TEXT)))


@settings(settings.get_profile("fuzz"), max_examples=examples(30))
@given(case=generation())
def test_generation_requests_fuzzed(case: tuple[str, object], chan: grpc.Channel, tally: Tally, baseline: int) -> None:
    method, request = case
    call = getattr(codegen_pb2_grpc.CodegenStub(chan), method)
    code, reply, details = code_of(lambda: call(request, timeout=30))
    tally.check(method, code, details)
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        assert any(w in details for w in FIELD_WORDS), details
    elif code == grpc.StatusCode.OK:
        assert len(reply.artifact.sha256) == 64 and reply.attempts >= 1
        assert hashlib.sha256(reply.artifact.code.encode()).hexdigest() == reply.artifact.sha256


REFERENCE = reference_source("gnomish")


@st.composite
def code_cases(draw: st.DrawFn) -> tuple[str, int]:
    kind = draw(st.one_of(st.sampled_from([pb.TASK_POLICY, pb.TRAINING_POLICY, pb.SKILL_FUNCTIONS]), ENUM))
    how = draw(st.sampled_from(["text", "truncate", "insert", "huge", "hostile"]))
    if how == "text":
        code = draw(NASTY_TEXT)
    elif how == "truncate":
        code = REFERENCE[:draw(st.integers(0, len(REFERENCE)))]
    elif how == "insert":
        at = draw(st.integers(0, len(REFERENCE)))
        code = REFERENCE[:at] + draw(st.text(min_size=1, max_size=40)) + REFERENCE[at:]
    elif how == "huge":  # around the 64 KiB limit, and far beyond it
        code = "#" * draw(st.sampled_from([32_001, 65_535, 65_536, 65_537, 1_000_000]))
    else:
        code = draw(st.sampled_from([
            "import os\nos.system('id')\n",
            "SKILL_TURNS = 5\ndef start(m):\n    pass\ndef choose_skill(s, m):\n    while True:\n        pass\n",
            "SKILL_TURNS = 5\ndef start(m):\n    pass\ndef choose_skill(s, m):\n    return ().__class__.__base__\n",
            "def start(m):\n    " + "(" * 500 + ")" * 500 + "\n",
            "x = 9 ** 9 ** 9\n",
        ]))
    return code, kind


@settings(settings.get_profile("fuzz"), max_examples=examples(30))
@given(case=code_cases())
def test_validate_code_fuzzed(case: tuple[str, int], chan: grpc.Channel, tally: Tally, baseline: int) -> None:
    code_text, kind = case
    stub = codegen_pb2_grpc.CodegenStub(chan)
    code, reply, details = code_of(lambda: stub.ValidateCode(pb.ValidateCodeRequest(code=code_text, kind=kind),
                                                               timeout=60))
    tally.check("ValidateCode", code, details)
    if code == grpc.StatusCode.OK:
        assert reply.valid == all(c.passed for c in reply.checks) and reply.checks
    else:
        assert code == grpc.StatusCode.INVALID_ARGUMENT and ("kind" in details or "code" in details), details


@settings(settings.get_profile("fuzz"), max_examples=examples(25))
@given(sha=st.one_of(NASTY_TEXT, st.text(alphabet="0123456789abcdef", min_size=63, max_size=65),
                     st.just("A" * 64), st.just("0" * 64), st.just("0" * 64 + "\n")))
def test_get_artifact_fuzzed(sha: str, chan: grpc.Channel, tally: Tally, baseline: int) -> None:
    stub = codegen_pb2_grpc.CodegenStub(chan)
    code, _, details = code_of(lambda: stub.GetArtifact(pb.GetArtifactRequest(sha256=sha), timeout=10))
    tally.check("GetArtifact", code, details)
    assert code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND), (code, details)
    assert len(details) < 1000, details  # a long address is cut in the message


def test_corrupted_artifact_is_data_loss(codegen: LocalService, chan: grpc.Channel, tally: Tally) -> None:
    stub = codegen_pb2_grpc.CodegenStub(chan)
    sha = stub.GenerateSkillFunctions(pb.GenerateSkillFunctionsRequest(), timeout=60).artifact.sha256
    path = ArtifactStore(Path(codegen.config.store_dir)).path(sha)
    path.write_bytes(path.read_bytes()[:-20] + b"garbage")
    code, _, details = code_of(lambda: stub.GetArtifact(pb.GetArtifactRequest(sha256=sha), timeout=10))
    tally.check("GetArtifact(corrupted)", code, details)
    assert code == grpc.StatusCode.DATA_LOSS and sha[:12] in details, (code, details)


@settings(settings.get_profile("fuzz"), max_examples=examples(40))
@given(payload=st.binary(max_size=3000), method=st.sampled_from(METHODS))
def test_random_bytes(payload: bytes, method: str, chan: grpc.Channel, tally: Tally, baseline: int) -> None:
    """Arbitrary bytes as the serialized request: refused, or (when they parse) answered; never a crash."""
    code, _, details = raw_unary(chan, SERVICE + method, payload, timeout=30)
    tally.check(method + "(bytes)", code, details)


def test_beyond_max_message_size(chan: grpc.Channel, tally: Tally) -> None:
    for method, request in (("ValidateCode", pb.ValidateCodeRequest(code="#" * (MAX_MESSAGE + 10), kind=1)),
                            ("ComposeTask", pb.ComposeTaskRequest(prompt="p" * (MAX_MESSAGE + 10)))):
        code, _, details = raw_unary(chan, SERVICE + method, request.SerializeToString())
        tally.check(method + "(oversized)", code, details)
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, details


def test_cancelled_and_expired_generations(llm: TGIDouble, chan: grpc.Channel, tally: Tally, stored: str) -> None:
    """Generations whose callers give up (cancel, or a deadline shorter than the LLM's answer) end
    without holding the backend: a later generation is answered."""
    stub = codegen_pb2_grpc.CodegenStub(chan)
    llm.delay_s = 0.3
    try:
        pending = [stub.ComposeTask.future(pb.ComposeTaskRequest(prompt=f"task {i}"), timeout=30) for i in range(6)]
        time.sleep(0.1)
        for f in pending:
            f.cancel()
        for _ in range(4):
            code, _, details = code_of(lambda: stub.GenerateTrainingPolicy(pb.GenerateTrainingPolicyRequest(),
                                                                           timeout=0.05))
            tally.check("GenerateTrainingPolicy(deadline)", code, details)
            assert code == grpc.StatusCode.DEADLINE_EXCEEDED, details
    finally:
        llm.delay_s = 0.0
    assert_still_serving(chan, stored)


def test_concurrent_generations_beyond_the_backend(codegen: LocalService, llm: TGIDouble, tally: Tally) -> None:
    """More callers than the backend's slots (8 for a remote LLM): the overflow waits
    queue_timeout_s (0.2 s here), then gets RESOURCE_EXHAUSTED; nobody gets a crash."""
    llm.delay_s = 0.5
    codes: list[grpc.StatusCode] = []
    lock = threading.Lock()

    def one() -> None:
        channel = open_channel(codegen.address)
        try:
            code, _, details = code_of(lambda: codegen_pb2_grpc.CodegenStub(channel).GenerateTrainingPolicy(
                pb.GenerateTrainingPolicyRequest(sampling=pb.SamplingSettings(max_repair_rounds=0)), timeout=30))
            with lock:
                codes.append(code)
                tally.check("GenerateTrainingPolicy(concurrent)", code, details)
        finally:
            channel.close()

    try:
        threads = [threading.Thread(target=one) for _ in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    finally:
        llm.delay_s = 0.0
    assert len(codes) == 12 and grpc.StatusCode.OK in codes, codes
    assert grpc.StatusCode.RESOURCE_EXHAUSTED in codes, codes  # 12 callers, 8 slots, each answer 0.5 s


@pytest.mark.parametrize("misbehaviour", ["overloaded", "huge", "nul"])
def test_llm_that_misbehaves(misbehaviour: str, llm: TGIDouble, chan: grpc.Channel, tally: Tally, stored: str) -> None:
    """The LLM side is input too: 503s, a 240 kB answer (an endpoint that ignores max_tokens), NUL
    bytes. Each ends in a proper status. The long answer, quoted back in the repair round, made the
    conversation itself invalid (UNKNOWN, "ChatMessage.content: ... more than 32000") until answers
    were cut to 100,000 characters when read and 16,000 when quoted back."""
    stub = codegen_pb2_grpc.CodegenStub(chan)
    before = llm.reply
    try:
        if misbehaviour == "overloaded":
            llm.fail_next = 50
        elif misbehaviour == "huge":
            llm.reply = "```python\n" + "x = 1\n" * 40_000 + "```"  # 240 kB, 60k tokens
        else:
            llm.reply = "```python\nSKILL_TURNS = 5\x00\ndef start(m):\n    pass\n```"
        code, reply, details = code_of(lambda: stub.ComposeTask(pb.ComposeTaskRequest(prompt="find the altar"),
                                                                timeout=60))
    finally:
        llm.fail_next = 0
        llm.reply = before
    tally.check(f"ComposeTask(LLM {misbehaviour})", code, details)
    if misbehaviour == "overloaded":
        assert code == grpc.StatusCode.UNAVAILABLE and "LLM" in details, (code, details)
    else:
        assert code == grpc.StatusCode.OK and not reply.artifact.validation.valid, (code, details)
        assert len(reply.artifact.code.encode()) <= 64 * 1024
    assert_still_serving(chan, stored)


def test_still_serving_with_bounded_memory(chan: grpc.Channel, stored: str, baseline: int) -> None:
    assert_still_serving(chan, stored)
    grown = rss() - baseline
    assert grown < RSS_BOUND_BYTES, f"RSS grew by {grown / 2**20:.0f} MiB during the fuzzing"
