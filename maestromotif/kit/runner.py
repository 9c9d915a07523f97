"""Run one service from the command line: ``python -m maestromotif.kit <service> [options]``.

``maestromotif serve`` is this same command. It exists in the kit too so that a
service process (started by ``maestromotif up``, or as a container entrypoint)
imports only the kit and its own service, not every area of the CLI.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from maestromotif.kit.config import ConfigError, parse_assignments
from maestromotif.kit.server import SERVICES_PACKAGE, load_spec, serve

# Test hook: the package services are looked up in (hidden --package option, or this variable).
PACKAGE_ENV = "MAESTROMOTIF_SERVICES_PACKAGE"


def services_package(option: str | None = None) -> str:
    return option or os.environ.get(PACKAGE_ENV) or SERVICES_PACKAGE


def serve_command(
    service: Annotated[str, typer.Argument(help="Service to run (learner, actors, reward, annotator, codegen).")],
    port: Annotated[int | None, typer.Option(help="gRPC port (overrides config; 0 picks a free one).")] = None,
    metrics_port: Annotated[int | None, typer.Option(help="Prometheus /metrics port (overrides config).")] = None,
    host: Annotated[str | None, typer.Option(help="Interface to bind (overrides config).")] = None,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="YAML config file (flat, or with a <service>: section).")
    ] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", "-s", help="field=value override; repeatable.")] = None,
    package: Annotated[str | None, typer.Option(hidden=True, help="Package holding the services.")] = None,
) -> None:
    """Run one service in the foreground until SIGTERM/SIGINT, then drain and exit.

    Configuration precedence: flags (--port, --metrics-port, --host, --set) >
    environment MAESTROMOTIF_<SERVICE>_<FIELD> > --config file > defaults.
    """
    try:
        spec = load_spec(service, services_package(package))
        overrides: dict[str, Any] = parse_assignments(set_ or [])
        for key, value in (("port", port), ("metrics_port", metrics_port), ("host", host)):
            if value is not None:
                overrides[key] = value
        cfg = spec.load_config(config_file=config, overrides=overrides)
        code = serve(spec, cfg)
    except ConfigError as exc:
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        raise typer.Exit(2) from None
    raise typer.Exit(code)


def main() -> None:
    typer.run(serve_command)
