"""Task commands of the trained system: ``maestromotif eval`` (the nine tasks, zero-shot) and
``maestromotif play`` (a live view of one episode through the Agent API)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any

import typer


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_command)
    app.command("play")(play_command)


def _fmt_rate(c: dict[str, Any] | None, kind: str) -> str:
    if c is None:
        return "-"
    s = c[kind]
    return f"{100 * s['rate']:.1f}% [{100 * s['ci_low']:.1f}, {100 * s['ci_high']:.1f}] ({s['successes']}/{c['episodes']})"


def _fmt_count(c: dict[str, Any] | None, kind: str) -> str:
    if c is None:
        return "-"
    s = c[kind]
    se = s["stderr"]
    se_text = "-" if se is None or (isinstance(se, float) and math.isnan(se)) else f"{se:.2f}"
    return f"{s['mean']:.2f} ± {se_text} (n={s['n']})"


def evaluation_table(result: Any) -> Any:
    """A rich table of a TaskEvaluation: the paper's metric per task and condition."""
    from rich.table import Table

    summary = result.summary()
    table = Table(
        title=f"{result.checkpoint_name} (policy v{result.policy_version}, {result.preset}), {result.policies} "
              f"policies over skills; success: rate [95% Wilson]; counts: mean ± s.e.",
        show_lines=True,
    )
    for col in ("task", "metric", "paper", "trained: legacy", "trained: strict", "untrained net: legacy",
                "random actions: legacy", "steps/ep (trained)", "s/ep (trained)"):
        table.add_column(col, overflow="fold")
    for task, e in summary.items():
        conds = e["conditions"]
        fmt = _fmt_rate if e["metric"] == "success" else _fmt_count
        trained = conds.get("trained")
        table.add_row(
            task, e["metric"], e["paper"], fmt(trained, "legacy"), fmt(trained, "strict"),
            fmt(conds.get("untrained"), "legacy"), fmt(conds.get("random"), "legacy"),
            f"{trained['mean_steps']:.0f}" if trained else "-",
            f"{trained['seconds_per_episode']:.1f}" if trained else "-",
        )
    return table


def evaluation_markdown(result: Any) -> str:
    """The evaluation table in Markdown (for READMEs and reports)."""
    summary = result.summary()
    lines = ["| task | metric | paper (MaestroMotif) | trained: legacy | trained: strict | untrained net: legacy | "
             "random actions: legacy | mean steps per episode (trained / untrained / random) |",
             "|---|---|---|---|---|---|---|---|"]
    for task, e in summary.items():
        conds = e["conditions"]
        fmt = _fmt_rate if e["metric"] == "success" else _fmt_count
        steps = " / ".join(f"{conds[c]['mean_steps']:.0f}" if c in conds else "-" for c in ("trained", "untrained", "random"))
        lines.append(f"| {task} | {e['metric']} | {e['paper']} | {fmt(conds.get('trained'), 'legacy')} | "
                     f"{fmt(conds.get('trained'), 'strict')} | {fmt(conds.get('untrained'), 'legacy')} | "
                     f"{fmt(conds.get('random'), 'legacy')} | {steps} |")
    return "\n".join(lines)


