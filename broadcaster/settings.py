"""One frozen, typed Settings object with a section per subsystem.

Sources, later wins: defaults < TOML file < ``LOA_SECTION__KEY`` environment variables
< ``--set section.key=value`` on the command line. Unknown sections or keys are an
error that names the key and where it came from. docs/operations.md lists every
setting; a test keeps that list complete.
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from audio.settings import AudioSettings
from loa.choices import one_of
from loa.errors import ConfigError

ENV_PREFIX = "LOA_"


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HttpSettings(Section):
    host: str = Field("127.0.0.1", description="address the web server binds")
    port: Annotated[int, Field(ge=0, le=65535)] = Field(8080, description="web server port")
    max_body_bytes: Annotated[int, Field(ge=1024)] = Field(
        1024 * 1024, description="largest JSON request body"
    )
    public_url: str = Field("", description="URL printed for users; empty = http://host:port")
    trusted_proxies: tuple[str, ...] = Field(
        (),
        description="addresses or networks of reverse proxies whose X-Forwarded-For is "
        "believed (empty = none: the client address is the connection's)",
    )
    tls_cert: str = Field("", description="certificate (PEM) to serve HTTPS without a proxy")
    tls_key: str = Field("", description="private key (PEM) of http.tls_cert")

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _networks(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = tuple(v.strip() for v in value.split(",") if v.strip())
        for v in value:
            try:
                ipaddress.ip_network(v, strict=False)
            except ValueError:
                raise ValueError(
                    f"{v!r} is not an address or network (10.0.0.1, 10.0.0.0/8)"
                ) from None
        return value


class DbSettings(Section):
    path: str = Field("loa-data/loa.db", description="SQLite file (WAL mode)")
    busy_timeout_ms: Annotated[int, Field(ge=0)] = Field(5000, description="SQLite busy timeout")


class StorageSettings(Section):
    media_dir: str = Field("loa-data/media", description="where encoded media files live")


class MqttSettings(Section):
    host: str = Field("127.0.0.1", description="MQTT broker host")
    port: Annotated[int, Field(ge=1, le=65535)] = Field(1883, description="MQTT broker port")
    username: str = Field("", description="controller's MQTT user name (empty = anonymous)")
    password: str = Field("", description="controller's MQTT password")
    client_id: str = Field("loa-controller", description="controller's MQTT client id")
    keepalive_s: Annotated[int, Field(ge=5, le=3600)] = Field(30, description="MQTT keepalive")
    backoff_min_s: Annotated[float, Field(gt=0)] = Field(0.2, description="first reconnect wait")
    backoff_max_s: Annotated[float, Field(gt=0)] = Field(10.0, description="reconnect wait cap")
    publish_timeout_s: Annotated[float, Field(gt=0)] = Field(
        10.0, description="give up a publish after this long without a broker"
    )
    qos: Annotated[int, one_of(0, 1)] = Field(1, description="QoS for audio frames: 0 or 1")


class BrokerSettings(Section):
    mode: Literal["auto", "mosquitto", "amqtt", "external"] = Field(
        "auto",
        description="auto = spawn mosquitto if installed, else the embedded amqtt broker; "
        "external = use mqtt.host/port as given",
    )
    mosquitto: str = Field("", description="mosquitto binary; empty = PATH")
    port: Annotated[int, Field(ge=0, le=65535)] = Field(
        0, description="port for a spawned broker; 0 = a free loopback port"
    )
    tls_port: Annotated[int, Field(ge=0, le=65535)] = Field(
        0,
        description="also listen with TLS here (a spawned mosquitto; certificates from a "
        "generated demo CA in security.broker_auth_dir/tls); 0 = no TLS listener",
    )
    public_urls: tuple[str, ...] = Field(
        (),
        description="broker URLs written into speakers' provisioning files, most preferred "
        "first (mqtts://host:port, mqtt://host:port); empty = the broker Loa uses (TLS first)",
    )

    @field_validator("public_urls", mode="before")
    @classmethod
    def _urls(cls, value: Any) -> Any:
        if isinstance(value, str):  # from the environment or --set: comma-separated
            value = tuple(u.strip() for u in value.split(",") if u.strip())
        for url in value:
            if not re.fullmatch(r"mqtts?://[A-Za-z0-9.\-\[\]:]+:\d{1,5}", str(url)):
                raise ValueError(f"{url!r} is not mqtt://host:port or mqtts://host:port")
        return value


class StreamSettings(Section):
    lead_ms: Annotated[int, Field(ge=50, le=60_000)] = Field(
        1500,
        description="normal/priority audio is sent this long before it must play "
        "(the speakers' jitter buffer)",
    )
    chunk_ms: Annotated[int, Field(ge=100, le=10_000)] = Field(
        2000,
        description="audio per frame for normal/priority bulletins (2 s keeps framing "
        "and MQTT overhead under 5 % at 24 kb/s)",
    )
    first_chunk_ms: Annotated[int, Field(ge=20, le=10_000)] = Field(
        200, description="a smaller first frame so sound starts sooner"
    )
    urgent_lead_ms: Annotated[int, Field(ge=50, le=60_000)] = Field(
        500, description="lead (jitter buffer) for live and emergency audio"
    )
    emergency_lead_ms: Annotated[int, Field(ge=50, le=60_000)] = Field(
        400,
        description="lead for emergency alerts: speed over a deep jitter buffer (a late "
        "first frame costs one frame, never the alert)",
    )
    urgent_chunk_ms: Annotated[int, Field(ge=20, le=10_000)] = Field(
        500, description="audio per frame for live and emergency audio"
    )
    urgent_first_chunk_ms: Annotated[int, Field(ge=20, le=10_000)] = Field(
        100, description="first frame of live and emergency audio"
    )
    report_grace_s: Annotated[float, Field(ge=0)] = Field(
        5.0, description="wait this long after a stream ends for proof-of-play reports"
    )
    live_chunk_ms: Annotated[int, Field(ge=20, le=2000)] = Field(
        200, description="audio per frame for live microphone and relay audio"
    )
    live_lead_ms: Annotated[int, Field(ge=100, le=10_000)] = Field(
        400,
        description="live audio plays this long after it reaches the controller "
        "(the speakers' jitter buffer for live and relay)",
    )
    live_idle_timeout_s: Annotated[float, Field(gt=0, le=120)] = Field(
        5.0, description="a live source that sends nothing for this long is taken off air"
    )
    live_max_s: Annotated[float, Field(gt=0, le=86_400)] = Field(
        3600.0, description="longest live broadcast; it is taken off air after this"
    )
    relay_retry_max_s: Annotated[float, Field(gt=0, le=600)] = Field(
        30.0, description="longest wait between attempts to reach a relay stream again"
    )
    outage_grace_s: Annotated[float, Field(ge=0, le=3600)] = Field(
        60.0,
        description="a stream rides out a broker outage this long (frames still ahead of "
        "their time are sent when it is back; speakers keep the stream open meanwhile); "
        "a longer outage ends it as interrupted",
    )

    def timing(self, urgent: bool, emergency: bool = False) -> tuple[int, int, int]:
        """(lead, chunk, first chunk) in ms for normal or urgent (live, emergency) audio."""
        if emergency:
            return self.emergency_lead_ms, self.urgent_chunk_ms, self.urgent_first_chunk_ms
        if urgent:
            return self.urgent_lead_ms, self.urgent_chunk_ms, self.urgent_first_chunk_ms
        return self.lead_ms, self.chunk_ms, self.first_chunk_ms


class SchedulerSettings(Section):
    timezone: str = Field("Asia/Ho_Chi_Minh", description="default time zone of a commune")
    grace_s: Annotated[float, Field(ge=1, le=3600)] = Field(
        300.0,
        description="a firing missed by less than this (a restart, a stalled loop) still "
        "plays, marked late; older ones are marked missed",
    )
    tick_s: Annotated[float, Field(ge=0.2, le=300)] = Field(
        15.0, description="how often due firings are reconciled against the database"
    )
    horizon_h: Annotated[float, Field(ge=1, le=24 * 14)] = Field(
        48.0, description="firings are written as rows this far ahead"
    )
    same_priority: Literal["queue", "preempt"] = Field(
        "queue",
        description="when a firing meets a broadcast of the same class on the same "
        "speakers: wait for it to end (queue) or take over (preempt)",
    )
    clock_offset_s: Annotated[float, Field(ge=-366 * 86400, le=366 * 86400)] = Field(
        0.0,
        description="run the controller's clock this many seconds ahead (rehearsing a "
        "schedule, restart tests); speakers follow it through clock sync",
    )
    queue_max_s: Annotated[float, Field(ge=0, le=7200)] = Field(
        1800.0, description="a queued firing that cannot start within this is skipped"
    )
    prefetch_s: Annotated[float, Field(ge=0, le=86400)] = Field(
        600.0,
        description="scheduled audio is pushed to its speakers this long before it plays, "
        "so a bad link at the time still plays it (0: stream at the time instead)",
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value


class SecuritySettings(Section):
    signing_key: str = Field(
        "loa-data/signing.key", description="controller's Ed25519 private key (created if absent)"
    )
    trusted_keys: tuple[str, ...] = Field(
        (),
        description="other controller public keys (64 hex) speakers should trust, announced "
        "in their signed config: a key rotation lists the next (then the previous) key here",
    )
    session_ttl_h: Annotated[float, Field(gt=0, le=24 * 30)] = Field(
        12.0, description="a login session lasts this long"
    )
    login_max_failures: Annotated[int, Field(ge=1, le=100)] = Field(
        5,
        description="wrong passwords in a row, from one address for one user name, before "
        "that address must wait (1 s, doubling) before trying that name again",
    )
    lockout_s: Annotated[float, Field(ge=1, le=86400)] = Field(
        900.0, description="longest wait of that back-off (the owner elsewhere never waits)"
    )
    hash_workers: Annotated[int, Field(ge=1, le=32)] = Field(
        1, description="password hashes computed at once (worker threads, off the event loop)"
    )
    hash_queue: Annotated[int, Field(ge=0, le=10_000)] = Field(
        16, description="logins waiting for a hash worker; beyond this a login answers 429"
    )
    login_per_min: Annotated[int, Field(ge=1, le=10000)] = Field(
        20, description="login attempts allowed per client address per minute"
    )
    alerts_per_min: Annotated[int, Field(ge=1, le=1000)] = Field(
        10, description="alerts one account may trigger per minute"
    )
    cookie_secure: Literal["auto", "always", "never"] = Field(
        "auto", description="mark the session cookie Secure: auto = when the request is HTTPS"
    )
    broker_auth_dir: str = Field(
        "loa-data/broker",
        description="where Loa writes Mosquitto's password file and ACL (broker access)",
    )
    broker_reload: str = Field(
        "",
        description="command that makes an external broker re-read those files, e.g. "
        "'systemctl reload mosquitto' (a broker Loa spawns is sent SIGHUP itself)",
    )

    @field_validator("trusted_keys")
    @classmethod
    def _hex_keys(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for k in value:
            if not re.fullmatch(r"[0-9a-f]{64}", k):
                raise ValueError(f"{k!r} is not a public key (64 lowercase hex characters)")
        if len(value) > 3:
            raise ValueError("at most 3 other keys")
        return value


class FleetSettings(Section):
    heartbeat_s: Annotated[float, Field(ge=0.2, le=300)] = Field(
        10.0, description="the controller marks itself alive this often (uptime 'unknown')"
    )
    check_s: Annotated[float, Field(ge=0.2, le=300)] = Field(
        5.0, description="alarm rules are evaluated this often"
    )
    silent_s: Annotated[float, Field(ge=1, le=86400)] = Field(
        90.0, description="a speaker offline, or silent (no heartbeat), this long raises an alarm"
    )
    temperature_max_c: Annotated[float, Field(ge=0, le=150)] = Field(
        70.0, description="a speaker hotter than this raises an alarm"
    )
    weak_rssi_dbm: Annotated[int, Field(ge=-150, le=0)] = Field(
        -105, description="a signal weaker than this (dBm) for fleet.weak_signal_s alarms"
    )
    weak_signal_s: Annotated[float, Field(ge=0, le=86400)] = Field(
        600.0, description="how long a weak signal lasts before it raises an alarm"
    )
    delivery_window_h: Annotated[float, Field(gt=0, le=24 * 31)] = Field(
        24.0, description="a programme or alert a speaker failed in this window raises an alarm"
    )
    telemetry_keep_days: Annotated[float, Field(gt=0, le=3650)] = Field(
        31.0, description="telemetry older than this is deleted"
    )
    telemetry_full_days: Annotated[float, Field(gt=0, le=3650)] = Field(
        2.0, description="telemetry older than this is thinned to one report per speaker per hour"
    )
    telemetry_min_interval_s: Annotated[float, Field(ge=0, le=3600)] = Field(
        1.0, description="telemetry a speaker sends faster than this is dropped (a flood)"
    )
    command_timeout_s: Annotated[float, Field(ge=1, le=86400)] = Field(
        30.0, description="a command not acknowledged within this is marked timed out"
    )
    commands_per_min: Annotated[int, Field(ge=1, le=100000)] = Field(
        120, description="device commands one account may send per minute"
    )
    webhook_url: str = Field(
        "", description="alarms raised and cleared are POSTed here as JSON (empty = off)"
    )
    firmware_timeout_s: Annotated[float, Field(ge=1, le=86400)] = Field(
        300.0, description="a device that has not reported on a firmware offer by then fails"
    )
    firmware_max_bytes: Annotated[int, Field(ge=1024, le=64 * 1024 * 1024)] = Field(
        16 * 1024 * 1024, description="largest firmware image accepted"
    )


class RelaySettings(Section):
    allowed_hosts: tuple[str, ...] = Field(
        (),
        description="relay sources allowed although they resolve to loopback, link-local "
        "or private addresses (host names, addresses or networks); others are refused",
    )

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(v.strip().lower() for v in value.split(",") if v.strip())
        return value


class AlertSettings(Section):
    default_expiry_min: Annotated[int, Field(ge=1, le=7 * 24 * 60)] = Field(
        360, description="an alert without an expiry ends after this many minutes"
    )
    cap_auto_trigger: bool = Field(
        False,
        description="sound imported CAP alerts at once (Actual, Immediate, Severe or "
        "Extreme) instead of holding them for an operator's confirm",
    )
    cap_max_bytes: Annotated[int, Field(ge=1024, le=10 * 1024 * 1024)] = Field(
        262144, description="largest CAP document accepted"
    )
    cap_test_zone: str = Field(
        "",
        description="zone that Test and Exercise CAP alerts sound on (empty = they never sound)",
    )
    loudness_lufs: Annotated[float, Field(ge=-30, le=-5)] = Field(
        -14.0,
        description="EBU R128 loudness alerts (siren, message, all-clear) are rendered to, "
        "LUFS; never below audio.loudness_lufs (an alert is never quieter than the news)",
    )


class Settings(Section):
    http: HttpSettings = HttpSettings()
    db: DbSettings = DbSettings()
    storage: StorageSettings = StorageSettings()
    mqtt: MqttSettings = MqttSettings()
    broker: BrokerSettings = BrokerSettings()
    stream: StreamSettings = StreamSettings()
    scheduler: SchedulerSettings = SchedulerSettings()
    security: SecuritySettings = SecuritySettings()
    audio: AudioSettings = AudioSettings()
    alerts: AlertSettings = AlertSettings()
    fleet: FleetSettings = FleetSettings()
    relay: RelaySettings = RelaySettings()

    @model_validator(mode="after")
    def _alerts_not_quieter(self) -> Settings:
        if self.alerts.loudness_lufs < self.audio.loudness_lufs:
            raise ValueError(
                f"alerts.loudness_lufs ({self.alerts.loudness_lufs}) must not be below "
                f"audio.loudness_lufs ({self.audio.loudness_lufs}): an alert is never "
                "quieter than the bulletins"
            )
        return self

    def replace(self, **sections: dict[str, Any]) -> Settings:
        """A copy with some keys of some sections changed (validated again)."""
        data = self.model_dump()
        for name, values in sections.items():
            data.setdefault(name, {}).update(values)
        return build(data, source="replace()")


def _origin(sources: dict[tuple[str, str], str], loc: tuple[int | str, ...]) -> str:
    if len(loc) >= 2:
        return sources.get((str(loc[0]), str(loc[1])), "defaults")
    return "settings"


def _sections() -> dict[str, type[BaseModel]]:
    out: dict[str, type[BaseModel]] = {}
    for name, info in Settings.model_fields.items():
        assert isinstance(info.annotation, type)
        out[name] = info.annotation
    return out


def _merge(
    into: dict[str, dict[str, Any]],
    data: Mapping[str, Any],
    source: str,
    sources: dict[tuple[str, str], str] | None = None,
) -> None:
    sections = _sections()
    for section, values in data.items():
        if section not in sections:
            raise ConfigError(f"unknown settings section [{section}] (from {source})")
        if not isinstance(values, Mapping):
            raise ConfigError(f"settings section [{section}] must be a table (from {source})")
        fields = sections[section].model_fields
        for key, value in values.items():
            if key not in fields:
                raise ConfigError(f"unknown setting {section}.{key} (from {source})")
            into.setdefault(section, {})[key] = value
            if sources is not None:
                sources[(section, key)] = source


def build(
    data: Mapping[str, Any],
    source: str = "settings",
    sources: dict[tuple[str, str], str] | None = None,
) -> Settings:
    merged: dict[str, dict[str, Any]] = {}
    _merge(merged, data, source)
    try:
        return Settings.model_validate(merged)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        origin = _origin(sources, err["loc"]) if sources is not None else source
        raise ConfigError(f"setting {where}: {err['msg']} (from {origin})") from None


def load(
    toml_path: Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Sequence[str] = (),
) -> Settings:
    """Build Settings from a TOML file, the environment and ``section.key=value`` strings."""
    merged: dict[str, dict[str, Any]] = {}
    sources: dict[tuple[str, str], str] = {}
    if toml_path is not None:
        try:
            data = tomllib.loads(toml_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"settings file {toml_path} does not exist") from None
        except UnicodeDecodeError:
            raise ConfigError(f"settings file {toml_path} is not UTF-8 text") from None
        except OSError as exc:
            raise ConfigError(f"settings file {toml_path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"settings file {toml_path} is not valid TOML: {exc}") from None
        _merge(merged, data, str(toml_path), sources)
    for name, value in sorted((env or {}).items()):
        if not name.startswith(ENV_PREFIX) or name == "LOA_CONFIG":
            continue
        section, sep, key = name[len(ENV_PREFIX) :].lower().partition("__")
        if not sep or not key:
            raise ConfigError(f"environment variable {name}: use LOA_SECTION__KEY")
        _merge(merged, {section: {key: value}}, f"environment {name}", sources)
    for item in overrides:
        dotted, sep, value = item.partition("=")
        section, dot, key = dotted.strip().partition(".")
        if not sep or not dot or not key:
            raise ConfigError(f"--set {item!r}: use section.key=value")
        _merge(merged, {section: {key: value}}, f"--set {item}", sources)
    return build(merged, "settings", sources)


#: Settings that name a file or folder: made absolute once, at start-up (``absolute``).
PATH_SETTINGS = (
    ("db", "path"),
    ("storage", "media_dir"),
    ("security", "signing_key"),
    ("security", "broker_auth_dir"),
)
#: Settings that name a program: made absolute only when written as a path (``./x``,
#: ``bin/x``); a bare name is looked up on PATH.
PROGRAM_SETTINGS = (("broker", "mosquitto"), ("audio", "ffmpeg"))


def absolute(settings: Settings, base: Path | None = None) -> Settings:
    """Every path setting resolved against ``base`` (the working directory at start-up),
    so a child process started in another folder (the broker) or a later ``chdir``
    still finds the same files."""
    root = (base or Path.cwd()).resolve()
    changes: dict[str, dict[str, Any]] = {}
    for section, key in PATH_SETTINGS:
        value = getattr(getattr(settings, section), key)
        if value:
            changes.setdefault(section, {})[key] = str(root / Path(value).expanduser())
    for section, key in PROGRAM_SETTINGS:
        value = getattr(getattr(settings, section), key)
        if value and "/" in value:
            changes.setdefault(section, {})[key] = str(root / Path(value).expanduser())
    return settings.replace(**changes) if changes else settings


def describe() -> list[tuple[str, str, str]]:
    """(dotted name, default, description) for every setting, for docs and the CLI."""
    rows = []
    for section, model in _sections().items():
        for key, info in model.model_fields.items():
            rows.append((f"{section}.{key}", repr(info.default), info.description or ""))
    return rows
