"""Pair datasets and label sets: round trip, and malformed files rejected with a clear message."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from maestromotif.annotation import schema as S
from maestromotif.fileio import sha256_file


def test_round_trip_and_stable_ids(pairs_dir: Path, records) -> None:
    ds = S.read_pair_dataset(pairs_dir)
    assert ds.num_pairs == 24
    assert ds.manifest["gap_steps"] == 100 and len(ds.manifest["shards"]) == 3
    assert ds.table.schema.equals(S.PAIRS_SCHEMA)
    records = records(24)
    assert ds.pair_ids() == [r.pair_id for r in records]
    # the id depends on content only, not on provenance
    r = records[0]
    assert S.PairRecord(r.first, r.second, "other", 99, 5).pair_id == r.pair_id
    assert S.PairRecord(r.second, r.first).pair_id != r.pair_id
    before = S.stats_array(ds.table, "first_stats_before")
    assert before.shape == (24, 6) and before.dtype.name == "int32"


def test_dedup_and_shards(tmp_path: Path, records) -> None:
    records = records(10)
    manifest = S.write_pair_dataset(tmp_path / "p", records + records[:4], gap_steps=7)
    assert manifest["num_pairs"] == 10
    ds = S.read_pair_dataset(tmp_path / "p")
    parts = [set(ds.shard(i, 3).column("pair_id").to_pylist()) for i in range(3)]
    assert set().union(*parts) == set(ds.pair_ids()) and sum(map(len, parts)) == 10
    with pytest.raises(ValueError, match="index 3"):
        ds.shard(3, 3)


def _rewrite_shard(pairs_dir: Path, table: pa.Table, shard: int = 0) -> None:
    """Replace a shard and fix the manifest's checksum, so the content check is what fails."""
    manifest = json.loads((pairs_dir / "manifest.json").read_text())
    entry = manifest["shards"][shard]
    pq.write_table(table, pairs_dir / entry["file"])
    entry["sha256"] = sha256_file(pairs_dir / entry["file"])
    entry["num_rows"] = table.num_rows
    manifest["num_pairs"] = sum(e["num_rows"] for e in manifest["shards"])
    (pairs_dir / "manifest.json").write_text(json.dumps(manifest))


def _shard(pairs_dir: Path) -> pa.Table:
    return pq.read_table(pairs_dir / "pairs-00000.parquet")


def test_missing_column(pairs_dir: Path) -> None:
    _rewrite_shard(pairs_dir, _shard(pairs_dir).drop_columns(["second_message"]))
    with pytest.raises(S.DatasetError, match=r"pairs-00000.parquet: missing column\(s\) \['second_message'\]"):
        S.read_pair_dataset(pairs_dir)


def test_wrong_type(pairs_dir: Path) -> None:
    table = _shard(pairs_dir)
    index = table.schema.get_field_index("seed")
    table = table.set_column(index, "seed", pa.array([str(v) for v in table.column("seed").to_pylist()]))
    _rewrite_shard(pairs_dir, table)
    with pytest.raises(S.DatasetError, match="column 'seed' has type string, expected int64"):
        S.read_pair_dataset(pairs_dir)


def test_stats_wrong_length(pairs_dir: Path) -> None:
    table = _shard(pairs_dir)
    index = table.schema.get_field_index("first_stats_after")
    bad = pa.array([[1, 2, 3, 4, 5]] * table.num_rows, type=pa.list_(pa.int32(), 5))
    _rewrite_shard(pairs_dir, table.set_column(index, "first_stats_after", bad))
    with pytest.raises(S.DatasetError, match="column 'first_stats_after' has type fixed_size_list"):
        S.read_pair_dataset(pairs_dir)


def test_overlong_message(pairs_dir: Path) -> None:
    table = _shard(pairs_dir)
    messages = table.column("first_message").to_pylist()
    messages[3] = "x" * 257
    index = table.schema.get_field_index("first_message")
    _rewrite_shard(pairs_dir, table.set_column(index, "first_message", pa.array(messages)))
    with pytest.raises(S.DatasetError, match="column 'first_message' row 3: message of 257 bytes, more than 256"):
        S.read_pair_dataset(pairs_dir)


def test_non_latin1_message(pairs_dir: Path) -> None:
    table = _shard(pairs_dir)
    messages = table.column("second_prev_message").to_pylist()
    messages[2] = "caf\u00e9 \u2603"
    index = table.schema.get_field_index("second_prev_message")
    _rewrite_shard(pairs_dir, table.set_column(index, "second_prev_message", pa.array(messages)))
    with pytest.raises(S.DatasetError, match="column 'second_prev_message' row 2: character '\u2603' is not latin-1"):
        S.read_pair_dataset(pairs_dir)


def test_out_of_range_hunger(pairs_dir: Path) -> None:
    table = _shard(pairs_dir)
    rows = table.column("second_stats_after").to_pylist()
    rows[5] = [1, 0, 10, 14, 1, 9]
    index = table.schema.get_field_index("second_stats_after")
    _rewrite_shard(pairs_dir, table.set_column(index, "second_stats_after", pa.array(rows, type=S._STATS_TYPE)))
    with pytest.raises(S.DatasetError, match="column 'second_stats_after' row 5: hunger=9 outside"):
        S.read_pair_dataset(pairs_dir)


