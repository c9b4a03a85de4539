"""Settings: defaults < TOML < LOA_SECTION__KEY < --set, and every refusal names its source."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from broadcaster import settings as settings_mod
from broadcaster.settings import Settings, build, describe, load
from loa.errors import ConfigError


def write_toml(tmp_path: Path, text: str, name: str = "loa.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- precedence --------------------------------------------------------------------


def test_defaults_without_any_source():
    s = load()
    assert s == Settings()
    assert s.http.port == 8080
    assert s.http.host == "127.0.0.1"
    assert s.scheduler.timezone == "Asia/Ho_Chi_Minh"
    assert s.mqtt.qos == 1
    assert s.audio.max_upload_bytes == 50 * 1024 * 1024


def test_toml_overrides_defaults(tmp_path: Path):
    path = write_toml(
        tmp_path,
        '[http]\nport = 9000\nhost = "0.0.0.0"\n[db]\npath = "/srv/loa.db"\n'
        "[audio]\nopus_bitrate_kbps = 32\n[mqtt]\nqos = 0\n",
    )
    s = load(path)
    assert s.http.port == 9000
    assert s.http.host == "0.0.0.0"
    assert s.db.path == "/srv/loa.db"
    assert s.audio.opus_bitrate_kbps == 32
    assert s.mqtt.qos == 0
    # Untouched keys keep their defaults, even in a section the file mentions.
    assert s.http.max_body_bytes == 1024 * 1024
    assert s.db.busy_timeout_ms == 5000


def test_env_overrides_toml(tmp_path: Path):
    path = write_toml(tmp_path, '[http]\nport = 9000\nhost = "0.0.0.0"\n')
    s = load(path, env={"LOA_HTTP__PORT": "9001"})
    assert s.http.port == 9001
    assert s.http.host == "0.0.0.0"  # from the file, env did not name it


def test_set_overrides_env_and_toml(tmp_path: Path):
    path = write_toml(tmp_path, "[http]\nport = 9000\n[db]\nbusy_timeout_ms = 10\n")
    s = load(
        path,
        env={"LOA_HTTP__PORT": "9001", "LOA_DB__BUSY_TIMEOUT_MS": "20"},
        overrides=["http.port=9002"],
    )
    assert s.http.port == 9002
    assert s.db.busy_timeout_ms == 20  # env beats the file where --set is silent


def test_later_set_wins_and_values_may_contain_equals():
    s = load(overrides=["http.port=1", "http.port=2", "http.public_url=http://x/?a=b"])
    assert s.http.port == 2
    assert s.http.public_url == "http://x/?a=b"


def test_env_names_are_case_insensitive_and_foreign_vars_are_ignored():
    env = {
        "PATH": "/usr/bin",
        "HOME": "/root",
        "LOA_CONFIG": "/etc/loa.toml",  # the file location itself, not a setting
        "loa_http__port": "1234",  # not the prefix: ignored
        "LOA_Mqtt__Client_Id": "ctl-7",
        "LOA_SCHEDULER__TIMEZONE": "Asia/Bangkok",
    }
    s = load(env=env)
    assert s.http.port == 8080
    assert s.mqtt.client_id == "ctl-7"
    assert s.scheduler.timezone == "Asia/Bangkok"


def test_env_strings_are_converted_to_numbers():
    s = load(env={"LOA_MQTT__BACKOFF_MAX_S": "2.5", "LOA_AUDIO__MAX_UPLOAD_BYTES": "4096"})
    assert s.mqtt.backoff_max_s == 2.5
    assert s.audio.max_upload_bytes == 4096


@pytest.mark.parametrize(
    "item", ["mqtt.qos=0", "audio.sample_rate=16000", "audio.opus_frame_ms=40"]
)
def test_literal_int_settings_can_be_set_from_command_line(item: str):
    dotted, _, value = item.partition("=")
    section, _, key = dotted.partition(".")
    s = load(overrides=[item])
    assert getattr(getattr(s, section), key) == int(value)


def test_literal_int_settings_can_be_set_from_environment():
    assert load(env={"LOA_MQTT__QOS": "0"}).mqtt.qos == 0


# --- unknown sections and keys, per source ------------------------------------------


def test_toml_unknown_section(tmp_path: Path):
    path = write_toml(tmp_path, "[nope]\nx = 1\n")
    with pytest.raises(ConfigError) as info:
        load(path)
    assert "[nope]" in info.value.message
    assert str(path) in info.value.message


def test_toml_unknown_key(tmp_path: Path):
    path = write_toml(tmp_path, "[http]\nprot = 1\n")
    with pytest.raises(ConfigError) as info:
        load(path)
    assert "http.prot" in info.value.message
    assert str(path) in info.value.message


def test_toml_section_that_is_not_a_table(tmp_path: Path):
    path = write_toml(tmp_path, "http = 5\n")
    with pytest.raises(ConfigError) as info:
        load(path)
    assert "[http]" in info.value.message
    assert "table" in info.value.message
    assert str(path) in info.value.message


def test_env_unknown_section():
    with pytest.raises(ConfigError) as info:
        load(env={"LOA_NOPE__PORT": "1"})
    assert "[nope]" in info.value.message
    assert "environment LOA_NOPE__PORT" in info.value.message


def test_env_unknown_key():
    with pytest.raises(ConfigError) as info:
        load(env={"LOA_HTTP__PROT": "1"})
    assert "http.prot" in info.value.message
    assert "environment LOA_HTTP__PROT" in info.value.message


def test_set_unknown_section():
    with pytest.raises(ConfigError) as info:
        load(overrides=["nope.port=1"])
    assert "[nope]" in info.value.message
    assert "--set nope.port=1" in info.value.message


def test_set_unknown_key():
    with pytest.raises(ConfigError) as info:
        load(overrides=["http.prot=1"])
    assert "http.prot" in info.value.message
    assert "--set http.prot=1" in info.value.message


def test_build_unknown_key_names_its_source():
    with pytest.raises(ConfigError) as info:
        build({"mqtt": {"hots": "x"}}, source="tests")
    assert "mqtt.hots" in info.value.message
    assert "tests" in info.value.message


def test_replace_validates_again():
    s = Settings()
    assert s.replace(http={"port": 1}).http.port == 1
    assert s.http.port == 8080  # the original is untouched
    with pytest.raises(ConfigError, match=r"http\.prot"):
        s.replace(http={"prot": 1})
    with pytest.raises(ConfigError, match=r"http\.port"):
        s.replace(http={"port": 70000})


# --- wrong types and values -------------------------------------------------------


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ('[http]\nport = "eighty"\n', "http.port"),
        ("[http]\nport = 70000\n", "http.port"),
        ("[http]\nmax_body_bytes = 10\n", "http.max_body_bytes"),
        ("[http]\nhost = 5\n", "http.host"),
        ("[mqtt]\nqos = 2\n", "mqtt.qos"),
        ("[mqtt]\nkeepalive_s = 1\n", "mqtt.keepalive_s"),
        ('[broker]\nmode = "cloud"\n', "broker.mode"),
        ("[stream]\nlead_ms = [1, 2]\n", "stream.lead_ms"),
        ("[audio]\nsample_rate = 44100\n", "audio.sample_rate"),
        ("[audio]\nsilence_dbfs = 3.0\n", "audio.silence_dbfs"),
    ],
)
def test_toml_wrong_types(tmp_path: Path, toml: str, key: str):
    path = write_toml(tmp_path, toml)
    with pytest.raises(ConfigError) as info:
        load(path)
    assert info.value.message.startswith(f"setting {key}:"), info.value.message


def test_env_wrong_type():
    with pytest.raises(ConfigError, match=r"^setting http\.port:"):
        load(env={"LOA_HTTP__PORT": "eighty"})


def test_set_wrong_type():
    with pytest.raises(ConfigError, match=r"^setting db\.busy_timeout_ms:"):
        load(overrides=["db.busy_timeout_ms=-1"])


def test_set_empty_value_for_a_number():
    with pytest.raises(ConfigError, match=r"^setting http\.port:"):
        load(overrides=["http.port="])


# --- malformed sources ------------------------------------------------------------


def test_invalid_toml(tmp_path: Path):
    path = write_toml(tmp_path, "[http\nport = = 1\n")
    with pytest.raises(ConfigError) as info:
        load(path)
    assert "not valid TOML" in info.value.message
    assert str(path) in info.value.message


def test_toml_that_is_not_utf8(tmp_path: Path):
    path = tmp_path / "latin1.toml"
    path.write_bytes('[mqtt]\nclient_id = "Vé"\n'.encode("latin-1"))
    with pytest.raises(ConfigError) as info:
        load(path)
    assert str(path) in info.value.message


def test_toml_path_that_is_a_directory(tmp_path: Path):
    with pytest.raises(ConfigError) as info:
        load(tmp_path)
    assert str(tmp_path) in info.value.message


def test_missing_toml_file(tmp_path: Path):
    path = tmp_path / "absent.toml"
    with pytest.raises(ConfigError) as info:
        load(path)
    assert str(path) in info.value.message
    assert "does not exist" in info.value.message


def test_toml_with_vietnamese_text(tmp_path: Path):
    path = write_toml(tmp_path, '[mqtt]\nclient_id = "loa-xã-vị-tân"\n')
    assert load(path).mqtt.client_id == "loa-xã-vị-tân"


@pytest.mark.parametrize("name", ["LOA_FOO", "LOA_HTTP_PORT", "LOA_HTTP__", "LOA___PORT"])
def test_bad_env_names(name: str):
    with pytest.raises(ConfigError) as info:
        load(env={name: "1"})
    assert name in info.value.message


def test_bad_env_name_message_explains_the_form():
    with pytest.raises(ConfigError, match="LOA_SECTION__KEY"):
        load(env={"LOA_FOO": "1"})


@pytest.mark.parametrize("item", ["http.port", "port=1", "http.=1", "http", "=1", ""])
def test_bad_set_syntax(item: str):
    with pytest.raises(ConfigError) as info:
        load(overrides=[item])
    assert "section.key=value" in info.value.message
    assert repr(item) in info.value.message


def test_set_with_empty_section_is_refused():
    with pytest.raises(ConfigError, match="unknown settings section"):
        load(overrides=[".port=1"])


# --- time zone --------------------------------------------------------------------


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "", "../../etc/passwd", "Asia/Saigon "])
def test_unknown_time_zone(zone: str):
    with pytest.raises(ConfigError) as info:
        build({"scheduler": {"timezone": zone}})
    assert "scheduler.timezone" in info.value.message
    assert "unknown time zone" in info.value.message


def test_unknown_time_zone_from_environment():
    with pytest.raises(ConfigError, match="unknown time zone 'Asia/Hanoi_City'"):
        load(env={"LOA_SCHEDULER__TIMEZONE": "Asia/Hanoi_City"})


def test_known_time_zones():
    assert build({"scheduler": {"timezone": "Asia/Saigon"}}).scheduler.timezone == "Asia/Saigon"
    assert build({"scheduler": {"timezone": "UTC"}}).scheduler.timezone == "UTC"


# --- frozen, describe -------------------------------------------------------------


def test_settings_are_frozen():
    s = load(overrides=["http.port=9000"])
    with pytest.raises(ValidationError):
        s.http.port = 1  # type: ignore[misc]
    with pytest.raises(ValidationError):
        s.http = s.http  # type: ignore[misc]
    with pytest.raises(ValidationError):
        s.audio.max_upload_bytes = 1  # type: ignore[misc]
    assert s.http.port == 9000


def test_settings_are_hashable_and_comparable():
    a = load(overrides=["http.port=9000"])
    b = load(env={"LOA_HTTP__PORT": "9000"})
    assert a == b
    assert hash(a) == hash(b)
    assert a != Settings()


def test_describe_lists_every_field_of_every_section():
    rows = describe()
    names = [name for name, _, _ in rows]
    expected = [
        f"{section}.{key}"
        for section, info in Settings.model_fields.items()
        for key in info.annotation.model_fields  # type: ignore[union-attr]
    ]
    assert names == expected
    assert len(names) == len(set(names))
    sections = {n.split(".")[0] for n in names}
    assert sections == {
        "http",
        "db",
        "storage",
        "mqtt",
        "broker",
        "stream",
        "scheduler",
        "security",
        "audio",
        "alerts",
        "fleet",
        "relay",
    }
    for name in ("http.max_body_bytes", "scheduler.timezone", "audio.max_upload_bytes"):
        assert name in names


def test_describe_defaults_and_descriptions():
    rows = {name: (default, text) for name, default, text in describe()}
    assert rows["http.port"][0] == "8080"
    assert rows["scheduler.timezone"][0] == repr("Asia/Ho_Chi_Minh")
    assert rows["mqtt.qos"][0] == "1"
    missing = [name for name, (_, text) in rows.items() if not text.strip()]
    assert missing == [], f"settings without a description: {missing}"


def test_every_described_setting_can_be_overridden_with_its_default():
    """Round trip: setting each key to its own default through build() is accepted."""
    defaults = Settings().model_dump()
    for name, _, _ in describe():
        section, key = name.split(".")
        s = build({section: {key: defaults[section][key]}}, source="roundtrip")
        assert getattr(getattr(s, section), key) == defaults[section][key]


def test_env_prefix_constant():
    assert settings_mod.ENV_PREFIX == "LOA_"
