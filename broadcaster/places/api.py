"""Routes for places: provinces, communes, hamlets and zones, from an empty install.

Who may: an admin of every province creates provinces; a province's admin creates,
renames and deletes its communes; a commune's admin (not one limited to hamlets) its
hamlets and zones. The route policy asks for the ``places`` permission; the area rule
is checked here.
"""

from __future__ import annotations

from typing import Annotated

import anyio
from pydantic import Field
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from loa.errors import Forbidden

from ..auth.guard import principal
from ..store.store import Store
from ..web.bodies import Body, Id, ok, ok_off_loop, path_id, read_json, svc
from .service import Places

Name = Annotated[str, Field(min_length=1, max_length=400)]  # 100 once NFC: clean_name
Ids = Annotated[list[Id], Field(max_length=1000)]


class ProvinceIn(Body):
    name: Name
    id: Id | None = None


class RenameIn(Body):
    name: Name


class CommuneIn(Body):
    name: Name
    timezone: Annotated[str, Field(max_length=64)] = ""
    id: Id | None = None


class CommuneUpdate(Body):
    name: Name | None = None
    timezone: Annotated[str, Field(max_length=64)] | None = None


class HamletIn(Body):
    name: Name
    id: Id | None = None
    position: Annotated[int, Field(ge=0, le=10_000)] | None = None


class HamletUpdate(Body):
    name: Name | None = None
    position: Annotated[int, Field(ge=0, le=10_000)] | None = None


class ZoneIn(Body):
    name: Name
    id: Id | None = None
    hamlets: Ids = Field(default_factory=list)
    devices: Ids = Field(default_factory=list)


class ZoneUpdate(Body):
    name: Name | None = None
    hamlets: Ids | None = None
    devices: Ids | None = None


def places(request: Request) -> Places:
    return Places(svc(request).store)


def _everywhere(request: Request) -> None:
    area = principal(request).area
    if not area.is_everywhere:
        raise Forbidden(f"only an admin of every province creates provinces ({area.describe()})")


def _province_admin(request: Request) -> None:
    """Communes are the province's to create, rename and delete."""
    area = principal(request).area
    if not area.is_province:
        raise Forbidden(f"communes are managed by the province's admin ({area.describe()})")


def _commune_admin(request: Request) -> None:
    """Hamlets and zones: an admin of the whole commune (or above)."""
    area = principal(request).area
    if area.hamlets:
        raise Forbidden(f"hamlets and zones are managed for the whole commune ({area.describe()})")


async def province_list(request: Request) -> JSONResponse:
    area = principal(request).area
    rows = [
        p
        for p in places(request).provinces()
        if area.covers_province(p["id"]) or p["id"] == area.province
    ]
    return ok({"provinces": rows})


async def province_create(request: Request) -> JSONResponse:
    body = await read_json(request, ProvinceIn)
    _everywhere(request)
    p = places(request).create_province(body.name, body.id)
    svc(request).audit("province.create", province=p["id"])
    return ok({"province": p}, 201)


async def province_update(request: Request) -> JSONResponse:
    body = await read_json(request, RenameIn)
    pid = path_id(request, "province")
    p = places(request).rename_province(pid, body.name)
    svc(request).audit("province.update", province=pid)
    return ok({"province": p})


async def province_delete(request: Request) -> JSONResponse:
    pid = path_id(request, "province")
    places(request).delete_province(pid)
    svc(request).audit("province.delete", province=pid)
    return ok({})


async def commune_create(request: Request) -> JSONResponse:
    _province_admin(request)
    s = svc(request)
    body = await read_json(request, CommuneIn)
    pid = path_id(request, "province")
    timezone = body.timezone or s.settings.scheduler.timezone
    c = places(request).create_commune(pid, body.name, timezone, body.id)
    s.audit("commune.create", commune=c["id"], province=pid)
    return ok({"commune": c}, 201)


async def commune_get(request: Request) -> JSONResponse:
    return ok({"commune": places(request).commune(path_id(request, "commune"))})


async def commune_update(request: Request) -> JSONResponse:
    _province_admin(request)
    body = await read_json(request, CommuneUpdate)
    cid = path_id(request, "commune")
    old = svc(request).store.require_commune(cid)["timezone"]
    c = places(request).update_commune(cid, body.name, body.timezone)
    svc(request).audit("commune.update", commune=cid)
    if c["timezone"] != old:  # its programmes keep their local times in the new zone
        svc(request).programmes.follow_timezone(cid, old, c["timezone"])
    return ok({"commune": c})


async def commune_delete(request: Request) -> JSONResponse:
    _province_admin(request)
    cid = path_id(request, "commune")
    places(request).delete_commune(cid)
    svc(request).audit("commune.delete", commune=cid)
    return ok({})


async def hamlet_create(request: Request) -> JSONResponse:
    _commune_admin(request)
    body = await read_json(request, HamletIn)
    cid = path_id(request, "commune")
    h = places(request).create_hamlet(cid, body.name, body.id, body.position)
    svc(request).audit("hamlet.create", commune=cid, hamlet=h["id"])
    return ok({"hamlet": h}, 201)


