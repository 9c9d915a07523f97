"""On-disk formats of pair datasets and label sets, with validating readers.

Two formats are shared between the annotator (writer) and the reward-model
trainer (reader); see ``/work/shared/docs`` and ``docs/annotation.md``:

* **Pair dataset**: a directory with ``manifest.json`` and Parquet shards
  ``pairs-00000.parquet``...; one row per pair of transitions (``PAIRS_SCHEMA``).
* **Label set**: a directory with one sub-directory per skill name holding
  Parquet files (``LABELS_SCHEMA``) and a ``manifest.json``; exactly one label
  per pair id per skill.

Everything read from disk is untrusted: readers check the manifest, checksums,
column names and types, message lengths and encodings, stat ranges and pair-id
uniqueness, and raise ``DatasetError`` naming the file, column and row.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from maestromotif.fileio import WriteError, atomic_write_bytes, directory_lock, sha256_file, write_error

# --- constants ---------------------------------------------------------------

PAIRS_FORMAT = "maestromotif.pairs"
LABELS_FORMAT = "maestromotif.labels"
FORMAT_VERSION = 1

MESSAGE_MAX_BYTES = 256  # the reward model reads 256 byte ids
PAIR_ID_HEX_LEN = 32
STATS_LEN = 6
# [depth, gold, HP, HPmax, XP level, hunger] = NLE blstats indices:
STATS_FIELDS = ("depth", "gold", "hp", "hp_max", "xp_level", "hunger")
STATS_BLSTATS_INDICES = (12, 13, 10, 11, 18, 21)
HUNGER_NAMES = ("satiated", "normal", "hungry", "weak", "fainting", "fainted", "starved")
# Bounds that any real NetHack state satisfies; anything outside is a corrupt file.
_STATS_BOUNDS = ((0, 127), (0, 2**31 - 1), (-(2**31), 2**31 - 1), (0, 2**31 - 1), (0, 30), (0, 6))

LABEL_FIRST, LABEL_SECOND, LABEL_TIE, LABEL_UNPARSED = 0, 1, 2, 3
NUM_LABELS = 4
RAW_TEXT_MAX_CHARS = 64_000  # an LLM reply is bounded by max tokens; beyond this is corrupt
MAX_SHARD_ROWS = 50_000

_STATS_TYPE = pa.list_(pa.int32(), STATS_LEN)  # fixed_size_list<int32>[6]
MESSAGE_COLUMNS = ("first_prev_message", "first_message", "second_prev_message", "second_message")
STATS_COLUMNS = ("first_stats_before", "first_stats_after", "second_stats_before", "second_stats_after")

PAIRS_SCHEMA = pa.schema(
    [
        pa.field("pair_id", pa.string(), nullable=False),
        *[pa.field(name, pa.string(), nullable=False) for name in MESSAGE_COLUMNS],
        *[pa.field(name, _STATS_TYPE, nullable=False) for name in STATS_COLUMNS],
        pa.field("source", pa.string(), nullable=False),
        pa.field("seed", pa.int64(), nullable=False),
        pa.field("gap_steps", pa.int32(), nullable=False),
    ]
)

LABELS_SCHEMA = pa.schema(
    [
        pa.field("pair_id", pa.string(), nullable=False),
        pa.field("label", pa.int8(), nullable=False),
        pa.field("raw_text", pa.string(), nullable=False),
        pa.field("first_score", pa.float32(), nullable=False),
        pa.field("second_score", pa.float32(), nullable=False),
        pa.field("model", pa.string(), nullable=False),
        pa.field("strategy", pa.string(), nullable=False),
    ]
)

_HEX_RE = re.compile(r"^[0-9a-f]{%d}$" % PAIR_ID_HEX_LEN)
_SHARD_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,128}\.parquet$")
_MAX_MANIFEST_BYTES = 16 * 1024 * 1024


class DatasetError(ValueError):
    """A pair dataset or label set on disk is malformed; the message says where and why."""


# --- transitions, pair ids ---------------------------------------------------


@dataclass(frozen=True)
class Transition:
    """One transition as the annotator sees it: two messages and the six stats at two times."""

    prev_message: str
    message: str
    stats_before: tuple[int, int, int, int, int, int]
    stats_after: tuple[int, int, int, int, int, int]

    def __post_init__(self) -> None:
        for field_name in ("prev_message", "message"):
            check_message(getattr(self, field_name), field_name)
        for field_name in ("stats_before", "stats_after"):
            check_stats(getattr(self, field_name), field_name)


@dataclass(frozen=True)
class PairRecord:
    """One pair of transitions plus provenance; ``pair_id`` is derived from the content."""

    first: Transition
    second: Transition
    source: str = ""
    seed: int = 0
    gap_steps: int = 0

    @property
    def pair_id(self) -> str:
        return compute_pair_id(self.first, self.second)

    def to_row(self) -> dict[str, Any]:
        return {
            "pair_id": self.pair_id,
            "first_prev_message": self.first.prev_message,
            "first_message": self.first.message,
            "second_prev_message": self.second.prev_message,
            "second_message": self.second.message,
            "first_stats_before": list(self.first.stats_before),
            "first_stats_after": list(self.first.stats_after),
            "second_stats_before": list(self.second.stats_before),
            "second_stats_after": list(self.second.stats_after),
            "source": self.source,
            "seed": int(self.seed),
            "gap_steps": int(self.gap_steps),
        }


def check_message(message: object, name: str = "message") -> str:
    """Validate one game message: a str of at most 256 latin-1 characters (= bytes)."""
    if not isinstance(message, str):
        raise DatasetError(f"{name}: expected a string, got {type(message).__name__}")
    try:
        encoded = message.encode("latin-1")
    except UnicodeEncodeError as exc:
        raise DatasetError(f"{name}: character {message[exc.start]!r} is not latin-1") from None
    if len(encoded) > MESSAGE_MAX_BYTES:
        raise DatasetError(f"{name}: {len(encoded)} bytes, more than {MESSAGE_MAX_BYTES}")
    return message


def check_stats(stats: Sequence[int], name: str = "stats") -> tuple[int, int, int, int, int, int]:
    """Validate a 6-vector [depth, gold, HP, HPmax, XP level, hunger]."""
    values = list(stats)
    if len(values) != STATS_LEN:
        raise DatasetError(f"{name}: expected {STATS_LEN} values {STATS_FIELDS}, got {len(values)}")
    out = []
    for field_name, value, (low, high) in zip(STATS_FIELDS, values, _STATS_BOUNDS, strict=True):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise DatasetError(f"{name}.{field_name}: expected an integer, got {type(value).__name__}")
        if not low <= int(value) <= high:
            raise DatasetError(f"{name}.{field_name}: {int(value)} outside [{low}, {high}]")
        out.append(int(value))
    return tuple(out)  # type: ignore[return-value]


def compute_pair_id(first: Transition, second: Transition) -> str:
    """Stable id: SHA-256 prefix of the pair's content (messages and stats, in order).

    Provenance (source, seed) is left out on purpose, so the same pair seen
    twice is recognised as a duplicate whatever produced it.
    """
    canonical = json.dumps(
        [
            [first.prev_message, first.message, list(first.stats_before), list(first.stats_after)],
            [second.prev_message, second.message, list(second.stats_before), list(second.stats_after)],
        ],
        ensure_ascii=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()[:PAIR_ID_HEX_LEN]


def message_to_bytes(message: str) -> np.ndarray:
    """The reward model's input: latin-1 bytes of the message, zero-padded to 256."""
    encoded = check_message(message).encode("latin-1")
    out = np.zeros(MESSAGE_MAX_BYTES, dtype=np.uint8)
    out[: len(encoded)] = np.frombuffer(encoded, dtype=np.uint8)
    return out


