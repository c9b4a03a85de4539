"""The bulletin library over HTTP: every format in, one loudness out, text, composition,
waveform, preview, deletion, built-in signals — and what is refused stores nothing."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import unicodedata
from pathlib import Path
from typing import Any

import pytest

from audio.ffmpeg import find_ffmpeg
from broadcaster.library.service import SIGNALS
from broadcaster.places import demo_data
from firmware_sim.speaker import SpeakerOptions
from tests.conftest import Running, ffmpeg_make, fleet_of
from tests.test_api import COMMUNE, assert_error, media_dir_of, state
from tests.test_audio_pipeline import ebur128
from tests.test_dispatch import outcomes
from tests.test_e2e import broadcast, wait_online

TARGET = -16.0
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="no espeak-ng")

SENTENCE = (
    "Thông báo của Ủy ban nhân dân xã Vị Tân: lúc 06:30 ngày 24/11/2026, "
    "mực nước sông đạt 1,85 m. Đề nghị bà con Ấp 1 và Ấp 2 chủ động phòng tránh."
)


@pytest.fixture(scope="session")
def speech_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 8 s of speech-like sound (espeak-ng if present, else shaped noise), as WAV."""
    tmp = tmp_path_factory.mktemp("speech")
    out = tmp / "speech.wav"
    if shutil.which("espeak-ng"):
        subprocess.run(["espeak-ng", "-v", "vi", "-w", str(out), SENTENCE], check=True, timeout=60)
    else:
        ffmpeg_make(
            tmp,
            "speech.wav",
            "-f",
            "lavfi",
            "-i",
            "anoisesrc=color=pink:duration=8:seed=3",
            "-af",
            "tremolo=f=4:d=0.9",
        )
    return out


FORMATS: dict[str, list[str]] = {
    "tin.mp3": ["-c:a", "libmp3lame", "-b:a", "64k"],
    "ghi-am.m4a": ["-c:a", "aac", "-b:a", "64k"],
    "zalo.ogg": ["-c:a", "libopus", "-b:a", "24k"],
    "whatsapp.opus": ["-c:a", "libopus", "-b:a", "16k", "-f", "ogg"],
    "studio.wav": ["-c:a", "pcm_s24le", "-ar", "44100", "-ac", "2"],
    "dien-thoai.3gp": ["-c:a", "aac", "-b:a", "32k", "-ar", "16000"],
    "trinh-duyet.webm": ["-c:a", "libopus", "-b:a", "32k"],
    "ban-goc.flac": ["-c:a", "flac"],
}


def _has_encoder(name: str) -> bool:
    out = subprocess.run(
        [find_ffmpeg(), "-hide_banner", "-encoders"], capture_output=True, text=True, check=True
    ).stdout
    return f" {name} " in out


def media_files(r: Running, item: dict[str, Any]) -> dict[str, Path]:
    d = media_dir_of(r)
    return {ext: d / f"{item['id']}.{ext}" for ext in ("opus", "mp3", "flac")}


def check_stored(r: Running, item: dict[str, Any]) -> None:
    """Renditions on disk match their SHA-256; the air copy measures at the target."""
    files = media_files(r, item)
    by_codec = {x["codec"]: x for x in item["renditions"]}
    for ext, path in files.items():
        data = path.read_bytes()
        assert hashlib.sha256(data).hexdigest() == by_codec[ext]["sha256"], ext
        assert len(data) == by_codec[ext]["bytes"]
    lufs, _ = ebur128(files["opus"])
    assert abs(lufs - TARGET) <= 1.0, lufs
    assert abs(item["loudness"]["lufs"] - TARGET) <= 1.0
    assert item["loudness"]["true_peak_dbtp"] <= -1.3
    assert len(item["waveform"]) == 200
    assert all(0.0 <= v <= 1.0 for v in item["waveform"])


async def test_every_common_format_is_accepted_and_normalised(
    running: Running, speech_source: Path, tmp_path: Path
) -> None:
    formats = dict(FORMATS)
    if _has_encoder("libopencore_amrnb"):
        formats["voice.amr"] = ["-c:a", "libopencore_amrnb", "-ar", "8000", "-ac", "1"]
    for name, args in formats.items():
        src = ffmpeg_make(tmp_path, name, "-i", str(speech_source), *args)
        resp = await running.client.post(
            f"/api/communes/{COMMUNE}/media",
            files={"file": (name, src.read_bytes(), "application/octet-stream")},
        )
        assert resp.status_code == 201, (name, resp.text)
        item = resp.json()["media"]
        assert item["kind"] == "upload" and item["filename"] == name
        assert item["duration_ms"] > 3000, name
        check_stored(running, item)


