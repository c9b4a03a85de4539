"""The HTTP API against the real app (uvicorn, SQLite, Mosquitto, ffmpeg).

Every refusal must come back in the one error shape, and a refused request must leave
nothing behind: no media row, no file in the media folder, no broadcast.
"""

from __future__ import annotations

import json
import os
import unicodedata
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from broadcaster.broker.process import Broker
from broadcaster.places import demo_data
from tests.conftest import Running, make_settings, serve, wav

COMMUNE = demo_data.COMMUNE[0]
ERROR_KEYS = {"ok", "error", "code", "errors", "status"}


def assert_error(
    resp: httpx.Response, status: int, code: str | None = None, fields: list[str] | None = None
) -> dict[str, Any]:
    """The one error shape; returns the body for further checks."""
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json"), resp.headers
    body: dict[str, Any] = resp.json()
    assert set(body) == ERROR_KEYS, body
    assert body["ok"] is False
    assert body["status"] == status
    assert isinstance(body["error"], str)
    assert body["error"].strip()
    assert isinstance(body["code"], str)
    assert body["code"]
    assert isinstance(body["errors"], list)
    for e in body["errors"]:
        assert set(e) == {"field", "message", "code"}, e
        assert all(isinstance(v, str) for v in e.values())
    if code is not None:
        assert body["code"] == code, body
    if fields is not None:
        assert [e["field"] for e in body["errors"]] == fields, body
    return body


def media_files(media_dir: Path) -> set[str]:
    return set(os.listdir(media_dir)) if media_dir.exists() else set()


@dataclass
class State:
    """What a refused request must not change."""

    media: list[dict[str, Any]]
    files: set[str]
    broadcasts: list[dict[str, Any]]


async def state(client: httpx.AsyncClient, media_dir: Path) -> State:
    media = await client.get(f"/api/communes/{COMMUNE}/media")
    broadcasts = await client.get(f"/api/communes/{COMMUNE}/broadcasts")
    assert media.status_code == 200
    assert broadcasts.status_code == 200
    return State(media.json()["media"], media_files(media_dir), broadcasts.json()["broadcasts"])


def media_dir_of(r: Running) -> Path:
    return Path(r.services.settings.storage.media_dir)


async def upload(
    client: httpx.AsyncClient, data: bytes, name: str = "a.wav", title: str | None = None
) -> httpx.Response:
    form = {"title": title} if title is not None else None
    return await client.post(
        f"/api/communes/{COMMUNE}/media", files={"file": (name, data, "audio/wav")}, data=form
    )


async def uploaded_media(r: Running) -> str:
    resp = await upload(r.client, wav(0.5), title="Bản tin")
    assert resp.status_code == 201, resp.text
    media_id: str = resp.json()["media"]["id"]
    return media_id


# --- reading ---------------------------------------------------------------------


async def test_health(running: Running):
    resp = await running.client.get("/api/health")
    assert resp.status_code == 200
    body = resp.json()
    assert body["ok"] is True
    assert body["mqtt"] is True
    assert isinstance(body["version"], str) and body["version"]


async def test_communes_hamlets_devices(running: Running):
    resp = await running.client.get("/api/communes")
    assert resp.status_code == 200
    communes = resp.json()["communes"]
    assert [c["id"] for c in communes] == [COMMUNE]
    c = communes[0]
    assert c["name"] == "Xã Vị Tân"
    assert c["devices"] == 27
    assert c["online"] == 0
    assert c["timezone"] == "Asia/Ho_Chi_Minh"

    hamlets = (await running.client.get(f"/api/communes/{COMMUNE}/hamlets")).json()["hamlets"]
    assert [h["id"] for h in hamlets] == [h for h, _ in demo_data.HAMLETS]
    assert {h["id"]: h["name"] for h in hamlets}["ap-2a"] == "Ấp 2A"
    assert all(h["devices"] == 3 and h["online"] == 0 for h in hamlets)

    devices = (await running.client.get(f"/api/communes/{COMMUNE}/devices")).json()["devices"]
    assert len(devices) == 27
    assert {d["id"] for d in devices} == {
        d for h, _ in demo_data.HAMLETS for d in demo_data.device_ids(h)
    }
    d = next(d for d in devices if d["id"] == "vt-ap-2a-1")
    assert d["hamlet"] == "ap-2a"
    assert d["name"] == "Cụm loa Ấp 2A số 1"
    assert d["online"] is False
    assert d["codecs"] == []
    assert d["telemetry"] is None

    media = await running.client.get(f"/api/communes/{COMMUNE}/media")
    assert media.json() == {"ok": True, "media": []}
    broadcasts = await running.client.get(f"/api/communes/{COMMUNE}/broadcasts")
    assert broadcasts.json() == {"ok": True, "broadcasts": []}


