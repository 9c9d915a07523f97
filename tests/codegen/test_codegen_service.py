"""Codegen service on loopback (the kit's real server).

The fast tests point the service at an OpenAI-compatible URL where nothing listens: every RPC
that needs no LLM is exercised for real, and generation requests either fail validation of
their arguments before any LLM call or get UNAVAILABLE. The live generation with the embedded
model is in ``test_codegen_live.py`` (slow).
"""

from __future__ import annotations

import json
import re
import socket
import urllib.request
from pathlib import Path

import grpc
import pytest

from maestromotif.kit.testing import running
from maestromotif.skills.reference import reference_source
from maestromotif.v1 import codegen_pb2 as pb
from maestromotif.v1 import codegen_pb2_grpc, common_pb2
from services.codegen.server import SPEC


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("codegen")
    with running(SPEC, backend="openai", llm_url=f"http://127.0.0.1:{_closed_port()}", model="nothing-listens",
                 store_dir=str(root / "artifacts"), llm_timeout_s=2.0, queue_timeout_s=5.0) as svc:
        yield svc, root


def _stub(svc) -> codegen_pb2_grpc.CodegenStub:
    return codegen_pb2_grpc.CodegenStub(svc.channel)


def _metrics(svc) -> str:
    return urllib.request.urlopen(f"http://127.0.0.1:{svc.metrics_port}/metrics", timeout=10).read().decode()


def test_server_info(service) -> None:
    svc, root = service
    info = _stub(svc).GetServerInfo(common_pb2.GetServerInfoRequest())
    assert info.service == "codegen" and info.model_version == "nothing-listens"
    assert info.details["backend"] == "openai" and info.details["max_repair_rounds"] == "3"


def test_validate_code_valid_and_hostile(service) -> None:
    svc, _ = service
    stub = _stub(svc)
    ok = stub.ValidateCode(pb.ValidateCodeRequest(code=reference_source("gnomish"), kind=pb.TASK_POLICY))
    assert ok.valid and [c.name for c in ok.checks][:3] == ["size", "parse", "allow-list"]
    assert all(c.passed for c in ok.checks)
    bad = stub.ValidateCode(pb.ValidateCodeRequest(
        code="import subprocess\nSKILL_TURNS = 5\ndef start(m):\n    pass\ndef choose_skill(s, m):\n    return 0\n",
        kind=pb.TASK_POLICY))
    assert not bad.valid
    failed = [c for c in bad.checks if not c.passed]
    assert failed[0].name == "allow-list" and "subprocess" in failed[0].detail
    # the service answers the next valid request after a hostile one
    assert stub.ValidateCode(pb.ValidateCodeRequest(code=reference_source("delphi"), kind=pb.TASK_POLICY)).valid
    metrics = _metrics(svc)
    assert 'maestromotif_codegen_stage_verdicts_total{stage="allow-list",verdict="fail"}' in metrics
    assert 'maestromotif_codegen_stage_verdicts_total{stage="parse",verdict="pass"}' in metrics


@pytest.mark.parametrize(
    ("method", "request_msg", "message"),
    [
        ("ValidateCode", pb.ValidateCodeRequest(code="x = 1", kind=pb.ARTIFACT_KIND_UNSPECIFIED), "kind"),
        ("ValidateCode", pb.ValidateCodeRequest(code="#" * (64 * 1024 + 1), kind=pb.TASK_POLICY), "more than 65536"),
        ("GetArtifact", pb.GetArtifactRequest(sha256="../../etc/passwd"), "64 lower-case hex"),
        ("ComposeTask", pb.ComposeTaskRequest(prompt=""), "prompt: empty"),
        ("ComposeTask", pb.ComposeTaskRequest(prompt="x" * 4001), "more than 4000"),
        ("ComposeTask", pb.ComposeTaskRequest(prompt="Go down.", task_name="no spaces"), "task_name"),
        ("ComposeTask", pb.ComposeTaskRequest(prompt="Go down.", detector_task="moon"), "detector_task"),
        ("ComposeTask", pb.ComposeTaskRequest(prompt="Go down.", sampling=pb.SamplingSettings(max_tokens=100_000)),
         "max_tokens"),
        ("ComposeTask", pb.ComposeTaskRequest(prompt="Go down.", sampling=pb.SamplingSettings(samples=9)), "samples"),
        ("ComposeTask", pb.ComposeTaskRequest(prompt="Go down.", sampling=pb.SamplingSettings(max_repair_rounds=4)),
         "max_repair_rounds"),
        ("GenerateSkillFunctions", pb.GenerateSkillFunctionsRequest(skills=[7]), "skills: 7"),
    ],
)
def test_invalid_requests(service, method: str, request_msg, message: str) -> None:
    svc, _ = service
    with pytest.raises(grpc.RpcError) as err:
        getattr(_stub(svc), method)(request_msg)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert re.search(message, err.value.details() or ""), err.value.details()


def test_unknown_artifact_and_backend_down(service) -> None:
    svc, _ = service
    stub = _stub(svc)
    with pytest.raises(grpc.RpcError) as err:
        stub.GetArtifact(pb.GetArtifactRequest(sha256="0" * 64))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as err:
        stub.ComposeTask(pb.ComposeTaskRequest(prompt="Go down five levels."))
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE and "LLM backend unavailable" in err.value.details()
    # still serving afterwards
    assert stub.GetServerInfo(common_pb2.GetServerInfoRequest()).service == "codegen"


def test_get_artifact_returns_a_stored_record(service) -> None:
    """An artifact written by the library's store comes back over gRPC with its transcript."""
    from maestromotif.codegen import ArtifactKind
    from maestromotif.codegen.artifacts import ArtifactRecord, ArtifactStore, Message, Sampling
    from maestromotif.codegen.validate import validate_code

    svc, root = service
    code = reference_source("buc")
    report = validate_code(code, ArtifactKind.TASK_POLICY)
    record = ArtifactRecord(kind=ArtifactKind.TASK_POLICY, task="buc", code=code, prompt="p", backend="openai",
                            model_id="m", model_digest="d",
                            sampling=Sampling(temperature=0.2, seed=3, max_tokens=100, repair_rounds=0),
                            transcript=(Message(role="user", content="p"),), validation=report.to_dict(),
                            detector_task="buc")
    sha = ArtifactStore(Path(root / "artifacts")).put(record)
    art = _stub(svc).GetArtifact(pb.GetArtifactRequest(sha256=sha))
    assert art.sha256 == sha and art.code == code and art.kind == pb.TASK_POLICY and art.validation.valid
    assert art.sampling.seed == 3 and art.detector_task == "buc"
    assert json.loads(art.transcript_json) == [{"role": "user", "content": "p"}]