async def test_quiet_and_loud_uploads_end_up_equally_loud(
    running: Running, speech_source: Path, tmp_path: Path
) -> None:
    got = []
    for gain in ("-25dB", "0dB"):
        src = ffmpeg_make(
            tmp_path, f"g{gain}.wav", "-i", str(speech_source), "-af", f"volume={gain}"
        )
        resp = await running.client.post(
            f"/api/communes/{COMMUNE}/media", files={"file": (src.name, src.read_bytes())}
        )
        assert resp.status_code == 201, resp.text
        got.append(resp.json()["media"]["loudness"])
    assert got[1]["input_lufs"] - got[0]["input_lufs"] == pytest.approx(25, abs=1.5)
    assert abs(got[0]["lufs"] - got[1]["lufs"]) <= 1.0


@needs_espeak
async def test_text_is_spoken_in_vietnamese_and_stored(running: Running) -> None:
    nfd = unicodedata.normalize("NFD", SENTENCE)
    resp = await running.client.post(
        f"/api/communes/{COMMUNE}/media/text", json={"text": nfd, "title": "Cảnh báo lũ"}
    )
    assert resp.status_code == 201, resp.text
    item = resp.json()["media"]
    assert item["kind"] == "tts"
    assert item["source_text"] == SENTENCE  # kept as NFC
    assert item["title"] == "Cảnh báo lũ"
    # Two sentences with numbers spelt out: comfortably more than 8 s of speech.
    assert 8_000 < item["duration_ms"] < 60_000
    check_stored(running, item)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"text": ""}, "text"),
        ({"text": "   "}, "text"),
        ({"text": "x" * 5001}, "text"),
        ({"text": "Xin chào", "voice": "en"}, "voice"),
        ({"text": 12}, "text"),
    ],
)
async def test_bad_text_requests_are_refused(
    running: Running, body: dict[str, Any], field: str
) -> None:
    before = await state(running.client, media_dir_of(running))
    resp = await running.client.post(f"/api/communes/{COMMUNE}/media/text", json=body)
    assert_error(resp, 400, "invalid_input", fields=[field])
    assert await state(running.client, media_dir_of(running)) == before


async def upload_speech(r: Running, src: Path) -> dict[str, Any]:
    resp = await r.client.post(
        f"/api/communes/{COMMUNE}/media", files={"file": ("tin.wav", src.read_bytes())}
    )
    assert resp.status_code == 201, resp.text
    item: dict[str, Any] = resp.json()["media"]
    return item


async def test_composed_alert_is_read_three_times_between_chimes(
    running: Running, speech_source: Path
) -> None:
    item = await upload_speech(running, speech_source)
    resp = await running.client.post(
        f"/api/communes/{COMMUNE}/media/compose",
        json={
            "title": "Cảnh báo xả lũ",
            "parts": [{"kind": "media", "media_id": item["id"]}, {"kind": "pause", "ms": 500}],
            "repeat": 3,
        },
    )
    assert resp.status_code == 201, resp.text
    bulletin = resp.json()["media"]
    assert bulletin["kind"] == "composed"
    chimes = 2 * 1200  # opening and closing attention chimes, roughly
    expected = 3 * item["duration_ms"] + 3 * 500 + 2 * 1500 + chimes
    assert bulletin["duration_ms"] == pytest.approx(expected, rel=0.15)
    check_stored(running, bulletin)


@pytest.mark.parametrize(
    ("parts", "status", "field"),
    [
        ([], 400, "parts"),
        ([{"kind": "media"}], 400, "parts.0"),
        ([{"kind": "media", "text": "x"}], 400, "parts.0"),
        ([{"kind": "pause", "ms": 0}], 400, "parts.0.ms"),
        ([{"kind": "song", "ms": 10}], 400, "parts.0.kind"),
        ([{"kind": "media", "media_id": "00000000-0000-4000-8000-000000000000"}], 404, None),
    ],
)
async def test_impossible_compositions_are_refused(
    running: Running, parts: list[dict[str, Any]], status: int, field: str | None
) -> None:
    before = await state(running.client, media_dir_of(running))
    resp = await running.client.post(
        f"/api/communes/{COMMUNE}/media/compose", json={"parts": parts}
    )
    assert_error(resp, status, fields=[field] if field else None)
    assert await state(running.client, media_dir_of(running)) == before


async def test_waveform_preview_and_download(running: Running, speech_source: Path) -> None:
    item = await upload_speech(running, speech_source)
    png = await running.client.get(f"/api/media/{item['id']}/waveform.png")
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
    for codec, mime in (("opus", "audio/ogg"), ("mp3", "audio/mpeg"), ("flac", "audio/flac")):
        got = await running.client.get(f"/api/media/{item['id']}/audio", params={"codec": codec})
        assert got.status_code == 200 and got.headers["content-type"].startswith(mime)
        sha = next(r["sha256"] for r in item["renditions"] if r["codec"] == codec)
        assert hashlib.sha256(got.content).hexdigest() == sha
    bad = await running.client.get(f"/api/media/{item['id']}/audio", params={"codec": "wav"})
    assert_error(bad, 400, "invalid_input", fields=["codec"])