def eval_command(
    task: Annotated[str, typer.Option("--task", help="'all' or one task name (see `maestromotif tasks`).")] = "all",
    episodes: Annotated[int, typer.Option("--episodes", min=1, max=100_000,
                                          help="Episodes per task and condition.")] = 20,
    checkpoint: Annotated[Path, typer.Option("--checkpoint", help="Checkpoint file, or experiment folder "
                                                                  "(its latest checkpoint).")] = Path("runs/policy"),
    policies: Annotated[str, typer.Option("--policies", help="'reference' (hand-written policies over skills), "
                                                             "'generated' (each task's newest validated composed policy "
                                                             "in --artifacts) or an artifact's SHA-256.")] = "reference",
    artifacts: Annotated[Path, typer.Option("--artifacts", help="Artifact store of generated policies.")] = Path("data/artifacts"),
    conditions: Annotated[str, typer.Option("--conditions", help="Comma-separated: trained, untrained "
                                                                 "(fresh network), random (actions).")] = "trained,untrained,random",
    seed: Annotated[int, typer.Option("--seed", min=0, help="Episode i plays dungeon seed+i in every task and condition.")] = 0,
    max_steps: Annotated[int, typer.Option("--max-steps", min=1, max=10_000, help="Agent steps per episode (method: 10,000).")] = 10_000,
    batch: Annotated[int, typer.Option("--batch", min=1, max=256, help="Games played in lockstep per process "
                                                                     "(one batched forward per step).")] = 16,
    workers: Annotated[int, typer.Option("--workers", min=1, max=64, help="Parallel worker processes.")] = 1,
    untrained_seed: Annotated[int, typer.Option("--untrained-seed", min=0, help="Seed of the untrained network's init.")] = 12345,
    out: Annotated[Path | None, typer.Option("--out", help="Write the result (every episode + summary) as JSON here.")] = None,
    chart: Annotated[Path | None, typer.Option("--chart", help="Write a PNG chart with the intervals here "
                                                               "(default: next to --out).")] = None,
    pool: Annotated[list[Path] | None, typer.Option("--pool", help="Play nothing: pool these --out files of one "
                                                                  "checkpoint (repeat the option).")] = None,
    markdown: Annotated[bool, typer.Option("--markdown", help="Also print the table in Markdown.")] = False,
) -> None:
    """Evaluate the nine tasks zero-shot: the frozen skill network under each task's policy over skills.

    Per task: the paper's metric (success rate with a 95% Wilson interval, or mean count ± s.e.),
    legacy and strict, beside the paper's number and two baselines played on the same dungeons:
    uniformly random actions and an untrained network (same architecture, fresh seeded init).
    CPU cost measured on a loaded 2-core machine (16 games per process, 2 processes): a 190k-sample
    network's episodes (500-600 steps, ended by death) 5-9 s each, untrained network about 1 s,
    random actions under 0.5 s; at that rate a 10,000-step episode costs about 2 min. The JSON
    records seconds_per_episode per task and condition.
    """
    import time

    from rich.console import Console
    from tqdm import tqdm

    from maestromotif.fileio import atomic_write_text, read_json_files
    from maestromotif.tasks.evaluation import (
        TASK_NAMES,
        TaskEvaluation,
        TaskEvaluationError,
        evaluate_tasks,
        plot_evaluation,
        pool_evaluations,
    )

    console = Console()
    try:
        if pool:
            result = pool_evaluations(read_json_files(pool, TaskEvaluation.from_dict, TaskEvaluationError))
        else:
            tasks = list(TASK_NAMES) if task == "all" else [task]
            conds = [c.strip() for c in conditions.split(",") if c.strip()]
            total = len(tasks) * len(conds) * episodes
            saved = [time.monotonic()]

            def save_partial(live: Any) -> None:
                # a long run that is interrupted keeps what it played (pool it with a rerun on other seeds)
                if out is not None and time.monotonic() - saved[0] > 30:
                    atomic_write_text(out.with_suffix(".partial.json"), json.dumps(live.to_dict(), indent=1))
                    saved[0] = time.monotonic()

            with tqdm(total=total, unit="episode", mininterval=1.0, dynamic_ncols=True) as bar:
                def tick(rec: Any) -> None:
                    bar.set_postfix_str(f"{rec.task}/{rec.condition} {rec.steps} steps {rec.reason}", refresh=False)
                    bar.update(1)

                result = evaluate_tasks(
                    checkpoint, tasks=tasks, episodes=episodes, policies=policies, conditions=conds, seed=seed,
                    max_steps=max_steps, batch=batch, workers=workers, untrained_seed=untrained_seed,
                    artifacts=artifacts, progress=tick, partial=save_partial,
                )
    except TaskEvaluationError as exc:
        console.print(f"[red]error: {exc}[/]")
        raise typer.Exit(2) from exc
    if not console.is_terminal:
        console = Console(width=200)
    console.print(evaluation_table(result))
    if markdown:
        typer.echo(evaluation_markdown(result))
    console.print(f"{len(result.episodes)} episodes in {result.wall_seconds:.0f} s on {result.host}")
    if out is not None:
        atomic_write_text(out, json.dumps(result.to_dict(), indent=1))
        out.with_suffix(".partial.json").unlink(missing_ok=True)
        console.print(f"wrote {out}")
    if chart is None and out is not None:
        chart = out.with_suffix(".png")
    if chart is not None:
        console.print(f"wrote {plot_evaluation(result, chart)}")


