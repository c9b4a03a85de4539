"""The fleet, end to end: killed speakers go offline and raise alarms that clear when
they return, uptime shows the gap; commands are acknowledged or time out; the registry
moves a speaker without re-flashing; metrics; device payloads never break ingest."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broadcaster.bench.harness import SimProcess
from broadcaster.places import demo_data
from broadcaster.store.store import Store
from devices.router import Router
from firmware_sim.speaker import SpeakerOptions
from firmware_sim.spec import DeviceSpec
from tests.conftest import Running, fleet_of, make_settings, serve
from tests.test_api import COMMUNE, assert_error
from tests.test_e2e import wait_online

FLEET = {"silent_s": 2, "check_s": 0.3, "heartbeat_s": 0.3, "command_timeout_s": 1.5}


def thirty(tmp: Path) -> list[DeviceSpec]:
    """The demo's 27 speakers and three more in Ấp 1: 30 in all."""
    store = Store(tmp / "loa.db")
    demo_data.seed(store)
    for n in (4, 5, 6):
        store.upsert_device(COMMUNE, f"vt-ap-1-{n}", "ap-1")
    store.close()
    extra = [DeviceSpec(id=f"vt-ap-1-{n}", commune=COMMUNE, hamlet="ap-1") for n in (4, 5, 6)]
    return [*demo_data.fleet_specs(), *extra]


async def open_alarms(r: Running) -> list[dict[str, Any]]:
    resp = await r.client.get(f"/api/communes/{COMMUNE}/alarms")
    return list(resp.json()["alarms"])


async def test_killed_speakers_raise_alarms_that_clear_and_uptime_shows_the_gap(
    tmp_path: Path, broker: Any
) -> None:
    specs = thirty(tmp_path)
    five = [s for s in specs if s.hamlet in ("ap-2", "ap-3")][:5]
    names = {s.id for s in five}
    rest = [s for s in specs if s.id not in names]
    settings = make_settings(tmp_path, broker, fleet=FLEET)
    beat = SpeakerOptions(telemetry_interval_s=0.5)  # the heartbeat, well inside silent_s
    async with serve(settings, seed=False) as r, fleet_of(r, rest, beat):
        start_us = r.services.clock.now_us()

        def start_five(name: str) -> SimProcess:  # a separate process, so it can be killed
            return SimProcess(
                five,
                host=broker.host,
                port=broker.port,
                pubkey_hex=r.services.signer.public_hex(),
                workdir=tmp_path / name,
                extra=["--telemetry-interval", "0.5"],
            )

        sim = start_five("sim")
        try:
            await wait_online(r, 30, timeout=30)
            await anyio.sleep(1.0)
            assert await open_alarms(r) == []
            killed_us = r.services.clock.now_us()
            sim.proc.kill()  # SIGKILL: no clean disconnect, the broker sends their wills
            sim.proc.wait(10)
            with anyio.fail_after(15):
                while {a["device_id"] for a in await open_alarms(r)} != names:
                    await anyio.sleep(0.2)
            alarms = await open_alarms(r)
            assert {a["kind"] for a in alarms} == {"offline"}
            for a in alarms:  # within silent_s (+ a check interval and some slack)
                assert a["raised_us"] - killed_us < (2 + 0.3 + 1.5) * 1e6, a
            devs = (await r.client.get(f"/api/communes/{COMMUNE}/devices")).json()["devices"]
            assert {d["id"] for d in devs if not d["online"]} == names
            ack = await r.client.post(f"/api/alarms/{alarms[0]['id']}/ack")
            assert ack.json()["alarm"]["acked_by"] == "svc-tests"
            await anyio.sleep(1.0)
            sim = start_five("sim2")
            await wait_online(r, 30, timeout=30)
            back_us = r.services.clock.now_us()
            with anyio.fail_after(10):
                while await open_alarms(r):
                    await anyio.sleep(0.2)
            end_us = r.services.clock.now_us()
            resp = await r.client.get(
                f"/api/communes/{COMMUNE}/uptime",
                params={"from_us": start_us, "to_us": end_us},
            )
            up = resp.json()["uptime"]
        finally:
            sim.stop()
    gap_s = (back_us - killed_us) / 1e6
    for d, u in up["devices"].items():
        if d in names:
            assert abs(u["offline_s"] - gap_s) < 1.5, (d, u, gap_s)
            assert u["uptime"] < 1.0
        else:
            assert u["offline_s"] < 0.01 or u["uptime"] > 0.99, (d, u)
    assert 0 < up["commune"]["uptime"] < 1


