from maestromotif.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ArtifactKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ARTIFACT_KIND_UNSPECIFIED: _ClassVar[ArtifactKind]
    SKILL_FUNCTIONS: _ClassVar[ArtifactKind]
    TRAINING_POLICY: _ClassVar[ArtifactKind]
    TASK_POLICY: _ClassVar[ArtifactKind]
ARTIFACT_KIND_UNSPECIFIED: ArtifactKind
SKILL_FUNCTIONS: ArtifactKind
TRAINING_POLICY: ArtifactKind
TASK_POLICY: ArtifactKind

class SamplingSettings(_message.Message):
    __slots__ = ("temperature", "max_tokens", "seed", "max_repair_rounds", "samples")
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    MAX_REPAIR_ROUNDS_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    temperature: float
    max_tokens: int
    seed: int
    max_repair_rounds: int
    samples: int
    def __init__(self, temperature: _Optional[float] = ..., max_tokens: _Optional[int] = ..., seed: _Optional[int] = ..., max_repair_rounds: _Optional[int] = ..., samples: _Optional[int] = ...) -> None: ...

class GenerateSkillFunctionsRequest(_message.Message):
    __slots__ = ("skills", "sampling")
    SKILLS_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_FIELD_NUMBER: _ClassVar[int]
    skills: _containers.RepeatedScalarFieldContainer[_common_pb2.Skill]
    sampling: SamplingSettings
    def __init__(self, skills: _Optional[_Iterable[_Union[_common_pb2.Skill, str]]] = ..., sampling: _Optional[_Union[SamplingSettings, _Mapping]] = ...) -> None: ...

class GenerateTrainingPolicyRequest(_message.Message):
    __slots__ = ("sampling",)
    SAMPLING_FIELD_NUMBER: _ClassVar[int]
    sampling: SamplingSettings
    def __init__(self, sampling: _Optional[_Union[SamplingSettings, _Mapping]] = ...) -> None: ...

class ComposeTaskRequest(_message.Message):
    __slots__ = ("prompt", "task_name", "sampling", "detector_task")
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    TASK_NAME_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_FIELD_NUMBER: _ClassVar[int]
    DETECTOR_TASK_FIELD_NUMBER: _ClassVar[int]
    prompt: str
    task_name: str
    sampling: SamplingSettings
    detector_task: str
    def __init__(self, prompt: _Optional[str] = ..., task_name: _Optional[str] = ..., sampling: _Optional[_Union[SamplingSettings, _Mapping]] = ..., detector_task: _Optional[str] = ...) -> None: ...

class ValidationCheck(_message.Message):
    __slots__ = ("name", "passed", "detail")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PASSED_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    name: str
    passed: bool
    detail: str
    def __init__(self, name: _Optional[str] = ..., passed: _Optional[bool] = ..., detail: _Optional[str] = ...) -> None: ...

class ValidationReport(_message.Message):
    __slots__ = ("valid", "checks", "sandbox_output")
    VALID_FIELD_NUMBER: _ClassVar[int]
    CHECKS_FIELD_NUMBER: _ClassVar[int]
    SANDBOX_OUTPUT_FIELD_NUMBER: _ClassVar[int]
    valid: bool
    checks: _containers.RepeatedCompositeFieldContainer[ValidationCheck]
    sandbox_output: str
    def __init__(self, valid: _Optional[bool] = ..., checks: _Optional[_Iterable[_Union[ValidationCheck, _Mapping]]] = ..., sandbox_output: _Optional[str] = ...) -> None: ...

class Artifact(_message.Message):
    __slots__ = ("sha256", "kind", "code", "validation", "prompt", "model", "sampling", "created_unix", "transcript_json", "task_name", "detector_task", "model_digest", "backend", "tests")
    SHA256_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_FIELD_NUMBER: _ClassVar[int]
    CREATED_UNIX_FIELD_NUMBER: _ClassVar[int]
    TRANSCRIPT_JSON_FIELD_NUMBER: _ClassVar[int]
    TASK_NAME_FIELD_NUMBER: _ClassVar[int]
    DETECTOR_TASK_FIELD_NUMBER: _ClassVar[int]
    MODEL_DIGEST_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    TESTS_FIELD_NUMBER: _ClassVar[int]
    sha256: str
    kind: ArtifactKind
    code: str
    validation: ValidationReport
    prompt: str
    model: str
    sampling: SamplingSettings
    created_unix: int
    transcript_json: str
    task_name: str
    detector_task: str
    model_digest: str
    backend: str
    tests: str
    def __init__(self, sha256: _Optional[str] = ..., kind: _Optional[_Union[ArtifactKind, str]] = ..., code: _Optional[str] = ..., validation: _Optional[_Union[ValidationReport, _Mapping]] = ..., prompt: _Optional[str] = ..., model: _Optional[str] = ..., sampling: _Optional[_Union[SamplingSettings, _Mapping]] = ..., created_unix: _Optional[int] = ..., transcript_json: _Optional[str] = ..., task_name: _Optional[str] = ..., detector_task: _Optional[str] = ..., model_digest: _Optional[str] = ..., backend: _Optional[str] = ..., tests: _Optional[str] = ...) -> None: ...

class GenerationResult(_message.Message):
    __slots__ = ("artifact", "attempts", "sample_sha256", "repair_rounds")
    ARTIFACT_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_SHA256_FIELD_NUMBER: _ClassVar[int]
    REPAIR_ROUNDS_FIELD_NUMBER: _ClassVar[int]
    artifact: Artifact
    attempts: int
    sample_sha256: _containers.RepeatedScalarFieldContainer[str]
    repair_rounds: int
    def __init__(self, artifact: _Optional[_Union[Artifact, _Mapping]] = ..., attempts: _Optional[int] = ..., sample_sha256: _Optional[_Iterable[str]] = ..., repair_rounds: _Optional[int] = ...) -> None: ...

class ValidateCodeRequest(_message.Message):
    __slots__ = ("code", "kind")
    CODE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    code: str
    kind: ArtifactKind
    def __init__(self, code: _Optional[str] = ..., kind: _Optional[_Union[ArtifactKind, str]] = ...) -> None: ...

class GetArtifactRequest(_message.Message):
    __slots__ = ("sha256",)
    SHA256_FIELD_NUMBER: _ClassVar[int]
    sha256: str
    def __init__(self, sha256: _Optional[str] = ...) -> None: ...
