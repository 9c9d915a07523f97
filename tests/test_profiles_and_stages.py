"""Pipeline profiles (one place for every stage's scale) and the stage runner's skip rule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from maestromotif.cli.pipeline import PipelineState, Runner, StageFailed
from maestromotif.profiles import PROFILES, get_profile


def test_paper_profile_carries_the_methods_values() -> None:
    paper = PROFILES["paper"]
    assert (paper.rewards.learning_rate, paper.rewards.batch_size, paper.rewards.epochs) == (1e-5, 1000, 20)
    assert (paper.train.batch_size, paper.train.learning_rate, paper.train.samples) == (4096, 1e-4, 4_000_000_000)
    assert paper.train.preset == "paper" and paper.task_eval.max_steps == 10_000
    assert paper.codegen.max_repair_rounds == 3 and paper.codegen.temperature == 0.2


def test_every_small_profile_says_how_it_departs_from_the_method() -> None:
    for name in ("tiny", "small"):
        prof = PROFILES[name]
        assert prof.deviations, name
        assert prof.train.samples < PROFILES["paper"].train.samples


def test_overrides_are_validated_and_named() -> None:
    prof = get_profile("tiny", ["train.samples=5000", "collect.policy=random"])
    assert prof.train.samples == 5000 and prof.collect.policy == "random"
    assert prof.deviations[-2:] == ("overridden on the command line: train.samples=5000",
                                    "overridden on the command line: collect.policy=random")
    assert PROFILES["tiny"].train.samples != 5000  # the shipped profile is untouched
    for bad, message in (("train.samples=-3", "train.samples"), ("train.nope=1", "no field 'nope'"),
                         ("bogus=1", "stage.field=value"), ("collect.policy=walk", "collect.policy")):
        with pytest.raises(ValueError, match=message):
            get_profile("tiny", [bad])
    with pytest.raises(ValueError, match="unknown 'huge'"):
        get_profile("huge")


def test_runner_skips_a_stage_done_with_the_same_settings(tmp_path: Path) -> None:
    calls: list[str] = []
    out = tmp_path / "out.txt"

    def body() -> dict:
        calls.append("ran")
        out.write_text("x")
        return {"file": str(out)}

    def outputs(result: dict) -> bool:
        return Path(result["file"]).exists()

    state = PipelineState.load(tmp_path)
    Runner(tmp_path, "tiny", state, 1).run("collect", "collect", {"steps": 10}, outputs, body)
    assert calls == ["ran"]
    # a second run with the same settings skips it, and records that it did
    state = PipelineState.load(tmp_path)
    runner = Runner(tmp_path, "tiny", state, 1)
    assert runner.run("collect", "collect", {"steps": 10}, outputs, body) == {"file": str(out)}
    assert calls == ["ran"]
    saved = json.loads((tmp_path / "pipeline_state.json").read_text())
    assert saved["runs"][-1]["skipped"] == ["collect"] and saved["runs"][-1]["ran"] == []
    # other settings, or lost outputs: it runs again
    Runner(tmp_path, "tiny", PipelineState.load(tmp_path), 1).run("collect", "collect", {"steps": 11}, outputs, body)
    out.unlink()
    Runner(tmp_path, "tiny", PipelineState.load(tmp_path), 1).run("collect", "collect", {"steps": 11}, outputs, body)
    assert calls == ["ran", "ran", "ran"]


def test_a_failed_stage_is_recorded_and_runs_again(tmp_path: Path) -> None:
    def fail() -> dict:
        raise StageFailed("the LLM backend is unreachable")

    state = PipelineState.load(tmp_path)
    with pytest.raises(StageFailed):
        Runner(tmp_path, "tiny", state, 1).run("annotate", "annotate", {}, lambda _r: True, fail)
    assert PipelineState.load(tmp_path).stage("annotate")["status"] == "failed"
    done = Runner(tmp_path, "tiny", PipelineState.load(tmp_path), 1).run(
        "annotate", "annotate", {}, lambda _r: True, lambda: {"ok": 1})
    assert done == {"ok": 1}


def test_unreadable_state_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "pipeline_state.json").write_text("{not json")
    with pytest.raises(StageFailed, match="unreadable pipeline state"):
        PipelineState.load(tmp_path)
