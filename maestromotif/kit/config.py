"""Validated service configuration: flags > environment > YAML file > defaults.

Every service defines a subclass of :class:`ServiceConfig` with its own fields and
loads it with :func:`load_config`. Environment variables are named
``MAESTROMOTIF_<SERVICE>_<FIELD>`` (upper case, e.g. ``MAESTROMOTIF_REWARD_PORT``).
A wrong value raises :class:`ConfigError`, whose message names the field, the
source the value came from and the reason.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict

ENV_ROOT = "MAESTROMOTIF"
# Hard ceiling of gRPC message sizes: gRPC itself cannot go past 2 GiB - 1.
MAX_MESSAGE_BYTES_CEILING = 2**31 - 1
_SERVICE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_ADDRESS = re.compile(r"^(?:[A-Za-z0-9_.\-]+|\[[0-9A-Fa-f:.]+\]):\d{1,5}$|^(?:unix|dns|ipv4|ipv6):.+$")


class ConfigError(ValueError):
    """A configuration value is missing or wrong. The message names the field and why."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or [message]


def check_address(value: str, field: str = "address") -> str:
    """Validate a ``host:port`` (or ``unix:``/``dns:`` URI) gRPC target."""
    if not isinstance(value, str) or not _ADDRESS.match(value):
        raise ValueError(f"{field} must look like host:port, got {value!r}")
    if ":" in value and not value.startswith(("unix:", "dns:", "ipv4:", "ipv6:")):
        port = int(value.rsplit(":", 1)[1])
        if not 1 <= port <= 65535:
            raise ValueError(f"{field} port must be in 1..65535, got {port}")
    return value


