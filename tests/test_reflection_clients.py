"""Every RPC of every service, called the way a new user's generic tool calls it.

grpcurl and reflection clients such as grpc-requests learn the API from server reflection and
set no deadline unless asked. A handler that turns the call's remaining time into a timeout
then waits on "forever", which overflowed ``time_t`` and answered INTERNAL (issue 15.1).
Here each RPC is called with an empty (default) message, once without a deadline and once with
a short one: the answer must be a deliberate status, never INTERNAL or UNKNOWN, and the
server must still be SERVING afterwards.
"""

from __future__ import annotations

import base64
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from grpc_requests.client import ReflectionClient

sys.path.insert(0, str(Path(__file__).parent / "llm"))
from tgi_double import TGIDouble  # noqa: E402

from maestromotif.kit import available_services, load_spec
from maestromotif.kit.client import check_health
from maestromotif.kit.testing import LocalService, running

# Services that answer standard reflection/health; their methods are not ours to test here.
_STANDARD = ("grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection", "grpc.reflection.v1.ServerReflection")
# A deliberate answer: anything but a crash inside the handler.
_BAD = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}
SHORT_DEADLINE_S = 0.05


def _overrides(name: str, tmp: Path, started: dict[str, Any]) -> dict[str, Any]:
    """The cheapest real configuration of each service (peers, and the LLM double as "llm", started before it)."""
    if name == "reward":
        return {"init_random": True, "threads": 1}
    if name == "learner":
        return {"reward_address": started["reward"].address, "train_dir": str(tmp / "runs"), "preset": "small",
                "batch_size": 256}
    if name == "actors":
        return {"learner_address": started["learner"].address, "processes": 1, "envs_per_process": 2, "seed": 3}
    if name == "annotator":
        return {"data_root": str(tmp / "annotator")}
    if name == "codegen":
        # The LLM is a loopback TGI double answering prose without code: generation RPCs then
        # finish in moments (no code, a failed validation) instead of minutes of real generation.
        return {"backend": "tgi", "llm_url": started["llm"].url, "llm_timeout_s": 10.0,
                "store_dir": str(tmp / "artifacts")}
    if name == "agent":
        return {"checkpoint": str(tmp / "no-checkpoint-yet"), "codegen_address": started["codegen"].address,
                "learner_address": started["learner"].address}
    raise KeyError(name)



# Peers first, so that each service finds what it calls.
_ORDER = ("reward", "learner", "actors", "annotator", "codegen", "agent")


@contextmanager
def _all_services(tmp: Path) -> Iterator[dict[str, LocalService]]:
    names = sorted(available_services(), key=lambda n: (_ORDER.index(n) if n in _ORDER else 99, n))
    started: dict[str, Any] = {}
    with ExitStack() as stack:
        started["llm"] = stack.enter_context(TGIDouble(reply="I would pick the discoverer first."))
        for name in names:
            try:
                overrides = _overrides(name, tmp, started)
            except KeyError:
                pytest.fail(f"service {name!r} has no start recipe in this test: every service must be covered")
            started[name] = stack.enter_context(running(load_spec(name), **overrides))
        yield {k: v for k, v in started.items() if k != "llm"}


def _call(client: ReflectionClient, service: str, method: str, timeout: float | None) -> grpc.StatusCode:
    meta = client.get_method_meta(service, method)
    kwargs: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
    request: Any = {} if meta.method_type.is_unary_request else iter([{}])
    try:
        result = client.request(service, method, request, **kwargs)
        if not meta.method_type.is_unary_response:
            # A stream that stays open must still end by itself (empty input) or by the deadline.
            for _ in result:
                pass
    except grpc.RpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def test_every_rpc_from_a_reflection_client_with_and_without_deadline(tmp_path: Path) -> None:
    with _all_services(tmp_path) as started:
        called: list[str] = []
        for name, svc in started.items():
            client = ReflectionClient(svc.address)
            try:
                ours = [s for s in client.service_names if s not in _STANDARD]
                for service in ours:
                    for method in client.get_methods_meta(service):
                        for timeout in (None, SHORT_DEADLINE_S):
                            code = _call(client, service, method, timeout)
                            assert code not in _BAD, f"{service}/{method} (deadline {timeout}): {code}"
                            called.append(f"{service}/{method}@{timeout}")
            finally:
                client.channel.close()
            assert check_health(svc.channel) == 1, f"{name} stopped SERVING"  # 1 = SERVING
        # every contract in protos/ that a running service implements was exercised
        assert any(c.startswith("maestromotif.v1.Reward/Score@None") for c in called)
        assert any(c.startswith("maestromotif.v1.Learner/Act@None") for c in called)


def test_reward_score_without_deadline_answers(tmp_path: Path) -> None:
    """The reported bug itself: a valid Score with no deadline scored, not INTERNAL."""
    with running(load_spec("reward"), init_random=True, threads=1) as svc:
        client = ReflectionClient(svc.address)
        try:
            n = 3
            message = np.zeros((n, 256), dtype=np.uint8)
            message[:, :5] = np.frombuffer(b"Hello", dtype=np.uint8)

            def b64(a: np.ndarray) -> str:
                return base64.b64encode(np.ascontiguousarray(a).tobytes()).decode()

            reply = client.request("maestromotif.v1.Reward", "Score", {
                "count": n,
                "skills": b64(np.arange(n, dtype=np.uint8)),
                "messages": b64(message),
                "stat_changes": b64(np.zeros((n, 5), dtype="<f4")),
                "message_counts": b64(np.ones(n, dtype="<f4")),
            })  # no timeout: the way grpc-requests and grpcurl call by default
        finally:
            client.channel.close()
        raw = np.frombuffer(base64.b64decode(reply["raw_rewards"]), "<f4")
        assert raw.shape == (n * 5,) and np.isfinite(raw).all()
        assert reply["model_version"]
