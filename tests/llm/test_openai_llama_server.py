"""OpenAI-compatible backend against llama-cpp-python's own server (real model) on loopback."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import httpx
import pytest

from maestromotif.annotation.checkset import load_checkset
from maestromotif.annotation.strategies import Annotator
from maestromotif.llm import BackendUnavailable, ChatMessage, GenerationParams, make_backend
from maestromotif.llm.models import ensure_model_file


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory):
    model = ensure_model_file("0.5b")
    port = _free_port()
    # The server logs a lot on stderr: a file, not a pipe nobody drains (a full pipe blocks it).
    log_path = tmp_path_factory.mktemp("llama-server") / "server.log"
    log = log_path.open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1", "--port", str(port),
         "--n_threads", "1", "--n_ctx", "2048", "--logits_all", "true", "--model_alias", "qwen-0.5b"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited: {log_path.read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/v1/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        else:
            raise RuntimeError("llama_cpp.server did not start in 120 s")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def test_chat_and_model_id(server_url: str) -> None:
    backend = make_backend("openai", url=server_url + "/v1", timeout_s=60)
    assert backend.model_id == "qwen-0.5b"
    reply = backend.chat([ChatMessage("user", "Reply with the single word: ready")],
                         GenerationParams(max_new_tokens=8, temperature=0.0, seed=1))
    assert reply.text.strip() and 0 < reply.completion_tokens <= 8 and reply.prompt_tokens > 0
    backend.close()


def test_score_strategy_through_server(server_url: str) -> None:
    backend = make_backend("openai", url=server_url, timeout_s=60)
    annotator = Annotator(backend, "score")
    cases = {c.index: c for c in load_checkset()}
    for index in (2, 23):  # 29 is the pair the 0.5B model alone gets wrong (tests/llm/test_embedded.py)
        case = cases[index]
        result = annotator.annotate(case.skill, case.first, case.second)
        assert result.label == case.expected, (index, result.raw_text)
    backend.close()


def test_down_server_is_unavailable() -> None:
    backend = make_backend("openai", url=f"http://127.0.0.1:{_free_port()}", model="m", retries=2, timeout_s=2)
    with pytest.raises(BackendUnavailable):
        backend.chat([ChatMessage("user", "x")], GenerationParams(max_new_tokens=4))
