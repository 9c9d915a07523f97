from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from maestromotif.rewards.bundles import (
    BundleError,
    load_bundle,
    load_bundle_set,
    make_meta,
    read_manifest,
    write_bundle,
)
from maestromotif.rewards.model import RewardNet


@pytest.fixture()
def copy(trained, tmp_path) -> Path:
    """A private copy of the trained bundle root, free to corrupt."""
    root = tmp_path / "bundles"
    shutil.copytree(trained.bundles, root)
    return root


def _dir(root: Path, skill: str) -> Path:
    return root / read_manifest(root)["skills"][skill]["path"]


def test_full_set_loads(trained) -> None:
    bundle_set = load_bundle_set(trained.bundles)
    assert [m.skill for m in bundle_set.metas] == ["discoverer", "descender", "ascender", "worshipper", "merchant"]
    assert [m.trained for m in bundle_set.metas] == [True, True, False, False, False]
    assert len(bundle_set.version) == 16
    assert bundle_set.threshold.tolist()[1] == pytest.approx(trained.results["descender"].meta.threshold)


def test_flipped_weight_byte_rejected(copy) -> None:
    weights = _dir(copy, "descender") / "weights.pt"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="sha256"):
        load_bundle_set(copy)


def test_edited_metadata_rejected(copy) -> None:
    meta_path = _dir(copy, "discoverer") / "bundle.json"
    meta = json.loads(meta_path.read_text())
    meta["threshold"] = -5.0
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(BundleError, match="version"):
        load_bundle(meta_path.parent)


def test_non_finite_metadata_rejected(copy) -> None:
    meta_path = _dir(copy, "discoverer") / "bundle.json"
    meta_path.write_text(meta_path.read_text().replace('"mean": ', '"mean": NaN, "x": ', 1))
    with pytest.raises(BundleError, match="non-finite"):
        load_bundle(meta_path.parent)


def test_wrong_shapes_rejected_even_with_matching_hashes(tmp_path) -> None:
    model = RewardNet()
    meta, _ = make_meta("merchant", model, mean=0.0, std=1.0, quantiles=None, threshold=1.0, num_unique_transitions=0)
    state = model.state_dict()
    state["head.1.weight"] = torch.zeros(1, 256)
    import io

    buffer = io.BytesIO()
    torch.save(state, buffer)
    meta, blob = make_meta("merchant", model, mean=0.0, std=1.0, quantiles=None, threshold=1.0,
                           num_unique_transitions=0, weights=buffer.getvalue())
    directory = write_bundle(tmp_path, meta, blob)
    with pytest.raises(BundleError, match="shape"):
        load_bundle(directory)


def test_non_finite_weights_rejected(tmp_path) -> None:
    import io

    model = RewardNet()
    state = model.state_dict()
    state["trunk.0.bias"][3] = float("inf")
    buffer = io.BytesIO()
    torch.save(state, buffer)
    meta, blob = make_meta("merchant", model, mean=0.0, std=1.0, quantiles=None, threshold=1.0,
                           num_unique_transitions=0, weights=buffer.getvalue())
    with pytest.raises(BundleError, match="non-finite"):
        load_bundle(write_bundle(tmp_path, meta, blob))


def test_invalid_statistics_refused_at_write(tmp_path) -> None:
    with pytest.raises(BundleError, match="std"):
        make_meta("merchant", RewardNet(), mean=0.0, std=0.0, quantiles=None, threshold=1.0, num_unique_transitions=0)
    with pytest.raises(BundleError, match="quantiles"):
        make_meta("merchant", RewardNet(), mean=0.0, std=1.0, quantiles=[0.0] * 5, threshold=1.0, num_unique_transitions=1)


def test_manifest_path_traversal_rejected(copy) -> None:
    path = copy / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["skills"]["merchant"]["path"] = "../elsewhere"
    path.write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="path"):
        load_bundle_set(copy)


def test_missing_skill_needs_init_random(copy) -> None:
    path = copy / "manifest.json"
    manifest = json.loads(path.read_text())
    del manifest["skills"]["merchant"]
    path.write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="merchant"):
        load_bundle_set(copy)
    filled = load_bundle_set(copy, init_random_missing=True)
    assert filled.metas[4].skill == "merchant" and not filled.metas[4].trained


def test_no_bundles_clear_error(tmp_path) -> None:
    with pytest.raises(BundleError, match="train-reward"):
        load_bundle_set(tmp_path / "nothing")
    assert all(not m.trained for m in load_bundle_set(None, init_random_missing=True).metas)