# --- small file helpers --------------------------------------------------------


def _atomic_write_table(path: Path, table: pa.Table) -> str:
    """Write a Parquet file atomically; returns its SHA-256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        pq.write_table(table, tmp, compression="zstd")
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        digest = sha256_file(Path(tmp))
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, (OSError, pa.ArrowException)) and not isinstance(exc, WriteError):
            raise write_error(path, exc) from exc  # a full disk names the file, not just "No space left"
        raise
    return digest


def _read_manifest(path: Path, expected_format: str) -> dict[str, Any]:
    if not path.is_file():
        raise DatasetError(f"{path}: manifest missing")
    if path.stat().st_size > _MAX_MANIFEST_BYTES:
        raise DatasetError(f"{path}: manifest larger than {_MAX_MANIFEST_BYTES} bytes")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(manifest, dict):
        raise DatasetError(f"{path}: expected a JSON object")
    if manifest.get("format") != expected_format:
        raise DatasetError(f"{path}: field 'format' is {manifest.get('format')!r}, expected {expected_format!r}")
    if manifest.get("version") != FORMAT_VERSION:
        raise DatasetError(f"{path}: field 'version' is {manifest.get('version')!r}, expected {FORMAT_VERSION}")
    return manifest


def _manifest_files(manifest: Mapping[str, Any], key: str, path: Path) -> list[dict[str, Any]]:
    entries = manifest.get(key)
    if not isinstance(entries, list):
        raise DatasetError(f"{path}: field {key!r} must be a list")
    out = []
    seen: set[str] = set()
    for i, entry in enumerate(entries):
        where = f"{path}: {key}[{i}]"
        if not isinstance(entry, dict):
            raise DatasetError(f"{where}: expected an object")
        name = entry.get("file")
        # Only plain file names inside the dataset directory: no path traversal.
        if not isinstance(name, str) or not _SHARD_NAME_RE.match(name) or name.startswith("."):
            raise DatasetError(f"{where}.file: {name!r} is not a plain *.parquet file name")
        if name in seen:
            raise DatasetError(f"{where}.file: {name!r} listed twice")
        seen.add(name)
        rows = entry.get("num_rows")
        if isinstance(rows, bool) or not isinstance(rows, int) or rows < 0:
            raise DatasetError(f"{where}.num_rows: {rows!r} is not a non-negative integer")
        digest = entry.get("sha256")
        if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise DatasetError(f"{where}.sha256: {digest!r} is not a hex SHA-256")
        out.append({"file": name, "num_rows": rows, "sha256": digest})
    return out


def _read_parquet_checked(path: Path, entry: Mapping[str, Any], schema: pa.Schema, verify_sha256: bool) -> pa.Table:
    if not path.is_file():
        raise DatasetError(f"{path}: file listed in the manifest is missing")
    if verify_sha256:
        actual = sha256_file(path)
        if actual != entry["sha256"]:
            raise DatasetError(f"{path}: SHA-256 {actual} does not match the manifest's {entry['sha256']}")
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise DatasetError(f"{path}: not a readable Parquet file ({exc})") from None
    table = _check_columns(table, schema, path)
    if table.num_rows != entry["num_rows"]:
        raise DatasetError(f"{path}: {table.num_rows} rows, manifest says {entry['num_rows']}")
    return table


def _check_columns(table: pa.Table, schema: pa.Schema, path: Path | str) -> pa.Table:
    """Names and types must match exactly (extra columns are refused too); no nulls."""
    names = set(table.column_names)
    missing = [f.name for f in schema if f.name not in names]
    if missing:
        raise DatasetError(f"{path}: missing column(s) {missing}")
    extra = [name for name in table.column_names if schema.get_field_index(name) < 0]
    if extra:
        raise DatasetError(f"{path}: unexpected column(s) {extra}")
    for field in schema:
        column = table.column(field.name)
        if not column.type.equals(field.type):
            raise DatasetError(f"{path}: column {field.name!r} has type {column.type}, expected {field.type}")
        if column.null_count:
            row = _first_true(pc.is_null(column))
            raise DatasetError(f"{path}: column {field.name!r} row {row}: null value")
    return table.select(schema.names).cast(schema)


def _first_true(mask: pa.ChunkedArray | pa.Array) -> int:
    return int(np.flatnonzero(np.asarray(mask.to_numpy(zero_copy_only=False), dtype=bool))[0])


def _check_messages(table: pa.Table, columns: Sequence[str], path: Path | str) -> None:
    for name in columns:
        column = table.column(name)
        # Latin-1 text of N chars is at most 2N UTF-8 bytes; the length check is on chars.
        too_long = pc.greater(pc.utf8_length(column), MESSAGE_MAX_BYTES)
        if pc.any(too_long).as_py():
            row = _first_true(too_long)
            length = len(column[row].as_py())
            raise DatasetError(
                f"{path}: column {name!r} row {row}: message of {length} bytes, more than {MESSAGE_MAX_BYTES}"
            )
        non_ascii = pc.invert(pc.string_is_ascii(column))
        if pc.any(non_ascii).as_py():
            for row in np.flatnonzero(np.asarray(non_ascii.to_numpy(zero_copy_only=False), dtype=bool)):
                text = column[int(row)].as_py()
                bad = next((ch for ch in text if ord(ch) > 255), None)
                if bad is not None:
                    raise DatasetError(f"{path}: column {name!r} row {int(row)}: character {bad!r} is not latin-1")


def _check_stats_columns(table: pa.Table, path: Path | str) -> None:
    for name in STATS_COLUMNS:
        values = stats_array(table, name)
        for j, (field_name, (low, high)) in enumerate(zip(STATS_FIELDS, _STATS_BOUNDS, strict=True)):
            bad = (values[:, j] < low) | (values[:, j] > high)
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                raise DatasetError(
                    f"{path}: column {name!r} row {row}: {field_name}={int(values[row, j])} outside [{low}, {high}]"
                )


def _check_pair_ids(table: pa.Table, path: Path | str, seen: dict[str, str] | None = None) -> None:
    ids = table.column("pair_id").to_pylist()
    local: dict[str, int] = {}
    for row, pair_id in enumerate(ids):
        if not _HEX_RE.match(pair_id):
            raise DatasetError(f"{path}: column 'pair_id' row {row}: {pair_id!r} is not {PAIR_ID_HEX_LEN} hex chars")
        if pair_id in local:
            raise DatasetError(f"{path}: column 'pair_id' row {row}: duplicate of row {local[pair_id]} ({pair_id})")
        local[pair_id] = row
        if seen is not None:
            if pair_id in seen:
                raise DatasetError(f"{path}: column 'pair_id' row {row}: duplicate of a row in {seen[pair_id]}")
            seen[pair_id] = str(path)


def stats_array(table: pa.Table, column: str) -> np.ndarray:
    """A stats column as an int32 array of shape [N, 6]."""
    flat = pc.list_flatten(table.column(column)).to_numpy(zero_copy_only=False)
    return np.asarray(flat, dtype=np.int32).reshape(-1, STATS_LEN)


# --- pair datasets -------------------------------------------------------------


def pairs_table(records: Iterable[PairRecord]) -> pa.Table:
    """Rows of ``PAIRS_SCHEMA`` from records (not de-duplicated)."""
    return pa.Table.from_pylist([record.to_row() for record in records], schema=PAIRS_SCHEMA)


def validate_pairs_table(table: pa.Table, where: str = "<table>", check_ids: bool = True) -> pa.Table:
    """Full content check of a pairs table; returns it cast to ``PAIRS_SCHEMA``."""
    table = _check_columns(table, PAIRS_SCHEMA, where)
    _check_messages(table, MESSAGE_COLUMNS, where)
    _check_stats_columns(table, where)
    if check_ids:
        _check_pair_ids(table, where)
    if table.num_rows and pc.any(pc.less(table.column("gap_steps"), 0)).as_py():
        row = _first_true(pc.less(table.column("gap_steps"), 0))
        raise DatasetError(f"{where}: column 'gap_steps' row {row}: negative")
    return table


def write_pair_dataset(
    out_dir: str | os.PathLike[str],
    records: Iterable[PairRecord] | pa.Table,
    *,
    gap_steps: int,
    shard_rows: int = MAX_SHARD_ROWS,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write a pair dataset (de-duplicated by pair id, first occurrence kept).

    Shards are written atomically and the manifest last, so a reader never
    sees a manifest that points at a missing or partial shard.
    """
    out = Path(out_dir)
    table = records if isinstance(records, pa.Table) else pairs_table(records)
    table = validate_pairs_table(table, str(out), check_ids=False)
    table = dedup_pairs(table)
    _check_pair_ids(table, str(out))
    out.mkdir(parents=True, exist_ok=True)
    if (out / "manifest.json").exists():
        raise DatasetError(f"{out}: already holds a pair dataset (manifest.json exists)")
    shards = []
    for index, start in enumerate(range(0, max(table.num_rows, 1), shard_rows)):
        chunk = table.slice(start, shard_rows)
        name = f"pairs-{index:05d}.parquet"
        digest = _atomic_write_table(out / name, chunk)
        shards.append({"file": name, "num_rows": chunk.num_rows, "sha256": digest})
    manifest: dict[str, Any] = {
        **(dict(extra) if extra else {}),
        "format": PAIRS_FORMAT,
        "version": FORMAT_VERSION,
        "num_pairs": table.num_rows,
        "shards": shards,
        "gap_steps": int(gap_steps),
        "stats_fields": list(STATS_FIELDS),
        "stats_blstats_indices": list(STATS_BLSTATS_INDICES),
    }
    atomic_write_bytes(out / "manifest.json", json.dumps(manifest, indent=2).encode("utf-8"))
    return manifest


