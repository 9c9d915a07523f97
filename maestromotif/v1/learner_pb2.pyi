from maestromotif.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ObservationSpec(_message.Message):
    __slots__ = ("crop_size", "message_length", "stats_length", "num_actions")
    CROP_SIZE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_LENGTH_FIELD_NUMBER: _ClassVar[int]
    STATS_LENGTH_FIELD_NUMBER: _ClassVar[int]
    NUM_ACTIONS_FIELD_NUMBER: _ClassVar[int]
    crop_size: int
    message_length: int
    stats_length: int
    num_actions: int
    def __init__(self, crop_size: _Optional[int] = ..., message_length: _Optional[int] = ..., stats_length: _Optional[int] = ..., num_actions: _Optional[int] = ...) -> None: ...

class RegisterActorRequest(_message.Message):
    __slots__ = ("actor_name", "num_envs", "version")
    ACTOR_NAME_FIELD_NUMBER: _ClassVar[int]
    NUM_ENVS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    actor_name: str
    num_envs: int
    version: str
    def __init__(self, actor_name: _Optional[str] = ..., num_envs: _Optional[int] = ..., version: _Optional[str] = ...) -> None: ...

class RegisterActorResponse(_message.Message):
    __slots__ = ("actor_id", "spec", "policy_version", "max_envs_per_actor")
    ACTOR_ID_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    MAX_ENVS_PER_ACTOR_FIELD_NUMBER: _ClassVar[int]
    actor_id: str
    spec: ObservationSpec
    policy_version: int
    max_envs_per_actor: int
    def __init__(self, actor_id: _Optional[str] = ..., spec: _Optional[_Union[ObservationSpec, _Mapping]] = ..., policy_version: _Optional[int] = ..., max_envs_per_actor: _Optional[int] = ...) -> None: ...

class EnvStepBatch(_message.Message):
    __slots__ = ("actor_id", "sequence", "num_envs", "tty_chars", "tty_colors", "messages", "stats", "skills", "message_counts", "stat_changes", "rewards", "dones", "time_outs", "finished_episodes", "competence")
    ACTOR_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    NUM_ENVS_FIELD_NUMBER: _ClassVar[int]
    TTY_CHARS_FIELD_NUMBER: _ClassVar[int]
    TTY_COLORS_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    STATS_FIELD_NUMBER: _ClassVar[int]
    SKILLS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_COUNTS_FIELD_NUMBER: _ClassVar[int]
    STAT_CHANGES_FIELD_NUMBER: _ClassVar[int]
    REWARDS_FIELD_NUMBER: _ClassVar[int]
    DONES_FIELD_NUMBER: _ClassVar[int]
    TIME_OUTS_FIELD_NUMBER: _ClassVar[int]
    FINISHED_EPISODES_FIELD_NUMBER: _ClassVar[int]
    COMPETENCE_FIELD_NUMBER: _ClassVar[int]
    actor_id: str
    sequence: int
    num_envs: int
    tty_chars: bytes
    tty_colors: bytes
    messages: bytes
    stats: bytes
    skills: bytes
    message_counts: bytes
    stat_changes: bytes
    rewards: bytes
    dones: bytes
    time_outs: bytes
    finished_episodes: _containers.RepeatedCompositeFieldContainer[EpisodeSummary]
    competence: bytes
    def __init__(self, actor_id: _Optional[str] = ..., sequence: _Optional[int] = ..., num_envs: _Optional[int] = ..., tty_chars: _Optional[bytes] = ..., tty_colors: _Optional[bytes] = ..., messages: _Optional[bytes] = ..., stats: _Optional[bytes] = ..., skills: _Optional[bytes] = ..., message_counts: _Optional[bytes] = ..., stat_changes: _Optional[bytes] = ..., rewards: _Optional[bytes] = ..., dones: _Optional[bytes] = ..., time_outs: _Optional[bytes] = ..., finished_episodes: _Optional[_Iterable[_Union[EpisodeSummary, _Mapping]]] = ..., competence: _Optional[bytes] = ...) -> None: ...

class EpisodeSummary(_message.Message):
    __slots__ = ("env_index", "steps", "env_return", "skill_steps", "max_depth")
    ENV_INDEX_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    ENV_RETURN_FIELD_NUMBER: _ClassVar[int]
    SKILL_STEPS_FIELD_NUMBER: _ClassVar[int]
    MAX_DEPTH_FIELD_NUMBER: _ClassVar[int]
    env_index: int
    steps: int
    env_return: float
    skill_steps: _containers.RepeatedScalarFieldContainer[int]
    max_depth: int
    def __init__(self, env_index: _Optional[int] = ..., steps: _Optional[int] = ..., env_return: _Optional[float] = ..., skill_steps: _Optional[_Iterable[int]] = ..., max_depth: _Optional[int] = ...) -> None: ...

class ActionBatch(_message.Message):
    __slots__ = ("sequence", "actions", "policy_version")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    ACTIONS_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    actions: bytes
    policy_version: int
    def __init__(self, sequence: _Optional[int] = ..., actions: _Optional[bytes] = ..., policy_version: _Optional[int] = ...) -> None: ...

class GetStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class LearnerStatus(_message.Message):
    __slots__ = ("mode", "env_steps", "samples_trained", "policy_version", "connected_actors", "connected_envs", "mean_policy_lag", "samples_per_second", "losses", "skill_returns", "last_checkpoint", "skill_runs", "skill_competence", "skill_competent_runs")
    class LossesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class SkillReturnsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class SkillRunsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class SkillCompetenceEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class SkillCompetentRunsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    MODE_FIELD_NUMBER: _ClassVar[int]
    ENV_STEPS_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_TRAINED_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    CONNECTED_ACTORS_FIELD_NUMBER: _ClassVar[int]
    CONNECTED_ENVS_FIELD_NUMBER: _ClassVar[int]
    MEAN_POLICY_LAG_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    LOSSES_FIELD_NUMBER: _ClassVar[int]
    SKILL_RETURNS_FIELD_NUMBER: _ClassVar[int]
    LAST_CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    SKILL_RUNS_FIELD_NUMBER: _ClassVar[int]
    SKILL_COMPETENCE_FIELD_NUMBER: _ClassVar[int]
    SKILL_COMPETENT_RUNS_FIELD_NUMBER: _ClassVar[int]
    mode: str
    env_steps: int
    samples_trained: int
    policy_version: int
    connected_actors: int
    connected_envs: int
    mean_policy_lag: float
    samples_per_second: float
    losses: _containers.ScalarMap[str, float]
    skill_returns: _containers.ScalarMap[str, float]
    last_checkpoint: str
    skill_runs: _containers.ScalarMap[str, int]
    skill_competence: _containers.ScalarMap[str, float]
    skill_competent_runs: _containers.ScalarMap[str, int]
    def __init__(self, mode: _Optional[str] = ..., env_steps: _Optional[int] = ..., samples_trained: _Optional[int] = ..., policy_version: _Optional[int] = ..., connected_actors: _Optional[int] = ..., connected_envs: _Optional[int] = ..., mean_policy_lag: _Optional[float] = ..., samples_per_second: _Optional[float] = ..., losses: _Optional[_Mapping[str, float]] = ..., skill_returns: _Optional[_Mapping[str, float]] = ..., last_checkpoint: _Optional[str] = ..., skill_runs: _Optional[_Mapping[str, int]] = ..., skill_competence: _Optional[_Mapping[str, float]] = ..., skill_competent_runs: _Optional[_Mapping[str, int]] = ...) -> None: ...
