"""The Agent API against real servers on loopback: auth, ComposeTask through a codegen server,
PlayTask streams (cancel frees the env), the per-caller bound, Evaluate, and `play` rendering."""

from __future__ import annotations

import hashlib
import time
import urllib.request
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
from typer.testing import CliRunner

from maestromotif.agent.client import AgentCallError, AgentClient, generation_result_of
from maestromotif.cli import app
from maestromotif.kit import ClientOptions
from maestromotif.kit.testing import running
from maestromotif.skills.reference import reference_source
from maestromotif.v1 import agent_pb2_grpc, codegen_pb2, codegen_pb2_grpc
from services.actors.agent import SPEC

TOKEN = "s3cret-token"
BAD_CODE = "def choose_skill(state):\n    return open('/etc/passwd')\n"


class FakeCodegen(codegen_pb2_grpc.CodegenServicer):
    """Test double of the codegen service: answers ComposeTask with a stored artifact per prompt."""

    def __init__(self) -> None:
        self.artifacts: dict[str, codegen_pb2.Artifact] = {}
        good = reference_source("gnomish")
        self.good = self._store(good, True, [("syntax", True, "ok"), ("sandbox", True, "ok")])
        self.bad = self._store(BAD_CODE, False, [("syntax", True, "ok"),
                                                 ("allow-list", False, "name 'open' is not allowed"),
                                                 ("members", False, "start is missing")])

    def _store(self, code: str, valid: bool, checks: list[tuple[str, bool, str]]) -> codegen_pb2.Artifact:
        sha = hashlib.sha256(code.encode()).hexdigest()
        art = codegen_pb2.Artifact(
            sha256=sha, kind=codegen_pb2.TASK_POLICY, code=code,
            validation=codegen_pb2.ValidationReport(
                valid=valid, checks=[codegen_pb2.ValidationCheck(name=n, passed=p, detail=d) for n, p, d in checks],
                sandbox_output="" if valid else "Traceback: NameError: open"))
        self.artifacts[sha] = art
        return art

    def ComposeTask(self, request: Any, context: grpc.ServicerContext) -> Any:
        art = self.good if "mines" in request.prompt.lower() else self.bad
        return codegen_pb2.GenerationResult(artifact=art, attempts=4)

    def GetArtifact(self, request: Any, context: grpc.ServicerContext) -> Any:
        if request.sha256 not in self.artifacts:
            context.abort(grpc.StatusCode.NOT_FOUND, "no such artifact")
        return self.artifacts[request.sha256]


@pytest.fixture(scope="module")
def codegen() -> Iterator[tuple[str, FakeCodegen]]:
    server = grpc.server(futures.ThreadPoolExecutor(4))
    fake = FakeCodegen()
    codegen_pb2_grpc.add_CodegenServicer_to_server(fake, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}", fake
    server.stop(0)


@pytest.fixture(scope="module")
def agent(checkpoint: Path, codegen: tuple[str, FakeCodegen]) -> Iterator[Any]:
    with running(SPEC, auth_token=TOKEN, checkpoint=checkpoint, codegen_address=codegen[0],
                 max_episodes_per_caller=1, max_evaluate_episodes=4) as svc:
        yield svc


def _client(agent: Any, token: str | None = TOKEN) -> AgentClient:
    return AgentClient(agent.address, options=ClientOptions(deadline_s=60.0, auth_token=token))


def _metrics(agent: Any) -> str:
    return urllib.request.urlopen(f"http://127.0.0.1:{agent.metrics_port}/metrics", timeout=5).read().decode()


