"""Graceful shutdown of a real service process: SIGTERM during an in-flight call."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import grpc
from kit_testsvc.echo.server import SERVICE

from maestromotif.kit import ClientOptions, make_channel, wait_for_serving

KIT_TESTS = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_echo(*extra: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": f"{KIT_TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "maestromotif.kit", "echo", "--package", "kit_testsvc",
         "--port", str(port), "--set", "metrics_enabled=false", *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    address = f"127.0.0.1:{port}"
    try:
        wait_for_serving(address, timeout_s=60, alive=lambda: proc.poll() is None)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return proc, address


def in_flight_call(address: str, millis: int, marker: Path, method: str = "Slow") -> tuple[threading.Thread, dict[str, object]]:
    """Start a Slow call in a thread and return once the server has started handling it
    (the handler creates ``marker``): a signal sent after this finds the call in flight."""
    result: dict[str, object] = {}
    ch = make_channel(address, ClientOptions(deadline_s=60, max_attempts=1))

    def run() -> None:
        fut = ch.unary_unary(f"/{SERVICE}/{method}").future(f"{millis},{marker}".encode())
        try:
            result["reply"] = fut.result()
        except grpc.RpcError as exc:
            result["code"] = exc.code()
        ch.close()

    t = threading.Thread(target=run)
    t.start()
    for _ in range(600):  # a loaded machine may take a while to deliver the call
        if marker.exists() or not t.is_alive():
            break
        threading.Event().wait(0.05)
    assert marker.exists(), f"the server never started handling {method}: {result}"
    return t, result


def test_sigterm_drains_in_flight_call_then_exits_zero(tmp_path: Path) -> None:
    proc, address = start_echo("--set", "grace_s=30")
    try:
        t, result = in_flight_call(address, 1500, tmp_path / "started")
        # Make sure the server really holds the call: a fresh call still succeeds meanwhile.
        probe = make_channel(address, ClientOptions(deadline_s=10))
        assert probe.unary_unary(f"/{SERVICE}/Echo")(b"p") == b"p"
        probe.close()
        proc.send_signal(signal.SIGTERM)
        t.join(60)
        assert result == {"reply": b"done"}, result
        assert proc.wait(timeout=60) == 0
        out = proc.stdout.read().decode() if proc.stdout else ""
        assert "shutting down" in out and '"stopped"' in out
        # After exit nothing listens any more.
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", int(address.rsplit(":", 1)[1]))) != 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_second_signal_cancels_the_drain_even_with_a_stuck_handler(tmp_path: Path) -> None:
    proc, address = start_echo("--set", "grace_s=120")
    try:
        # Stuck ignores cancellation: the process must still exit promptly after the second signal.
        t, result = in_flight_call(address, 60_000, tmp_path / "started", method="Stuck")
        probe = make_channel(address, ClientOptions(deadline_s=10))
        assert probe.unary_unary(f"/{SERVICE}/Echo")(b"p") == b"p"
        probe.close()
        proc.send_signal(signal.SIGTERM)
        # Wait until the server has started draining (health no longer answers SERVING).
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        hc = make_channel(address, ClientOptions(deadline_s=2, max_attempts=1))
        for _ in range(200):
            try:
                if health_pb2_grpc.HealthStub(hc).Check(health_pb2.HealthCheckRequest()).status != 1:
                    break
            except grpc.RpcError:
                break
            threading.Event().wait(0.05)
        hc.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        t.join(60)
        assert "reply" not in result and result.get("code") in (grpc.StatusCode.CANCELLED, grpc.StatusCode.UNAVAILABLE)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_failing_build_exits_one_with_a_logged_error() -> None:
    env = {**os.environ, "PYTHONPATH": f"{KIT_TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    res = subprocess.run(
        [sys.executable, "-m", "maestromotif.kit", "echo", "--package", "kit_testsvc", "--port", "0",
         "--set", "metrics_enabled=false", "--set", "fail_build=true"],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert res.returncode == 1
    lines = [json.loads(x) for x in res.stderr.splitlines() if x.startswith("{")]
    failed = [x for x in lines if x["msg"] == "failed to start"]
    assert failed and failed[0]["level"] == "ERROR" and "model file missing (test)" in failed[0]["exc"]
    assert failed[0]["service"] == "echo"
