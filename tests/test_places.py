"""Places from empty (provinces, communes, hamlets, zones), speakers by CSV, accounts
limited to hamlets, one-step provisioning: every refusal, and who may."""

from __future__ import annotations

import json
import logging
import unicodedata
from pathlib import Path
from typing import Any

import aiomqtt
import anyio
import httpx
import pytest

from broadcaster.auth.accounts import Accounts
from broadcaster.auth.roles import Area, Role
from broadcaster.logs import JsonFormatter, RedactFilter, redact
from broadcaster.places.service import slug
from broadcaster.settings import Settings
from broadcaster.store import Store
from devices.frames import decode_frame
from devices.messages import DeviceConfig, parse
from devices.provisioning import Provisioning
from devices.signing import Verifier, key_id, public_from_hex
from devices.topics import DeviceTopic, device_topic
from loa.clock import SystemClock
from tests.conftest import Running, serve

PASSWORD = "mật-khẩu-thử-nghiệm-1"


@pytest.mark.parametrize(
    ("name", "drop", "want"),
    [
        ("Ấp 2A", (), "ap-2a"),
        ("Xã Vị Tân", ("xã",), "vi-tan"),
        ("Thành phố Cần Thơ", ("tỉnh", "thành phố"), "can-tho"),
        ("Ấp Đông Hòa", (), "ap-dong-hoa"),
        (unicodedata.normalize("NFD", "Ấp Đông Hòa"), (), "ap-dong-hoa"),
        ("  Thôn   Bến  Đò ", (), "thon-ben-do"),
        ("Xã", ("xã",), "xa"),  # a bare administrative word stays
    ],
)
def test_ids_from_vietnamese_names(name: str, drop: tuple[str, ...], want: str) -> None:
    assert slug(name, drop) == want


@pytest.fixture
async def empty(settings: Settings) -> Any:
    """A controller on an empty database, and an admin of every province."""
    async with serve(settings, seed=False) as r:
        yield r


