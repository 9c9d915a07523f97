"""The one way every service starts.

A service module ``services/<name>/server.py`` defines::

    class RewardConfig(ServiceConfig):
        checkpoint_dir: Path = Path("checkpoints/reward")

    def build(config: RewardConfig, ctx: ServiceContext) -> None:
        reward_pb2_grpc.add_RewardServicer_to_server(RewardServicer(config, ctx), ctx.server)
        ctx.add_cleanup(servicer.close)

    SPEC = ServiceSpec(name="reward", config_cls=RewardConfig, build=build,
                       default_port=50053, default_metrics_port=9093)

and the kit does the rest: config loading, health (SERVING once started,
NOT_SERVING during shutdown), reflection, ``/metrics``, message-size bounds,
keepalive, auth/TLS, request ids, metrics and logs per call, and graceful
shutdown on SIGTERM/SIGINT. :func:`start` runs a service in-process (tests);
:func:`serve` runs it in the foreground until a signal arrives.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import pkgutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Generic, TypeVar

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import CollectorRegistry, start_http_server

from maestromotif.kit.config import ConfigError, ServiceConfig, load_config
from maestromotif.kit.interceptors import AuthInterceptor, ObservabilityInterceptor, RpcMetrics
from maestromotif.kit.logging import configure_logging

log = logging.getLogger("maestromotif.kit.server")

C = TypeVar("C", bound=ServiceConfig)
Cleanup = Callable[[], None]
BuildFn = Callable[[Any, "ServiceContext"], "Iterable[Cleanup] | Cleanup | None"]

HEALTH_SERVICE = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
SERVICES_PACKAGE = "services"
# How long stop() still waits for handler threads once the grace period is over.
_AFTER_GRACE_S = 2.0


@dataclass(frozen=True)
class ServiceSpec(Generic[C]):
    """What the kit needs to know to run a service."""

    name: str
    config_cls: type[C]
    build: BuildFn
    default_port: int
    default_metrics_port: int
    # Services this one calls and that `up` must start (and see SERVING) first.
    depends_on: tuple[str, ...] = ()
    description: str = ""
    # False: the service calls ctx.set_serving(True) itself once it is ready (e.g. after loading a model).
    ready_on_start: bool = True

    def load_config(
        self,
        *,
        config_file: Path | str | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> C:
        """Load this service's config (flags > env > file > spec default ports > class defaults)."""
        defaults = {"port": self.default_port, "metrics_port": self.default_metrics_port}
        cfg = load_config(self.config_cls, self.name, config_file=config_file, overrides=overrides, defaults=defaults)
        return cfg  # type: ignore[return-value]


class _RecordingServer:
    """Wraps ``grpc.Server`` to learn the names of the services ``build`` registers.

    Health and reflection need the full names; recording them here spares every
    service from listing them a second time.
    """

    def __init__(self, server: grpc.Server) -> None:
        self._server = server
        self.service_names: list[str] = []

    def add_generic_rpc_handlers(self, handlers: Iterable[grpc.GenericRpcHandler]) -> None:
        for h in handlers:
            name = getattr(h, "service_name", None)
            if callable(name) and name() not in self.service_names:
                self.service_names.append(name())
        self._server.add_generic_rpc_handlers(handlers)

    def add_registered_method_handlers(self, service_name: str, method_handlers: Any) -> None:
        if service_name not in self.service_names:
            self.service_names.append(service_name)
        self._server.add_registered_method_handlers(service_name, method_handlers)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._server, name)


@dataclass
class ServiceContext:
    """Handed to ``build``: the server to register on, metrics registry, helpers."""

    config: ServiceConfig
    server: Any  # a grpc.Server (wrapped to record service names)
    registry: CollectorRegistry
    health: health.HealthServicer
    # Set when shutdown begins: long-lived streams should end on it so the drain finishes in time.
    stopping: threading.Event = field(default_factory=threading.Event)
    cleanups: list[Cleanup] = field(default_factory=list)
    name: str = ""

    def add_cleanup(self, fn: Cleanup) -> None:
        """Run ``fn`` after the server has drained (in reverse order of registration)."""
        self.cleanups.append(fn)

    def set_serving(self, serving: bool) -> None:
        """Report SERVING / NOT_SERVING for the whole server and every registered service."""
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ["", *self.server.service_names]:
            self.health.set(name, status)

    def peer_channel(self, address: str) -> grpc.Channel:
        """A channel to a peer with this service's token, TLS CA, size bounds, deadlines and retries."""
        from maestromotif.kit.client import ClientOptions, make_channel

        return make_channel(address, ClientOptions.for_peer(self.config))


