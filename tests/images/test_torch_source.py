"""scripts/torch_source.py: local CPU torch wheel, or PyTorch's CPU index (no network used)."""

from __future__ import annotations

import os
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import torch_source  # noqa: E402

PIN = "torch==2.13.0+cpu"


def fake_wheel(folder: Path, version: str = "2.13.0+cpu") -> Path:
    """A minimal valid wheel named like the pinned torch (pure Python, so any machine accepts it)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"torch-{version}-py3-none-any.whl"
    info = f"torch-{version}.dist-info"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: torch\nVersion: {version}\n")
        zf.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr(f"{info}/RECORD", "")
    return path


@pytest.fixture()
def pip_sees(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """Point pip's configuration at a find-links folder of our choosing (no config files, no index)."""
    def configure(folder: Path) -> None:
        monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
        monkeypatch.setenv("PIP_FIND_LINKS", str(folder))
        monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")  # never asked: --no-index
        monkeypatch.delenv("PIP_EXTRA_INDEX_URL", raising=False)
    return configure


def lock_with(tmp_path: Path, line: str) -> Path:
    path = tmp_path / "requirements.lock"
    path.write_text(f"numpy==1.26.4 \\\n    --hash=sha256:ab\n{line} \\\n    --hash=sha256:cd\n    # via x\n")
    return path


def test_pin_is_read_from_the_lock(tmp_path: Path) -> None:
    assert torch_source.torch_pin(lock_with(tmp_path, PIN)) == PIN
    assert torch_source.torch_pin(ROOT / "requirements.lock", ).startswith("torch==")
    assert torch_source.torch_pin(lock_with(tmp_path, "torchvision==0.1")) is None
    with pytest.raises(torch_source.TorchSourceError, match="cannot read"):
        torch_source.torch_pin(tmp_path / "missing.lock")


def test_only_cpu_local_builds_need_the_pytorch_index() -> None:
    assert torch_source.needs_pytorch_index("torch==2.13.0+cpu")
    assert not torch_source.needs_pytorch_index("torch==2.13.0")  # PyPI serves it (CUDA build)
    assert not torch_source.needs_pytorch_index(None)


def test_local_wheel_means_no_extra_index(tmp_path: Path, pip_sees) -> None:
    fake_wheel(tmp_path / "wheels")
    pip_sees(tmp_path / "wheels")
    assert torch_source.locally_available(PIN)
    assert torch_source.extra_pip_args(lock_with(tmp_path, PIN)) == []


def test_no_local_wheel_adds_the_pytorch_cpu_index(tmp_path: Path, pip_sees) -> None:
    fake_wheel(tmp_path / "wheels", version="2.12.0+cpu")  # a different torch does not count
    pip_sees(tmp_path / "wheels")
    assert not torch_source.locally_available(PIN)
    assert torch_source.extra_pip_args(lock_with(tmp_path, PIN)) == [
        "--extra-index-url", "https://download.pytorch.org/whl/cpu"]


def test_cuda_pin_needs_nothing_even_without_a_wheel(tmp_path: Path, pip_sees) -> None:
    pip_sees(tmp_path / "empty")
    assert torch_source.extra_pip_args(lock_with(tmp_path, "torch==2.13.0")) == []
