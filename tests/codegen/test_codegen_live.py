"""Policies written by the real embedded model, run inside the skill controller on real NetHack.

``experiments/results/codegen/artifacts`` holds artifacts that the embedded models wrote (0.5B and
1.5B: ``experiments/codegen_models.py``, and the training policy of a fresh clone's ``make run``), each
with its transcript, model digest and validation report. The fast tests check that they are what
they say and play a full NLE episode with the validated ones inside the actors' skill controller.
The slow test generates live through the Codegen service with the embedded model.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from maestromotif.codegen import ArtifactKind
from maestromotif.codegen.artifacts import ArtifactStore, code_sha256
from maestromotif.codegen.episodes import play_episode
from maestromotif.codegen.generate import DEFAULT_CODEGEN_MODEL
from maestromotif.llm.models import get_spec
from maestromotif.tasks.specs import TASK_NAMES

MEASURED = Path(__file__).resolve().parents[2] / "experiments" / "results" / "codegen" / "artifacts"


def test_measured_artifacts_came_from_the_real_model_and_invalid_ones_do_not_load() -> None:
    """The artifacts of experiments/codegen_models.py: real 0.5B and 1.5B answers with their transcripts."""
    from maestromotif.codegen.artifacts import ArtifactError

    store = ArtifactStore(MEASURED)
    shas = sorted(p.stem for p in MEASURED.glob("*.json"))
    assert shas
    for sha in shas:
        record = store.get(sha)  # checks the file against its address
        assert record.backend == "embedded" and record.model_digest == get_spec(record.model_id).sha256
        assert code_sha256(record.code) == sha
        if record.kind == ArtifactKind.TRAINING_POLICY:
            assert "exploration" not in record.generation["examples"]  # its prompt leaves exploration out
        else:
            assert record.task in TASK_NAMES and record.task not in record.generation["examples"]  # leave-one-out
        answers = [m for m in record.transcript if m.role == "assistant"]
        assert len(answers) == record.generation["llm_calls"] == len(record.generation["rounds"])
        if not record.valid:
            with pytest.raises(ArtifactError, match="did not pass validation"):
                store.load_policy(sha)


def test_a_real_model_policy_plays_a_full_nle_episode_in_the_controller() -> None:
    """Each validated policy a real model wrote drives the actors' skill controller until the hero dies.

    The hero only searches: random actions die within ~250 steps, before the first skill run (always
    the discoverer, SKILL_TURNS long) ends and the policy is asked; on dungeon 2 a searching hero
    lives ~700 steps, so the policy chooses at least once.
    """
    import numpy as np

    from maestromotif.codegen.artifacts import ArtifactPolicyLoader
    from maestromotif.env.actions import Action
    from maestromotif.env.vec import VecEnv
    from maestromotif.skills.controller import controller_factory

    store = ArtifactStore(MEASURED)
    validated = [sha for sha in sorted(p.stem for p in MEASURED.glob("*.json")) if store.get(sha).valid]
    assert validated, "no validated real-model artifact is committed"
    search = np.array([int(Action.SEARCH)])
    for sha in validated:
        assert store.get(sha).model_id.startswith("qwen2.5-coder")
        loader = ArtifactPolicyLoader(str(MEASURED), sha)
        loader.check()
        with VecEnv([2], controller_factory=controller_factory(loader, seed=2),
                    env_kwargs={"max_episode_steps": 5_000}) as env:
            env.reset()
            ended: list = []
            for _ in range(5_001):
                *_, ended = env.step(search)
                if ended:
                    break
            assert ended and ended[0].terminated and ended[0].policy_failure is None  # the game ended in death
            stats = env.group.controllers[0].last_episode
            assert stats is not None and stats.policy_failures == 0
            assert stats.selections >= 1 and len(stats.runs) >= 2  # the policy chose the skill after the first run


@pytest.mark.slow
@pytest.mark.timeout(3600)  # minutes per LLM answer on a busy 2-core CPU
def test_compose_live_through_the_service(tmp_path: Path) -> None:
    """ComposeTask over gRPC with the embedded model: LLM, extraction, isolated validation, store, metrics."""
    from maestromotif.kit.testing import running
    from maestromotif.v1 import codegen_pb2 as pb
    from maestromotif.v1 import codegen_pb2_grpc
    from services.codegen.server import SPEC

    with running(SPEC, store_dir=str(tmp_path / "artifacts"), model=DEFAULT_CODEGEN_MODEL) as svc:
        stub = codegen_pb2_grpc.CodegenStub(svc.channel)
        reply = stub.ComposeTask(pb.ComposeTaskRequest(
            prompt="Get into the Gnomish Mines.", detector_task="gnomish",
            sampling=pb.SamplingSettings(seed=0, max_repair_rounds=1)), timeout=3000)
        art = reply.artifact
        assert art.backend == "embedded" and art.model_digest == get_spec(DEFAULT_CODEGEN_MODEL).sha256
        assert art.detector_task == "gnomish" and art.sampling.seed == 0
        transcript = json.loads(art.transcript_json)
        assert transcript[0]["role"] == "system" and transcript[-1]["role"] == "assistant"
        assert reply.attempts == sum(1 for m in transcript if m["role"] == "assistant") <= 2
        assert [c.name for c in art.validation.checks][0] == "size"
        again = stub.GetArtifact(pb.GetArtifactRequest(sha256=art.sha256))
        assert again.code == art.code
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{svc.metrics_port}/metrics", timeout=10).read().decode()
        assert 'maestromotif_codegen_generations_total{kind="task_policy"' in metrics
        assert 'maestromotif_codegen_tokens_total{direction="completion"}' in metrics
        assert "maestromotif_codegen_repair_rounds_count 1.0" in metrics
        if art.validation.valid:
            policy = ArtifactStore(tmp_path / "artifacts").load_policy(art.sha256)
            assert play_episode(policy, "gnomish", seed=1).policy_failures == 0


def test_stairs_stand_in_makes_the_policy_matter() -> None:
    """With scripted stairs the policy's choices move the hero; with random actions alone they cannot."""
    from maestromotif.skills.reference import load_reference

    stairs = play_episode(load_reference("gnomish"), "gnomish", seed=1, max_steps=400, skills="stairs")
    assert stairs.max_depth >= 2 and stairs.policy_failures == 0
    first = play_episode(load_reference("gnomish"), "gnomish", seed=1, skills="random")
    second = play_episode(load_reference("delphi"), "delphi", seed=1, skills="random")
    assert first.steps == second.steps  # same game whatever the policy (why the stairs stand-in exists)
    with pytest.raises(ValueError, match="skills"):
        play_episode(load_reference("gnomish"), "gnomish", seed=1, skills="trained")