class RunningService:
    """A started service. Use as a context manager or call :meth:`stop`."""

    def __init__(
        self,
        spec: ServiceSpec,
        config: ServiceConfig,
        server: grpc.Server,
        ctx: ServiceContext,
        port: int,
        metrics_httpd: Any | None,
        executor: futures.ThreadPoolExecutor | None = None,
    ) -> None:
        self._executor = executor
        self.spec = spec
        self.config = config
        self.server = server
        self.ctx = ctx
        self.port = port
        self._metrics_httpd = metrics_httpd
        self.metrics_port: int | None = metrics_httpd.server_address[1] if metrics_httpd is not None else None
        self._stopped = threading.Event()
        self._stop_lock = threading.Lock()
        self._forced = threading.Event()
        self._force_sent = False

    def force(self) -> None:
        """Cut a running graceful stop short: cancel in-flight calls now."""
        self._forced.set()

    @property
    def address(self) -> str:
        host = self.config.host
        if host in ("0.0.0.0", "::", "[::]", ""):
            host = "127.0.0.1"
        return f"{host}:{self.port}"

    @property
    def service_names(self) -> list[str]:
        return list(self.ctx.server.service_names)

    def stop(self, grace: float | None = None) -> None:
        """Graceful stop: NOT_SERVING, refuse new calls, drain in-flight ones within ``grace``, clean up."""
        with self._stop_lock:
            if self._stopped.is_set():
                return
            grace = self.config.grace_s if grace is None else grace
            log.info("shutting down", extra={"grace_s": grace})
            self.ctx.set_serving(False)
            self.ctx.stopping.set()
            if self.config.shutdown_delay_s > 0:
                time.sleep(self.config.shutdown_delay_s)
            # server.stop refuses new calls at once and cancels whatever is still running after `grace`.
            done = self.server.stop(grace)
            # gRPC's event fires only once every handler has returned; a handler that ignores
            # cancellation would hold shutdown forever, so stop waiting shortly after the grace.
            give_up = time.monotonic() + grace + _AFTER_GRACE_S
            while not done.wait(0.1):
                if self._forced.is_set() and not self._force_sent:
                    self.server.stop(0)
                    self._force_sent = True
                    give_up = min(give_up, time.monotonic() + _AFTER_GRACE_S)
                if time.monotonic() >= give_up:
                    log.warning("handlers still running after the grace period; stopping without them")
                    break
            if self._executor is not None:
                # Idle handler threads end now; a handler ignoring cancellation keeps only its own thread.
                self._executor.shutdown(wait=False, cancel_futures=True)
            for fn in reversed(self.ctx.cleanups):
                try:
                    fn()
                except Exception:  # noqa: BLE001 - one failing cleanup must not skip the others
                    log.exception("cleanup failed")
            if self._metrics_httpd is not None:
                self._metrics_httpd.shutdown()
                self._metrics_httpd.server_close()
            self._stopped.set()
            log.info("stopped")

    def handler_threads(self, wait_s: float = 0.0) -> list[str]:
        """Names of this server's handler threads still alive, after waiting up to ``wait_s`` for them."""
        prefix = f"{self.spec.name}-rpc"
        deadline = time.monotonic() + wait_s
        while True:
            alive = [t for t in threading.enumerate() if t.name.startswith(prefix) and t.is_alive()]
            if not alive or time.monotonic() >= deadline:
                return [t.name for t in alive]
            alive[0].join(min(0.1, max(0.0, deadline - time.monotonic())))

    def wait(self, timeout: float | None = None) -> bool:
        """Block until stopped; True if it stopped within ``timeout``."""
        return self._stopped.wait(timeout)

    def __enter__(self) -> RunningService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop(grace=0.0 if exc[0] is not None else None)


