"""Client of the Agent API (used by ``maestromotif play`` and scripts)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc

from maestromotif.kit.client import ClientOptions, make_channel
from maestromotif.v1 import agent_pb2, agent_pb2_grpc, codegen_pb2, common_pb2

RESULT_METADATA_KEY = "maestromotif-generation-result-bin"


class AgentCallError(RuntimeError):
    """A call the agent refused, with what it said (and, for ComposeTask, the codegen report)."""

    def __init__(self, message: str, code: grpc.StatusCode, result: codegen_pb2.GenerationResult | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.result = result


def generation_result_of(exc: grpc.RpcError) -> codegen_pb2.GenerationResult | None:
    """The GenerationResult a refused ComposeTask carries in its trailing metadata, if any."""
    for key, value in exc.trailing_metadata() or ():  # type: ignore[attr-defined]
        if key == RESULT_METADATA_KEY:
            return codegen_pb2.GenerationResult.FromString(value)
    return None


class AgentClient:
    """Calls to an agent service; ``compose`` raises AgentCallError with the codegen report."""

    def __init__(self, address: str, *, token: str | None = None, deadline_s: float = 30.0,
                 options: ClientOptions | None = None) -> None:
        self.channel = make_channel(address, options or ClientOptions(deadline_s=deadline_s, auth_token=token))
        self.stub = agent_pb2_grpc.AgentStub(self.channel)

    def info(self) -> common_pb2.ServerInfo:
        return self.stub.GetServerInfo(common_pb2.GetServerInfoRequest())

    def compose(self, prompt: str, *, task_name: str = "", timeout_s: float = 900.0) -> codegen_pb2.Artifact:
        try:
            result = self.stub.ComposeTask(codegen_pb2.ComposeTaskRequest(prompt=prompt, task_name=task_name),
                                           timeout=timeout_s)
        except grpc.RpcError as exc:
            report = generation_result_of(exc)
            text = f"{exc.code().name}: {exc.details()}"  # type: ignore[attr-defined]
            if report is not None and report.artifact.validation.sandbox_output:
                text += "\nsandbox output:\n" + report.artifact.validation.sandbox_output[-2000:]
            raise AgentCallError(text, exc.code(), report) from exc  # type: ignore[attr-defined]
        return result.artifact

    def play(self, task: dict[str, str], *, seed: int = 0, max_steps: int = 10_000, step_event_every: int = 1,
             include_screen: bool = True, timeout_s: float = 24 * 3600.0) -> Iterator[agent_pb2.PlayEvent]:
        """The event stream of one episode (cancel it with ``.cancel()``)."""
        request = agent_pb2.PlayTaskRequest(task=agent_pb2.TaskSelector(**task), seed=seed, max_steps=max_steps,
                                            step_event_every=step_event_every, include_screen=include_screen)
        return self.stub.PlayTask(request, timeout=timeout_s)

    def evaluate(self, task: dict[str, str], *, episodes: int, seed: int = 0, max_steps: int = 10_000,
                 timeout_s: float = 3600.0) -> agent_pb2.EvaluateResponse:
        request = agent_pb2.EvaluateRequest(task=agent_pb2.TaskSelector(**task), episodes=episodes, seed=seed,
                                            max_steps=max_steps)
        return self.stub.Evaluate(request, timeout=timeout_s)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> AgentClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
