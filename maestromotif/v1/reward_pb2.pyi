from maestromotif.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ScoreRequest(_message.Message):
    __slots__ = ("count", "skills", "messages", "stat_changes", "message_counts")
    COUNT_FIELD_NUMBER: _ClassVar[int]
    SKILLS_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    STAT_CHANGES_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_COUNTS_FIELD_NUMBER: _ClassVar[int]
    count: int
    skills: bytes
    messages: bytes
    stat_changes: bytes
    message_counts: bytes
    def __init__(self, count: _Optional[int] = ..., skills: _Optional[bytes] = ..., messages: _Optional[bytes] = ..., stat_changes: _Optional[bytes] = ..., message_counts: _Optional[bytes] = ...) -> None: ...

class ScoreResponse(_message.Message):
    __slots__ = ("model_version", "raw_rewards", "shaped_rewards", "skill_rewards", "cache_hits")
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    RAW_REWARDS_FIELD_NUMBER: _ClassVar[int]
    SHAPED_REWARDS_FIELD_NUMBER: _ClassVar[int]
    SKILL_REWARDS_FIELD_NUMBER: _ClassVar[int]
    CACHE_HITS_FIELD_NUMBER: _ClassVar[int]
    model_version: str
    raw_rewards: bytes
    shaped_rewards: bytes
    skill_rewards: bytes
    cache_hits: int
    def __init__(self, model_version: _Optional[str] = ..., raw_rewards: _Optional[bytes] = ..., shaped_rewards: _Optional[bytes] = ..., skill_rewards: _Optional[bytes] = ..., cache_hits: _Optional[int] = ...) -> None: ...

class GetModelInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SkillModelInfo(_message.Message):
    __slots__ = ("skill", "bundle_version", "mean", "std", "threshold", "num_parameters")
    SKILL_FIELD_NUMBER: _ClassVar[int]
    BUNDLE_VERSION_FIELD_NUMBER: _ClassVar[int]
    MEAN_FIELD_NUMBER: _ClassVar[int]
    STD_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    NUM_PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    skill: _common_pb2.Skill
    bundle_version: str
    mean: float
    std: float
    threshold: float
    num_parameters: int
    def __init__(self, skill: _Optional[_Union[_common_pb2.Skill, str]] = ..., bundle_version: _Optional[str] = ..., mean: _Optional[float] = ..., std: _Optional[float] = ..., threshold: _Optional[float] = ..., num_parameters: _Optional[int] = ...) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("model_version", "skills", "scale", "count_exponent", "device", "max_batch_size")
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    SKILLS_FIELD_NUMBER: _ClassVar[int]
    SCALE_FIELD_NUMBER: _ClassVar[int]
    COUNT_EXPONENT_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    model_version: str
    skills: _containers.RepeatedCompositeFieldContainer[SkillModelInfo]
    scale: float
    count_exponent: float
    device: str
    max_batch_size: int
    def __init__(self, model_version: _Optional[str] = ..., skills: _Optional[_Iterable[_Union[SkillModelInfo, _Mapping]]] = ..., scale: _Optional[float] = ..., count_exponent: _Optional[float] = ..., device: _Optional[str] = ..., max_batch_size: _Optional[int] = ...) -> None: ...