def server_options(config: ServiceConfig) -> list[tuple[str, Any]]:
    """gRPC channel arguments for the server: size bounds and keepalive."""
    return [
        ("grpc.max_receive_message_length", config.max_message_bytes),
        ("grpc.max_send_message_length", config.max_message_bytes),
        ("grpc.keepalive_time_ms", int(config.keepalive_time_s * 1000)),
        ("grpc.keepalive_timeout_ms", int(config.keepalive_timeout_s * 1000)),
        ("grpc.keepalive_permit_without_calls", 1),
        # Accept client pings as often as every 10 s (the client helper pings every 30 s by default).
        ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
        ("grpc.http2.max_pings_without_data", 0),
        # A port left bound by a dead process must not be shared silently with a live one.
        ("grpc.so_reuseport", 0),
    ]


def _server_credentials(config: ServiceConfig) -> grpc.ServerCredentials:
    assert config.tls_cert_file is not None and config.tls_key_file is not None
    cert = Path(config.tls_cert_file).read_bytes()
    key = Path(config.tls_key_file).read_bytes()
    client_ca = Path(config.tls_client_ca_file).read_bytes() if config.tls_client_ca_file else None
    return grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=client_ca, require_client_auth=client_ca is not None
    )


def start(
    spec: ServiceSpec,
    config: ServiceConfig | None = None,
    *,
    overrides: Mapping[str, Any] | None = None,
    config_file: Path | str | None = None,
) -> RunningService:
    """Build and start ``spec`` in this process; returns once it is accepting calls.

    Without ``config``, one is loaded with :meth:`ServiceSpec.load_config`.
    Port 0 (for gRPC or metrics) binds a free port; read it from the result.
    """
    if config is None:
        config = spec.load_config(config_file=config_file, overrides=overrides)
    elif not isinstance(config, spec.config_cls):
        raise ConfigError(f"config for {spec.name} must be a {spec.config_cls.__name__}, got {type(config).__name__}")
    registry = CollectorRegistry()
    metrics = RpcMetrics(registry)
    interceptors: list[grpc.ServerInterceptor] = [ObservabilityInterceptor(metrics)]
    token = config.token()
    if token:
        # Auth runs after the observability interceptor so refused calls are counted too.
        interceptors.append(AuthInterceptor(token, metrics))
    executor = futures.ThreadPoolExecutor(max_workers=config.max_workers, thread_name_prefix=f"{spec.name}-rpc")
    server = grpc.server(
        executor,
        interceptors=interceptors,
        options=server_options(config),
        maximum_concurrent_rpcs=config.max_concurrent_rpcs,
    )
    recording = _RecordingServer(server)
    health_servicer = health.HealthServicer(experimental_non_blocking=True)
    ctx = ServiceContext(config=config, server=recording, registry=registry, health=health_servicer, name=spec.name)
    result = spec.build(config, ctx)
    if callable(result):
        ctx.add_cleanup(result)
    elif result is not None:
        for fn in result:
            ctx.add_cleanup(fn)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = [*recording.service_names, HEALTH_SERVICE, reflection.SERVICE_NAME]
    reflection.enable_server_reflection(names, server)
    # Until ready: NOT_SERVING for everything, so probes never see a half-built server as ready.
    ctx.set_serving(False)
    bind = f"{config.host}:{config.port}"
    try:
        if config.tls_enabled:
            port = server.add_secure_port(bind, _server_credentials(config))
        else:
            port = server.add_insecure_port(bind)
    except RuntimeError as exc:
        _run_cleanups(ctx)
        raise ConfigError(f"port: cannot bind {bind} ({exc})") from exc
    if port == 0:
        _run_cleanups(ctx)
        raise ConfigError(f"port: cannot bind {bind}")
    httpd = None
    if config.metrics_enabled:
        try:
            httpd, _thread = start_http_server(config.metrics_port, addr=config.metrics_host, registry=registry)
        except OSError as exc:
            _run_cleanups(ctx)
            raise ConfigError(f"metrics_port: cannot bind {config.metrics_host}:{config.metrics_port} ({exc})") from exc
    server.start()
    running = RunningService(spec, config, server, ctx, port, httpd, executor)
    if spec.ready_on_start:
        ctx.set_serving(True)
    log.info(
        "serving",
        extra={
            "address": running.address,
            "port": port,
            "metrics_port": running.metrics_port,
            "tls": config.tls_enabled,
            "auth": bool(token),
            "services": ",".join(recording.service_names),
        },
    )
    return running