async def test_commands_are_acknowledged_time_out_and_refuse_bad_input(
    tmp_path: Path, broker: Any
) -> None:
    settings = make_settings(tmp_path, broker, fleet=FLEET, security={})
    specs = [s for s in demo_data.fleet_specs() if s.hamlet == "ap-1"][:2]
    beat = SpeakerOptions(telemetry_interval_s=0.5)
    async with serve(settings) as r, fleet_of(r, specs, beat) as fleet:
        await wait_online(r, 2)
        url = "/api/devices/vt-ap-1-1/commands"
        sent = await r.client.post(url, json={"action": "set_volume", "args": {"volume": 35}})
        assert sent.status_code == 202, sent.text
        tone = await r.client.post("/api/devices/vt-ap-1-2/commands", json={"action": "test_tone"})
        assert tone.status_code == 202
        offline = await r.client.post("/api/devices/vt-ap-2-1/commands", json={"action": "reboot"})
        with anyio.fail_after(10):
            while True:
                rows = {
                    c["action"]: c
                    for d in ("vt-ap-1-1", "vt-ap-1-2", "vt-ap-2-1")
                    for c in (await r.client.get(f"/api/devices/{d}/commands")).json()["commands"]
                }
                if all(c["status"] != "sent" for c in rows.values()):
                    break
                await anyio.sleep(0.2)
        assert rows["set_volume"]["status"] == "ok"
        assert fleet.speakers["vt-ap-1-1"].volume == 35
        assert rows["test_tone"]["status"] == "ok" and fleet.log.of("test_tone")
        assert offline.status_code == 202 and rows["reboot"]["status"] == "timeout"
        bad = await r.client.post(url, json={"action": "self_destruct"})
        assert "unknown action" in assert_error(bad, 400, "invalid_input")["error"]
        assert_error(await r.client.post(url, json={"action": 5}), 400, "invalid_input")
        missing = await r.client.post("/api/devices/khong-co/commands", json={"action": "stop"})
        assert_error(missing, 404, "not_found")


async def test_commands_are_rate_limited(tmp_path: Path, broker: Any) -> None:
    settings = make_settings(tmp_path, broker, fleet={**FLEET, "commands_per_min": 2})
    async with serve(settings) as r:
        url = "/api/devices/vt-ap-1-1/commands"
        for _ in range(2):
            await r.client.post(url, json={"action": "test_tone"})
        resp = await r.client.post(url, json={"action": "test_tone"})
        assert "too many commands" in assert_error(resp, 429, "rate_limited")["error"]


async def test_registry_moves_a_speaker_without_reflashing(tmp_path: Path, broker: Any) -> None:
    settings = make_settings(tmp_path, broker)
    specs = [s for s in demo_data.fleet_specs() if s.id == "vt-ap-1-1"]
    async with serve(settings) as r, fleet_of(r, specs) as fleet:
        await wait_online(r, 1)
        made = await r.client.post(
            f"/api/communes/{COMMUNE}/devices",
            json={"id": "vt-moi-1", "hamlet": "ap-2", "lat": 9.95, "lon": 105.7, "model": "IP-30W"},
        )
        assert made.status_code == 201, made.text
        assert made.json()["device"]["model"] == "IP-30W"
        again = await r.client.post(
            f"/api/communes/{COMMUNE}/devices", json={"id": "vt-moi-1", "hamlet": "ap-2"}
        )
        assert_error(again, 409, "conflict")
        bad = await r.client.put("/api/devices/vt-ap-1-1", json={"hamlet": "ap-99"})
        assert_error(bad, 404)
        wrong = await r.client.put("/api/devices/vt-ap-1-1", json={"lat": 123})
        assert_error(wrong, 400, "invalid_input", fields=["lat"])
        moved = await r.client.put(
            "/api/devices/vt-ap-1-1", json={"hamlet": "ap-3", "notes": "chuyển sang ấp 3"}
        )
        assert moved.status_code == 200, moved.text
        with anyio.fail_after(10):
            while not any(
                any("hamlet/ap-3" in g for g in e["groups"]) for e in fleet.log.of("config")
            ):
                await anyio.sleep(0.1)
        got = (await r.client.get("/api/devices/vt-ap-1-1")).json()["device"]
        assert got["hamlet"] == "ap-3" and got["notes"] == "chuyển sang ấp 3"


