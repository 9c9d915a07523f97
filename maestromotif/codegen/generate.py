"""The generation loop (method.md 8.2): prompt, extract, validate, repair, keep the best sample.

For one request the loop draws ``samples`` independent conversations (seeds ``seed``,
``seed + 1``, ...). In each, the LLM's answer is parsed into code and its own unit tests, and
the code is validated (``maestromotif.codegen.validate``); when validation fails, the failed
stages go back to the LLM and it tries again, at most ``max_repair_rounds`` times. Every
sample's last code is stored as an artifact, validated or not, with the whole transcript, the
prompt, the backend, the model and its digest, and the sampling settings. The result is the best
sample: a validated one first (for skill functions, the one agreeing most with the hand-written
rules), else the one whose validation got furthest.

LLM output is untrusted: replies are bounded by ``max_tokens`` and a wall-clock limit, code by
the validator's size limits, and nothing runs before the validator's isolated process.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from maestromotif.codegen import ArtifactKind
from maestromotif.codegen.artifacts import MAX_CODE_CHARS, ArtifactRecord, ArtifactStore, Message
from maestromotif.codegen.artifacts import Sampling as RecordSampling
from maestromotif.codegen.prompts import (
    Prompt,
    PromptError,
    check_task_name,
    extract_code,
    repair_prompt,
    skill_functions_prompt,
    task_policy_prompt,
    training_policy_prompt,
)
from maestromotif.codegen.validate import ValidationReport, validate_code
from maestromotif.llm import ChatMessage, Completion, GenerationParams, LLMBackend
from maestromotif.skills.ids import Skill
from maestromotif.skills.reference import TASK_POLICIES
from maestromotif.tasks.specs import TASK_NAMES, TASKS

log = logging.getLogger(__name__)

STAGE_ORDER: tuple[str, ...] = ("size", "parse", "allow-list", "isolated-run", "harness", "llm-tests")
# Embedded model of code generation: the one with the higher validated rate on the nine task
# prompts (experiments/codegen_models.py; README "Code generation"): 1.5B 4/9, 0.5B 3/9.
DEFAULT_CODEGEN_MODEL = "1.5b"
# Longest answer read (characters): 8,192 tokens (the largest max_tokens) are ~35 kB of code.
MAX_REPLY_CHARS = 100_000
EMBEDDED_CONTEXT = 8192  # tokens: prompt (~2,500) + answer + one repair round fit


def make_codegen_backend(kind: str, *, url: str | None = None, model: str | None = None,
                         **options: Any) -> LLMBackend:
    """The LLM backend of code generation: the embedded coder model with a context that fits a repair
    round, or a served model at ``url``. Raises ``ValueError`` or ``LLMError`` on bad settings."""
    from maestromotif.llm import make_backend

    if kind == "embedded":
        return make_backend("embedded", model=model or DEFAULT_CODEGEN_MODEL,
                            **{"n_ctx": EMBEDDED_CONTEXT, **options})
    return make_backend(kind, url=url or None, model=model or None, **options)


@dataclass(frozen=True)
class Sampling:
    """Sampling settings of a request; recorded with every artifact."""

    temperature: float = 0.2  # method.md 8.2
    # Repair rounds sample hotter. A deviation from the method (0.2 throughout, with a 405B model):
    # measured with the 0.5B coder at 0.2, repair answers repeated the failing code word for word.
    repair_temperature: float = 0.7
    max_tokens: int = 900
    seed: int = 0
    max_repair_rounds: int = 3
    samples: int = 1
    top_p: float = 0.95
    top_k: int = 40
    time_limit_s: float = 300.0  # wall clock of one LLM reply

    def __post_init__(self) -> None:
        if not 0.0 <= self.temperature <= 2.0:
            raise PromptError(f"sampling.temperature: {self.temperature} not in [0, 2]")
        if not 0.0 <= self.repair_temperature <= 2.0:
            raise PromptError(f"sampling.repair_temperature: {self.repair_temperature} not in [0, 2]")
        if not 64 <= self.max_tokens <= 8192:
            raise PromptError(f"sampling.max_tokens: {self.max_tokens} not in [64, 8192]")
        if not 0 <= self.seed < 2**31:
            raise PromptError(f"sampling.seed: {self.seed} not in [0, 2^31)")
        if not 0 <= self.max_repair_rounds <= 3:
            raise PromptError(f"sampling.max_repair_rounds: {self.max_repair_rounds} not in [0, 3]")
        if not 1 <= self.samples <= 8:
            raise PromptError(f"sampling.samples: {self.samples} not in [1, 8]")
        if not 1.0 <= self.time_limit_s <= 3600.0:
            raise PromptError(f"sampling.time_limit_s: {self.time_limit_s} not in [1, 3600]")

    def round_temperature(self, round_index: int) -> float:
        return self.temperature if round_index == 0 else self.repair_temperature

    def params(self, seed: int, round_index: int = 0) -> GenerationParams:
        return GenerationParams(max_new_tokens=self.max_tokens, temperature=self.round_temperature(round_index),
                                top_p=self.top_p,
                                top_k=self.top_k, seed=seed, time_limit_s=self.time_limit_s)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class GenerationObserver(Protocol):
    """Receives what the loop does (the service turns it into Prometheus metrics)."""

    def llm_call(self, seconds: float, prompt_tokens: int, completion_tokens: int) -> None: ...

    def validation(self, report: ValidationReport) -> None: ...

    def sample_done(self, kind: ArtifactKind, valid: bool, repair_rounds: int) -> None: ...

    def generation_done(self, kind: ArtifactKind, valid: bool, seconds: float) -> None: ...


class NullObserver:
    def llm_call(self, seconds: float, prompt_tokens: int, completion_tokens: int) -> None:
        pass

    def validation(self, report: ValidationReport) -> None:
        pass

    def sample_done(self, kind: ArtifactKind, valid: bool, repair_rounds: int) -> None:
        pass

    def generation_done(self, kind: ArtifactKind, valid: bool, seconds: float) -> None:
        pass


@dataclass
class SampleResult:
    """One conversation: its stored artifact and how it went."""

    seed: int
    sha256: str
    record: ArtifactRecord
    report: ValidationReport
    llm_calls: int
    repair_rounds: int  # rounds after the first answer (0 when the first answer validated)
    prompt_tokens: int
    completion_tokens: int
    seconds: float

    @property
    def valid(self) -> bool:
        return bool(self.report.valid)


@dataclass
class GenerationResult:
    """All samples of one request and the chosen one."""

    kind: ArtifactKind
    best: SampleResult
    samples: list[SampleResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def attempts(self) -> int:
        return sum(s.llm_calls for s in self.samples)

    def summary(self) -> dict[str, Any]:
        return {
            "kind": str(self.kind),
            "sha256": self.best.sha256,
            "valid": self.best.valid,
            "attempts": self.attempts,
            "seconds": round(self.seconds, 2),
            "samples": [
                {"seed": s.seed, "sha256": s.sha256, "valid": s.valid, "repair_rounds": s.repair_rounds,
                 "llm_calls": s.llm_calls, "prompt_tokens": s.prompt_tokens,
                 "completion_tokens": s.completion_tokens, "seconds": round(s.seconds, 2),
                 "failed_stage": first_failed_stage(s.report)}
                for s in self.samples
            ],
        }


def first_failed_stage(report: ValidationReport) -> str | None:
    for stage in report.stages:
        if not stage.passed:
            return stage.stage
    return None


def _progress(report: ValidationReport) -> int:
    """How far validation got: the number of stages passed before the first failure."""
    n = 0
    for stage in report.stages:
        if not stage.passed:
            break
        n += 1
    return n


def _agreement(report: ValidationReport) -> float:
    values = [float(v) for v in (report.agreement or {}).values()] if getattr(report, "agreement", None) else []
    return sum(values) / len(values) if values else 0.0


def _rank(sample: SampleResult) -> tuple[int, float, int, int]:
    # valid first; then (skill functions) agreement with the hand-written rules; then how far
    # validation got; then fewer repair rounds
    return (int(sample.valid), _agreement(sample.report), _progress(sample.report), -sample.repair_rounds)


def errors_text(report: ValidationReport) -> str:
    """The failed stages of a report, for the repair message."""
    lines = [f"- {s.stage}: {s.detail}" for s in report.stages if not s.passed]
    out = "\n".join(lines) or "- validation failed"
    if report.sandbox_output:
        out += "\nOutput of the run:\n" + report.sandbox_output[-800:]
    return out


Validator = Callable[..., ValidationReport]


@dataclass(frozen=True)
class BackendInfo:
    kind: str
    model: str
    digest: str  # SHA-256 of the embedded weights; the served model id otherwise


def backend_info(backend: LLMBackend) -> BackendInfo:
    spec = getattr(backend, "spec", None)
    digest = str(getattr(spec, "sha256", "")) or backend.model_id
    return BackendInfo(backend.kind, backend.model_id, digest)


class Generator:
    """Runs the loop against one backend and stores every result in ``store``."""

    def __init__(self, backend: LLMBackend, store: ArtifactStore, *, validator: Validator = validate_code,
                 observer: GenerationObserver | None = None, validation_limits: Any = None) -> None:
        self.backend = backend
        self.store = store
        self.validator = validator
        self.observer: GenerationObserver = observer or NullObserver()
        self.validation_limits = validation_limits
        self.info = backend_info(backend)

    # -- public entry points ---------------------------------------------------------------------

    def compose_task(self, task_text: str, *, task_name: str = "", detector_task: str = "",
                     sampling: Sampling = Sampling(), examples: int | None = None) -> GenerationResult:
        """A policy for a task in plain language (ComposeTask).

        ``task_name`` names the artifact; ``detector_task`` (one of the nine tasks) links it to that
        task's detector for evaluation. The reference policy of the task (named by either) is left
        out of the examples.
        """
        if task_name:
            check_task_name(task_name)
        if detector_task and detector_task not in TASK_NAMES:
            raise PromptError(f"detector_task: {detector_task[:64]!r} is not one of {', '.join(TASK_NAMES)}")
        exclude = next((n for n in (detector_task, task_name) if n in TASK_POLICIES), None)
        if exclude is None:
            # the text of one of the nine tasks, given without a name, is still that task
            exclude = next((n for n, spec in TASKS.items() if spec.prompt.strip() == task_text.strip()), None)
        kwargs = {} if examples is None else {"examples": examples}
        prompt = task_policy_prompt(task_text, exclude_reference=exclude, **kwargs)
        return self._run(prompt, sampling, task_name=task_name or detector_task or "custom",
                         detector_task=detector_task)

    def training_policy(self, *, sampling: Sampling = Sampling()) -> GenerationResult:
        return self._run(training_policy_prompt(), sampling, task_name="training", detector_task="")

    def skill_functions(self, skills: Sequence[Skill] = (), *, sampling: Sampling = Sampling()) -> GenerationResult:
        return self._run(skill_functions_prompt(tuple(skills) or tuple(Skill)), sampling, task_name="skills",
                         detector_task="")

    # -- the loop --------------------------------------------------------------------------------

    def _validate(self, code: str, kind: ArtifactKind, tests: str) -> ValidationReport:
        kwargs: dict[str, Any] = {"tests_source": tests or None}
        if self.validation_limits is not None:
            kwargs["limits"] = self.validation_limits
        report = self.validator(code, kind, **kwargs)
        self.observer.validation(report)
        return report

    def _sample(self, prompt: Prompt, sampling: Sampling, seed: int, task_name: str,
                detector_task: str) -> SampleResult:
        start = time.perf_counter()
        messages: tuple[ChatMessage, ...] = prompt.messages
        transcript: list[dict[str, Any]] = [{"role": m.role, "content": m.content} for m in messages]
        calls = prompt_tokens = completion_tokens = 0
        report: ValidationReport | None = None
        code = tests = ""
        rounds = 0
        for round_index in range(sampling.max_repair_rounds + 1):
            # a different seed per round, so that a repair is not the same draw again
            round_seed = seed + 7919 * round_index
            reply: Completion = self.backend.chat(messages, sampling.params(round_seed, round_index))
            calls += 1
            prompt_tokens += reply.prompt_tokens
            completion_tokens += reply.completion_tokens
            self.observer.llm_call(reply.seconds, reply.prompt_tokens, reply.completion_tokens)
            # An endpoint that ignores max_tokens may send megabytes; extraction reads ~150 kB/s.
            text = reply.text if len(reply.text) <= MAX_REPLY_CHARS else reply.text[:MAX_REPLY_CHARS]
            extracted = extract_code(text, prompt.kind)
            # What is validated is exactly what is stored: bounded, and never empty (an answer
            # without a python block is stored as its text, which then fails to parse).
            code = (extracted.code or text or "# (empty answer)")[:MAX_CODE_CHARS]
            tests = extracted.tests[:MAX_CODE_CHARS]
            report = self._validate(code, prompt.kind, tests)
            transcript.append({
                "role": "assistant", "content": text, "round": round_index, "seed": round_seed,
                "temperature": sampling.round_temperature(round_index),
                "prompt_tokens": reply.prompt_tokens, "completion_tokens": reply.completion_tokens,
                "seconds": round(reply.seconds, 3), "finish_reason": reply.finish_reason,
                "python_blocks": extracted.blocks, "valid": bool(report.valid),
                "failed_stage": report.failed_stage, "errors": report.errors[:500],
            })
            rounds = round_index
            if report.valid or round_index == sampling.max_repair_rounds:
                break
            if not extracted.blocks:
                # measured with the 0.5B model: quoting "```python" back made it answer with that sentence
                errors = "- the answer had no code; start the reply with a python code block"
            else:
                errors = errors_text(report)
            messages = repair_prompt(prompt, text, errors)
            transcript.append({"role": "user", "content": messages[-1].content, "round": round_index + 1})
        assert report is not None
        seconds = time.perf_counter() - start
        record = ArtifactRecord(
            kind=prompt.kind,
            task=task_name,
            code=code,
            tests=tests or None,
            prompt=prompt.user_text,
            backend=self.info.kind,
            model_id=self.info.model,
            model_digest=self.info.digest,
            sampling=RecordSampling(temperature=sampling.temperature,
                                    repair_temperature=sampling.repair_temperature, max_tokens=sampling.max_tokens, seed=seed,
                                    repair_rounds=rounds, top_p=sampling.top_p, samples=sampling.samples),
            transcript=tuple(Message(role=t["role"], content=t["content"]) for t in transcript),
            validation=report.to_dict(),
            detector_task=detector_task or None,
            generation={
                "examples": list(prompt.examples),
                "task_text": prompt.task_text,
                "max_repair_rounds": sampling.max_repair_rounds,
                "top_k": sampling.top_k,
                "time_limit_s": sampling.time_limit_s,
                "llm_calls": calls,
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "seconds": round(seconds, 3),
                # per answer: round, seed, tokens, time, finish reason, blocks found, verdict
                "rounds": [{k: v for k, v in t.items() if k not in ("role", "content")}
                           for t in transcript if t["role"] == "assistant"],
            },
        )
        sha = self.store.put(record)
        self.observer.sample_done(prompt.kind, bool(report.valid), rounds)
        log.info("codegen sample", extra={"kind": str(prompt.kind), "sha256": sha, "valid": bool(report.valid),
                                          "rounds": rounds, "seed": seed})
        return SampleResult(seed, sha, record, report, calls, rounds, prompt_tokens, completion_tokens, seconds)

    def _run(self, prompt: Prompt, sampling: Sampling, *, task_name: str, detector_task: str) -> GenerationResult:
        start = time.perf_counter()
        samples = [self._sample(prompt, sampling, sampling.seed + i, task_name, detector_task)
                   for i in range(sampling.samples)]
        best = max(samples, key=_rank)
        result = GenerationResult(prompt.kind, best, samples, time.perf_counter() - start)
        self.observer.generation_done(prompt.kind, best.valid, result.seconds)
        return result


def transcript_json(record: ArtifactRecord) -> str:
    return json.dumps(record.transcript, ensure_ascii=False)
