from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest
import torch

from maestromotif.kit import ConfigError
from maestromotif.kit.testing import running
from maestromotif.rewards.bundles import load_bundle_set, make_meta, read_manifest, write_bundle
from maestromotif.rewards.data import load_preferences
from maestromotif.rewards.model import RewardNet, pick_device
from maestromotif.rewards.scorer import RewardScorer
from maestromotif.rewards.shaping import shape_rewards
from maestromotif.v1 import reward_pb2, reward_pb2_grpc
from services.reward.server import SPEC

FAST = {"batch_wait_ms": 1.0, "reload_interval_s": 0.0}
DEVICE = str(pick_device(None))  # the service's device: CUDA when present
# On CUDA, convolutions run in TF32 by default: compare raw outputs across devices loosely there.
RAW_TOL = {"rtol": 2e-2, "atol": 2e-3} if DEVICE.startswith("cuda") else {"rtol": 1e-5, "atol": 1e-6}


def batch(trained, n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """n transitions with real messages from the synthetic set, every skill and depth change."""
    data = load_preferences(trained.pairs, trained.labels, "descender")
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, len(data), n)
    stats = np.zeros((n, 5), dtype="<f4")
    stats[:, 0] = rng.integers(-1, 2, n)
    stats[:, 1:] = rng.uniform(-1, 1, (n, 4))  # ignored by the models
    return {
        "skills": (np.arange(n) % 5).astype(np.uint8),
        "messages": np.ascontiguousarray(data.messages[rows, 0]),
        "stat_changes": stats,
        "message_counts": rng.integers(1, 4, n).astype("<f4"),
    }


def request(b: dict[str, np.ndarray]) -> reward_pb2.ScoreRequest:
    return reward_pb2.ScoreRequest(
        count=len(b["skills"]),
        skills=b["skills"].tobytes(),
        messages=b["messages"].tobytes(),
        stat_changes=b["stat_changes"].tobytes(),
        message_counts=b["message_counts"].tobytes(),
    )