async def test_delete_removes_the_item_and_its_files(running: Running, speech_source: Path) -> None:
    item = await upload_speech(running, speech_source)
    files = media_files(running, item)
    assert all(p.exists() for p in files.values())
    resp = await running.client.delete(f"/api/media/{item['id']}")
    assert resp.status_code == 200, resp.text
    assert not any(p.exists() for p in files.values())
    assert_error(await running.client.get(f"/api/media/{item['id']}"), 404, "not_found")
    listed = (await running.client.get(f"/api/communes/{COMMUNE}/media")).json()["media"]
    assert item["id"] not in {m["id"] for m in listed}
    assert_error(await running.client.delete(f"/api/media/{item['id']}"), 404, "not_found")


async def test_built_in_signals_are_ready_and_cannot_be_deleted(running: Running) -> None:
    lib = running.services.library
    for name in SIGNALS:
        row = lib.signal(name)
        assert Path(row.path).exists() and row.duration_ms > 300
    siren = lib.signal("siren-wail")
    resp = await running.client.delete(f"/api/media/{siren.id}")
    assert_error(resp, 409, "conflict")
    assert Path(siren.path).exists()
    # Encoded once: a second start-up finds them and encodes nothing.
    assert await lib.ensure_signals() == 0
    listed = (await running.client.get("/api/signals")).json()["signals"]
    assert [m["title"] for m in listed] == list(SIGNALS)
    assert all(m["kind"] == "tone" and m["commune_id"] is None for m in listed)
    library = (await running.client.get(f"/api/communes/{COMMUNE}/media")).json()["media"]
    assert not [m for m in library if m["kind"] == "tone"]  # not in a commune's library


@needs_espeak
async def test_a_speaker_decodes_the_tts_bulletin_it_received(
    running: Running, tmp_path: Path
) -> None:
    """What reached the speaker is the whole bulletin: decoded, it lasts as long (±100 ms)."""
    resp = await running.client.post(
        f"/api/communes/{COMMUNE}/media/text", json={"text": SENTENCE, "title": "Tin lũ"}
    )
    assert resp.status_code == 201, resp.text
    item = resp.json()["media"]
    specs = [s for s in demo_data.fleet_specs() if s.id in ("vt-ap-1-1", "vt-ap-7-3")]
    record = tmp_path / "played"
    async with fleet_of(running, specs, SpeakerOptions(record_dir=record)):
        await wait_online(running, 2)
        targets = [{"commune": COMMUNE, "device": s.id} for s in specs]
        b = await broadcast(running, item["id"], targets)
    assert set(outcomes(b).values()) == {"played"}
    files = sorted(record.iterdir())
    assert {f.suffix for f in files} == {".opus", ".mp3"}  # vt-ap-7-3 decodes MP3 only
    for f in files:
        pcm = subprocess.run(
            [
                find_ffmpeg(),
                "-loglevel",
                "error",
                "-i",
                str(f),
                "-f",
                "s16le",
                "-ac",
                "1",
                "-ar",
                "48000",
                "-",
            ],
            capture_output=True,
            check=True,
            timeout=60,
        ).stdout
        assert len(pcm) / 96 == pytest.approx(item["duration_ms"], abs=100), f.name


async def test_text_without_a_speech_engine_is_a_clear_503(running: Running) -> None:
    before = await state(running.client, media_dir_of(running))
    lib = running.services.library
    engine, lib.engine = lib.engine, None
    try:
        resp = await running.client.post(
            f"/api/communes/{COMMUNE}/media/text", json={"text": "Xin chào bà con"}
        )
    finally:
        lib.engine = engine
    body = assert_error(resp, 503, "tool_missing")
    assert "espeak-ng" in body["error"]
    assert await state(running.client, media_dir_of(running)) == before


async def test_library_routes_refuse_unknown_communes_and_items(running: Running) -> None:
    unknown = "00000000-0000-4000-8000-000000000000"
    for resp in (
        await running.client.post("/api/communes/xa-khac/media/text", json={"text": "Xin chào"}),
        await running.client.post(
            "/api/communes/xa-khac/media/compose", json={"parts": [{"kind": "pause", "ms": 5}]}
        ),
        await running.client.get(f"/api/media/{unknown}/waveform.png"),
        await running.client.get(f"/api/media/{unknown}/audio"),
        await running.client.delete(f"/api/media/{unknown}"),
        await running.client.delete("/api/media/not-a-uuid"),
    ):
        assert_error(resp, 404)
