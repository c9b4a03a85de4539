"""The controller dies before a prefetched firing and comes back after it (issue 18,
item 1), with real processes: Mosquitto, ``loa serve`` (SIGKILL at T−5 s, back at
T+20 s) and ``loa sim``. The speakers that armed the item play it on time from their
cache; their proof of play, sent while the controller was away, is kept and the firing
is recorded as played from cache — within the grace (300 s) and past it (10 s) — with
no false ``missed_programme`` alarm."""

from __future__ import annotations

import signal
import time
from datetime import datetime
from pathlib import Path

import pytest

from broadcaster.broker.process import Broker, free_port, start_broker
from broadcaster.broker.supervisor import relaunch
from broadcaster.places import demo_data
from broadcaster.store.store import Store
from devices.signing import Signer
from tests.conftest import wav
from tests.faults import sim_process, stop
from tests.test_api import COMMUNE
from tests.test_schedule_restart import VN, controller, history, seeded, wait_for, wait_up

pytestmark = pytest.mark.e2e
AP1 = demo_data.device_ids("ap-1")


def armed(db: Path) -> int:
    """Speakers that armed this controller's own pushed firings (the session broker may
    also deliver other tests' queued cache reports, which the controller rightly keeps)."""
    store = Store(db)
    try:
        return int(
            store.query(
                "SELECT count(*) AS n FROM play_arms a JOIN prefetches f"
                " ON f.broadcast_id = a.broadcast_id WHERE a.state='armed'"
            )[0]["n"]
        )
    finally:
        store.close()


