"""Accounts, sessions, CSRF, the role × route matrix, areas, lock-out, limits, audit,
and no secret in the logs — against the real app over HTTP."""

from __future__ import annotations

import logging
import re
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.routing import Mount, Route, WebSocketRoute

from broadcaster.app import ROUTES
from broadcaster.auth.accounts import Accounts, first_admin_line
from broadcaster.auth.policy import POLICY
from broadcaster.auth.roles import GRANTS, Area, Perm, Role
from broadcaster.settings import SecuritySettings, Settings
from broadcaster.store.store import Store
from loa.clock import SystemClock
from tests.conftest import Running, make_settings, serve
from tests.test_api import COMMUNE, assert_error
from tests.test_dispatch import upload

PROVINCE = "can-tho"
OTHER = "xa-khac"
PASSWORD = "mật-khẩu-rất-dài-1"


def route_keys() -> set[tuple[str, str]]:
    keys = set()
    for r in ROUTES:
        if isinstance(r, WebSocketRoute):
            keys.add(("WS", r.path))
        elif isinstance(r, Mount):
            keys.add(("GET", r.path))
        elif isinstance(r, Route):
            keys |= {(m, r.path) for m in (r.methods or {"GET"}) - {"HEAD"}}
    return keys


def test_every_route_has_an_access_rule_and_every_rule_a_route() -> None:
    assert route_keys() == set(POLICY)


def test_roles_grant_what_the_docs_say() -> None:
    assert GRANTS[Role.VIEWER] == {Perm.READ}
    assert Perm.APPROVE in GRANTS[Role.APPROVER] and Perm.APPROVE not in GRANTS[Role.BROADCASTER]
    assert Perm.ALERT in GRANTS[Role.OPERATOR] and Perm.ALERT not in GRANTS[Role.BROADCASTER]
    assert Perm.DEVICE in GRANTS[Role.TECHNICIAN] and Perm.USERS not in GRANTS[Role.TECHNICIAN]
    assert GRANTS[Role.ADMIN] == set(Perm)


def add_user(settings: Settings, name: str, roles: list[Role], area: Area) -> str:
    """Create an account and return an API token for it."""
    store = Store(Path(settings.db.path))
    try:
        if not store.query("SELECT id FROM communes WHERE id=?", [OTHER]):
            store.upsert_commune(OTHER, PROVINCE, "Xã Khác", "Asia/Ho_Chi_Minh")
            store.upsert_hamlet(OTHER, "ap-x", "Ấp X", 0)
            store.upsert_device(OTHER, "xk-1", "ap-x")
        accounts = Accounts(store, SystemClock(), settings.security)
        uid = accounts.create(name, PASSWORD, roles, area)["id"]
        token, _ = accounts.create_token(uid, "test")
        return token
    finally:
        store.close()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


SAMPLE = {
    "commune": COMMUNE,
    "province": PROVINCE,
    "media": "00000000-0000-4000-8000-000000000001",
    "broadcast": "00000000-0000-4000-8000-000000000002",
    "programme": "00000000-0000-4000-8000-000000000003",
    "alert": "00000000-0000-4000-8000-000000000004",
    "device": "vt-ap-1-1",
    "hamlet": "ap-9",
    "zone": "no-such-zone",
    "user": "00000000-0000-4000-8000-000000000005",
    "token": "00000000-0000-4000-8000-000000000006",
    "alarm": "00000000-0000-4000-8000-000000000007",
    "firmware": "00000000-0000-4000-8000-000000000008",
    "rollout": "00000000-0000-4000-8000-000000000009",
}


def concrete(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: SAMPLE[m.group(1)], path)


async def test_role_matrix_every_role_on_every_route(tmp_path: Path, broker: Any) -> None:
    """Each role × each route: allowed routes never answer 401/403 (they may refuse the
    empty body or the unknown id); the others answer 403 with the role named."""
    settings = make_settings(tmp_path, broker)
    async with serve(settings) as r:
        tokens = {
            role: add_user(settings, f"u-{role.value}", [role], Area(PROVINCE)) for role in Role
        }
        checked = 0
        for (method, path), perm in sorted(POLICY.items(), key=str):
            if method == "WS" or perm is None or path in ("/api/logout",):
                continue
            for role, token in tokens.items():
                req = r.client.build_request(
                    method,
                    concrete(path),
                    headers={**bearer(token), "content-type": "application/json"},
                    content=b"{}" if method in ("POST", "PUT") else None,
                )
                resp = await r.client.send(req, stream=True)  # live feeds never end
                if "event-stream" not in resp.headers.get("content-type", ""):
                    await resp.aread()
                await resp.aclose()
                allowed = perm in GRANTS[role]
                if allowed:
                    assert resp.status_code not in (401, 403), (role, method, path, resp.text)
                else:
                    err = assert_error(resp, 403, "forbidden")
                    assert role.value in err["error"], err
                assert resp.status_code != 500, (role, method, path, resp.text)
                checked += 1
        assert checked > 250