class ServiceConfig(BaseSettings):
    """Fields every service shares. Subclass it and add the service's own fields.

    Fields named ``<peer>_address`` (e.g. ``reward_address``) hold the address of
    a peer service; ``maestromotif up`` fills them in for the services it starts.
    """

    # extra="forbid": a misspelt key in a file or a --set flag is an error, not ignored.
    model_config = SettingsConfigDict(extra="forbid", validate_default=True, validate_assignment=True)

    host: str = Field("127.0.0.1", description="Interface the gRPC server binds; 0.0.0.0 in a container.")
    port: int = Field(0, ge=0, le=65535, description="gRPC port; 0 picks a free port.")
    metrics_enabled: bool = Field(True, description="Serve Prometheus /metrics over HTTP.")
    metrics_host: str = Field("127.0.0.1", description="Interface of the /metrics HTTP server.")
    metrics_port: int = Field(0, ge=0, le=65535, description="Port of /metrics; 0 picks a free port.")
    max_message_bytes: int = Field(
        16 * 1024 * 1024,
        ge=1024,
        le=MAX_MESSAGE_BYTES_CEILING,
        description="Largest gRPC message accepted or sent (bytes); larger ones get RESOURCE_EXHAUSTED.",
    )
    max_workers: int = Field(
        32, ge=1, le=1024, description="Handler threads; each open stream holds one for its lifetime."
    )
    max_concurrent_rpcs: int | None = Field(
        None, ge=1, description="Calls beyond this many in flight are refused with RESOURCE_EXHAUSTED."
    )
    grace_s: float = Field(
        10.0, ge=0.0, le=3600.0, description="On SIGTERM, in-flight calls get this long to finish."
    )
    shutdown_delay_s: float = Field(
        0.0,
        ge=0.0,
        le=60.0,
        description="Time between reporting NOT_SERVING and refusing new calls (lets load balancers react).",
    )
    keepalive_time_s: float = Field(30.0, gt=0.0, le=7200.0, description="Server keepalive ping interval.")
    keepalive_timeout_s: float = Field(10.0, gt=0.0, le=600.0, description="Ping ack timeout.")
    auth_token: SecretStr | None = Field(
        None, description="Bearer token every call must carry (health and reflection are exempt)."
    )
    auth_token_file: Path | None = Field(None, description="File holding the bearer token (e.g. a mounted Secret).")
    tls_cert_file: Path | None = Field(None, description="PEM certificate chain of this server; enables TLS.")
    tls_key_file: Path | None = Field(None, description="PEM private key matching tls_cert_file.")
    tls_client_ca_file: Path | None = Field(
        None, description="PEM CA bundle; when set, clients must present a certificate it signed (mTLS)."
    )
    peer_tls_ca_file: Path | None = Field(
        None, description="PEM CA bundle used to verify peers; when set, calls to peers use TLS."
    )
    peer_tls_cert_file: Path | None = Field(
        None, description="PEM client certificate this service presents to peers that require mTLS."
    )
    peer_tls_key_file: Path | None = Field(None, description="PEM private key matching peer_tls_cert_file.")
    peer_tls_server_name: str | None = Field(
        None, description="Name to check in peers' certificates instead of the host in <peer>_address."
    )
    peer_deadline_s: float = Field(30.0, gt=0.0, le=86400.0, description="Default deadline of calls to peers.")
    max_call_s: float = Field(
        120.0, gt=0.0, le=86400.0,
        description="Longest a call may wait on server-side work; bounds calls whose client set no deadline.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Log threshold.")
    log_format: Literal["auto", "json", "text"] = Field(
        "auto", description="auto: JSON unless stderr is a terminal."
    )

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings):  # type: ignore[no-untyped-def,override]
        # load_config merges file, environment and flags itself (with the per-service
        # prefix and source tracking), so only explicit values reach the model.
        return (init_settings,)

    @model_validator(mode="after")
    def _check_pairs(self) -> ServiceConfig:
        if self.auth_token is not None and self.auth_token_file is not None:
            raise ValueError("auth_token and auth_token_file are mutually exclusive; set one")
        if self.auth_token is not None and not self.auth_token.get_secret_value().strip():
            raise ValueError("auth_token is empty")
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file must be set together")
        if self.tls_client_ca_file is not None and self.tls_cert_file is None:
            raise ValueError("tls_client_ca_file needs tls_cert_file and tls_key_file (mTLS needs TLS)")
        if (self.peer_tls_cert_file is None) != (self.peer_tls_key_file is None):
            raise ValueError("peer_tls_cert_file and peer_tls_key_file must be set together")
        if self.peer_tls_cert_file is not None and self.peer_tls_ca_file is None:
            raise ValueError("peer_tls_cert_file needs peer_tls_ca_file (a client certificate is only sent over TLS)")
        for name in ("auth_token_file", "tls_cert_file", "tls_key_file", "tls_client_ca_file", "peer_tls_ca_file",
                     "peer_tls_cert_file", "peer_tls_key_file"):
            path = getattr(self, name)
            if path is not None and not Path(path).is_file():
                raise ValueError(f"{name}: no such file: {path}")
        for name in type(self).model_fields:
            if name.endswith("_address"):
                value = getattr(self, name)
                if value is not None:
                    check_address(value, name)
        if self.port != 0 and self.metrics_enabled and self.port == self.metrics_port and self.host == self.metrics_host:
            raise ValueError(f"port and metrics_port are both {self.port}")
        return self

    def token(self) -> str | None:
        """The bearer token servers require, read from ``auth_token`` or ``auth_token_file``."""
        if self.auth_token is not None:
            return self.auth_token.get_secret_value().strip()
        if self.auth_token_file is not None:
            text = Path(self.auth_token_file).read_text(encoding="utf-8").strip()
            if not text:
                raise ConfigError(f"auth_token_file: {self.auth_token_file} is empty")
            return text
        return None

    @property
    def tls_enabled(self) -> bool:
        return self.tls_cert_file is not None


def instance_name(env: Mapping[str, str] | None = None) -> str:
    """This replica's name: ``POD_NAME`` (Kubernetes downward API) if set, else the hostname."""
    env = os.environ if env is None else env
    return (env.get("POD_NAME") or "").strip() or socket.gethostname()


def instance_seed(name: str) -> int:
    """A stable seed in ``[0, 2**31 - 1)`` from a replica name (same name, same seed; names differ, seeds differ).

    SHA-256 rather than ``hash()``: Python salts string hashes per process.
    """
    if not name:
        raise ValueError("instance_seed: empty name")
    return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "big") % (2**31 - 1)


def env_prefix(service: str) -> str:
    """``MAESTROMOTIF_<SERVICE>_`` for a service name such as ``reward``."""
    return f"{ENV_ROOT}_{service.upper()}_"


def _is_complex(annotation: Any) -> bool:
    """True for list/dict/set/tuple fields, whose string values are parsed as JSON."""
    origin = typing.get_origin(annotation)
    if origin in (list, dict, set, tuple, Mapping):
        return True
    if origin is not None:  # Optional[...] / Union
        return any(_is_complex(a) for a in typing.get_args(annotation) if a is not type(None))
    return annotation in (list, dict, set, tuple)