async def test_home_page_vietnamese_and_english(running: Running):
    resp = await running.client.get("/")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/html")
    assert "utf-8" in resp.headers["content-type"].lower()
    page = resp.text
    assert '<html lang="vi">' in page
    assert "Xã Vị Tân" in page
    assert "Hệ thống truyền thanh thông minh" in page
    assert "Ấp 2A" in page
    assert "Ấp / thôn" in page
    assert '?lang=en"' in page

    en = (await running.client.get("/", params={"lang": "en"})).text
    assert '<html lang="en">' in en
    assert "smart public-address system" in en
    assert "Hamlet" in en
    assert "Xã Vị Tân" in en  # proper names are not translated
    assert "Ấp / thôn" not in en
    # An unknown language falls back to Vietnamese.
    assert '<html lang="vi">' in (await running.client.get("/?lang=fr")).text


async def test_home_page_does_not_repeat_the_commune_prefix(running: Running):
    page = (await running.client.get("/")).text
    assert "Xã Xã" not in page


# --- 404 / 405 --------------------------------------------------------------------


async def test_not_found_everywhere(running: Running):
    c = running.client
    for path in (
        "/api/communes/nope/hamlets",
        "/api/communes/nope/devices",
        "/api/communes/nope/media",
        "/api/communes/nope/broadcasts",
        "/api/communes/Vi-Tan/hamlets",  # not a valid id: 404, not 500
        "/api/communes/x%20y/devices",
    ):
        body = assert_error(await c.get(path), 404, "not_found")
        assert body["errors"] == []
    assert_error(await c.get(f"/api/media/{uuid.uuid4()}"), 404, "not_found")
    assert_error(await c.get("/api/media/not-a-uuid"), 404, "not_found")
    assert_error(await c.get(f"/api/broadcasts/{uuid.uuid4()}"), 404, "not_found")
    assert_error(await c.get("/api/broadcasts/1"), 404, "not_found")
    assert_error(await c.get("/api/nope"), 404, "http")
    assert_error(await c.get("/nope.html"), 404, "http")


async def test_upload_to_unknown_commune(running: Running):
    before = media_files(media_dir_of(running))
    resp = await running.client.post(
        "/api/communes/nope/media", files={"file": ("a.wav", wav(0.5), "audio/wav")}
    )
    assert_error(resp, 404, "not_found")
    assert media_files(media_dir_of(running)) == before


async def test_broadcast_with_unknown_media(running: Running):
    resp = await running.client.post(
        "/api/broadcasts", json={"media_id": str(uuid.uuid4()), "targets": [{"commune": COMMUNE}]}
    )
    assert_error(resp, 404, "not_found")


async def test_method_not_allowed(running: Running):
    c = running.client
    for method, path in (
        ("DELETE", "/api/communes"),
        ("DELETE", f"/api/communes/{COMMUNE}/hamlets"),  # POST creates one now
        ("PUT", f"/api/communes/{COMMUNE}/media"),
        ("GET", "/api/broadcasts"),
        ("POST", "/api/health"),
    ):
        resp = await c.request(method, path)
        assert_error(resp, 405, "http")
        assert "allow" in resp.headers, (method, path)


# --- JSON bodies ----------------------------------------------------------------


async def test_invalid_json(running: Running):
    c = running.client
    for raw in (b"{", b"", b"\xff\xfe{}", b"{'a': 1}", b"NaN-ish"):
        resp = await c.post(
            "/api/broadcasts", content=raw, headers={"content-type": "application/json"}
        )
        assert_error(resp, 400, "invalid_input")


async def test_invalid_fields(running: Running):
    c = running.client
    mid = str(uuid.uuid4())
    target = {"commune": COMMUNE}
    cases: list[tuple[Any, str]] = [
        ({"media_id": mid, "targets": [target], "colour": "red"}, "colour"),
        ({"media_id": mid, "targets": "vi-tan"}, "targets"),
        ({"media_id": mid, "targets": [target], "priority": "emergency"}, "priority"),
        ({"media_id": mid, "targets": [target], "priority": 1}, "priority"),
        ({"media_id": mid, "targets": []}, "targets"),
        ({"media_id": "not-a-uuid", "targets": [target]}, "media_id"),
        ({"media_id": mid, "targets": [target], "title": "x" * 201}, "title"),
        ({"media_id": mid, "targets": [{"commune": "Vị Tân"}]}, "targets.0.commune"),
        ({"media_id": mid, "targets": [{"commune": COMMUNE, "hamlet": 1}]}, "targets.0.hamlet"),
        ({"targets": [target]}, "media_id"),
        ([1, 2, 3], "(body)"),
    ]
    for payload, field in cases:
        body = assert_error(await c.post("/api/broadcasts", json=payload), 400, "invalid_input")
        assert field in [e["field"] for e in body["errors"]], (payload, body)