async def test_no_credentials_bad_token_and_public_routes(running: Running) -> None:
    async with httpx.AsyncClient(base_url=running.url) as anon:
        assert (await anon.get("/api/health")).status_code == 200
        home = await anon.get("/")
        assert home.status_code == 303 and home.headers["location"] == "/login?next=/"
        assert (await anon.get("/login")).status_code == 200
        err = assert_error(await anon.get("/api/communes"), 401, "unauthorized")
        assert "log in" in err["error"]
        bad = await anon.get("/api/communes", headers=bearer("loa_forged"))
        assert_error(bad, 401, "unauthorized")
        assert_error(await anon.get("/api/no-such-thing"), 404)


async def test_login_session_csrf_logout(tmp_path: Path, broker: Any) -> None:
    settings = make_settings(tmp_path, broker)
    async with serve(settings) as r:
        add_user(settings, "Bích.Ngọc", [Role.BROADCASTER], Area(PROVINCE, COMMUNE))
        async with httpx.AsyncClient(base_url=r.url) as web:
            resp = await web.post(
                "/api/login", json={"username": "bích.ngọc", "password": PASSWORD}
            )
            assert resp.status_code == 200, resp.text
            cookie = resp.headers["set-cookie"].lower()
            assert "httponly" in cookie and "samesite=strict" in cookie
            csrf = resp.json()["csrf_token"]
            me = (await web.get("/api/me")).json()
            assert me["user"]["username"] == "bích.ngọc" and me["csrf_token"] == csrf
            body = {"text": "Thông báo", "title": "t"}
            no_csrf = await web.post(f"/api/communes/{COMMUNE}/media/text", json=body)
            assert "CSRF" in assert_error(no_csrf, 403, "forbidden")["error"]
            wrong = await web.post(
                f"/api/communes/{COMMUNE}/media/text", json=body, headers={"x-csrf-token": "x"}
            )
            assert_error(wrong, 403, "forbidden")
            ok = await web.post(
                "/api/me/tokens", json={"name": "kịch bản"}, headers={"x-csrf-token": csrf}
            )
            assert ok.status_code == 201 and ok.json()["token"].startswith("loa_")
            await web.post("/api/logout", headers={"x-csrf-token": csrf})
            assert_error(await web.get("/api/me"), 401)


async def test_wrong_passwords_slow_that_address_for_that_name(tmp_path: Path, broker: Any) -> None:
    settings = make_settings(tmp_path, broker, security={"login_max_failures": 3})
    async with serve(settings) as r:
        add_user(settings, "lan", [Role.VIEWER], Area(PROVINCE))
        async with httpx.AsyncClient(base_url=r.url) as web:
            for _ in range(3):
                bad = await web.post("/api/login", json={"username": "lan", "password": "sai"})
                assert_error(bad, 401, "unauthorized")
            good = await web.post("/api/login", json={"username": "lan", "password": PASSWORD})
            assert "try again" in assert_error(good, 429, "rate_limited")["error"]
            nobody = await web.post("/api/login", json={"username": "ai", "password": "x"})
            assert assert_error(nobody, 401)["error"] == "wrong user name or password"
        failed = r.services.audit_log.query(action="login.failed")
        assert len(failed) == 5  # three wrong, one while waiting, one unknown user


async def test_login_attempts_are_rate_limited_per_address(tmp_path: Path, broker: Any) -> None:
    settings = make_settings(tmp_path, broker, security={"login_per_min": 3})
    async with serve(settings) as r, httpx.AsyncClient(base_url=r.url) as web:
        for _ in range(3):
            await web.post("/api/login", json={"username": "x", "password": "y"})
        resp = await web.post("/api/login", json={"username": "x", "password": "y"})
        assert "at most 3 a minute" in assert_error(resp, 429, "rate_limited")["error"]