def err(resp: httpx.Response, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body: dict[str, Any] = resp.json()
    assert body["ok"] is False and body["status"] == status
    return body


async def setup_commune(r: Running) -> None:
    c = r.client
    assert (await c.post("/api/provinces", json={"name": "Tỉnh Hậu Giang"})).status_code == 201
    resp = await c.post("/api/provinces/hau-giang/communes", json={"name": "Xã Vị Tân"})
    assert resp.status_code == 201, resp.text
    for name in ("Ấp 1", "Ấp 2A"):
        assert (
            await c.post("/api/communes/vi-tan/hamlets", json={"name": name})
        ).status_code == 201


async def test_places_from_empty_and_every_refusal(empty: Running) -> None:
    c = empty.client
    assert (await c.get("/api/provinces")).json()["provinces"] == []
    err(await c.post("/api/provinces", json={"name": "  !!  "}), 400)
    err(await c.post("/api/provinces", json={}), 400)
    await setup_commune(empty)
    again = (await c.post("/api/provinces", json={"name": "Tỉnh Hậu Giang"})).json()
    assert again["province"]["id"] == "hau-giang-2"  # unique, the name kept
    err(await c.post("/api/provinces", json={"name": "Khác", "id": "hau-giang"}), 409)
    bad_tz = await c.post(
        "/api/provinces/hau-giang/communes", json={"name": "Xã A", "timezone": "Mars/Base"}
    )
    assert err(bad_tz, 400)["errors"][0]["field"] == "timezone"
    err(await c.post("/api/provinces/no-such/communes", json={"name": "Xã A"}), 404)
    err(await c.post("/api/communes/vi-tan/hamlets", json={"name": "ấp 1"}), 409)  # same name
    assert (await c.put("/api/communes/vi-tan/hamlets/ap-1", json={"name": "Ấp Một"})).json()[
        "hamlet"
    ]["name"] == "Ấp Một"
    commune = (await c.get("/api/communes/vi-tan")).json()["commune"]
    assert [h["id"] for h in commune["hamlets"]] == ["ap-1", "ap-2a"]
    # a speaker, a zone of a hamlet: the speaker is in the zone
    r = await c.post("/api/communes/vi-tan/devices", json={"id": "vt-1", "hamlet": "ap-2a"})
    assert r.status_code == 201, r.text
    bad_zone = await c.post(
        "/api/communes/vi-tan/zones", json={"name": "Ven sông", "hamlets": ["ap-9"]}
    )
    assert err(bad_zone, 400)["errors"][0]["field"] == "hamlets.0"
    z = await c.post("/api/communes/vi-tan/zones", json={"name": "Ven sông", "hamlets": ["ap-2a"]})
    assert z.status_code == 201 and z.json()["zone"]["id"] == "ven-song"
    store = empty.services.store
    assert next(d for d in store.devices("vi-tan") if d.id == "vt-1").zones == ("ven-song",)
    # deletions refused with the reason, nothing changed
    body = err(await c.delete("/api/communes/vi-tan/hamlets/ap-2a"), 409)
    assert "1 speakers (vt-1)" in body["error"]
    assert body["errors"][0]["code"] == "not_empty"  # what the pages translate
    body = err(await c.delete("/api/communes/vi-tan"), 409)
    assert "hamlets" in body["error"] and "speakers" in body["error"]
    err(await c.delete("/api/provinces/hau-giang"), 409)
    assert len((await c.get("/api/communes/vi-tan/hamlets")).json()["hamlets"]) == 2
    # a hamlet in a zone is refused until taken out; an empty one goes
    await c.put("/api/communes/vi-tan/zones/ven-song", json={"hamlets": ["ap-1"]})
    assert "part of zones" in err(await c.delete("/api/communes/vi-tan/hamlets/ap-1"), 409)["error"]
    assert (await c.delete("/api/communes/vi-tan/zones/ven-song")).status_code == 200
    assert (await c.delete("/api/communes/vi-tan/hamlets/ap-1")).status_code == 200
    err(await c.delete("/api/communes/vi-tan/hamlets/ap-1"), 404)
    assert (await c.delete("/api/provinces/hau-giang-2")).status_code == 200


async def test_a_hamlet_with_history_is_kept(empty: Running) -> None:
    await setup_commune(empty)
    store = empty.services.store
    store.db.table("broadcasts").insert(
        {"id": "b-1", "stream_id": "s-1", "title": "Tin sáng", "status": "done", "targets": "[]"}
    )
    store.db.table("deliveries").insert(
        {"broadcast_id": "b-1", "device_id": "gone", "commune_id": "vi-tan", "hamlet_id": "ap-1"}
    )
    body = err(await empty.client.delete("/api/communes/vi-tan/hamlets/ap-1"), 409)
    assert "history" in body["error"]
    assert body["errors"][0]["code"] == "has_history"


def add_user(settings: Settings, name: str, area: Area) -> str:
    store = Store(Path(settings.db.path))
    try:
        accounts = Accounts(store, SystemClock(), settings.security)
        uid = accounts.create(name, PASSWORD, [Role.ADMIN], area)["id"]
        return accounts.create_token(uid, "t")[0]
    finally:
        store.close()


async def test_who_may_create_places(empty: Running) -> None:
    await setup_commune(empty)
    settings = empty.services.settings
    tokens = {
        "province": add_user(settings, "tinh", Area("hau-giang")),
        "commune": add_user(settings, "xa", Area("hau-giang", "vi-tan")),
        "hamlet": add_user(settings, "ap", Area("hau-giang", "vi-tan", frozenset({"ap-1"}))),
    }
    async with httpx.AsyncClient(base_url=empty.url) as c:

        def h(who: str) -> dict[str, str]:
            return {"Authorization": f"Bearer {tokens[who]}"}

        new_province = {"name": "Tỉnh Khác"}
        err(await c.post("/api/provinces", json=new_province, headers=h("province")), 403)
        r = await c.post(
            "/api/provinces/hau-giang/communes", json={"name": "Xã Mới"}, headers=h("province")
        )
        assert r.status_code == 201
        err(
            await c.post(
                "/api/provinces/hau-giang/communes", json={"name": "Xã B"}, headers=h("commune")
            ),
            403,
        )
        err(await c.put("/api/communes/vi-tan", json={"name": "X"}, headers=h("commune")), 403)
        r = await c.post(
            "/api/communes/vi-tan/hamlets", json={"name": "Ấp 3"}, headers=h("commune")
        )
        assert r.status_code == 201
        err(
            await c.post(
                "/api/communes/vi-tan/hamlets", json={"name": "Ấp 4"}, headers=h("hamlet")
            ),
            403,
        )
        err(
            await c.post("/api/communes/moi/hamlets", json={"name": "A"}, headers=h("commune")), 403
        )


async def test_accounts_limited_to_hamlets_are_created_from_a_json_list(empty: Running) -> None:
    await setup_commune(empty)
    c = empty.client
    area = {"province": "hau-giang", "commune": "vi-tan", "hamlets": ["ap-1", "ap-2a"]}
    body = {"username": "truong-ap", "password": PASSWORD, "roles": ["broadcaster"], "area": area}
    r = await c.post("/api/users", json=body)
    assert r.status_code == 201, r.text
    assert r.json()["user"]["area"]["hamlets"] == ["ap-1", "ap-2a"]
    bad = {**body, "username": "khac", "area": {**area, "hamlets": ["ap-9"]}}
    assert err(await c.post("/api/users", json=bad), 400)["errors"][0]["field"] == "area.hamlets"


CSV_OK = (
    "\ufeffid;name;hamlet;lat;lon;model;sim;network;install date;notes\r\n"
    "vt-1;Loa chợ;Ấp 1;9,9712;105,6203;IP-30W;0912;4G;30/11/2026;gần chợ\r\n"
    "vt-2;Loa đình;ap-2a;9,98;105,63;;;wifi;2026-12-01;\r\n"
)


async def test_csv_import_export_and_every_refusal(empty: Running) -> None:
    await setup_commune(empty)
    c = empty.client
    url = "/api/communes/vi-tan/devices/import"

    async def send(text: str | bytes, query: str = "") -> httpx.Response:
        data = text.encode() if isinstance(text, str) else text
        return await c.post(url + query, content=data, headers={"content-type": "text/csv"})

    def refused(resp: httpx.Response, field: str) -> None:
        body = err(resp, 400)
        assert body["errors"][0]["field"] == field, body
        assert "nothing was imported" in body["error"]
        assert empty.services.store.devices("vi-tan") == []  # all or nothing

    refused(await send(CSV_OK.replace("9,98", "abc")), "row 3.lat")
    refused(await send(CSV_OK.replace("9,98", "95")), "row 3.lat")
    refused(await send(CSV_OK.replace("2026-12-01", "31/02/2026")), "row 3.installed")
    refused(await send(CSV_OK.replace("ap-2a", "Ấp 9")), "row 3.hamlet")
    refused(await send(CSV_OK.replace("vt-2", "vt-1")), "row 3.id")
    refused(await send(CSV_OK.replace("vt-2", "VT 2")), "row 3.id")
    refused(await send(CSV_OK.replace("notes", "colour")), "row 1.colour")
    r = await send("id,name\r\nvt-1,A\r\n")
    refused(r, "row 1.hamlet")
    err(await send("\xff\xfeid".encode("latin-1")), 400)
    err(await send(""), 400)
    # comma separated, no BOM, unknown hamlet created on request, names for ids
    r = await send("name,hamlet\r\nLoa Bến Đò,Ấp Ven Sông\r\n", "?create_hamlets=1")
    assert r.status_code == 201, r.text
    assert r.json() == {
        "ok": True,
        "created": ["loa-ben-do"],
        "updated": [],
        "hamlets_created": ["ap-ven-song"],
    }
    r = await send(CSV_OK)
    assert r.status_code == 201 and sorted(r.json()["created"]) == ["vt-1", "vt-2"]
    vt1 = next(
        d
        for d in (await c.get("/api/communes/vi-tan/devices")).json()["devices"]
        if d["id"] == "vt-1"
    )
    assert (vt1["lat"], vt1["installed"], vt1["network"]) == (9.9712, "2026-11-30", "4G")
    exported = await c.get("/api/communes/vi-tan/devices/export.csv")
    assert exported.headers["content-type"].startswith("text/csv")
    text = exported.content.decode("utf-8")
    assert text.startswith("\ufeffid,name,hamlet,") and "Loa chợ,Ấp 1,9.9712" in text
    back = await send(exported.content)  # the export imports again: all updates
    assert back.status_code == 200 and back.json()["created"] == []
    assert sorted(back.json()["updated"]) == ["loa-ben-do", "vt-1", "vt-2"]
    template = (await c.get("/api/communes/vi-tan/devices/export.csv?template=1")).text
    assert "Cụm loa đầu ấp" in template
    # a speaker of another commune cannot be taken over by an import
    await c.post("/api/provinces/hau-giang/communes", json={"name": "Xã Khác"})
    await c.post("/api/communes/khac/hamlets", json={"name": "Ấp 1"})
    r = await c.post(
        "/api/communes/khac/devices/import",
        content=b"id,hamlet\nvt-1,Ap 1\n",
        headers={"content-type": "text/csv"},
    )
    assert err(r, 400)["errors"][0]["field"] == "row 2.id"
    assert "another commune" in r.json()["error"]


async def test_registering_publishes_config_and_credentials_give_the_provisioning_file(
    empty: Running,
) -> None:
    await setup_commune(empty)
    s = empty.services
    topic = device_topic("vi-tan", "vt-9", DeviceTopic.CONFIG)
    got: list[bytes] = []
    async with aiomqtt.Client(s.settings.mqtt.host, s.settings.mqtt.port, identifier="cfg-t") as m:
        r = await empty.client.post(
            "/api/communes/vi-tan/devices", json={"id": "vt-9", "hamlet": "ap-2a"}
        )
        assert r.status_code == 201
        await m.subscribe(topic, qos=1)  # retained: there already
        with anyio.fail_after(10):
            async for msg in m.messages:
                got.append(bytes(msg.payload))  # type: ignore[arg-type]
                break
    frame = decode_frame(got[0], Verifier([s.signer.public]), topic)
    cfg = parse(DeviceConfig, frame.payload)
    assert {(g.kind, g.id) for g in cfg.groups} >= {("hamlet", "ap-2a"), ("device", "vt-9")}

    r = await empty.client.post("/api/devices/vt-9/credentials")
    assert r.status_code == 201, r.text
    body = r.json()
    p = Provisioning.model_validate(body["provisioning"])
    assert (p.device, p.commune, p.hamlet, p.timezone) == (
        "vt-9",
        "vi-tan",
        "ap-2a",
        "Asia/Ho_Chi_Minh",
    )
    assert p.mqtt.password == body["password"] and p.mqtt.username == "vt-9"
    assert p.mqtt.urls == [f"mqtt://{s.settings.mqtt.host}:{s.settings.mqtt.port}"]
    assert p.keys[0].public == s.signer.public_hex()
    assert p.keys[0].kid == key_id(public_from_hex(p.keys[0].public)).hex()
    assert p.topics.time_request == device_topic("vi-tan", "vt-9", DeviceTopic.TIME_REQ)
    assert body["qr"].startswith("data:image/svg+xml")
    once = await empty.client.get("/api/devices/vt-9/provisioning")
    assert once.json()["provisioning"]["mqtt"]["password"] == body["password"]
    err(await empty.client.get("/api/devices/vt-9/provisioning"), 404)  # only once
    err(await empty.client.post("/api/devices/no-such/credentials"), 404)


def test_log_lines_never_carry_secrets() -> None:
    assert redact("token loa_abcdefghijklmnopqrstuvwxyz issued") == "token loa_*** issued"
    assert "hunter2" not in redact('{"password": "hunter2"}')
    assert "s3cr3t" not in redact("Authorization: Bearer s3cr3t")
    pem = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEI\n-----END PRIVATE KEY-----"
    assert "MC4C" not in redact(f"key {pem}")
    record = logging.LogRecord(
        "loa.http", logging.INFO, "x", 1, "%s %s", ("POST", "password=abc123"), None
    )
    RedactFilter().filter(record)
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "POST password=***" and line["level"] == "info"


def test_provision_and_sim_refusals_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from broadcaster.cli import main

    monkeypatch.delenv("LOA_TOKEN", raising=False)
    out = tmp_path / "vt-1.json"
    assert main(["provision", "vt-1", "--out", str(out), "--url", "http://127.0.0.1:9"]) != 0
    assert "API token" in capsys.readouterr().err
    rc = main(
        ["provision", "vt-1", "--out", str(out), "--url", "http://127.0.0.1:9", "--token", "loa_x"]
    )
    err_text = capsys.readouterr().err
    assert rc != 0 and "cannot reach the control plane" in err_text and "Traceback" not in err_text
    assert not out.exists()
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "loa-provisioning/1", "device": "VT 1"}')
    assert main(["sim", "--provision", str(bad)]) != 0
    err_text = capsys.readouterr().err
    assert (
        "bad.json" in err_text and "device" in err_text and len(err_text.strip().splitlines()) == 1
    )
    assert main(["sim"]) != 0
    assert "--provision" in capsys.readouterr().err


