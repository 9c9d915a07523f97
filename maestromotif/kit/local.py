"""Run several services as local processes on loopback, and stop them all without leaving any behind.

``maestromotif up`` and ``maestromotif train`` use this; so can end-to-end tests::

    with LocalProcesses(grace_s=15) as procs:
        procs.start("reward", port=50053, metrics_port=9093, sets=["init_random=true"])
        procs.start("learner", port=50051, metrics_port=9091, sets=["reward_address=127.0.0.1:50053"])
        ...
        while not procs.dead(): time.sleep(1)

Each service runs ``python -m maestromotif.kit <name>`` in its own session
(process group), so a Ctrl-C reaches only the supervisor, which then stops the
services in reverse start order: SIGTERM to each group, SIGKILL to each group
after the grace period (which also reaps any helper a service spawned).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from maestromotif.kit.client import ClientOptions, NotServingError, wait_for_serving
from maestromotif.kit.server import SERVICES_PACKAGE


@dataclass
class ServiceProcess:
    """One service process started by :class:`LocalProcesses`."""

    name: str
    port: int
    metrics_port: int
    proc: subprocess.Popen[bytes]
    log_path: Path | None = None  # where its stdout and stderr go (None: this process's own)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def alive(self) -> bool:
        return self.proc.poll() is None


class ServiceStartError(RuntimeError):
    """A service exited or did not report SERVING in time."""


def serve_argv(name: str, port: int, metrics_port: int, sets: Sequence[str] = (), package: str = SERVICES_PACKAGE) -> list[str]:
    """The command line that runs one service on 127.0.0.1 (the kit's entry point, not the whole CLI)."""
    argv = [sys.executable, "-m", "maestromotif.kit", name, "--host", "127.0.0.1",
            "--port", str(port), "--metrics-port", str(metrics_port)]
    if package != SERVICES_PACKAGE:
        argv += ["--package", package]
    for s in sets:
        argv += ["--set", s]
    return argv


def terminate(processes: Sequence[ServiceProcess], grace_s: float) -> None:
    """SIGTERM every process group (reverse order), wait up to ``grace_s`` in all, then SIGKILL every group."""
    for p in reversed(processes):
        if p.proc.poll() is None:
            try:
                os.killpg(p.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + grace_s
    for p in reversed(processes):
        try:
            p.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    for p in processes:
        # Kill the whole group even if its leader exited: helpers it spawned must not survive.
        try:
            os.killpg(p.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if p.proc.poll() is None:
            p.proc.wait()


@dataclass
class LocalProcesses:
    """Starts services one at a time (each must report SERVING) and stops them all on exit."""

    grace_s: float = 15.0
    package: str = SERVICES_PACKAGE
    env: dict[str, str] | None = None
    # When set, each service's stdout and stderr go to <log_dir>/<name>.log instead of this
    # terminal, so that a console showing progress is not interleaved with JSON log lines.
    log_dir: Path | None = None
    processes: list[ServiceProcess] = field(default_factory=list)

    def start(
        self,
        name: str,
        port: int,
        metrics_port: int,
        sets: Sequence[str] = (),
        timeout_s: float = 120.0,
        interrupted: Callable[[], bool] | None = None,
        client: ClientOptions | None = None,
    ) -> ServiceProcess:
        """Start ``name`` and wait until it reports SERVING; ServiceStartError if it dies or times out.

        ``interrupted`` (checked about once a second) lets a caller abort a slow start, e.g. on Ctrl-C;
        the wait then raises KeyboardInterrupt. ``client`` sets how health is probed (TLS CA).
        """
        log_path: Path | None = None
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            log_path = self.log_dir / f"{name}.log"
            with open(log_path, "ab") as log:  # the child keeps its own descriptor
                proc = subprocess.Popen(serve_argv(name, port, metrics_port, sets, self.package),
                                        start_new_session=True, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        else:
            proc = subprocess.Popen(
                serve_argv(name, port, metrics_port, sets, self.package), start_new_session=True, env=self.env
            )
        sp = ServiceProcess(name, port, metrics_port, proc, log_path)
        self.processes.append(sp)
        deadline = time.monotonic() + timeout_s
        while True:
            if interrupted is not None and interrupted():
                raise KeyboardInterrupt
            try:
                wait_for_serving(
                    sp.address,
                    timeout_s=min(1.0, max(0.1, deadline - time.monotonic())),
                    options=client,
                    alive=sp.alive,
                )
                return sp
            except NotServingError as exc:
                if not sp.alive():
                    where = f" (log: {log_path})" if log_path is not None else ""
                    raise ServiceStartError(f"{name} exited with code {proc.returncode} before SERVING{where}") from exc
                if time.monotonic() >= deadline:
                    raise ServiceStartError(f"{name}: not SERVING after {timeout_s:.0f} s") from exc

    def dead(self) -> list[ServiceProcess]:
        """Processes that have exited."""
        return [p for p in self.processes if not p.alive()]

    def stop(self) -> None:
        terminate(self.processes, self.grace_s)

    def __enter__(self) -> LocalProcesses:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
