"""Annotator service in-process on loopback (the kit's real server) with the embedded 0.5B model."""

from __future__ import annotations

import re
import time
import urllib.request

import grpc
import pytest

from maestromotif.annotation.schema import read_labels, read_pair_dataset, write_pair_dataset
from maestromotif.kit.testing import running
from maestromotif.v1 import annotator_pb2 as pb
from maestromotif.v1 import annotator_pb2_grpc, common_pb2
from services.annotator.server import SPEC


def _t(message: str, d0: int, d1: int) -> pb.Transition:
    stats = dict(gold=0, hp=12, hp_max=12, xp_level=1, hunger=1)
    return pb.Transition(current_message=message, stats_before=common_pb2.GameStats(depth=d0, **stats),
                         stats_after=common_pb2.GameStats(depth=d1, **stats))


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("data")
    with running(SPEC, data_root=str(root), max_pairs_per_call=4) as svc:
        yield svc, root


def test_annotate_pairs_and_info(service) -> None:
    svc, _ = service
    stub = annotator_pb2_grpc.AnnotatorStub(svc.channel)
    info = stub.GetServerInfo(common_pb2.GetServerInfoRequest())
    assert info.service == "annotator" and info.details["backend"] == "embedded"
    assert info.details["default_strategy"] == "score"
    reply = stub.AnnotatePairs(pb.AnnotatePairsRequest(skill=common_pb2.DESCENDER, pairs=[
        pb.Pair(first=_t("You descend the stairs.", 1, 2), second=_t("", 1, 1)),
        pb.Pair(first=_t("", 1, 1), second=_t("You descend the stairs.", 1, 2)),
    ]))
    assert [a.label for a in reply.annotations] == [pb.FIRST, pb.SECOND]
    assert len(reply.annotations[0].pair_id) == 32 and reply.model.startswith("qwen2.5-coder-0.5b")
    assert reply.annotations[0].first_score == pytest.approx(reply.annotations[1].second_score)
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{svc.metrics_port}/metrics", timeout=10).read().decode()
    assert 'maestromotif_annotator_annotations_total{label="0",skill="descender"}' in metrics
    assert "maestromotif_annotator_cache_hits_total 2.0" in metrics
    assert "maestromotif_annotator_llm_latency_seconds_count" in metrics
    assert "maestromotif_annotator_llm_tokens_per_second" in metrics


@pytest.mark.parametrize(
    ("request_kwargs", "message"),
    [
        (dict(skill=9, pairs=[pb.Pair(first=_t("", 1, 1), second=_t("", 1, 1))]), "skill: 9"),
        (dict(skill=0, pairs=[]), "pairs: empty"),
        (dict(skill=0, pairs=[pb.Pair(first=_t("", 1, 1), second=_t("", 1, 1))] * 5), "more than 4"),
        (dict(skill=0, pairs=[pb.Pair(first=_t("x" * 300, 1, 1), second=_t("", 1, 1))]),
         r"pairs\[0\].first.message: 300 bytes"),
        (dict(skill=0, pairs=[pb.Pair(pair_id="zz", first=_t("", 1, 1), second=_t("", 1, 1))]), "pair_id"),
    ],
)
def test_invalid_requests(service, request_kwargs, message: str) -> None:
    svc, _ = service
    stub = annotator_pb2_grpc.AnnotatorStub(svc.channel)
    with pytest.raises(grpc.RpcError) as err:
        stub.AnnotatePairs(pb.AnnotatePairsRequest(**request_kwargs))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert re.search(message, err.value.details() or "")


def test_job_on_server_storage(service, records) -> None:
    svc, root = service
    stub = annotator_pb2_grpc.AnnotatorStub(svc.channel)
    write_pair_dataset(root / "pairs", records(5), gap_steps=100)
    with pytest.raises(grpc.RpcError) as err:
        stub.StartJob(pb.StartJobRequest(pairs_dir="../outside", labels_dir="labels"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "outside the data root" in err.value.details()
    request = pb.StartJobRequest(pairs_dir="pairs", labels_dir="labels", skills=[common_pb2.ASCENDER],
                                 strategy=pb.SCORE)
    status = stub.StartJob(request)
    assert stub.StartJob(request).job_id == status.job_id  # same job, not a second one
    deadline = time.monotonic() + 120
    while status.state in (pb.RUNNING, pb.WAITING_FOR_BACKEND) and time.monotonic() < deadline:
        time.sleep(0.2)
        status = stub.GetJobStatus(pb.GetJobStatusRequest(job_id=status.job_id))
    assert status.state == pb.SUCCEEDED, status.error
    assert status.progress[0].done == status.progress[0].total == 5 and sum(status.progress[0].label_counts) == 5
    assert [j.job_id for j in stub.ListJobs(pb.ListJobsRequest()).jobs] == [status.job_id]
    labels = read_labels(root / "labels", "ascender", pairs=read_pair_dataset(root / "pairs"), require_complete=True)
    assert labels.num_rows == 5
    with pytest.raises(grpc.RpcError) as err:
        stub.GetJobStatus(pb.GetJobStatusRequest(job_id="nope"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
