"""Fuzz every RPC of the learner (RegisterActor, Act, GetStatus, GetServerInfo).

Act is a bidirectional stream: besides mutated steps, streams are cancelled mid-way, opened
twice for one actor, and held open by a client that sends but never reads.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from fuzzkit import RSS_BOUND_BYTES, Tally, code_of, open_channel, raw_unary, rss
from hypothesis import given, settings
from hypothesis import strategies as st

from maestromotif.env import compact
from maestromotif.kit import load_spec
from maestromotif.kit.testing import LocalService, running
from maestromotif.v1 import common_pb2, learner_pb2, learner_pb2_grpc

SERVICE = "/maestromotif.v1.Learner/"
MAX_ENVS = 8
MAX_ACTORS = 4
REGISTER_TIMEOUT_S = 0.5
C = compact.CROP_SIZE
FIELDS = {  # name: (dtype, per-env shape)
    "tty_chars": (np.uint8, (C, C)), "tty_colors": (np.uint8, (C, C)), "messages": (np.uint8, (compact.MESSAGE_LENGTH,)),
    "stats": (np.float32, (compact.STATS_LENGTH,)), "skills": (np.uint8, ()), "message_counts": (np.float32, ()),
    "stat_changes": (np.float32, (compact.STAT_CHANGE_LENGTH,)), "rewards": (np.float32, ()), "dones": (np.uint8, ()),
    "time_outs": (np.uint8, ()),
}
FLOAT_FIELDS = [k for k, (d, _) in FIELDS.items() if d == np.float32]
SPECIAL = (np.nan, np.inf, -np.inf, 3e38, -3e38, 1e7, 0.0)


@pytest.fixture(scope="module")
def learner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalService]:
    tmp: Path = tmp_path_factory.mktemp("learner")
    with running(load_spec("reward"), init_random=True, threads=1, reload_interval_s=0) as reward:
        with running(load_spec("learner"), reward_address=reward.address, train_dir=str(tmp / "runs"),
                     preset="small", batch_size=256, max_envs_per_actor=MAX_ENVS, max_actors=MAX_ACTORS,
                     max_workers=16, register_timeout_s=REGISTER_TIMEOUT_S, checkpoint_on_exit=False) as svc:
            yield svc


@pytest.fixture(scope="module")
def chan(learner: LocalService) -> Iterator[grpc.Channel]:
    channel = open_channel(learner.address)
    yield channel
    channel.close()


@pytest.fixture(scope="module")
def stub(chan: grpc.Channel) -> learner_pb2_grpc.LearnerStub:
    return learner_pb2_grpc.LearnerStub(chan)


@pytest.fixture(scope="module")
def baseline(stub: learner_pb2_grpc.LearnerStub) -> int:
    assert_still_acts(stub)
    return rss()


def register(stub: learner_pb2_grpc.LearnerStub, n: int) -> str:
    # Slots of actors that registered and never streamed are freed after REGISTER_TIMEOUT_S.
    for _ in range(50):
        code, reply, details = code_of(lambda: stub.RegisterActor(
            learner_pb2.RegisterActorRequest(actor_name="fuzz", num_envs=n), timeout=10))
        if code == grpc.StatusCode.OK:
            return reply.actor_id
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, details
        time.sleep(REGISTER_TIMEOUT_S / 4)
    raise AssertionError("no actor slot came free")


def valid_step(actor_id: str, n: int, sequence: int = 0, seed: int = 0) -> learner_pb2.EnvStepBatch:
    rng = np.random.default_rng(seed)
    msg = learner_pb2.EnvStepBatch(actor_id=actor_id, sequence=sequence, num_envs=n)
    for name, (dtype, shape) in FIELDS.items():
        if dtype == np.uint8:
            high = {"tty_colors": 16, "skills": compact.NUM_SKILLS, "dones": 2, "time_outs": 2}.get(name, 256)
            arr = rng.integers(0, high, size=(n, *shape), dtype=np.uint8)
        else:
            arr = rng.uniform(-1, 1, size=(n, *shape)).astype("<f4")
            if name == "message_counts":
                arr = np.abs(arr) + 1
        setattr(msg, name, arr.tobytes())
    return msg


def assert_still_acts(stub: learner_pb2_grpc.LearnerStub) -> None:
    actor_id = register(stub, 2)
    replies = list(stub.Act(iter([valid_step(actor_id, 2, s, s) for s in range(3)]), timeout=60))
    assert [r.sequence for r in replies] == [0, 1, 2]
    assert all(len(r.actions) == 2 and max(r.actions) < 28 for r in replies)
    assert stub.GetStatus(learner_pb2.GetStatusRequest(), timeout=10).mode == "training"
    assert stub.GetServerInfo(common_pb2.GetServerInfoRequest(), timeout=10).service == "learner"


def settled_actor_count(stub: learner_pb2_grpc.LearnerStub) -> int:
    """Actors still held once ended streams are cleaned up and stale registrations expired.

    Registrations that never streamed (left by the fuzzing) count as connected until a later
    RegisterActor purges them; one register-and-stream round trip triggers that purge.
    """
    deadline = time.monotonic() + 10
    while True:
        time.sleep(REGISTER_TIMEOUT_S * 1.2)
        actor_id = register(stub, 1)
        assert len(list(stub.Act(iter([valid_step(actor_id, 1)]), timeout=30))) == 1
        count = stub.GetStatus(learner_pb2.GetStatusRequest(), timeout=10).connected_actors
        if count == 0 or time.monotonic() > deadline:
            return count


NAMES = st.one_of(st.text(max_size=300), st.just("x" * 100_000), st.just("\x00"))


@settings(settings.get_profile("fuzz"), max_examples=60)
@given(num_envs=st.one_of(st.integers(0, MAX_ENVS + 2), st.integers(0, 2**32 - 1)), name=NAMES,
       version=NAMES)
def test_register_fuzzed(num_envs: int, name: str, version: str, stub: learner_pb2_grpc.LearnerStub,
                         tally: Tally, baseline: int) -> None:
    request = learner_pb2.RegisterActorRequest(actor_name=name, num_envs=num_envs, version=version)
    code, _, details = code_of(lambda: stub.RegisterActor(request, timeout=10))
    tally.check("RegisterActor", code, details)
    assert code in (grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED), details


def test_registrations_without_stream_do_not_hold_slots(stub: learner_pb2_grpc.LearnerStub) -> None:
    """Registering and vanishing filled every actor slot for good (RESOURCE_EXHAUSTED forever)."""
    for _ in range(MAX_ACTORS + 2):
        code_of(lambda: stub.RegisterActor(learner_pb2.RegisterActorRequest(actor_name="ghost", num_envs=1), timeout=10))
    time.sleep(REGISTER_TIMEOUT_S * 1.5)
    reply = stub.RegisterActor(learner_pb2.RegisterActorRequest(actor_name="real", num_envs=1), timeout=10)
    assert reply.actor_id


@st.composite
def mutated_step(draw: st.DrawFn) -> tuple[str, str]:
    kind = draw(st.sampled_from(["truncate", "extend", "random", "special_float", "num_envs", "actor_id", "huge"]))
    name = draw(st.sampled_from(FLOAT_FIELDS if kind == "special_float" else list(FIELDS)))
    return kind, name


@settings(settings.get_profile("fuzz"), max_examples=70)
@given(case=mutated_step(), data=st.data())
def test_act_mutated(case: tuple[str, str], data: st.DataObject, stub: learner_pb2_grpc.LearnerStub, tally: Tally,
                     baseline: int) -> None:
    kind, name = case
    n = data.draw(st.integers(1, 3))
    actor_id = register(stub, n)
    good = valid_step(actor_id, n, 0, data.draw(st.integers(0, 1000)))
    bad = learner_pb2.EnvStepBatch()
    bad.CopyFrom(good)
    bad.sequence = 1
    raw = bytearray(getattr(bad, name))
    if kind == "truncate":
        del raw[data.draw(st.integers(0, max(0, len(raw) - 1))):]
    elif kind == "extend":
        raw += data.draw(st.binary(min_size=1, max_size=200))
    elif kind == "random":
        raw = bytearray(data.draw(st.binary(min_size=len(raw), max_size=len(raw))))
    elif kind == "special_float":
        values = np.frombuffer(bytes(raw), "<f4").copy()
        values[data.draw(st.integers(0, len(values) - 1))] = data.draw(st.sampled_from(SPECIAL))
        raw = bytearray(values.tobytes())
    elif kind == "huge":
        raw = bytearray(data.draw(st.integers(100_000, 2_000_000)))
    elif kind == "num_envs":
        bad.num_envs = data.draw(st.integers(0, 2**32 - 1))
    elif kind == "actor_id":
        bad.actor_id = data.draw(NAMES)
    setattr(bad, name, bytes(raw))
    # the mutated step comes first or after a valid one
    steps = [bad] if data.draw(st.booleans()) else [good, bad]
    try:
        replies = list(stub.Act(iter(steps), timeout=30))
        code, details = grpc.StatusCode.OK, ""
    except grpc.RpcError as exc:
        replies, code, details = [], exc.code(), exc.details() or ""
    tally.check("Act", code, f"{kind}:{name}: {details}")
    if code == grpc.StatusCode.OK:
        assert len(replies) == len(steps)
    else:
        assert code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND), (kind, name, code, details[:300])
        assert len(details) < 1000, details[:300]  # the status travels in trailers: a bounded message


def test_two_streams_for_one_actor(stub: learner_pb2_grpc.LearnerStub, tally: Tally) -> None:
    actor_id = register(stub, 1)
    gate = threading.Event()

    def first_stream() -> Iterator[learner_pb2.EnvStepBatch]:
        yield valid_step(actor_id, 1, 0)
        gate.wait(10)

    first = stub.Act(first_stream(), timeout=30)
    assert next(first).sequence == 0
    code, _, details = code_of(lambda: list(stub.Act(iter([valid_step(actor_id, 1, 0)]), timeout=10)))
    tally.check("Act(second stream)", code, details)
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "already" in details, (code, details)
    gate.set()
    assert list(first) == []  # the first stream still ends normally


def test_cancelled_streams_free_their_actor(stub: learner_pb2_grpc.LearnerStub, tally: Tally) -> None:
    for i in range(5):
        actor_id = register(stub, 2)
        stop = threading.Event()

        def steps() -> Iterator[learner_pb2.EnvStepBatch]:
            yield valid_step(actor_id, 2, 0)
            stop.wait(10)

        call = stub.Act(steps(), timeout=30)
        assert next(call).sequence == 0
        call.cancel()
        stop.set()
        assert call.code() == grpc.StatusCode.CANCELLED
    assert settled_actor_count(stub) == 0


def test_client_that_never_reads(stub: learner_pb2_grpc.LearnerStub, tally: Tally) -> None:
    """Sends steps as fast as allowed and never reads an action, until its deadline."""
    actor_id = register(stub, 2)
    sent = 0

    def steps() -> Iterator[learner_pb2.EnvStepBatch]:
        nonlocal sent
        for s in range(10_000):
            sent += 1
            yield valid_step(actor_id, 2, s)

    call = stub.Act(steps(), timeout=3.0)  # never iterated
    time.sleep(1.0)
    # meanwhile, others are served
    assert_still_acts(stub)
    code, _, details = code_of(lambda: list(call))
    tally.check("Act(never reads)", code, details)
    assert code in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.OK), details
    assert settled_actor_count(stub) == 0


@settings(settings.get_profile("fuzz"), max_examples=40)
@given(payload=st.binary(max_size=2000), method=st.sampled_from(["RegisterActor", "GetStatus", "GetServerInfo"]))
def test_random_bytes(payload: bytes, method: str, chan: grpc.Channel, tally: Tally, baseline: int) -> None:
    code, _, details = raw_unary(chan, SERVICE + method, payload, timeout=10)
    tally.check(method + "(bytes)", code, details)


@settings(settings.get_profile("fuzz"), max_examples=20)
@given(payloads=st.lists(st.binary(max_size=500), min_size=1, max_size=3))
def test_act_random_bytes(payloads: list[bytes], chan: grpc.Channel, tally: Tally, baseline: int) -> None:
    call = chan.stream_stream(SERVICE + "Act", request_serializer=None, response_deserializer=None)
    try:
        list(call(iter(payloads), timeout=10))
        code, details = grpc.StatusCode.OK, ""
    except grpc.RpcError as exc:
        code, details = exc.code(), exc.details() or ""
    tally.check("Act(bytes)", code, details)


def test_beyond_max_message_size(learner: LocalService, chan: grpc.Channel) -> None:
    request = learner_pb2.RegisterActorRequest(actor_name="n" * (learner.config.max_message_bytes + 10), num_envs=1)
    code, _, details = raw_unary(chan, SERVICE + "RegisterActor", request.SerializeToString())
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, details


def test_still_serving_with_bounded_memory(stub: learner_pb2_grpc.LearnerStub, baseline: int) -> None:
    assert_still_acts(stub)
    grown = rss() - baseline
    assert grown < RSS_BOUND_BYTES, f"RSS grew by {grown / 2**20:.0f} MiB during the fuzzing"
