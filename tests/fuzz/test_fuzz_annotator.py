"""Fuzz every RPC of the annotator (AnnotatePairs, StartJob, GetJobStatus, ListJobs, GetServerInfo).

The embedded LLM loads once for the module. Mutations that leave a request valid would run the
LLM; they are called with a short deadline (DEADLINE_EXCEEDED is a proper answer), and one real
annotation at the end shows the service still labels pairs.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from fuzzkit import RSS_BOUND_BYTES, Tally, code_of, open_channel, raw_unary, rss
from hypothesis import given, settings
from hypothesis import strategies as st

from maestromotif.kit import load_spec
from maestromotif.kit.testing import LocalService, running
from maestromotif.v1 import annotator_pb2, annotator_pb2_grpc, common_pb2

SERVICE = "/maestromotif.v1.Annotator/"
METHODS = ("AnnotatePairs", "StartJob", "GetJobStatus", "ListJobs", "GetServerInfo")
INT32 = st.one_of(st.integers(-(2**31), 2**31 - 1), st.sampled_from([-1, 5, 7, 2**31 - 1, -(2**31)]))
ENUM = st.one_of(st.integers(-3, 8), st.sampled_from([2**31 - 1, -(2**31)]))
NASTY_TEXT = st.one_of(
    st.text(max_size=300),
    st.sampled_from(["", "\x00", "a\x00b", "../../etc", "/etc", "/", ".", "..", "~", "\n", "x" * 5000,
                     ("y" * 255 + "/") * 30, "é" * 300, "\ud7ff" * 10, "%s%n", "pairs/../../.."]),
    st.text(min_size=1000, max_size=20_000),
)


@pytest.fixture(scope="module")
def annotator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalService]:
    root = tmp_path_factory.mktemp("annotator")
    (root / "pairs").mkdir()
    with running(load_spec("annotator"), data_root=str(root), max_pairs_per_call=2, max_jobs=2) as svc:
        yield svc


@pytest.fixture(scope="module")
def chan(annotator: LocalService) -> Iterator[grpc.Channel]:
    channel = open_channel(annotator.address)
    yield channel
    channel.close()


@pytest.fixture(scope="module")
def baseline(chan: grpc.Channel) -> int:
    assert_still_annotates(chan)  # the first annotation warms the model up
    return rss()


def transition(prev: str = "", current: str = "You find a staircase down.", depth: int = 1) -> annotator_pb2.Transition:
    return annotator_pb2.Transition(
        previous_message=prev, current_message=current,
        stats_before=common_pb2.GameStats(depth=depth, gold=0, hp=12, hp_max=12, xp_level=1, hunger=0),
        stats_after=common_pb2.GameStats(depth=depth + 1, gold=0, hp=12, hp_max=12, xp_level=1, hunger=0),
    )


def valid_request() -> annotator_pb2.AnnotatePairsRequest:
    return annotator_pb2.AnnotatePairsRequest(
        skill=common_pb2.DESCENDER,
        pairs=[annotator_pb2.Pair(first=transition(), second=transition(current="It's a wall.", depth=2))],
        strategy=annotator_pb2.STRATEGY_DEFAULT,
    )


def assert_still_annotates(channel: grpc.Channel) -> None:
    stub = annotator_pb2_grpc.AnnotatorStub(channel)
    reply = stub.AnnotatePairs(valid_request(), timeout=120)
    assert len(reply.annotations) == 1 and len(reply.annotations[0].pair_id) == 32
    assert reply.annotations[0].label in (annotator_pb2.FIRST, annotator_pb2.SECOND, annotator_pb2.TIE,
                                          annotator_pb2.UNPARSED)
    assert stub.GetServerInfo(common_pb2.GetServerInfoRequest(), timeout=30).service == "annotator"


@st.composite
def mutated_pairs(draw: st.DrawFn) -> tuple[annotator_pb2.AnnotatePairsRequest, str]:
    request = valid_request()
    kind = draw(st.sampled_from(["skill", "strategy", "empty", "too_many", "message", "stats", "pair_id"]))
    pair = request.pairs[0]
    side = draw(st.sampled_from(["first", "second"]))
    if kind == "skill":
        request.skill = draw(ENUM)
    elif kind == "strategy":
        request.strategy = draw(ENUM)
    elif kind == "empty":
        del request.pairs[:]
    elif kind == "too_many":
        request.pairs.extend([pair] * draw(st.integers(2, 200)))
    elif kind == "message":
        field = draw(st.sampled_from(["previous_message", "current_message"]))
        setattr(getattr(pair, side), field, draw(NASTY_TEXT))
    elif kind == "stats":
        stats = getattr(getattr(pair, side), draw(st.sampled_from(["stats_before", "stats_after"])))
        setattr(stats, draw(st.sampled_from(["depth", "gold", "hp", "hp_max", "xp_level", "hunger"])), draw(INT32))
    elif kind == "pair_id":
        pair.pair_id = draw(st.one_of(NASTY_TEXT, st.just("0" * 32 + "\n"), st.just("A" * 32),
                                      st.text(alphabet="0123456789abcdef", min_size=31, max_size=33)))
    return request, kind


@settings(settings.get_profile("fuzz"), max_examples=80)
@given(case=mutated_pairs())
def test_annotate_pairs_mutated(case: tuple[annotator_pb2.AnnotatePairsRequest, str], chan: grpc.Channel,
                                tally: Tally, baseline: int) -> None:
    request, kind = case
    stub = annotator_pb2_grpc.AnnotatorStub(chan)
    # A mutation that stays valid runs the LLM: a short deadline keeps the fuzzing fast.
    code, reply, details = code_of(lambda: stub.AnnotatePairs(request, timeout=1.0))
    tally.check("AnnotatePairs", code, f"{kind}: {details}")
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        assert any(w in details for w in ("skill", "strategy", "pairs")), details


def test_pair_id_with_trailing_newline_is_refused(chan: grpc.Channel) -> None:
    """`^[0-9a-f]{32}$` also matched 32 hex digits followed by a newline."""
    request = valid_request()
    request.pairs[0].pair_id = "0" * 32 + "\n"
    code, _, details = code_of(lambda: annotator_pb2_grpc.AnnotatorStub(chan).AnnotatePairs(request, timeout=10))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "pair_id" in details, (code, details)


@st.composite
def start_jobs(draw: st.DrawFn) -> annotator_pb2.StartJobRequest:
    return annotator_pb2.StartJobRequest(
        pairs_dir=draw(st.one_of(NASTY_TEXT, st.just("pairs"))),
        labels_dir=draw(st.one_of(NASTY_TEXT, st.just("labels"))),
        skills=draw(st.lists(ENUM, max_size=8)),
        shard_index=draw(st.integers(0, 2**32 - 1)),
        num_shards=draw(st.integers(0, 2**32 - 1)),
        strategy=draw(ENUM),
    )


@settings(settings.get_profile("fuzz"), max_examples=80)
@given(request=start_jobs())
def test_start_job_fuzzed(request: annotator_pb2.StartJobRequest, chan: grpc.Channel, tally: Tally,
                          baseline: int) -> None:
    code, _, details = code_of(lambda: annotator_pb2_grpc.AnnotatorStub(chan).StartJob(request, timeout=10))
    tally.check("StartJob", code, f"{request.pairs_dir[:80]!r} {request.labels_dir[:80]!r}: {details}")
    # No pair dataset lies under the data root: nothing may start.
    assert code != grpc.StatusCode.OK, details
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        assert any(w in details for w in ("pairs_dir", "labels_dir", "skills", "shard_index", "strategy")), details


@settings(settings.get_profile("fuzz"), max_examples=40)
@given(job_id=NASTY_TEXT)
def test_get_job_status_fuzzed(job_id: str, chan: grpc.Channel, tally: Tally, baseline: int) -> None:
    stub = annotator_pb2_grpc.AnnotatorStub(chan)
    code, _, details = code_of(lambda: stub.GetJobStatus(annotator_pb2.GetJobStatusRequest(job_id=job_id), timeout=10))
    tally.check("GetJobStatus", code, details)
    assert code == grpc.StatusCode.NOT_FOUND and len(details) < 1000, details  # the id is cut to 64 chars


@settings(settings.get_profile("fuzz"), max_examples=60)
@given(payload=st.binary(max_size=3000), method=st.sampled_from(METHODS))
def test_random_bytes(payload: bytes, method: str, chan: grpc.Channel, tally: Tally, baseline: int) -> None:
    code, _, details = raw_unary(chan, SERVICE + method, payload, timeout=1.0)
    tally.check(method + "(bytes)", code, details)


def test_beyond_max_message_size(annotator: LocalService, chan: grpc.Channel) -> None:
    limit = annotator.config.max_message_bytes
    request = annotator_pb2.StartJobRequest(pairs_dir="p" * (limit + 10))
    code, _, details = raw_unary(chan, SERVICE + "StartJob", request.SerializeToString())
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, details


def test_still_serving_with_bounded_memory(chan: grpc.Channel, baseline: int) -> None:
    assert_still_annotates(chan)
    stub = annotator_pb2_grpc.AnnotatorStub(chan)
    assert len(stub.ListJobs(annotator_pb2.ListJobsRequest(), timeout=10).jobs) == 0
    grown = rss() - baseline
    assert grown < RSS_BOUND_BYTES, f"RSS grew by {grown / 2**20:.0f} MiB during the fuzzing"
