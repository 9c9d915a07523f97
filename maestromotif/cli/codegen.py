"""Code generation commands: ``maestromotif codegen skills|training-policy|validate|show|list`` and ``compose``.

Generation runs in this process on the chosen LLM backend (the embedded model by default) and
stores every result in the artifact store, or, with ``--address``, asks a running Codegen
service to do it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

codegen_app = typer.Typer(help="Have an LLM write skill functions and policies over skills; validate code.",
                          no_args_is_help=True)

BackendOpt = Annotated[str, typer.Option(help="LLM backend: embedded (in-process llama.cpp), openai or tgi.")]
UrlOpt = Annotated[str, typer.Option(help="Base URL of the LLM server (openai, tgi).")]
ModelOpt = Annotated[str, typer.Option(help="Embedded: 0.5b or 1.5b (empty: the codegen default); remote: model id.")]
StoreOpt = Annotated[Path, typer.Option(help="Artifact store directory (in-process generation).")]
SamplesOpt = Annotated[int, typer.Option(min=1, max=8, help="Independent samples; the best validated one is kept.")]
SeedOpt = Annotated[int, typer.Option(min=0, max=2**31 - 1, help="Seed of the first sample (then seed+1, ...).")]
TempOpt = Annotated[float, typer.Option(min=0.0, max=2.0, help="Sampling temperature.")]
TokensOpt = Annotated[int, typer.Option(min=64, max=8192, help="Most tokens per LLM reply.")]
RoundsOpt = Annotated[int, typer.Option(min=0, max=3, help="Most repair rounds after a failed validation.")]
AddressOpt = Annotated[str, typer.Option(help="host:port of a running Codegen service (empty: generate in-process).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


def register(app: typer.Typer) -> None:
    app.add_typer(codegen_app, name="codegen")
    app.command("compose")(compose)


def _sampling(samples: int, seed: int, temperature: float, max_tokens: int, repair_rounds: int) -> Any:
    from maestromotif.codegen.generate import Sampling
    from maestromotif.codegen.prompts import PromptError

    try:
        return Sampling(temperature=temperature, max_tokens=max_tokens, seed=seed, max_repair_rounds=repair_rounds,
                        samples=samples)
    except PromptError as exc:
        raise typer.BadParameter(str(exc)) from None


def _generator(backend: str, url: str, model: str, store: Path) -> Any:
    from maestromotif.codegen.artifacts import ArtifactStore
    from maestromotif.codegen.generate import Generator, make_codegen_backend
    from maestromotif.llm import BACKENDS, LLMError

    if backend not in BACKENDS:
        raise typer.BadParameter(f"choose one of {', '.join(BACKENDS)}", param_hint="--backend")
    try:
        llm = make_codegen_backend(backend, url=url, model=model)
    except (LLMError, ValueError) as exc:
        typer.echo(f"error: cannot start the {backend} backend: {exc}", err=True)
        raise typer.Exit(2) from None
    return Generator(llm, ArtifactStore(store))


def _print_result(summary: dict[str, Any], code: str, report: dict[str, Any], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps({**summary, "code": code, "validation": report}, indent=2))
        return
    for s in summary["samples"]:
        verdict = "valid" if s["valid"] else f"invalid (first failed stage: {s['failed_stage']})"
        typer.echo(f"sample seed {s['seed']}: {verdict} after {s['repair_rounds']} repair round(s), "
                   f"{s['prompt_tokens']} prompt + {s['completion_tokens']} completion tokens, {s['seconds']} s "
                   f"-> {s['sha256']}")
    typer.echo(f"\nchosen: {summary['sha256']} ({'valid' if summary['valid'] else 'NOT valid'})\n")
    typer.echo(code)
    for stage in report.get("stages", []):
        mark = "ok  " if stage.get("passed") else "FAIL"
        typer.echo(f"  [{mark}] {stage.get('stage')}: {str(stage.get('detail', ''))[:300]}")


def _remote(address: str, method: str, request: Any, as_json: bool) -> None:
    import grpc

    from maestromotif.kit.client import client_options_from_env, make_channel
    from maestromotif.v1 import codegen_pb2_grpc

    try:  # token and TLS from MAESTROMOTIF_CLIENT_* (never from the command line)
        options = client_options_from_env(deadline_s=3600.0)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    channel = make_channel(address, options)
    try:
        reply = getattr(codegen_pb2_grpc.CodegenStub(channel), method)(request)
    except grpc.RpcError as exc:
        typer.echo(f"error: {method} failed: {exc.code().name}: {exc.details()}", err=True)
        raise typer.Exit(1) from None
    finally:
        channel.close()
    art = reply.artifact
    report = {"valid": art.validation.valid,
              "stages": [{"stage": c.name, "passed": c.passed, "detail": c.detail} for c in art.validation.checks]}
    summary = {"sha256": art.sha256, "valid": art.validation.valid, "attempts": reply.attempts,
               "samples": [], "sample_sha256": list(reply.sample_sha256), "repair_rounds": reply.repair_rounds}
    _print_result(summary, art.code, report, as_json)
    if not as_json:
        typer.echo(f"{reply.attempts} LLM call(s); samples: {', '.join(reply.sample_sha256)}")


def _run_local(generate: Any, as_json: bool) -> None:
    from maestromotif.codegen.prompts import PromptError
    from maestromotif.llm import LLMError

    try:
        with _spinner("generating (LLM + validation; minutes on a CPU)", as_json):
            result = generate()
    except PromptError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except LLMError as exc:
        typer.echo(f"error: LLM backend failed: {exc}", err=True)
        raise typer.Exit(1) from None
    best = result.best
    _print_result(result.summary(), best.record.code, best.report.to_dict(), as_json)
    if not best.valid:
        raise typer.Exit(1)


def _spinner(text: str, quiet: bool) -> Any:
    from contextlib import nullcontext

    from rich.console import Console

    if quiet:
        return nullcontext()
    return Console(stderr=True).status(text)


@codegen_app.command("skills")
def skills(
    skill: Annotated[Optional[list[str]], typer.Option(help="Skill to cover (repeatable); default: all five.")] = None,
    backend: BackendOpt = "embedded", url: UrlOpt = "", model: ModelOpt = "", store: StoreOpt = Path("data/artifacts"),
    samples: SamplesOpt = 1, seed: SeedOpt = 0, temperature: TempOpt = 0.2, max_tokens: TokensOpt = 900,
    repair_rounds: RoundsOpt = 3, address: AddressOpt = "", as_json: JsonOpt = False,
) -> None:
    """Have the LLM write the skills' initiation and termination functions (validated, stored).

    Exit code 0 when the chosen sample is valid, 1 when none validated.
    """
    from maestromotif.skills.ids import SkillIdError, parse_skill

    try:
        chosen = tuple(dict.fromkeys(parse_skill(s) for s in (skill or [])))
    except SkillIdError as exc:
        raise typer.BadParameter(str(exc), param_hint="--skill") from None
    sampling = _sampling(samples, seed, temperature, max_tokens, repair_rounds)
    if address:
        from maestromotif.v1 import codegen_pb2

        _remote(address, "GenerateSkillFunctions", codegen_pb2.GenerateSkillFunctionsRequest(
            skills=[int(s) for s in chosen], sampling=_pb_sampling(sampling)), as_json)
        return
    gen = _generator(backend, url, model, store)
    _run_local(lambda: gen.skill_functions(chosen, sampling=sampling), as_json)


@codegen_app.command("training-policy")
def training_policy(
    backend: BackendOpt = "embedded", url: UrlOpt = "", model: ModelOpt = "", store: StoreOpt = Path("data/artifacts"),
    samples: SamplesOpt = 1, seed: SeedOpt = 0, temperature: TempOpt = 0.2, max_tokens: TokensOpt = 900,
    repair_rounds: RoundsOpt = 3, address: AddressOpt = "", as_json: JsonOpt = False,
) -> None:
    """Have the LLM write the training-time policy over skills (method.md 3.3), validated and stored.

    The hand-written training policy is not among its examples. Exit code 1 when none validated.
    """
    sampling = _sampling(samples, seed, temperature, max_tokens, repair_rounds)
    if address:
        from maestromotif.v1 import codegen_pb2

        _remote(address, "GenerateTrainingPolicy",
                codegen_pb2.GenerateTrainingPolicyRequest(sampling=_pb_sampling(sampling)), as_json)
        return
    gen = _generator(backend, url, model, store)
    _run_local(lambda: gen.training_policy(sampling=sampling), as_json)


def compose(
    prompt: Annotated[str, typer.Argument(help="The task in plain language (at most 4,000 characters).")],
    detector_task: Annotated[str, typer.Option(help="One of the nine tasks whose detector evaluates the policy "
                                                    "(its reference policy is then not an example).")] = "",
    task_name: Annotated[str, typer.Option(help="Short name of the task (letters, digits, '-', '_').")] = "",
    backend: BackendOpt = "embedded", url: UrlOpt = "", model: ModelOpt = "", store: StoreOpt = Path("data/artifacts"),
    samples: SamplesOpt = 1, seed: SeedOpt = 0, temperature: TempOpt = 0.2, max_tokens: TokensOpt = 900,
    repair_rounds: RoundsOpt = 3, address: AddressOpt = "", as_json: JsonOpt = False,
) -> None:
    """Compose a task zero-shot: the LLM writes a policy over the trained skills for PROMPT.

    Example: maestromotif compose "Get into the Gnomish Mines." --detector-task gnomish
    Exit code 0 when the chosen sample is valid, 1 when none validated, 2 for a bad request.
    """
    from maestromotif.codegen.prompts import PromptError, check_task_name, check_task_prompt
    from maestromotif.tasks.specs import TASK_NAMES

    try:
        check_task_prompt(prompt)
        if task_name:
            check_task_name(task_name)
    except PromptError as exc:
        raise typer.BadParameter(str(exc)) from None
    if detector_task and detector_task not in TASK_NAMES:
        raise typer.BadParameter(f"choose one of {', '.join(TASK_NAMES)}", param_hint="--detector-task")
    sampling = _sampling(samples, seed, temperature, max_tokens, repair_rounds)
    if address:
        from maestromotif.v1 import codegen_pb2

        _remote(address, "ComposeTask", codegen_pb2.ComposeTaskRequest(
            prompt=prompt, task_name=task_name, detector_task=detector_task, sampling=_pb_sampling(sampling)), as_json)
        return
    gen = _generator(backend, url, model, store)
    _run_local(lambda: gen.compose_task(prompt, task_name=task_name, detector_task=detector_task, sampling=sampling),
               as_json)


def _pb_sampling(sampling: Any) -> Any:
    from maestromotif.v1 import codegen_pb2

    return codegen_pb2.SamplingSettings(temperature=sampling.temperature, max_tokens=sampling.max_tokens,
                                        seed=sampling.seed, max_repair_rounds=sampling.max_repair_rounds,
                                        samples=sampling.samples)


@codegen_app.command("validate")
def validate(
    file: Annotated[Path, typer.Argument(help="Python source to check ('-' reads standard input).")],
    kind: Annotated[str, typer.Option(help="What the code is: task_policy, training_policy or skill_functions.")] = "task_policy",
    tests: Annotated[Optional[Path], typer.Option(help="File with unit tests (test_* functions) to run too.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Validate code stage by stage (size, parse, allow-list, isolated run, harness, tests).

    Exit code 0 when valid, 1 when a stage failed, 2 for a bad argument.
    """
    from maestromotif.codegen import parse_kind
    from maestromotif.codegen.validate import validate_code

    try:
        artifact_kind = parse_kind(kind.replace("-", "_"))
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--kind") from None
    source = _read_text(file, "FILE")
    tests_source = _read_text(tests, "--tests") if tests is not None else None
    report = validate_code(source, artifact_kind, tests_source=tests_source)
    data = report.to_dict()
    if as_json:
        typer.echo(json.dumps(data, indent=2))
    else:
        for stage in data.get("stages", []):
            mark = "ok  " if stage.get("passed") else "FAIL"
            typer.echo(f"[{mark}] {stage.get('stage')}: {stage.get('detail', '')}")
        typer.echo("valid" if report.valid else "NOT valid")
    if not report.valid:
        raise typer.Exit(1)


