"""End to end at toy scale: collect -> embedded-LLM annotation -> reward models -> policy training.

Runs the real ``maestromotif pipeline`` command (real NLE games, the real embedded
Qwen2.5-Coder-0.5B model, real reward and policy training through the reward, learner and
actor services on loopback), then runs it again to check that finished stages are skipped
and training resumes from its checkpoint.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from maestromotif.annotation.schema import read_labels, read_pair_dataset
from maestromotif.rewards.bundles import read_manifest
from maestromotif.skills.ids import SKILL_NAMES

CLI = "import sys; from maestromotif.cli import app; app(sys.argv[1:])"


def _free_base_port(span: int = 3) -> int:
    """A port p such that p .. p+span-1 are free now (best effort; the OS may reuse them later)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + span >= 65535:
            continue
        try:
            socks = []
            for port in range(base, base + span):
                sock = socket.socket()
                sock.bind(("127.0.0.1", port))
                socks.append(sock)
            return base
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise RuntimeError("no free port range")


def _run(workdir: Path, train_steps: int) -> tuple[dict, str]:
    """(the pipeline's JSON summary, its stderr with whitespace runs collapsed)."""
    argv = [sys.executable, "-c", CLI, "pipeline", "--workdir", str(workdir), "--collect-steps", "3000",
            "--collect-envs", "4", "--reward-epochs", "2", "--train-steps", str(train_steps), "--preset", "small",
            "--base-port", str(_free_base_port()), "--base-metrics-port", str(_free_base_port())]
    env = {**os.environ, "COLUMNS": "1000"}  # rich must not fold the long paths it prints
    done = subprocess.run(argv, capture_output=True, text=True, timeout=900, env=env)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1]), " ".join(done.stderr.split())


def _labels(labels: Path) -> dict[str, list[dict]]:
    return {skill: sorted(read_labels(labels, skill).to_pylist(), key=lambda r: r["pair_id"]) for skill in SKILL_NAMES}


def _checkpoint_steps(run_dir: Path) -> list[int]:
    # SF2 names checkpoints checkpoint_<version>_<env steps>.pth
    return sorted(int(p.stem.rsplit("_", 1)[1]) for p in run_dir.glob("checkpoint_p0/checkpoint_*.pth"))


@pytest.mark.slow
def test_pipeline_end_to_end_and_resume(tmp_path: Path) -> None:
    work = tmp_path / "work"
    summary, first_log = _run(work, train_steps=4096)
    assert "exists: skipped" not in first_log

    dataset = read_pair_dataset(work / "pairs")
    assert dataset.num_pairs > 10
    for skill in SKILL_NAMES:  # exactly one label per pair for every skill
        assert read_labels(work / "labels", skill).num_rows == dataset.num_pairs
    assert set(read_manifest(work / "reward_bundles")["skills"]) == set(SKILL_NAMES)
    first = _checkpoint_steps(Path(summary["checkpoints"]))
    assert first, "training wrote no checkpoint"

    labels_before = _labels(work / "labels")
    again, log = _run(work, train_steps=4096)  # stages 1 and 3 are skipped, 2 finds its ledger complete
    assert again == summary
    # the stages said they were skipped, and nothing was labelled again
    assert f"{work / 'pairs'} exists: skipped" in log, log[-3000:]
    assert f"{work / 'reward_bundles'} exists: skipped" in log, log[-3000:]
    assert "collect:" not in log  # no collection progress bar: no game was played
    labelled = [int(n) for n in re.findall(r"annotate: +\d+%[^/]*?(\d+)/\d+", log)]  # tqdm: "annotate: 0%| | 0/N"
    assert labelled and set(labelled) == {0}, log[-3000:]
    assert _labels(work / "labels") == labels_before  # same labels, none made again
    second = _checkpoint_steps(Path(summary["checkpoints"]))
    assert max(second) > max(first), (first, second)  # resumed and went on, not restarted
