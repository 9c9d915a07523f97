"""Server interceptors: bearer-token auth, request ids, per-method metrics and logs.

Health (``grpc.health.v1.Health``) and reflection are exempt from auth so that
probes (kubelet, grpc_health_probe, load balancers) work without the token;
they reveal only liveness and the public API schema.
"""

from __future__ import annotations

import hmac
import logging
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from maestromotif.kit.logging import new_request_id, request_id_var

log = logging.getLogger("maestromotif.kit.rpc")

AUTH_EXEMPT_PREFIXES = (
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
)
REQUEST_ID_KEY = "x-request-id"
_REQUEST_ID_OK = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
# Codes that point at a server fault rather than a caller's mistake: logged as errors.
_SERVER_FAULTS = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL, grpc.StatusCode.DATA_LOSS}
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class RpcMetrics:
    """The kit's ``maestromotif_grpc_server_*`` metrics, on one service's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "maestromotif_grpc_server_requests",
            "gRPC calls handled, by method and status code.",
            ["grpc_service", "grpc_method", "grpc_code"],
            registry=registry,
        )
        self.latency = Histogram(
            "maestromotif_grpc_server_handling_seconds",
            "Time from the start of a call to its status (streams: whole stream).",
            ["grpc_service", "grpc_method"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.in_flight = Gauge(
            "maestromotif_grpc_server_in_flight",
            "Calls being handled right now.",
            ["grpc_service", "grpc_method"],
            registry=registry,
        )
        self.auth_failures = Counter(
            "maestromotif_grpc_server_auth_failures",
            "Calls refused with UNAUTHENTICATED.",
            ["grpc_service", "grpc_method"],
            registry=registry,
        )


def _split(full_method: str) -> tuple[str, str]:
    # "/pkg.Service/Method" -> ("pkg.Service", "Method")
    parts = full_method.lstrip("/").split("/", 1)
    return (parts[0], parts[1]) if len(parts) == 2 else (full_method, "")


def _abort_handler(code: grpc.StatusCode, details: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """A handler of the same kind as ``handler`` that only aborts."""

    def abort(request_or_iterator: Any, context: grpc.ServicerContext) -> Any:
        context.abort(code, details)

    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(abort)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(abort)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(abort)
    return grpc.unary_unary_rpc_method_handler(abort)


class AuthInterceptor(grpc.ServerInterceptor):
    """Refuses calls whose ``authorization`` metadata is not ``Bearer <token>``."""

    def __init__(self, token: str, metrics: RpcMetrics | None = None) -> None:
        self._expected = f"Bearer {token}".encode()
        self._metrics = metrics

    def intercept_service(self, continuation: Callable, handler_call_details: grpc.HandlerCallDetails) -> Any:
        method = handler_call_details.method
        if method.startswith(AUTH_EXEMPT_PREFIXES):
            return continuation(handler_call_details)
        got = ""
        for key, value in handler_call_details.invocation_metadata or ():
            if key == "authorization":
                got = value if isinstance(value, str) else value.decode("latin-1")
                break
        # Constant-time comparison: the token must not leak through timing.
        if got and hmac.compare_digest(got.encode("utf-8", "replace"), self._expected):
            return continuation(handler_call_details)
        handler = continuation(handler_call_details)
        if handler is None:
            # Unknown method: UNIMPLEMENTED, as without auth. Reflection publishes the schema anyway,
            # and labelling metrics by arbitrary unauthenticated method names would be unbounded.
            return None
        if self._metrics is not None:
            self._metrics.auth_failures.labels(*_split(method)).inc()
        reason = "missing bearer token" if not got else "invalid bearer token"
        log.info("refused call", extra={"method": method, "reason": reason})
        return _abort_handler(grpc.StatusCode.UNAUTHENTICATED, reason, handler)


class ObservabilityInterceptor(grpc.ServerInterceptor):
    """Request id context, per-method counters/latency/in-flight gauges and a log line per failed call."""

    def __init__(self, metrics: RpcMetrics) -> None:
        self._metrics = metrics

    def intercept_service(self, continuation: Callable, handler_call_details: grpc.HandlerCallDetails) -> Any:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        service, name = _split(method)
        rid = None
        for key, value in handler_call_details.invocation_metadata or ():
            if key == REQUEST_ID_KEY:
                value = value if isinstance(value, str) else value.decode("latin-1")
                # An id from the wire is untrusted: accept only a short, plain token.
                rid = value if _REQUEST_ID_OK.match(value) else None
                break
        metrics = self._metrics

        def begin(context: grpc.ServicerContext) -> tuple[Any, float, str]:
            request_id = rid or new_request_id()
            token = request_id_var.set(request_id)
            metrics.in_flight.labels(service, name).inc()
            try:
                context.set_trailing_metadata(((REQUEST_ID_KEY, request_id),))
            except Exception:  # noqa: BLE001 - metadata is best-effort
                pass
            return token, time.perf_counter(), request_id

        def end(context: grpc.ServicerContext, state: tuple[Any, float, str], exc: BaseException | None) -> None:
            token, started, request_id = state
            elapsed = time.perf_counter() - started
            code = _code_of(context, exc)
            metrics.in_flight.labels(service, name).dec()
            metrics.requests.labels(service, name, code.name).inc()
            metrics.latency.labels(service, name).observe(elapsed)
            if code in _SERVER_FAULTS:
                log.error(
                    "call failed",
                    exc_info=exc if exc is not None and not _is_abort(exc) else None,
                    extra={"method": method, "code": code.name, "seconds": round(elapsed, 6)},
                )
            elif code != grpc.StatusCode.OK:
                log.info("call ended", extra={"method": method, "code": code.name, "seconds": round(elapsed, 6)})
            else:
                log.debug("call ok", extra={"method": method, "seconds": round(elapsed, 6)})
            request_id_var.reset(token)

        streaming_request = bool(handler.request_streaming)

        def checked(request: Any, context: grpc.ServicerContext) -> Any:
            if not streaming_request:
                if isinstance(request, _Undecodable):
                    context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.reason)
                return request
            return _checked_stream(request, context)

        def wrap_unary_response(fn: Callable) -> Callable:
            def wrapped(request: Any, context: grpc.ServicerContext) -> Any:
                state = begin(context)
                exc: BaseException | None = None
                try:
                    return fn(checked(request, context), context)
                except BaseException as e:
                    exc = e
                    raise
                finally:
                    end(context, state, exc)

            return wrapped

        def wrap_stream_response(fn: Callable) -> Callable:
            def wrapped(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                state = begin(context)
                exc: BaseException | None = None
                try:
                    yield from fn(checked(request, context), context)
                except BaseException as e:
                    exc = e
                    raise
                finally:
                    end(context, state, exc)

            return wrapped

        if handler.request_deserializer is not None:
            handler = handler._replace(request_deserializer=_tolerant(handler.request_deserializer))
        if handler.unary_unary:
            return handler._replace(unary_unary=wrap_unary_response(handler.unary_unary))
        if handler.unary_stream:
            return handler._replace(unary_stream=wrap_stream_response(handler.unary_stream))
        if handler.stream_unary:
            return handler._replace(stream_unary=wrap_unary_response(handler.stream_unary))
        if handler.stream_stream:
            return handler._replace(stream_stream=wrap_stream_response(handler.stream_stream))
        return handler


class _Undecodable:
    """Stands for a request whose bytes do not parse, so that the call answers INVALID_ARGUMENT.

    gRPC itself would answer INTERNAL ("Exception deserializing request!") and log a traceback
    for every such message: a caller's mistake reported as a server fault (issue 15.3).
    """

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _tolerant(deserialize: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    def parse(data: bytes) -> Any:
        try:
            return deserialize(data)
        except Exception as exc:  # noqa: BLE001 - any parse failure is the caller's malformed message
            kind = getattr(deserialize, "__qualname__", "").split(".")[0] or "message"
            return _Undecodable(f"request: {len(data)} bytes are not a valid {kind} ({type(exc).__name__})")

    return parse


def _checked_stream(requests: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:
    for request in requests:
        if isinstance(request, _Undecodable):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.reason)
        yield request


def _is_abort(exc: BaseException) -> bool:
    # context.abort() raises a bare Exception after setting the code; it is not a bug to log.
    return type(exc) is Exception


def _code_of(context: grpc.ServicerContext, exc: BaseException | None) -> grpc.StatusCode:
    code = None
    try:
        code = context.code()
    except Exception:  # noqa: BLE001 - older grpc or an unusual context
        code = None
    if isinstance(code, grpc.StatusCode):
        return code
    if exc is not None:
        if isinstance(exc, GeneratorExit):  # client went away mid-stream
            return grpc.StatusCode.CANCELLED
        return grpc.StatusCode.UNKNOWN
    if not context.is_active():
        return grpc.StatusCode.CANCELLED
    return grpc.StatusCode.OK
