"""Fixtures of the fuzz tests (issue 15.3); helpers are in fuzzkit.py.

Every RPC is called with random and mutated messages; each call must end with a deliberate
status (never INTERNAL/UNKNOWN from a crash in a handler) and the server must keep serving,
with bounded memory. Servers run in-process (``maestromotif.kit.testing.running``), so the
RSS measured is the test process's, which holds the servers.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from fuzzkit import Tally
from hypothesis import HealthCheck, settings

# Reproducible in CI (derandomize), bounded (max_examples), no per-example timing (deadline).
settings.register_profile(
    "fuzz",
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
)


@pytest.fixture(autouse=True)
def _no_maestromotif_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # A developer's MAESTROMOTIF_* variables must not change the servers the fuzz tests start.
    for key in list(os.environ):
        if key.startswith("MAESTROMOTIF_"):
            monkeypatch.delenv(key)


@pytest.fixture(scope="module")
def tally() -> Iterator[Tally]:
    t = Tally()
    yield t
    print("\nfuzz status codes per RPC:", {k: dict(sorted(v.items())) for k, v in sorted(t.seen.items())})
