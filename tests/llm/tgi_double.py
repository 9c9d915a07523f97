"""A loopback HTTP server speaking TGI's ``/generate`` protocol (test double of the remote side).

It answers deterministically from the prompt: the first answer token is "Yes"
with high probability when the prompt's last user turn mentions a keyword, and
records every request so tests can check the parameters sent.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from collections.abc import Callable
from typing import Any


class TGIDouble:
    def __init__(self, keyword: str = "descend", delay_s: float = 0.0,
                 reply: str | Callable[[dict[str, Any]], str] = "best_description: 1") -> None:
        self.keyword = keyword
        self.delay_s = delay_s
        self.reply = reply
        self.requests: list[dict[str, Any]] = []
        self.fail_next = 0  # answer 503 to this many requests
        double = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                double.requests.append(body)
                if double.fail_next > 0:
                    double.fail_next -= 1
                    self._send(503, {"error": "overloaded", "error_type": "overloaded"})
                    return
                if double.delay_s:
                    time.sleep(double.delay_s)
                if self.path not in ("/", "/generate"):
                    self._send(404, {"error": "not found"})
                    return
                params = body.get("parameters", {})
                if not isinstance(body.get("inputs"), str) or "max_new_tokens" not in params:
                    self._send(422, {"error": "bad request", "error_type": "validation"})
                    return
                last_turn = body["inputs"].rsplit("user", 1)[-1]
                yes = -0.1 if double.keyword in last_turn.lower() else -2.5
                no = -2.5 if yes > -1 else -0.1
                top = [{"id": 1, "text": "Yes", "logprob": yes, "special": False},
                       {"id": 2, "text": "No", "logprob": no, "special": False},
                       {"id": 3, "text": "The", "logprob": -6.0, "special": False}]
                n = params.get("top_n_tokens")
                reply = double.reply(body) if callable(double.reply) else double.reply  # callable: per request
                text = ("Yes" if yes > no else "No") if params["max_new_tokens"] == 1 else reply
                payload = {
                    "generated_text": text,
                    "details": {
                        "finish_reason": "length" if params["max_new_tokens"] == 1 else "eos_token",
                        "generated_tokens": 1 if params["max_new_tokens"] == 1 else 5,
                        "seed": None,
                        "prefill": [],
                        "tokens": [{"id": 1, "text": text, "logprob": max(yes, no), "special": False}],
                        "top_tokens": [top[:n]] if n else None,
                    },
                }
                # TGI answers a list on "/" (the client's endpoint) and an object on "/generate".
                self._send(200, [payload] if self.path == "/" else payload)

            def _send(self, code: int, payload: Any) -> None:
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "TGIDouble":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


if __name__ == "__main__":  # used by the kill -9 test to run the double in its own process
    import sys

    with TGIDouble(delay_s=float(sys.argv[1]) if len(sys.argv) > 1 else 0.0) as d:
        print(d.url, flush=True)
        threading.Event().wait()
