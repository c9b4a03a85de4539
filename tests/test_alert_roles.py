"""Alert boundaries: every alert action (create, CAP import, confirm, update, cancel,
all-clear) stays inside the account's area; CAP references resolve only within the
commune posted to; the audit actor is the account, never the CAP sender."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from broadcaster.auth.roles import Area, Role
from broadcaster.store.store import Store
from tests.conftest import Running, make_settings, serve
from tests.test_alerts import SHORT, act, targets
from tests.test_api import COMMUNE, assert_error
from tests.test_auth import OTHER, PROVINCE, add_user, bearer

CAP = Path(__file__).parent / "cap"
XML = {"content-type": "application/cap+xml"}


def document(area: str, ident: str) -> bytes:
    data = (CAP / "lu-ap3-vi-tan.xml").read_bytes()
    return data.replace("Ấp 3, xã Vị Tân".encode(), area.encode()).replace(
        b"CT-PCTT-2026-1130-017", ident.encode()
    )


def cancel_of(ident: str) -> bytes:
    return (
        (CAP / "lu-huy-ap3.xml")
        .read_bytes()
        .replace(b"CT-PCTT-2026-1130-017,", ident.encode() + b",")
        .replace(b"CT-PCTT-2026-1130-017-C", ident.encode() + b"-C")
    )


async def alert_count(r: Running) -> int:
    return len((await r.client.get(f"/api/communes/{COMMUNE}/alerts")).json()["alerts"])


def audit_actors(settings_path: str, action: str) -> set[str]:
    store = Store(Path(settings_path))
    try:
        rows = store.query("SELECT actor FROM audit WHERE action=?", [action])
    finally:
        store.close()
    return {r["actor"] for r in rows}


async def test_an_account_limited_to_ap_1_acts_on_nothing_outside_ap_1(
    tmp_path: Path, broker: Any
) -> None:
    settings = make_settings(tmp_path, broker)
    async with serve(settings) as r:
        ap1 = bearer(
            add_user(
                settings, "ap1-op", [Role.OPERATOR], Area(PROVINCE, COMMUNE, frozenset({"ap-1"}))
            )
        )
        c = r.client
        url = f"/api/communes/{COMMUNE}/alerts"
        # create: another hamlet, or the whole commune, is refused
        for where in (targets("ap-5"), [{"commune": COMMUNE}], targets("ap-1", "ap-5")):
            assert_error(await c.post(url, json={**SHORT, "targets": where}, headers=ap1), 403)
        # CAP import for Ấp 5 (and for the commune as a whole) is refused, nothing created
        for area, ident in (("Ấp 5, xã Vị Tân", "R-5"), ("Xã Vị Tân", "R-ALL")):
            resp = await c.post(f"{url}/cap", content=document(area, ident), headers={**XML, **ap1})
            assert_error(resp, 403)
        assert await alert_count(r) == 0
        # an alert for Ấp 3 made by someone else: no confirm, update, cancel or all-clear
        other = (await c.post(url, json={**SHORT, "targets": targets("ap-3")})).json()["alert"]
        base = f"/api/alerts/{other['id']}"
        assert_error(await c.post(f"{base}/confirm", headers=ap1), 403)
        change = {**SHORT, "targets": targets("ap-1")}
        assert_error(await c.post(f"{base}/update", json=change, headers=ap1), 403)
        await act(r, other["id"], "confirm")
        assert_error(await c.post(f"{base}/cancel", headers=ap1), 403)
        assert_error(await c.post(f"{base}/all-clear", headers=ap1), 403)
        # nor by a CAP Cancel for the Ấp 3 alert imported by the admin
        imported = await c.post(
            f"{url}/cap", content=document("Ấp 3, xã Vị Tân", "R-3"), headers=XML
        )
        assert imported.status_code == 201, imported.text
        resp = await c.post(f"{url}/cap", content=cancel_of("R-3"), headers={**XML, **ap1})
        assert_error(resp, 403)
        assert (await c.get(base)).json()["alert"]["status"] == "active"
        # inside Ấp 1 everything works, and the account is the actor
        mine = await c.post(
            f"{url}/cap", content=document("Ấp 1, xã Vị Tân", "R-1"), headers={**XML, **ap1}
        )
        assert mine.status_code == 201, mine.text
        alert = mine.json()["alert"]
        ok = await c.post(f"/api/alerts/{alert['id']}/confirm", headers=ap1)
        assert ok.status_code == 202, ok.text
        done = await c.post(
            f"/api/alerts/{alert['id']}/cancel", json={"reason": "thử"}, headers=ap1
        )
        assert done.status_code == 202, done.text
        events = done.json()["alert"]["events"]
        assert {e["actor"] for e in events} == {"ap1-op"}
        assert "bchpctt@cantho.gov.vn" in events[0]["detail"]  # the CAP sender, beside
    for action in ("alert.create", "alert.confirm", "alert.cancel"):
        assert "ap1-op" in audit_actors(settings.db.path, action)
        assert not any("@" in a for a in audit_actors(settings.db.path, action))


async def test_a_commune_cannot_touch_another_communes_alert(tmp_path: Path, broker: Any) -> None:
    settings = make_settings(tmp_path, broker)
    async with serve(settings) as r:
        other = bearer(add_user(settings, "xk-op", [Role.OPERATOR], Area(PROVINCE, OTHER)))
        c = r.client
        url = f"/api/communes/{COMMUNE}/alerts"
        imported = await c.post(
            url + "/cap", content=document("Ấp 3, xã Vị Tân", "X-3"), headers=XML
        )
        alert = imported.json()["alert"]
        base = f"/api/alerts/{alert['id']}"
        for action in ("confirm", "cancel", "all-clear"):
            assert_error(await c.post(f"{base}/{action}", headers=other), 403)
        await act(r, alert["id"], "confirm")
        # a CAP Cancel posted to the other commune, referencing Vị Tân's alert: unknown there
        for who in (other, r.auth):
            resp = await c.post(
                f"/api/communes/{OTHER}/alerts/cap",
                content=cancel_of("X-3"),
                headers={**XML, **who},
            )
            assert "does not have in this commune" in assert_error(resp, 400)["error"]
        # and it cannot post into Vị Tân at all
        resp = await c.post(url + "/cap", content=cancel_of("X-3"), headers={**XML, **other})
        assert_error(resp, 403)
        assert (await c.get(base)).json()["alert"]["status"] == "active"
