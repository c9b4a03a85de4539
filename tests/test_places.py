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
from broadcaster.places.names import slug
from broadcaster.settings import Settings
from broadcaster.store.store import Store
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
    again = (await c.post("/api/provinces", json={"name": "Hậu Giang"})).json()
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
    # the system's own names are never a speaker's id (issue 16)
    refused(await send(CSV_OK.replace("vt-2", "loa-controller")), "row 3.id")
    err(await send("\xff\xfeid".encode("latin-1")), 400)
    err(await send(""), 400)
    # comma separated, no BOM, unknown hamlet created on request, names for ids (the word
    # "loa" left out: ids starting loa- are the system's own)
    r = await send("name,hamlet\r\nLoa Bến Đò,Ấp Ven Sông\r\n", "?create_hamlets=1")
    assert r.status_code == 201, r.text
    assert r.json() == {
        "ok": True,
        "created": ["ben-do"],
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
    assert sorted(back.json()["updated"]) == ["ben-do", "vt-1", "vt-2"]
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
    assert "broker.public_urls" in body["note"]  # 127.0.0.1 is useless to a real speaker
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
    pasted = "/api/loa_abcdefghijklmnopqrstuvwxyz"  # a token pasted into a URL by mistake
    record = logging.LogRecord("loa.http", logging.INFO, "x", 1, "%s", (pasted,), None)
    record.path = pasted
    RedactFilter().filter(record)
    text = JsonFormatter().format(record)
    assert "abcdefghijkl" not in text and json.loads(text)["path"] == "/api/loa_***"


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
    binary = tmp_path / "speaker.json"
    binary.write_bytes(b"\xc7\xff\x00 not json")
    assert main(["sim", "--provision", str(binary)]) != 0
    err_text = capsys.readouterr().err
    assert "not UTF-8" in err_text and len(err_text.strip().splitlines()) == 1
    from devices import provisioning

    good = tmp_path / "vt-1.json"
    p = provisioning.build(
        device="vt-1",
        commune="vi-tan",
        hamlet="ap-1",
        timezone="Asia/Ho_Chi_Minh",
        urls=["mqtt://127.0.0.1:9"],
        password="x" * 24,
        public_keys=["ab" * 32],
        issued_us=1,
    )
    good.write_text(provisioning.to_json(p))
    assert main(["sim", "--provision", str(good), "--provision", str(good)]) != 0
    assert "given twice" in capsys.readouterr().err  # two clients would push each other off


def test_provisioned_broker_urls_put_tls_first_or_follow_the_setting(settings: Settings) -> None:
    from types import SimpleNamespace

    from broadcaster.fleet.registry_api import broker_urls

    plain = SimpleNamespace(settings=settings)
    host, port = settings.mqtt.host, settings.mqtt.port
    assert broker_urls(plain) == [f"mqtt://{host}:{port}"]  # type: ignore[arg-type]
    tls = SimpleNamespace(settings=settings.replace(broker={"tls_port": 8883}))
    # with TLS, only TLS: the plaintext listener is the controller's, on loopback
    assert broker_urls(tls) == [f"mqtts://{host}:8883"]  # type: ignore[arg-type]
    urls = ("mqtts://loa.tinh.vn:8883", "mqtt://loa.tinh.vn:1883")
    given = SimpleNamespace(settings=settings.replace(broker={"public_urls": urls}))
    assert broker_urls(given) == list(urls)  # type: ignore[arg-type]


async def test_a_zone_of_hamlets_reaches_its_speakers_at_once(running: Running) -> None:
    """A zone created while speakers are online: their signed config changes at once and
    a broadcast to the zone plays on exactly the zone's hamlet."""
    from broadcaster.places import demo_data
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


def nfd(text: str) -> str:
    return unicodedata.normalize("NFD", text)


async def test_the_same_name_twice_is_the_same_place_and_refused(empty: Running) -> None:
    """NFC or NFD, any case or spacing, with or without an id: one place per name in its
    parent (a province, a commune); renames too. Nothing is changed by a refusal."""
    await setup_commune(empty)
    c = empty.client
    body = err(await c.post("/api/provinces", json={"name": nfd("tỉnh  hậu giang")}), 409)
    assert "already exists" in body["error"] and body["errors"][0]["code"] == "taken"
    commune = {"name": nfd("Xã Vị Tân"), "timezone": "Asia/Ho_Chi_Minh"}
    err(await c.post("/api/provinces/hau-giang/communes", json=commune), 409)
    err(await c.post("/api/communes/vi-tan/hamlets", json={"name": "Ấp 1", "id": "ap-x"}), 409)
    err(await c.put("/api/communes/vi-tan/hamlets/ap-2a", json={"name": nfd("ấp 1")}), 409)
    assert (await c.put("/api/communes/vi-tan/hamlets/ap-2a", json={"name": "Ấp 2A"})).is_success
    z = {"name": "Chợ", "hamlets": ["ap-1"]}
    assert (await c.post("/api/communes/vi-tan/zones", json=z)).status_code == 201
    err(await c.post("/api/communes/vi-tan/zones", json={"name": nfd("chợ")}), 409)
    assert (await c.post("/api/communes/vi-tan/zones", json={"name": "Ven sông"})).is_success
    err(await c.put("/api/communes/vi-tan/zones/ven-song", json={"name": "CHỢ"}), 409)
    await c.post("/api/provinces/hau-giang/communes", json={"name": "Xã Khác"})
    err(await c.put("/api/communes/khac", json={"name": nfd("Xã Vị Tân")}), 409)
    await c.post("/api/provinces", json={"name": "Tỉnh Sóc Trăng"})
    err(await c.put("/api/provinces/soc-trang", json={"name": "Tỉnh Hậu Giang"}), 409)
    # the same commune name in another province is another commune
    r = await c.post("/api/provinces/soc-trang/communes", json={"name": "Xã Vị Tân"})
    assert r.status_code == 201 and r.json()["commune"]["id"] == "vi-tan-2"
    store = empty.services.store
    assert [p["name"] for p in store.query("SELECT name FROM provinces ORDER BY name")] == [
        "Tỉnh Hậu Giang",
        "Tỉnh Sóc Trăng",
    ]
    assert [h["name"] for h in store.hamlets("vi-tan")] == ["Ấp 1", "Ấp 2A"]
    assert [z["name"] for z in (await c.get("/api/communes/vi-tan/zones")).json()["zones"]] == [
        "Chợ",
        "Ven sông",
    ]


async def import_csv(c: httpx.AsyncClient, text: str, query: str = "", **kw: Any) -> httpx.Response:
    return await c.post(
        "/api/communes/vi-tan/devices/import" + query,
        content=text.encode(),
        headers={"content-type": "text/csv", **kw.get("headers", {})},
    )


async def test_csv_export_cannot_run_formulas_and_imports_back(empty: Running) -> None:
    await setup_commune(empty)
    c = empty.client
    text = (
        "id;name;hamlet;lat;sim;notes\r\n"
        "vt-1;=cmd|' /C calc'!A0;Ấp 1;-9,5;+84912345678;@SUM(A1)\r\n"
        "vt-2;-Loa;Ấp 1;9,5;;\tx\r\n"
    )
    assert (await import_csv(c, text)).status_code == 201
    exported = (await c.get("/api/communes/vi-tan/devices/export.csv")).content.decode("utf-8-sig")
    lines = exported.splitlines()
    assert lines[1] == "vt-1,'=cmd|' /C calc'!A0,Ấp 1,-9.5,,,'+84912345678,,,'@SUM(A1)"
    assert lines[2].startswith("vt-2,'-Loa,Ấp 1,9.5,")
    for line in lines[1:]:  # no cell begins with what a spreadsheet runs
        for cell in line.split(","):
            assert not cell.startswith(("=", "+", "@", "\t")), line
    back = await import_csv(c, exported)
    assert back.status_code == 200 and sorted(back.json()["updated"]) == ["vt-1", "vt-2"]
    vt1 = empty.services.store.query("SELECT name, sim, notes FROM devices WHERE id='vt-1'")[0]
    assert vt1 == {"name": "=cmd|' /C calc'!A0", "sim": "+84912345678", "notes": "@SUM(A1)"}


async def test_csv_rows_naming_a_new_hamlet_differently_make_one_hamlet(empty: Running) -> None:
    await setup_commune(empty)
    c = empty.client
    text = (
        f"id,name,hamlet\r\nvt-1,A,Ấp Bến Đò\r\nvt-2,B,{nfd('ấp  bến đò')}\r\nvt-3,C,Ap Ben Do\r\n"
    )
    r = await import_csv(c, text, "?create_hamlets=1")
    assert r.status_code == 201, r.text
    assert r.json()["hamlets_created"] == ["ap-ben-do"]
    rows = empty.services.store.query("SELECT hamlet_id, name FROM devices ORDER BY id")
    assert {d["hamlet_id"] for d in rows} == {"ap-ben-do"}
    # NFD names are stored as NFC; a name with nothing to make an id from is refused
    assert rows[1]["name"] == "B"
    r = await import_csv(c, f"name,hamlet\r\n{nfd('Loa Đình')},Ấp 1\r\n")
    assert r.status_code == 201 and r.json()["created"] == [
        "dinh"
    ]  # "Loa" left out: loa- ids are reserved
    name = empty.services.store.query("SELECT name FROM devices WHERE id='dinh'")[0]["name"]
    assert name == "Loa Đình"
    body = err(await import_csv(c, "name,hamlet\r\n!!!,Ấp 1\r\n"), 400)
    assert body["errors"][0]["field"] == "row 2.name" and "nothing was imported" in body["error"]
    long_hamlet = "id,hamlet\r\nvt-8,Ấp 1\r\nvt-9," + "Ấp " + "x" * 120 + "\r\n"
    body = err(await import_csv(c, long_hamlet, "?create_hamlets=1"), 400)
    assert body["errors"][0]["field"] == "row 3.hamlet" and "nothing was imported" in body["error"]


async def test_an_account_limited_to_hamlets_imports_only_into_them(empty: Running) -> None:
    await setup_commune(empty)
    r = await import_csv(empty.client, "id,hamlet\r\nvt-9,Ấp 2A\r\n")
    assert r.status_code == 201
    token = add_user(
        empty.services.settings, "ky-thuat-ap", Area("hau-giang", "vi-tan", frozenset({"ap-1"}))
    )
    store = empty.services.store
    before = store.query("SELECT id, hamlet_id FROM devices ORDER BY id")
    async with httpx.AsyncClient(
        base_url=empty.url, headers={"Authorization": f"Bearer {token}"}
    ) as c:
        body = err(await import_csv(c, "id,hamlet\r\nvt-1,Ấp 1\r\nvt-2,Ấp 2A\r\n"), 403)
        assert "row 3" in body["error"] and "nothing was imported" in body["error"]
        err(await import_csv(c, "id,hamlet\r\nvt-9,Ấp 1\r\n"), 403)  # not theirs to move
        err(await import_csv(c, "id,hamlet\r\nvt-3,Ấp 7\r\n", "?create_hamlets=1"), 403)
        assert store.query("SELECT id, hamlet_id FROM devices ORDER BY id") == before
        assert [h["id"] for h in store.hamlets("vi-tan")] == ["ap-1", "ap-2a"]
        r = await import_csv(c, "id,hamlet\r\nvt-1,Ấp 1\r\n")
        assert r.status_code == 201 and r.json()["created"] == ["vt-1"]


async def test_loa_provision_writes_a_secret_file_even_over_an_old_one(
    empty: Running, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from broadcaster.cli import main

    await setup_commune(empty)
    await empty.client.post("/api/communes/vi-tan/devices", json={"id": "vt-1", "hamlet": "ap-1"})
    out = tmp_path / "vt-1.json"
    out.write_text("old")
    out.chmod(0o644)
    args = ["provision", "vt-1", "--out", str(out), "--url", empty.url, "--token", empty.token]
    assert await anyio.to_thread.run_sync(main, args) == 0
    assert out.stat().st_mode & 0o777 == 0o600
    assert Provisioning.model_validate_json(out.read_text()).device == "vt-1"
    capsys.readouterr()
    bad = tmp_path / "bad.json"
    args = ["provision", "../provinces", "--out", str(bad), "--url", empty.url]
    assert await anyio.to_thread.run_sync(main, [*args, "--token", empty.token]) != 0
    assert "not a speaker id" in capsys.readouterr().err and not bad.exists()
    # a file that cannot be written stops it before the speaker's password is replaced
    await empty.client.post("/api/communes/vi-tan/devices", json={"id": "vt-2", "hamlet": "ap-1"})
    args = ["provision", "vt-2", "--out", str(tmp_path), "--url", empty.url]
    assert await anyio.to_thread.run_sync(main, [*args, "--token", empty.token]) != 0
    assert "nothing was issued" in capsys.readouterr().err
    issued = "SELECT device_id FROM device_credentials ORDER BY 1"
    assert empty.services.store.query(issued) == [{"device_id": "vt-1"}]


def test_a_provisioning_file_too_large_for_a_qr_code_gives_none_not_an_error() -> None:
    from broadcaster.fleet.registry_api import qr_svg

    small = qr_svg('{"device": "vt-1"}')
    assert small is not None and small.startswith("data:image/svg+xml")
    assert qr_svg("x" * 5000) is None  # a long CA chain: the JSON still goes out


async def test_names_and_time_zones_at_the_edge(empty: Running) -> None:
    await setup_commune(empty)
    c = empty.client
    long_nfc = "Ấp " + "Đông Hòa Ở Bến Dưới " * 4  # 83 characters composed
    assert len(nfd(long_nfc)) > 100
    r = await c.post("/api/communes/vi-tan/hamlets", json={"name": nfd(long_nfc)})
    assert r.status_code == 201, r.text
    assert r.json()["hamlet"]["name"] == long_nfc.strip()
    body = err(await c.post("/api/communes/vi-tan/hamlets", json={"name": "Ấp " + "x" * 98}), 400)
    assert "longer than 100" in body["error"]
    err(await c.post("/api/communes/vi-tan/hamlets", json={"name": "Ấp\x005"}), 400)
    err(await c.post("/api/communes/vi-tan/hamlets", json={"name": "Ấp 5" + "\u0301" * 400}), 400)
    for tz in ("Asia", "localtime", "posixrules", "Factory"):
        body = {"name": "Xã Mới", "timezone": tz}
        resp = await c.post("/api/provinces/hau-giang/communes", json=body)
        assert err(resp, 400)["errors"][0]["field"] == "timezone", tz
        err(await c.put("/api/communes/vi-tan", json={"timezone": tz}), 400)
    assert (await c.get("/api/communes/vi-tan")).json()["commune"]["timezone"] == "Asia/Ho_Chi_Minh"
    assert len(empty.services.store.hamlets("vi-tan")) == 3


async def test_an_account_limited_to_hamlets_touches_only_its_speakers(empty: Running) -> None:
    await setup_commune(empty)
    c = empty.client
    for did, hamlet in (("vt-1", "ap-1"), ("vt-2", "ap-2a")):
        r = await c.post("/api/communes/vi-tan/devices", json={"id": did, "hamlet": hamlet})
        assert r.status_code == 201
    token = add_user(
        empty.services.settings, "ky-thuat", Area("hau-giang", "vi-tan", frozenset({"ap-1"}))
    )
    store = empty.services.store
    creds = "SELECT device_id FROM device_credentials"
    async with httpx.AsyncClient(
        base_url=empty.url, headers={"Authorization": f"Bearer {token}"}
    ) as h:
        err(await h.post("/api/devices/vt-2/credentials"), 403)
        err(await h.get("/api/devices/vt-2/provisioning"), 403)
        err(await h.post("/api/devices/vt-2/commands", json={"action": "reboot"}), 403)
        err(await h.put("/api/devices/vt-2", json={"name": "Của tôi"}), 403)
        err(await h.put("/api/devices/vt-1", json={"hamlet": "ap-2a"}), 403)
        new = {"id": "vt-3", "hamlet": "ap-2a"}
        err(await h.post("/api/communes/vi-tan/devices", json=new), 403)
        assert store.query(creds) == []
        assert store.query("SELECT id, hamlet_id, name FROM devices ORDER BY id") == [
            {"id": "vt-1", "hamlet_id": "ap-1", "name": "vt-1"},
            {"id": "vt-2", "hamlet_id": "ap-2a", "name": "vt-2"},
        ]
        assert (await h.post("/api/devices/vt-1/credentials")).status_code == 201
        r = await h.post("/api/communes/vi-tan/devices", json={"id": "vt-4", "hamlet": "ap-1"})
        assert r.status_code == 201


async def test_an_admin_of_some_hamlets_cannot_make_a_commune_admin(empty: Running) -> None:
    await setup_commune(empty)
    token = add_user(
        empty.services.settings, "truong-ap", Area("hau-giang", "vi-tan", frozenset({"ap-1"}))
    )
    area = {"province": "hau-giang", "commune": "vi-tan"}
    user = {"username": "moi", "password": PASSWORD, "roles": ["admin"]}
    async with httpx.AsyncClient(
        base_url=empty.url, headers={"Authorization": f"Bearer {token}"}
    ) as h:
        err(await h.post("/api/users", json={**user, "area": area}), 403)
        wider = {**area, "hamlets": ["ap-1", "ap-2a"]}
        err(await h.post("/api/users", json={**user, "area": wider}), 403)
        assert "moi" not in [u["username"] for u in empty.services.accounts.all()]
        mine = {**area, "hamlets": ["ap-1"]}
        r = await h.post("/api/users", json={**user, "area": mine})
        assert r.status_code == 201, r.text
        uid = r.json()["user"]["id"]
        err(await h.put(f"/api/users/{uid}", json={"area": area}), 403)


async def test_csv_as_excel_writes_it_sep_line_tabs_and_a_form_without_the_file(
    empty: Running,
) -> None:
    await setup_commune(empty)
    c = empty.client
    r = await import_csv(c, "sep=;\r\nid;hamlet;lat\r\nvt-1;Ấp 1;9,5\r\n")
    assert r.status_code == 201, r.text
    r = await import_csv(c, "id\thamlet\tlat\r\nvt-2\tẤp 2A\t9,75\r\n")
    assert r.status_code == 201, r.text
    got = empty.services.store.query("SELECT id, hamlet_id, lat FROM devices ORDER BY id")
    assert got == [
        {"id": "vt-1", "hamlet_id": "ap-1", "lat": 9.5},
        {"id": "vt-2", "hamlet_id": "ap-2a", "lat": 9.75},
    ]
    # a sheet with formatted empty columns at its right: Excel writes trailing separators
    r = await import_csv(c, "id;hamlet;;\r\nvt-3;Ấp 1;;\r\nvt-4;Ấp 1;;\r\n")
    assert r.status_code == 201 and r.json()["created"] == ["vt-3", "vt-4"], r.text
    body = err(await import_csv(c, "id;hamlet;;\r\nvt-5;Ấp 1;;x\r\n"), 400)
    assert body["errors"][0]["field"] == "row 2.#3"
    body = err(await import_csv(c, "sep=;\r\n"), 400)
    assert "empty" in body["error"]
    r = await c.post(
        "/api/communes/vi-tan/devices/import", files={"other": ("a.csv", b"id,hamlet")}
    )
    assert "form field 'file'" in err(r, 400)["error"]


@pytest.mark.parametrize(
    ("command", "junk_db", "said"),
    [
        ("serve", False, "Not a directory"),
        ("demo", False, "Not a directory"),
        ("serve", True, "is not a Loa database"),
    ],
)
def test_a_data_folder_that_cannot_be_used_is_one_line(
    tmp_path: Path, command: str, junk_db: bool, said: str
) -> None:
    import os
    import subprocess
    import sys

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    data = blocker / "loa-data"
    if junk_db:  # a folder holding some other file named loa.db
        data = tmp_path / "loa-data"
        data.mkdir()
        (data / "loa.db").write_text("not sqlite " * 100)
    loa = Path(sys.executable).parent / "loa"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOA_")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
    r = subprocess.run(
        [str(loa), command, "--port", "0", "--data", str(data)],
        check=False,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and said in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_loa_serve_notices_a_data_folder_holding_the_demo(tmp_path: Path) -> None:
    """README: the demo first, then loa serve for the real commune; both default to
    ./loa-data, so serve says when the real commune would start on top of the demo."""
    from broadcaster.places import demo_data
    from broadcaster.places.service import Places
    from broadcaster.serve import holds_demo

    real = Store(tmp_path / "real.db")
    demo = Store(tmp_path / "demo.db")
    try:
        places = Places(real)
        places.create_province("Tỉnh Hậu Giang")
        places.create_commune("hau-giang", "Xã Vị Tân", "Asia/Ho_Chi_Minh")
        places.create_hamlet("vi-tan", "Ấp 1")
        real.upsert_device("vi-tan", "vt-1", "ap-1")
        assert not holds_demo(real)
        demo_data.seed(demo, "Asia/Ho_Chi_Minh")
        assert holds_demo(demo)
    finally:
        real.close()
        demo.close()


@pytest.mark.parametrize("command", ["serve", "demo"])
def test_a_start_that_fails_does_not_keep_an_admin_whose_password_nobody_saw(
    tmp_path: Path, command: str
) -> None:
    """Port 8080 busy at the first start: the retry must still show the admin's password."""
    import os
    import socket
    import subprocess
    import sys

    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    loa = Path(sys.executable).parent / "loa"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOA_")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
    try:
        r = subprocess.run(
            [str(loa), command, "--port", str(busy.getsockname()[1]), "--set", "broker.port=0"],
            check=False,
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
    finally:
        busy.close()
    assert r.returncode == 2 and "cannot listen" in r.stderr, r.stderr
    assert "login:" not in r.stdout
    store = Store(tmp_path / "loa-data" / "loa.db")
    try:
        assert store.query("SELECT username FROM users") == []  # the next start makes one
        settings = Settings().replace(db={"path": str(tmp_path / "loa-data" / "loa.db")})
        from broadcaster.auth.accounts import first_admin_line

        assert "login: admin / " in first_admin_line(store, SystemClock(), settings.security)
    finally:
        store.close()


async def test_a_hamlet_written_without_tone_marks_that_could_be_two_is_refused(
    empty: Running,
) -> None:
    await setup_commune(empty)
    c = empty.client
    for name in ("Ấp Hòa", "Ấp Hoa"):  # two hamlets: tone marks tell them apart
        assert (await c.post("/api/communes/vi-tan/hamlets", json={"name": name})).is_success
    body = err(await import_csv(c, "id,hamlet\r\nvt-1,Ấp 1\r\nvt-2,Ap Hoa\r\n"), 400)
    assert body["errors"][0]["field"] == "row 3.hamlet" and "could be" in body["error"]
    assert empty.services.store.devices("vi-tan") == []
    r = await import_csv(c, f"id,hamlet\r\nvt-1,Ấp Hoa\r\nvt-2,{nfd('ấp  hòa')}\r\nvt-3,ap-hoa\r\n")
    assert r.status_code == 201, r.text
    got = empty.services.store.query("SELECT id, hamlet_id FROM devices ORDER BY id")
    assert [d["hamlet_id"] for d in got] == ["ap-hoa-2", "ap-hoa", "ap-hoa"]


async def test_a_technician_imports_speakers_but_does_not_create_hamlets(empty: Running) -> None:
    await setup_commune(empty)
    store = Store(Path(empty.services.settings.db.path))
    try:
        accounts = Accounts(store, SystemClock(), empty.services.settings.security)
        uid = accounts.create(
            "ky-thuat-xa", PASSWORD, [Role.TECHNICIAN], Area("hau-giang", "vi-tan")
        )
        token = accounts.create_token(uid["id"], "t")[0]
    finally:
        store.close()
    async with httpx.AsyncClient(
        base_url=empty.url, headers={"Authorization": f"Bearer {token}"}
    ) as h:
        body = err(await import_csv(h, "id,hamlet\r\nvt-1,Ấp Mới\r\n", "?create_hamlets=1"), 403)
        assert "nothing was imported" in body["error"]
        assert [x["id"] for x in empty.services.store.hamlets("vi-tan")] == ["ap-1", "ap-2a"]
        assert (await import_csv(h, "id,hamlet\r\nvt-1,Ấp 1\r\n")).status_code == 201
