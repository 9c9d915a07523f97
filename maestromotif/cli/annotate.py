"""CLI: ``collect`` (pair datasets), ``annotate`` (resumable labelling job), ``annotate-eval`` (check set)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Optional

import typer

_BACKEND_HELP = "LLM backend: embedded (in-process llama.cpp), openai (any OpenAI-compatible server) or tgi."


def make_cli_backend(backend: str, url: Optional[str], model: Optional[str] = None, model_dir: Optional[str] = None,
                     timeout: float = 120.0, concurrency: int = 8, template: str = "llama3",
                     n_threads: Optional[int] = None):
    """The LLM backend named on a command line (shared by annotate, annotate-eval and pipeline)."""
    from maestromotif.llm import make_backend

    if backend == "embedded":
        return make_backend("embedded", model=model or "0.5b", model_dir=model_dir, n_threads=n_threads)
    if backend == "openai":
        return make_backend("openai", url=url, model=model, timeout_s=timeout, max_concurrency=concurrency)
    if backend == "tgi":
        return make_backend("tgi", url=url, model=model or "tgi", timeout_s=int(timeout),
                            max_concurrency=concurrency, template=template)
    raise typer.BadParameter(f"{backend!r}: choose embedded, openai or tgi", param_hint="--backend")


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def register(app: typer.Typer) -> None:
    @app.command("collect")
    def collect(
        steps: int = typer.Option(..., "--steps", min=1, help="Total env steps (all envs together)."),
        out: Path = typer.Option(..., "--out", help="New directory for the pair dataset."),
        policy: str = typer.Option("random", "--policy", help="random | reference | checkpoint"),
        num_envs: int = typer.Option(4, "--num-envs", min=1, max=256),
        gap_steps: int = typer.Option(100, "--gap-steps", min=1, help="Steps between the two stats of a transition."),
        sample_prob: float = typer.Option(0.05, "--sample-prob", help="Chance to record a transition at a step."),
        seed: int = typer.Option(0, "--seed"),
        checkpoint: Optional[str] = typer.Option(None, "--checkpoint", help="Policy checkpoint (policy=checkpoint)."),
    ) -> None:
        """Play NetHack and write a pair dataset (Parquet shards + manifest)."""
        from tqdm import tqdm

        from maestromotif.annotation.collect import CollectError, collect_pairs

        try:
            with tqdm(total=steps, unit="step", desc="collect") as bar:
                result = collect_pairs(out, steps=steps, policy=policy, num_envs=num_envs, gap_steps=gap_steps,
                                       sample_prob=sample_prob, seed=seed, checkpoint=checkpoint, progress=bar.update)
        except CollectError as exc:
            _fail(str(exc))
        typer.echo(json.dumps({"out": str(out), "pairs": result.pairs, "transitions": result.transitions,
                               "steps": result.steps, "gap_steps": gap_steps}))

    @app.command("annotate")
    def annotate(
        pairs: Path = typer.Option(..., "--pairs", help="Pair dataset directory."),
        out: Path = typer.Option(..., "--out", help="Label set directory (labels + ledger)."),
        skill: str = typer.Option("all", "--skill", help="all or a skill name."),
        backend: str = typer.Option("embedded", "--backend", help=_BACKEND_HELP),
        url: Optional[str] = typer.Option(None, "--url", help="LLM server base URL (openai, tgi)."),
        model: Optional[str] = typer.Option(None, "--model", help="Embedded: 0.5b|1.5b; remote: model id."),
        model_dir: Optional[str] = typer.Option(None, "--model-dir", help="Cache dir of the embedded model."),
        strategy: Optional[str] = typer.Option(None, "--strategy", help="compare | score (default per backend)."),
        shard: Optional[str] = typer.Option(None, "--shard", help="I/N; default JOB_COMPLETION_INDEX or 0/1."),
        tie_margin: float = typer.Option(0.1, "--tie-margin", min=0.0),
        depth_prior: float = typer.Option(0.0, "--depth-prior", min=0.0, max=100.0,
                                          help="Score strategy: weight of a HAND-CODED prior (the skill's level-change "
                                               "goal) added to the LLM's score; default 0: labels are the LLM's alone. "
                                               "Outputs made with it say so (label_source)."),
        timeout: float = typer.Option(120.0, "--timeout", min=1.0, help="Seconds per LLM request."),
        concurrency: int = typer.Option(8, "--concurrency", min=1, max=256, help="Concurrent remote requests."),
        template: str = typer.Option("llama3", "--template", help="TGI prompt template: llama3 | chatml."),
        wait_max: float = typer.Option(60.0, "--wait-max", min=0.01, help="Longest wait between tries of a down backend."),
    ) -> None:
        """Label a pair dataset (one shard) for some skills; safe to kill and re-run."""
        from tqdm import tqdm

        from maestromotif.annotation.job import FAILED, AnnotationJob, JobSpec, parse_shard
        from maestromotif.annotation.schema import DatasetError, read_pair_dataset
        from maestromotif.annotation.strategies import Annotator
        from maestromotif.llm import LLMError
        from maestromotif.skills.ids import SKILL_NAMES, Skill, SkillIdError, parse_skill

        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
        try:
            index, count = parse_shard(shard)
            skills = tuple(Skill) if skill == "all" else (parse_skill(skill),)
            dataset = read_pair_dataset(pairs)
            llm = make_cli_backend(backend, url, model, model_dir, timeout, concurrency, template)
            annotator = Annotator(llm, strategy, tie_margin=tie_margin, depth_prior=depth_prior)
        except (ValueError, DatasetError, SkillIdError, LLMError) as exc:
            _fail(str(exc))
        total = len(dataset.shard(index, count)) * len(skills)
        job = AnnotationJob(JobSpec(str(pairs), str(out), skills, index, count), annotator,
                            concurrency=concurrency if llm.max_concurrency > 1 else 1, wait_max_s=wait_max)
        with tqdm(total=total, unit="label", desc=f"annotate {index}/{count}") as bar:
            job.on_progress = bar.update
            try:
                status = job.run()
            except KeyboardInterrupt:
                job.stop_event.set()
                raise
        summary = {"job_id": status.job_id, "state": status.state, "error": status.error,
                   "model": annotator.model_id, "strategy": annotator.strategy,
                   "label_source": annotator.label_source, "shard": f"{index}/{count}",
                   "skills": {SKILL_NAMES[k]: {"done": p.done, "total": p.total, "label_counts": p.label_counts}
                              for k, p in status.progress.items()}}
        typer.echo(json.dumps(summary))
        if status.state == FAILED:
            raise typer.Exit(1)

    @app.command("annotate-eval")
    def annotate_eval(
        backend: str = typer.Option("embedded", "--backend", help=_BACKEND_HELP),
        url: Optional[str] = typer.Option(None, "--url"),
        model: Optional[str] = typer.Option(None, "--model"),
        model_dir: Optional[str] = typer.Option(None, "--model-dir"),
        strategy: Optional[str] = typer.Option(None, "--strategy", help="compare | score (default per backend)."),
        tie_margin: float = typer.Option(0.1, "--tie-margin", min=0.0),
        depth_prior: float = typer.Option(0.0, "--depth-prior", min=0.0, max=100.0,
                                          help="Score strategy: weight of a HAND-CODED prior (the skill's level-change "
                                               "goal) added to the LLM's score; default 0: labels are the LLM's alone. "
                                               "Outputs made with it say so (label_source)."),
        checkset: Optional[Path] = typer.Option(None, "--checkset", help="YAML check set (default: the shipped one)."),
        timeout: float = typer.Option(120.0, "--timeout", min=1.0),
        template: str = typer.Option("llama3", "--template"),
        output: Optional[Path] = typer.Option(None, "--json", help="Also write the full report (with mistakes) here."),
    ) -> None:
        """Agreement of the annotator with the hand-written check set, per skill and overall."""
        from tqdm import tqdm

        import yaml

        from maestromotif.annotation.checkset import evaluate, load_checkset
        from maestromotif.annotation.strategies import Annotator
        from maestromotif.llm import LLMError

        try:
            cases = load_checkset(checkset)
            llm = make_cli_backend(backend, url, model, model_dir, timeout, 1, template)
            annotator = Annotator(llm, strategy, tie_margin=tie_margin, depth_prior=depth_prior)
            with tqdm(total=len(cases), unit="pair", desc="annotate-eval") as bar:
                report = evaluate(annotator, cases, progress=bar.update)
        except (ValueError, LLMError) as exc:
            _fail(str(exc))
        except (OSError, yaml.YAMLError) as exc:  # an unreadable or malformed --checkset file
            _fail(f"--checkset: {exc}")
        data = report.as_dict()
        for name, entry in data["per_skill"].items():
            typer.echo(f"{name:<11} {entry['agree']:>3}/{entry['total']:<3} {100 * entry['agreement']:5.1f}%")
        for half, entry in data["per_half"].items():
            if entry["total"]:
                typer.echo(f"{half + ' half':<11} {entry['agree']:>3}/{entry['total']:<3} "
                           f"{100 * entry['agreement']:5.1f}%")
        overall = data["overall"]
        typer.echo(f"{'overall':<11} {overall['agree']:>3}/{overall['total']:<3} {100 * overall['agreement']:5.1f}%  "
                   f"({data['pairs_per_second']:.2f} pairs/s, model {data['model']}, strategy {data['strategy']}, "
                   f"labels {data['label_source']})")
        if data["label_source"] != "llm":
            typer.echo(f"note: labels are NOT the LLM's alone: the hand-coded depth prior (weight {data['depth_prior']:g}) "
                       "was added to its scores")
        if output:
            output.write_text(json.dumps(data, indent=2))
