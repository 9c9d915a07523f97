"""Client channels: a deadline on every call, retries of transient failures, keepalive, auth, TLS.

``make_channel(address, options)`` returns a ``grpc.Channel`` whose every call

- carries a deadline (``options.deadline_s`` unless the caller passes ``timeout=``);
- carries ``authorization: Bearer <token>`` when a token is set, and the current
  request id as ``x-request-id`` (so one id follows a request across services);
- is retried by gRPC's own retry machinery (service config, gRFC A6), with
  jittered exponential backoff, on UNAVAILABLE only. UNAVAILABLE means the
  server did not process the call (connection refused/reset, server draining).
  RESOURCE_EXHAUSTED is *not* retried: it is what an oversized message gets,
  which no retry can fix, and an overloaded server needs less load, not more.
  DEADLINE_EXCEEDED is not retried either: the deadline covers all attempts.

Streams are retried only until the first response arrives (gRPC's rule), so a
long-lived stream that breaks must be re-opened by its owner, with
:func:`backoff` between attempts.
"""

from __future__ import annotations

import collections
import json
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_exponential_jitter

from maestromotif.kit.config import ServiceConfig, check_address
from maestromotif.kit.interceptors import REQUEST_ID_KEY
from maestromotif.kit.logging import current_request_id

TRANSIENT_CODES = ("UNAVAILABLE",)