async def test_a_commune_account_never_acts_outside_its_area(tmp_path: Path, broker: Any) -> None:
    settings = make_settings(tmp_path, broker)
    async with serve(settings) as r:
        media_id = await upload(r, 0.5)
        mine = bearer(add_user(settings, "vt", [Role.BROADCASTER], Area(PROVINCE, COMMUNE)))
        other = bearer(add_user(settings, "xk", [Role.BROADCASTER], Area(PROVINCE, OTHER)))
        hamlet = bearer(
            add_user(
                settings, "ap1", [Role.BROADCASTER], Area(PROVINCE, COMMUNE, frozenset({"ap-1"}))
            )
        )
        c = r.client
        play = {"media_id": media_id, "targets": [{"commune": COMMUNE}]}
        # another commune's broadcaster: cannot target, read or use vi-tan's things
        assert_error(await c.post("/api/broadcasts", json=play, headers=other), 403)
        assert_error(await c.get(f"/api/communes/{COMMUNE}/media", headers=other), 403)
        assert_error(await c.get(f"/api/media/{media_id}", headers=other), 403)
        cross = {"media_id": media_id, "targets": [{"commune": OTHER, "device": "xk-1"}]}
        assert_error(await c.post("/api/broadcasts", json=cross, headers=mine), 403)
        # a hamlet account: its hamlet and its speakers only
        assert_error(await c.post("/api/broadcasts", json=play, headers=hamlet), 403)
        ap2 = {"media_id": media_id, "targets": [{"commune": COMMUNE, "hamlet": "ap-2"}]}
        assert (
            "only your hamlets"
            in assert_error(await c.post("/api/broadcasts", json=ap2, headers=hamlet), 403)["error"]
        )
        own = {"media_id": media_id, "targets": [{"commune": COMMUNE, "device": "vt-ap-1-2"}]}
        assert (await c.post("/api/broadcasts", json=own, headers=hamlet)).status_code == 202
        prov = await c.post(f"/api/provinces/{PROVINCE}/bulletins", json={}, headers=mine)
        assert_error(prov, 403)
        assert (await c.post("/api/broadcasts", json=play, headers=mine)).status_code == 202


async def test_alerts_are_rate_limited_per_account(tmp_path: Path, broker: Any) -> None:
    settings = make_settings(tmp_path, broker, security={"alerts_per_min": 2})
    async with serve(settings) as r:
        for _ in range(2):
            await r.client.post(f"/api/communes/{COMMUNE}/alerts", json={})
        resp = await r.client.post(f"/api/communes/{COMMUNE}/alerts", json={})
        assert "too many alerts" in assert_error(resp, 429, "rate_limited")["error"]


async def test_body_size_is_limited(tmp_path: Path, broker: Any) -> None:
    settings = make_settings(tmp_path, broker, http={"max_body_bytes": 2048})
    async with serve(settings) as r:
        resp = await r.client.post("/api/broadcasts", json={"title": "x" * 5000})
        assert_error(resp, 413, "too_large")


async def test_audit_log_records_who_did_what_and_is_append_only(running: Running) -> None:
    media_id = await upload(running, 0.5)
    resp = await running.client.get("/api/audit", params={"action": "media"})
    records = resp.json()["audit"]
    assert any(a["actor"] == "svc-tests" and media_id in a["detail"].values() for a in records)
    bad = await running.client.get("/api/audit", params={"since_us": "hôm qua"})
    assert_error(bad, 400, "invalid_input")
    conn = sqlite3.connect(running.services.settings.db.path)
    try:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("UPDATE audit SET actor='someone else'")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("DELETE FROM audit")
    finally:
        conn.close()