async def test_target_naming_hamlet_and_zone(running: Running):
    resp = await running.client.post(
        "/api/broadcasts",
        json={
            "media_id": str(uuid.uuid4()),
            "targets": [{"commune": COMMUNE, "hamlet": "ap-1", "zone": "cho-vi-tan"}],
        },
    )
    body = assert_error(resp, 400, "invalid_input", fields=["targets.0"])
    assert "at most one" in body["errors"][0]["message"]


async def test_unknown_targets_are_refused_and_nothing_is_recorded(running: Running):
    media_id = await uploaded_media(running)
    before = await state(running.client, media_dir_of(running))
    c = running.client
    resp = await c.post(
        "/api/broadcasts",
        json={"media_id": media_id, "targets": [{"commune": COMMUNE, "hamlet": "ap-99"}]},
    )
    body = assert_error(resp, 400, "invalid_input", fields=["targets[0]"])
    assert "ap-99" in body["errors"][0]["message"]

    resp = await c.post(
        "/api/broadcasts",
        json={
            "media_id": media_id,
            "targets": [
                {"commune": COMMUNE, "hamlet": "ap-1"},
                {"commune": COMMUNE, "device": "vt-ghost-1"},
                {"commune": "xa-khac"},
                {"commune": COMMUNE, "zone": "khong-co"},
            ],
        },
    )
    body = assert_error(
        resp, 400, "invalid_input", fields=["targets[1]", "targets[2]", "targets[3]"]
    )
    assert "vt-ghost-1" in body["errors"][0]["message"]
    assert all(e["code"] == "unknown" for e in body["errors"])

    resp = await c.post(
        "/api/broadcasts",
        json={"media_id": media_id, "targets": [{"commune": COMMUNE, "device": "vt-ghost-1"}]},
    )
    assert_error(resp, 400, "invalid_input", fields=["targets[0]"])

    assert await state(c, media_dir_of(running)) == before
    assert before.broadcasts == []
    assert running.services.dispatcher.publishes == 0


async def test_json_body_over_limit(running: Running):
    limit = running.services.settings.http.max_body_bytes
    payload = {"media_id": str(uuid.uuid4()), "targets": [], "title": "x" * (limit + 10)}
    resp = await running.client.post("/api/broadcasts", json=payload)
    body = assert_error(resp, 413, "too_large")
    assert str(limit) in body["error"]


async def test_json_sent_as_text_plain(running: Running):
    payload = json.dumps({"media_id": str(uuid.uuid4()), "targets": [{"commune": COMMUNE}]})
    for ctype in ("text/plain", "application/x-www-form-urlencoded"):
        resp = await running.client.post(
            "/api/broadcasts", content=payload.encode(), headers={"content-type": ctype}
        )
        assert_error(resp, 415, "unsupported_media")
    resp = await running.client.post("/api/broadcasts", content=payload.encode())
    assert_error(resp, 415, "unsupported_media")


async def test_deeply_nested_json_is_a_client_error(running: Running):
    raw = b"[" * 100_000 + b"]" * 100_000
    resp = await running.client.post(
        "/api/broadcasts", content=raw, headers={"content-type": "application/json"}
    )
    assert_error(resp, 400, "invalid_input")


# --- uploads ------------------------------------------------------------------------


async def test_upload_with_vietnamese_nfd_title_comes_back_nfc(running: Running):
    media_dir = media_dir_of(running)
    before = media_files(media_dir)
    title = unicodedata.normalize("NFD", "Thông báo lịch tiêm chủng Ấp 2A")
    name = unicodedata.normalize("NFD", "thông-báo.wav")
    assert title != unicodedata.normalize("NFC", title)
    resp = await upload(running.client, wav(0.5), name=name, title=title)
    assert resp.status_code == 201, resp.text
    media = resp.json()["media"]
    assert media["title"] == unicodedata.normalize("NFC", title)
    assert unicodedata.is_normalized("NFC", media["title"])
    assert media["filename"] == unicodedata.normalize("NFC", name)
    assert media["commune_id"] == COMMUNE
    assert [r["codec"] for r in media["renditions"]] == ["flac", "opus", "mp3"]
    assert media_files(media_dir) - before == {
        f"{media['id']}.{ext}" for ext in ("opus", "mp3", "flac")
    }
    got = await running.client.get(f"/api/media/{media['id']}")
    assert got.json()["media"]["title"] == "Thông báo lịch tiêm chủng Ấp 2A"
    listed = (await running.client.get(f"/api/communes/{COMMUNE}/media")).json()["media"]
    assert [m["id"] for m in listed] == [media["id"]]


