"""``maestromotif pipeline``: the whole method end to end, at a size one machine can run.

collect pairs -> label them with the LLM -> train the five reward models -> train the
skill policy through the reward, learner and actor services. Every stage writes into
``--workdir`` and is resumable: a finished stage (its manifest exists) is skipped, the
annotation job resumes from its ledger and training from its latest checkpoint, so the
same command can be run again after an interruption and nothing is redone or lost.
This is what ``make run`` runs, with the embedded LLM.

``--rounds 2`` adds a second collection round (issue 14: more diverse pairs): the trained
checkpoint plays (``collect --policy checkpoint``), its pairs are labelled by the LLM (its
judgement alone, as in round 1), the reward models are retrained on both rounds' pairs, a
second policy is trained on them, and ``round2/report.json`` compares the rounds: distinct
messages per round and per skill, the reward models' held-out agreement, and each policy's
return and competence against random actions from the same states. Each of these stages is
skipped too when its output exists. It is off by default: it more than doubles the run time.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

console = Console(stderr=True)


def _stage(title: str) -> None:
    console.rule(f"[bold]{title}")


def pipeline_command(
    workdir: Annotated[
        Path, typer.Option("--workdir", help="Folder for every stage's output (the services' defaults read data/).")
    ] = Path("data"),
    collect_steps: Annotated[int, typer.Option("--collect-steps", min=1, help="Env steps to collect pairs from.")] = 100_000,
    collect_envs: Annotated[int, typer.Option("--collect-envs", min=1, max=256, help="Games played at once.")] = 8,
    backend: Annotated[str, typer.Option("--backend", help="LLM: embedded, openai or tgi.")] = "embedded",
    url: Annotated[Optional[str], typer.Option("--url", help="LLM server base URL (openai, tgi).")] = None,
    reward_epochs: Annotated[int, typer.Option("--reward-epochs", min=1, help="Reward-model epochs.")] = 10,
    reward_lr: Annotated[float, typer.Option("--reward-lr", min=0.0, help="Reward-model learning rate.")] = 3e-4,
    reward_batch: Annotated[int, typer.Option("--reward-batch", min=1, help="Pairs per reward-model batch.")] = 128,
    train_steps: Annotated[int, typer.Option("--train-steps", min=1, help="Policy samples to train.")] = 200_000,
    actors: Annotated[int, typer.Option("--actors", min=1, max=64, help="Actor processes.")] = 1,
    preset: Annotated[str, typer.Option("--preset", help="Policy network: auto (paper on GPU), paper, small.")] = "auto",
    seed: Annotated[int, typer.Option("--seed", help="Seed of collection.")] = 0,
    base_port: Annotated[int, typer.Option("--base-port", help="learner, actors, reward get base+0, +1, +2.")] = 50051,
    base_metrics_port: Annotated[int, typer.Option("--base-metrics-port")] = 9091,
    rounds: Annotated[int, typer.Option("--rounds", min=1, max=2, help=(
        "Collection rounds. 2: the trained policy collects new pairs, they are labelled, the reward models "
        "retrained on both rounds and a second policy trained; round2/report.json compares them."))] = 1,
    eval_steps: Annotated[int, typer.Option("--eval-steps", min=1, help=(
        "Round 2: env steps of the evaluation of each round's policy (trained vs random, return and competence)."
    ))] = 20_000,
) -> None:
    """Run the method end to end: collect, annotate, train reward models, train the skill policy.

    The defaults are sized for a 2-core machine with no GPU (about half an hour, most of it
    LLM annotation). The paper's reward models use lr 1e-5, batch 1000 and 20 epochs over
    hundreds of thousands of pairs; with the few thousand pairs collected here a larger step
    is needed to learn anything, hence the defaults above.
    """
    from tqdm import tqdm

    from maestromotif.annotation.collect import CollectError, collect_pairs
    from maestromotif.annotation.job import FAILED, AnnotationJob, JobSpec
    from maestromotif.annotation.schema import read_pair_dataset
    from maestromotif.annotation.strategies import Annotator
    from maestromotif.cli.annotate import make_cli_backend
    from maestromotif.cli.reward import format_metric
    from maestromotif.cli.train import run_training
    from maestromotif.llm import LLMError
    from maestromotif.rewards.bundles import BundleError
    from maestromotif.rewards.train import TrainConfig, train_reward_models
    from maestromotif.skills.ids import Skill

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    pairs, labels, bundles = workdir / "pairs", workdir / "labels", workdir / "reward_bundles"

    total = 4 if rounds == 1 else 9
    _stage(f"1/{total} collect pairs of transitions")
    if (pairs / "manifest.json").exists():
        console.print(f"{pairs} exists: skipped")
    else:
        try:
            with tqdm(total=collect_steps, unit="step", desc="collect") as bar:
                result = collect_pairs(pairs, steps=collect_steps, policy="reference", num_envs=collect_envs,
                                       seed=seed, progress=bar.update)
        except CollectError as exc:
            console.print(f"[red]error: {exc}")
            raise typer.Exit(2) from exc
        console.print(f"{result.pairs} pairs from {result.steps} steps -> {pairs}")

    _stage(f"2/{total} label pairs for the five skills ({backend} LLM)")
    try:
        annotator = Annotator(make_cli_backend(backend, url))
    except (ValueError, LLMError) as exc:
        console.print(f"[red]error: {exc}")
        raise typer.Exit(2) from exc

    def annotate(pairs_dir: Path, labels_dir: Path) -> None:
        dataset = read_pair_dataset(pairs_dir)
        job = AnnotationJob(JobSpec(str(pairs_dir), str(labels_dir), tuple(Skill)), annotator)
        with tqdm(total=dataset.num_pairs * len(Skill), unit="label", desc="annotate") as bar:
            job.on_progress = bar.update
            status = job.run()
        if status.state == FAILED:
            console.print(f"[red]annotation failed: {status.error}")
            raise typer.Exit(1)
        console.print(f"labels ({annotator.strategy} strategy, {annotator.model_id}, "
                      f"label source {annotator.label_source}) -> {labels_dir}")

    annotate(pairs, labels)

    _stage(f"3/{total} train the five reward models")
    if (bundles / "manifest.json").exists():
        console.print(f"{bundles} exists: skipped")
    else:
        config = TrainConfig(learning_rate=reward_lr, batch_size=reward_batch, epochs=reward_epochs, val_fraction=0.1)
        try:
            results = train_reward_models(pairs, labels, bundles, "all", config)
        except (BundleError, ValueError) as exc:
            console.print(f"[red]error: {exc}")
            raise typer.Exit(2) from exc
        for r in results:
            m = r.report["metrics"]
            console.print(f"{r.skill:<11} held-out accuracy {format_metric(m['val_accuracy'])}"
                          f"  threshold {r.meta.threshold:.3f}")

    _stage(f"4/{total} train the skill policy (reward + learner + actors)")
    code = run_training(steps=train_steps, actors=actors, preset=preset, reward_bundles=bundles,
                        train_dir=workdir / "runs", experiment="policy", base_port=base_port,
                        base_metrics_port=base_metrics_port)
    summary = {"pairs": str(pairs), "labels": str(labels), "reward_bundles": str(bundles),
               "checkpoints": str(workdir / "runs" / "policy"), "exit_code": code}
    if rounds == 2 and code == 0:
        from maestromotif.training.rounds import second_round

        code = second_round(
            workdir, annotate=annotate, collect_steps=collect_steps, collect_envs=collect_envs, seed=seed,
            config=TrainConfig(learning_rate=reward_lr, batch_size=reward_batch, epochs=reward_epochs, val_fraction=0.1),
            train=lambda bundle_dir, experiment: run_training(
                steps=train_steps, actors=actors, preset=preset, reward_bundles=bundle_dir,
                train_dir=workdir / "runs", experiment=experiment, base_port=base_port,
                base_metrics_port=base_metrics_port),
            eval_steps=eval_steps, stage=lambda i, title: _stage(f"{i}/{total} {title}"), console=console)
        summary.update({"round2": str(workdir / "round2"), "exit_code": code})
    typer.echo(json.dumps(summary))
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    app.command("pipeline")(pipeline_command)