def arrays(response: reward_pb2.ScoreResponse, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (
        np.frombuffer(response.raw_rewards, "<f4").reshape(n, 5),
        np.frombuffer(response.shaped_rewards, "<f4").reshape(n, 5),
        np.frombuffer(response.skill_rewards, "<f4"),
    )


def test_shaped_rewards_equal_library_function(trained) -> None:
    n = 60
    b = batch(trained, n)
    with running(SPEC, bundle_dir=trained.bundles, **FAST) as svc:
        stub = reward_pb2_grpc.RewardStub(svc.channel)
        response = stub.Score(request(b))
        info = stub.GetModelInfo(reward_pb2.GetModelInfoRequest())
    raw, shaped, own = arrays(response, n)
    lib = load_bundle_set(trained.bundles)
    assert response.model_version == lib.version == info.model_version
    with torch.no_grad():
        expected_raw = lib.ensemble(torch.from_numpy(b["messages"]), torch.from_numpy(b["stat_changes"].copy()))
    np.testing.assert_allclose(raw, expected_raw.numpy(), **RAW_TOL)
    # The same rule, the same numbers: the library function on the service's raw outputs.
    expected = shape_rewards(torch.from_numpy(raw.copy()), lib.mean, lib.std, lib.threshold,
                             torch.from_numpy(b["message_counts"].copy())).numpy()
    np.testing.assert_array_equal(shaped, expected)
    np.testing.assert_array_equal(own, shaped[np.arange(n), b["skills"]])
    assert (shaped[:, 1] > 0).any() and (shaped == 0).any()  # sparse, and the trained descender fires
    assert [s.threshold for s in info.skills][1] == pytest.approx(trained.results["descender"].meta.threshold)
    assert info.scale == pytest.approx(0.1) and info.count_exponent == 3.0 and info.device == DEVICE


def test_cache_hits_and_identical_answers(trained) -> None:
    b = batch(trained, 40, seed=1)
    with running(SPEC, bundle_dir=trained.bundles, **FAST) as svc:
        stub = reward_pb2_grpc.RewardStub(svc.channel)
        first = stub.Score(request(b))
        second = stub.Score(request(b))
        text = httpx.get(f"http://127.0.0.1:{svc.metrics_port}/metrics").text
    assert first.cache_hits == 0 and second.cache_hits == 40
    assert first.shaped_rewards == second.shaped_rewards and first.raw_rewards == second.raw_rewards
    for name in (
        "maestromotif_reward_requests_total{outcome=\"ok\"} 2.0",
        "maestromotif_reward_samples_total 80.0",
        "maestromotif_reward_batch_size_bucket",
        "maestromotif_reward_request_batch_size_bucket",
        "maestromotif_reward_latency_seconds_bucket",
        "maestromotif_reward_cache_hit_ratio 0.5",
        f"maestromotif_reward_model_info{{device=\"{DEVICE}\",version=\"{first.model_version}\"}} 1.0",
    ):
        assert name in text, name
    with running(SPEC, bundle_dir=trained.bundles, cache_enabled=False, **FAST) as svc:
        stub = reward_pb2_grpc.RewardStub(svc.channel)
        stub.Score(request(b))
        uncached = stub.Score(request(b))
    assert uncached.cache_hits == 0
    np.testing.assert_allclose(arrays(uncached, 40)[0], arrays(first, 40)[0], **RAW_TOL)


def _bad_requests(trained) -> dict[str, reward_pb2.ScoreRequest]:
    good = batch(trained, 4, seed=2)
    bad: dict[str, reward_pb2.ScoreRequest] = {}
    r = request(good)
    r.skills = bytes([0, 1, 7, 2])
    bad["skills"] = r
    r = request(good)
    r.messages = good["messages"].tobytes() + b"x"  # one message 257 bytes long
    bad["messages"] = r
    for value in (np.nan, np.inf):
        s = good["stat_changes"].copy()
        s[2, 0] = value
        r = request(good)
        r.stat_changes = s.tobytes()
        bad[f"stat_changes {value}"] = r
    s = good["stat_changes"].copy()
    s[1, 0] = 2.0
    r = request(good)
    r.stat_changes = s.tobytes()
    bad["stat_changes range"] = r
    r = request(good)
    r.stat_changes = r.stat_changes[:-4]
    bad["stat_changes length"] = r
    r = request(good)
    r.message_counts = np.array([1, 0, 1, 1], "<f4").tobytes()
    bad["message_counts"] = r
    bad["count empty"] = reward_pb2.ScoreRequest(count=0)
    big = batch(trained, 9, seed=3)
    bad["count oversized"] = request(big)
    r = request(good)
    r.count = 5
    bad["count mismatch"] = r
    return bad


def test_bad_input_invalid_argument_and_still_serving(trained) -> None:
    good = request(batch(trained, 4, seed=2))
    with running(SPEC, bundle_dir=trained.bundles, max_batch_size=8, **FAST) as svc:
        stub = reward_pb2_grpc.RewardStub(svc.channel)
        for name, bad in _bad_requests(trained).items():
            with pytest.raises(grpc.RpcError) as info:
                stub.Score(bad)
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, name
            field = name.split()[0]
            assert info.value.details().startswith(field) or field in info.value.details(), (name, info.value.details())
            assert len(stub.Score(good).skill_rewards) == 16  # 4 float32: still serving
        text = httpx.get(f"http://127.0.0.1:{svc.metrics_port}/metrics").text
    assert 'maestromotif_reward_requests_total{outcome="invalid"} 10.0' in text


def test_no_bundles_refuses_to_start_unless_init_random(tmp_path) -> None:
    with pytest.raises(ConfigError, match="bundle_dir.*train-reward"):
        with running(SPEC, bundle_dir=tmp_path / "none", **FAST):
            pass
    with running(SPEC, bundle_dir=tmp_path / "none", init_random=True, **FAST) as svc:
        info = reward_pb2_grpc.RewardStub(svc.channel).GetModelInfo(reward_pb2.GetModelInfoRequest())
        text = httpx.get(f"http://127.0.0.1:{svc.metrics_port}/metrics").text
    assert len(info.skills) == 5 and info.model_version
    assert 'maestromotif_reward_model_trained{skill="merchant"} 0.0' in text


def _new_descender(root: Path, seed: int) -> str:
    torch.manual_seed(seed)
    model = RewardNet()
    meta, weights = make_meta("descender", model, mean=0.0, std=1.0, quantiles=None, threshold=1.32,
                              num_unique_transitions=0)
    write_bundle(root, meta, weights)
    return meta.version


def test_hot_reload_under_load_without_failures(trained, tmp_path) -> None:
    root = tmp_path / "bundles"
    shutil.copytree(trained.bundles, root)
    b = batch(trained, 16, seed=4)
    errors: list[BaseException] = []
    versions: list[str] = []
    stop = threading.Event()
    with running(SPEC, bundle_dir=root, batch_wait_ms=1.0, reload_interval_s=0.05) as svc:
        stub = reward_pb2_grpc.RewardStub(svc.channel)
        old = stub.GetModelInfo(reward_pb2.GetModelInfoRequest()).model_version

        def load() -> None:
            while not stop.is_set():
                try:
                    versions.append(stub.Score(request(b), timeout=30).model_version)
                except BaseException as exc:  # noqa: BLE001 - collected and asserted below
                    errors.append(exc)

        threads = [threading.Thread(target=load) for _ in range(3)]
        for t in threads:
            t.start()
        while len(versions) < 3 and not errors:
            time.sleep(0.01)
        new_bundle = _new_descender(root, seed=11)
        deadline = time.monotonic() + 60
        new = old
        while new == old and time.monotonic() < deadline:
            time.sleep(0.05)
            new = stub.GetModelInfo(reward_pb2.GetModelInfoRequest()).model_version
        seen_new_at = len(versions)
        while len(versions) < seen_new_at + 3 and not errors and time.monotonic() < deadline:
            time.sleep(0.01)
        # A corrupt bundle is refused: the service keeps serving the last good set.
        manifest = read_manifest(root)
        bad_dir = root / manifest["skills"]["merchant"]["path"]
        (bad_dir / "weights.pt").write_bytes(b"not a state dict")
        _new_descender(root, seed=12)  # a manifest change triggers a reload attempt, which must fail
        failed = 'maestromotif_reward_model_reloads_total{result="failed"} 1.0'
        while failed not in httpx.get(f"http://127.0.0.1:{svc.metrics_port}/metrics").text:
            assert time.monotonic() < deadline, "the corrupt bundle set was never tried"
            time.sleep(0.05)
        stop.set()
        for t in threads:
            t.join()
        info = stub.GetModelInfo(reward_pb2.GetModelInfoRequest())
        final = stub.Score(request(b))
        text = httpx.get(f"http://127.0.0.1:{svc.metrics_port}/metrics").text
    assert not errors, errors[:3]
    assert new != old, "the new bundle was never picked up"
    assert old in versions and new in versions
    assert info.skills[1].bundle_version == new_bundle
    assert final.model_version == info.model_version
    # merchant's corrupted weights were refused: the reload after them failed and the old set stayed.
    assert info.model_version == new
    assert 'maestromotif_reward_model_reloads_total{result="ok"} 1.0' in text
    assert 'maestromotif_reward_model_reloads_total{result="failed"} 1.0' in text


def test_dynamic_batching_merges_concurrent_calls(trained) -> None:
    sizes: list[int] = []
    scorer = RewardScorer(trained.bundles, max_wait_s=10.0, max_merge_rows=32, on_forward=sizes.append)
    b = [batch(trained, 8, seed=10 + i) for i in range(4)]
    results: list = [None] * 4

    def call(i: int) -> None:
        results[i] = scorer.score(b[i]["skills"], b[i]["messages"], b[i]["stat_changes"], b[i]["message_counts"],
                                  use_cache=False)

    try:
        threads = [threading.Thread(target=call, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sizes == [32]  # four calls of 8 rows, one model pass
        scorer.max_wait_s = 0.0  # alone from now on: no waiting for company
        for i in range(4):
            alone = scorer.score(b[i]["skills"], b[i]["messages"], b[i]["stat_changes"], b[i]["message_counts"],
                                 use_cache=False)
            np.testing.assert_allclose(results[i].raw, alone.raw, **RAW_TOL)
    finally:
        scorer.close()


def test_unique_rows_exact_even_on_hash_collisions(monkeypatch) -> None:
    from maestromotif.rewards import scorer as scorer_module

    rng = np.random.default_rng(0)
    messages = np.zeros((200, 256), dtype=np.uint8)
    messages[:, :3] = rng.integers(0, 3, (200, 3))
    depth = rng.integers(-1, 2, 200).astype(np.float32)
    depth[:5] = -0.0
    keys = scorer_module.make_keys(messages, depth)
    rows, inverse = scorer_module.unique_rows(keys)
    np.testing.assert_array_equal(rows[inverse], keys)
    assert len(rows) == len({k.tobytes() for k in keys})
    monkeypatch.setattr(scorer_module, "_HASH_MULTIPLIERS", np.zeros(33, dtype=np.uint64))  # every hash collides
    rows2, inverse2 = scorer_module.unique_rows(keys)
    np.testing.assert_array_equal(rows2[inverse2], keys)
    assert len(rows2) == len(rows)
