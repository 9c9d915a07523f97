"""A test-only service that can die on its own and can leave a helper process behind.

Used by the `up` tests: it depends on echo (start order), may exit with code 3
after ``exit_after_s`` (a crashed service), and may spawn a ``sleep`` helper in
its process group (which `up` must not leave behind).
"""

from __future__ import annotations

import os
import subprocess
import threading
import time

import grpc
from pydantic import Field

from maestromotif.kit import ServiceConfig, ServiceContext, ServiceSpec


class CrashyConfig(ServiceConfig):
    exit_after_s: float = Field(0.0, ge=0.0, le=600.0, description="0: never exit on its own.")
    spawn_helper: bool = False
    echo_address: str = "127.0.0.1:50091"


def build(config: CrashyConfig, ctx: ServiceContext) -> None:
    handlers = {"Peer": grpc.unary_unary_rpc_method_handler(lambda r, c: config.echo_address.encode())}
    ctx.server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("maestromotif.test.Crashy", handlers),))
    if config.spawn_helper:
        helper = subprocess.Popen(["sleep", "120"])
        ctx.add_cleanup(lambda: None)  # deliberately leaves the helper running: `up` must reap the group
        del helper
    if config.exit_after_s > 0:

        def die() -> None:
            time.sleep(config.exit_after_s)
            os._exit(3)

        threading.Thread(target=die, daemon=True).start()


SPEC = ServiceSpec(
    name="crashy",
    config_cls=CrashyConfig,
    build=build,
    default_port=50092,
    default_metrics_port=9192,
    depends_on=("echo",),
)
