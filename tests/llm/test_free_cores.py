"""How many llama.cpp threads the embedded backend takes: free cores, or all of them for the pipeline."""

from __future__ import annotations

import os

import pytest

from maestromotif.llm.embedded import free_cores


def test_load_takes_cores_away_unless_the_machine_is_ours(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MAESTROMOTIF_LLM_THREADS", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    monkeypatch.setattr(os, "getloadavg", lambda: (3.0, 3.0, 3.0))
    assert free_cores() == 1
    # the pipeline's own previous stage made that load: it takes every core
    assert free_cores(own_machine=True) == 4
    monkeypatch.setattr(os, "getloadavg", lambda: (9.0, 9.0, 9.0))
    assert free_cores() == 1  # never zero
    monkeypatch.setenv("MAESTROMOTIF_LLM_THREADS", "3")
    assert free_cores() == 3 and free_cores(own_machine=True) == 3
    monkeypatch.setenv("MAESTROMOTIF_LLM_THREADS", "0")
    with pytest.raises(ValueError, match="MAESTROMOTIF_LLM_THREADS"):
        free_cores()
