"""Issue 16, finding 2 (the rule): one object policy for every route, as a matrix.

Every role × every kind of object a route can name (programme, broadcast — stored,
live and relay —, speaker, command, alarm, account, rollout, firmware, report) × the
object inside / outside / partly outside the caller's area, through the very function
the middleware runs, against objects in a real SQLite file. Plus: a route naming an
object nobody knows how to place fails a test (and is refused at run time).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.routing import Route, WebSocketRoute

from broadcaster.app import ROUTES
from broadcaster.auth.middleware import check_objects
from broadcaster.auth.policy import (
    DEPLOYMENT,
    POLICY,
    Part,
    require_grant,
    within,
)
from broadcaster.auth.reach import IN_COMMUNE, KINDS, OWN
from broadcaster.auth.roles import GRANTS, Area, Principal, Role
from broadcaster.places import demo_data
from broadcaster.store.store import Store
from loa.errors import Forbidden

PROVINCE, COMMUNE, OTHER = "can-tho", "vi-tan", "xa-khac"
HAMLET_CALLER = Area(PROVINCE, COMMUNE, frozenset({"ap-1"}))
COMMUNE_CALLER = Area(PROVINCE, COMMUNE)
PLACEMENTS = ("inside", "outside", "partly")


def who(role: Role, area: Area) -> Principal:
    return Principal(str(uuid.uuid4()), f"u-{role.value}", frozenset({role}), area, "token")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    s = Store(Path(tmp_path_factory.mktemp("policy")) / "loa.db")
    demo_data.seed(s)
    s.upsert_commune(OTHER, PROVINCE, "Xã Khác", "Asia/Ho_Chi_Minh")
    s.upsert_hamlet(OTHER, "ap-x", "Ấp X", 0)
    s.upsert_device(OTHER, "xk-1", "ap-x")
    yield s
    s.close()


def _targets(placement: str, level: str) -> list[dict[str, str]]:
    """Where an object lies, relative to a caller of ``level`` (hamlet ap-1 or commune)."""
    if level == "hamlet":
        inside = [{"commune": COMMUNE, "hamlet": "ap-1"}]
        outside = [{"commune": COMMUNE, "hamlet": "ap-2"}]
    else:
        inside = [{"commune": COMMUNE}]
        outside = [{"commune": OTHER}]
    return {"inside": inside, "outside": outside, "partly": inside + outside}[placement]


def _device(placement: str, level: str) -> str | None:
    if placement == "partly":
        return None  # a speaker is in one place
    if level == "hamlet":
        return "vt-ap-1-1" if placement == "inside" else "vt-ap-2-1"
    return "vt-ap-1-1" if placement == "inside" else "xk-1"


def make_object(store: Store, kind: str, placement: str, level: str) -> str | None:
    """An object of ``kind`` at ``placement``; its id (None: no such combination)."""
    db, oid = store.db, str(uuid.uuid4())
    targets = _targets(placement, level)
    if kind == "programme":
        db.table("programmes").insert(
            {"id": oid, "commune_id": COMMUNE, "title": "t", "targets": json.dumps(targets)}
        )
    elif kind in ("broadcast", "live", "relay"):
        groups = [
            {
                "commune": t["commune"],
                "kind": "hamlet" if "hamlet" in t else "all",
                "id": t.get("hamlet", ""),
            }
            for t in targets
        ]
        db.table("broadcasts").insert(
            {"id": oid, "stream_id": oid, "kind": kind, "targets": json.dumps(groups)}
        )
    elif kind in ("device", "command"):
        return _device(placement, level)
    elif kind == "alarm":
        device = _device(placement, level)
        if device is None:
            return None
        commune = store.device_commune(device)
        db.table("alarms").insert({"id": oid, "device_id": device, "commune_id": commune})
    elif kind == "user":
        if placement == "partly":
            area = (
                (PROVINCE, COMMUNE, ["ap-1", "ap-2"]) if level == "hamlet" else (PROVINCE, None, [])
            )
        elif placement == "inside":
            area = (PROVINCE, COMMUNE, ["ap-1"] if level == "hamlet" else [])
        else:
            area = (PROVINCE, COMMUNE, ["ap-2"]) if level == "hamlet" else (PROVINCE, OTHER, [])
        db.table("users").insert(
            {
                "id": oid,
                "username": f"x-{oid[:8]}",
                "password_hash": "-",
                "roles": '["viewer"]',
                "province_id": area[0],
                "commune_id": area[1],
                "hamlets": json.dumps(area[2]),
            }
        )
    elif kind == "rollout":
        devices = {
            "inside": [_device("inside", level)],
            "outside": [_device("outside", level)],
            "partly": [_device("inside", level), _device("outside", level)],
        }[placement]
        db.table("rollouts").insert({"id": oid, "status": "completed"})
        db.table("rollout_devices").insert_all(
            [{"rollout_id": oid, "device_id": d, "wave": 0} for d in devices]
        )
    else:
        raise AssertionError(kind)
    return oid


#: object kind → the routes acting on or reading it (method, path, the path parameter)
ROUTES_OF: dict[str, list[tuple[str, str]]] = {
    "programme": [
        ("GET", "/api/programmes/{programme}"),
        ("PUT", "/api/programmes/{programme}"),
        ("DELETE", "/api/programmes/{programme}"),
        ("POST", "/api/programmes/{programme}/submit"),
        ("POST", "/api/programmes/{programme}/approve"),
        ("POST", "/api/programmes/{programme}/return"),
    ],
    "broadcast": [
        ("GET", "/api/broadcasts/{broadcast}"),
        ("POST", "/api/broadcasts/{broadcast}/stop"),
    ],
    "live": [("POST", "/api/broadcasts/{broadcast}/stop")],
    "relay": [("POST", "/api/broadcasts/{broadcast}/stop")],
    "device": [
        ("GET", "/api/devices/{device}"),
        ("PUT", "/api/devices/{device}"),
        ("POST", "/api/devices/{device}/credentials"),
        ("DELETE", "/api/devices/{device}/credentials"),
    ],
    "command": [
        ("POST", "/api/devices/{device}/commands"),
        ("GET", "/api/devices/{device}/commands"),
    ],
    "alarm": [("POST", "/api/alarms/{alarm}/ack")],
    "user": [("GET", "/api/users/{user}"), ("PUT", "/api/users/{user}")],
    "rollout": [("GET", "/api/rollouts/{rollout}")],
}
PARAM = {"live": "broadcast", "relay": "broadcast", "command": "device"}


def expected(role: Role, method: str, path: str, kind: str, placement: str, level: str) -> bool:
    perm = POLICY[(method, path)]
    assert perm is not None
    if perm not in GRANTS[role]:
        return False
    if placement == "inside":
        return True
    reading = method == "GET" and kind != "user"  # accounts are managed whole
    # reading reaches the caller's whole commune, never another commune
    return reading and level == "hamlet"


CASES = [
    (role, kind, placement, level)
    for role in Role
    for kind in ROUTES_OF
    for placement in PLACEMENTS
    for level in ("hamlet", "commune")
]


@pytest.mark.parametrize(("role", "kind", "placement", "level"), CASES)
def test_every_role_on_every_object_kind_inside_outside_and_partly(
    store: Store, role: Role, kind: str, placement: str, level: str
) -> None:
    oid = make_object(store, kind, placement, level)
    if oid is None:
        pytest.skip("a speaker cannot be partly somewhere")
    caller = who(role, HAMLET_CALLER if level == "hamlet" else COMMUNE_CALLER)
    for method, path in ROUTES_OF[kind]:
        want = expected(role, method, path, kind, placement, level)
        perm = POLICY[(method, path)]
        assert perm is not None
        try:
            if not caller.can(perm):
                raise Forbidden("role")
            check_objects(caller, method, {PARAM.get(kind, kind): oid}, store)
            got = True
        except Forbidden:
            got = False
        assert got == want, (role, method, path, placement, level)


def test_every_route_naming_an_object_has_an_object_check() -> None:
    """A new route with ``{thing}`` in its path fails here until reach.py knows where a
    thing lies (and the middleware refuses it meanwhile)."""
    for r in ROUTES:
        if isinstance(r, (Route, WebSocketRoute)):
            for name in re.findall(r"\{(\w+)", r.path):
                assert name in KINDS or name in OWN or name in IN_COMMUNE, (r.path, name)


def test_a_route_naming_an_unknown_kind_is_refused(store: Store) -> None:
    with pytest.raises(Forbidden, match="no access rule"):
        check_objects(who(Role.ADMIN, Area(PROVINCE)), "GET", {"gizmo": "x"}, store)


def test_reports_audit_firmware_are_areas_too(store: Store) -> None:
    # commune report: the commune's accounts read it; others do not
    for area, ok in ((HAMLET_CALLER, True), (Area(PROVINCE, OTHER), False)):
        try:
            check_objects(who(Role.VIEWER, area), "GET", {"commune": COMMUNE}, store)
            got = True
        except Forbidden:
            got = False
        assert got is ok
    # province report and uploads: province accounts only
    with pytest.raises(Forbidden):
        check_objects(who(Role.ADMIN, COMMUNE_CALLER), "GET", {"province": PROVINCE}, store)
    check_objects(who(Role.VIEWER, Area(PROVINCE)), "GET", {"province": PROVINCE}, store)
    with pytest.raises(Forbidden):
        check_objects(who(Role.ADMIN, Area("ha-noi")), "GET", {"province": PROVINCE}, store)
    # firmware images: a shared catalogue read by all, changed by the province only
    shared = (Part(DEPLOYMENT, shared=True),)
    assert within(HAMLET_CALLER, shared, read=True)
    assert not within(HAMLET_CALLER, shared)
    assert within(Area(PROVINCE), shared)


@pytest.mark.parametrize(
    ("granter", "area", "roles", "ok"),
    [
        (HAMLET_CALLER, HAMLET_CALLER, [Role.BROADCASTER], True),
        (HAMLET_CALLER, COMMUNE_CALLER, [Role.ADMIN], False),  # widening
        (HAMLET_CALLER, Area(PROVINCE, COMMUNE, frozenset({"ap-1", "ap-2"})), [Role.VIEWER], False),
        (COMMUNE_CALLER, HAMLET_CALLER, [Role.ADMIN], True),
        (COMMUNE_CALLER, Area(PROVINCE), [Role.VIEWER], False),
    ],
)
def test_nobody_grants_an_area_wider_than_their_own(
    granter: Area, area: Area, roles: list[Role], ok: bool
) -> None:
    admin = who(Role.ADMIN, granter)
    try:
        require_grant(admin, area, roles)
        got = True
    except Forbidden:
        got = False
    assert got is ok


def test_nobody_grants_a_role_they_do_not_hold() -> None:
    tech = Principal("t", "t", frozenset({Role.TECHNICIAN}), COMMUNE_CALLER, "token")
    with pytest.raises(Forbidden, match="do not hold"):
        require_grant(tech, HAMLET_CALLER, [Role.OPERATOR])
