"""config.yaml becomes typed objects; bad values are refused with file, line, key and reason."""

from __future__ import annotations

import pytest

from ivr import config as config_mod
from ivr.config import ConfigError


def write(tmp_path, text: str):
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_shipped_config_parses_into_typed_sections(config_file, clean_env):
    cfg = config_mod.load(config_file, env={})
    assert cfg.server.port == 8080
    assert cfg.asr.endpointing.silence_after_speech_s == pytest.approx(0.7)
    assert {h.id for h in cfg.hotlines} == {"ko", "en", "zh"}
    assert cfg.hotline_for("+18005550100").language == "en"
    assert cfg.hotline_for("+19999999999").id == cfg.default_hotline == "ko"
    assert cfg.path("routing/rules.yaml") == config_file.parent / "routing/rules.yaml"


def test_environment_overrides_secrets_and_deployment_facts(config_file):
    env = {
        "TWILIO_AUTH_TOKEN": "tok-123456",
        "IVR_PUBLIC_URL": "https://hotline.example.com/",
        "REDIS_URL": "rediss://:pw@redis.example.com:6380/0",
        "IVR_API_TOKEN": "api-secret-xyz",
    }
    cfg = config_mod.load(config_file, env=env)
    assert cfg.twilio.auth_token.get_secret_value() == "tok-123456"
    assert cfg.server.public_url == "https://hotline.example.com"
    assert cfg.server.stream_base == "wss://hotline.example.com"
    assert cfg.redis.url == "rediss://:pw@redis.example.com:6380/0"
    assert cfg.api.token.get_secret_value() == "api-secret-xyz"
    # secrets never show in a repr (which is what ends up in logs and tracebacks)
    assert "tok-123456" not in repr(cfg) and "api-secret-xyz" not in repr(cfg)


def test_broken_yaml_names_file_and_line(tmp_path):
    path = write(tmp_path, "server:\n  port: 8080\n  host: [unclosed\n")
    with pytest.raises(ConfigError) as err:
        config_mod.load(path, env={})
    message = str(err.value)
    assert message.startswith(f"{path}:")
    assert "not valid YAML" in message
    assert "\n" not in message


def test_unknown_key_is_refused_with_its_line(config_file):
    text = config_file.read_text().replace("  port: 8080\n", "  port: 8080\n  prot: 9090\n")
    config_file.write_text(text)
    with pytest.raises(ConfigError) as err:
        config_mod.load(config_file, env={})
    line = text.splitlines().index("  prot: 9090") + 1
    assert str(err.value) == f"{config_file}:{line}: server.prot: unknown key (check the spelling; see README's configuration reference)"


def test_wrong_type_says_what_was_expected_and_found(config_file):
    text = config_file.read_text().replace("  port: 8080", "  port: eighty")
    config_file.write_text(text)
    with pytest.raises(ConfigError) as err:
        config_mod.load(config_file, env={})
    line = text.splitlines().index("  port: eighty") + 1
    assert str(err.value) == f"{config_file}:{line}: server.port: expected an integer, found 'eighty'"


def test_bad_environment_value_is_named_without_echoing_it(config_file):
    with pytest.raises(ConfigError) as err:
        config_mod.load(config_file, env={"REDIS_URL": "mysql://secret-pw@db"})
    message = str(err.value)
    assert message.startswith("environment REDIS_URL: redis.url: expected")
    assert "secret-pw" not in message


def test_default_hotline_must_exist(config_file):
    text = config_file.read_text().replace("default_hotline: ko", "default_hotline: fr")
    config_file.write_text(text)
    with pytest.raises(ConfigError, match="default_hotline must be one of"):
        config_mod.load(config_file, env={})


def test_thresholds_must_be_ordered(config_file):
    text = config_file.read_text().replace("reprompt: 0.25", "reprompt: 0.9")
    config_file.write_text(text)
    with pytest.raises(ConfigError, match="reprompt threshold must not exceed"):
        config_mod.load(config_file, env={})


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        config_mod.load(tmp_path / "nope.yaml", env={})