def dedup_pairs(table: pa.Table) -> pa.Table:
    """Keep the first row of each pair id."""
    ids = table.column("pair_id").to_pylist()
    seen: set[str] = set()
    keep = []
    for row, pair_id in enumerate(ids):
        if pair_id not in seen:
            seen.add(pair_id)
            keep.append(row)
    if len(keep) == len(ids):
        return table
    return table.take(pa.array(keep, type=pa.int64()))


@dataclass(frozen=True)
class PairDataset:
    """A validated pair dataset: manifest plus all rows (``PAIRS_SCHEMA``)."""

    path: Path
    manifest: dict[str, Any]
    table: pa.Table

    @property
    def num_pairs(self) -> int:
        return self.table.num_rows

    def pair_ids(self) -> list[str]:
        return self.table.column("pair_id").to_pylist()

    def shard(self, index: int, count: int) -> pa.Table:
        """Rows of shard ``index`` of ``count``: a pair belongs to the shard given by its id.

        Hashing on the id (not row order) keeps shard membership stable if the
        dataset is re-written with other shard sizes.
        """
        if count < 1 or not 0 <= index < count:
            raise ValueError(f"shard: index {index} not in [0, {count})")
        if count == 1:
            return self.table
        ids = self.table.column("pair_id").to_pylist()
        keep = [row for row, pair_id in enumerate(ids) if int(pair_id[:8], 16) % count == index]
        return self.table.take(pa.array(keep, type=pa.int64()))


