"""Fuzz every RPC of the Agent API (ComposeTask, PlayTask, Evaluate, GetServerInfo).

The agent plays with a real, untrained learner checkpoint (small preset, as in tests/agent) and
reaches a real codegen service whose LLM is the loopback TGI double (prose answers, so every
composed artifact is stored and invalid). PlayTask is a server stream: besides mutated requests,
streams are cancelled after the first event and held open by clients that never read; the
per-caller and global bounds must refuse the overflow with RESOURCE_EXHAUSTED and free their
slots when the streams end. The actors service serves no RPC of its own (it is a client of the
learner), so the agent and codegen modules complete "every RPC of every service".
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from fuzzkit import RSS_BOUND_BYTES, Tally, code_of, examples, open_channel, raw_stream, raw_unary, rss
from hypothesis import given, settings
from hypothesis import strategies as st

from maestromotif.agent.client import AgentCallError, AgentClient, generation_result_of
from maestromotif.kit import load_spec
from maestromotif.kit.testing import LocalService, running
from maestromotif.tasks.specs import TASK_NAMES
from maestromotif.v1 import agent_pb2, agent_pb2_grpc, codegen_pb2, codegen_pb2_grpc, common_pb2

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "llm"))
from tgi_double import TGIDouble  # noqa: E402

SERVICE = "/maestromotif.v1.Agent/"
MAX_MESSAGE = 4 * 1024 * 1024
PER_CALLER, GLOBAL, COMPOSE = 2, 3, 2
MAX_EPISODE_S = 3.0
UINT32 = st.one_of(st.integers(0, 10), st.integers(0, 2**32 - 1), st.sampled_from([2**31, 2**32 - 1]))
UINT64 = st.one_of(st.integers(0, 100), st.integers(0, 2**64 - 1),
                   st.sampled_from([2**31, 2**32, 2**63 - 1, 2**63, 2**64 - 4, 2**64 - 1]))
# Short episodes, and now and then the default (0 = 10,000), the maximum and past it.
MAX_STEPS = st.one_of(st.integers(1, 12), st.sampled_from([0, 10_000, 10_001, 2**32 - 1]))
NASTY_TEXT = st.one_of(
    st.text(max_size=200),
    st.sampled_from(["", " ", "\x00", "gnomish\x00", "GNOMISH", "gnomish ", "../gnomish", "x" * 4001, "é" * 3000,
                     "```python\nimport os\n```", "%s%n{}"]),
    st.text(min_size=4000, max_size=20_000),
)
FIELD_WORDS = ("task", "max_steps", "episodes", "prompt", "sampling", "seed", "deserializ", "detector_task",
               "artifact")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real learner checkpoint (small preset, not trained: what matters here is the format)."""
    import torch

    from maestromotif.training.settings import TrainingSettings
    from maestromotif.training.sf2 import LearnerDriver

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("train")
    LearnerDriver(TrainingSettings(preset="small", device="cpu", batch_size=8 * 32), root, "exp").save({"env_steps": 0})
    return root / "exp"


@pytest.fixture(scope="module")
def llm() -> Iterator[TGIDouble]:
    with TGIDouble(reply="First I would find the stairs.") as double:
        yield double


@pytest.fixture(scope="module")
def stack(checkpoint: Path, llm: TGIDouble,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalService, LocalService]]:
    root = tmp_path_factory.mktemp("agent")
    with running(load_spec("codegen"), backend="tgi", llm_url=llm.url, llm_timeout_s=10.0,
                 store_dir=str(root / "artifacts"), max_repair_rounds=0) as codegen, \
            running(load_spec("agent"), checkpoint=checkpoint, codegen_address=codegen.address,
                    max_episodes_per_caller=PER_CALLER, max_active_episodes=GLOBAL, max_evaluate_episodes=4,
                    evaluate_batch=2, max_message_bytes=MAX_MESSAGE, compose_deadline_s=30.0,
                    max_compose_calls=COMPOSE, max_episode_s=MAX_EPISODE_S) as agent:
        yield agent, codegen


