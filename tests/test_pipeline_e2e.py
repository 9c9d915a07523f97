"""End to end at toy scale: collect -> embedded-LLM annotation -> reward models -> policy training.

Runs the real ``maestromotif pipeline`` command (real NLE games, the real embedded
Qwen2.5-Coder-0.5B model, real reward and policy training through the reward, learner and
actor services on loopback), then runs it again to check that finished stages are skipped
and training resumes from its checkpoint.
"""

from __future__ import annotations

import json
import os
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


# Toy scale of every stage (the tiny profile with overrides; each is named in the report).
TOY = ["collect.steps=3000", "collect.envs=4", "annotate.check_set=false", "rewards.epochs=2",
       "codegen.max_tokens=320", "codegen.max_repair_rounds=0", "codegen.tasks=[gnomish, buc]",
       "train.samples=4096", "train.envs=8",
       "skill_eval.steps=2000", "task_eval.episodes=1", "task_eval.max_steps=120"]


def _run(workdir: Path, *extra: str) -> str:
    """Run the pipeline; returns its stderr with whitespace runs collapsed."""
    argv = [sys.executable, "-c", CLI, "pipeline", "--profile", "tiny", "--workdir", str(workdir),
            "--base-port", str(_free_base_port()), "--base-metrics-port", str(_free_base_port()), *extra]
    for item in TOY:
        argv += ["--set", item]
    env = {**os.environ, "COLUMNS": "1000"}  # rich must not fold the long paths it prints
    done = subprocess.run(argv, capture_output=True, text=True, timeout=1500, env=env)
    assert done.returncode == 0, done.stderr[-4000:]
    return " ".join(done.stderr.split())


def _state(workdir: Path) -> dict:
    return json.loads((workdir / "pipeline_state.json").read_text())


def _labels(labels: Path) -> dict[str, list[dict]]:
    return {skill: sorted(read_labels(labels, skill).to_pylist(), key=lambda r: r["pair_id"]) for skill in SKILL_NAMES}


def _checkpoint_steps(run_dir: Path) -> list[int]:
    # SF2 names checkpoints checkpoint_<version>_<env steps>.pth
    return sorted(int(p.stem.rsplit("_", 1)[1]) for p in run_dir.glob("checkpoint_p0/checkpoint_*.pth"))


@pytest.mark.slow
def test_pipeline_end_to_end_and_resume(tmp_path: Path) -> None:
    work = tmp_path / "work"
    # an interrupted run: it stops after training (as if killed there)
    _run(work, "--stop-after", "train")
    first = _state(work)
    assert first["runs"][-1]["ran"] == ["collect", "annotate", "rewards", "codegen", "train"]
    assert first["runs"][-1]["skipped"] == []

    dataset = read_pair_dataset(work / "pairs")
    assert dataset.num_pairs > 10
    for skill in SKILL_NAMES:  # exactly one label per pair for every skill
        assert read_labels(work / "labels", skill).num_rows == dataset.num_pairs
    assert set(read_manifest(work / "reward_bundles")["skills"]) == set(SKILL_NAMES)
    checkpoints = _checkpoint_steps(work / "runs" / "policy")
    assert checkpoints, "training wrote no checkpoint"
    codegen = first["stages"]["codegen"]["result"]
    assert set(codegen) == {"skill_functions", "training_policy"}
    for kind in codegen.values():  # every generation stored as an artifact, validated or not
        assert (work / "artifacts" / f"{kind['sha256']}.json").exists()
    labels_before = _labels(work / "labels")

    # run again: the finished stages are skipped, the rest runs to the report
    log = _run(work)
    second = _state(work)
    run = second["runs"][-1]
    assert run["skipped"] == ["collect", "annotate", "rewards", "codegen", "train"], run
    assert run["ran"] == ["skill_eval", "compose", "task_eval", "report"], run
    assert "collect:" not in log and "annotate:" not in log  # no game played, nothing labelled again
    assert _labels(work / "labels") == labels_before
    assert _checkpoint_steps(work / "runs" / "policy") == checkpoints  # not trained again
    assert list(second["stages"]["compose"]["result"]) == ["gnomish", "buc"]
    report = (work / "report" / "report.md").read_text()
    for heading in ("## Reward models", "## Code written by the LLM", "## Skills: trained against random",
                    "## The nine tasks", "overridden on the command line: train.samples=4096"):
        assert heading in report, heading
    assert "report:" in log and str(work / "report" / "report.md") in log
    # the services' and libraries' log lines went to files, not to the console
    assert (work / "logs" / "learner.log").stat().st_size > 0
    assert '"level"' not in log and "WARNING" not in log and "ResourceWarning" not in log