def read_pair_dataset(path: str | os.PathLike[str], *, verify_sha256: bool = True) -> PairDataset:
    """Read and validate a pair dataset; raises ``DatasetError`` on anything malformed."""
    root = Path(path)
    if not root.is_dir():
        raise DatasetError(f"{root}: not a directory")
    manifest_path = root / "manifest.json"
    manifest = _read_manifest(manifest_path, PAIRS_FORMAT)
    shards = _manifest_files(manifest, "shards", manifest_path)
    num_pairs = manifest.get("num_pairs")
    if isinstance(num_pairs, bool) or not isinstance(num_pairs, int) or num_pairs < 0:
        raise DatasetError(f"{manifest_path}: field 'num_pairs' is {num_pairs!r}, expected a non-negative integer")
    gap = manifest.get("gap_steps")
    if isinstance(gap, bool) or not isinstance(gap, int) or gap < 0:
        raise DatasetError(f"{manifest_path}: field 'gap_steps' is {gap!r}, expected a non-negative integer")
    if sum(entry["num_rows"] for entry in shards) != num_pairs:
        raise DatasetError(f"{manifest_path}: shard row counts add up to {sum(e['num_rows'] for e in shards)}, "
                           f"'num_pairs' says {num_pairs}")
    tables = []
    seen: dict[str, str] = {}
    for entry in shards:
        shard_path = root / entry["file"]
        table = _read_parquet_checked(shard_path, entry, PAIRS_SCHEMA, verify_sha256)
        table = validate_pairs_table(table, str(shard_path), check_ids=False)
        _check_pair_ids(table, shard_path, seen)
        tables.append(table)
    table = pa.concat_tables(tables) if tables else PAIRS_SCHEMA.empty_table()
    return PairDataset(root, manifest, table.combine_chunks())