@pytest.fixture(scope="module")
def agent(stack: tuple[LocalService, LocalService]) -> LocalService:
    return stack[0]


@pytest.fixture(scope="module")
def chan(agent: LocalService) -> Iterator[grpc.Channel]:
    channel = open_channel(agent.address)
    yield channel
    channel.close()


@pytest.fixture(scope="module")
def invalid_sha(stack: tuple[LocalService, LocalService]) -> str:
    """A stored TASK_POLICY artifact that failed validation (the double answers prose)."""
    result = codegen_pb2_grpc.CodegenStub(stack[1].channel).ComposeTask(
        codegen_pb2.ComposeTaskRequest(prompt="reach the mines"), timeout=60)
    assert not result.artifact.validation.valid
    return result.artifact.sha256


@pytest.fixture(scope="module")
def baseline(chan: grpc.Channel, agent: LocalService) -> int:
    assert_still_plays(chan, agent)  # loads the checkpoint and NLE before measuring
    return rss()


def servicer(agent: LocalService) -> Any:
    return agent.service.ctx.agent


def wait_idle(agent: LocalService, timeout: float = 15.0) -> None:
    """Every env freed and every slot released (a stream's end is seen by the server a moment later)."""
    s = servicer(agent)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and (s.open_envs or s.slots.open()):
        time.sleep(0.02)
    assert s.open_envs == 0 and s.slots.open() == 0, (s.open_envs, s.slots.open())


def play(task: str = "gnomish", **kw: Any) -> agent_pb2.PlayTaskRequest:
    kw.setdefault("max_steps", 5)
    return agent_pb2.PlayTaskRequest(task=agent_pb2.TaskSelector(task_name=task), **kw)


def assert_still_plays(channel: grpc.Channel, agent: LocalService) -> None:
    wait_idle(agent)
    stub = agent_pb2_grpc.AgentStub(channel)
    events = list(stub.PlayTask(play(seed=1, max_steps=6, step_event_every=1), timeout=120))
    end = events[-1].end
    assert events[-1].WhichOneof("event") == "end" and 1 <= end.steps <= 6 and sum(end.skill_steps) == end.steps
    r = stub.Evaluate(agent_pb2.EvaluateRequest(task=agent_pb2.TaskSelector(task_name="delphi"), episodes=2,
                                                max_steps=4), timeout=120)
    assert r.episodes == 2 and 0.0 <= r.success_ci_low <= r.success_ci_high <= 1.0
    assert stub.GetServerInfo(common_pb2.GetServerInfoRequest(), timeout=30).service == "agent"


@st.composite
def selectors(draw: st.DrawFn, invalid_sha: str) -> agent_pb2.TaskSelector:
    source = draw(st.sampled_from(["valid", "valid", "valid", "name", "artifact", "none"]))
    sel = agent_pb2.TaskSelector()
    if source == "valid":
        sel.task_name = draw(st.sampled_from(TASK_NAMES))
    elif source == "name":
        sel.task_name = draw(NASTY_TEXT)
    elif source == "artifact":
        sel.artifact_sha256 = draw(st.one_of(st.just(invalid_sha), NASTY_TEXT,
                                             st.text(alphabet="0123456789abcdef", min_size=63, max_size=65)))
    if draw(st.integers(0, 3)) == 0:
        sel.detector_task = draw(st.one_of(st.sampled_from(TASK_NAMES), NASTY_TEXT))
    return sel


def _timeout(max_steps: int, episodes: int = 1) -> float:
    # long episodes (0 = 10,000 steps) are ended by the deadline: DEADLINE_EXCEEDED is a proper answer
    return 2.0 if max_steps == 0 or max_steps > 12 or episodes > 4 else 60.0


def _check_refusal(code: grpc.StatusCode, details: str) -> None:
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        assert any(w in details for w in FIELD_WORDS), details
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:  # the episode bounds, not a message or metadata size
        assert "episodes open" in details, details


