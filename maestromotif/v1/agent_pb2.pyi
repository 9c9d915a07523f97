from maestromotif.v1 import common_pb2 as _common_pb2
from maestromotif.v1 import codegen_pb2 as _codegen_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TaskSelector(_message.Message):
    __slots__ = ("task_name", "artifact_sha256", "detector_task")
    TASK_NAME_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_SHA256_FIELD_NUMBER: _ClassVar[int]
    DETECTOR_TASK_FIELD_NUMBER: _ClassVar[int]
    task_name: str
    artifact_sha256: str
    detector_task: str
    def __init__(self, task_name: _Optional[str] = ..., artifact_sha256: _Optional[str] = ..., detector_task: _Optional[str] = ...) -> None: ...

class PlayTaskRequest(_message.Message):
    __slots__ = ("task", "seed", "max_steps", "step_event_every")
    TASK_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    MAX_STEPS_FIELD_NUMBER: _ClassVar[int]
    STEP_EVENT_EVERY_FIELD_NUMBER: _ClassVar[int]
    task: TaskSelector
    seed: int
    max_steps: int
    step_event_every: int
    def __init__(self, task: _Optional[_Union[TaskSelector, _Mapping]] = ..., seed: _Optional[int] = ..., max_steps: _Optional[int] = ..., step_event_every: _Optional[int] = ...) -> None: ...

class StepEvent(_message.Message):
    __slots__ = ("step", "turn", "action", "skill", "message", "depth", "dungeon_number")
    STEP_FIELD_NUMBER: _ClassVar[int]
    TURN_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    SKILL_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    DEPTH_FIELD_NUMBER: _ClassVar[int]
    DUNGEON_NUMBER_FIELD_NUMBER: _ClassVar[int]
    step: int
    turn: int
    action: int
    skill: _common_pb2.Skill
    message: str
    depth: int
    dungeon_number: int
    def __init__(self, step: _Optional[int] = ..., turn: _Optional[int] = ..., action: _Optional[int] = ..., skill: _Optional[_Union[_common_pb2.Skill, str]] = ..., message: _Optional[str] = ..., depth: _Optional[int] = ..., dungeon_number: _Optional[int] = ...) -> None: ...

class SkillSwitchEvent(_message.Message):
    __slots__ = ("step", "from_skill", "to_skill")
    STEP_FIELD_NUMBER: _ClassVar[int]
    FROM_SKILL_FIELD_NUMBER: _ClassVar[int]
    TO_SKILL_FIELD_NUMBER: _ClassVar[int]
    step: int
    from_skill: _common_pb2.Skill
    to_skill: _common_pb2.Skill
    def __init__(self, step: _Optional[int] = ..., from_skill: _Optional[_Union[_common_pb2.Skill, str]] = ..., to_skill: _Optional[_Union[_common_pb2.Skill, str]] = ...) -> None: ...

class EpisodeEndEvent(_message.Message):
    __slots__ = ("steps", "success", "count", "reason", "error", "skill_steps")
    STEPS_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    SKILL_STEPS_FIELD_NUMBER: _ClassVar[int]
    steps: int
    success: bool
    count: float
    reason: str
    error: str
    skill_steps: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, steps: _Optional[int] = ..., success: _Optional[bool] = ..., count: _Optional[float] = ..., reason: _Optional[str] = ..., error: _Optional[str] = ..., skill_steps: _Optional[_Iterable[int]] = ...) -> None: ...

class PlayEvent(_message.Message):
    __slots__ = ("step", "skill_switch", "end")
    STEP_FIELD_NUMBER: _ClassVar[int]
    SKILL_SWITCH_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    step: StepEvent
    skill_switch: SkillSwitchEvent
    end: EpisodeEndEvent
    def __init__(self, step: _Optional[_Union[StepEvent, _Mapping]] = ..., skill_switch: _Optional[_Union[SkillSwitchEvent, _Mapping]] = ..., end: _Optional[_Union[EpisodeEndEvent, _Mapping]] = ...) -> None: ...

class EvaluateRequest(_message.Message):
    __slots__ = ("task", "episodes", "seed", "max_steps")
    TASK_FIELD_NUMBER: _ClassVar[int]
    EPISODES_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    MAX_STEPS_FIELD_NUMBER: _ClassVar[int]
    task: TaskSelector
    episodes: int
    seed: int
    max_steps: int
    def __init__(self, task: _Optional[_Union[TaskSelector, _Mapping]] = ..., episodes: _Optional[int] = ..., seed: _Optional[int] = ..., max_steps: _Optional[int] = ...) -> None: ...

class EvaluateResponse(_message.Message):
    __slots__ = ("episodes", "success_rate", "success_ci_low", "success_ci_high", "mean_count", "count_stderr", "policy_errors", "policy_version")
    EPISODES_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_RATE_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_CI_LOW_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_CI_HIGH_FIELD_NUMBER: _ClassVar[int]
    MEAN_COUNT_FIELD_NUMBER: _ClassVar[int]
    COUNT_STDERR_FIELD_NUMBER: _ClassVar[int]
    POLICY_ERRORS_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    episodes: int
    success_rate: float
    success_ci_low: float
    success_ci_high: float
    mean_count: float
    count_stderr: float
    policy_errors: int
    policy_version: int
    def __init__(self, episodes: _Optional[int] = ..., success_rate: _Optional[float] = ..., success_ci_low: _Optional[float] = ..., success_ci_high: _Optional[float] = ..., mean_count: _Optional[float] = ..., count_stderr: _Optional[float] = ..., policy_errors: _Optional[int] = ..., policy_version: _Optional[int] = ...) -> None: ...