def _read_text(path: Path, hint: str) -> str:
    max_bytes = 256 * 1024  # far above the validator's own size limit, which then reports it
    try:
        if str(path) == "-":
            data = sys.stdin.buffer.read(max_bytes + 1)
        else:
            with path.open("rb") as handle:
                data = handle.read(max_bytes + 1)
    except OSError as exc:
        raise typer.BadParameter(f"cannot read {path}: {exc.strerror}", param_hint=hint) from None
    if len(data) > max_bytes:
        raise typer.BadParameter(f"{path} is larger than {max_bytes} bytes", param_hint=hint)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise typer.BadParameter(f"{path} is not UTF-8 text", param_hint=hint) from None


@codegen_app.command("show")
def show(
    sha256: Annotated[str, typer.Argument(help="Artifact address (64 hex digits).")],
    store: StoreOpt = Path("data/artifacts"),
    transcript: Annotated[bool, typer.Option("--transcript", help="Also print the whole conversation.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Print a stored artifact: code, validation report, model and sampling (and the transcript)."""
    from maestromotif.codegen.artifacts import ArtifactError, ArtifactStore

    try:
        record = ArtifactStore(store).get(sha256)
    except ArtifactError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    data = record.model_dump(mode="json")
    if not transcript:
        data.pop("transcript", None)
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    for key in ("sha256", "kind", "task", "detector_task", "backend", "model_id", "model_digest", "sampling",
                "created"):
        typer.echo(f"{key}: {data.get(key)}")
    typer.echo(f"valid: {record.valid}" + ("" if record.valid else f" ({record.report.errors[:300]})") + "\n")
    typer.echo(record.code)
    if record.tests:
        typer.echo("# --- the LLM's tests ---\n" + record.tests)
    if transcript:
        for message in record.transcript:
            typer.echo(f"\n--- {message.role} ---\n{message.content}")


@codegen_app.command("list")
def list_artifacts(store: StoreOpt = Path("data/artifacts"), as_json: JsonOpt = False) -> None:
    """List the stored artifacts, oldest first: address, kind, task, validity (or why a file does not load)."""
    from maestromotif.codegen.artifacts import ArtifactStore

    rows = [{"sha256": a.sha256, "kind": a.kind, "task": a.task, "valid": a.valid, "error": a.error,
             "created": a.created.isoformat() if a.created else None} for a in ArtifactStore(store).list()]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        state = "valid" if row["valid"] else ("UNREADABLE: " + str(row["error"])[:100] if row["error"] else "invalid")
        typer.echo(f"{row['sha256']}  {str(row['kind']):<16} {str(row['task']):<16} {state}")


@codegen_app.command("evaluate")
def evaluate(
    sha256: Annotated[str, typer.Argument(help="A validated task-policy artifact (64 hex digits).")],
    store: StoreOpt = Path("data/artifacts"),
    task: Annotated[str, typer.Option(help="Task detector to score with (default: the artifact's detector task).")] = "",
    episodes: Annotated[int, typer.Option(min=1, max=1000, help="Episodes per policy.")] = 3,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the first episode (then seed+1, ...).")] = 100,
    max_steps: Annotated[int, typer.Option(min=1, max=100_000, help="Agent steps per episode.")] = 10_000,
    skills: Annotated[str, typer.Option(help="Skill stand-in: 'stairs' (wizard-mode scripted descender/ascender, "
                                             "others random) or 'random' (all random).")] = "stairs",
    as_json: JsonOpt = False,
) -> None:
    """Play a generated task policy and the task's reference policy on the same seeds, scored by the task's detector.

    No skill network is loaded. With --skills random every skill acts at random, so both policies play the same
    game; with --skills stairs (default) descender and ascender are scripted in wizard mode, so the policies'
    choices move the hero between levels and branches.
    """
    from rich.progress import Progress

    from maestromotif.codegen.artifacts import ArtifactError, ArtifactStore
    from maestromotif.codegen.episodes import play_episode
    from maestromotif.skills.reference import load_reference
    from maestromotif.tasks.specs import TASK_NAMES

    artifacts = ArtifactStore(store)
    try:
        record = artifacts.get(sha256)
        generated = artifacts.load_policy(sha256)
    except ArtifactError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    task = task or record.detector_task or (record.task if record.task in TASK_NAMES else "")
    if skills not in ("stairs", "random"):
        raise typer.BadParameter("choose 'stairs' or 'random'", param_hint="--skills")
    if task not in TASK_NAMES:
        raise typer.BadParameter(f"the artifact names no task detector; choose one of {', '.join(TASK_NAMES)}",
                                 param_hint="--task")
    seeds = list(range(seed, seed + episodes))
    rows: dict[str, list[dict[str, Any]]] = {}
    with Progress(disable=as_json, transient=True) as progress:
        bar = progress.add_task(f"{task}: generated and reference", total=2 * episodes)
        for label, policy in (("generated", generated), ("reference", load_reference(task))):
            rows[label] = []
            for s in seeds:
                result = play_episode(policy, task, s, max_steps=max_steps, skills=skills)
                rows[label].append({"seed": s, "steps": result.steps, "end": result.end, "max_depth": result.max_depth,
                                    "policy_failures": result.policy_failures, **result.outcome})
                progress.advance(bar)
    if as_json:
        typer.echo(json.dumps({"task": task, "sha256": sha256, "episodes": rows}, indent=2))
        return
    for label, items in rows.items():
        successes = sum(bool(r.get("legacy_success")) for r in items)
        counts = sum(int(r.get("legacy_count", 0)) for r in items)
        typer.echo(f"{label:<10} {task}: legacy successes {successes}/{len(items)}, legacy count {counts}, "
                   f"mean steps {sum(r['steps'] for r in items) / len(items):.0f}, "
                   f"mean max depth {sum(r['max_depth'] for r in items) / len(items):.1f}, "
                   f"policy failures {sum(r['policy_failures'] for r in items)}")