def _read_yaml(path: Path, section: str | None) -> dict[str, Any]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"config file {path}: cannot read ({exc.strerror or exc})") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path}: not valid YAML ({exc})") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: top level must be a mapping of field: value")
    # A file may hold one section per service ({reward: {...}, learner: {...}}) or flat fields.
    if section is not None and isinstance(data.get(section), dict):
        data = data[section]
    return {str(k): v for k, v in data.items()}


# Fields that hold a secret itself (not a path to one). A command line is readable by every user
# of the machine (ps, /proc/<pid>/cmdline) and ends up in shell history, so --set refuses them.
SECRET_FIELDS = frozenset({"auth_token"})


def parse_assignments(items: list[str] | tuple[str, ...]) -> dict[str, str]:
    """Parse ``field=value`` flags (``--set``) into a mapping; secrets are refused (see SECRET_FIELDS)."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set {item.partition('=')[0]!r}: expected field=value")
        if key.rsplit(".", 1)[-1] in SECRET_FIELDS:
            field = key.rsplit(".", 1)[-1]
            raise ConfigError(
                f"--set {key}: a secret on the command line is visible to every user of this machine (ps); "
                f"put it in a file and set {field}_file=PATH, or use the environment variable "
                f"{ENV_ROOT}_<SERVICE>_{field.upper()}"
            )
        out[key] = value
    return out


def load_config(
    config_cls: type[ServiceConfig],
    service: str,
    *,
    config_file: Path | str | None = None,
    overrides: Mapping[str, Any] | None = None,
    defaults: Mapping[str, Any] | None = None,
) -> ServiceConfig:
    """Build a validated config for ``service``.

    Precedence, highest first: ``overrides`` (command-line flags) > environment
    ``MAESTROMOTIF_<SERVICE>_<FIELD>`` > ``config_file`` (YAML; either flat or
    with a ``<service>:`` section) > ``defaults`` (e.g. the service's default
    ports) > the class defaults. Raises :class:`ConfigError` on any wrong value.
    """
    if not _SERVICE_NAME.match(service):
        raise ConfigError(f"service name {service!r}: must match {_SERVICE_NAME.pattern}")
    fields = config_cls.model_fields
    values: dict[str, Any] = {}
    origin: dict[str, str] = {}

    def put(layer: Mapping[str, Any], label: str | None) -> None:
        for key, value in layer.items():
            if key not in fields:
                known = ", ".join(sorted(fields))
                where = label or "defaults"
                raise ConfigError(f"{key}: unknown field (from {where}); known fields: {known}")
            values[key] = value
            origin[key] = label or "defaults"

    if defaults:
        put(defaults, None)
    if config_file is not None:
        put(_read_yaml(Path(config_file), service), f"config file {config_file}")
    prefix = env_prefix(service)
    # A misspelt variable must not be ignored silently, just like a misspelt file key.
    stray = sorted(
        k for k in os.environ if k.upper().startswith(prefix) and k[len(prefix) :].lower() not in fields
    )
    if stray:
        known = ", ".join(prefix + f.upper() for f in sorted(fields))
        raise ConfigError(f"environment {stray[0]}: unknown field {stray[0][len(prefix):].lower()!r}; known: {known}")
    env = EnvSettingsSource(config_cls, case_sensitive=False, env_prefix=prefix)
    try:
        env_values = env()
    except Exception as exc:  # pydantic-settings fails on malformed JSON of complex fields
        raise ConfigError(f"environment {prefix}*: {exc}") from exc
    for key, value in env_values.items():
        values[key] = value
        origin[key] = f"environment {prefix}{key.upper()}"
    if overrides:
        parsed: dict[str, Any] = {}
        for key, value in overrides.items():
            if key in fields and isinstance(value, str) and _is_complex(fields[key].annotation):
                try:
                    value = json.loads(value)
                except json.JSONDecodeError as exc:
                    raise ConfigError(f"{key}: expected JSON for this field, got {value!r} ({exc.msg})") from exc
            parsed[key] = value
        put(parsed, "flags")
    try:
        return config_cls(**values)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"]) or "config"
            src = origin.get(str(err["loc"][0]), "defaults") if err["loc"] else "combined values"
            got = err.get("input")
            shown = "" if loc == "config" or "secret" in loc or "token" in loc else f" (got {got!r})"
            msg = err["msg"].removeprefix("Value error, ")
            problems.append(f"{loc}: {msg}{shown} [from {src}]")
        raise ConfigError(f"invalid {service} configuration: " + "; ".join(problems), problems) from None
