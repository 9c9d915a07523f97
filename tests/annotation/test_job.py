"""Annotation job: exactly one label per pair after kill -9 at random points; waits on a down backend."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "llm"))
from tgi_double import TGIDouble  # noqa: E402

from maestromotif.annotation.job import WAITING, AnnotationJob, JobSpec, parse_shard  # noqa: E402
from maestromotif.annotation.schema import read_labels, read_pair_dataset, write_pair_dataset  # noqa: E402
from maestromotif.annotation.strategies import Annotator  # noqa: E402
from maestromotif.llm import make_backend  # noqa: E402
from maestromotif.skills.ids import Skill  # noqa: E402

CLI = "import sys; from maestromotif.cli import app; app(sys.argv[1:])"


def _ledger_count(out: Path) -> int:
    ledger = out / "ledger" / "shard00000-of-00001.sqlite"
    if not ledger.exists():
        return 0
    try:
        with sqlite3.connect(ledger, timeout=5) as db:
            return int(db.execute("SELECT COUNT(*) FROM labels").fetchone()[0])
    except sqlite3.OperationalError:  # table not created yet
        return 0


def test_kill_9_then_rerun_gives_exactly_one_label_per_pair(tmp_path: Path, records) -> None:
    pairs = tmp_path / "pairs"
    write_pair_dataset(pairs, records(30), gap_steps=100)
    out = tmp_path / "labels"
    server = subprocess.Popen([sys.executable, str(Path(__file__).parents[1] / "llm" / "tgi_double.py"), "0.01"],
                              stdout=subprocess.PIPE, text=True)
    try:
        url = server.stdout.readline().strip()
        args = [sys.executable, "-c", CLI, "annotate", "--pairs", str(pairs), "--out", str(out), "--skill", "all",
                "--backend", "tgi", "--url", url, "--strategy", "score", "--concurrency", "4"]
        env = {**os.environ, "PYTHONPATH": str(Path.cwd())}
        rng = random.Random(5)
        total = 30 * 5
        kills = 0
        for _ in range(3):
            before = _ledger_count(out)
            proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            # kill at a random point after it has made some progress (or at start-up)
            target = before + rng.randint(0, 25)
            deadline = time.monotonic() + 60
            while _ledger_count(out) < target and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.01)
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
            proc.wait()
        assert kills >= 1
        assert _ledger_count(out) < total  # the kills really left work undone
        done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=240)
        assert done.returncode == 0, done.stderr[-2000:]
    finally:
        server.kill()
        server.wait()
    dataset = read_pair_dataset(pairs)
    for name in ("discoverer", "descender", "ascender", "worshipper", "merchant"):
        table = read_labels(out, name, pairs=dataset, require_complete=True)
        ids = table.column("pair_id").to_pylist()
        assert len(ids) == len(set(ids)) == 30
        assert set(table.column("label").to_pylist()) <= {0, 1, 2}
    assert _ledger_count(out) == total


def test_backend_down_makes_job_wait_then_finish(tmp_path: Path, records) -> None:
    pairs = tmp_path / "pairs"
    write_pair_dataset(pairs, records(6), gap_steps=100)
    with TGIDouble() as tgi:
        tgi.fail_next = 10**6  # down
        annotator = Annotator(make_backend("tgi", url=tgi.url, retries=1), "score")
        job = AnnotationJob(JobSpec(str(pairs), str(tmp_path / "out"), (Skill.DESCENDER,)), annotator,
                            concurrency=2, wait_initial_s=0.05, wait_max_s=0.1)
        runner = threading.Thread(target=job.run)
        runner.start()
        deadline = time.monotonic() + 30
        while job.snapshot().state != WAITING and time.monotonic() < deadline:
            time.sleep(0.02)
        status = job.snapshot()
        assert status.state == WAITING and "OverloadedError" in status.error, status.error
        assert status.progress[int(Skill.DESCENDER)].done == 0
        tgi.fail_next = 0  # back up
        runner.join(timeout=60)
    final = job.snapshot()
    assert final.state == "succeeded", final.error
    assert final.progress[int(Skill.DESCENDER)].done == 6
    assert read_labels(tmp_path / "out", "descender").num_rows == 6


def test_ledger_refuses_other_dataset(tmp_path: Path, records) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    write_pair_dataset(a, records(4), gap_steps=100)
    write_pair_dataset(b, records(5), gap_steps=100)
    with TGIDouble() as tgi:
        annotator = Annotator(make_backend("tgi", url=tgi.url), "score")
        out = tmp_path / "out"
        assert AnnotationJob(JobSpec(str(a), str(out), (Skill.ASCENDER,)), annotator).run().state == "succeeded"
        status = AnnotationJob(JobSpec(str(b), str(out), (Skill.ASCENDER,)), annotator).run()
    assert status.state == "failed" and "pairs_manifest_sha256" in status.error


def test_ledger_refuses_other_annotation_settings(tmp_path: Path, records) -> None:
    pairs, out = tmp_path / "pairs", tmp_path / "out"
    write_pair_dataset(pairs, records(4), gap_steps=100)
    with TGIDouble() as tgi:
        backend = make_backend("tgi", url=tgi.url)
        spec = JobSpec(str(pairs), str(out), (Skill.ASCENDER,))
        assert AnnotationJob(spec, Annotator(backend, "score")).run().state == "succeeded"
        # same model and strategy, another prior: resuming would mix labels made two ways
        status = AnnotationJob(spec, Annotator(backend, "score", depth_prior=3.0)).run()
    assert status.state == "failed" and "settings" in status.error


def test_label_manifest_names_the_label_source(tmp_path: Path, records) -> None:
    import json

    from maestromotif.rewards.data import label_provenance

    pairs = tmp_path / "pairs"
    write_pair_dataset(pairs, records(4), gap_steps=100)
    with TGIDouble() as tgi:
        backend = make_backend("tgi", url=tgi.url)
        for name, annotator in (("llm", Annotator(backend, "score")),
                                ("prior", Annotator(backend, "score", depth_prior=3.0))):
            out = tmp_path / name
            assert AnnotationJob(JobSpec(str(pairs), str(out), (Skill.ASCENDER,)), annotator).run().state == "succeeded"
            manifest = json.loads((out / "ascender" / "manifest.json").read_text())
            assert manifest["label_source"] == ("llm" if name == "llm" else "llm+depth_prior:3")
            assert manifest["depth_prior"] == (0.0 if name == "llm" else 3.0)
            assert label_provenance(out, "ascender")["label_source"] == manifest["label_source"]


def test_settings_fingerprint_follows_prompts_and_settings() -> None:
    backend = make_backend("tgi", url="http://127.0.0.1:9")
    base = Annotator(backend, "score").settings_fingerprint
    assert Annotator(backend, "score").settings_fingerprint == base
    assert Annotator(backend, "score", tie_margin=0.2).settings_fingerprint != base
    assert Annotator(backend, "compare").settings_fingerprint != base


def test_parse_shard() -> None:
    assert parse_shard("1/4", {}) == (1, 4)
    assert parse_shard(None, {"JOB_COMPLETION_INDEX": "2", "MAESTROMOTIF_NUM_SHARDS": "3"}) == (2, 3)
    assert parse_shard(None, {}) == (0, 1)
    with pytest.raises(ValueError, match="not in"):
        parse_shard("4/4", {})
    with pytest.raises(ValueError, match="MAESTROMOTIF_NUM_SHARDS"):
        parse_shard(None, {"JOB_COMPLETION_INDEX": "1"})
    with pytest.raises(ValueError, match="I/N"):
        parse_shard("a/b", {})