async def hamlet_update(request: Request) -> JSONResponse:
    _commune_admin(request)
    body = await read_json(request, HamletUpdate)
    cid, hid = path_id(request, "commune"), path_id(request, "hamlet")
    h = places(request).update_hamlet(cid, hid, body.name, body.position)
    svc(request).audit("hamlet.update", commune=cid, hamlet=hid)
    return ok({"hamlet": h})


async def hamlet_delete(request: Request) -> JSONResponse:
    _commune_admin(request)
    cid, hid = path_id(request, "commune"), path_id(request, "hamlet")
    places(request).delete_hamlet(cid, hid)
    svc(request).audit("hamlet.delete", commune=cid, hamlet=hid)
    return ok({})


async def zone_list(request: Request) -> JSONResponse:
    cid = path_id(request, "commune")
    svc(request).store.require_commune(cid)
    return ok({"zones": places(request).zones(cid)})


async def _regroup(request: Request, cid: str, before: set[str], after: set[str]) -> None:
    """Speakers that joined or left a zone get their new signed config and broker ACL."""
    s = svc(request)
    moved = before ^ after
    if not moved:
        return
    for device in s.store.devices(cid):
        if device.id in moved:
            await s.facts.push_config(device)
    await anyio.to_thread.run_sync(s.broker_access.apply)


def _zone_devices(request: Request, cid: str, zid: str) -> set[str]:
    return {d.id for d in svc(request).store.devices(cid) if zid in d.zones}


async def zone_create(request: Request) -> JSONResponse:
    _commune_admin(request)
    body = await read_json(request, ZoneIn)
    cid = path_id(request, "commune")
    z = places(request).create_zone(cid, body.name, body.hamlets, body.devices, body.id)
    await _regroup(request, cid, set(), _zone_devices(request, cid, z["id"]))
    svc(request).audit("zone.create", commune=cid, zone=z["id"])
    return ok({"zone": z}, 201)


async def zone_update(request: Request) -> JSONResponse:
    _commune_admin(request)
    body = await read_json(request, ZoneUpdate)
    cid, zid = path_id(request, "commune"), path_id(request, "zone")
    before = _zone_devices(request, cid, zid)
    z = places(request).update_zone(cid, zid, body.name, body.hamlets, body.devices)
    await _regroup(request, cid, before, _zone_devices(request, cid, zid))
    svc(request).audit("zone.update", commune=cid, zone=zid)
    return ok({"zone": z})


async def zone_delete(request: Request) -> JSONResponse:
    _commune_admin(request)
    cid, zid = path_id(request, "commune"), path_id(request, "zone")
    before = _zone_devices(request, cid, zid)
    places(request).delete_zone(cid, zid)
    await _regroup(request, cid, before, set())
    svc(request).audit("zone.delete", commune=cid, zone=zid)
    return ok({})


async def communes(request: Request) -> JSONResponse:
    store = svc(request).store  # counts every commune's speakers: off the loop
    return ok({"communes": await store.read(Store.communes)})


async def hamlets(request: Request) -> JSONResponse:
    return ok({"hamlets": svc(request).store.hamlets(path_id(request, "commune"))})


async def devices(request: Request) -> JSONResponse:
    store = svc(request).store  # a big commune's list is read and encoded off the loop
    rows = await store.read(Store.device_details, path_id(request, "commune"))
    return await ok_off_loop({"devices": rows})


routes = [
    Route("/api/communes", communes),
    Route("/api/communes/{commune}/hamlets", hamlets),
    Route("/api/communes/{commune}/devices", devices),
    Route("/api/provinces", province_list, methods=["GET"]),
    Route("/api/provinces", province_create, methods=["POST"]),
    Route("/api/provinces/{province}", province_update, methods=["PUT"]),
    Route("/api/provinces/{province}", province_delete, methods=["DELETE"]),
    Route("/api/provinces/{province}/communes", commune_create, methods=["POST"]),
    Route("/api/communes/{commune}", commune_get, methods=["GET"]),
    Route("/api/communes/{commune}", commune_update, methods=["PUT"]),
    Route("/api/communes/{commune}", commune_delete, methods=["DELETE"]),
    Route("/api/communes/{commune}/hamlets", hamlet_create, methods=["POST"]),
    Route("/api/communes/{commune}/hamlets/{hamlet}", hamlet_update, methods=["PUT"]),
    Route("/api/communes/{commune}/hamlets/{hamlet}", hamlet_delete, methods=["DELETE"]),
    Route("/api/communes/{commune}/zones", zone_list, methods=["GET"]),
    Route("/api/communes/{commune}/zones", zone_create, methods=["POST"]),
    Route("/api/communes/{commune}/zones/{zone}", zone_update, methods=["PUT"]),
    Route("/api/communes/{commune}/zones/{zone}", zone_delete, methods=["DELETE"]),
]
