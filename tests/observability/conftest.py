"""Shared helpers of the observability tests: the real Prometheus binaries.

Debian's ``prometheus`` package (2.42) brings ``prometheus`` and ``promtool``. Without it
the tests skip with the reason, except in CI (``CI`` set), where a missing binary fails.
"""

from __future__ import annotations

import os
import shutil

import pytest


def require_binary(name: str) -> str:
    path = shutil.which(name)
    if path:
        return path
    reason = f"{name} not found on PATH: install Debian's prometheus package (apt-get install -y prometheus)"
    if os.environ.get("CI"):
        pytest.fail(reason + " [CI is set, so this is a failure, not a skip]")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def promtool() -> str:
    return require_binary("promtool")


@pytest.fixture(scope="session")
def prometheus() -> str:
    return require_binary("prometheus")
