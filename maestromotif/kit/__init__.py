"""The service kit: the one way every MaestroMotif service is configured, started, called and observed.

See docs/service-kit.md. The domain library never imports this package; services and the CLI do.
"""

from maestromotif.kit.client import ClientOptions, NotServingError, make_channel, wait_for_serving
from maestromotif.kit.config import ConfigError, ServiceConfig, load_config
from maestromotif.kit.logging import configure_logging, current_request_id
from maestromotif.kit.server import (
    RunningService,
    ServiceContext,
    ServiceSpec,
    available_services,
    call_budget_s,
    load_spec,
    serve,
    start,
)

__all__ = [
    "ClientOptions",
    "ConfigError",
    "NotServingError",
    "RunningService",
    "ServiceConfig",
    "ServiceContext",
    "ServiceSpec",
    "available_services",
    "call_budget_s",
    "configure_logging",
    "current_request_id",
    "load_config",
    "load_spec",
    "make_channel",
    "serve",
    "start",
    "wait_for_serving",
]
