"""Reward-model bundles: one self-describing, validated directory per skill.

Layout of a bundle root::

    ROOT/manifest.json                 which bundle each skill currently uses
    ROOT/<skill>-<version>/bundle.json metadata: normalization, quantiles, threshold, config
    ROOT/<skill>-<version>/weights.pt  the RewardNet state dict

``version`` is a content hash (weights + metadata), so a bundle directory never
changes once written. A bundle is written into a temporary directory and renamed
into place; the manifest is then replaced atomically (temp file + rename), so a
reader sees either the old or the new set, never a mix or a half-written file.
Everything read back is untrusted: the loader checks the formats, sizes, hashes,
shapes and that every number is finite, and fails with an error naming the file
and field.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import re
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from maestromotif.fileio import atomic_write_bytes, directory_lock
from maestromotif.rewards.constants import (
    NUM_SKILLS,
    PAPER_THRESHOLDS,
    QUANTILE_LEVELS,
    SKILL_NAMES,
    THRESHOLD_LEVELS,
)
from maestromotif.rewards.model import NUM_PARAMETERS, RewardEnsemble, RewardNet, count_parameters

BUNDLE_FORMAT = "maestromotif.reward_bundle"
MANIFEST_FORMAT = "maestromotif.reward_bundles"
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
META_NAME = "bundle.json"
WEIGHTS_NAME = "weights.pt"
MAX_JSON_BYTES = 1 << 20
MAX_WEIGHTS_BYTES = 16 << 20  # one RewardNet is ~1.4 MB in float32
_VERSION_RE = re.compile(r"^[0-9a-f]{16}$")
_DIR_RE = re.compile(r"^[a-z]+-[0-9a-f]{16}$")


class BundleError(ValueError):
    """A bundle or manifest that is missing, malformed or inconsistent."""


class BundleMeta(BaseModel):
    """Contents of ``bundle.json``. Floats must be finite (JSON NaN/Infinity are refused)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)

    format: str = BUNDLE_FORMAT
    format_version: int = FORMAT_VERSION
    skill: str
    skill_id: int = Field(ge=0, lt=NUM_SKILLS)
    version: str = ""
    weights_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    num_parameters: int
    trained: bool
    mean: float
    std: float = Field(gt=0.0)
    quantile_levels: list[float]
    quantiles: list[float]
    threshold_level: float = Field(gt=0.0, lt=1.0)
    threshold: float
    num_unique_transitions: int = Field(ge=0)
    config: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)
    created_at: float = 0.0

    @field_validator("format")
    @classmethod
    def _format(cls, value: str) -> str:
        if value != BUNDLE_FORMAT:
            raise ValueError(f"expected {BUNDLE_FORMAT!r}, got {value!r}")
        return value

    @field_validator("format_version")
    @classmethod
    def _format_version(cls, value: int) -> int:
        if value != FORMAT_VERSION:
            raise ValueError(f"unsupported format_version {value} (this code reads {FORMAT_VERSION})")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> BundleMeta:
        if self.skill not in SKILL_NAMES or SKILL_NAMES.index(self.skill) != self.skill_id:
            raise ValueError(f"skill/skill_id: {self.skill!r}/{self.skill_id} do not name the same skill")
        if self.num_parameters != NUM_PARAMETERS:
            raise ValueError(f"num_parameters: {self.num_parameters} != {NUM_PARAMETERS}")
        if self.trained:
            if list(self.quantile_levels) != list(QUANTILE_LEVELS):
                raise ValueError("quantile_levels: must be 0.05, 0.10, ..., 0.95")
            if len(self.quantiles) != len(QUANTILE_LEVELS):
                raise ValueError(f"quantiles: expected {len(QUANTILE_LEVELS)} values, got {len(self.quantiles)}")
            if any(b < a for a, b in zip(self.quantiles, self.quantiles[1:])):
                raise ValueError("quantiles: must be non-decreasing")
        elif self.quantiles or self.quantile_levels:
            raise ValueError("quantiles: an untrained bundle has no quantiles")
        return self

    def content_hash(self) -> str:
        """Version id: hash of everything but the version itself and the creation time."""
        body = self.model_dump(exclude={"version", "created_at"})
        blob = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


@dataclass(frozen=True)
class Bundle:
    """One skill's loaded reward model with its metadata."""

    meta: BundleMeta
    model: RewardNet

    @property
    def skill_id(self) -> int:
        return self.meta.skill_id


@dataclass(frozen=True)
class BundleSet:
    """The five loaded bundles, as served together (one per skill, in skill-id order)."""

    bundles: tuple[Bundle, ...]
    ensemble: RewardEnsemble
    mean: torch.Tensor  # [5] on the ensemble's device
    std: torch.Tensor
    threshold: torch.Tensor
    version: str
    manifest_digest: str  # sha256 of the manifest bytes it came from ("" if none)
    device: torch.device

    @property
    def metas(self) -> tuple[BundleMeta, ...]:
        return tuple(b.meta for b in self.bundles)


