from maestromotif.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Strategy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STRATEGY_DEFAULT: _ClassVar[Strategy]
    COMPARE: _ClassVar[Strategy]
    SCORE: _ClassVar[Strategy]

class Label(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FIRST: _ClassVar[Label]
    SECOND: _ClassVar[Label]
    TIE: _ClassVar[Label]
    UNPARSED: _ClassVar[Label]

class JobState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STATE_UNSPECIFIED: _ClassVar[JobState]
    RUNNING: _ClassVar[JobState]
    SUCCEEDED: _ClassVar[JobState]
    FAILED: _ClassVar[JobState]
    WAITING_FOR_BACKEND: _ClassVar[JobState]
STRATEGY_DEFAULT: Strategy
COMPARE: Strategy
SCORE: Strategy
FIRST: Label
SECOND: Label
TIE: Label
UNPARSED: Label
JOB_STATE_UNSPECIFIED: JobState
RUNNING: JobState
SUCCEEDED: JobState
FAILED: JobState
WAITING_FOR_BACKEND: JobState

class Transition(_message.Message):
    __slots__ = ("previous_message", "current_message", "stats_before", "stats_after")
    PREVIOUS_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    CURRENT_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    STATS_BEFORE_FIELD_NUMBER: _ClassVar[int]
    STATS_AFTER_FIELD_NUMBER: _ClassVar[int]
    previous_message: str
    current_message: str
    stats_before: _common_pb2.GameStats
    stats_after: _common_pb2.GameStats
    def __init__(self, previous_message: _Optional[str] = ..., current_message: _Optional[str] = ..., stats_before: _Optional[_Union[_common_pb2.GameStats, _Mapping]] = ..., stats_after: _Optional[_Union[_common_pb2.GameStats, _Mapping]] = ...) -> None: ...

class Pair(_message.Message):
    __slots__ = ("pair_id", "first", "second")
    PAIR_ID_FIELD_NUMBER: _ClassVar[int]
    FIRST_FIELD_NUMBER: _ClassVar[int]
    SECOND_FIELD_NUMBER: _ClassVar[int]
    pair_id: str
    first: Transition
    second: Transition
    def __init__(self, pair_id: _Optional[str] = ..., first: _Optional[_Union[Transition, _Mapping]] = ..., second: _Optional[_Union[Transition, _Mapping]] = ...) -> None: ...

class AnnotatePairsRequest(_message.Message):
    __slots__ = ("skill", "pairs", "strategy")
    SKILL_FIELD_NUMBER: _ClassVar[int]
    PAIRS_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    skill: _common_pb2.Skill
    pairs: _containers.RepeatedCompositeFieldContainer[Pair]
    strategy: Strategy
    def __init__(self, skill: _Optional[_Union[_common_pb2.Skill, str]] = ..., pairs: _Optional[_Iterable[_Union[Pair, _Mapping]]] = ..., strategy: _Optional[_Union[Strategy, str]] = ...) -> None: ...

class Annotation(_message.Message):
    __slots__ = ("pair_id", "skill", "label", "raw_text", "first_score", "second_score")
    PAIR_ID_FIELD_NUMBER: _ClassVar[int]
    SKILL_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    RAW_TEXT_FIELD_NUMBER: _ClassVar[int]
    FIRST_SCORE_FIELD_NUMBER: _ClassVar[int]
    SECOND_SCORE_FIELD_NUMBER: _ClassVar[int]
    pair_id: str
    skill: _common_pb2.Skill
    label: Label
    raw_text: str
    first_score: float
    second_score: float
    def __init__(self, pair_id: _Optional[str] = ..., skill: _Optional[_Union[_common_pb2.Skill, str]] = ..., label: _Optional[_Union[Label, str]] = ..., raw_text: _Optional[str] = ..., first_score: _Optional[float] = ..., second_score: _Optional[float] = ...) -> None: ...

class AnnotatePairsResponse(_message.Message):
    __slots__ = ("annotations", "model")
    ANNOTATIONS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    annotations: _containers.RepeatedCompositeFieldContainer[Annotation]
    model: str
    def __init__(self, annotations: _Optional[_Iterable[_Union[Annotation, _Mapping]]] = ..., model: _Optional[str] = ...) -> None: ...

class StartJobRequest(_message.Message):
    __slots__ = ("pairs_dir", "skills", "shard_index", "num_shards", "labels_dir", "strategy")
    PAIRS_DIR_FIELD_NUMBER: _ClassVar[int]
    SKILLS_FIELD_NUMBER: _ClassVar[int]
    SHARD_INDEX_FIELD_NUMBER: _ClassVar[int]
    NUM_SHARDS_FIELD_NUMBER: _ClassVar[int]
    LABELS_DIR_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    pairs_dir: str
    skills: _containers.RepeatedScalarFieldContainer[_common_pb2.Skill]
    shard_index: int
    num_shards: int
    labels_dir: str
    strategy: Strategy
    def __init__(self, pairs_dir: _Optional[str] = ..., skills: _Optional[_Iterable[_Union[_common_pb2.Skill, str]]] = ..., shard_index: _Optional[int] = ..., num_shards: _Optional[int] = ..., labels_dir: _Optional[str] = ..., strategy: _Optional[_Union[Strategy, str]] = ...) -> None: ...

class GetJobStatusRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListJobsResponse(_message.Message):
    __slots__ = ("jobs",)
    JOBS_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[JobStatus]
    def __init__(self, jobs: _Optional[_Iterable[_Union[JobStatus, _Mapping]]] = ...) -> None: ...

class SkillProgress(_message.Message):
    __slots__ = ("skill", "total", "done", "label_counts")
    SKILL_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    LABEL_COUNTS_FIELD_NUMBER: _ClassVar[int]
    skill: _common_pb2.Skill
    total: int
    done: int
    label_counts: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, skill: _Optional[_Union[_common_pb2.Skill, str]] = ..., total: _Optional[int] = ..., done: _Optional[int] = ..., label_counts: _Optional[_Iterable[int]] = ...) -> None: ...

class JobStatus(_message.Message):
    __slots__ = ("job_id", "state", "progress", "pairs_per_second", "error")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    PAIRS_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    state: JobState
    progress: _containers.RepeatedCompositeFieldContainer[SkillProgress]
    pairs_per_second: float
    error: str
    def __init__(self, job_id: _Optional[str] = ..., state: _Optional[_Union[JobState, str]] = ..., progress: _Optional[_Iterable[_Union[SkillProgress, _Mapping]]] = ..., pairs_per_second: _Optional[float] = ..., error: _Optional[str] = ...) -> None: ...
