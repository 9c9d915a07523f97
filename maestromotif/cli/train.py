"""``maestromotif train``: reward + learner + actors on loopback, with a progress bar."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer


def run_training(
    *,
    steps: int,
    actors: int = 1,
    envs: int = 16,
    preset: str = "auto",
    batch_size: int = 4096,
    train_dir: Path = Path("runs"),
    experiment: str = "policy",
    reward_bundles: Path | None = None,
    smoke_untrained_rewards: bool = False,
    checkpoint_every: int = 1_000_000,
    base_port: int = 50051,
    base_metrics_port: int = 9091,
    start_timeout: float = 180.0,
    learning_rate: float | None = None,
    actor_sets: Sequence[str] = (),
    log_dir: Path | None = None,
    history: Path | None = None,
) -> int:
    """Start reward, learner and actors as local processes, train ``steps`` samples, stop them all.

    ``actor_sets`` are extra ``field=value`` settings of the actors (e.g. a generated training
    policy); ``log_dir`` sends the services' logs to files there instead of the console;
    ``history`` appends the learner's status (returns, runs, competence per skill) as one JSON
    line every few seconds, for learning curves.

    Returns the exit code (0 done, 1 a service failed, 2 bad input, 130 interrupted). The
    learner resumes from the experiment's latest checkpoint and writes a last one when it
    stops. Without ``reward_bundles`` nothing is trained unless ``smoke_untrained_rewards``
    says so explicitly: a policy trained on untrained reward models has learnt nothing.
    """
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    import grpc
    from google.protobuf.json_format import MessageToDict

    from maestromotif.kit.client import ClientOptions, make_channel
    from maestromotif.kit.local import LocalProcesses, ServiceStartError
    from maestromotif.v1 import learner_pb2, learner_pb2_grpc

    console = Console(stderr=True)
    if reward_bundles is None and not smoke_untrained_rewards:
        console.print("[red]error: --reward-bundles: required (a folder written by `maestromotif train-reward`); "
                      "pass --smoke-untrained-rewards to train on untrained reward models as a smoke test[/]")
        return 2
    if reward_bundles is not None:
        from maestromotif.rewards.bundles import BundleError, read_manifest

        if smoke_untrained_rewards:
            console.print("[red]error: --smoke-untrained-rewards and --reward-bundles exclude each other[/]")
            return 2
        try:
            read_manifest(reward_bundles)
        except BundleError as exc:
            console.print(f"[red]error: --reward-bundles: {exc}[/]")
            return 2
    ports = {"learner": base_port, "actors": base_port + 1, "reward": base_port + 2}
    mports = {"learner": base_metrics_port, "actors": base_metrics_port + 1, "reward": base_metrics_port + 2}
    sets = {
        "reward": [f"bundle_dir={reward_bundles}"] if reward_bundles else ["init_random=true"],
        "learner": [
            f"reward_address=127.0.0.1:{ports['reward']}",
            f"preset={preset}",
            f"batch_size={batch_size}",
            f"train_dir={train_dir}",
            f"experiment={experiment}",
            f"checkpoint_every_samples={checkpoint_every}",
            *([f"learning_rate={learning_rate}"] if learning_rate is not None else []),
        ],
        "actors": [f"learner_address=127.0.0.1:{ports['learner']}", f"processes={actors}", f"envs_per_process={envs}",
                   *actor_sets],
    }
    if reward_bundles is None:
        console.print("[yellow]--smoke-untrained-rewards: the reward service uses UNTRAINED models; "
                      "this run only checks the machinery[/]")
    # The learner writes a last checkpoint on SIGTERM: give it time (actors stop first, reward last).
    services = LocalProcesses(grace_s=60.0, log_dir=log_dir)
    if log_dir is not None:
        console.print(f"service logs: {log_dir}/{{reward,learner,actors}}.log")
    history_file = history.open("a") if history is not None else None
    last_record = 0.0
    try:
        for name in ("reward", "learner", "actors"):
            console.print(f"starting [bold]{name}[/] on 127.0.0.1:{ports[name]}")
            services.start(name, ports[name], mports[name], sets[name], timeout_s=start_timeout)
        channel = make_channel(f"127.0.0.1:{ports['learner']}", ClientOptions(deadline_s=10.0))
        stub = learner_pb2_grpc.LearnerStub(channel)
        start_samples = stub.GetStatus(learner_pb2.GetStatusRequest()).samples_trained
        columns = (
            TextColumn("[bold]training"),
            BarColumn(),
            TextColumn("{task.completed:,.0f}/{task.total:,.0f} samples"),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=console) as progress:
            task = progress.add_task("train", total=steps, info="")
            while True:
                dead = services.dead()
                if dead:
                    raise ServiceStartError(f"{dead[0].name} exited with code {dead[0].proc.returncode}")
                s = stub.GetStatus(learner_pb2.GetStatusRequest())
                done = s.samples_trained - start_samples
                returns = " ".join(f"{k[:4]}={v:.3f}" for k, v in sorted(s.skill_returns.items()))
                info = (
                    f"env {s.env_steps:,} | {s.samples_per_second:,.0f} samples/s | lag {s.mean_policy_lag:.1f}"
                    f" | v{s.policy_version} | {returns}"
                )
                progress.update(task, completed=min(done, steps), info=info)
                if history_file is not None and (done >= steps or time.monotonic() - last_record >= 5.0):
                    last_record = time.monotonic()
                    row = MessageToDict(s, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
                    history_file.write(json.dumps({"time": time.time(), "experiment": experiment, **row}) + "\n")
                    history_file.flush()
                if done >= steps:
                    break
                time.sleep(1.0)
        channel.close()
        console.print(f"trained {done:,} samples; checkpoints in {train_dir / experiment}")
        return 0
    except KeyboardInterrupt:
        return 130
    except ServiceStartError as exc:
        console.print(f"[red]error: {exc}[/]")
        return 1
    except grpc.RpcError as exc:  # the learner answered its status call with an error, or vanished
        where = f" (service logs: {log_dir})" if log_dir is not None else ""
        console.print(f"[red]error: learner GetStatus: {exc.code().name}: {exc.details()}{where}[/]")  # type: ignore[attr-defined]
        return 1
    finally:
        console.print("stopping services (the learner writes a last checkpoint)")
        services.stop()
        if history_file is not None:
            history_file.close()


def train_command(
    steps: Annotated[int, typer.Option("--steps", min=1, help="Stop after this many trained samples.")] = 100_000,
    actors: Annotated[int, typer.Option("--actors", min=1, max=64, help="Actor worker processes.")] = 1,
    envs: Annotated[int, typer.Option("--envs", min=1, max=4096, help="Games per actor process.")] = 16,
    preset: Annotated[str, typer.Option("--preset", help="auto (paper on GPU), paper or small.")] = "auto",
    batch_size: Annotated[int, typer.Option("--batch-size", min=32, help="Samples per SGD step.")] = 4096,
    train_dir: Annotated[Path, typer.Option("--train-dir", help="Experiments folder.")] = Path("runs"),
    experiment: Annotated[str, typer.Option("--experiment", help="Experiment name (resumes if it exists).")] = "policy",
    reward_bundles: Annotated[
        Path | None,
        typer.Option("--reward-bundles", help="Reward bundle folder (from `maestromotif train-reward`); required."),
    ] = None,
    smoke_untrained_rewards: Annotated[
        bool,
        typer.Option("--smoke-untrained-rewards",
                     help="Train on untrained (random) reward models instead of bundles: a smoke test of the machinery only."),
    ] = False,
    checkpoint_every: Annotated[int, typer.Option("--checkpoint-every", min=0, help="Samples between checkpoints.")] = 1_000_000,
    base_port: Annotated[int, typer.Option("--base-port", help="learner, actors, reward get base+0, +1, +2.")] = 50051,
    base_metrics_port: Annotated[int, typer.Option("--base-metrics-port")] = 9091,
    start_timeout: Annotated[float, typer.Option(help="Seconds each service has to report SERVING.")] = 180.0,
) -> None:
    """Train the skill policy: starts the reward, learner and actor services locally (as ``up`` does)."""
    raise typer.Exit(
        run_training(
            steps=steps, actors=actors, envs=envs, preset=preset, batch_size=batch_size, train_dir=train_dir,
            experiment=experiment, reward_bundles=reward_bundles, smoke_untrained_rewards=smoke_untrained_rewards,
            checkpoint_every=checkpoint_every,
            base_port=base_port, base_metrics_port=base_metrics_port, start_timeout=start_timeout,
        )
    )


def evaluate_command(
    checkpoint: Annotated[
        Path, typer.Option("--checkpoint", help="Checkpoint file, or experiment folder (its latest checkpoint).")
    ] = Path("runs/policy"),
    reward_bundles: Annotated[
        Path, typer.Option("--reward-bundles", help="The reward bundles the policy was trained with.")
    ] = Path("data/reward_bundles"),
    steps: Annotated[int, typer.Option("--steps", min=1, help="Env steps to play, over all games.")] = 100_000,
    envs: Annotated[int, typer.Option("--envs", min=1, max=256, help="Games played side by side.")] = 16,
    random_fraction: Annotated[
        float, typer.Option("--random-fraction", min=0.0, max=1.0, help="Share of skill runs played by random actions.")
    ] = 0.5,
    seed: Annotated[int, typer.Option("--seed", min=0)] = 0,
    out: Annotated[Path | None, typer.Option("--out", help="Also write the result as JSON here.")] = None,
    pool: Annotated[
        list[Path] | None,
        typer.Option("--pool", help="Play nothing: pool these --out files of one checkpoint (repeat the option)."),
    ] = None,
) -> None:
    """Per-skill intrinsic return of a trained policy against random actions from the same states.

    Games run the training policy over skills; a coin at the start of each skill run decides
    whether the trained policy or uniformly random actions play it. Evaluations run in parallel
    (other seeds, other machines) combine with --pool.
    """
    import json

    from rich.console import Console
    from rich.table import Table
    from tqdm import tqdm

    from maestromotif.fileio import atomic_write_text, read_json_files
    from maestromotif.training.evaluate import EvaluationError, EvaluationResult, evaluate_skills, pool_results

    console = Console()
    try:
        if pool:
            result = pool_results(read_json_files(pool, EvaluationResult.from_dict, EvaluationError))
        else:
            with tqdm(total=steps, unit="step", mininterval=1.0) as bar:
                result = evaluate_skills(checkpoint, reward_bundles, steps=steps, num_envs=envs,
                                         random_fraction=random_fraction, seed=seed, progress=bar.update)
    except EvaluationError as exc:
        console.print(f"[red]error: {exc}[/]")
        raise typer.Exit(2) from exc
    table = Table(title=f"{result.checkpoint} (v{result.policy_version}), {result.env_steps:,} steps, "
                        f"{result.episodes} episodes")
    for column in ("skill", "trained runs", "trained return", "random runs", "random return", "return/step t|r",
                   "trained competence", "random competence", "trained > random (return, competence)"):
        table.add_column(column, justify="right")

    def fmt(mean: float | None, se: float | None) -> str:
        return "-" if mean is None else f"{mean:.3f} ± {se or 0.0:.3f}"

    def per_step(value: float | None) -> str:
        return "-" if value is None else f"{value:.4f}"

    def yes(verdict: bool | None) -> str:
        return "-" if verdict is None else ("yes" if verdict else "no")

    for name, comparison in result.skills.items():
        t, r = comparison.trained, comparison.random
        table.add_row(name, str(t.runs), fmt(t.mean_return, t.stderr), str(r.runs), fmt(r.mean_return, r.stderr),
                      f"{per_step(t.return_per_step)} | {per_step(r.return_per_step)}",
                      fmt(t.mean_competence, t.competence_stderr), fmt(r.mean_competence, r.competence_stderr),
                      f"{yes(comparison.trained_above_random)}, {yes(comparison.competence_above_random)}")
    console.print(table)
    console.print(f"deepest level per episode: {result.max_depth_counts}")
    console.print("competence (maestromotif.skills.competence): fraction of runs that end deeper (descender), "
                  "higher (ascender), stand on an altar (worshipper), see a price quote or sale (merchant); "
                  "new map squares per step (discoverer)")
    if out is not None:
        atomic_write_text(out, json.dumps(result.to_dict(), indent=2))
        console.print(f"wrote {out}")


def register(app: typer.Typer) -> None:
    app.command("train")(train_command)
    app.command("evaluate")(evaluate_command)