@settings(settings.get_profile("fuzz"), max_examples=examples(20))
@given(data=st.data(), seed=UINT64, max_steps=MAX_STEPS, every=UINT32, screen=st.booleans())
def test_play_task_fuzzed(data: st.DataObject, seed: int, max_steps: int, every: int, screen: bool,
                          chan: grpc.Channel, agent: LocalService, invalid_sha: str, tally: Tally,
                          baseline: int) -> None:
    request = agent_pb2.PlayTaskRequest(task=data.draw(selectors(invalid_sha)), seed=seed, max_steps=max_steps,
                                        step_event_every=every, include_screen=screen)
    code, events, details = raw_stream(chan, SERVICE + "PlayTask", request.SerializeToString(),
                                       timeout=_timeout(max_steps))
    tally.check("PlayTask", code, f"{request.task} seed={seed} max_steps={max_steps}: {details}")
    _check_refusal(code, details)
    if code == grpc.StatusCode.OK:
        assert events >= 1  # at least the end
    wait_idle(agent)


@settings(settings.get_profile("fuzz"), max_examples=examples(20))
@given(data=st.data(), seed=UINT64, max_steps=MAX_STEPS,
       episodes=st.one_of(st.integers(1, 4), st.sampled_from([0, 5, 2**31, 2**32 - 1])))
def test_evaluate_fuzzed(data: st.DataObject, seed: int, max_steps: int, episodes: int, chan: grpc.Channel,
                         agent: LocalService, invalid_sha: str, tally: Tally, baseline: int) -> None:
    request = agent_pb2.EvaluateRequest(task=data.draw(selectors(invalid_sha)), seed=seed, max_steps=max_steps,
                                        episodes=episodes)
    stub = agent_pb2_grpc.AgentStub(chan)
    code, reply, details = code_of(lambda: stub.Evaluate(request, timeout=_timeout(max_steps, episodes)))
    tally.check("Evaluate", code, f"{request.task} seed={seed} episodes={episodes}: {details}")
    _check_refusal(code, details)
    if code == grpc.StatusCode.OK:
        assert reply.episodes == episodes and 0.0 <= reply.success_rate <= 1.0
        assert reply.mean_steps <= (max_steps or 10_000)  # 0: the default, 10,000
    wait_idle(agent)


@st.composite
def compose_requests(draw: st.DrawFn) -> codegen_pb2.ComposeTaskRequest:
    s = codegen_pb2.SamplingSettings()
    name = draw(st.sampled_from(["", "temperature", "max_tokens", "seed", "max_repair_rounds", "samples"]))
    if name == "temperature":
        s.temperature = draw(st.floats(width=32) | st.sampled_from([float("nan"), float("inf"), -1.0, 2.5]))
    elif name:
        setattr(s, name, draw(UINT32))
    if 0 < s.samples <= 4:
        s.samples = 1
    return codegen_pb2.ComposeTaskRequest(
        prompt=draw(st.one_of(NASTY_TEXT, st.just("get into the gnomish mines"))), sampling=s,
        task_name=draw(st.one_of(st.just(""), NASTY_TEXT)),
        detector_task=draw(st.one_of(st.just(""), st.sampled_from(TASK_NAMES), NASTY_TEXT)))


@settings(settings.get_profile("fuzz"), max_examples=examples(20))
@given(request=compose_requests())
def test_compose_task_fuzzed(request: codegen_pb2.ComposeTaskRequest, chan: grpc.Channel, tally: Tally,
                             baseline: int) -> None:
    stub = agent_pb2_grpc.AgentStub(chan)
    try:
        stub.ComposeTask(request, timeout=60)
        raise AssertionError("the double never writes code: no request may succeed")
    except grpc.RpcError as exc:
        code, details = exc.code(), exc.details() or ""
        tally.check("ComposeTask", code, details)
        _check_refusal(code, details)
        if code == grpc.StatusCode.FAILED_PRECONDITION:  # passed every check: the failed validation comes back
            assert "no valid policy" in details, details
            report = generation_result_of(exc)
            assert report is not None and not report.artifact.validation.valid, details


