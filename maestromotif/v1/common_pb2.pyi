from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class Skill(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DISCOVERER: _ClassVar[Skill]
    DESCENDER: _ClassVar[Skill]
    ASCENDER: _ClassVar[Skill]
    WORSHIPPER: _ClassVar[Skill]
    MERCHANT: _ClassVar[Skill]
DISCOVERER: Skill
DESCENDER: Skill
ASCENDER: Skill
WORSHIPPER: Skill
MERCHANT: Skill

class GameStats(_message.Message):
    __slots__ = ("depth", "gold", "hp", "hp_max", "xp_level", "hunger")
    DEPTH_FIELD_NUMBER: _ClassVar[int]
    GOLD_FIELD_NUMBER: _ClassVar[int]
    HP_FIELD_NUMBER: _ClassVar[int]
    HP_MAX_FIELD_NUMBER: _ClassVar[int]
    XP_LEVEL_FIELD_NUMBER: _ClassVar[int]
    HUNGER_FIELD_NUMBER: _ClassVar[int]
    depth: int
    gold: int
    hp: int
    hp_max: int
    xp_level: int
    hunger: int
    def __init__(self, depth: _Optional[int] = ..., gold: _Optional[int] = ..., hp: _Optional[int] = ..., hp_max: _Optional[int] = ..., xp_level: _Optional[int] = ..., hunger: _Optional[int] = ...) -> None: ...

class ServerInfo(_message.Message):
    __slots__ = ("service", "version", "model_version", "details")
    class DetailsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    service: str
    version: str
    model_version: str
    details: _containers.ScalarMap[str, str]
    def __init__(self, service: _Optional[str] = ..., version: _Optional[str] = ..., model_version: _Optional[str] = ..., details: _Optional[_Mapping[str, str]] = ...) -> None: ...

class GetServerInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