# ---------------------------------------------------------------------------- writing


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem lets a directory be fsynced
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_file(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _state_dict_bytes(model: RewardNet) -> bytes:
    buffer = io.BytesIO()
    state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items()}
    torch.save(state, buffer)
    return buffer.getvalue()


def make_meta(
    skill: str | int,
    model: RewardNet,
    *,
    mean: float,
    std: float,
    quantiles: Sequence[float] | None,
    threshold: float,
    num_unique_transitions: int,
    config: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | None = None,
    weights: bytes | None = None,
) -> tuple[BundleMeta, bytes]:
    """Metadata (with its content-hash version) and serialized weights for one bundle."""
    sid = skill if isinstance(skill, int) else SKILL_NAMES.index(skill)
    name = SKILL_NAMES[sid]
    blob = weights if weights is not None else _state_dict_bytes(model)
    trained = quantiles is not None
    try:
        meta = BundleMeta(
            skill=name,
            skill_id=sid,
            weights_sha256=hashlib.sha256(blob).hexdigest(),
            num_parameters=count_parameters(model),
            trained=trained,
            mean=float(mean),
            std=float(std),
            quantile_levels=list(QUANTILE_LEVELS) if trained else [],
            quantiles=[float(q) for q in quantiles] if quantiles is not None else [],
            threshold_level=THRESHOLD_LEVELS[name],
            threshold=float(threshold),
            num_unique_transitions=int(num_unique_transitions),
            config=dict(config or {}),
            metrics=dict(metrics or {}),
            created_at=time.time(),
        )
    except ValidationError as exc:
        raise BundleError(f"bundle for {name}: invalid metadata: {exc}") from exc
    return meta.model_copy(update={"version": meta.content_hash()}), blob


