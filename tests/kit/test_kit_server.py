"""A real kit server on 127.0.0.1: health, reflection, metrics, auth, size limits, deadlines, TLS, retries."""

from __future__ import annotations

import io
import json
import logging
import re
import threading
import urllib.request
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from kit_testsvc.echo.server import SERVICE, SPEC

from maestromotif.kit import ClientOptions, make_channel, start
from maestromotif.kit.logging import configure_logging
from maestromotif.kit.testing import running

SERVING = health_pb2.HealthCheckResponse.SERVING


def call(channel: grpc.Channel, method: str, payload: bytes = b"", **kw: object) -> bytes:
    return channel.unary_unary(f"/{SERVICE}/{method}")(payload, **kw)


def metrics_text(port: int | None) -> tuple[str, str]:
    assert port
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        return resp.read().decode(), resp.headers.get("Content-Type", "")


def sample(text: str, name: str, **labels: str) -> float | None:
    """Value of one Prometheus sample whose labels include ``labels``."""
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        got = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
        if all(got.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_health_reflection_and_metrics() -> None:
    with running(SPEC) as svc:
        health = health_pb2_grpc.HealthStub(svc.channel)
        assert health.Check(health_pb2.HealthCheckRequest()).status == SERVING
        assert health.Check(health_pb2.HealthCheckRequest(service=SERVICE)).status == SERVING
        with pytest.raises(grpc.RpcError) as err:
            health.Check(health_pb2.HealthCheckRequest(service="no.such.Service"))
        assert err.value.code() == grpc.StatusCode.NOT_FOUND

        refl = reflection_pb2_grpc.ServerReflectionStub(svc.channel)
        replies = list(refl.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")])))
        names = {s.name for s in replies[0].list_services_response.service}
        assert {SERVICE, "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= names

        assert call(svc.channel, "Echo", b"abc") == b"abc"
        text, ctype = metrics_text(svc.metrics_port)
        assert ctype.startswith("text/plain")
        assert "# TYPE maestromotif_grpc_server_requests_total counter" in text
        assert sample(text, "maestromotif_grpc_server_requests_total", grpc_method="Echo", grpc_code="OK") == 1.0
        assert sample(text, "maestromotif_grpc_server_handling_seconds_count", grpc_method="Echo") == 1.0


def test_reflection_serves_real_descriptors() -> None:
    """A service registered through generated stubs is fully described by reflection."""
    from maestromotif.kit import ServiceConfig, ServiceSpec
    from maestromotif.v1 import reward_pb2_grpc

    def build(config: ServiceConfig, ctx: object) -> None:
        reward_pb2_grpc.add_RewardServicer_to_server(reward_pb2_grpc.RewardServicer(), ctx.server)  # type: ignore[attr-defined]

    spec = ServiceSpec(name="rewardish", config_cls=ServiceConfig, build=build, default_port=0, default_metrics_port=0)
    with running(spec) as svc:
        refl = reflection_pb2_grpc.ServerReflectionStub(svc.channel)
        req = reflection_pb2.ServerReflectionRequest(file_containing_symbol="maestromotif.v1.Reward")
        reply = next(iter(refl.ServerReflectionInfo(iter([req]))))
        assert reply.file_descriptor_response.file_descriptor_proto, reply
        assert svc.service.service_names == ["maestromotif.v1.Reward"]


def test_auth_rejects_missing_and_wrong_token() -> None:
    with running(SPEC, auth_token="right-token") as svc:
        for token in (None, "wrong-token"):
            ch = make_channel(svc.address, ClientOptions(auth_token=token, deadline_s=10))
            with pytest.raises(grpc.RpcError) as err:
                call(ch, "Echo", b"x")
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
            # Probes need no token.
            assert health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest()).status == SERVING
            ch.close()
        assert call(svc.channel, "Echo", b"x") == b"x"  # svc.channel carries the right token
        text, _ = metrics_text(svc.metrics_port)
        assert sample(text, "maestromotif_grpc_server_auth_failures_total", grpc_method="Echo") == 2.0
        assert (
            sample(text, "maestromotif_grpc_server_requests_total", grpc_method="Echo", grpc_code="UNAUTHENTICATED")
            == 2.0
        )


def test_oversized_request_is_refused_and_server_keeps_serving() -> None:
    with running(SPEC, max_message_bytes=64 * 1024) as svc:
        big_client = make_channel(svc.address, ClientOptions(max_message_bytes=4 * 1024 * 1024, deadline_s=10))
        with pytest.raises(grpc.RpcError) as err:
            call(big_client, "Echo", b"x" * (200 * 1024))
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert call(big_client, "Echo", b"y" * 1000) == b"y" * 1000
        big_client.close()
        # The client helper bounds what it sends too: it refuses before the wire.
        small_client = make_channel(svc.address, ClientOptions(max_message_bytes=32 * 1024, deadline_s=10))
        with pytest.raises(grpc.RpcError) as err:
            call(small_client, "Echo", b"x" * (40 * 1024))
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        small_client.close()
        assert call(svc.channel, "Echo", b"still ok") == b"still ok"


def test_deadlines_default_and_explicit() -> None:
    with running(SPEC) as svc:
        # No timeout given: the client's default deadline applies.
        short = make_channel(svc.address, ClientOptions(deadline_s=0.2))
        with pytest.raises(grpc.RpcError) as err:
            call(short, "Slow", b"1000")
        assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        # An explicit timeout wins over the default.
        with pytest.raises(grpc.RpcError) as err:
            call(svc.channel, "Slow", b"1000", timeout=0.2)
        assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert call(short, "Slow", b"0", timeout=10) == b"done"
        short.close()


def test_retries_transient_only() -> None:
    with running(SPEC, flaky_failures=2) as svc:
        # UNAVAILABLE twice, then success: the caller sees only the success.
        assert call(svc.channel, "Flaky", b"k1") == b"k1"
        # RESOURCE_EXHAUSTED is not transient: exactly one attempt.
        with pytest.raises(grpc.RpcError) as err:
            call(svc.channel, "Exhausted")
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        # With retries off (max_attempts=1) the first UNAVAILABLE reaches the caller.
        once = make_channel(svc.address, ClientOptions(max_attempts=1, deadline_s=10))
        with pytest.raises(grpc.RpcError) as err:
            call(once, "Flaky", b"k2")
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        once.close()
        text, _ = metrics_text(svc.metrics_port)
        m = "maestromotif_grpc_server_requests_total"
        assert sample(text, m, grpc_method="Flaky", grpc_code="UNAVAILABLE") == 3.0  # 2 for k1, 1 for k2
        assert sample(text, m, grpc_method="Flaky", grpc_code="OK") == 1.0
        assert sample(text, m, grpc_method="Exhausted", grpc_code="RESOURCE_EXHAUSTED") == 1.0


def test_request_id_propagates_and_is_validated() -> None:
    with running(SPEC) as svc:
        fn = svc.channel.unary_unary(f"/{SERVICE}/Log")
        reply, call_ = fn.with_call(b"p", metadata=(("x-request-id", "abc-123"),))
        assert reply == b"abc-123"
        assert ("x-request-id", "abc-123") in tuple(call_.trailing_metadata())
        reply = fn(b"p", metadata=(("x-request-id", "bad id with spaces"),))
        assert reply and reply != b"bad id with spaces" and re.fullmatch(rb"[0-9a-f]{32}", reply)


def test_json_logs_carry_service_and_request_id() -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    old_level = root.level
    configure_logging("echo", "INFO", "json", stream=stream)
    try:
        with running(SPEC) as svc:
            fn = svc.channel.unary_unary(f"/{SERVICE}/Log")
            fn(b"hello", metadata=(("x-request-id", "rid-42"),))
    finally:
        for h in list(root.handlers):
            if getattr(h, "_maestromotif", False):
                root.removeHandler(h)
        root.setLevel(old_level)
    records = [json.loads(line) for line in stream.getvalue().splitlines()]
    handled = [r for r in records if r["msg"] == "handling"]
    assert handled and handled[0]["request_id"] == "rid-42"
    assert handled[0]["service"] == "echo" and handled[0]["payload"] == "hello"
    assert any(r["msg"] == "serving" and r["port"] for r in records)


def test_tls(self_signed: tuple[Path, Path]) -> None:
    cert, key = self_signed
    with running(SPEC, tls_cert_file=str(cert), tls_key_file=str(key)) as svc:
        assert svc.address.startswith("127.0.0.1:")
        assert call(svc.channel, "Echo", b"secure") == b"secure"  # TLS channel trusting the cert
        plain = make_channel(svc.address, ClientOptions(deadline_s=2, max_attempts=1))
        with pytest.raises(grpc.RpcError) as err:
            call(plain, "Echo", b"x")
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        plain.close()
        # TLS plus token: both are enforced together.
    with running(SPEC, tls_cert_file=str(cert), tls_key_file=str(key), auth_token="t0k") as svc:
        ok = make_channel(svc.address, ClientOptions(tls_ca_file=cert, auth_token="t0k", deadline_s=10))
        assert call(ok, "Echo", b"both") == b"both"
        bad = make_channel(svc.address, ClientOptions(tls_ca_file=cert, deadline_s=10))
        with pytest.raises(grpc.RpcError) as err:
            call(bad, "Echo", b"x")
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        ok.close()
        bad.close()


def test_in_process_graceful_stop_drains_in_flight_call() -> None:
    svc = start(SPEC, overrides={"port": 0, "metrics_port": 0, "grace_s": 20})
    ch = make_channel(svc.address, ClientOptions(deadline_s=30))
    result: dict[str, object] = {}

    def slow() -> None:
        try:
            result["reply"] = call(ch, "Slow", b"800")
        except grpc.RpcError as exc:  # pragma: no cover - reported by the assert below
            result["error"] = exc.code()

    t = threading.Thread(target=slow)
    t.start()
    # Wait until the call is in flight on the server (metrics gauge), not a fixed sleep.
    for _ in range(500):
        text, _ = metrics_text(svc.metrics_port)
        if sample(text, "maestromotif_grpc_server_in_flight", grpc_method="Slow") == 1.0:
            break
        threading.Event().wait(0.01)
    health = health_pb2_grpc.HealthStub(ch)
    stopper = threading.Thread(target=svc.stop)
    stopper.start()
    stopper.join(30)
    t.join(30)
    assert result == {"reply": b"done"}
    assert svc.ctx.stopping.is_set()
    with pytest.raises(grpc.RpcError) as err:
        health.Check(health_pb2.HealthCheckRequest(), timeout=2)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    ch.close()


def test_cleanups_run_on_stop() -> None:
    from maestromotif.kit import ServiceConfig, ServiceSpec

    calls: list[str] = []

    def build(config: ServiceConfig, ctx: object) -> list:
        return [lambda: calls.append("a"), lambda: calls.append("b")]

    spec = ServiceSpec(name="cleaner", config_cls=ServiceConfig, build=build, default_port=0, default_metrics_port=0)
    with running(spec, metrics_enabled=False) as svc:
        assert svc.metrics_port is None
    assert calls == ["b", "a"]


def test_port_in_use_is_a_clear_error() -> None:
    from maestromotif.kit import ConfigError

    with running(SPEC) as svc:
        with pytest.raises(ConfigError, match=r"metrics_port: cannot bind"):
            start(SPEC, overrides={"port": 0, "metrics_port": svc.metrics_port})


def test_readiness_controlled_by_the_service() -> None:
    from maestromotif.kit import ServiceConfig, ServiceSpec

    contexts: list = []

    def build(config: ServiceConfig, ctx: object) -> None:
        contexts.append(ctx)

    spec = ServiceSpec(
        name="lazy", config_cls=ServiceConfig, build=build, default_port=0, default_metrics_port=0, ready_on_start=False
    )
    with running(spec, metrics_enabled=False) as svc:
        health = health_pb2_grpc.HealthStub(svc.channel)
        assert health.Check(health_pb2.HealthCheckRequest()).status == health_pb2.HealthCheckResponse.NOT_SERVING
        contexts[0].set_serving(True)
        assert health.Check(health_pb2.HealthCheckRequest()).status == SERVING


def test_peer_channel_carries_token_and_deadline() -> None:
    """ctx.peer_channel: a service calling a peer that requires the shared token."""
    with running(SPEC, auth_token="shared") as peer:
        caller_cfg = SPEC.load_config(overrides={"auth_token": "shared", "peer_deadline_s": 0.3, "port": 0})
        from maestromotif.kit.client import ClientOptions as CO

        opts = CO.for_peer(caller_cfg)
        assert opts.auth_token == "shared" and opts.deadline_s == 0.3
        ch = make_channel(peer.address, opts)
        assert call(ch, "Echo", b"hi") == b"hi"
        with pytest.raises(grpc.RpcError) as err:
            call(ch, "Slow", b"2000")  # the peer deadline applies
        assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        ch.close()


def test_client_options_validation() -> None:
    with pytest.raises(ValueError, match="deadline_s"):
        ClientOptions(deadline_s=0)
    with pytest.raises(ValueError, match="max_attempts"):
        ClientOptions(max_attempts=9)
    with pytest.raises(ValueError, match="host:port"):
        make_channel("no-port")


def test_wait_for_ready_rides_out_a_late_server() -> None:
    """A call with wait_for_ready waits for a server that starts after the call was made."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ch = make_channel(f"127.0.0.1:{port}", ClientOptions(deadline_s=30, wait_for_ready=True))
    result: dict[str, object] = {}
    t = threading.Thread(target=lambda: result.setdefault("r", call(ch, "Echo", b"late")))
    t.start()
    threading.Event().wait(0.3)
    svc = start(SPEC, overrides={"port": port, "metrics_enabled": False})
    try:
        t.join(30)
        assert result == {"r": b"late"}
    finally:
        svc.stop(grace=0)
        ch.close()


def test_unknown_method_is_unimplemented_and_not_labelled() -> None:
    with running(SPEC, auth_token="tok") as svc:
        anon = make_channel(svc.address, ClientOptions(deadline_s=10))
        with pytest.raises(grpc.RpcError) as err:
            call(anon, "NoSuchMethod")
        assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
        anon.close()
        text, _ = metrics_text(svc.metrics_port)
        assert "NoSuchMethod" not in text
