"""Fuzz every RPC of the reward service (Score, GetModelInfo) with random and mutated messages."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import numpy as np
import pytest
from fuzzkit import ALLOWED, RSS_BOUND_BYTES, Tally, code_of, open_channel, raw_unary, rss
from hypothesis import given, settings
from hypothesis import strategies as st

from maestromotif.kit import load_spec
from maestromotif.kit.testing import LocalService, running
from maestromotif.v1 import reward_pb2, reward_pb2_grpc

SCORE = "/maestromotif.v1.Reward/Score"
INFO = "/maestromotif.v1.Reward/GetModelInfo"
MAX_MESSAGE = 4 * 1024 * 1024  # the fuzzed server's bound: cheap to exceed
FIELDS = ("skills", "messages", "stat_changes", "message_counts")
FLOAT_FIELDS = ("stat_changes", "message_counts")
SPECIAL_FLOATS = (np.nan, np.inf, -np.inf, 1e38, -1e38, 2.0, -0.0, 0.5, 1.0)


@pytest.fixture(scope="module")
def reward() -> Iterator[LocalService]:
    with running(load_spec("reward"), init_random=True, threads=1, max_batch_size=64,
                 max_message_bytes=MAX_MESSAGE, reload_interval_s=0) as svc:
        yield svc


@pytest.fixture(scope="module")
def chan(reward: LocalService) -> Iterator[grpc.Channel]:
    channel = open_channel(reward.address)
    yield channel
    channel.close()


@pytest.fixture(scope="module")
def baseline(reward: LocalService, chan: grpc.Channel) -> int:
    assert_still_scores(chan)  # warm up the models and the cache before measuring
    return rss()


def valid_request(n: int, rng: np.random.Generator) -> reward_pb2.ScoreRequest:
    message = np.zeros((n, 256), np.uint8)
    message[:, :12] = rng.integers(32, 127, size=(n, 12), dtype=np.uint8)
    stat_changes = np.zeros((n, 5), "<f4")
    stat_changes[:, 0] = rng.choice([-1.0, 0.0, 1.0], size=n)
    return reward_pb2.ScoreRequest(
        count=n,
        skills=rng.integers(0, 5, size=n, dtype=np.uint8).tobytes(),
        messages=message.tobytes(),
        stat_changes=stat_changes.tobytes(),
        message_counts=rng.uniform(1.0, 4.0, size=n).astype("<f4").tobytes(),
    )


def assert_still_scores(channel: grpc.Channel) -> None:
    """After any abuse: a valid request gets well-formed, finite rewards."""
    stub = reward_pb2_grpc.RewardStub(channel)
    n = 4
    reply = stub.Score(valid_request(n, np.random.default_rng(0)), timeout=30)
    for name, per_row in (("raw_rewards", 5), ("shaped_rewards", 5), ("skill_rewards", 1)):
        values = np.frombuffer(getattr(reply, name), "<f4")
        assert values.shape == (n * per_row,) and np.isfinite(values).all(), name
    info = stub.GetModelInfo(reward_pb2.GetModelInfoRequest(), timeout=30)
    assert len(info.skills) == 5 and info.max_batch_size == 64


@st.composite
def mutated_score(draw: st.DrawFn) -> tuple[reward_pb2.ScoreRequest, str]:
    """A valid ScoreRequest with one field mutated; also says which mutation (for messages)."""
    n = draw(st.integers(1, 8))
    request = valid_request(n, np.random.default_rng(draw(st.integers(0, 2**16))))
    kind = draw(st.sampled_from(["count", "truncate", "extend", "random", "special_float", "huge", "none"]))
    name = draw(st.sampled_from(FLOAT_FIELDS if kind == "special_float" else FIELDS))
    data = bytearray(getattr(request, name))
    if kind == "count":
        request.count = draw(st.one_of(st.integers(0, 80), st.just(2**32 - 1), st.integers(0, 2**32 - 1)))
    elif kind == "truncate":
        del data[draw(st.integers(0, max(0, len(data) - 1))):]
    elif kind == "extend":
        data += draw(st.binary(min_size=1, max_size=300))
    elif kind == "random":  # same length: unknown skill ids, arbitrary message bytes, garbage floats
        data = bytearray(draw(st.binary(min_size=len(data), max_size=len(data))))
    elif kind == "special_float":
        values = np.frombuffer(bytes(data), "<f4").copy()
        values[draw(st.integers(0, len(values) - 1))] = draw(st.sampled_from(SPECIAL_FLOATS))
        data = bytearray(values.tobytes())
    elif kind == "huge":  # far beyond any valid length, yet within the server's message size
        data = bytearray(draw(st.integers(100_000, MAX_MESSAGE - 10_000)))
    if kind != "count":
        setattr(request, name, bytes(data))
    return request, f"{kind}:{name}"


@settings(settings.get_profile("fuzz"), max_examples=100)
@given(case=mutated_score())
def test_score_mutated(case: tuple[reward_pb2.ScoreRequest, str], chan: grpc.Channel, tally: Tally,
                       baseline: int) -> None:
    request, what = case
    code, reply, details = code_of(lambda: reward_pb2_grpc.RewardStub(chan).Score(request, timeout=30))
    tally.check("Score", code, f"{what}: {details}")
    if code == grpc.StatusCode.OK:
        raw = np.frombuffer(reply.raw_rewards, "<f4")
        assert raw.shape == (request.count * 5,) and np.isfinite(raw).all(), what
    else:
        assert code == grpc.StatusCode.INVALID_ARGUMENT, (what, code, details)
        # the message names the field that was wrong
        assert any(f in details for f in ("count", *FIELDS)), details


@settings(settings.get_profile("fuzz"), max_examples=60)
@given(payload=st.binary(max_size=2000), method=st.sampled_from([SCORE, INFO]))
def test_random_bytes(payload: bytes, method: str, chan: grpc.Channel, tally: Tally, baseline: int) -> None:
    """Arbitrary bytes as the serialized request: unparseable ones are refused, never a crash."""
    code, _, details = raw_unary(chan, method, payload)
    tally.check(method.rsplit("/", 1)[1] + "(bytes)", code, details)


def test_beyond_max_message_size(chan: grpc.Channel, tally: Tally, baseline: int) -> None:
    request = valid_request(2, np.random.default_rng(1))
    request.messages = bytes(MAX_MESSAGE + 1024)
    code, _, details = raw_unary(chan, SCORE, request.SerializeToString())
    tally.check("Score(oversized)", code, details)
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, details
    code, _, details = raw_unary(chan, INFO, b"\x0a" + b"\xff\xff\xff\x02" + bytes(MAX_MESSAGE))  # unknown field
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, details


def test_cancelled_and_expired_calls(chan: grpc.Channel, tally: Tally, baseline: int) -> None:
    stub = reward_pb2_grpc.RewardStub(chan)
    big = valid_request(64, np.random.default_rng(2))
    for _ in range(10):
        future = stub.Score.future(big, timeout=30)
        future.cancel()
        assert future.cancelled() or future.code() == grpc.StatusCode.OK
        code, _, details = code_of(lambda: stub.Score(big, timeout=0.0005))
        tally.check("Score(deadline)", code, details)
        assert code in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.OK), details


def test_still_serving_with_bounded_memory(reward: LocalService, chan: grpc.Channel, baseline: int) -> None:
    assert_still_scores(chan)
    grown = rss() - baseline
    assert grown < RSS_BOUND_BYTES, f"RSS grew by {grown / 2**20:.0f} MiB during the fuzzing"
    assert ALLOWED  # the module's allowed codes are the shared ones
