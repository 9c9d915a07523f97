#!/usr/bin/env python3
"""Where pip gets the CPU torch that requirements.lock pins (``torch==2.13.0+cpu``).

PyPI does not serve ``+cpu`` builds; PyTorch's own index does
(https://download.pytorch.org/whl/cpu). Some machines (this project's build machines)
cannot reach that index but already hold the wheel in a folder pip's configuration
names (``find-links``), and naming an unreachable index makes pip retry for minutes.
So: ask pip, offline, whether it can already find the pinned wheel; only if it cannot,
add PyTorch's CPU index as an extra index.

    python scripts/torch_source.py [--python PY] [--lock requirements.lock]

prints the extra pip arguments (nothing, or ``--extra-index-url URL``). Standard library
only: the Makefile runs it before the virtual environment has anything installed.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

PYTORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
_PIN = re.compile(r"^torch==(\S+?)\s*(?:\\|$)", re.M)


class TorchSourceError(RuntimeError):
    pass


def torch_pin(lock: Path) -> str | None:
    """``torch==X`` as pinned in the lock, or None if the lock has no torch."""
    try:
        text = lock.read_text(encoding="utf-8")
    except OSError as exc:
        raise TorchSourceError(f"{lock}: cannot read ({exc.strerror or exc})") from exc
    pins = _PIN.findall(text)
    if len(pins) > 1:
        raise TorchSourceError(f"{lock}: torch is pinned {len(pins)} times")
    return f"torch=={pins[0]}" if pins else None


def needs_pytorch_index(pin: str | None) -> bool:
    """Only local-label CPU builds (``+cpu``) are missing from PyPI."""
    return pin is not None and "+cpu" in pin


def locally_available(pin: str, python: str = sys.executable, timeout_s: float = 120.0) -> bool:
    """True if pip finds ``pin`` without any index (its configured find-links only).

    A dry run resolves the requirement and reads the wheel's metadata but downloads and
    installs nothing; ``--no-index`` keeps it off the network, so it answers fast either way.
    """
    cmd = [python, "-m", "pip", "install", "--dry-run", "--no-deps", "--no-index",
           "--ignore-installed", "--quiet", pin]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise TorchSourceError(f"cannot run {' '.join(cmd)}: {exc}") from exc
    if done.returncode != 0 and "no such option: --dry-run" in done.stderr:
        raise TorchSourceError(f"{python}: pip is too old for --dry-run (needs pip >= 22.2)")
    return done.returncode == 0


def extra_pip_args(lock: Path, python: str = sys.executable) -> list[str]:
    """Arguments to add to ``pip install -r <lock>`` so that its torch pin resolves."""
    pin = torch_pin(lock)
    if not needs_pytorch_index(pin) or locally_available(pin, python):  # type: ignore[arg-type]
        return []
    return ["--extra-index-url", PYTORCH_CPU_INDEX]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Print the extra pip arguments the torch pin needs.")
    parser.add_argument("--python", default=sys.executable, help="interpreter whose pip is asked")
    parser.add_argument("--lock", type=Path, default=Path(__file__).resolve().parents[1] / "requirements.lock")
    args = parser.parse_args(argv)
    try:
        extra = extra_pip_args(args.lock, args.python)
    except TorchSourceError as exc:
        print(f"torch_source: error: {exc}", file=sys.stderr)
        return 2
    pin = torch_pin(args.lock)
    where = "PyTorch's CPU index" if extra else "pip's configured sources (found offline)"
    print(f"torch_source: {pin or 'no torch pin'} from {where}", file=sys.stderr)
    print(" ".join(extra))
    return 0


if __name__ == "__main__":
    sys.exit(main())
