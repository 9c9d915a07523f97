"""TGI backend through the real ``text-generation`` client against a loopback /generate double."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from tgi_double import TGIDouble  # noqa: E402

from maestromotif.llm import BackendUnavailable, ChatMessage, GenerationParams, make_backend  # noqa: E402


def test_chat_sends_explicit_limits_and_template() -> None:
    with TGIDouble(reply="Some reasoning.\nbest_description: 2") as tgi:
        backend = make_backend("tgi", url=tgi.url, timeout_s=7, template="chatml")
        out = backend.chat([ChatMessage("system", "s"), ChatMessage("user", "hello")],
                           GenerationParams(max_new_tokens=300, temperature=0.1, seed=3))
        assert out.text.endswith("best_description: 2")
        params = tgi.requests[-1]["parameters"]
        assert params["max_new_tokens"] == 300 and params["do_sample"] is True and params["seed"] == 3
        assert "<|im_end|>" in params["stop"]
        assert tgi.requests[-1]["inputs"].endswith("<|im_start|>assistant\n")
        assert backend._client.timeout == 7
        # greedy settings are sent as greedy (the client rejects temperature 0)
        backend.chat([ChatMessage("user", "x")], GenerationParams(max_new_tokens=5, temperature=0.0))
        assert tgi.requests[-1]["parameters"]["do_sample"] is False


def test_yes_no_score_from_top_tokens() -> None:
    with TGIDouble(keyword="descend") as tgi:
        backend = make_backend("tgi", url=tgi.url)
        yes = backend.yes_no_score([ChatMessage("user", "You descend the stairs.")])
        no = backend.yes_no_score([ChatMessage("user", "You kill the newt.")])
        assert yes.score == pytest.approx(2.4) and no.score == pytest.approx(-2.4)
        params = tgi.requests[-1]["parameters"]
        assert params["max_new_tokens"] == 1 and params["top_n_tokens"] == 20


def test_retries_overload_then_succeeds() -> None:
    with TGIDouble() as tgi:
        tgi.fail_next = 1
        backend = make_backend("tgi", url=tgi.url, retries=3)
        assert backend.yes_no_score([ChatMessage("user", "descend")]).score > 0
        assert len(tgi.requests) == 2


def test_down_server_is_unavailable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    backend = make_backend("tgi", url=f"http://127.0.0.1:{port}", retries=2)
    with pytest.raises(BackendUnavailable):
        backend.chat([ChatMessage("user", "x")], GenerationParams(max_new_tokens=4))
