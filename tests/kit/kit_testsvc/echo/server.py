"""A test-only service built with the real kit: raw-bytes Echo and Slow methods.

It uses a generic handler (no proto) so the kit's tests do not depend on any
other service's contract. Slow sleeps the number of milliseconds given as an
ASCII integer in the request, in small steps, and reports whether it finished.
"""

from __future__ import annotations

import time

import grpc
from pydantic import Field

from maestromotif.kit import ServiceConfig, ServiceContext, ServiceSpec

SERVICE = "maestromotif.test.Echo"


class EchoConfig(ServiceConfig):
    greeting: str = Field("hello", min_length=1, max_length=64)
    reward_address: str = "127.0.0.1:50053"


def _echo(request: bytes, context: grpc.ServicerContext) -> bytes:
    return request


def _slow(request: bytes, context: grpc.ServicerContext) -> bytes:
    try:
        ms = int(request.decode() or "0")
    except ValueError:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, "request: expected milliseconds as ASCII digits")
    end = time.monotonic() + ms / 1000.0
    while time.monotonic() < end:
        time.sleep(0.01)
    return b"done"


def build(config: EchoConfig, ctx: ServiceContext) -> None:
    handlers = {
        "Echo": grpc.unary_unary_rpc_method_handler(_echo),
        "Slow": grpc.unary_unary_rpc_method_handler(_slow),
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
