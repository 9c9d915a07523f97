"""`maestromotif eval` on real games: three conditions on the same dungeons, JSON, chart, pooling."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from maestromotif.cli import app
from maestromotif.tasks.evaluation import TaskEvaluation, TaskEvaluationError, evaluate_tasks


def test_three_conditions_play_the_same_dungeons(checkpoint: Path) -> None:
    seen = []
    result = evaluate_tasks(checkpoint, tasks=["gnomish", "transactions"], episodes=2, max_steps=25, batch=2, seed=5,
                            progress=seen.append)
    assert len(result.episodes) == len(seen) == 2 * 3 * 2
    for task in ("gnomish", "transactions"):
        for cond in ("trained", "untrained", "random"):
            recs = [r for r in result.episodes if r.task == task and r.condition == cond]
            assert sorted(r.seed for r in recs) == [5, 6]
            assert all(1 <= r.steps <= 25 and r.reason in ("success", "death", "step_limit") for r in recs)
    s = result.summary()
    assert s["gnomish"]["metric"] == "success" and s["gnomish"]["paper_value"] == 46.0
    assert set(s["transactions"]["conditions"]["random"]) >= {"legacy", "strict", "legacy_conditional"}
    assert result.checkpoint_name.startswith("exp/") and result.preset == "small"


def test_untrained_network_differs_from_the_checkpoint_but_is_reproducible(checkpoint: Path) -> None:
    import torch

    from maestromotif.tasks.evaluation import build_untrained, load_trained

    trained, info, _ = load_trained(checkpoint)
    a, _ = build_untrained(info["preset"], seed=3)
    b, _ = build_untrained(info["preset"], seed=3)
    c, _ = build_untrained(info["preset"], seed=4)
    pa, pb, pc, pt = (torch.cat([p.flatten() for p in m.parameters()]) for m in (a, b, c, trained))
    assert torch.equal(pa, pb) and not torch.equal(pa, pc) and pa.shape == pt.shape


def test_bad_arguments_fail_clearly(checkpoint: Path, tmp_path: Path) -> None:
    with pytest.raises(TaskEvaluationError, match="unknown nope"):
        evaluate_tasks(checkpoint, tasks=["nope"])
    with pytest.raises(TaskEvaluationError, match="conditions"):
        evaluate_tasks(checkpoint, tasks=["gnomish"], conditions=["lucky"])
    with pytest.raises(TaskEvaluationError, match="does not exist"):
        evaluate_tasks(tmp_path / "missing.pth", tasks=["gnomish"])
    with pytest.raises(TaskEvaluationError, match="SHA-256"):
        evaluate_tasks(checkpoint, tasks=["gnomish"], policies="mine")


def test_cli_writes_json_and_chart_and_pools(checkpoint: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    outs = []
    for seed in (0, 10):
        out = tmp_path / f"e{seed}.json"
        res = runner.invoke(app, ["eval", "--task", "buc", "--episodes", "1", "--checkpoint", str(checkpoint),
                                  "--max-steps", "15", "--seed", str(seed), "--conditions", "trained,random",
                                  "--batch", "1", "--out", str(out)])
        assert res.exit_code == 0, res.output
        assert "buc" in res.output and "1.60 ± 0.01" in res.output  # the paper's number beside ours
        assert out.with_suffix(".png").stat().st_size > 1000
        outs.append(out)
    pooled = tmp_path / "pooled.json"
    res = runner.invoke(app, ["eval", "--pool", str(outs[0]), "--pool", str(outs[1]), "--out", str(pooled)])
    assert res.exit_code == 0, res.output
    data = TaskEvaluation.from_dict(json.loads(pooled.read_text()))
    assert sorted(r.seed for r in data.episodes if r.condition == "trained") == [0, 10]
    assert data.summary()["buc"]["conditions"]["random"]["episodes"] == 2
    res = runner.invoke(app, ["eval", "--pool", str(outs[0]), "--pool", str(outs[0])])
    assert res.exit_code == 2 and "twice" in res.output
    res = runner.invoke(app, ["eval", "--task", "nope", "--checkpoint", str(checkpoint)])
    assert res.exit_code == 2 and "unknown nope" in res.output


def test_parallel_workers_give_the_same_episodes(checkpoint: Path) -> None:
    # random actions only: the workers then need no torch, which keeps this test fast
    kw = dict(tasks=["gnomish", "buc"], episodes=3, max_steps=12, batch=2, conditions=["random"])
    one = evaluate_tasks(checkpoint, workers=1, **kw)
    two = evaluate_tasks(checkpoint, workers=2, **kw)
    key = lambda r: (r.condition, r.seed)  # noqa: E731
    strip = lambda rs: [(r.condition, r.seed, r.steps, r.reason, r.skill_steps) for r in sorted(rs, key=key)]  # noqa: E731
    assert strip(one.episodes) == strip(two.episodes)


def test_generated_policies_come_from_validated_artifacts_only(checkpoint: Path, tmp_path: Path) -> None:
    from maestromotif.codegen import ArtifactKind
    from maestromotif.codegen.artifacts import ArtifactRecord, ArtifactStore, Sampling
    from maestromotif.codegen.validate import validate_code
    from maestromotif.skills.reference import reference_source

    store = ArtifactStore(tmp_path / "artifacts")

    def put(code: str, task: str) -> tuple[str, bool]:
        report = validate_code(code, ArtifactKind.TASK_POLICY)
        record = ArtifactRecord(kind=ArtifactKind.TASK_POLICY, task=task, code=code, prompt="p", backend="openai",
                                model_id="m", model_digest="d",
                                sampling=Sampling(temperature=0.2, seed=1, max_tokens=100, repair_rounds=0),
                                validation=report.to_dict(), detector_task=task)
        return store.put(record), report.valid

    good, ok = put(reference_source("gnomish"), "gnomish")
    bad, bad_ok = put("SKILL_TURNS = 50\ndef start(memory):\n    pass\ndef choose_skill(state, memory):\n"
                      "    return open('x')\n", "delphi")
    assert ok and not bad_ok
    result = evaluate_tasks(checkpoint, tasks=["gnomish"], episodes=1, max_steps=8, conditions=["random"],
                            policies="generated", artifacts=tmp_path / "artifacts")
    assert len(result.episodes) == 1 and result.policies == "generated"
    assert evaluate_tasks(checkpoint, tasks=["gnomish"], episodes=1, max_steps=8, conditions=["random"],
                          policies=good, artifacts=tmp_path / "artifacts").episodes[0].steps <= 8
    with pytest.raises(TaskEvaluationError, match="did not pass validation"):
        evaluate_tasks(checkpoint, tasks=["delphi"], episodes=1, policies=bad, artifacts=tmp_path / "artifacts")
    with pytest.raises(TaskEvaluationError, match="no validated task policy for 'delphi'"):
        evaluate_tasks(checkpoint, tasks=["delphi"], episodes=1, policies="generated", artifacts=tmp_path / "artifacts")
