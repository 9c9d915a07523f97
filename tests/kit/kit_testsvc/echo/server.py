"""A test-only service built with the real kit: raw-bytes Echo and Slow methods.

It uses a generic handler (no proto) so the kit's tests do not depend on any
other service's contract. Slow sleeps the number of milliseconds given as an
ASCII integer in the request, in small steps, and reports whether it finished.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import grpc
from pydantic import Field

from maestromotif.kit import ServiceConfig, ServiceContext, ServiceSpec, current_request_id

SERVICE = "maestromotif.test.Echo"


class EchoConfig(ServiceConfig):
    greeting: str = Field("hello", min_length=1, max_length=64)
    reward_address: str = "127.0.0.1:50053"
    flaky_failures: int = Field(2, ge=0, le=10)
    fail_build: bool = False


def _echo(request: bytes, context: grpc.ServicerContext) -> bytes:
    return request


def _begin(request: bytes, context: grpc.ServicerContext) -> int:
    """Milliseconds from ``b"<ms>[,<marker path>]"``; the marker file is created once handling starts,
    so that a test can wait until the server really holds the call."""
    text = request.decode(errors="replace")
    ms_text, _, marker = text.partition(",")
    try:
        ms = int(ms_text or "0")
    except ValueError:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, "request: expected milliseconds as ASCII digits")
    if marker:
        Path(marker).touch()
    return ms


def _slow(request: bytes, context: grpc.ServicerContext) -> bytes:
    ms = _begin(request, context)
    end = time.monotonic() + ms / 1000.0
    while time.monotonic() < end:
        if not context.is_active():  # a cooperative handler: stop work the caller no longer awaits
            return b""
        time.sleep(0.01)
    return b"done"


def _stuck(request: bytes, context: grpc.ServicerContext) -> bytes:
    """Sleeps for the given milliseconds ignoring cancellation: the worst case for shutdown."""
    time.sleep(_begin(request, context) / 1000.0)
    return b"done"


class _Flaky:
    """Answers UNAVAILABLE to the first ``fail_times`` calls per request key, then echoes."""

    def __init__(self, fail_times: int) -> None:
        self.fail_times = fail_times
        self.seen: dict[bytes, int] = {}
        self.lock = threading.Lock()

    def __call__(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        with self.lock:
            n = self.seen[request] = self.seen.get(request, 0) + 1
        if n <= self.fail_times:
            context.abort(grpc.StatusCode.UNAVAILABLE, f"try again ({n})")
        return request


def _exhausted(request: bytes, context: grpc.ServicerContext) -> bytes:
    context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "always exhausted")


def _log(request: bytes, context: grpc.ServicerContext) -> bytes:
    logging.getLogger("kit_testsvc.echo").info("handling", extra={"payload": request.decode(errors="replace")})
    return (current_request_id() or "").encode()


def build(config: EchoConfig, ctx: ServiceContext) -> None:
    if config.fail_build:
        raise RuntimeError("model file missing (test)")
    handlers = {
        "Flaky": grpc.unary_unary_rpc_method_handler(_Flaky(config.flaky_failures)),
        "Exhausted": grpc.unary_unary_rpc_method_handler(_exhausted),
        "Log": grpc.unary_unary_rpc_method_handler(_log),
        "Echo": grpc.unary_unary_rpc_method_handler(_echo),
        "Slow": grpc.unary_unary_rpc_method_handler(_slow),
        "Stuck": grpc.unary_unary_rpc_method_handler(_stuck),
        "Greet": grpc.unary_unary_rpc_method_handler(lambda r, c: config.greeting.encode()),
    }
    ctx.server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))


SPEC = ServiceSpec(
    name="echo",
    config_cls=EchoConfig,
    build=build,
    default_port=50091,
    default_metrics_port=9191,
    description="test echo service",
)