async def test_refused_uploads_leave_nothing_behind(running: Running):
    c = running.client
    media_dir = media_dir_of(running)
    before = await state(c, media_dir)
    url = f"/api/communes/{COMMUNE}/media"

    # 422: a text file named .mp3
    resp = await c.post(
        url, files={"file": ("bai-hat.mp3", b"this is not audio\n" * 100, "audio/mpeg")}
    )
    body = assert_error(resp, 422, "audio_rejected")
    assert body["errors"][0]["field"] == "file"

    # 422: an empty file
    resp = await c.post(url, files={"file": ("empty.wav", b"", "audio/wav")})
    assert_error(resp, 422, "audio_rejected", fields=["file"])

    # 415: not multipart
    resp = await c.post(url, content=wav(0.3), headers={"content-type": "audio/wav"})
    assert_error(resp, 415, "unsupported_media")

    # 400: multipart without a file field
    resp = await c.post(url, data={"title": "no file"}, files={"other": ("x.txt", b"x")})
    assert_error(resp, 400, "invalid_input", fields=["file"])

    # 400: title too long
    resp = await c.post(
        url, data={"title": "t" * 201}, files={"file": ("a.wav", wav(0.3), "audio/wav")}
    )
    assert_error(resp, 400, "invalid_input", fields=["title"])

    # 400: two files (max_files=1)
    resp = await c.post(
        url,
        files=[
            ("file", ("a.wav", wav(0.3), "audio/wav")),
            ("file", ("b.wav", wav(0.3), "audio/wav")),
        ],
    )
    assert_error(resp, 400)

    # 400: multipart without a boundary
    resp = await c.post(url, content=b"--x--\r\n", headers={"content-type": "multipart/form-data"})
    assert_error(resp, 400)

    assert await state(c, media_dir) == before


async def test_upload_without_content_length(running: Running):
    before = await state(running.client, media_dir_of(running))
    boundary = "loa-boundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n'
            "Content-Type: audio/wav\r\n\r\n"
        ).encode()
        + wav(0.3)
        + f"\r\n--{boundary}--\r\n".encode()
    )

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(body), 4096):
            yield body[i : i + 4096]

    resp = await running.client.post(
        f"/api/communes/{COMMUNE}/media",
        content=chunks(),
        headers={"content-type": f"multipart/form-data; boundary={boundary}"},
    )
    assert "content-length" not in resp.request.headers
    assert resp.request.headers.get("transfer-encoding") == "chunked"
    assert resp.status_code in (400, 411)
    assert_error(resp, resp.status_code)
    assert await state(running.client, media_dir_of(running)) == before


# --- small limits: a server of our own ----------------------------------------------

UPLOAD_LIMIT = 256 * 1024
BODY_LIMIT = 2048


@dataclass
class Small:
    client: httpx.AsyncClient
    media_dir: Path


@pytest.fixture
async def small(tmp_path: Path, broker: Broker) -> AsyncIterator[Small]:
    settings = make_settings(
        tmp_path,
        broker,
        http={"max_body_bytes": BODY_LIMIT},
        audio={"max_upload_bytes": UPLOAD_LIMIT},
    )
    async with serve(settings) as r:
        yield Small(r.client, Path(settings.storage.media_dir))


async def test_json_over_small_body_limit(small: Small):
    payload = {"media_id": str(uuid.uuid4()), "targets": [], "title": "x" * BODY_LIMIT}
    body = assert_error(await small.client.post("/api/broadcasts", json=payload), 413, "too_large")
    assert str(BODY_LIMIT) in body["error"]
    # Just under the limit is read (and then refused for its content, not its size).
    ok_size = {"media_id": str(uuid.uuid4()), "targets": [{"commune": COMMUNE}]}
    assert_error(await small.client.post("/api/broadcasts", json=ok_size), 404, "not_found")


async def test_uploads_over_the_limit(small: Small):
    before = await state(small.client, small.media_dir)
    # Far over: refused from Content-Length alone.
    resp = await upload(small.client, b"\0" * (UPLOAD_LIMIT * 3), name="big.wav")
    body = assert_error(resp, 413, "too_large", fields=["file"])
    assert str(UPLOAD_LIMIT) in body["error"]
    # Just over: the headers pass, the streamed copy stops at the limit.
    resp = await upload(small.client, b"\0" * (UPLOAD_LIMIT + 1000), name="big.wav")
    assert_error(resp, 413, "too_large", fields=["file"])
    assert await state(small.client, small.media_dir) == before
    assert not [f for f in media_files(small.media_dir) if f.startswith(".upload-")]
    # A real recording under the limit is still accepted afterwards.
    data = wav(0.3)
    assert len(data) < UPLOAD_LIMIT
    resp = await upload(small.client, data, title="Nhỏ")
    assert resp.status_code == 201, resp.text
