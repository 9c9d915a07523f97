"""Bearer tokens on the externally reachable APIs (Agent, Codegen, Annotator), real servers on loopback.

Each RPC the server lists through reflection is called three times with raw (empty) request
bytes: without ``authorization``, with a wrong token (same length, and a prefix of the right
one), and with the right token. The first two must answer UNAUTHENTICATED without reaching the
handler; the third anything else. Health and reflection stay open (kubelet probes,
``grpcurl list``): they reveal only liveness and the public schema.
"""

from __future__ import annotations

import hmac
import re
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_requests.client import ReflectionClient
from tgi_double import TGIDouble

from maestromotif.kit import interceptors, load_spec
from maestromotif.kit.client import ClientOptions, check_health, make_channel
from maestromotif.kit.testing import LocalService, running

TOKEN = "tok-9f8e7d6c5b4a-auth-test"
WRONG = {"wrong": "tok-9f8e7d6c5b4a-auth-tesX", "prefix": TOKEN[:-1], "empty-bearer": ""}
_STANDARD = ("grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection", "grpc.reflection.v1.ServerReflection")


@contextmanager
def _service(name: str, tmp: Path) -> Iterator[LocalService]:
    with TGIDouble(reply="I would pick the discoverer first.") as llm:
        overrides: dict[str, Any] = {
            "annotator": {"data_root": str(tmp / "annotator")},
            "codegen": {"backend": "tgi", "llm_url": llm.url, "llm_timeout_s": 5.0, "store_dir": str(tmp / "art"),
                        "max_repair_rounds": 0},
            # The codegen and learner peers are not running: calls that reach them fail fast, not on auth.
            "agent": {"checkpoint": str(tmp / "none"), "codegen_address": "127.0.0.1:9",
                      "learner_address": "127.0.0.1:9", "peer_deadline_s": 2.0},
        }[name]
        # The token comes from a file, as the chart mounts it (never from the command line).
        token_file = tmp / f"{name}.token"
        token_file.write_text(TOKEN + "\n")
        with running(load_spec(name), client=ClientOptions(deadline_s=10.0), auth_token_file=str(token_file),
                     **overrides) as svc:
            yield svc


def _call(channel: grpc.Channel, path: str, meta: Any, metadata: list[tuple[str, str]]) -> grpc.StatusCode:
    kind = ("stream" if not meta.method_type.is_unary_request else "unary") + "_" + (
        "stream" if not meta.method_type.is_unary_response else "unary")
    method = getattr(channel, kind)(path, request_serializer=None, response_deserializer=None)
    request: Any = b"" if meta.method_type.is_unary_request else iter([b""])
    try:
        result = method(request, metadata=metadata, timeout=5.0)
        if not meta.method_type.is_unary_response:
            for _ in result:
                pass
    except grpc.RpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def _auth_failures(svc: LocalService) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{svc.metrics_port}/metrics", timeout=5).read().decode()
    return sum(float(v) for v in re.findall(r"^maestromotif_grpc_server_auth_failures_total\{[^}]*\} (\S+)$", text, re.M))


@pytest.mark.parametrize("name", ["agent", "codegen", "annotator"])
def test_every_rpc_needs_the_token(name: str, tmp_path: Path) -> None:
    with _service(name, tmp_path) as svc:
        reflection = ReflectionClient(svc.address)  # reflection needs no token
        channel = make_channel(svc.address, ClientOptions(deadline_s=10.0, max_attempts=1))
        try:
            ours = [s for s in reflection.service_names if s not in _STANDARD]
            assert ours, "reflection lists no API"
            methods = [(s, m, reflection.get_method_meta(s, m)) for s in ours for m in reflection.get_methods_meta(s)]
            assert len(methods) >= 3
            for service, method, meta in methods:
                path = f"/{service}/{method}"
                assert _call(channel, path, meta, []) == grpc.StatusCode.UNAUTHENTICATED, path
                for what, wrong in WRONG.items():
                    code = _call(channel, path, meta, [("authorization", f"Bearer {wrong}")])
                    assert code == grpc.StatusCode.UNAUTHENTICATED, (path, what)
                code = _call(channel, path, meta, [("authorization", TOKEN)])  # no "Bearer " scheme
                assert code == grpc.StatusCode.UNAUTHENTICATED, (path, "no scheme")
                code = _call(channel, path, meta, [("authorization", f"Bearer {TOKEN}")])
                assert code not in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.UNIMPLEMENTED), (path, code)
            assert _auth_failures(svc) == 5 * len(methods)
            assert check_health(channel) == 1  # health: open
        finally:
            reflection.channel.close()
            channel.close()


def test_token_is_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """The interceptor's comparison goes through hmac.compare_digest, for right and wrong tokens alike."""
    seen: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        seen.append((a, b))
        return real(a, b)

    monkeypatch.setattr(interceptors.hmac, "compare_digest", spy)
    auth = interceptors.AuthInterceptor(TOKEN)

    class Details:
        method = "/maestromotif.v1.Agent/PlayTask"

        def __init__(self, value: str) -> None:
            self.invocation_metadata = (("authorization", value),)

    handler = grpc.unary_unary_rpc_method_handler(lambda r, c: r)
    assert auth.intercept_service(lambda d: handler, Details(f"Bearer {TOKEN}")) is handler
    assert auth.intercept_service(lambda d: handler, Details(f"Bearer {WRONG['wrong']}")) is not handler
    assert len(seen) == 2 and all(b == f"Bearer {TOKEN}".encode() for _, b in seen)