def row_transitions(row: Mapping[str, Any]) -> tuple[Transition, Transition]:
    """The two transitions of one pair row (as from ``table.to_pylist()``)."""
    first = Transition(
        row["first_prev_message"], row["first_message"],
        tuple(row["first_stats_before"]), tuple(row["first_stats_after"]),  # type: ignore[arg-type]
    )
    second = Transition(
        row["second_prev_message"], row["second_message"],
        tuple(row["second_stats_before"]), tuple(row["second_stats_after"]),  # type: ignore[arg-type]
    )
    return first, second


# --- label sets ----------------------------------------------------------------


@dataclass(frozen=True)
class LabelRecord:
    pair_id: str
    label: int
    raw_text: str
    first_score: float = math.nan
    second_score: float = math.nan
    model: str = ""
    strategy: str = ""

    def to_row(self) -> dict[str, Any]:
        return {
            "pair_id": self.pair_id,
            "label": int(self.label),
            "raw_text": self.raw_text,
            "first_score": float(self.first_score),
            "second_score": float(self.second_score),
            "model": self.model,
            "strategy": self.strategy,
        }


def labels_table(records: Iterable[LabelRecord]) -> pa.Table:
    return pa.Table.from_pylist([record.to_row() for record in records], schema=LABELS_SCHEMA)


