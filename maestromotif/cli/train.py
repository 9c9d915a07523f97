"""``maestromotif train``: reward + learner + actors on loopback, with a progress bar."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Annotated

import typer


def train_command(
    steps: Annotated[int, typer.Option("--steps", min=1, help="Stop after this many trained samples.")] = 100_000,
    actors: Annotated[int, typer.Option("--actors", min=1, max=64, help="Actor worker processes.")] = 1,
    envs: Annotated[int, typer.Option("--envs", min=1, max=4096, help="Games per actor process.")] = 16,
    preset: Annotated[str, typer.Option("--preset", help="auto (paper on GPU), paper or small.")] = "auto",
    batch_size: Annotated[int, typer.Option("--batch-size", min=32, help="Samples per SGD step.")] = 4096,
    train_dir: Annotated[Path, typer.Option("--train-dir", help="Experiments folder.")] = Path("runs"),
    experiment: Annotated[str, typer.Option("--experiment", help="Experiment name (resumes if it exists).")] = "policy",
    reward_bundles: Annotated[
        Path | None, typer.Option("--reward-bundles", help="Reward bundle folder; default: untrained models (smoke).")
    ] = None,
    checkpoint_every: Annotated[int, typer.Option("--checkpoint-every", min=0, help="Samples between checkpoints.")] = 1_000_000,
    base_port: Annotated[int, typer.Option("--base-port", help="learner, actors, reward get base+0, +1, +2.")] = 50051,
    base_metrics_port: Annotated[int, typer.Option("--base-metrics-port")] = 9091,
    start_timeout: Annotated[float, typer.Option(help="Seconds each service has to report SERVING.")] = 180.0,
) -> None:
    """Train the skill policy: starts the reward, learner and actor services locally (as ``up`` does)."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from maestromotif.cli.services import _Child, _serve_argv, _terminate
    from maestromotif.kit.client import ClientOptions, NotServingError, make_channel, wait_for_serving
    from maestromotif.kit.server import load_spec
    from maestromotif.v1 import learner_pb2, learner_pb2_grpc

    console = Console(stderr=True)
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
        ],
        "actors": [f"learner_address=127.0.0.1:{ports['learner']}", f"processes={actors}", f"envs_per_process={envs}"],
    }
    if reward_bundles is None:
        console.print("[yellow]no --reward-bundles: the reward service uses UNTRAINED models (smoke run)[/]")
    children: list[_Child] = []
    exit_code = 0
    try:
        for name in ("reward", "learner", "actors"):
            argv = _serve_argv(name, "services", ports[name], mports[name], sets[name])
            proc = subprocess.Popen(argv, start_new_session=True)
            children.append(_Child(load_spec(name), ports[name], mports[name], proc))
            console.print(f"starting [bold]{name}[/] on 127.0.0.1:{ports[name]} (pid {proc.pid})")
            try:
                wait_for_serving(f"127.0.0.1:{ports[name]}", timeout_s=start_timeout, alive=lambda p=proc: p.poll() is None)
            except NotServingError as exc:
                raise RuntimeError(f"{name}: {exc}") from exc
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
                dead = [c for c in children if c.proc.poll() is not None]
                if dead:
                    raise RuntimeError(f"{dead[0].spec.name} exited with code {dead[0].proc.returncode}")
                s = stub.GetStatus(learner_pb2.GetStatusRequest())
                done = s.samples_trained - start_samples
                returns = " ".join(f"{k[:4]}={v:.3f}" for k, v in sorted(s.skill_returns.items()))
                info = (
                    f"env {s.env_steps:,} | {s.samples_per_second:,.0f} samples/s | lag {s.mean_policy_lag:.1f}"
                    f" | v{s.policy_version} | {returns}"
                )
                progress.update(task, completed=min(done, steps), info=info)
                if done >= steps:
                    break
                time.sleep(1.0)
        channel.close()
        console.print(f"trained {done:,} samples; checkpoints in {train_dir / experiment}")
    except KeyboardInterrupt:
        exit_code = 130
    except RuntimeError as exc:
        console.print(f"[red]error: {exc}[/]")
        exit_code = 1
    finally:
        console.print("stopping services (the learner writes a last checkpoint)")
        _terminate(children, 60.0)  # actors, then learner, then reward
    raise typer.Exit(exit_code)


def register(app: typer.Typer) -> None:
    app.command("train")(train_command)
