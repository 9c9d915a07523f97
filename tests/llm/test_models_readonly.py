"""A verified model in a read-only folder (the annotator/codegen images bake it in) still loads."""

from __future__ import annotations

import errno
import hashlib
from pathlib import Path

import pytest

from maestromotif.llm import models


def test_verified_file_in_read_only_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = b"gguf" * 1000
    path = tmp_path / "m.gguf"
    path.write_bytes(data)
    spec = models.ModelSpec("m", "test model", ("p1",), "0", hashlib.sha256(data).hexdigest(), len(data))

    def refuse(self: Path, *a: object, **k: object) -> int:
        raise OSError(errno.EROFS, "Read-only file system", str(self))

    monkeypatch.setattr(Path, "write_text", refuse)
    assert models._is_verified(path, spec, rehash=False)  # hashed, marker not writable: still verified
    path.write_bytes(b"x" * len(data))
    assert not models._is_verified(path, spec, rehash=False)  # a wrong file is still refused
