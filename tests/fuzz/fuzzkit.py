"""Helpers of the fuzz tests (issue 15.3): raw calls, allowed codes, a tally, memory bounds."""

from __future__ import annotations

import gc
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
import psutil

# A deliberate answer. INTERNAL and UNKNOWN mean a handler crashed (or the framework gave up).
ALLOWED = frozenset({
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DATA_LOSS,  # a stored artifact whose bytes no longer match its hash (codegen, agent)
})
# RSS growth allowed over a whole fuzz module (models and caches are warmed up before measuring).
RSS_BOUND_BYTES = 300 * 1024 * 1024


def open_channel(address: str) -> grpc.Channel:
    """A plain channel without size limits, so that oversized messages reach the server."""
    return grpc.insecure_channel(
        address, options=[("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
    )


def raw_unary(channel: grpc.Channel, method: str, payload: bytes, timeout: float | None = 30.0) -> tuple[grpc.StatusCode, bytes, str]:
    """Send ``payload`` as the serialized request of ``method``; (code, reply bytes, details)."""
    call = channel.unary_unary(method, request_serializer=None, response_deserializer=None)
    try:
        return grpc.StatusCode.OK, call(payload, timeout=timeout), ""
    except grpc.RpcError as exc:
        return exc.code(), b"", exc.details() or ""


def raw_stream(channel: grpc.Channel, method: str, payload: bytes, timeout: float | None = 30.0,
               max_messages: int = 100_000) -> tuple[grpc.StatusCode, int, str]:
    """Send ``payload`` to the server-streaming ``method`` and read it out; (code, messages read, details)."""
    call = channel.unary_stream(method, request_serializer=None, response_deserializer=None)
    n = 0
    try:
        for _ in call(payload, timeout=timeout):
            n += 1
            if n >= max_messages:
                break
        return grpc.StatusCode.OK, n, ""
    except grpc.RpcError as exc:
        return exc.code(), n, exc.details() or ""


def examples(n: int) -> int:
    """``n`` examples, times FUZZ_SCALE (default 1, as in ``make test``; e.g. FUZZ_SCALE=10 for a longer run)."""
    return max(1, round(n * float(os.environ.get("FUZZ_SCALE", "1"))))


def code_of(fn: Callable[[], Any]) -> tuple[grpc.StatusCode, Any, str]:
    """Run one stub call; (code, reply or None, details)."""
    try:
        return grpc.StatusCode.OK, fn(), ""
    except grpc.RpcError as exc:
        return exc.code(), None, exc.details() or ""


@dataclass
class Tally:
    """Status codes seen per RPC, for the assertions and the report."""

    seen: dict[str, dict[str, int]] = field(default_factory=dict)

    def check(self, rpc: str, code: grpc.StatusCode, details: str) -> None:
        bucket = self.seen.setdefault(rpc, {})
        bucket[code.name] = bucket.get(code.name, 0) + 1
        if os.environ.get("FUZZ_VERBOSE") and code != grpc.StatusCode.OK:  # every refusal, with its details
            print("fuzz:", rpc, code.name, details[:200].replace("\n", " "))
        assert code in ALLOWED, f"{rpc}: {code.name} ({details[:300]})"



def rss() -> int:
    gc.collect()
    return psutil.Process().memory_info().rss