def write_bundle(
    root: str | os.PathLike[str],
    meta: BundleMeta,
    weights: bytes,
    *,
    extra_files: Mapping[str, bytes] | None = None,
) -> Path:
    """Write one bundle under ``root`` atomically and point the manifest at it. Returns its directory.

    ``extra_files`` (reports, plots) go into the same directory; they are not
    part of the version hash and the loader ignores them.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{meta.skill}-{meta.version}"
    if not final.exists():
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{meta.skill}-", dir=root))
        try:
            _write_file(tmp / WEIGHTS_NAME, weights)
            _write_file(tmp / META_NAME, meta.model_dump_json(indent=2).encode())
            for name, data in (extra_files or {}).items():
                if "/" in name or name in (META_NAME, WEIGHTS_NAME) or name.startswith("."):
                    raise BundleError(f"extra file name {name!r} not allowed")
                _write_file(tmp / name, data)
            _fsync_dir(tmp)
            try:
                os.rename(tmp, final)
            except OSError:
                if not final.exists():  # another writer may have put the same content there first
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        _fsync_dir(root)
    update_manifest(root, {meta.skill: meta.version})
    return final


def update_manifest(root: str | os.PathLike[str], versions: Mapping[str, str]) -> dict[str, Any]:
    """Point the given skills at the given bundle versions (atomic replace, cross-process lock)."""
    root = Path(root)
    for skill, version in versions.items():
        if skill not in SKILL_NAMES:
            raise BundleError(f"manifest: unknown skill {skill!r}")
        if not (root / f"{skill}-{version}" / META_NAME).is_file():
            raise BundleError(f"manifest: no bundle directory {skill}-{version} under {root}")
    with directory_lock(root):
        path = root / MANIFEST_NAME
        manifest = _read_manifest(path) if path.exists() else _empty_manifest()
        for skill, version in versions.items():
            manifest["skills"][skill] = {"version": version, "path": f"{skill}-{version}"}
        manifest["updated_at"] = time.time()
        atomic_write_bytes(path, json.dumps(manifest, indent=2, sort_keys=True).encode())
        _fsync_dir(root)
    return manifest


def _empty_manifest() -> dict[str, Any]:
    return {"format": MANIFEST_FORMAT, "format_version": FORMAT_VERSION, "skills": {}}


# ---------------------------------------------------------------------------- reading


def _read_bounded(path: Path, limit: int) -> bytes:
    try:
        size = path.stat().st_size
    except FileNotFoundError as exc:
        raise BundleError(f"{path}: missing") from exc
    if size > limit:
        raise BundleError(f"{path}: {size} bytes, more than the limit of {limit}")
    with open(path, "rb") as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise BundleError(f"{path}: more than the limit of {limit} bytes")
    return data


def _parse_json(path: Path, data: bytes) -> Any:
    def _no_constants(value: str) -> float:
        raise BundleError(f"{path}: non-finite number {value} is not allowed")

    try:
        return json.loads(data.decode("utf-8"), parse_constant=_no_constants)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{path}: not valid JSON: {exc}") from exc


def _read_manifest(path: Path, data: bytes | None = None) -> dict[str, Any]:
    if data is None:
        data = _read_bounded(path, MAX_JSON_BYTES)
    manifest = _parse_json(path, data)
    if not isinstance(manifest, dict):
        raise BundleError(f"{path}: expected a JSON object")
    if manifest.get("format") != MANIFEST_FORMAT:
        raise BundleError(f"{path}: format: expected {MANIFEST_FORMAT!r}, got {manifest.get('format')!r}")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BundleError(f"{path}: format_version: unsupported {manifest.get('format_version')!r}")
    skills = manifest.get("skills")
    if not isinstance(skills, dict):
        raise BundleError(f"{path}: skills: expected an object")
    for skill, entry in skills.items():
        if skill not in SKILL_NAMES:
            raise BundleError(f"{path}: skills: unknown skill {skill!r}")
        if not isinstance(entry, dict) or not isinstance(entry.get("version"), str):
            raise BundleError(f"{path}: skills.{skill}: expected {{'version': ..., 'path': ...}}")
        version, sub = entry["version"], entry.get("path")
        if not _VERSION_RE.match(version):
            raise BundleError(f"{path}: skills.{skill}.version: malformed {version!r}")
        if sub != f"{skill}-{version}" or not _DIR_RE.match(sub):
            raise BundleError(f"{path}: skills.{skill}.path: expected {skill}-{version!s}, got {sub!r}")
    return manifest


def read_manifest(root: str | os.PathLike[str]) -> dict[str, Any]:
    """The validated manifest of a bundle root (BundleError when missing or malformed)."""
    path = Path(root) / MANIFEST_NAME
    if not path.exists():
        raise BundleError(f"{path}: no reward bundles here (train them with `maestromotif train-reward`)")
    return _read_manifest(path)


def manifest_digest(root: str | os.PathLike[str]) -> str:
    """sha256 of the manifest bytes, "" when there is none: cheap change detection for hot reload."""
    path = Path(root) / MANIFEST_NAME
    try:
        return hashlib.sha256(_read_bounded(path, MAX_JSON_BYTES)).hexdigest()
    except BundleError:
        return ""


def load_bundle(directory: str | os.PathLike[str], *, device: torch.device | str = "cpu") -> Bundle:
    """Load and fully validate one bundle directory."""
    directory = Path(directory)
    meta_path = directory / META_NAME
    raw = _parse_json(meta_path, _read_bounded(meta_path, MAX_JSON_BYTES))
    try:
        meta = BundleMeta.model_validate(raw)
    except ValidationError as exc:
        raise BundleError(f"{meta_path}: invalid: {exc}") from exc
    if meta.version != meta.content_hash():
        raise BundleError(f"{meta_path}: version: {meta.version!r} does not match the content ({meta.content_hash()})")
    weights_path = directory / WEIGHTS_NAME
    blob = _read_bounded(weights_path, MAX_WEIGHTS_BYTES)
    digest = hashlib.sha256(blob).hexdigest()
    if digest != meta.weights_sha256:
        raise BundleError(f"{weights_path}: sha256 {digest} does not match weights_sha256 in {META_NAME}")
    try:
        state = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt archives
        raise BundleError(f"{weights_path}: cannot be read as a state dict: {exc}") from exc
    model = RewardNet()
    expected = model.state_dict()
    if not isinstance(state, dict) or set(state) != set(expected):
        got = sorted(state) if isinstance(state, dict) else type(state).__name__
        raise BundleError(f"{weights_path}: keys do not match RewardNet: got {got}")
    for key, tensor in state.items():
        if not isinstance(tensor, torch.Tensor):
            raise BundleError(f"{weights_path}: {key}: not a tensor")
        if tensor.shape != expected[key].shape:
            raise BundleError(f"{weights_path}: {key}: shape {tuple(tensor.shape)} != {tuple(expected[key].shape)}")
        if tensor.dtype != torch.float32:
            raise BundleError(f"{weights_path}: {key}: dtype {tensor.dtype} != float32")
        if not bool(torch.isfinite(tensor).all()):
            raise BundleError(f"{weights_path}: {key}: non-finite values")
    model.load_state_dict(state, strict=True)
    model.to(device).eval()
    model.requires_grad_(False)
    return Bundle(meta=meta, model=model)


def random_bundle(skill: str | int, *, seed: int = 0, device: torch.device | str = "cpu") -> Bundle:
    """An untrained, freshly initialized bundle (smoke runs only).

    mean 0 and std 1 (no data to normalize on), the paper's threshold, no
    quantiles, ``trained = false`` in its metadata and therefore its version.
    """
    sid = skill if isinstance(skill, int) else SKILL_NAMES.index(skill)
    generator_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed * 1009 + sid)  # deterministic per (seed, skill) without touching global state
        model = RewardNet()
    finally:
        torch.random.set_rng_state(generator_state)
    meta, _ = make_meta(
        sid,
        model,
        mean=0.0,
        std=1.0,
        quantiles=None,
        threshold=PAPER_THRESHOLDS[SKILL_NAMES[sid]],
        num_unique_transitions=0,
        config={"init": "random", "seed": seed},
    )
    model.to(device).eval()
    model.requires_grad_(False)
    return Bundle(meta=meta, model=model)


def write_random_bundle(root: str | os.PathLike[str], skill: str | int, *, seed: int = 0) -> Path:
    """Write an untrained bundle (``trained = false``) for a skill: smoke runs and tests only."""
    bundle = random_bundle(skill, seed=seed)
    meta, weights = make_meta(
        bundle.skill_id,
        bundle.model,
        mean=bundle.meta.mean,
        std=bundle.meta.std,
        quantiles=None,
        threshold=bundle.meta.threshold,
        num_unique_transitions=0,
        config=bundle.meta.config,
    )
    return write_bundle(root, meta, weights)


def assemble(bundles: Sequence[Bundle], *, device: torch.device, manifest_sha: str = "") -> BundleSet:
    """Build a servable set from exactly one bundle per skill, in skill-id order."""
    ordered = sorted(bundles, key=lambda b: b.skill_id)
    if [b.skill_id for b in ordered] != list(range(NUM_SKILLS)):
        raise BundleError(f"bundle set: need one bundle per skill {SKILL_NAMES}, got {[b.meta.skill for b in ordered]}")
    for b in ordered:
        if not (math.isfinite(b.meta.mean) and math.isfinite(b.meta.std) and math.isfinite(b.meta.threshold)):
            raise BundleError(f"bundle {b.meta.skill}: non-finite normalization")
    ensemble = RewardEnsemble([b.model for b in ordered]).to(device).eval()
    version = hashlib.sha256(",".join(b.meta.version for b in ordered).encode()).hexdigest()[:16]

    def column(name: str) -> torch.Tensor:
        return torch.tensor([getattr(b.meta, name) for b in ordered], dtype=torch.float32, device=device)

    return BundleSet(
        bundles=tuple(ordered),
        ensemble=ensemble,
        mean=column("mean"),
        std=column("std"),
        threshold=column("threshold"),
        version=version,
        manifest_digest=manifest_sha,
        device=device,
    )


def load_bundle_set(
    root: str | os.PathLike[str] | None,
    *,
    device: torch.device | str = "cpu",
    init_random_missing: bool = False,
    seed: int = 0,
) -> BundleSet:
    """Load the five bundles a root's manifest names.

    Missing skills (or a missing root/manifest) are an error, unless
    ``init_random_missing`` asks for untrained models in their place.
    """
    device = torch.device(device)
    bundles: list[Bundle] = []
    digest = ""
    present: dict[str, Any] = {}
    if root is not None and (Path(root) / MANIFEST_NAME).exists():
        path = Path(root) / MANIFEST_NAME
        data = _read_bounded(path, MAX_JSON_BYTES)  # one read: digest and contents must agree
        digest = hashlib.sha256(data).hexdigest()
        present = _read_manifest(path, data)["skills"]
    elif not init_random_missing:
        where = "no bundle directory given" if root is None else f"{Path(root) / MANIFEST_NAME} does not exist"
        raise BundleError(
            f"reward bundles: {where}; train them with `maestromotif train-reward`, "
            "or serve untrained smoke-test models with init_random (`maestromotif serve reward --set init_random=true`)"
        )
    missing = [s for s in SKILL_NAMES if s not in present]
    if missing and not init_random_missing:
        raise BundleError(f"reward bundles: {root}: no bundle for skill(s) {', '.join(missing)}")
    for skill in SKILL_NAMES:
        if skill in present:
            bundle = load_bundle(Path(root) / present[skill]["path"], device=device)  # type: ignore[arg-type]
            if bundle.meta.skill != skill or bundle.meta.version != present[skill]["version"]:
                raise BundleError(f"bundle {present[skill]['path']}: does not match the manifest entry for {skill}")
        else:
            bundle = random_bundle(skill, seed=seed, device=device)
        bundles.append(bundle)
    return assemble(bundles, device=device, manifest_sha=digest)
