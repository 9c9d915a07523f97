"""File helpers used across the library: atomic writes (readers see the old content or the
new, never half a file: temp file in the same folder, fsync, rename), file digests, and an
inter-process folder lock for manifest updates."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

# errno values that mean "no room": a full disk, a quota, a file-size limit.
NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


class WriteError(OSError):
    """Writing a file failed (full disk, quota, I/O error). Names the file; the previous
    content, if any, is unchanged (every writer here is atomic). ``errno`` is the cause's."""


def write_error(path: str | os.PathLike[str], exc: BaseException) -> WriteError:
    """A ``WriteError`` naming ``path`` for a failed write (OSError, or pyarrow's error without an errno)."""
    code = getattr(exc, "errno", None) or errno.EIO
    reason = getattr(exc, "strerror", None) or str(exc)
    if "No space left" in str(exc) and code == errno.EIO:  # pyarrow hides the errno in its message
        code = errno.ENOSPC
    return WriteError(code, f"cannot write {path}: {reason}; its previous content, if any, is unchanged")


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, creating the parent folder if needed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and not isinstance(exc, WriteError):
            # write() and fsync() errors carry no file name: a full disk would say only "No space left".
            raise write_error(path, exc) from exc
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """UTF-8 text form of :func:`atomic_write_bytes`."""
    atomic_write_bytes(path, text.encode("utf-8"))


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file, read in 4 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


@contextlib.contextmanager
def directory_lock(directory: str | os.PathLike[str]) -> Iterator[None]:
    """Exclusive inter-process lock on a folder (its ``.lock`` file), e.g. around manifest updates."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def read_json_files(paths: Iterable[str | os.PathLike[str]], parse: Callable[[Any], T],
                    error: type[Exception]) -> list[T]:
    """``parse`` each JSON file (untrusted input); any failure raises ``error`` naming the file."""
    out: list[T] = []
    for path in paths:
        try:
            out.append(parse(json.loads(Path(path).read_text())))
        except (OSError, ValueError, error) as exc:  # JSONDecodeError is a ValueError
            raise error(f"{path}: {exc}") from exc
    return out

