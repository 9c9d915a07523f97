"""`maestromotif serve` and `maestromotif up` as real processes; nothing may survive `up`."""

from __future__ import annotations

import os
import queue
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
from typer.testing import CliRunner

from maestromotif.cli import app
from maestromotif.kit import ClientOptions, make_channel, wait_for_serving

KIT_TESTS = Path(__file__).resolve().parent / "kit"
CLI = [sys.executable, "-c", "from maestromotif.cli import main; main()"]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAESTROMOTIF_")}
    env["PYTHONPATH"] = f"{KIT_TESTS}{os.pathsep}{env.get('PYTHONPATH', '')}"
    env["MAESTROMOTIF_SERVICES_PACKAGE"] = "kit_testsvc"
    return env


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def _bases() -> tuple[int, int]:
    """Base ports whose +5/+6 (echo, crashy: after the five real services) are free."""
    for _ in range(50):
        base, mbase = random.randrange(20000, 30000, 10), random.randrange(30000, 40000, 10)
        if all(_port_free(p) for p in (base + 5, base + 6, mbase + 5, mbase + 6)):
            return base, mbase
    raise RuntimeError("no free ports")


class Up:
    """`maestromotif up` in a subprocess, with its stderr read line by line."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [*CLI, "up", *args], env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        for stream in (self.proc.stdout, self.proc.stderr):
            threading.Thread(target=self._pump, args=(stream,), daemon=True).start()
        self.descendants: dict[int, psutil.Process] = {}

    def _pump(self, stream) -> None:  # type: ignore[no-untyped-def]
        for line in stream:
            self.lines.put(line)

    def wait_for(self, text: str, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in line for line in self.seen):
                return
            try:
                self.seen.append(self.lines.get(timeout=0.2))
            except queue.Empty:
                if self.proc.poll() is not None and self.lines.empty():
                    break
            self.note_descendants()
        raise AssertionError(f"{text!r} not seen; output:\n" + "".join(self.seen))

    def note_descendants(self) -> None:
        try:
            for p in psutil.Process(self.proc.pid).children(recursive=True):
                self.descendants.setdefault(p.pid, p)
        except psutil.NoSuchProcess:
            pass

    def drain(self) -> str:
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return "".join(self.seen)

    def assert_nothing_left(self) -> None:
        assert self.descendants, "no child process was ever seen"
        survivors = []
        for pid, p in self.descendants.items():
            try:
                if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                    survivors.append((pid, p.cmdline()))
            except psutil.NoSuchProcess:
                pass
        assert not survivors, f"processes left behind: {survivors}"

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for p in self.descendants.values():
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass


def test_help_on_every_command() -> None:
    runner = CliRunner()
    root = runner.invoke(app, ["--help"])
    assert root.exit_code == 0 and "serve" in root.output and "up" in root.output
    for cmd in ("serve", "up"):
        res = runner.invoke(app, [cmd, "--help"])
        assert res.exit_code == 0, res.output
        assert "Usage" in res.output


def test_serve_unknown_service_lists_available() -> None:
    res = subprocess.run([*CLI, "serve", "nope"], env=_env(), capture_output=True, text=True, timeout=120)
    assert res.returncode == 2
    assert "service 'nope': unknown; available services: crashy, echo" in res.stderr


def test_serve_bad_flag_value_names_field() -> None:
    res = subprocess.run(
        [*CLI, "serve", "echo", "--set", "grace_s=-3"], env=_env(), capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 2
    assert "grace_s" in res.stderr and "greater than or equal to 0" in res.stderr and "flags" in res.stderr


def test_up_unknown_service() -> None:
    res = subprocess.run([*CLI, "up", "--services", "echo,nope"], env=_env(), capture_output=True, text=True, timeout=120)
    assert res.returncode == 2
    assert "unknown nope; available: crashy, echo" in res.stderr


def test_up_starts_in_order_wires_peers_and_stops_everything_on_ctrl_c() -> None:
    base, mbase = _bases()
    up = Up("--base-port", str(base), "--base-metrics-port", str(mbase), "--set", "crashy.spawn_helper=true")
    try:
        up.wait_for("all SERVING")
        up.note_descendants()
        out = up.drain()
        # Dependency order: crashy depends on echo.
        assert out.index("starting echo") < out.index("starting crashy")
        assert f"127.0.0.1:{base + 5}" in out and f"127.0.0.1:{mbase + 6}/metrics" in out
        echo, crashy = f"127.0.0.1:{base + 5}", f"127.0.0.1:{base + 6}"
        for address in (echo, crashy):
            wait_for_serving(address, timeout_s=10)
        # `up` told crashy where echo is.
        ch = make_channel(crashy, ClientOptions(deadline_s=10))
        assert ch.unary_unary("/maestromotif.test.Crashy/Peer")(b"") == echo.encode()
        ch.close()
        # Two services plus the helper `sleep` crashy left in its process group.
        cmdlines = [" ".join(p.cmdline()) for p in up.descendants.values() if p.is_running()]
        assert sum("maestromotif.kit" in c for c in cmdlines) == 2 and any(c.startswith("sleep") for c in cmdlines)
        up.proc.send_signal(signal.SIGINT)
        assert up.proc.wait(timeout=60) == 0
        out = up.drain()
        assert "stopped: echo=0, crashy=0" in out, out
        up.assert_nothing_left()
        assert _port_free(base + 5) and _port_free(base + 6)
    finally:
        up.kill()


def test_up_stops_everything_when_one_service_dies() -> None:
    base, mbase = _bases()
    up = Up("--base-port", str(base), "--base-metrics-port", str(mbase), "--set", "crashy.exit_after_s=1.5")
    try:
        up.wait_for("all SERVING")
        up.note_descendants()
        assert up.proc.wait(timeout=60) == 1  # exits on its own: crashy died
        out = up.drain()
        assert "crashy exited with code 3; stopping the others" in out, out
        up.assert_nothing_left()
    finally:
        up.kill()


def test_up_reports_a_service_that_never_starts() -> None:
    base, mbase = _bases()
    # A port another process holds: echo cannot bind and exits with a clear error.
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", base + 5))
        blocker.listen()
        up = Up("--base-port", str(base), "--base-metrics-port", str(mbase), "--services", "echo")
        try:
            assert up.proc.wait(timeout=90) == 1
            out = up.drain()
            assert "port: cannot bind" in out and "echo exited with code 2 before SERVING" in out, out
        finally:
            up.kill()


@pytest.mark.parametrize("sig", [signal.SIGTERM])
def test_up_handles_sigterm_like_ctrl_c(sig: int) -> None:
    base, mbase = _bases()
    up = Up("--base-port", str(base), "--base-metrics-port", str(mbase), "--services", "echo")
    try:
        up.wait_for("all SERVING")
        up.note_descendants()
        up.proc.send_signal(sig)
        assert up.proc.wait(timeout=60) == 0
        up.assert_nothing_left()
    finally:
        up.kill()


def test_up_validates_every_config_before_starting_anything() -> None:
    base, mbase = _bases()
    up = Up("--base-port", str(base), "--base-metrics-port", str(mbase), "--set", "crashy.exit_after_s=-1")
    try:
        assert up.proc.wait(timeout=90) == 2
        out = up.drain()
        assert "exit_after_s" in out and "greater than or equal to 0" in out, out
        assert "starting echo" not in out  # nothing was started
    finally:
        up.kill()


def test_up_with_tls_probes_health_over_tls(self_signed_pair: tuple[Path, Path]) -> None:
    cert, key = self_signed_pair
    base, mbase = _bases()
    up = Up(
        "--base-port", str(base), "--base-metrics-port", str(mbase), "--services", "echo",
        "--set", f"echo.tls_cert_file={cert}", "--set", f"echo.tls_key_file={key}",
    )
    try:
        up.wait_for("all SERVING")
        up.note_descendants()
        wait_for_serving(f"127.0.0.1:{base + 5}", timeout_s=10, options=ClientOptions(tls_ca_file=cert, deadline_s=2))
        up.proc.send_signal(signal.SIGINT)
        assert up.proc.wait(timeout=60) == 0
        up.assert_nothing_left()
    finally:
        up.kill()


@pytest.fixture(scope="module")
def self_signed_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    import shutil

    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl command not available")
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )
    return cert, key
