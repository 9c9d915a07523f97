"""Content-addressed store of generated code with everything needed to audit and reproduce it.

One JSON file per artifact, ``<root>/<sha256 of the code>.json``, written atomically: kind, task,
prompt, LLM backend, model id and digest, sampling settings, creation time, the whole transcript,
the LLM's tests and the validation report. Files read back are untrusted: every field is checked
(pydantic, extra fields refused), and the code's hash must match both the file name and the
recorded ``sha256``; anything else is an ``ArtifactError`` naming the file. Only artifacts whose
report says ``valid`` load into a controller.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from maestromotif.codegen import ArtifactKind
from maestromotif.codegen.validate import ValidationReport
from maestromotif.fileio import atomic_write_text

FORMAT = 1
MAX_ARTIFACT_BYTES = 8 * 1024 * 1024
MAX_CODE_CHARS = 64_000
MAX_MESSAGES = 200
SHA_RE = re.compile(r"^[0-9a-f]{64}$")


class ArtifactError(Exception):
    """An artifact is missing, corrupt, tampered with, or not allowed to load."""


def code_sha256(code: str) -> str:
    """The artifact key: hex SHA-256 of the code's UTF-8 bytes."""
    return hashlib.sha256(code.encode("utf-8")).hexdigest()


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_max_length=MAX_ARTIFACT_BYTES)


class Message(_Strict):
    """One message of the generation conversation."""

    role: Literal["system", "user", "assistant", "tool"]
    content: str


class Sampling(_Strict):
    """How the LLM was sampled."""

    temperature: float = Field(ge=0.0, le=5.0)
    repair_temperature: float | None = Field(default=None, ge=0.0, le=5.0)  # None: records from before it existed
    max_tokens: int = Field(ge=1, le=1_000_000)
    seed: int | None = None
    repair_rounds: int = Field(ge=0, le=100)  # rounds the accepted code needed (0: first answer)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    samples: int = Field(default=1, ge=1, le=100)  # samples drawn for this prompt (the best validated kept)


class ArtifactRecord(_Strict):
    """Everything stored about one piece of generated code."""

    format: Literal[1] = FORMAT
    sha256: str = ""  # filled from the code when empty
    kind: ArtifactKind
    task: str | None = Field(default=None, max_length=200)  # task name for task policies
    code: str = Field(min_length=1, max_length=MAX_CODE_CHARS)
    tests: str | None = Field(default=None, max_length=MAX_CODE_CHARS)
    prompt: str
    backend: str = Field(max_length=200)  # "embedded", "openai", "tgi", ...
    model_id: str = Field(max_length=500)
    model_digest: str = Field(max_length=200)  # e.g. the GGUF file's SHA-256
    sampling: Sampling
    created: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))
    transcript: tuple[Message, ...] = Field(default=(), max_length=MAX_MESSAGES)
    validation: dict[str, Any]
    # One of the nine tasks whose detector evaluates this policy (ComposeTask --detector-task).
    detector_task: str | None = Field(default=None, max_length=200)
    # How the generation loop got here: examples shown, per-answer seeds, tokens, times, verdicts.
    generation: dict[str, Any] = Field(default_factory=dict)

    @field_validator("validation")
    @classmethod
    def _report(cls, value: dict[str, Any]) -> dict[str, Any]:
        ValidationReport.from_dict(value)  # raises ValueError naming the problem
        return value

    @field_validator("created")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("created must carry a time zone")
        return value

    @model_validator(mode="after")
    def _hash(self) -> ArtifactRecord:
        actual = code_sha256(self.code)
        if not self.sha256:
            object.__setattr__(self, "sha256", actual)
        elif self.sha256 != actual:
            raise ValueError(f"sha256 {self.sha256[:16]}... does not match the code ({actual[:16]}...)")
        if self.kind is ArtifactKind.TASK_POLICY and not self.task:
            raise ValueError("a task policy needs its task name")
        return self

    @property
    def report(self) -> ValidationReport:
        return ValidationReport.from_dict(self.validation)

    @property
    def valid(self) -> bool:
        return bool(self.validation.get("valid"))