def play_command(
    task: Annotated[str, typer.Option("--task", help="A task name (e.g. gnomish) or a task in plain language, "
                                                     "which is composed first through ComposeTask.")] = "gnomish",
    seed: Annotated[int, typer.Option("--seed", min=0, help="Dungeon seed.")] = 0,
    address: Annotated[str, typer.Option("--address", envvar="MAESTROMOTIF_AGENT_ADDRESS",
                                         help="Agent service host:port.")] = "127.0.0.1:50056",
    token_file: Annotated[Path | None, typer.Option(
        "--token-file", envvar="MAESTROMOTIF_CLIENT_TOKEN_FILE",
        help="File holding the bearer token, when the agent requires one (or the environment variable "
             "MAESTROMOTIF_AGENT_TOKEN; never the token itself on the command line). TLS: "
             "MAESTROMOTIF_CLIENT_TLS_CA_FILE, mTLS: also MAESTROMOTIF_CLIENT_TLS_CERT_FILE and _KEY_FILE.")] = None,
    max_steps: Annotated[int, typer.Option("--max-steps", min=1, max=10_000, help="Step limit.")] = 10_000,
    every: Annotated[int, typer.Option("--every", min=1, help="Redraw every N steps.")] = 1,
    detector: Annotated[str, typer.Option("--detector", help="For a composed prompt: the built-in task whose "
                                                             "success detector applies.")] = "",
    plain: Annotated[bool, typer.Option("--plain", help="No live view: print frames one after another "
                                                        "(for logs and non-terminals).")] = False,
) -> None:
    """Watch the agent play one episode: the screen, the active skill, skill switches and messages.

    A --task that is not one of the nine task names is sent to ComposeTask first; a prompt that
    yields no valid policy over skills ends here with the codegen report.
    """
    import grpc
    from rich.console import Console

    from maestromotif.agent.client import AgentClient, AgentCallError
    from maestromotif.agent.view import PlayView
    from maestromotif.tasks import TASK_NAMES

    console = Console()
    if not console.is_terminal:
        console = Console(width=130)  # piped: room for the 80-column screen and the side panel
    import os

    from maestromotif.kit.client import client_options_from_env, read_token_file

    try:
        token = read_token_file(token_file, "--token-file") if token_file else (
            os.environ.get("MAESTROMOTIF_AGENT_TOKEN", "").strip() or None)
        options = client_options_from_env(deadline_s=30.0, auth_token=token)
    except ValueError as exc:
        console.print(f"[red]error: {exc}[/]")
        raise typer.Exit(2) from None
    client = AgentClient(address, options=options)
    try:
        if task in TASK_NAMES:
            selector: dict[str, str] = {"task_name": task}
            title = task
        else:
            console.print(f"composing a policy over skills for: [italic]{task}[/]")
            artifact = client.compose(task)
            console.print(f"artifact {artifact.sha256[:12]} passed validation")
            selector = {"artifact_sha256": artifact.sha256, "detector_task": detector}
            title = f"artifact {artifact.sha256[:12]}"
        view = PlayView(title, seed)
        events = client.play(selector, seed=seed, max_steps=max_steps, step_event_every=every, include_screen=True)
        view.run(events, console, live=not plain)
    except AgentCallError as exc:
        console.print(f"[red]error: {exc}[/]")
        raise typer.Exit(1) from exc
    except grpc.RpcError as exc:
        console.print(f"[red]error: {exc.code().name}: {exc.details()}[/]")  # type: ignore[attr-defined]
        raise typer.Exit(1) from exc
    finally:
        client.close()
