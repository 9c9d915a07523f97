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


def test_images_test_starts_every_service_the_tree_serves() -> None:
    """`make images-test` starts a container for every service the kit knows, the agent
    (served from the actors image) included, and exercises codegen and agent beyond health."""
    services = images.available_services()
    assert {"learner", "actors", "reward", "annotator", "codegen", "agent"} <= set(services)
    plan = images.serving_plan(list(images.TARGETS), services)
    assert {service for service, _ in plan} == set(services)
    assert ("agent", "actors") in {(service, t.name) for service, t in plan}
    cpu_plan = images.serving_plan(images.select_targets(None, True), services)
    assert {service for service, _ in cpu_plan} == set(services)  # --no-cuda still covers all
    assert set(images.WORKLOADS) == {"codegen", "agent"}


def test_actors_image_is_configured_for_the_agent_mode() -> None:
    """The actors target exposes the agent's fixed ports and binds them on all interfaces."""
    text = (ROOT / "docker" / "Dockerfile").read_text()
    actors = text.split("AS actors\n", 1)[1].split("\nFROM ", 1)[0]
    assert "EXPOSE 50052 9092 50056 9096" in actors
    for env in ("MAESTROMOTIF_AGENT_HOST=0.0.0.0", "MAESTROMOTIF_AGENT_PORT=50056",
                "MAESTROMOTIF_AGENT_METRICS_PORT=9096"):
        assert env in actors


def test_llm_smoke_runs_each_services_default_model() -> None:
    """The LLM images' smoke check loads the model its service uses by default, so an image
    missing the code model (codegen's 1.5B) fails `make images-test`."""
    assert "from maestromotif.llm.models import DEFAULT_MODEL as model" in images.SMOKE["annotator"]
    assert "from maestromotif.codegen.generate import DEFAULT_CODEGEN_MODEL as model" in images.SMOKE["codegen"]
    for target in ("annotator", "codegen"):
        assert "ensure_model_file(model)" in images.SMOKE[target]