def validate_labels_table(table: pa.Table, where: str = "<table>", seen: dict[str, str] | None = None) -> pa.Table:
    table = _check_columns(table, LABELS_SCHEMA, where)
    labels = table.column("label").to_numpy()
    bad = (labels < 0) | (labels >= NUM_LABELS)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DatasetError(f"{where}: column 'label' row {row}: {int(labels[row])} not in 0..3")
    too_long = pc.greater(pc.utf8_length(table.column("raw_text")), RAW_TEXT_MAX_CHARS)
    if table.num_rows and pc.any(too_long).as_py():
        raise DatasetError(f"{where}: column 'raw_text' row {_first_true(too_long)}: longer than {RAW_TEXT_MAX_CHARS}")
    _check_pair_ids(table, where, seen)
    return table


def skill_label_dir(labels_dir: str | os.PathLike[str], skill_name: str) -> Path:
    if not re.fullmatch(r"[a-z]{1,32}", skill_name):
        raise DatasetError(f"skill name {skill_name!r} is not a lower-case word")
    return Path(labels_dir) / skill_name


def write_label_file(
    labels_dir: str | os.PathLike[str],
    skill_name: str,
    file_name: str,
    table: pa.Table,
    *,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write (or replace) one label file of a skill and update that skill's manifest.

    Several shard jobs may write to one label set at once, each with its own
    file; the manifest update is serialised by a directory lock, and the
    whole set is checked for duplicate pair ids before the manifest is written.
    """
    if not _SHARD_NAME_RE.match(file_name) or file_name.startswith("."):
        raise DatasetError(f"label file name {file_name!r} is not a plain *.parquet name")
    directory = skill_label_dir(labels_dir, skill_name)
    table = validate_labels_table(table, f"{directory / file_name}")
    with directory_lock(directory):
        manifest_path = directory / "manifest.json"
        if manifest_path.exists():
            manifest = _read_manifest(manifest_path, LABELS_FORMAT)
            files = [e for e in _manifest_files(manifest, "files", manifest_path) if e["file"] != file_name]
        else:
            manifest, files = {}, []
        # Refuse a file that would give some pair a second label.
        others: dict[str, str] = {}
        for entry in files:
            other = pq.read_table(directory / entry["file"], columns=["pair_id"])
            for pair_id in other.column("pair_id").to_pylist():
                others[pair_id] = entry["file"]
        for row, pair_id in enumerate(table.column("pair_id").to_pylist()):
            if pair_id in others:
                raise DatasetError(
                    f"{directory / file_name}: row {row}: pair {pair_id} already labelled in {others[pair_id]}"
                )
        digest = _atomic_write_table(directory / file_name, table)
        files.append({"file": file_name, "num_rows": table.num_rows, "sha256": digest})
        files.sort(key=lambda e: e["file"])
        counts = [0] * NUM_LABELS
        for entry in files:
            labels = pq.read_table(directory / entry["file"], columns=["label"]).column("label").to_numpy()
            for value, count in zip(*np.unique(labels, return_counts=True), strict=True):
                counts[int(value)] += int(count)
        manifest = {
            **{k: v for k, v in manifest.items() if k not in ("files", "num_labels", "label_counts")},
            **(dict(extra) if extra else {}),
            "format": LABELS_FORMAT,
            "version": FORMAT_VERSION,
            "skill": skill_name,
            "num_labels": sum(e["num_rows"] for e in files),
            "label_counts": counts,
            "files": files,
        }
        atomic_write_bytes(manifest_path, json.dumps(manifest, indent=2).encode("utf-8"))
    return manifest


def read_labels(
    labels_dir: str | os.PathLike[str],
    skill_name: str,
    *,
    pairs: PairDataset | None = None,
    require_complete: bool = False,
    verify_sha256: bool = True,
) -> pa.Table:
    """Read and validate one skill's labels (``LABELS_SCHEMA``).

    With ``pairs``, every labelled id must exist in the pair dataset and, with
    ``require_complete``, every pair must have its label.
    """
    directory = skill_label_dir(labels_dir, skill_name)
    manifest_path = directory / "manifest.json"
    manifest = _read_manifest(manifest_path, LABELS_FORMAT)
    if manifest.get("skill") != skill_name:
        raise DatasetError(f"{manifest_path}: field 'skill' is {manifest.get('skill')!r}, expected {skill_name!r}")
    files = _manifest_files(manifest, "files", manifest_path)
    seen: dict[str, str] = {}
    tables = []
    for entry in files:
        file_path = directory / entry["file"]
        table = _read_parquet_checked(file_path, entry, LABELS_SCHEMA, verify_sha256)
        tables.append(validate_labels_table(table, str(file_path), seen))
    table = pa.concat_tables(tables).combine_chunks() if tables else LABELS_SCHEMA.empty_table()
    if pairs is not None:
        known = set(pairs.pair_ids())
        for row, pair_id in enumerate(table.column("pair_id").to_pylist()):
            if pair_id not in known:
                raise DatasetError(f"{directory}: label row {row}: pair {pair_id} is not in {pairs.path}")
        if require_complete and len(seen) != len(known):
            missing = next(iter(known - set(seen)))
            raise DatasetError(f"{directory}: {len(known) - len(seen)} pair(s) unlabelled, e.g. {missing}")
    return table


def join_labels(pairs: PairDataset, labels: pa.Table) -> pa.Table:
    """Pair rows with their label columns appended, in the label table's order.

    Labels whose pair is not in ``pairs`` raise (use ``read_labels(pairs=...)`` first).
    """
    index = {pair_id: row for row, pair_id in enumerate(pairs.pair_ids())}
    try:
        rows = [index[pair_id] for pair_id in labels.column("pair_id").to_pylist()]
    except KeyError as exc:
        raise DatasetError(f"labels: pair {exc.args[0]} is not in {pairs.path}") from None
    joined = pairs.table.take(pa.array(rows, type=pa.int64()))
    for name in LABELS_SCHEMA.names[1:]:
        joined = joined.append_column(LABELS_SCHEMA.field(name), labels.column(name))
    return joined
