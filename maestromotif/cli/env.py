"""Environment and task commands: ``maestromotif tasks`` and ``maestromotif env run``."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

env_app = typer.Typer(help="Play NetHack episodes with the skill controller.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.command("tasks")(tasks)
    app.add_typer(env_app, name="env")


def tasks(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List the nine tasks with their prompts, parameters and the paper's numbers."""
    from rich.console import Console
    from rich.table import Table

    from maestromotif.tasks import TASKS

    if as_json:
        out = [
            {
                "name": s.name, "kind": s.kind, "metric": s.metric, "prompt": s.prompt, "max_depth": s.max_depth,
                "D": s.base_turns, "legacy": s.legacy_rule, "strict": s.strict_rule,
                "paper": {"maestromotif": s.paper.maestromotif, "llm_policy": s.paper.llm_policy,
                          "motif": s.paper.motif, "embedding": s.paper.embedding, "privileged": s.paper.privileged},
            }
            for s in TASKS.values()
        ]
        typer.echo(json.dumps(out, indent=2, ensure_ascii=False))
        return
    console = Console()
    if not console.is_terminal:
        console = Console(width=180)  # piped output: wide enough for the prompts
    table = Table(title="MaestroMotif tasks (paper: mean ± s.e. over 9 seeds)", show_lines=True)
    for col in ("task", "kind", "prompt", "max depth / D", "MaestroMotif", "LLM policy", "Motif", "Emb. sim.", "RL privileged"):
        table.add_column(col, overflow="fold", min_width=40 if col == "prompt" else None)
    for s in TASKS.values():
        p = s.paper
        table.add_row(s.name, f"{s.kind}\n({s.metric})", s.prompt, f"{s.max_depth} / {s.base_turns}", p.maestromotif,
                      p.llm_policy, p.motif, p.embedding, p.privileged)
    console.print(table)


def _outcome_text(metric: str, o: Any) -> str:
    if metric == "success":
        return f"legacy {'yes' if o.legacy_success else 'no'}, strict {'yes' if o.strict_success else 'no'}"
    return f"legacy {o.legacy_count}, strict {o.strict_count}" + (" (precondition seen)" if o.precondition_seen else "")


@env_app.command("run")
def run(
    task: Annotated[str, typer.Option(help="Task to detect (and whose reference policy to use): "
                                           "gnomish, delphi, ..., or 'exploration' (training policy, no task).")] = "exploration",
    policy: Annotated[str, typer.Option(help="Policy over skills: 'reference' (the task's hand-written "
                                             "policy) or 'random' (uniform over available skills).")] = "reference",
    episodes: Annotated[int, typer.Option(min=1, max=10_000, help="Episodes to play.")] = 1,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the dungeons, the actions and the controller.")] = 0,
    max_steps: Annotated[int, typer.Option(min=1, max=100_000, help="Agent steps per episode (method: 10,000).")] = 10_000,
    render: Annotated[bool, typer.Option("--render", help="Show the game in the terminal while it runs.")] = False,
    render_every: Annotated[int, typer.Option(min=1, help="With --render, redraw every N steps.")] = 1,
    mask: Annotated[bool, typer.Option("--mask", help="Only allow skills whose initiation holds.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON line per episode instead of tables.")] = False,
) -> None:
    """Play episodes: skills are chosen by the policy over skills, actions are uniformly random.

    No trained skill policy is loaded here, so each skill acts at random; what this shows is the
    controller (termination, selection, per-skill steps and returns) and the task detectors on
    real games. Returns are the game's score reward credited to the skill that acted.
    """
    import numpy as np
    from rich.console import Console
    from rich.live import Live
    from rich.panel import Panel
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from maestromotif.env.actions import NUM_ACTIONS
    from maestromotif.env.nethack_env import NetHackMonk
    from maestromotif.skills import SKILL_NAMES, RandomSkillPolicy
    from maestromotif.skills.controller import SkillController
    from maestromotif.skills.reference import REFERENCE_NAMES, load_reference
    from maestromotif.tasks import TASKS, TaskTracker, summarize

    if task not in REFERENCE_NAMES:
        raise typer.BadParameter(f"unknown task {task!r}; choose one of {', '.join(REFERENCE_NAMES)}", param_hint="--task")
    if policy not in ("reference", "random"):
        raise typer.BadParameter("choose 'reference' or 'random'", param_hint="--policy")
    spec = TASKS.get(task)
    skill_policy = load_reference(task) if policy == "reference" else RandomSkillPolicy(
        base_turns=spec.base_turns if spec else 500
    )
    env = NetHackMonk(seed=seed, max_episode_steps=max_steps, pass_climb_prompts=bool(spec and spec.pass_climb_prompts))
    controller = SkillController(skill_policy, seed=seed, mask_unavailable=mask)
    tracker = TaskTracker(spec) if spec else None
    rng = np.random.default_rng(seed)
    console = Console()
    outcomes = []
    try:
        with Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=console, disable=as_json, transient=True,
        ) as progress:
            bar = progress.add_task(f"{task} / {policy}", total=episodes)
            for ep in range(episodes):
                env.reset_game()
                view = env.view()
                skill = controller.reset(view)
                if tracker:
                    tracker.reset(view)
                end = "running"
                live = Live(console=console, auto_refresh=False, transient=True) if render and not as_json else None
                if live:
                    live.start()
                try:
                    while True:
                        reward, terminated, truncated = env.act(int(rng.integers(NUM_ACTIONS)))
                        view = env.view()
                        skill = controller.step(view, reward)
                        if tracker:
                            tracker.update(view)
                        if live and env.episode_step % render_every == 0:
                            live.update(Panel(env.render(), title=f"episode {ep} step {env.episode_step} "
                                                                 f"skill {SKILL_NAMES[skill]}"), refresh=True)
                        if terminated or truncated or (tracker is not None and tracker.done):
                            end = "died" if terminated else ("step limit" if truncated else "task done")
                            break
                finally:
                    if live:
                        live.stop()
                stats = controller.finish()
                record: dict[str, Any] = {"episode": ep, "end": end, **stats.summary()}
                if tracker:
                    outcomes.append(tracker.outcome)
                    record["outcome"] = tracker.outcome.as_dict()
                if stats.failure_messages:
                    record["failure_messages"] = stats.failure_messages
                if as_json:
                    typer.echo(json.dumps(record))
                else:
                    _print_episode(console, Table, record, spec, _outcome_text)
                progress.advance(bar)
    finally:
        env.close()
    if outcomes and not as_json:
        console.print(f"[bold]{task}[/bold] over {len(outcomes)} episodes: "
                      + "; ".join(f"{k} {v}" for k, v in summarize(outcomes).items()))


def _print_episode(console: Any, table_cls: Any, record: dict[str, Any], spec: Any, outcome_text: Any) -> None:
    from maestromotif.skills import SKILL_NAMES

    head = (f"episode {record['episode']}: {record['steps']} steps, ended by {record['end']}, max depth "
            f"{record['max_depth']}, fork {record['branch_depth']}, {record['switches']} switches, "
            f"{record['policy_failures']} policy failures")
    if spec is not None:
        o = record["outcome"]
        head += " | " + outcome_text(spec.metric, type("O", (), o))
    console.print(head)
    table = table_cls()
    table.add_column("skill")
    for col in ("runs", "steps", "game turns", "return"):
        table.add_column(col, justify="right")
    for name in SKILL_NAMES:
        table.add_row(name, str(record["skill_runs"][name]), str(record["skill_steps"][name]),
                      str(record["skill_turns"][name]), f"{record['skill_returns'][name]:.1f}")
    console.print(table)
