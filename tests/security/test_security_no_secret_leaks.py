"""No secret in logs, metrics, gRPC errors, CLI output or the chart's non-Secret objects.

Every secret gets a unique marker string. The services run as real processes (DEBUG logs to
files), are driven through good calls, refused calls (no token, a wrong token that contains the
marker, a malformed message) and a failing LLM that echoes the API key back in its error body;
then every log line, every /metrics page, every gRPC status detail and metadata value, the CLI's
output for config errors and ``--help``, and the rendered chart are searched for each marker.
"""

from __future__ import annotations

import base64
import json
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
import pytest

from maestromotif.kit.client import ClientOptions, make_channel
from maestromotif.kit.local import LocalProcesses
from maestromotif.v1 import codegen_pb2, codegen_pb2_grpc, common_pb2, reward_pb2, reward_pb2_grpc

TOKEN = "MMSECRET-token-5c1e0a7d"
API_KEY = "MMSECRET-llmkey-93b2f4e1"
HF_TOKEN = "MMSECRET-hf-0d4c8b21"
MARKERS = (TOKEN, API_KEY, HF_TOKEN)


def free_port_pair() -> tuple[int, int]:
    import socket

    socks = [socket.socket() for _ in range(2)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return socks[0].getsockname()[1], socks[1].getsockname()[1]
    finally:
        for s in socks:
            s.close()


def assert_clean(where: str, text: str) -> None:
    for marker in MARKERS:
        for form in (marker, marker[9:], base64.b64encode(marker.encode()).decode()):
            assert form not in text, f"{where} contains a secret ({form[:12]}...): ...{text[max(0, text.find(form) - 200):text.find(form) + 60]}"


@contextmanager
def _echoing_llm() -> Iterator[tuple[list[str], str]]:
    """An OpenAI-compatible server that refuses every call with 401 and echoes the key it was sent."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _refuse(self) -> None:
            auth = self.headers.get("Authorization", "")
            seen.append(auth)
            body = json.dumps({"error": {"message": f"Incorrect API key provided: {auth}", "code": "invalid_api_key"}})
            self.send_response(401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body.encode())

        def do_GET(self) -> None:  # noqa: N802
            self._refuse()

        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self._refuse()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield seen, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _rpc_text(exc: grpc.RpcError) -> str:
    parts = [exc.code().name, exc.details() or "", exc.debug_error_string()]  # type: ignore[attr-defined]
    for key, value in list(exc.trailing_metadata() or ()) + list(exc.initial_metadata() or ()):  # type: ignore[attr-defined]
        parts.append(f"{key}={value!r}")
    return "\n".join(parts)


def _metrics(port: int) -> str:
    return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()


def test_services_leak_no_secret(tmp_path: Path) -> None:
    import os

    env = dict(os.environ)
    env.update({
        "MAESTROMOTIF_REWARD_AUTH_TOKEN": TOKEN, "MAESTROMOTIF_CODEGEN_AUTH_TOKEN": TOKEN,
        "MAESTROMOTIF_REWARD_LOG_LEVEL": "DEBUG", "MAESTROMOTIF_CODEGEN_LOG_LEVEL": "DEBUG",
        "MAESTROMOTIF_REWARD_LOG_FORMAT": "json", "MAESTROMOTIF_CODEGEN_LOG_FORMAT": "json",
        "MAESTROMOTIF_LLM_API_KEY": API_KEY, "HF_TOKEN": HF_TOKEN, "OMP_NUM_THREADS": "1",
    })
    seen_text: list[tuple[str, str]] = []
    with _echoing_llm() as (llm_seen, llm_url):
        procs = LocalProcesses(grace_s=5.0, env=env, log_dir=tmp_path / "logs")
        with procs:
            reward_port, reward_mport = free_port_pair()
            procs.start("reward", reward_port, reward_mport, ["init_random=true", "threads=1"], timeout_s=120)
            codegen_port, codegen_mport = free_port_pair()
            procs.start("codegen", codegen_port, codegen_mport,
                        ["backend=openai", f"llm_url={llm_url}", "model=test-model", "llm_timeout_s=5", f"store_dir={tmp_path / 'art'}",
                         "max_repair_rounds=0"], timeout_s=120)
            reward_addr, codegen_addr = f"127.0.0.1:{reward_port}", f"127.0.0.1:{codegen_port}"

            calls: list[tuple[str, grpc.Channel, Any]] = []
            for label, token in (("no token", None), ("wrong token", TOKEN + "x"), ("right token", TOKEN)):
                opts = ClientOptions(deadline_s=30.0, auth_token=token, max_attempts=1)
                reward = make_channel(reward_addr, opts)
                codegen = make_channel(codegen_addr, opts)
                calls += [
                    (f"reward GetModelInfo, {label}", reward,
                     lambda ch=reward: reward_pb2_grpc.RewardStub(ch).GetModelInfo(reward_pb2.GetModelInfoRequest())),
                    (f"reward Score, bad shape, {label}", reward,
                     lambda ch=reward: reward_pb2_grpc.RewardStub(ch).Score(reward_pb2.ScoreRequest(count=3, skills=b"x"))),
                    (f"reward malformed bytes, {label}", reward,
                     lambda ch=reward: ch.unary_unary("/maestromotif.v1.Reward/Score")(b"\xff\xff\xff")),
                    (f"codegen GetServerInfo, {label}", codegen,
                     lambda ch=codegen: codegen_pb2_grpc.CodegenStub(ch).GetServerInfo(common_pb2.GetServerInfoRequest())),
                    (f"codegen ComposeTask (LLM refuses the key), {label}", codegen,
                     lambda ch=codegen: codegen_pb2_grpc.CodegenStub(ch).ComposeTask(
                         codegen_pb2.ComposeTaskRequest(prompt="Go down the stairs."), timeout=60)),
                ]
            codes: dict[str, str] = {}
            for what, channel, call in calls:
                try:
                    reply = call()
                    codes[what] = "OK"
                    seen_text.append((what, str(reply)))
                except grpc.RpcError as exc:
                    codes[what] = exc.code().name
                    seen_text.append((what, _rpc_text(exc)))
            for _, channel, _ in calls:
                channel.close()
            seen_text.append(("reward /metrics", _metrics(reward_mport)))
            seen_text.append(("codegen /metrics", _metrics(codegen_mport)))
        # The secrets were really in play: the LLM got the key, auth refused and accepted as configured.
        assert any(API_KEY in a for a in llm_seen), llm_seen
        assert codes["reward GetModelInfo, no token"] == "UNAUTHENTICATED"
        assert codes["reward GetModelInfo, wrong token"] == "UNAUTHENTICATED"
        assert codes["reward GetModelInfo, right token"] == "OK"
        assert codes["reward malformed bytes, right token"] == "INVALID_ARGUMENT"
        assert codes["codegen ComposeTask (LLM refuses the key), right token"] not in ("OK", "UNAUTHENTICATED")
        # At start-up (no model given, the backend asks /v1/models): the refusal names no key either.
        from maestromotif.llm.remote import BackendResponseError, OpenAIBackend

        backend = OpenAIBackend(llm_url, api_key=API_KEY, retries=1)
        with pytest.raises(BackendResponseError) as err:
            backend.model_id
        assert "HTTP 401" in str(err.value) and "<api key>" in str(err.value)
        seen_text.append(("OpenAIBackend start-up error", str(err.value)))
    logs = sorted((tmp_path / "logs").glob("*.log"))
    assert len(logs) == 2
    for path in logs:
        text = path.read_text(errors="replace")
        assert '"level": "DEBUG"' in text or '"level":"DEBUG"' in text or "refused call" in text
        seen_text.append((f"log {path.name}", text))
    for where, text in seen_text:
        assert_clean(where, text)


def _cli(args: list[str], env: dict[str, str]) -> str:
    from typer.testing import CliRunner

    from maestromotif.cli import app

    result = CliRunner().invoke(app, args, env=env)
    return f"exit {result.exit_code}\n{result.output}\n{getattr(result, 'stderr', '') if result.stderr_bytes else ''}"


def test_cli_leaks_no_secret(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    env = {"MAESTROMOTIF_REWARD_AUTH_TOKEN": TOKEN, "MAESTROMOTIF_LLM_API_KEY": API_KEY,
           "MAESTROMOTIF_AGENT_TOKEN": TOKEN, "HF_TOKEN": HF_TOKEN}
    runs = {
        "serve --help": ["serve", "--help"],
        "up --help": ["up", "--help"],
        "play --help": ["play", "--help"],
        "compose --help": ["compose", "--help"],
        "serve with a bad field": ["serve", "reward", "--set", "port=70000"],
        "serve with an unknown field": ["serve", "reward", "--set", "no_such_field=1"],
        "--set auth_token on the command line": ["serve", "reward", "--set", f"auth_token={TOKEN}"],
        "up --set reward.auth_token": ["up", "--services", "reward", "--set", f"reward.auth_token={TOKEN}"],
        "play against nothing": ["play", "--address", "127.0.0.1:9", "--plain", "--max-steps", "1"],
        "play with a token file against nothing": ["play", "--address", "127.0.0.1:9", "--plain",
                                                   "--token-file", str(token_file)],
    }
    outputs = {name: _cli(args, env) for name, args in runs.items()}
    # token and token file at once: a config error that must not quote the token
    outputs["token and token file"] = _cli(["serve", "reward"], {**env, "MAESTROMOTIF_REWARD_AUTH_TOKEN_FILE": str(token_file)})
    assert "exit 2" in outputs["--set auth_token on the command line"]
    assert "visible to every user" in outputs["--set auth_token on the command line"]
    assert "mutually exclusive" in outputs["token and token file"]
    assert "port" in outputs["serve with a bad field"] and "exit 2" in outputs["serve with a bad field"]
    assert "exit 1" in outputs["play against nothing"], outputs["play against nothing"]
    for name, text in outputs.items():
        assert_clean(f"CLI {name}", text)


def test_rendered_chart_keeps_secrets_in_secrets() -> None:
    pytest.importorskip("helm_python")
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "helm"))
    from helmchart import notes, render

    values = {"auth": {"enabled": True, "token": TOKEN},
              "llm": {"provider": "external", "external": {"url": "https://llm.example.com/v1", "apiKey": API_KEY}},
              "annotation": {"enabled": True}}
    tgi = {"llm": {"provider": "tgi", "tgi": {"hfToken": HF_TOKEN}}, "annotation": {"enabled": True}}
    for vals in (values, tgi):
        objects = render(vals)
        secrets = [o for o in objects if o["kind"] == "Secret"]
        assert secrets and any(
            base64.b64encode(m.encode()).decode() in json.dumps(s) for s in secrets for m in MARKERS)
        configmaps = [o for o in objects if o["kind"] == "ConfigMap"]
        assert len(configmaps) >= 5
        for obj in objects:
            if obj["kind"] != "Secret":
                assert_clean(f"{obj['kind']}/{obj['metadata']['name']}", json.dumps(obj))
        assert_clean("NOTES.txt", notes(vals))
