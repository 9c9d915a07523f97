"""``maestromotif serve`` and ``maestromotif up``: run one service, or all of them on loopback."""

from __future__ import annotations

import signal
import sys
import time
from types import FrameType
from typing import Annotated, Any

import typer

from maestromotif.kit.client import ClientOptions
from maestromotif.kit.config import ConfigError, parse_assignments
from maestromotif.kit.local import LocalProcesses, ServiceStartError
from maestromotif.kit.runner import serve_command, services_package
from maestromotif.kit.server import ServiceSpec, available_services, load_spec

# Start order when dependencies do not decide it; also the order of --base-port offsets
# (services outside it, such as the agent, take the next offsets: agent = base+5 = 50056),
# which matches the default ports (learner 50051, actors 50052, reward 50053, ...).
CANONICAL_ORDER = ("learner", "actors", "reward", "annotator", "codegen")


def _fail(message: str, code: int = 2) -> None:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(code)


def start_order(specs: dict[str, ServiceSpec]) -> list[str]:
    """Dependencies first (depends_on among the chosen services), ties in canonical order."""
    rank = {name: i for i, name in enumerate(CANONICAL_ORDER)}
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in order:
            return
        if name in visiting:
            raise ConfigError("services: dependency cycle " + " -> ".join((*path, name)))
        visiting.add(name)
        for dep in sorted(specs[name].depends_on, key=lambda n: (rank.get(n, 99), n)):
            if dep in specs:  # a dependency not started here is the service's own business
                visit(dep, (*path, name))
        visiting.discard(name)
        order.append(name)

    for name in sorted(specs, key=lambda n: (rank.get(n, 99), n)):
        visit(name, ())
    return order


def up_command(
    services: Annotated[str | None, typer.Option(help="Comma-separated services to start (default: all available).")] = None,
    base_port: Annotated[int | None, typer.Option(help="gRPC ports base+0.. in learner, actors, reward, annotator, codegen, agent order.")] = None,
    base_metrics_port: Annotated[int | None, typer.Option(help="Metrics ports base+0.. in the same order.")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", "-s", help="service.field=value passed to one service; repeatable.")] = None,
    start_timeout: Annotated[float, typer.Option(help="Seconds each service has to report SERVING.")] = 120.0,
    grace: Annotated[float, typer.Option(help="Seconds to wait after SIGTERM before SIGKILL.")] = 15.0,
    package: Annotated[str | None, typer.Option(hidden=True, help="Package holding the services.")] = None,
) -> None:
    """Start every available service as a local process on 127.0.0.1 and keep them running.

    Services start in dependency order (reward before learner before actors);
    each must report SERVING through gRPC health before the next starts. Peers
    are wired through their <peer>_address fields. Ctrl-C (or SIGTERM), or any
    service exiting, stops them all: SIGTERM, then SIGKILL after --grace.
    """
    from rich.console import Console
    from rich.table import Table

    pkg = services_package(package)
    console = Console(stderr=True)
    available = available_services(pkg)
    try:
        if services:
            chosen = [s.strip() for s in services.split(",") if s.strip()]
            unknown = [s for s in chosen if s not in available]
            if unknown:
                raise ConfigError(
                    f"--services: unknown {', '.join(unknown)}; available: {', '.join(available) or 'none yet'}"
                )
        else:
            chosen = available
        if not chosen:
            raise ConfigError(f"no services available (no {pkg}/<name>/server.py defines SPEC)")
        specs = {name: load_spec(name, pkg) for name in chosen}
        order = start_order(specs)
        per_service: dict[str, list[str]] = {name: [] for name in order}
        for item in set_ or []:
            target, dot, assignment = item.partition(".")
            if not dot or target not in per_service or "=" not in assignment:
                raise ConfigError(f"--set {item!r}: expected service.field=value with service in {', '.join(order)}")
            per_service[target].append(assignment)
    except ConfigError as exc:
        _fail(str(exc))
        return

    rank = {name: i for i, name in enumerate(CANONICAL_ORDER)}
    # Services outside the canonical five take the next offsets, in start order.
    extra_rank = {name: len(CANONICAL_ORDER) + i for i, name in enumerate(n for n in order if n not in rank)}
    ports: dict[str, tuple[int, int]] = {}
    for name in order:
        spec = specs[name]
        offset = rank.get(name, extra_rank.get(name, 0))
        port = base_port + offset if base_port is not None else spec.default_port
        mport = base_metrics_port + offset if base_metrics_port is not None else spec.default_metrics_port
        ports[name] = (port, mport)

    # Validate every service's final configuration before starting anything, so a typo fails
    # at once with the field named, not after the services before it have started.
    sets: dict[str, list[str]] = {}
    health_clients: dict[str, ClientOptions] = {}
    try:
        for name in order:
            spec = specs[name]
            wiring = [
                f"{peer}_address=127.0.0.1:{ports[peer][0]}"
                for peer in order
                if peer != name and f"{peer}_address" in spec.config_cls.model_fields
            ]
            sets[name] = wiring + per_service[name]
            overrides: dict[str, Any] = parse_assignments(sets[name])
            overrides.update(host="127.0.0.1", port=ports[name][0], metrics_port=ports[name][1])
            cfg = spec.load_config(overrides=overrides)
            # Health is exempt from auth, but a TLS port needs a TLS probe.
            ca = cfg.peer_tls_ca_file or cfg.tls_cert_file
            # With mTLS (tls_client_ca_file) the probe must also present the service's client certificate.
            cert = (cfg.peer_tls_cert_file, cfg.peer_tls_key_file) if cfg.tls_client_ca_file else (None, None)
            health_clients[name] = ClientOptions(deadline_s=2.0, tls_ca_file=ca if cfg.tls_enabled else None,
                                                 tls_client_cert_file=cert[0], tls_client_key_file=cert[1],
                                                 tls_server_name=cfg.peer_tls_server_name)
    except ConfigError as exc:
        _fail(str(exc))
        return

    stop_signal: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop_signal.append(signum)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    procs = LocalProcesses(grace_s=grace, package=pkg)
    exit_code = 0
    try:
        for name in order:
            port, mport = ports[name]
            console.print(f"starting [bold]{name}[/] on 127.0.0.1:{port}")
            procs.start(
                name,
                port,
                mport,
                sets[name],
                timeout_s=start_timeout,
                interrupted=lambda: bool(stop_signal),
                client=health_clients[name],
            )
        table = Table(title="maestromotif services (127.0.0.1)")
        for col in ("service", "gRPC", "metrics", "pid"):
            table.add_column(col)
        for p in procs.processes:
            table.add_row(p.name, p.address, p.metrics_url, str(p.proc.pid))
        Console().print(table)
        console.print("all SERVING; Ctrl-C stops them")
        sys.stdout.flush()
        while not stop_signal:
            dead = procs.dead()
            if dead:
                console.print(f"[red]{dead[0].name} exited with code {dead[0].proc.returncode}; stopping the others[/]")
                exit_code = 1
                break
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    except ServiceStartError as exc:
        console.print(f"[red]error: {exc}[/]")
        exit_code = 1
    finally:
        console.print("stopping services")
        procs.stop()
        for s, handler in previous.items():
            signal.signal(s, handler)
    if procs.processes:
        console.print("stopped: " + ", ".join(f"{p.name}={p.proc.returncode}" for p in procs.processes))
    raise typer.Exit(exit_code)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_command)
    app.command("up")(up_command)