def test_provisioned_broker_urls_put_tls_first_or_follow_the_setting(settings: Settings) -> None:
    from types import SimpleNamespace

    from broadcaster.fleet.registry_api import broker_urls

    plain = SimpleNamespace(settings=settings)
    host, port = settings.mqtt.host, settings.mqtt.port
    assert broker_urls(plain) == [f"mqtt://{host}:{port}"]  # type: ignore[arg-type]
    tls = SimpleNamespace(settings=settings.replace(broker={"tls_port": 8883}))
    assert broker_urls(tls) == [f"mqtts://{host}:8883", f"mqtt://{host}:{port}"]  # type: ignore[arg-type]
    urls = ("mqtts://loa.tinh.vn:8883", "mqtt://loa.tinh.vn:1883")
    given = SimpleNamespace(settings=settings.replace(broker={"public_urls": urls}))
    assert broker_urls(given) == list(urls)  # type: ignore[arg-type]


async def test_a_zone_of_hamlets_reaches_its_speakers_at_once(running: Running) -> None:
    """A zone created while speakers are online: their signed config changes at once and
    a broadcast to the zone plays on exactly the zone's hamlet."""
    from broadcaster import demo_data
    from tests.conftest import fleet_of, wav
    from tests.test_e2e import broadcast, wait_online

    specs = [s for s in demo_data.fleet_specs() if s.hamlet in ("ap-1", "ap-2")]
    specs = [s.__class__(id=s.id, commune=s.commune, hamlet=s.hamlet) for s in specs]
    async with fleet_of(running, specs) as fleet:
        await wait_online(running, len(specs))
        r = await running.client.post(
            "/api/communes/vi-tan/zones", json={"name": "Ven sông", "hamlets": ["ap-2"]}
        )
        assert r.status_code == 201, r.text
        with anyio.fail_after(10):
            while {
                e["device"]
                for e in fleet.log.of("config")
                if any(t.endswith("/zone/ven-song") for t in e["groups"])
            } != set(demo_data.device_ids("ap-2")):
                await anyio.sleep(0.1)
        up = await running.client.post(
            "/api/communes/vi-tan/media",
            files={"file": ("tin.wav", wav(1.0), "audio/wav")},
            data={"title": "Tin ven sông"},
        )
        media = up.json()["media"]["id"]
        b = await broadcast(running, media, [{"commune": "vi-tan", "zone": "ven-song"}])
        assert {d["device_id"] for d in b["deliveries"] if d["outcome"] == "played"} == set(
            demo_data.device_ids("ap-2")
        )
        played = {e["device"] for e in fleet.log.of("play")}
        assert played == set(demo_data.device_ids("ap-2"))


def test_every_path_setting_is_made_absolute_once(tmp_path: Path) -> None:
    from broadcaster.settings import absolute, load

    s = absolute(
        load(None, {}, ["broker.mosquitto=bin/mosquitto", "audio.ffmpeg=ffmpeg"]), tmp_path
    )
    assert s.db.path == str(tmp_path / "loa-data" / "loa.db")
    assert s.storage.media_dir == str(tmp_path / "loa-data" / "media")
    assert s.security.signing_key == str(tmp_path / "loa-data" / "signing.key")
    assert s.security.broker_auth_dir == str(tmp_path / "loa-data" / "broker")
    assert s.broker.mosquitto == str(tmp_path / "bin" / "mosquitto")  # a path: resolved
    assert s.audio.ffmpeg == "ffmpeg"  # a name: looked up on PATH
    again = absolute(s, Path("/elsewhere"))  # already absolute: unchanged
    assert again.db.path == s.db.path