async def test_metrics_are_exposed(running: Running) -> None:
    resp = await running.client.get("/metrics")
    assert resp.status_code == 200
    text = resp.text
    for name in (
        'loa_speakers_online{commune="vi-tan",hamlet="ap-1"}',
        "loa_alert_latency_seconds_bucket",
        "loa_late_frames_total",
        "loa_alarms_open",
        "loa_store_durable 1.0",
        "loa_store_syncs_total",
    ):
        assert name in text, name
    health = (await running.client.get("/api/health")).json()
    assert health["store"]["durable"] is True
    age = health["store"]["synced_s_ago"]
    assert age is not None and 0 <= age < 5  # the syncer keeps up (every 50 ms)


payloads = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=200).map(str.encode),
    st.dictionaries(
        st.sampled_from(["v", "state", "at_us", "uptime_s", "volume", "rssi_dbm", "stream",
                         "outcome", "id", "ok", "item", "counters", "fw", "codecs"]),
        st.one_of(st.none(), st.integers(), st.text(max_size=20), st.booleans(), st.floats()),
    ).map(lambda d: __import__("json").dumps(d).encode()),
)  # fmt: skip


async def test_no_device_payload_breaks_ingest_or_touches_another_device(
    running: Running,
) -> None:
    s = running.services
    router: Router = s.router
    tails = ["presence", "telemetry", "report", "ack", "cache", "time/req", "cmd", "bogus"]
    other = "vt-ap-2-1"

    def state() -> list[dict[str, Any]]:
        return s.store.query(
            "SELECT d.*, t.payload FROM devices d LEFT JOIN telemetry_last t ON t.device_id=d.id"
            " WHERE d.id=?",
            [other],
        )

    with anyio.fail_after(5):  # retained presence from earlier runs, written in a batch
        while s.facts.queued:
            await anyio.sleep(0.05)
    before = state()
    seen: list[tuple[str, bytes]] = []

    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    @given(tail=st.sampled_from(tails), payload=payloads, huge=st.booleans())
    def feed(tail: str, payload: bytes, huge: bool) -> None:
        seen.append(
            (f"loa/v1/{COMMUNE}/dev/vt-ap-1-1/{tail}", payload + (b" " * 70_000 if huge else b""))
        )

    feed()
    for topic, payload in seen:
        await router(topic, payload)  # never raises
    await router("loa/v1/vi-tan/dev/khong-ai/telemetry", b"{}")
    await router("rác", b"\x00")
    with anyio.fail_after(5):
        while s.facts.queued:
            await anyio.sleep(0.05)
    assert state() == before
    assert router.dropped["vt-ap-1-1"] > 0
    assert (await running.client.get("/api/health")).status_code == 200


async def rollout_done(r: Running, rid: str) -> dict[str, Any]:
    with anyio.fail_after(30):
        while True:
            ro = (await r.client.get(f"/api/rollouts/{rid}")).json()["rollout"]
            if ro["status"] != "running":
                return dict(ro)
            await anyio.sleep(0.2)