@dataclass(frozen=True)
class ClientOptions:
    """How a client talks to a server."""

    deadline_s: float = 30.0
    max_message_bytes: int = 16 * 1024 * 1024
    auth_token: str | None = None
    # TLS: set tls=True (system roots) or tls_ca_file (a private CA; implies TLS).
    tls: bool = False
    tls_ca_file: Path | None = None
    tls_client_cert_file: Path | None = None  # mTLS
    tls_client_key_file: Path | None = None
    tls_server_name: str | None = None  # override the name checked in the server's certificate
    max_attempts: int = 5  # gRPC caps this at 5
    initial_backoff_s: float = 0.1
    max_backoff_s: float = 5.0
    backoff_multiplier: float = 2.0
    keepalive_time_s: float = 30.0
    keepalive_timeout_s: float = 10.0
    # Queue calls while the channel connects instead of failing fast with UNAVAILABLE.
    wait_for_ready: bool = False
    extra_options: tuple[tuple[str, Any], ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if not self.deadline_s > 0:
            raise ValueError(f"deadline_s must be > 0, got {self.deadline_s}")
        if not 1 <= self.max_attempts <= 5:
            raise ValueError(f"max_attempts must be in 1..5, got {self.max_attempts}")
        if not 0 < self.max_message_bytes < 2**31:
            raise ValueError(f"max_message_bytes must be in 1..2**31-1, got {self.max_message_bytes}")
        if (self.tls_client_cert_file is None) != (self.tls_client_key_file is None):
            raise ValueError("tls_client_cert_file and tls_client_key_file must be set together")

    @classmethod
    def for_peer(cls, config: ServiceConfig, **changes: Any) -> ClientOptions:
        """Options a service uses to call its peers: its own token, peer CA, size bound and deadline."""
        base: dict[str, Any] = dict(
            deadline_s=config.peer_deadline_s,
            max_message_bytes=config.max_message_bytes,
            auth_token=config.token(),
            tls_ca_file=config.peer_tls_ca_file,
            tls_client_cert_file=config.peer_tls_cert_file,
            tls_client_key_file=config.peer_tls_key_file,
            tls_server_name=config.peer_tls_server_name,
            keepalive_time_s=max(config.keepalive_time_s, 10.0),
            keepalive_timeout_s=config.keepalive_timeout_s,
        )
        base.update(changes)
        return cls(**base)


CLIENT_ENV_PREFIX = "MAESTROMOTIF_CLIENT_"
# Environment of command-line and script clients (play, compose, cluster status, codegen --address):
# the variable, the ClientOptions field it sets.
CLIENT_ENV = {
    "TLS_CA_FILE": "tls_ca_file",
    "TLS_CERT_FILE": "tls_client_cert_file",
    "TLS_KEY_FILE": "tls_client_key_file",
    "TLS_SERVER_NAME": "tls_server_name",
}


def read_token_file(path: Path | str, what: str = "token file") -> str:
    """A bearer token from a file (e.g. a mounted Secret); ValueError naming the file, never the content."""
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ValueError(f"{what} {path}: cannot read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise ValueError(f"{what} {path}: not UTF-8 text") from None
    if not token:
        raise ValueError(f"{what} {path}: empty")
    return token


def client_options_from_env(env: Mapping[str, str] | None = None, **base: Any) -> ClientOptions:
    """ClientOptions for a command-line client: ``base`` plus TLS/mTLS and a token from the environment.

    ``MAESTROMOTIF_CLIENT_TLS_CA_FILE`` (verify the server; enables TLS), ``..._TLS_CERT_FILE`` and
    ``..._TLS_KEY_FILE`` (a client certificate, for servers that require mTLS), ``..._TLS_SERVER_NAME``,
    and ``MAESTROMOTIF_CLIENT_TOKEN_FILE`` (the bearer token, when ``base`` has none). Tokens are never
    taken from the command line, where every user of the machine can read them.
    """
    env = os.environ if env is None else env
    values = dict(base)
    for suffix, name in CLIENT_ENV.items():
        value = (env.get(CLIENT_ENV_PREFIX + suffix) or "").strip()
        if value and values.get(name) is None:
            values[name] = value if name == "tls_server_name" else Path(value)
    token_file = (env.get(CLIENT_ENV_PREFIX + "TOKEN_FILE") or "").strip()
    if token_file and not values.get("auth_token"):
        values["auth_token"] = read_token_file(token_file, CLIENT_ENV_PREFIX + "TOKEN_FILE")
    for name in ("tls_ca_file", "tls_client_cert_file", "tls_client_key_file"):
        path = values.get(name)
        if path is not None and not Path(path).is_file():
            raise ValueError(f"{name}: no such file: {path}")
    return ClientOptions(**values)


def service_config_json(options: ClientOptions) -> str:
    """gRPC service config enabling retries of transient codes for every method."""
    if options.max_attempts < 2:  # gRPC rejects a retry policy with fewer than 2 attempts
        return json.dumps({"methodConfig": [{"name": [{}]}]})
    return json.dumps(
        {
            "methodConfig": [
                {
                    "name": [{}],  # every service and method
                    "retryPolicy": {
                        "maxAttempts": options.max_attempts,
                        "initialBackoff": f"{options.initial_backoff_s}s",
                        "maxBackoff": f"{options.max_backoff_s}s",
                        "backoffMultiplier": options.backoff_multiplier,
                        "retryableStatusCodes": list(TRANSIENT_CODES),
                    },
                }
            ]
        }
    )


def channel_options(options: ClientOptions) -> list[tuple[str, Any]]:
    opts: list[tuple[str, Any]] = [
        ("grpc.max_receive_message_length", options.max_message_bytes),
        ("grpc.max_send_message_length", options.max_message_bytes),
        # gRPC's default (8 KiB) refuses the agent's maestromotif-generation-result-bin trailer
        # (the codegen report of a refused ComposeTask, 15 KB seen) with RESOURCE_EXHAUSTED.
        ("grpc.max_metadata_size", 1024 * 1024),
        ("grpc.keepalive_time_ms", int(options.keepalive_time_s * 1000)),
        ("grpc.keepalive_timeout_ms", int(options.keepalive_timeout_s * 1000)),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.enable_retries", 1 if options.max_attempts >= 2 else 0),
        ("grpc.service_config", service_config_json(options)),
        # Reconnect backoff (jittered by gRPC itself) after a lost connection.
        ("grpc.initial_reconnect_backoff_ms", int(options.initial_backoff_s * 1000)),
        ("grpc.max_reconnect_backoff_ms", int(options.max_backoff_s * 1000)),
    ]
    if options.tls_server_name:
        opts.append(("grpc.ssl_target_name_override", options.tls_server_name))
    opts.extend(options.extra_options)
    return opts


class _CallDetails(
    collections.namedtuple("_CallDetails", ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression")),
    grpc.ClientCallDetails,
):
    pass


class _DefaultsInterceptor(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Adds the default deadline, bearer token, request id and wait-for-ready to every call."""

    def __init__(self, options: ClientOptions) -> None:
        self._options = options

    def _details(self, d: grpc.ClientCallDetails) -> _CallDetails:
        metadata = list(d.metadata or ())
        keys = {k for k, _ in metadata}
        if self._options.auth_token and "authorization" not in keys:
            metadata.append(("authorization", f"Bearer {self._options.auth_token}"))
        rid = current_request_id()
        if rid and REQUEST_ID_KEY not in keys:
            metadata.append((REQUEST_ID_KEY, rid))
        timeout = d.timeout if d.timeout is not None else self._options.deadline_s
        wfr = d.wait_for_ready if d.wait_for_ready is not None else (self._options.wait_for_ready or None)
        return _CallDetails(d.method, timeout, metadata, d.credentials, wfr, getattr(d, "compression", None))

    def intercept_unary_unary(self, continuation: Callable, d: grpc.ClientCallDetails, request: Any) -> Any:
        return continuation(self._details(d), request)

    def intercept_unary_stream(self, continuation: Callable, d: grpc.ClientCallDetails, request: Any) -> Any:
        return continuation(self._details(d), request)

    def intercept_stream_unary(self, continuation: Callable, d: grpc.ClientCallDetails, it: Iterator[Any]) -> Any:
        return continuation(self._details(d), it)

    def intercept_stream_stream(self, continuation: Callable, d: grpc.ClientCallDetails, it: Iterator[Any]) -> Any:
        return continuation(self._details(d), it)


def _channel_credentials(options: ClientOptions) -> grpc.ChannelCredentials | None:
    if not options.tls and options.tls_ca_file is None:
        return None
    root = Path(options.tls_ca_file).read_bytes() if options.tls_ca_file else None
    cert = Path(options.tls_client_cert_file).read_bytes() if options.tls_client_cert_file else None
    key = Path(options.tls_client_key_file).read_bytes() if options.tls_client_key_file else None
    return grpc.ssl_channel_credentials(root_certificates=root, private_key=key, certificate_chain=cert)


def make_channel(address: str, options: ClientOptions | None = None) -> grpc.Channel:
    """A channel to ``address`` (``host:port``) with the kit's defaults; close it when done."""
    options = options or ClientOptions()
    check_address(address)
    creds = _channel_credentials(options)
    opts = channel_options(options)
    raw = grpc.secure_channel(address, creds, options=opts) if creds is not None else grpc.insecure_channel(address, options=opts)
    return grpc.intercept_channel(raw, _DefaultsInterceptor(options))


def backoff(initial_s: float = 0.1, max_s: float = 5.0) -> wait_exponential_jitter:
    """The kit's jittered exponential backoff, for code that re-opens broken streams (tenacity ``wait=``)."""
    return wait_exponential_jitter(multiplier=initial_s, max=max_s, jitter=initial_s)


def is_transient(exc: BaseException) -> bool:
    return isinstance(exc, grpc.RpcError) and exc.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]


class NotServingError(RuntimeError):
    """A service did not report SERVING in time."""


def check_health(channel: grpc.Channel, service: str = "", timeout_s: float = 2.0) -> int:
    """One ``grpc.health.v1.Health/Check``; returns the status enum value."""
    stub = health_pb2_grpc.HealthStub(channel)
    return stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout_s).status


def wait_for_serving(
    address: str,
    timeout_s: float = 30.0,
    options: ClientOptions | None = None,
    service: str = "",
    alive: Callable[[], bool] | None = None,
) -> None:
    """Poll health until ``address`` reports SERVING; NotServingError after ``timeout_s``.

    ``alive`` (e.g. "the server process still runs") is checked between polls so
    a crashed server is reported at once rather than after the whole timeout.
    """
    channel = make_channel(address, options or ClientOptions(deadline_s=2.0))
    serving = health_pb2.HealthCheckResponse.SERVING

    class _NotYet(Exception):
        pass

    def attempt() -> None:
        if alive is not None and not alive():
            raise NotServingError(f"{address}: server exited before reporting SERVING")
        try:
            status = check_health(channel, service, timeout_s=min(2.0, timeout_s))
        except grpc.RpcError as exc:
            raise _NotYet(f"{exc.code().name}: {exc.details()}") from exc  # type: ignore[attr-defined]
        if status != serving:
            raise _NotYet(f"status {health_pb2.HealthCheckResponse.ServingStatus.Name(status)}")

    try:
        for try_ in Retrying(
            retry=retry_if_exception(lambda e: isinstance(e, _NotYet)),
            stop=stop_after_delay(timeout_s),
            wait=wait_exponential_jitter(multiplier=0.05, max=1.0, jitter=0.05),
            reraise=True,
        ):
            with try_:
                attempt()
    except _NotYet as exc:
        raise NotServingError(f"{address}: not SERVING after {timeout_s:.0f} s ({exc})") from None
    finally:
        channel.close()