@dataclass(frozen=True, slots=True)
class ArtifactSummary:
    """One line of ``ArtifactStore.list()``; ``error`` is set for a file that does not load."""

    sha256: str
    path: Path
    kind: str | None = None
    task: str | None = None
    created: datetime | None = None
    valid: bool = False
    error: str | None = None


class ArtifactStore:
    """Artifacts under one folder (see the module docstring)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, sha: str) -> Path:
        if not isinstance(sha, str) or not SHA_RE.fullmatch(sha):
            raise ArtifactError(f"artifact id must be 64 lower-case hex digits, got {str(sha)[:80]!r}")
        return self.root / f"{sha}.json"

    def put(self, record: ArtifactRecord) -> str:
        """Store a record (atomically); returns its SHA-256. The same code stored twice keeps the first file."""
        if not isinstance(record, ArtifactRecord):
            raise TypeError(f"put() takes an ArtifactRecord, got {type(record).__name__}")
        path = self.path(record.sha256)
        if path.exists():
            try:
                self.get(record.sha256)
                return record.sha256
            except ArtifactError:
                pass  # a corrupt file under this name: replace it
        text = record.model_dump_json(indent=1)
        if len(text.encode("utf-8")) > MAX_ARTIFACT_BYTES:
            raise ArtifactError(f"artifact {record.sha256[:12]} would be larger than {MAX_ARTIFACT_BYTES} bytes")
        atomic_write_text(path, text + "\n")
        return record.sha256

    def get(self, sha: str) -> ArtifactRecord:
        """Read and check one artifact; ``ArtifactError`` names the file and what is wrong."""
        path = self.path(sha)
        try:
            with open(path, "rb") as handle:
                raw = handle.read(MAX_ARTIFACT_BYTES + 1)
        except FileNotFoundError:
            raise ArtifactError(f"no artifact {sha} in {self.root}") from None
        except OSError as exc:
            raise ArtifactError(f"cannot read artifact file {path}: {exc}") from None
        if len(raw) > MAX_ARTIFACT_BYTES:
            raise ArtifactError(f"artifact file {path} is larger than {MAX_ARTIFACT_BYTES} bytes")
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise ArtifactError(f"artifact file {path} is not valid JSON: {exc}") from None
        try:
            record = ArtifactRecord.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ())) or "record"
            raise ArtifactError(f"artifact file {path} is corrupt or was tampered with: {where}: {first.get('msg')}"
                                f" ({exc.error_count()} problem(s))") from None
        if record.sha256 != sha:
            raise ArtifactError(f"artifact file {path} holds code with SHA-256 {record.sha256}, not {sha} "
                                "(renamed or tampered with)")
        return record

    def clean_temp(self, min_age_s: float = 600.0) -> list[Path]:
        """Remove temp files a writer killed mid-write left (``.<sha>.json.*.tmp``), older than ``min_age_s``.

        Readers never see them (only ``<sha>.json`` is read); the age spares a writer still at work
        in another process sharing the folder. Returns what was removed.
        """
        removed: list[Path] = []
        if not self.root.is_dir():
            return removed
        now = time.time()
        for path in self.root.glob(".*.json.*.tmp"):
            with contextlib.suppress(OSError):
                if now - path.stat().st_mtime >= min_age_s:
                    path.unlink()
                    removed.append(path)
        return removed

    def list(self) -> list[ArtifactSummary]:
        """Every artifact file, oldest first; files that do not load are listed with their error."""
        out = []
        if not self.root.is_dir():
            return out
        for path in sorted(self.root.glob("*.json")):
            sha = path.stem
            try:
                record = self.get(sha)
            except ArtifactError as exc:
                out.append(ArtifactSummary(sha, path, error=str(exc)))
                continue
            out.append(ArtifactSummary(sha, path, record.kind.value, record.task, record.created, record.valid))
        return sorted(out, key=lambda s: (s.created is None, s.created or datetime.min.replace(tzinfo=timezone.utc)))

    def _validated(self, sha: str, kinds: tuple[ArtifactKind, ...]) -> ArtifactRecord:
        record = self.get(sha)
        if record.kind not in kinds:
            raise ArtifactError(f"artifact {sha[:12]} is a {record.kind.value}, not a {' or '.join(k.value for k in kinds)}")
        if not record.valid:
            failed = record.report.errors or "no verdict"
            raise ArtifactError(f"artifact {sha[:12]} did not pass validation ({failed[:200]}); refusing to load it")
        return record

    def load_policy(self, sha: str, **limits: Any) -> Any:
        """A validated policy artifact as a sandboxed policy over skills (per-call budget)."""
        from maestromotif.skills.sandbox import load_policy

        record = self._validated(sha, (ArtifactKind.TASK_POLICY, ArtifactKind.TRAINING_POLICY))
        return load_policy(record.code, name=f"{record.task or record.kind.value}@{sha[:12]}", **limits)

    def load_skill_functions(self, sha: str, **limits: Any) -> Any:
        """A validated skill-functions artifact as sandboxed initiation/termination rules."""
        from maestromotif.skills.sandbox import load_skill_functions

        record = self._validated(sha, (ArtifactKind.SKILL_FUNCTIONS,))
        return load_skill_functions(record.code, name=f"skills@{sha[:12]}", **limits)


@dataclass(frozen=True, slots=True)
class ArtifactPolicyLoader:
    """A picklable zero-argument factory of policies from artifacts, for ``controller_factory``.

    ``skill_functions``: optionally a skill-functions artifact whose initiation/termination replace
    the default rules (``ComposedPolicy``).
    """

    root: str
    policy: str
    skill_functions: str | None = None
    # The validated code, pinned by check(): content addressed, so it is exactly what was validated.
    # A file corrupted or tampered with later (a worker restarting reads it again) is then not read:
    # the last good code keeps being used. Pickled with the loader into worker processes.
    policy_code: str | None = field(default=None, repr=False)
    skill_functions_code: str | None = field(default=None, repr=False)
    policy_name: str | None = field(default=None, repr=False)

    def check(self) -> None:
        """Load once now, so a bad id or an unvalidated artifact fails before any actor starts; pin the code."""
        store = ArtifactStore(self.root)
        policy = store._validated(self.policy, (ArtifactKind.TASK_POLICY, ArtifactKind.TRAINING_POLICY))
        skills = (store._validated(self.skill_functions, (ArtifactKind.SKILL_FUNCTIONS,))
                  if self.skill_functions is not None else None)
        object.__setattr__(self, "policy_code", policy.code)  # frozen: set once, before any copy is made
        object.__setattr__(self, "policy_name", f"{policy.task or policy.kind.value}@{self.policy[:12]}")
        object.__setattr__(self, "skill_functions_code", skills.code if skills is not None else None)
        self()

    def __call__(self) -> Any:
        from maestromotif.skills.sandbox import ComposedPolicy, load_policy, load_skill_functions

        store = ArtifactStore(self.root)
        if self.policy_code is not None and code_sha256(self.policy_code) == self.policy:
            policy = load_policy(self.policy_code, name=self.policy_name or f"policy@{self.policy[:12]}")
        else:
            policy = store.load_policy(self.policy)
        if self.skill_functions is None:
            return policy
        if self.skill_functions_code is not None and code_sha256(self.skill_functions_code) == self.skill_functions:
            skills = load_skill_functions(self.skill_functions_code, name=f"skills@{self.skill_functions[:12]}")
        else:
            skills = store.load_skill_functions(self.skill_functions)
        return ComposedPolicy(policy, skills)


ARTIFACT_PREFIX = "artifact:"


def resolve_policy_spec(spec: str, root: str | Path | None) -> str | ArtifactPolicyLoader:
    """A policy setting as ``controller_factory`` takes it.

    A reference name (``"gnomish"``, ``"none"``) is returned unchanged; ``"artifact:<sha>"`` or
    ``"artifact:<policy sha>+<skill-functions sha>"`` becomes an ``ArtifactPolicyLoader`` over
    ``root``, loaded once here so that a bad id or an unvalidated artifact fails at start-up.
    """
    if not spec.startswith(ARTIFACT_PREFIX):
        return spec
    if root is None:
        raise ArtifactError(f"policy {spec[:80]!r} names an artifact, but no artifact folder is configured")
    policy, _, skills = spec[len(ARTIFACT_PREFIX):].partition("+")
    loader = ArtifactPolicyLoader(str(root), policy, skills or None)
    loader.check()
    return loader