async def test_firmware_rolls_out_in_waves_and_a_corrupt_image_halts_it(
    tmp_path: Path, broker: Any
) -> None:
    settings = make_settings(tmp_path, broker, fleet={"firmware_timeout_s": 20})
    specs = [s for s in demo_data.fleet_specs() if s.hamlet in ("ap-1", "ap-2")]
    ids = [s.id for s in specs]
    image = bytes(range(256)) * 400  # 100 KB: four slices
    octet = {"content-type": "application/octet-stream"}
    async with serve(settings) as r, fleet_of(r, specs) as fleet:
        await wait_online(r, 6)
        up = await r.client.post("/api/firmware?version=2.0.0", content=image, headers=octet)
        assert up.status_code == 201, up.text
        fw = up.json()["firmware"]
        start = await r.client.post(
            f"/api/firmware/{fw['id']}/rollouts", json={"devices": ids, "canary": 2}
        )
        assert start.status_code == 202, start.text
        done = await rollout_done(r, start.json()["rollout"]["id"])
        assert done["status"] == "completed" and done["waves"] == 2, done
        assert [d["wave"] for d in done["devices"]].count(0) == 2
        assert {d["state"] for d in done["devices"]} == {"installed"}
        assert {sp.firmware for sp in fleet.speakers.values()} == {"2.0.0"}
        with anyio.fail_after(10):  # the new version shows in the registry (presence)
            while {
                d["firmware"]
                for d in (await r.client.get(f"/api/communes/{COMMUNE}/devices")).json()["devices"]
                if d["id"] in ids
            } != {"2.0.0"}:
                await anyio.sleep(0.2)

        # the next image: one canary speaker receives it damaged
        fleet.speakers[ids[1]].corrupt_firmware = True
        up = await r.client.post("/api/firmware?version=2.1.0", content=image[::-1], headers=octet)
        fw2 = up.json()["firmware"]
        start = await r.client.post(
            f"/api/firmware/{fw2['id']}/rollouts", json={"devices": ids, "canary": 2}
        )
        halted = await rollout_done(r, start.json()["rollout"]["id"])
        assert halted["status"] == "halted"
        assert ids[1] in halted["reason"] and "SHA-256" in halted["reason"], halted["reason"]
        states = {d["device_id"]: d["state"] for d in halted["devices"]}
        assert states[ids[0]] == "installed" and states[ids[1]] == "refused"
        assert all(states[d] == "pending" for d in ids[2:])  # later waves never got it
        assert fleet.speakers[ids[1]].firmware == "2.0.0"  # refused, not installed
        assert fleet.speakers[ids[5]].firmware == "2.0.0"

        # refusals
        assert_error(await r.client.post("/api/firmware", content=image, headers=octet), 400)
        dup = await r.client.post("/api/firmware?version=2.0.0", content=image, headers=octet)
        assert_error(dup, 409, "conflict")
        wrong = await r.client.post("/api/firmware?version=3", json={"x": 1})
        assert_error(wrong, 415)
        empty = await r.client.post("/api/firmware?version=3", content=b"", headers=octet)
        assert_error(empty, 400)
        bad = await r.client.post(
            f"/api/firmware/{fw['id']}/rollouts", json={"devices": ["khong-co"]}
        )
        assert_error(bad, 400, "invalid_input")


def unit_fleet(tmp_path: Path, **fleet: Any) -> tuple[Store, Any, Any]:
    from broadcaster.fleet.service import FleetService
    from broadcaster.settings import FleetSettings
    from devices.signing import Signer
    from loa.clock import FakeClock

    async def nothing(topic: str, payload: bytes) -> None:
        return None

    store = Store(tmp_path / "unit.db")
    demo_data.seed(store)
    clock = FakeClock()
    service = FleetService(store, clock, FleetSettings(**fleet), Signer.generate(), nothing)
    service.start_run()
    return store, clock, service


def test_telemetry_is_thinned_then_dropped_and_floods_are_refused(tmp_path: Path) -> None:
    from devices.messages import Telemetry

    store, clock, service = unit_fleet(tmp_path, telemetry_full_days=1, telemetry_keep_days=3)
    now = clock.now_us()
    hour = 3_600_000_000
    for k in range(4 * 24 * 6):  # every 10 minutes for four days back
        at = now - k * hour // 6
        store.set_telemetry("vt-ap-1-1", at, Telemetry(at_us=at, uptime_s=k, volume=80))
    service.prune()
    rows = [r["at_us"] for r in store.query("SELECT at_us FROM telemetry ORDER BY at_us")]
    recent = [t for t in rows if t >= now - 24 * hour]
    older = [t for t in rows if t < now - 24 * hour]
    assert len(recent) == 24 * 6 + 1  # the last day in full
    assert min(rows) >= now - 3 * 24 * hour  # nothing beyond three days
    assert len(older) <= 2 * 24 + 1  # one per hour in between
    store.close()


async def test_alarms_are_fed_live_and_raised_once(tmp_path: Path) -> None:
    store, clock, service = unit_fleet(tmp_path, silent_s=5)
    feed = service.watch()
    clock.advance(6)  # nobody was ever seen: 27 offline alarms
    events = service.check()
    service._push(events)
    first = feed.receive_nowait()
    assert first["event"] == "raised" and first["kind"] == "offline"
    assert len(events) == 27
    assert service.check() == []  # raised once, not again
    store.close()


