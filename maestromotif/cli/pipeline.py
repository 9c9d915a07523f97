"""``maestromotif pipeline``: the whole method end to end, at the scale a profile sets.

collect pairs -> label them with the LLM -> train the five reward models -> the LLM writes the
skills' initiation/termination and the training policy over skills -> train the skill policy
through the reward, learner and actor services -> evaluate the skills (trained against random
actions from the same states) -> the LLM composes the nine tasks from their prompts ->
evaluate the tasks beside the paper and two baselines -> a Markdown report with figures.

Every stage records what it made in ``WORKDIR/pipeline_state.json`` together with a fingerprint
of its settings; a stage whose record and outputs exist is skipped, so an interrupted run loses
nothing when started again (the annotation job resumes from its ledger and training from its
latest checkpoint). The console shows stage progress and results only: the services' logs and
every library's log lines go to ``WORKDIR/logs/``. ``make run`` runs ``--profile tiny``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console

from maestromotif.skills.ids import SKILL_NAMES

console = Console(stderr=True)

STATE_FILE = "pipeline_state.json"
STAGES: tuple[str, ...] = (
    "collect", "annotate", "rewards", "codegen", "train", "round2", "skill_eval", "compose", "task_eval", "report",
)


class StageFailed(RuntimeError):
    """A stage could not finish; the message says why and what to do."""


def fingerprint(settings: Any) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass
class PipelineState:
    """What each stage made, with the fingerprint of its settings (``WORKDIR/pipeline_state.json``)."""

    path: Path
    data: dict[str, Any]

    @classmethod
    def load(cls, workdir: Path) -> PipelineState:
        path = workdir / STATE_FILE
        if not path.exists():
            return cls(path, {"stages": {}, "runs": []})
        try:
            data = json.loads(path.read_text())
            if not isinstance(data, dict) or not isinstance(data.get("stages"), dict):
                raise ValueError("expected an object with 'stages'")
            data.setdefault("runs", [])
        except (OSError, ValueError) as exc:
            raise StageFailed(f"{path}: unreadable pipeline state ({exc}); move it away to start over") from exc
        return cls(path, data)

    def save(self) -> None:
        from maestromotif.fileio import atomic_write_text

        atomic_write_text(self.path, json.dumps(self.data, indent=2, default=str))

    def stage(self, name: str) -> dict[str, Any] | None:
        return self.data["stages"].get(name)


class Runner:
    """Runs or skips the stages in order and records each outcome."""

    def __init__(self, workdir: Path, profile_name: str, state: PipelineState, total: int) -> None:
        self.workdir = workdir
        self.state = state
        self.total = total
        self.index = 0
        self.run_record: dict[str, Any] = {"started": time.time(), "profile": profile_name, "ran": [], "skipped": []}
        state.data["runs"].append(self.run_record)

    def run(self, name: str, title: str, settings: Any, outputs: Callable[[dict[str, Any]], bool],
            body: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """Skip ``name`` if its record matches ``settings`` and ``outputs(record)`` still holds; else run ``body``."""
        self.index += 1
        console.rule(f"[bold]{self.index}/{self.total} {title}")
        fp = fingerprint(settings)
        previous = self.state.stage(name)
        if previous is not None and previous.get("status") == "done":
            if previous.get("fingerprint") == fp and outputs(previous.get("result", {})):
                console.print(f"[dim]skipped: done in an earlier run ({previous.get('seconds', 0):.0f} s)[/]")
                self.run_record["skipped"].append(name)
                self.state.save()
                return previous["result"]
            if previous.get("fingerprint") != fp:
                console.print("[yellow]settings changed since this stage last ran: running it again[/]")
        started = time.monotonic()
        try:
            result = body()
        except StageFailed:
            self.state.data["stages"][name] = {"status": "failed", "fingerprint": fp, "finished": time.time()}
            self.state.save()
            raise
        seconds = time.monotonic() - started
        self.state.data["stages"][name] = {"status": "done", "fingerprint": fp, "seconds": seconds,
                                           "finished": time.time(), "result": result}
        self.run_record["ran"].append(name)
        self.state.save()
        console.print(f"[green]done[/] in {seconds:.0f} s")
        return result


def _route_logs(log_dir: Path) -> None:
    """Library log lines and warnings go to a file: the console is for progress and results."""
    log_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(log_dir / "pipeline.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.captureWarnings(True)
    warnings.simplefilter("default")
    # As in Python's own defaults: llama_cpp keeps two /dev/null files open for the whole process,
    # and the ResourceWarning about them comes at exit, when it can only go to the console.
    warnings.filterwarnings("ignore", category=ResourceWarning)


def _exists(*paths: Path) -> Callable[[dict[str, Any]], bool]:
    return lambda _result: all(p.exists() for p in paths)


def pipeline_command(
    profile: Annotated[str, typer.Option("--profile", help="Scale of every stage: tiny (make run), small or paper.")] = "tiny",
    workdir: Annotated[
        Optional[Path], typer.Option("--workdir", help="Folder of every stage's output (default: data/<profile>).")
    ] = None,
    backend: Annotated[str, typer.Option("--backend", help="LLM for labels and code: embedded, openai or tgi.")] = "embedded",
    url: Annotated[Optional[str], typer.Option("--url", help="LLM server base URL (openai, tgi).")] = None,
    rounds: Annotated[int, typer.Option("--rounds", min=1, max=2, help=(
        "Collection rounds. 2: the trained policy collects new pairs, they are labelled, the reward models "
        "retrained on both rounds and a second policy trained; round2/report.json compares them."))] = 1,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed of collection, code samples and evaluation.")] = 0,
    base_port: Annotated[int, typer.Option("--base-port", help="learner, actors, reward get base+0, +1, +2.")] = 50051,
    base_metrics_port: Annotated[int, typer.Option("--base-metrics-port")] = 9091,
    stop_after: Annotated[Optional[str], typer.Option("--stop-after", help=f"Stop after this stage: {', '.join(STAGES)}.")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", "-s", help=(
        "Override a profile value, stage.field=value (e.g. train.samples=500000); repeatable; "
        "named in the report."))] = None,
) -> None:
    """Run the whole method end to end and write a report (WORKDIR/report/report.md).

    Stages: collect, annotate, rewards, codegen, train, [round2], skill_eval, compose, task_eval,
    report. Each is skipped when an earlier run finished it with the same settings. Profiles
    (maestromotif/profiles.py) set every stage's scale; the report lists how the profile departs
    from the method.
    """
    from maestromotif.profiles import get_profile

    try:
        prof = get_profile(profile, set_ or ())
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--profile/--set") from None
    if stop_after is not None and stop_after not in STAGES:
        raise typer.BadParameter(f"choose one of {', '.join(STAGES)}", param_hint="--stop-after")
    workdir = workdir or Path("data") / prof.name
    workdir.mkdir(parents=True, exist_ok=True)
    _route_logs(workdir / "logs")
    console.print(f"[bold]MaestroMotif pipeline[/], profile [bold]{prof.name}[/]: {prof.summary}")
    console.print(f"outputs in {workdir}/; logs in {workdir / 'logs'}/")
    try:
        code = _run_pipeline(prof, workdir, backend, url, rounds, seed, base_port, base_metrics_port, stop_after)
    except StageFailed as exc:
        console.print(f"[red]error: {exc}[/]")
        console.print(f"fix the cause and run the same command again: finished stages are kept ({workdir / STATE_FILE})")
        raise typer.Exit(1) from None
    raise typer.Exit(code)


def _run_pipeline(prof: Any, workdir: Path, backend: str, url: str | None, rounds: int, seed: int,
                  base_port: int, base_metrics_port: int, stop_after: str | None) -> int:
    state = PipelineState.load(workdir)
    stages = [s for s in STAGES if rounds == 2 or s != "round2"]
    runner = Runner(workdir, prof.name, state, len(stages))
    pairs, labels, bundles = workdir / "pairs", workdir / "labels", workdir / "reward_bundles"
    artifacts, runs, logs = workdir / "artifacts", workdir / "runs", workdir / "logs"
    results: dict[str, Any] = {}
    llm: dict[str, Any] = {}

    def own_threads() -> int:
        from maestromotif.llm.embedded import free_cores

        return free_cores(own_machine=True)  # the stages run one at a time: the load is our own

    def llm_backend(kind: str) -> Any:
        """One backend per use (annotation scores, code generation), made on first need."""
        if kind not in llm:
            from maestromotif.llm import LLMError

            try:
                if kind == "annotate":
                    from maestromotif.cli.annotate import make_cli_backend

                    llm[kind] = make_cli_backend(backend, url, n_threads=own_threads())
                else:
                    from maestromotif.codegen.generate import make_codegen_backend

                    llm[kind] = make_codegen_backend(
                        backend, url=url, **({"n_threads": own_threads()} if backend == "embedded" else {}))
            except (ValueError, LLMError) as exc:
                raise StageFailed(f"LLM backend {backend}: {exc}") from exc
        return llm[kind]

    def done(name: str) -> bool:
        return stop_after == name

    def annotate_dir(pairs_dir: Path, labels_dir: Path) -> Any:
        """Label every pair of ``pairs_dir`` for the five skills (resumes from its ledger); the annotator."""
        from tqdm import tqdm

        from maestromotif.annotation.job import FAILED, AnnotationJob, JobSpec
        from maestromotif.annotation.schema import read_pair_dataset
        from maestromotif.annotation.strategies import Annotator
        from maestromotif.skills.ids import Skill

        annotator = Annotator(llm_backend("annotate"))
        job = AnnotationJob(JobSpec(str(pairs_dir), str(labels_dir), tuple(Skill)), annotator)
        total = read_pair_dataset(pairs_dir).num_pairs * len(Skill)
        with tqdm(total=total, unit="label", desc="annotate", mininterval=1.0) as bar:
            job.on_progress = bar.update
            status = job.run()
        if status.state == FAILED:
            raise StageFailed(f"annotation of {pairs_dir} failed: {status.error}")
        return annotator

    # 1. collect ---------------------------------------------------------------------------------
    def collect() -> dict[str, Any]:
        from tqdm import tqdm

        from maestromotif.annotation.collect import CollectError, collect_pairs

        try:
            with tqdm(total=prof.collect.steps, unit="step", desc="collect", mininterval=1.0) as bar:
                r = collect_pairs(pairs, steps=prof.collect.steps, policy=prof.collect.policy,
                                  num_envs=prof.collect.envs, seed=seed, progress=bar.update)
        except CollectError as exc:
            raise StageFailed(f"collect: {exc}") from exc
        console.print(f"{r.pairs:,} pairs from {r.steps:,} steps -> {pairs}")
        return {"pairs": r.pairs, "steps": r.steps, "dir": str(pairs)}

    results["collect"] = runner.run("collect", f"collect pairs ({prof.collect.steps:,} steps, {prof.collect.policy} policy)",
                                    [prof.collect.model_dump(), seed], _exists(pairs / "manifest.json"), collect)
    if done("collect"):
        return 0

    # 2. annotate --------------------------------------------------------------------------------
    def annotate() -> dict[str, Any]:
        from tqdm import tqdm

        from maestromotif.annotation.checkset import evaluate, load_checkset
        from maestromotif.fileio import atomic_write_text

        annotator = annotate_dir(pairs, labels)
        out: dict[str, Any] = {"model": annotator.model_id, "strategy": annotator.strategy,
                               "label_source": getattr(annotator, "label_source", "llm"), "dir": str(labels)}
        console.print(f"labels by {annotator.model_id} ({annotator.strategy}; label source {out['label_source']})")
        if prof.annotate.check_set:
            cases = load_checkset()
            with tqdm(total=len(cases), unit="pair", desc="check set", mininterval=1.0) as bar:
                report = evaluate(annotator, cases, progress=bar.update)
            atomic_write_text(labels / "checkset_eval.json", json.dumps(report.as_dict(), indent=2))
            out["checkset"] = report.as_dict()
            console.print(f"check set: {report.agree}/{report.total} labels agree with the expected ones")
        return out

    results["annotate"] = runner.run("annotate", f"label the pairs for the five skills ({backend} LLM)",
                                     [prof.annotate.model_dump(), backend, url],
                                     _exists(*(labels / skill / "manifest.json" for skill in SKILL_NAMES)), annotate)
    if done("annotate"):
        return 0

    # 3. reward models ---------------------------------------------------------------------------
    def rewards() -> dict[str, Any]:
        from maestromotif.cli.reward import format_metric
        from maestromotif.rewards.bundles import BundleError
        from maestromotif.rewards.train import TrainConfig, train_reward_models

        r = prof.rewards
        try:
            trained = train_reward_models(pairs, labels, bundles, "all", TrainConfig(
                learning_rate=r.learning_rate, batch_size=r.batch_size, epochs=r.epochs, val_fraction=r.val_fraction))
        except (BundleError, ValueError) as exc:
            raise StageFailed(f"reward models: {exc}") from exc
        out: dict[str, Any] = {"dir": str(bundles), "skills": {}}
        for t in trained:
            m = t.report["metrics"]
            out["skills"][t.skill] = {"val_accuracy": m.get("val_accuracy"), "val_pairs": m.get("val_pairs"),
                                      "threshold": t.meta.threshold}
            console.print(f"{t.skill:<11} held-out agreement with the labels {format_metric(m.get('val_accuracy'))}"
                          f"  threshold {t.meta.threshold:.3f}")
        return out

    results["rewards"] = runner.run("rewards", "train the five reward models", prof.rewards.model_dump(),
                                    _exists(bundles / "manifest.json"), rewards)
    if done("rewards"):
        return 0

    # 4. codegen: skill functions and the training policy ----------------------------------------
    def sampling() -> Any:
        from maestromotif.codegen.generate import Sampling

        c = prof.codegen
        return Sampling(temperature=c.temperature, repair_temperature=c.repair_temperature,
                        max_tokens=c.max_tokens, seed=seed + c.seed,
                        max_repair_rounds=c.max_repair_rounds, samples=c.samples)

    def generator() -> Any:
        from maestromotif.codegen.artifacts import ArtifactStore
        from maestromotif.codegen.generate import Generator

        return Generator(llm_backend("codegen"), ArtifactStore(artifacts))

    def spin(text: str) -> Any:
        return console.status(text, spinner="dots")

    def codegen() -> dict[str, Any]:
        gen = generator()
        out: dict[str, Any] = {}
        for key, title, call in (("skill_functions", "skill initiation/termination functions", gen.skill_functions),
                                 ("training_policy", "training policy over skills", gen.training_policy)):
            with spin(f"the LLM writes the {title}"):
                r = call(sampling=sampling())
            s = r.summary()
            out[key] = s
            verdict = "[green]validated[/]" if s["valid"] else f"[red]not validated[/] ({_failed(s)})"
            console.print(f"{title}: {verdict}, {s['attempts']} LLM calls, {s['seconds']:.0f} s, "
                          f"artifact {s['sha256'][:12]}")
        return out

    results["codegen"] = runner.run("codegen", "the LLM writes the skill functions and the training policy",
                                    [prof.codegen.model_dump(), backend, url, seed],
                                    lambda r: all((artifacts / f"{r[k]['sha256']}.json").exists()
                                                  for k in ("skill_functions", "training_policy")), codegen)
    if done("codegen"):
        return 0

    # 5. train -----------------------------------------------------------------------------------
    gen_policy = results["codegen"]["training_policy"]
    gen_skills = results["codegen"]["skill_functions"]
    actor_sets: list[str] = []
    if gen_policy["valid"]:
        actor_sets = [f"artifact_dir={artifacts}", f"policy_artifact={gen_policy['sha256']}"]
        if gen_skills["valid"]:
            actor_sets.append(f"skill_functions_artifact={gen_skills['sha256']}")
    training_policy = ("generated" + (" with generated skill functions" if gen_skills["valid"] else "")
                       if gen_policy["valid"] else "reference exploration (the generated one did not validate)")

    def train() -> dict[str, Any]:
        from maestromotif.cli.train import run_training

        t = prof.train
        console.print(f"training policy over skills: {training_policy}")
        code = run_training(steps=t.samples, actors=t.actors, envs=t.envs, preset=t.preset, batch_size=t.batch_size,
                            learning_rate=t.learning_rate, reward_bundles=bundles, train_dir=runs,
                            experiment="policy", base_port=base_port, base_metrics_port=base_metrics_port,
                            actor_sets=actor_sets, log_dir=logs, history=workdir / "training_history.jsonl")
        if code != 0:
            raise StageFailed(f"training exited with code {code} (service logs: {logs})")
        return {"experiment": str(runs / "policy"), "training_policy": training_policy, "actor_sets": actor_sets,
                "history": str(workdir / "training_history.jsonl")}

    results["train"] = runner.run("train", f"train the skill policy ({prof.train.samples:,} samples)",
                                  [prof.train.model_dump(), actor_sets], _exists(runs / "policy"), train)
    if done("train"):
        return 0

    # 6. optional second round -------------------------------------------------------------------
    if rounds == 2:
        def round2() -> dict[str, Any]:
            from maestromotif.cli.train import run_training
            from maestromotif.rewards.train import TrainConfig
            from maestromotif.training.rounds import second_round

            r, t = prof.rewards, prof.train
            code = second_round(
                workdir, annotate=annotate_dir, collect_steps=prof.collect.steps, collect_envs=prof.collect.envs,
                seed=seed, config=TrainConfig(learning_rate=r.learning_rate, batch_size=r.batch_size, epochs=r.epochs,
                                              val_fraction=r.val_fraction),
                train=lambda bundle_dir, experiment: run_training(
                    steps=t.samples, actors=t.actors, envs=t.envs, preset=t.preset, batch_size=t.batch_size,
                    learning_rate=t.learning_rate, reward_bundles=bundle_dir, train_dir=runs, experiment=experiment,
                    base_port=base_port, base_metrics_port=base_metrics_port, actor_sets=actor_sets, log_dir=logs),
                eval_steps=prof.skill_eval.steps, stage=lambda _i, title: console.print(f"[bold]round 2:[/] {title}"),
                console=console)
            if code != 0:
                raise StageFailed(f"round 2 exited with code {code} (service logs: {logs})")
            return {"report": str(workdir / "round2" / "report.json")}

        results["round2"] = runner.run("round2", "second round: the trained policy collects, the LLM labels, retrain",
                                       [prof.model_dump(), seed], _exists(workdir / "round2" / "report.json"), round2)
        if done("round2"):
            return 0

    # 7. skill evaluation ------------------------------------------------------------------------
    def skill_eval() -> dict[str, Any]:
        from tqdm import tqdm

        from maestromotif.fileio import atomic_write_text
        from maestromotif.training.evaluate import EvaluationError, evaluate_skills

        try:
            with tqdm(total=prof.skill_eval.steps, unit="step", desc="skills: trained vs random", mininterval=1.0) as bar:
                r = evaluate_skills(runs / "policy", bundles, steps=prof.skill_eval.steps, num_envs=prof.skill_eval.envs,
                                    seed=seed, progress=bar.update)
        except EvaluationError as exc:
            raise StageFailed(f"skill evaluation: {exc}") from exc
        path = workdir / "skill_eval.json"
        atomic_write_text(path, json.dumps(r.to_dict(), indent=2))
        return {"file": str(path)}

    results["skill_eval"] = runner.run("skill_eval", "evaluate the skills: trained against random actions, same states",
                                       [prof.skill_eval.model_dump(), seed, state.stage("train")],
                                       _exists(workdir / "skill_eval.json"), skill_eval)
    if done("skill_eval"):
        return 0

    # 8. compose the nine tasks ------------------------------------------------------------------
    def compose() -> dict[str, Any]:
        from maestromotif.tasks.specs import TASKS

        gen = generator()
        out: dict[str, Any] = {}
        tasks = prof.codegen.tasks
        for i, task in enumerate(tasks, 1):
            with spin(f"[{i}/{len(tasks)}] the LLM composes {task} from its prompt"):
                r = gen.compose_task(TASKS[task].prompt, task_name=task, detector_task=task, sampling=sampling())
            s = r.summary()
            out[task] = s
            rounds_taken = max((x["repair_rounds"] for x in s["samples"] if x["sha256"] == s["sha256"]), default=0)
            verdict = (f"[green]validated[/] after {rounds_taken} repair rounds" if s["valid"]
                       else f"[red]no valid policy[/] ({_failed(s)})")
            console.print(f"{task:<16} {verdict}, {s['attempts']} LLM calls, {s['seconds']:.0f} s")
        return out

    results["compose"] = runner.run("compose", f"the LLM composes {len(prof.codegen.tasks)} tasks from their prompts (zero-shot)",
                                    [prof.codegen.model_dump(), backend, url, seed],
                                    lambda r: list(r) == list(prof.codegen.tasks), compose)
    if done("compose"):
        return 0

    # 9. task evaluation -------------------------------------------------------------------------
    def task_eval() -> dict[str, Any]:
        from tqdm import tqdm

        from maestromotif.fileio import atomic_write_text
        from maestromotif.tasks.evaluation import TaskEvaluationError, evaluate_tasks, plot_evaluation

        te = prof.task_eval
        valid = [t for t, s in results["compose"].items() if s["valid"]]
        out: dict[str, Any] = {"generated_tasks": valid}
        plans = [("generated", valid, ("trained", "random", "untrained")),
                 ("reference", list(results["compose"]), ("trained", "random", "untrained"))]
        for policies, tasks, conditions in plans:
            if not tasks:
                console.print(f"[yellow]no task has a validated {policies} policy: nothing to evaluate[/]")
                continue
            total = len(tasks) * len(conditions) * te.episodes
            try:
                with tqdm(total=total, unit="episode", desc=f"tasks ({policies} policies)", mininterval=1.0) as bar:
                    r = evaluate_tasks(runs / "policy", tasks=tasks, episodes=te.episodes, policies=policies,
                                       conditions=conditions, seed=seed, max_steps=te.max_steps, workers=te.workers,
                                       artifacts=artifacts, progress=lambda _rec: bar.update(1))
            except TaskEvaluationError as exc:
                raise StageFailed(f"task evaluation: {exc}") from exc
            path = workdir / f"task_eval_{policies}.json"
            atomic_write_text(path, json.dumps(r.to_dict(), indent=2))
            out[policies] = {"file": str(path), "png": str(plot_evaluation(r, workdir / f"task_eval_{policies}.png"))}
        return out

    results["task_eval"] = runner.run("task_eval", "evaluate the nine tasks beside the paper and two baselines",
                                      [prof.task_eval.model_dump(), seed, state.stage("train"), state.stage("compose")],
                                      lambda r: all(Path(v["file"]).exists() for k, v in r.items()
                                                    if isinstance(v, dict)), task_eval)
    if done("task_eval"):
        return 0

    # 10. report ---------------------------------------------------------------------------------
    def report() -> dict[str, Any]:
        from maestromotif.report import write_report

        path = write_report(workdir, prof, state.data["stages"])
        return {"file": str(path)}

    # always rewritten: it is cheap and must reflect the latest state
    state.data["stages"].pop("report", None)
    results["report"] = runner.run("report", "write the report", None, lambda _r: False, report)
    _summary(workdir, results, runner)
    return 0


def _failed(summary: dict[str, Any]) -> str:
    stages = {s.get("failed_stage") for s in summary.get("samples", []) if s.get("failed_stage")}
    return "failed at " + ", ".join(sorted(stages)) if stages else "no verdict"


def _summary(workdir: Path, results: dict[str, Any], runner: Runner) -> None:
    """The short end-of-run summary on the console."""
    from rich.table import Table

    console.rule("[bold]summary")
    ran, skipped = runner.run_record["ran"], runner.run_record["skipped"]
    console.print(f"stages run: {', '.join(ran) or 'none'}; skipped (done before): {', '.join(skipped) or 'none'}")
    compose = results.get("compose", {})
    valid = sum(1 for s in compose.values() if s.get("valid"))
    console.print(f"code: {valid}/{len(compose)} task policies validated; training policy "
                  f"{results['train']['training_policy']}")
    evals = results.get("task_eval", {})
    policies = "generated" if evals.get("generated") else "reference"
    if evals.get(policies):
        data = json.loads(Path(evals[policies]["file"]).read_text())["summary"]
        table = Table(title=f"tasks ({policies} policies): trained | random actions | untrained network | paper")
        for col in ("task", "metric", "trained", "random", "untrained", "paper"):
            table.add_column(col)
        for task, entry in data.items():
            cells = [_metric_cell(entry, c) for c in ("trained", "random", "untrained")]
            table.add_row(task, entry["metric"], *cells, entry["paper"])
        console.print(table)
    console.print(f"report: [bold]{results['report']['file']}[/]  (state: {workdir / STATE_FILE}; logs: {workdir / 'logs'})")


def _metric_cell(entry: dict[str, Any], condition: str) -> str:
    c = entry["conditions"].get(condition)
    if c is None:
        return "-"
    if entry["metric"] == "success":
        s = c["legacy"]
        return f"{s['rate']:.0%} [{s['ci_low']:.0%}, {s['ci_high']:.0%}] (n={c['episodes']})"
    from maestromotif.report import count_cell

    return count_cell(c)


def register(app: typer.Typer) -> None:
    app.command("pipeline")(pipeline_command)
