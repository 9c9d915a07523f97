"""Config loading: validation errors name the field and reason; flags > env > file > defaults."""

from __future__ import annotations

from pathlib import Path

import pytest
from kit_testsvc.echo.server import SPEC, EchoConfig

from maestromotif.kit.config import ConfigError, ServiceConfig, load_config, parse_assignments
from maestromotif.kit.server import load_spec


def test_defaults_come_from_spec_ports() -> None:
    cfg = SPEC.load_config()
    assert isinstance(cfg, EchoConfig)
    assert (cfg.port, cfg.metrics_port) == (50091, 9191)
    assert cfg.greeting == "hello"


def test_bad_type_names_field_and_source() -> None:
    with pytest.raises(ConfigError) as err:
        SPEC.load_config(overrides={"port": "lots"})
    msg = str(err.value)
    assert "port" in msg and "integer" in msg and "'lots'" in msg and "flags" in msg


def test_out_of_range_names_field() -> None:
    with pytest.raises(ConfigError, match=r"port: Input should be less than or equal to 65535"):
        SPEC.load_config(overrides={"port": 70000})
    with pytest.raises(ConfigError, match=r"grace_s: .*greater than or equal to 0"):
        SPEC.load_config(overrides={"grace_s": "-1"})
    with pytest.raises(ConfigError, match=r"greeting: .*at most 64"):
        SPEC.load_config(overrides={"greeting": "x" * 65})


def test_unknown_field_is_an_error_listing_known_fields() -> None:
    with pytest.raises(ConfigError, match=r"prot: unknown field .*known fields: .*port"):
        SPEC.load_config(overrides={"prot": "1"})


def test_unknown_service_lists_available() -> None:
    with pytest.raises(ConfigError, match=r"service 'nope': unknown; available services: .*echo"):
        load_spec("nope", "kit_testsvc")


def test_bad_peer_address() -> None:
    with pytest.raises(ConfigError, match=r"reward_address must look like host:port"):
        SPEC.load_config(overrides={"reward_address": "no port here"})
    with pytest.raises(ConfigError, match=r"reward_address port must be in 1..65535"):
        SPEC.load_config(overrides={"reward_address": "localhost:99999"})
    assert SPEC.load_config(overrides={"reward_address": "reward.ns.svc:50053"}).reward_address == "reward.ns.svc:50053"


def test_precedence_flags_over_env_over_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "cfg.yaml"
    f.write_text("echo:\n  port: 6001\n  greeting: from-file\n  grace_s: 3\n")
    cfg = SPEC.load_config(config_file=f)
    assert (cfg.port, cfg.greeting, cfg.grace_s) == (6001, "from-file", 3.0)
    monkeypatch.setenv("MAESTROMOTIF_ECHO_PORT", "6002")
    monkeypatch.setenv("MAESTROMOTIF_ECHO_GREETING", "from-env")
    monkeypatch.setenv("MAESTROMOTIF_REWARD_PORT", "7777")  # another service's variable: ignored
    cfg = SPEC.load_config(config_file=f)
    assert (cfg.port, cfg.greeting, cfg.grace_s) == (6002, "from-env", 3.0)
    cfg = SPEC.load_config(config_file=f, overrides={"port": 6003})
    assert (cfg.port, cfg.greeting) == (6003, "from-env")


def test_env_error_names_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAESTROMOTIF_ECHO_MAX_MESSAGE_BYTES", "12")
    with pytest.raises(ConfigError) as err:
        SPEC.load_config()
    assert "max_message_bytes" in str(err.value)
    assert "MAESTROMOTIF_ECHO_MAX_MESSAGE_BYTES" in str(err.value)


def test_flat_file_and_file_errors(tmp_path: Path) -> None:
    flat = tmp_path / "flat.yaml"
    flat.write_text("port: 6100\nlog_level: DEBUG\n")
    assert SPEC.load_config(config_file=flat).port == 6100
    bad_level = tmp_path / "bad.yaml"
    bad_level.write_text("log_level: LOUD\n")
    with pytest.raises(ConfigError, match=r"log_level: .*'LOUD'.*config file"):
        SPEC.load_config(config_file=bad_level)
    with pytest.raises(ConfigError, match=r"cannot read"):
        SPEC.load_config(config_file=tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("port: [1, 2\n")
    with pytest.raises(ConfigError, match=r"not valid YAML"):
        SPEC.load_config(config_file=broken)
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match=r"must be a mapping"):
        SPEC.load_config(config_file=listy)


def test_auth_and_tls_pairs(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("s3cret\n")
    cfg = SPEC.load_config(overrides={"auth_token_file": str(token_file)})
    assert cfg.token() == "s3cret"
    with pytest.raises(ConfigError, match=r"mutually exclusive"):
        SPEC.load_config(overrides={"auth_token_file": str(token_file), "auth_token": "x"})
    with pytest.raises(ConfigError, match=r"auth_token_file: no such file"):
        SPEC.load_config(overrides={"auth_token_file": str(tmp_path / "nope")})
    with pytest.raises(ConfigError, match=r"tls_cert_file and tls_key_file must be set together"):
        SPEC.load_config(overrides={"tls_cert_file": str(token_file)})
    with pytest.raises(ConfigError) as err:
        SPEC.load_config(overrides={"auth_token": "   "})
    assert "auth_token is empty" in str(err.value)


def test_secret_value_never_in_error_message() -> None:
    with pytest.raises(ConfigError) as err:
        SPEC.load_config(overrides={"auth_token": "topsecret", "port": -1})
    assert "topsecret" not in str(err.value)


def test_complex_field_override_parses_json() -> None:
    class ListConfig(ServiceConfig):
        skills: list[int] = [0, 1]

    cfg = load_config(ListConfig, "lister", overrides={"skills": "[2, 3]"})
    assert cfg.skills == [2, 3]
    with pytest.raises(ConfigError, match=r"skills: expected JSON"):
        load_config(ListConfig, "lister", overrides={"skills": "[2,"})


def test_parse_assignments() -> None:
    assert parse_assignments(["a=1", "b=x=y", "c="]) == {"a": "1", "b": "x=y", "c": ""}
    with pytest.raises(ConfigError, match=r"expected field=value"):
        parse_assignments(["novalue"])


def test_misspelt_env_variable_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAESTROMOTIF_ECHO_PROT", "1")
    with pytest.raises(ConfigError, match=r"environment MAESTROMOTIF_ECHO_PROT: unknown field 'prot'"):
        SPEC.load_config()