def _run_cleanups(ctx: ServiceContext) -> None:
    for fn in reversed(ctx.cleanups):
        try:
            fn()
        except Exception:  # noqa: BLE001
            log.exception("cleanup failed")


def serve(spec: ServiceSpec, config: ServiceConfig) -> int:
    """Run ``spec`` in the foreground until SIGTERM/SIGINT; then shut down gracefully.

    Returns 0 after a graceful stop, 1 when ``build`` failed (logged with its traceback);
    raises ConfigError for a bad configuration or an unbindable port.

    A second signal during the drain cancels the in-flight calls at once.
    """
    configure_logging(spec.name, config.log_level, config.log_format)
    stop_requested = threading.Event()
    forced = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if stop_requested.is_set():
            forced.set()
        stop_requested.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        try:
            running = start(spec, config)
        except ConfigError:
            raise
        except Exception:
            # A failing build (missing model, bad data) is reported as one structured error line.
            log.exception("failed to start")
            return 1
        # Event.wait with a timeout keeps the main thread responsive to signals.
        while not stop_requested.wait(0.5):
            pass
        stopper = threading.Thread(target=running.stop, name="graceful-stop", daemon=True)
        stopper.start()
        while stopper.is_alive():
            if forced.is_set():
                log.warning("second signal: cancelling in-flight calls")
                running.force()
                forced.clear()
            stopper.join(0.2)
        stuck = running.handler_threads(wait_s=2.0)
        if stuck:
            # A handler ignoring cancellation still runs; Python would join its thread at exit and
            # outlive the grace period. Drain and cleanups are done, so exit now.
            log.warning("exiting with handler threads still running", extra={"threads": ",".join(stuck)})
            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)
        return 0
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _service_modules(package: str) -> dict[str, str]:
    """Service name -> module defining its ``SPEC``.

    Each sub-package with a ``server`` module is a service of its name. A sub-package may also
    serve other modes from its own code (and image): it lists their module names in
    ``EXTRA_SERVICES`` in its ``__init__`` (e.g. the actors' ``agent``), each module defining a
    ``SPEC`` of that name.
    """
    try:
        pkg = importlib.import_module(package)
    except ModuleNotFoundError:
        return {}
    found: dict[str, str] = {}
    for info in pkgutil.iter_modules(getattr(pkg, "__path__", [])):
        if not info.ispkg:
            continue
        if importlib.util.find_spec(f"{package}.{info.name}.server") is not None:
            found[info.name] = f"{package}.{info.name}.server"
        sub = importlib.import_module(f"{package}.{info.name}")
        for extra in getattr(sub, "EXTRA_SERVICES", ()):
            if importlib.util.find_spec(f"{package}.{info.name}.{extra}") is not None:
                found.setdefault(extra, f"{package}.{info.name}.{extra}")
    return found


def available_services(package: str = SERVICES_PACKAGE) -> list[str]:
    """Names of the services in ``package`` (see :func:`_service_modules`)."""
    return sorted(_service_modules(package))


def load_spec(name: str, package: str = SERVICES_PACKAGE) -> ServiceSpec:
    """Import the module of service ``name`` and return its ``SPEC``; ConfigError naming the choices if absent."""
    modules = _service_modules(package)
    if name not in modules:
        choices = ", ".join(sorted(modules)) or "none yet"
        raise ConfigError(f"service {name!r}: unknown; available services: {choices}")
    module = importlib.import_module(modules[name])
    spec = getattr(module, "SPEC", None)
    if not isinstance(spec, ServiceSpec):
        raise ConfigError(f"service {name!r}: {modules[name]} defines no SPEC = ServiceSpec(...)")
    if spec.name != name:
        raise ConfigError(f"service {name!r}: its SPEC is named {spec.name!r}")
    return spec


def call_budget_s(context: grpc.ServicerContext, max_call_s: float) -> float:
    """Seconds a handler may still wait on work for this call: its deadline, capped at ``max_call_s``.

    A client that sets no deadline (grpcurl, reflection clients) makes ``time_remaining()``
    return a huge value; passed on as a timeout it overflows ``time_t`` in futures and locks
    (OverflowError), so every wait inside a handler goes through this bound instead.
    """
    remaining = context.time_remaining()
    if remaining is None or remaining != remaining or remaining > max_call_s:  # None, NaN or no deadline
        return max_call_s
    return max(remaining, 0.0)
