"""scripts/images.py pieces that need no Docker daemon."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import images  # noqa: E402

LOG = """\
#1 [internal] load build definition from Dockerfile
#4 [python-base 1/1] FROM docker.io/local/python:3.11-slim-bookworm
#7 [venv-cpu 1/2] RUN python3 -m venv /opt/venv
#7 CACHED
#12 [venv-cpu 2/2] RUN pip install -r core.lock
#12 DONE 460.2s
#13 [runtime-cpu 1/2] COPY --from=venv-cpu /opt/venv /opt/venv
#13 CACHED
"""


def test_build_steps_count_cached_ones() -> None:
    assert images.build_steps(LOG) == (3, 2)  # internal and FROM lines are not build steps


def test_image_names_follow_the_convention() -> None:
    names = {t.name: t.image("0.1.0") for t in images.TARGETS}
    assert names == {
        "learner": "maestromotif/learner:0.1.0", "actors": "maestromotif/actors:0.1.0",
        "reward": "maestromotif/reward:0.1.0", "annotator": "maestromotif/annotator:0.1.0",
        "codegen": "maestromotif/codegen:0.1.0", "learner-cuda": "maestromotif/learner:0.1.0-cuda",
        "reward-cuda": "maestromotif/reward:0.1.0-cuda",
    }
    assert set(images.SMOKE) == set(names)  # every image has a smoke workload


def test_select_targets() -> None:
    assert [t.name for t in images.select_targets("reward-cuda,actors", False)] == ["actors", "reward-cuda"]
    assert all(not t.cuda for t in images.select_targets(None, True))
    with pytest.raises(images.ImagesError, match="unknown agent"):
        images.select_targets("agent", False)
