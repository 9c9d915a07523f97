"""Run a service in-process on a free loopback port, for tests (no pytest dependency).

    with running(SPEC, greeting="hi") as svc:
        stub = MyStub(svc.channel)
        stub.Method(request)

The service is real (the kit's full server); only the ports are picked freely
and metrics stay on loopback.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import grpc

from maestromotif.kit.client import ClientOptions, make_channel
from maestromotif.kit.server import RunningService, ServiceSpec, start


@dataclass
class LocalService:
    service: RunningService
    channel: grpc.Channel

    @property
    def address(self) -> str:
        return self.service.address

    @property
    def config(self) -> Any:
        return self.service.config

    @property
    def metrics_port(self) -> int | None:
        return self.service.metrics_port


@contextmanager
def running(spec: ServiceSpec, client: ClientOptions | None = None, **overrides: Any) -> Iterator[LocalService]:
    """Start ``spec`` on 127.0.0.1 with free ports (overridable), yield it with a channel, stop it after."""
    values: dict[str, Any] = {"host": "127.0.0.1", "port": 0, "metrics_port": 0, "metrics_host": "127.0.0.1"}
    values.update(overrides)
    svc = start(spec, overrides=values)
    try:
        if client is None:
            # A self-signed test certificate is its own CA.
            client = ClientOptions(
                deadline_s=30.0,
                auth_token=svc.config.token(),
                max_message_bytes=svc.config.max_message_bytes,
                tls_ca_file=svc.config.tls_cert_file,
            )
        channel = make_channel(svc.address, client)
        try:
            yield LocalService(svc, channel)
        finally:
            channel.close()
    finally:
        svc.stop(grace=1.0)