async def test_admin_manages_accounts_and_bad_accounts_are_refused(running: Running) -> None:
    c = running.client
    good = {
        "username": "Trần.Văn.Ba",
        "password": PASSWORD,
        "roles": ["approver"],
        "area": {"province": PROVINCE, "commune": COMMUNE},
    }
    made = await c.post("/api/users", json=good)
    assert made.status_code == 201, made.text
    user = made.json()["user"]
    assert "password_hash" not in user and user["username"] == "trần.văn.ba"
    assert_error(await c.post("/api/users", json=good), 409, "conflict")
    cases = [
        ({**good, "username": "a b"}, "username"),
        ({**good, "username": "x1", "password": "ngắn"}, "password"),
        ({**good, "username": "x2", "roles": ["chief"]}, "roles.0"),
        ({**good, "username": "x3", "area": {"province": PROVINCE, "commune": "nowhere"}}, None),
        ({**good, "username": "x4", "area": {"province": PROVINCE, "hamlets": ["ap-1"]}}, None),
    ]
    for body, field in cases:
        err = assert_error(await c.post("/api/users", json=body), 400, "invalid_input")
        if field:
            assert any(e["field"] == field for e in err["errors"]), err
    upd = await c.put(f"/api/users/{user['id']}", json={"disabled": True})
    assert upd.json()["user"]["disabled"] is True


def test_first_admin_password_is_generated_and_shown_once(tmp_path: Path) -> None:
    store = Store(tmp_path / "loa.db")
    try:
        store.upsert_province(PROVINCE, "Cần Thơ")
        security = SecuritySettings()
        first = first_admin_line(store, SystemClock(), security)
        password = first.split("admin / ")[1].split()[0]
        assert len(password) >= 20
        again = first_admin_line(store, SystemClock(), security)
        assert password not in again
        accounts = Accounts(store, SystemClock(), security)
        assert accounts.authenticate("admin", password)["username"] == "admin"
        other = Store(tmp_path / "b.db")
        other.upsert_province(PROVINCE, "Cần Thơ")
        second = first_admin_line(other, SystemClock(), security)
        other.close()
        assert second.split("admin / ")[1].split()[0] != password  # never a fixed default
    finally:
        store.close()


async def test_no_secret_appears_in_the_logs(
    tmp_path: Path, broker: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = make_settings(tmp_path, broker)
    secrets: list[str] = []
    async with serve(settings) as r:
        secrets.append(r.token)
        body = {
            "username": "thu",
            "password": PASSWORD,
            "roles": ["viewer"],
            "area": {"province": PROVINCE},
        }
        secrets.append(PASSWORD)
        assert (await r.client.post("/api/users", json=body)).status_code == 201
        async with httpx.AsyncClient(base_url=r.url) as web:
            resp = await web.post("/api/login", json={"username": "thu", "password": PASSWORD})
            csrf = resp.json()["csrf_token"]
            assert csrf not in caplog.text
            secrets.append(web.cookies["loa_session"])
            made = await web.post(
                "/api/me/tokens", json={"name": "x"}, headers={"x-csrf-token": csrf}
            )
            secrets.append(made.json()["token"])
            await web.post("/api/login", json={"username": "thu", "password": "sai-" + PASSWORD})
            secrets.append("sai-" + PASSWORD)
    # the server's log (the test's own HTTP client logs the cookies it receives)
    server_log = "\n".join(
        f"{r.name} {r.getMessage()}"
        for r in caplog.records
        if not r.name.startswith(("httpcore", "httpx"))
    )
    text = server_log + (tmp_path / "loa.db").read_bytes().decode("latin-1")
    for secret in secrets:
        assert secret not in text
    assert "login" in server_log  # the events are logged, only without their secrets


async def test_every_unsafe_route_refuses_a_cookie_session_without_csrf(
    tmp_path: Path, broker: Any
) -> None:
    settings = make_settings(tmp_path, broker)
    async with serve(settings) as r:
        add_user(settings, "quan-tri", [Role.ADMIN], Area(PROVINCE))
        async with httpx.AsyncClient(base_url=r.url) as web:
            login = await web.post(
                "/api/login", json={"username": "quan-tri", "password": PASSWORD}
            )
            csrf = login.json()["csrf_token"]
            unsafe = sorted(
                (m, p) for (m, p), perm in POLICY.items() if m in ("POST", "PUT", "DELETE") and perm
            )
            for method, path in unsafe:
                resp = await web.request(method, concrete(path), json={})
                err = assert_error(resp, 403, "forbidden")
                assert "CSRF" in err["error"], (method, path)
                wrong = await web.request(
                    method, concrete(path), json={}, headers={"x-csrf-token": csrf + "x"}
                )
                assert_error(wrong, 403, "forbidden")
            assert len(unsafe) > 30
            # with the token the same session gets past the check (to the handler's own answer)
            ok = await web.post(
                "/api/me/tokens", json={"name": "x"}, headers={"x-csrf-token": csrf}
            )
            assert ok.status_code == 201