def test_refusal_of_a_long_prompt_carries_its_report(stack: tuple[LocalService, LocalService]) -> None:
    """A 4,000-character prompt makes a GenerationResult of ~16 kB: sent whole in the trailing
    metadata it exceeded the clients' default 8 KiB limit and the caller got RESOURCE_EXHAUSTED
    "metadata size exceeds soft limit" instead of the report (found by this fuzzing)."""
    agent, codegen = stack
    prompt = ("go down the stairs and find the gnomish mines, " * 90)[:4000]
    with AgentClient(agent.address) as client, pytest.raises(AgentCallError) as err:
        client.compose(prompt)
    assert err.value.code == grpc.StatusCode.FAILED_PRECONDITION and err.value.result is not None
    art = err.value.result.artifact
    assert not art.validation.valid and art.validation.checks and art.transcript_json == ""
    # the whole artifact is still at codegen, under the address the trimmed report gives (the
    # store is content-addressed: the double's answer is always the same, so is the address)
    whole = codegen_pb2_grpc.CodegenStub(codegen.channel).GetArtifact(
        codegen_pb2.GetArtifactRequest(sha256=art.sha256), timeout=30)
    assert whole.sha256 == art.sha256 and len(whole.transcript_json) > 1000


@settings(settings.get_profile("fuzz"), max_examples=examples(40))
@given(payload=st.binary(max_size=3000), method=st.sampled_from(["ComposeTask", "PlayTask", "Evaluate",
                                                                   "GetServerInfo"]))
def test_random_bytes(payload: bytes, method: str, chan: grpc.Channel, agent: LocalService, tally: Tally,
                      baseline: int) -> None:
    """Arbitrary bytes as the serialized request (a bytes payload that parses may ask for a long
    episode: the short deadline ends it)."""
    if method == "PlayTask":
        code, _, details = raw_stream(chan, SERVICE + method, payload, timeout=2.0)
    else:
        code, _, details = raw_unary(chan, SERVICE + method, payload, timeout=2.0)
    tally.check(method + "(bytes)", code, details)
    wait_idle(agent)


def test_beyond_max_message_size(chan: grpc.Channel, tally: Tally) -> None:
    big = "g" * (MAX_MESSAGE + 10)
    for method, request in (("PlayTask", play(big)), ("ComposeTask", codegen_pb2.ComposeTaskRequest(prompt=big)),
                            ("Evaluate", agent_pb2.EvaluateRequest(task=agent_pb2.TaskSelector(task_name=big)))):
        if method == "PlayTask":
            code, _, details = raw_stream(chan, SERVICE + method, request.SerializeToString())
        else:
            code, _, details = raw_unary(chan, SERVICE + method, request.SerializeToString())
        tally.check(method + "(oversized)", code, details)
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, details


def test_cancelled_streams_free_env_and_slot(chan: grpc.Channel, agent: LocalService, tally: Tally) -> None:
    stub = agent_pb2_grpc.AgentStub(chan)
    for i in range(6):
        stream = stub.PlayTask(play(seed=i, max_steps=10_000, step_event_every=1, include_screen=True), timeout=60)
        assert next(stream).WhichOneof("event") in ("step", "message", "skill_switch", "end")
        stream.cancel()
        code, _, details = code_of(lambda: list(stream))
        tally.check("PlayTask(cancelled)", code, details)
        assert code == grpc.StatusCode.CANCELLED, (code, details)
        wait_idle(agent)
    # an Evaluate whose caller gives up before it ends
    future = stub.Evaluate.future(agent_pb2.EvaluateRequest(task=agent_pb2.TaskSelector(task_name="gnomish"),
                                                            episodes=4, max_steps=10_000), timeout=60)
    time.sleep(0.5)
    future.cancel()
    wait_idle(agent)


