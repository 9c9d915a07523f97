"""Reward-model commands: ``train-reward`` and ``reward-info``."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    app.command("train-reward")(train_reward)
    app.command("reward-info")(reward_info)


def train_reward(
    pairs: Annotated[Path, typer.Option("--pairs", help="Pair dataset directory (manifest.json + shards).")],
    labels: Annotated[Path, typer.Option("--labels", help="Label set directory (one folder per skill).")],
    out: Annotated[Path, typer.Option("--out", help="Bundle root to write into (manifest.json + one dir per bundle).")],
    skill: Annotated[str, typer.Option("--skill", help="Skill name, or 'all' for every skill with labels.")] = "all",
    epochs: Annotated[int, typer.Option(help="Passes over the training pairs (method: 20).")] = 20,
    lr: Annotated[float, typer.Option("--lr", help="Adam learning rate (method: 1e-5).")] = 1e-5,
    batch_size: Annotated[int, typer.Option(help="Pairs per batch (method: 1000).")] = 1000,
    seed: Annotated[int, typer.Option(help="Seed of torch and the batch order (method: 777).")] = 777,
    val_fraction: Annotated[float, typer.Option(help="Share of pairs held out, chosen by pair-id hash.")] = 0.05,
    unparsed: Annotated[
        str, typer.Option(help="Label 3 (no verdict): 'tie' counts it as [1/2, 1/2] (method), 'drop' skips it.")
    ] = "tie",
    no_shuffle: Annotated[bool, typer.Option("--no-shuffle", help="Contiguous batches, as the original.")] = False,
    device: Annotated[str, typer.Option(help="'auto' (CUDA when present), 'cpu', 'cuda', 'cuda:1', ...")] = "auto",
    threads: Annotated[int | None, typer.Option(help="CPU threads for torch.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Train skill reward models from labelled pairs and write one bundle per skill."""
    from pydantic import ValidationError

    from maestromotif.annotation.schema import DatasetError
    from maestromotif.rewards.bundles import BundleError
    from maestromotif.rewards.train import TrainConfig, train_reward_models

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        config = TrainConfig(
            learning_rate=lr,
            batch_size=batch_size,
            epochs=epochs,
            seed=seed,
            val_fraction=val_fraction,
            unparsed=unparsed,  # type: ignore[arg-type]
            shuffle=not no_shuffle,
            device=device,
            threads=threads,
        )
    except ValidationError as exc:
        raise typer.BadParameter(str(exc)) from exc
    skills = "all" if skill == "all" else [s.strip().lower() for s in skill.split(",")]
    try:
        results = train_reward_models(pairs, labels, out, skills, config, progress=not quiet)
    except (DatasetError, BundleError, ValueError) as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from exc
    for result in results:
        m = result.report["metrics"]
        typer.echo(
            f"{result.skill}: bundle {result.meta.version} -> {result.bundle_dir}\n"
            f"  train acc {format_metric(m['train_accuracy'])}  held-out acc {format_metric(m['val_accuracy'])}  "
            f"(pairs: {m['train_pairs']} train, {m['val_pairs']} held out)\n"
            f"  mean {result.meta.mean:.4f}  std {result.meta.std:.4f}  "
            f"threshold {result.meta.threshold:.4f} (q{result.meta.threshold_level})\n"
            f"  report {result.bundle_dir / 'report.json'}  curve {result.bundle_dir / 'loss_curve.png'}"
        )


def format_metric(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _label_source(bundle_dir: Path) -> str:
    """The bundle report's ``label_source`` (llm, llm+depth_prior:W, ...); "unrecorded" if absent."""
    try:
        report = json.loads((bundle_dir / "report.json").read_text())
    except (OSError, ValueError):
        return "unrecorded"
    source = report.get("label_source") if isinstance(report, dict) else None
    return source if isinstance(source, str) else "unrecorded"


def reward_info(
    bundles: Annotated[Path, typer.Argument(help="Bundle root (as written by train-reward).")],
    messages: Annotated[Path | None, typer.Option(
        "--messages", help="A pair dataset: rank its distinct messages by each skill's model (no depth change) "
        "and list the highest, marking those above the threshold (the ones the shaping rule rewards): "
        "what a policy can earn its intrinsic return with.")] = None,
    top: Annotated[int, typer.Option("--top", min=1, max=1000, help="How many messages per skill with --messages.")] = 10,
) -> None:
    """Validate a bundle root and print what each skill's bundle holds."""
    from maestromotif.annotation.schema import DatasetError, read_pair_dataset
    from maestromotif.rewards.bundles import BundleError, load_bundle, read_manifest
    from maestromotif.rewards.ranking import dataset_messages, rank_messages

    try:
        counts = dataset_messages(read_pair_dataset(messages)) if messages is not None else None
    except DatasetError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from exc
    try:
        manifest = read_manifest(bundles)
        rows = {}
        for skill, entry in manifest["skills"].items():
            bundle = load_bundle(bundles / entry["path"])
            meta = bundle.meta
            rows[skill] = {
                "version": meta.version,
                "trained": meta.trained,
                "mean": meta.mean,
                "std": meta.std,
                "threshold": meta.threshold,
                "threshold_level": meta.threshold_level,
                "val_accuracy": meta.metrics.get("val_accuracy"),
                "label_source": _label_source(bundles / entry["path"]),
            }
            if counts is not None:
                ranked = rank_messages(bundle, counts)
                rows[skill]["distinct_messages"] = len(ranked)
                rows[skill]["rewarded_messages"] = sum(r.rewarded for r in ranked)
                rows[skill]["top_messages"] = [
                    {"score": round(r.score, 3), "rewarded": r.rewarded, "occurrences": r.occurrences, "text": r.text}
                    for r in ranked[:top]
                ]
    except BundleError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from exc
    typer.echo(json.dumps(rows, indent=2))