@pytest.mark.parametrize("grace_s", [300, 10])
def test_a_firing_played_from_cache_while_the_controller_was_down(
    tmp_path: Path, broker: Broker, grace_s: int
) -> None:
    token = seeded(tmp_path)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    boundary = (int(time.time()) // 60 + 10) * 60
    offset = boundary - 30 - time.time()  # the controller's clock: 30 s before P1

    def at(t: float) -> None:  # sleep until controller time boundary + t
        time.sleep(max(0.0, boundary + t - (time.time() + offset)))

    extra = {"scheduler.grace_s": grace_s, "fleet.check_s": 0.5, "mqtt.backoff_max_s": 0.5}
    pubkey = Signer.load_or_create(tmp_path / "signing.key").public_hex()
    specs = [s for s in demo_data.fleet_specs() if s.hamlet == "ap-1"]
    sim = sim_process(
        tmp_path,
        broker.host,
        broker.port,
        pubkey,
        specs,
        "--state-dir",
        str(tmp_path / "speakers"),
    )
    first = controller(tmp_path, broker, port, offset, **extra)
    second = None
    try:
        client = wait_up(url, token)
        wait_for(
            lambda: all(
                d["online"]
                for d in client.get(f"/api/communes/{COMMUNE}/devices").json()["devices"]
                if d["id"] in AP1
            ),
            timeout=30,
        )
        time.sleep(2)  # the speakers' first clock-sync answers
        up = client.post(f"/api/communes/{COMMUNE}/media", files={"file": ("tin.wav", wav(2.0))})
        assert up.status_code == 201, up.text
        media = up.json()["media"]["id"]
        at_vn = datetime.fromtimestamp(boundary, VN).strftime("%H:%M")
        p = client.post(
            f"/api/communes/{COMMUNE}/programmes",
            json={
                "title": "P1",
                "what": {"kind": "media", "media_id": media},
                "targets": [{"commune": COMMUNE, "hamlet": "ap-1"}],
                "when": {"kind": "daily", "at": at_vn},
            },
        )
        assert p.status_code == 201, p.text
        pid = p.json()["programme"]["id"]
        client.post(f"/api/programmes/{pid}/submit")
        assert client.post(f"/api/programmes/{pid}/approve").status_code == 200
        wait_for(lambda: armed(tmp_path / "loa.db") == len(AP1), timeout=40)
        at(-5)
        first.send_signal(signal.SIGKILL)  # the controller dies at T−5 s
        first.wait(10)
        at(20)
        second = controller(tmp_path, broker, port, offset, **extra)  # back at T+20 s
        client = wait_up(url, token)
        done = wait_for(
            lambda: (
                (h := history(client)).get("P1", {}).get("status") not in (None, "started") and h
            ),
            timeout=40,
        )
        p1 = done["P1"]
        assert p1["status"] == "played", p1
        assert "cache" in p1["reason"], p1
        b = client.get(f"/api/broadcasts/{p1['broadcast_id']}").json()["broadcast"]
        got = {d["device_id"]: d for d in b["deliveries"]}
        assert {got[d]["outcome"] for d in AP1} == {"played"}, got
        assert {got[d]["source"] for d in AP1} == {"cache"}
        assert b["status"] == "done", b
        time.sleep(2)  # a few fleet checks (every 0.5 s) after the outcome is known
        alarms = client.get(f"/api/communes/{COMMUNE}/alarms").json()["alarms"]
        assert not [a for a in alarms if a["kind"] == "missed_programme"], alarms
        assert sim.poll() is None
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(15)
        stop(sim)
    store = Store(tmp_path / "loa.db")
    try:  # played once: one broadcast for P1, nothing streamed again
        assert len(store.query("SELECT id FROM broadcasts")) == 1
        # every report of this test's streams was applied; reports of other tests'
        # streams (the session broker keeps the controller's queued messages) are
        # rightly kept as pending: this controller never knew those streams
        left = store.query(
            "SELECT count(*) AS n FROM pending_reports"
            " WHERE stream_id IN (SELECT stream_id FROM streams)"
        )
        assert left[0]["n"] == 0
    finally:
        store.close()


def test_a_25_s_broker_outage_across_a_prefetched_firing(tmp_path: Path) -> None:
    """The broker is away from T−5 s to T+20 s: armed speakers play the whole item from
    their cache (``loa sim`` used to crash on its clock-sync publish and stop after 3 of
    7 chunks), keep their proof of play and send it when the broker is back."""
    token = seeded(tmp_path)
    mqtt_port, port = free_port(), free_port()
    own = start_broker("auto", port=mqtt_port)
    url = f"http://127.0.0.1:{port}"
    boundary = (int(time.time()) // 60 + 10) * 60
    offset = boundary - 30 - time.time()

    def at(t: float) -> None:
        time.sleep(max(0.0, boundary + t - (time.time() + offset)))

    pubkey = Signer.load_or_create(tmp_path / "signing.key").public_hex()
    specs = [s for s in demo_data.fleet_specs() if s.hamlet == "ap-1"]
    sim = sim_process(tmp_path, own.host, mqtt_port, pubkey, specs)
    extra = {"mqtt.backoff_max_s": 0.3, "mqtt.backoff_min_s": 0.1}
    ctl = controller(tmp_path, own, port, offset, **extra)
    try:
        client = wait_up(url, token)
        wait_for(
            lambda: all(
                d["online"]
                for d in client.get(f"/api/communes/{COMMUNE}/devices").json()["devices"]
                if d["id"] in AP1
            ),
            timeout=30,
        )
        time.sleep(2)
        up = client.post(f"/api/communes/{COMMUNE}/media", files={"file": ("tin.wav", wav(6.0))})
        assert up.status_code == 201, up.text
        media = up.json()["media"]["id"]
        p = client.post(
            f"/api/communes/{COMMUNE}/programmes",
            json={
                "title": "P1",
                "what": {"kind": "media", "media_id": media},
                "targets": [{"commune": COMMUNE, "hamlet": "ap-1"}],
                "when": {
                    "kind": "daily",
                    "at": datetime.fromtimestamp(boundary, VN).strftime("%H:%M"),
                },
            },
        )
        assert p.status_code == 201, p.text
        pid = p.json()["programme"]["id"]
        client.post(f"/api/programmes/{pid}/submit")
        assert client.post(f"/api/programmes/{pid}/approve").status_code == 200
        wait_for(lambda: armed(tmp_path / "loa.db") == len(AP1), timeout=40)
        at(-5)
        own.process.terminate()  # the broker is away across the firing...
        own.process.wait(10)
        at(20)
        relaunch(own)  # ...for 25 s, then started again as Loa's supervisor does
        done = wait_for(
            lambda: (
                (h := history(client)).get("P1", {}).get("status") not in (None, "started") and h
            ),
            timeout=60,
        )
        bid = done["P1"]["broadcast_id"]

        # Speakers come back within their reconnect back-off (≤ 10 s) and send the proof
        # they kept; the record follows it, even after the broadcast was closed.
        def all_played() -> dict[str, object] | None:
            x: dict[str, object] = client.get(f"/api/broadcasts/{bid}").json()["broadcast"]
            ok = all(d["outcome"] == "played" for d in x["deliveries"])  # type: ignore[attr-defined]
            return x if ok else None

        b = wait_for(all_played, timeout=40)
        assert b["status"] == "done", b
        got = {d["device_id"]: d for d in b["deliveries"]}
        assert {got[d]["outcome"] for d in AP1} == {"played"}, got
        assert {got[d]["frames_played"] for d in AP1} == {b["chunks"]}
        p1 = wait_for(lambda: (p := history(client)["P1"])["status"] == "played" and p)
        assert p1["broadcast_id"] == bid
        assert sim.poll() is None, (tmp_path / "sim.log").read_text()
    finally:
        if ctl.poll() is None:
            ctl.send_signal(signal.SIGTERM)
            ctl.wait(15)
        stop(sim)
        own.stop()
