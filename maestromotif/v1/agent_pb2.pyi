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
    __slots__ = ("task", "seed", "max_steps", "step_event_every", "include_screen")
    TASK_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    MAX_STEPS_FIELD_NUMBER: _ClassVar[int]
    STEP_EVENT_EVERY_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_SCREEN_FIELD_NUMBER: _ClassVar[int]
    task: TaskSelector
    seed: int
    max_steps: int
    step_event_every: int
    include_screen: bool
    def __init__(self, task: _Optional[_Union[TaskSelector, _Mapping]] = ..., seed: _Optional[int] = ..., max_steps: _Optional[int] = ..., step_event_every: _Optional[int] = ..., include_screen: _Optional[bool] = ...) -> None: ...

class TaskProgress(_message.Message):
    __slots__ = ("legacy_success", "strict_success", "legacy_count", "strict_count", "precondition_seen")
    LEGACY_SUCCESS_FIELD_NUMBER: _ClassVar[int]
    STRICT_SUCCESS_FIELD_NUMBER: _ClassVar[int]
    LEGACY_COUNT_FIELD_NUMBER: _ClassVar[int]
    STRICT_COUNT_FIELD_NUMBER: _ClassVar[int]
    PRECONDITION_SEEN_FIELD_NUMBER: _ClassVar[int]
    legacy_success: bool
    strict_success: bool
    legacy_count: int
    strict_count: int
    precondition_seen: bool
    def __init__(self, legacy_success: _Optional[bool] = ..., strict_success: _Optional[bool] = ..., legacy_count: _Optional[int] = ..., strict_count: _Optional[int] = ..., precondition_seen: _Optional[bool] = ...) -> None: ...

class StepEvent(_message.Message):
    __slots__ = ("step", "turn", "action", "skill", "message", "depth", "dungeon_number", "screen", "progress")
    STEP_FIELD_NUMBER: _ClassVar[int]
    TURN_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    SKILL_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    DEPTH_FIELD_NUMBER: _ClassVar[int]
    DUNGEON_NUMBER_FIELD_NUMBER: _ClassVar[int]
    SCREEN_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    step: int
    turn: int
    action: int
    skill: _common_pb2.Skill
    message: str
    depth: int
    dungeon_number: int
    screen: str
    progress: TaskProgress
    def __init__(self, step: _Optional[int] = ..., turn: _Optional[int] = ..., action: _Optional[int] = ..., skill: _Optional[_Union[_common_pb2.Skill, str]] = ..., message: _Optional[str] = ..., depth: _Optional[int] = ..., dungeon_number: _Optional[int] = ..., screen: _Optional[str] = ..., progress: _Optional[_Union[TaskProgress, _Mapping]] = ...) -> None: ...

class GameMessageEvent(_message.Message):
    __slots__ = ("step", "text")
    STEP_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    step: int
    text: str
    def __init__(self, step: _Optional[int] = ..., text: _Optional[str] = ...) -> None: ...

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
    __slots__ = ("steps", "success", "count", "reason", "error", "skill_steps", "progress", "policy_version")
    STEPS_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    SKILL_STEPS_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    steps: int
    success: bool
    count: float
    reason: str
    error: str
    skill_steps: _containers.RepeatedScalarFieldContainer[int]
    progress: TaskProgress
    policy_version: int
    def __init__(self, steps: _Optional[int] = ..., success: _Optional[bool] = ..., count: _Optional[float] = ..., reason: _Optional[str] = ..., error: _Optional[str] = ..., skill_steps: _Optional[_Iterable[int]] = ..., progress: _Optional[_Union[TaskProgress, _Mapping]] = ..., policy_version: _Optional[int] = ...) -> None: ...

class PlayEvent(_message.Message):
    __slots__ = ("step", "skill_switch", "end", "message")
    STEP_FIELD_NUMBER: _ClassVar[int]
    SKILL_SWITCH_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    step: StepEvent
    skill_switch: SkillSwitchEvent
    end: EpisodeEndEvent
    message: GameMessageEvent
    def __init__(self, step: _Optional[_Union[StepEvent, _Mapping]] = ..., skill_switch: _Optional[_Union[SkillSwitchEvent, _Mapping]] = ..., end: _Optional[_Union[EpisodeEndEvent, _Mapping]] = ..., message: _Optional[_Union[GameMessageEvent, _Mapping]] = ...) -> None: ...

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
    __slots__ = ("episodes", "success_rate", "success_ci_low", "success_ci_high", "mean_count", "count_stderr", "policy_errors", "policy_version", "strict_success_rate", "strict_success_ci_low", "strict_success_ci_high", "strict_mean_count", "strict_count_stderr", "metric", "mean_steps")
    EPISODES_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_RATE_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_CI_LOW_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_CI_HIGH_FIELD_NUMBER: _ClassVar[int]
    MEAN_COUNT_FIELD_NUMBER: _ClassVar[int]
    COUNT_STDERR_FIELD_NUMBER: _ClassVar[int]
    POLICY_ERRORS_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    STRICT_SUCCESS_RATE_FIELD_NUMBER: _ClassVar[int]
    STRICT_SUCCESS_CI_LOW_FIELD_NUMBER: _ClassVar[int]
    STRICT_SUCCESS_CI_HIGH_FIELD_NUMBER: _ClassVar[int]
    STRICT_MEAN_COUNT_FIELD_NUMBER: _ClassVar[int]
    STRICT_COUNT_STDERR_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    MEAN_STEPS_FIELD_NUMBER: _ClassVar[int]
    episodes: int
    success_rate: float
    success_ci_low: float
    success_ci_high: float
    mean_count: float
    count_stderr: float
    policy_errors: int
    policy_version: int
    strict_success_rate: float
    strict_success_ci_low: float
    strict_success_ci_high: float
    strict_mean_count: float
    strict_count_stderr: float
    metric: str
    mean_steps: float
    def __init__(self, episodes: _Optional[int] = ..., success_rate: _Optional[float] = ..., success_ci_low: _Optional[float] = ..., success_ci_high: _Optional[float] = ..., mean_count: _Optional[float] = ..., count_stderr: _Optional[float] = ..., policy_errors: _Optional[int] = ..., policy_version: _Optional[int] = ..., strict_success_rate: _Optional[float] = ..., strict_success_ci_low: _Optional[float] = ..., strict_success_ci_high: _Optional[float] = ..., strict_mean_count: _Optional[float] = ..., strict_count_stderr: _Optional[float] = ..., metric: _Optional[str] = ..., mean_steps: _Optional[float] = ...) -> None: ...
