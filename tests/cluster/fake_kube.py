"""A loopback HTTP server that answers like the Kubernetes API for the endpoints the cluster
CLI uses (a test double for the code that calls the API; there is no API server here).
It records every request (method, path, query, headers, JSON body) for assertions."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

TOKEN = "test-token-123"
Handler = Callable[["Request"], tuple[int, Any]]


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


@dataclass
class FakeKube:
    routes: dict[tuple[str, str], Handler | tuple[int, Any]] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)

    def __post_init__(self) -> None:
        fake = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _handle(self) -> None:
                url = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                req = Request(self.command, unquote(url.path), parse_qs(url.query), {k.lower(): v for k, v in self.headers.items()},
                              json.loads(raw) if raw else None)
                fake.requests.append(req)
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    status, body = 401, _status(401, "Unauthorized")
                else:
                    route = fake.routes.get((self.command, req.path))
                    if route is None:
                        status, body = 404, _status(404, f"the server could not find the requested resource ({req.path})")
                    else:
                        status, body = route(req) if callable(route) else route
                data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain" if isinstance(body, str) else "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FakeKube:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def kubeconfig(self, path: Path, namespace: str = "default") -> Path:
        path.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "me", "user": {"token": TOKEN}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "me", "namespace": namespace}}],
        }))
        return path

    def calls(self, method: str | None = None) -> list[tuple[str, str]]:
        return [(r.method, r.path) for r in self.requests if method is None or r.method == method]


def _status(code: int, message: str) -> dict[str, Any]:
    reason = {401: "Unauthorized", 404: "NotFound", 409: "AlreadyExists", 403: "Forbidden"}.get(code, "")
    return {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message, "reason": reason, "code": code}


def status(code: int, message: str) -> tuple[int, Any]:
    return code, _status(code, message)


def pod(name: str, component: str, phase: str = "Running", ready: bool = True, restarts: int = 0,
        node: str = "node-1", release: str = "prod") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "ml",
                     "labels": {"app.kubernetes.io/instance": release, "app.kubernetes.io/component": component}},
        "spec": {"containers": [{"name": component, "image": f"reg/mm-{component}:1.0"}], "nodeName": node},
        "status": {"phase": phase, "startTime": "2026-01-01T00:00:00Z",
                   "containerStatuses": [{"name": component, "ready": ready, "restartCount": restarts,
                                          "image": f"reg/mm-{component}:1.0", "imageID": ""}]},
    }


def deployment(name: str, component: str, replicas: int, ready: int, image: str = "reg/mm-actors:1.0",
               pull_secrets: list[str] | None = None, service_account: str | None = None) -> dict[str, Any]:
    pod: dict[str, Any] = {"containers": [{"name": component, "image": image}]}
    if pull_secrets:
        pod["imagePullSecrets"] = [{"name": n} for n in pull_secrets]
    if service_account:
        pod["serviceAccountName"] = service_account
    return {
        "metadata": {"name": name, "namespace": "ml",
                     "labels": {"app.kubernetes.io/instance": "prod", "app.kubernetes.io/component": component}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app.kubernetes.io/component": component}},
                 "template": {"metadata": {}, "spec": pod}},
        "status": {"replicas": replicas, "readyReplicas": ready},
    }


def scale(name: str, replicas: int) -> dict[str, Any]:
    return {"kind": "Scale", "apiVersion": "autoscaling/v1", "metadata": {"name": name, "namespace": "ml"},
            "spec": {"replicas": replicas}, "status": {"replicas": replicas}}


def job(name: str, completions: int, succeeded: int = 0, active: int = 0, failed: int = 0,
        conditions: list[dict[str, str]] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": "ml"},
        "spec": {"completions": completions, "completionMode": "Indexed",
                 "template": {"spec": {"containers": [{"name": "annotate", "image": "x"}], "restartPolicy": "Never"}}},
        "status": {"succeeded": succeeded, "active": active, "failed": failed, "conditions": conditions or []},
    }