def _wait(cond: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return cond()


def test_unauthenticated_calls_are_rejected(agent: Any) -> None:
    for token in (None, "wrong"):
        with _client(agent, token) as c:
            with pytest.raises(grpc.RpcError) as err:
                c.info()
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
            with pytest.raises(grpc.RpcError) as err:
                list(c.play({"task_name": "gnomish"}, max_steps=5))
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with _client(agent) as c:
        info = c.info()
    assert info.service == "agent" and "gnomish" in info.details["tasks"]


def test_play_streams_steps_switches_messages_and_the_end(agent: Any) -> None:
    with _client(agent) as c:
        events = list(c.play({"task_name": "gnomish"}, seed=3, max_steps=40, step_event_every=1))
    kinds = [e.WhichOneof("event") for e in events]
    assert kinds[-1] == "end" and kinds.count("end") == 1
    steps = [e.step for e in events if e.HasField("step")]
    end = events[-1].end
    assert [s.step for s in steps] == list(range(1, end.steps + 1))
    assert all(len(s.screen.splitlines()) == 24 for s in steps)
    assert "Agent the" in steps[0].screen or "Dlvl" in steps[0].screen  # the status lines
    assert end.reason in ("success", "death", "step_limit") and sum(end.skill_steps) == end.steps
    assert any(e.HasField("message") for e in events)  # the welcome or later messages
    # the same seed replays the same game: the reference policy's first selection comes at the same step
    with _client(agent) as c:
        again = [e for e in c.play({"task_name": "gnomish"}, seed=3, max_steps=40) if not e.HasField("step")]
    assert again[0] == [e for e in events if not e.HasField("step")][0]


def test_bad_requests_name_the_field(agent: Any) -> None:
    with _client(agent) as c:
        for task, text in (({"task_name": "nope"}, "task.task_name"), ({}, "task: set"),
                           ({"artifact_sha256": "abc"}, "artifact_sha256")):
            with pytest.raises(grpc.RpcError) as err:
                list(c.play(task, max_steps=5))
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and text in err.value.details()


def _long_seed(c: AgentClient, task: str, min_steps: int) -> int:
    """A seed whose episode lasts at least ``min_steps`` (a seed replays the same game and actions)."""
    for seed in range(30):
        end = list(c.play({"task_name": task}, seed=seed, max_steps=10_000, step_event_every=0))[-1].end
        if end.steps >= min_steps:
            return seed
    raise AssertionError(f"no {task} episode of {min_steps} steps in 30 seeds")


def test_cancelled_stream_frees_its_env_and_the_callers_slot(agent: Any) -> None:
    servicer = agent.service.ctx.agent
    with _client(agent) as c:
        seed = _long_seed(c, "transactions", 100)
        stream = c.play({"task_name": "transactions"}, seed=seed, max_steps=10_000, step_event_every=1)
        first = next(stream)
        assert first.WhichOneof("event") in ("step", "message", "skill_switch")
        assert servicer.open_envs == 1
        # the per-caller bound (1 here): a second episode of the same caller is refused
        with pytest.raises(grpc.RpcError) as err:
            list(c.play({"task_name": "gnomish"}, max_steps=5))
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "limit" in err.value.details()
        with pytest.raises(grpc.RpcError) as err:
            c.evaluate({"task_name": "gnomish"}, episodes=1, max_steps=5)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert servicer.open_envs == 1  # still playing: the refusals were the bound, not a finished episode
        stream.cancel()
        assert _wait(lambda: servicer.open_envs == 0 and servicer.slots.open() == 0), "env not freed after cancel"
        # the slot is free again
        events = list(c.play({"task_name": "gnomish"}, max_steps=5, step_event_every=0))
        assert events[-1].end.steps <= 5
    text = _metrics(agent)
    assert 'maestromotif_agent_rejected_total{reason="caller_limit"} 2.0' in text
    assert _wait(lambda: 'maestromotif_agent_episodes_total{outcome="cancelled",task="transactions"} 1.0' in _metrics(agent))
    assert "maestromotif_agent_active_episodes 0.0" in _metrics(agent)


def test_evaluate_reports_rates_with_intervals(agent: Any) -> None:
    with _client(agent) as c:
        r = c.evaluate({"task_name": "gnomish"}, episodes=3, seed=2, max_steps=20)
        assert r.episodes == 3 and r.metric == "success"
        assert 0.0 <= r.success_ci_low <= r.success_rate <= r.success_ci_high <= 1.0
        assert r.success_ci_high > 0  # Wilson: never a zero-width interval at 0 successes
        counts = c.evaluate({"task_name": "transactions"}, episodes=2, max_steps=20)
        assert counts.metric == "count" and counts.mean_count >= 0 and counts.mean_steps <= 20
        with pytest.raises(grpc.RpcError) as err:
            c.evaluate({"task_name": "gnomish"}, episodes=5)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "episodes" in err.value.details()
    assert 'maestromotif_agent_task_success_ratio{task="gnomish"}' in _metrics(agent)


def test_compose_without_a_valid_policy_returns_the_codegen_report(agent: Any) -> None:
    with _client(agent) as c:
        with pytest.raises(AgentCallError) as err:
            c.compose("juggle three cockatrices")
        assert err.value.code == grpc.StatusCode.FAILED_PRECONDITION
        assert "no valid policy" in str(err.value) and "allow-list: name 'open' is not allowed" in str(err.value)
        report = err.value.result
        assert report is not None and not report.artifact.validation.valid and report.attempts == 4
        assert "NameError" in str(err.value)  # the sandbox output travels too
        # a valid one comes back, and plays with a built-in detector
        art = c.compose("get into the gnomish mines")
        assert art.validation.valid
        events = list(c.play({"artifact_sha256": art.sha256, "detector_task": "gnomish"}, max_steps=10,
                             step_event_every=0))
        assert events[-1].end.steps <= 10
    raw = agent_pb2_grpc.AgentStub(agent.channel)
    with pytest.raises(grpc.RpcError) as e2:
        raw.ComposeTask(codegen_pb2.ComposeTaskRequest(prompt="x" * 5000))
    assert e2.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert generation_result_of(e2.value) is None


def test_play_cli_renders_frames_from_a_real_stream(agent: Any, tmp_path: Path) -> None:
    # The token comes from the environment or a file, never from the command line.
    res = CliRunner().invoke(app, ["play", "--task", "gnomish", "--seed", "4", "--address", agent.address,
                                   "--max-steps", "12", "--every", "4", "--plain"],
                             env={"MAESTROMOTIF_AGENT_TOKEN": TOKEN})
    assert res.exit_code == 0, res.output
    assert res.output.count("gnomish | seed 4 | step") >= 3  # frames at steps 4, 8, 12 (or the end)
    assert "episode over" in res.output and "skill" in res.output
    (tmp_path / "token").write_text(TOKEN + "\n")
    res = CliRunner().invoke(app, ["play", "--task", "juggle three cockatrices", "--address", agent.address,
                                   "--token-file", str(tmp_path / "token"), "--plain"])
    assert res.exit_code == 1 and "no valid policy" in res.output


def test_service_is_discoverable() -> None:
    from maestromotif.kit.server import available_services, load_spec

    assert "agent" in available_services() and "actors" in available_services()
    spec = load_spec("agent")
    assert (spec.default_port, spec.default_metrics_port) == (50056, 9096)
    import os

    os.environ["MAESTROMOTIF_AGENT_MAX_EPISODES_PER_CALLER"] = "7"
    try:
        assert spec.load_config().max_episodes_per_caller == 7  # the MAESTROMOTIF_AGENT_ prefix
    finally:
        del os.environ["MAESTROMOTIF_AGENT_MAX_EPISODES_PER_CALLER"]


def test_inference_from_the_learner_in_serve_mode(checkpoint: Path) -> None:
    from services.learner.server import SPEC as LEARNER

    ckpt = sorted((checkpoint / "checkpoint_p0").glob("checkpoint_*.pth"))[-1]
    with running(LEARNER, mode="serve", checkpoint=ckpt) as ln:
        with running(SPEC, inference="learner", learner_address=ln.address) as ag:
            with AgentClient(ag.address) as c:
                assert c.info().details["learner_address"] == ln.address
                events = list(c.play({"task_name": "gnomish"}, seed=1, max_steps=15, step_event_every=5))
                end = events[-1].end
                assert end.steps <= 15 and [e.step.step for e in events if e.HasField("step")] == [
                    s for s in (5, 10, 15) if s <= end.steps]
                r = c.evaluate({"task_name": "delphi"}, episodes=2, max_steps=10)
                assert r.episodes == 2 and r.metric == "success"