def test_clients_that_open_streams_and_never_read(agent: LocalService, chan: grpc.Channel, tally: Tally) -> None:
    """Eight PlayTask streams (screens at every step) opened at once by three callers, never read.

    The bounds (2 per caller, 3 in all) refuse the overflow with RESOURCE_EXHAUSTED at once; the
    others play on: gRPC buffers a whole episode for a client that does not read (about 0.5 MB
    here, untrained episodes end within ~250 steps), so the handler ends and frees its env. Cheap
    calls are answered meanwhile, and every env and slot is free afterwards.
    """
    tokens = [None, None, None, "caller-b", "caller-b", "caller-b", "caller-c", "caller-c"]
    channel = open_channel(agent.address)
    stub = agent_pb2_grpc.AgentStub(channel)
    calls = [stub.PlayTask(play(seed=2, max_steps=10_000, step_event_every=1, include_screen=True), timeout=3.0,
                           metadata=(("authorization", f"Bearer {t}"),) if t else None)
             for t in tokens]  # a call starts when it is made; none is read until below
    t0 = time.monotonic()
    assert agent_pb2_grpc.AgentStub(chan).GetServerInfo(common_pb2.GetServerInfoRequest(), timeout=10).service == "agent"
    assert time.monotonic() - t0 < 5.0
    time.sleep(3.2)  # past every deadline, still unread
    results = [code_of(lambda c=c: list(c)) for c in calls]
    channel.close()
    for code, _, details in results:
        tally.check("PlayTask(never read)", code, details)
        assert code in (grpc.StatusCode.OK, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED,
                        grpc.StatusCode.CANCELLED), (code, details)  # CANCELLED: max_episode_s, on a slow machine
    refused = [d for c, _, d in results if c == grpc.StatusCode.RESOURCE_EXHAUSTED]
    assert all("episodes open (the limit)" in d for d in refused), refused
    # at most 3 episodes were open at once: all eight arrived within the first episodes' lifetime
    assert GLOBAL <= len(results) - len(refused) < len(results), [r[0] for r in results]
    wait_idle(agent)


def test_stream_blocked_by_a_client_that_never_reads_and_set_no_deadline(agent: LocalService, tally: Tally) -> None:
    """A client whose flow-control window stays small (no BDP probing: 64 kB) stops reading and set
    no deadline: the handler blocks in a send after ~35 steps with screens and would hold its env,
    slot and thread forever. The max_episode_s watchdog cancels it (3 s here)."""
    channel = grpc.insecure_channel(agent.address, options=[("grpc.http2.bdp_probe", 0)])
    call = agent_pb2_grpc.AgentStub(channel).PlayTask(
        play(seed=2, max_steps=10_000, step_event_every=1, include_screen=True), timeout=None)
    try:
        s, deadline = servicer(agent), time.monotonic() + 30
        while s.open_envs == 0 and time.monotonic() < deadline:  # the episode has started
            time.sleep(0.02)
        assert s.open_envs == 1
        wait_idle(agent, timeout=MAX_EPISODE_S + 15)  # freed by the watchdog, not by the episode's end
        code, events, details = code_of(lambda: list(call))
    finally:
        channel.close()
    tally.check("PlayTask(never read, no deadline)", code, details)
    # all events and the end would have come had the handler not been blocked (246 steps, ~0.5 MB)
    assert code == grpc.StatusCode.CANCELLED, (code, details)


def test_compose_calls_beyond_the_bound_are_refused(agent: LocalService, llm: TGIDouble, tally: Tally) -> None:
    """ComposeTask waits on codegen (minutes with a real LLM), holding a handler thread: past
    max_compose_calls they are refused at once, and cheap calls are answered meanwhile. Without the
    bound, max_workers slow composes would hold every handler thread, and the kit's thread pool
    would queue every later call behind them, health checks included."""
    llm.delay_s = 1.5
    channel = open_channel(agent.address)
    stub = agent_pb2_grpc.AgentStub(channel)
    try:
        futures = [stub.ComposeTask.future(codegen_pb2.ComposeTaskRequest(prompt=f"find the mines, try {i}"),
                                           timeout=30) for i in range(COMPOSE + 3)]
        t0 = time.monotonic()
        assert stub.GetServerInfo(common_pb2.GetServerInfoRequest(), timeout=10).service == "agent"
        assert time.monotonic() - t0 < 1.5  # answered before any compose finished
        results = [code_of(f.result) for f in futures]
    finally:
        llm.delay_s = 0.0
        channel.close()
    for code, _, details in results:
        tally.check("ComposeTask(concurrent)", code, details)
    codes = [r[0] for r in results]
    assert codes.count(grpc.StatusCode.FAILED_PRECONDITION) >= COMPOSE, results  # the prose answer, validated
    refused = [d for c, _, d in results if c == grpc.StatusCode.RESOURCE_EXHAUSTED]
    assert refused and all("ComposeTask calls waiting" in d for d in refused), results