def test_duplicate_ids_across_shards(pairs_dir: Path) -> None:
    first = _shard(pairs_dir)
    second = pq.read_table(pairs_dir / "pairs-00001.parquet")
    _rewrite_shard(pairs_dir, pa.concat_tables([second.slice(0, 1), first.slice(1)]), shard=0)
    with pytest.raises(S.DatasetError, match="pairs-00001.parquet: column 'pair_id' row 0: duplicate of a row in"):
        S.read_pair_dataset(pairs_dir)


def test_bad_pair_id(pairs_dir: Path) -> None:
    table = _shard(pairs_dir)
    ids = table.column("pair_id").to_pylist()
    ids[1] = "not-hex"
    _rewrite_shard(pairs_dir, table.set_column(0, "pair_id", pa.array(ids)))
    with pytest.raises(S.DatasetError, match="column 'pair_id' row 1: 'not-hex' is not 32 hex"):
        S.read_pair_dataset(pairs_dir)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m.update(format="other"), "field 'format' is 'other'"),
        (lambda m: m.update(version=2), "field 'version' is 2"),
        (lambda m: m.update(num_pairs=25), "add up to 24, 'num_pairs' says 25"),
        (lambda m: m["shards"][0].update(file="../evil.parquet"), "is not a plain"),
        (lambda m: m["shards"][1].update(sha256="0" * 64), "does not match the manifest"),
        (lambda m: m["shards"][1].update(num_rows=-1), "num_rows: -1"),
        (lambda m: m.update(gap_steps="100"), "field 'gap_steps'"),
    ],
)
def test_bad_manifest(pairs_dir: Path, change, message: str) -> None:
    manifest = json.loads((pairs_dir / "manifest.json").read_text())
    change(manifest)
    (pairs_dir / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(S.DatasetError, match=message):
        S.read_pair_dataset(pairs_dir)


def test_manifest_not_json(pairs_dir: Path) -> None:
    (pairs_dir / "manifest.json").write_text("{nope")
    with pytest.raises(S.DatasetError, match="manifest.json: not valid JSON"):
        S.read_pair_dataset(pairs_dir)


def test_missing_shard(pairs_dir: Path) -> None:
    (pairs_dir / "pairs-00002.parquet").unlink()
    with pytest.raises(S.DatasetError, match="pairs-00002.parquet: file listed in the manifest is missing"):
        S.read_pair_dataset(pairs_dir)


def test_transition_validation() -> None:
    with pytest.raises(S.DatasetError, match="message: 300 bytes"):
        S.Transition("", "y" * 300, (1, 0, 1, 1, 1, 1), (1, 0, 1, 1, 1, 1))
    with pytest.raises(S.DatasetError, match="stats_before: expected 6 values"):
        S.Transition("", "", (1, 0, 1), (1, 0, 1, 1, 1, 1))
    assert S.message_to_bytes("Hi")[:3].tolist() == [72, 105, 0]


def test_label_sets(pairs_dir: Path, tmp_path: Path) -> None:
    ds = S.read_pair_dataset(pairs_dir)
    ids = ds.pair_ids()
    labels = tmp_path / "labels"
    part_a = S.labels_table([S.LabelRecord(i, 0, "a", 0.5, -0.5, "m", "score") for i in ids[:10]])
    part_b = S.labels_table([S.LabelRecord(i, 2, "b", model="m", strategy="compare") for i in ids[10:]])
    S.write_label_file(labels, "descender", "labels-a.parquet", part_a)
    with pytest.raises(S.DatasetError, match="incomplete|unlabelled"):
        S.read_labels(labels, "descender", pairs=ds, require_complete=True)
    manifest = S.write_label_file(labels, "descender", "labels-b.parquet", part_b)
    assert manifest["num_labels"] == 24 and manifest["label_counts"] == [10, 0, 14, 0]
    table = S.read_labels(labels, "descender", pairs=ds, require_complete=True)
    assert sorted(table.column("pair_id").to_pylist()) == sorted(ids)
    assert math.isnan(table.column("first_score").to_pylist()[-1])
    joined = S.join_labels(ds, table)
    assert joined.num_rows == 24 and "first_message" in joined.column_names
    # a second label for an already-labelled pair is refused
    with pytest.raises(S.DatasetError, match="already labelled in labels-a.parquet"):
        S.write_label_file(labels, "descender", "labels-c.parquet", part_a.slice(0, 1))
    # a label value outside 0..3 is refused on read
    bad = part_b.set_column(1, "label", pa.array([7] * part_b.num_rows, type=pa.int8()))
    path = labels / "descender" / "labels-b.parquet"
    pq.write_table(bad, path)
    with pytest.raises(S.DatasetError, match="SHA-256"):
        S.read_labels(labels, "descender")
    with pytest.raises(S.DatasetError, match="column 'label' row 0: 7 not in 0..3"):
        S.read_labels(labels, "descender", verify_sha256=False)