async def test_a_telemetry_flood_is_dropped_and_counted(running: Running) -> None:
    from devices.messages import Telemetry, dump

    s = running.services
    topic = f"loa/v1/{COMMUNE}/dev/vt-ap-1-1/telemetry"
    for k in range(50):
        await s.router(topic, dump(Telemetry(at_us=k, uptime_s=k, volume=80)))
    with anyio.fail_after(5):  # telemetry is written in batches
        while s.facts.queued:
            await anyio.sleep(0.05)
    rows = s.store.query("SELECT COUNT(*) AS n FROM telemetry WHERE device_id='vt-ap-1-1'")
    assert rows[0]["n"] == 1
    assert s.router.dropped["vt-ap-1-1"] == 49


def test_a_missed_programme_and_a_failed_alert_raise_alarms_until_played(tmp_path: Path) -> None:
    store, clock, service = unit_fleet(tmp_path)
    now = clock.now_us()

    def aired(bid: str, at: int, outcome: str, alert: bool) -> None:
        store.db.table("broadcasts").insert({"id": bid, "title": bid, "created_us": at})
        link = ("alert_broadcasts", {"alert_id": "a", "broadcast_id": bid})
        link = link if alert else ("occurrences", {"programme_id": bid, "broadcast_id": bid})
        store.db.table(link[0]).insert(link[1])
        store.db.table("deliveries").insert(
            {"broadcast_id": bid, "device_id": "vt-ap-1-1", "commune_id": COMMUNE,
             "hamlet_id": "ap-1", "targeted": 1, "online_at_start": 1, "outcome": outcome,
             "reason": "no proof of play received"}
        )  # fmt: skip

    for d in store.devices(COMMUNE):  # everyone online and heard from
        store.set_presence(COMMUNE, d.id, online=True, at_us=now, firmware="", codecs=[])
    aired("tin-sang", now - 1000, "no_report", alert=False)
    aired("bao-so-3", now - 500, "no_report", alert=True)
    kinds = {(e["device_id"], e["kind"]) for e in service.check()}
    assert kinds == {("vt-ap-1-1", "missed_programme"), ("vt-ap-1-1", "failed_alert")}
    aired("tin-chieu", now - 100, "played", alert=False)
    cleared = service.check()
    assert [(e["event"], e["kind"]) for e in cleared] == [("cleared", "missed_programme")]
    store.close()


def test_a_check_writes_only_what_still_holds_when_it_writes(tmp_path: Path) -> None:
    """The rules run on a snapshot in a worker thread; by the time the rows are written
    a speaker may have been deleted (its alarms cleared with it). No alarm is raised for
    it, none is cleared twice, and no event tells of a row that was not written."""
    from broadcaster.fleet.service import _plan

    store, clock, service = unit_fleet(tmp_path, silent_s=5)
    clock.advance(6)  # nobody was ever seen: every speaker offline
    plan = _plan(store, service.settings, clock.now_us(), service._run)
    assert any(a["device_id"] == "vt-ap-1-1" for a in plan.raised)
    store.delete_device(COMMUNE, "vt-ap-1-1", clock.now_us())  # meanwhile
    events = service._write(plan)
    assert events and all(e["device_id"] != "vt-ap-1-1" for e in events)
    assert not store.query("SELECT 1 FROM alarms WHERE device_id='vt-ap-1-1'")

    # The other way: alarms to clear, one of them cleared meanwhile by a deletion.
    for d in store.devices(COMMUNE):
        store.set_presence(COMMUNE, d.id, online=True, at_us=clock.now_us(), firmware="", codecs=[])
    clock.advance(1)
    plan = _plan(store, service.settings, clock.now_us(), service._run)
    gone = plan.cleared[0][1]
    device = store.query("SELECT device_id FROM alarms WHERE id=?", [gone])[0]["device_id"]
    cleared_at = clock.now_us() - 500
    store.delete_device(COMMUNE, device, cleared_at)
    events = service._write(plan)
    assert gone not in {e["id"] for e in events}
    assert (
        store.query("SELECT cleared_us FROM alarms WHERE id=?", [gone])[0]["cleared_us"]
        == cleared_at
    )
    assert len(events) == len(plan.cleared) - 1
    assert not store.query("SELECT 1 FROM alarms WHERE cleared_us IS NULL")
    store.close()