def test_config_leaves_threads_for_cheap_calls() -> None:
    from maestromotif.kit import ConfigError

    spec = load_spec("agent")
    with pytest.raises((ConfigError, ValueError), match="max_workers"):
        spec.config_cls(max_workers=16, max_active_episodes=16, max_compose_calls=4)
    assert spec.config_cls().max_workers >= spec.config_cls().max_active_episodes + spec.config_cls().max_compose_calls + 4


def test_still_serving_with_bounded_memory(chan: grpc.Channel, agent: LocalService, baseline: int) -> None:
    assert_still_plays(chan, agent)
    grown = rss() - baseline
    assert grown < RSS_BOUND_BYTES, f"RSS grew by {grown / 2**20:.0f} MiB during the fuzzing"


@pytest.mark.parametrize("seed", [2**63 - 1, 2**63, 2**64 - 1])
def test_extreme_seeds_play(seed: int, chan: grpc.Channel, agent: LocalService, tally: Tally) -> None:
    """uint64 seeds at the edges (Evaluate's episode i uses seed + i, past 2^64 here)."""
    stub = agent_pb2_grpc.AgentStub(chan)
    code, events, details = code_of(lambda: list(stub.PlayTask(play(seed=seed, max_steps=3), timeout=60)))
    tally.check("PlayTask(extreme seed)", code, details)
    assert code == grpc.StatusCode.OK and events[-1].end.steps <= 3, (code, details)
    code, reply, details = code_of(lambda: stub.Evaluate(agent_pb2.EvaluateRequest(
        task=agent_pb2.TaskSelector(task_name="gnomish"), seed=seed, episodes=3, max_steps=3), timeout=60))
    tally.check("Evaluate(extreme seed)", code, details)
    assert code in (grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT), (code, details)
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        assert "seed" in details, details
    wait_idle(agent)


@settings(settings.get_profile("fuzz"), max_examples=examples(40))
@given(code=st.integers(0, 200_000), transcript=st.integers(0, 200_000), prompt=st.integers(0, 20_000),
       output=st.integers(0, 20_000), checks=st.integers(0, 30), detail=st.integers(0, 5_000),
       samples=st.integers(0, 8))
def test_trimmed_result_fits_the_metadata_budget(code: int, transcript: int, prompt: int, output: int, checks: int,
                                                 detail: int, samples: int) -> None:
    from services.actors.agent import MAX_METADATA_RESULT_BYTES, result_for_metadata

    result = codegen_pb2.GenerationResult(attempts=4, sample_sha256=["a" * 64] * samples, artifact=codegen_pb2.Artifact(
        sha256="b" * 64, kind=codegen_pb2.TASK_POLICY, code="c" * code, transcript_json="t" * transcript,
        prompt="p" * prompt, validation=codegen_pb2.ValidationReport(
            valid=False, sandbox_output="o" * output + "END",
            checks=[codegen_pb2.ValidationCheck(name=f"check{i}", passed=i > 0, detail="d" * detail)
                    for i in range(checks)])))
    trimmed = result_for_metadata(result)
    assert trimmed.ByteSize() <= MAX_METADATA_RESULT_BYTES
    art = trimmed.artifact
    assert art.sha256 == "b" * 64 and not art.validation.valid and trimmed.attempts == 4
    assert [c.name for c in art.validation.checks] == [f"check{i}" for i in range(checks)]
    assert art.validation.sandbox_output.endswith("END")  # the tail, where the error is, is kept
    if result.ByteSize() <= MAX_METADATA_RESULT_BYTES:
        assert trimmed == result  # nothing is cut from a result that fits
