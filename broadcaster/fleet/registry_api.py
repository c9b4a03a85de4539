"""Setting up speakers in bulk (CSV import and export) and provisioning them in one step.

Issuing a speaker's credentials answers with its provisioning file (device id, broker
URLs, user name and password, the controller's public keys with their key ids, the
time-sync topics, the commune's time zone) and the same JSON as a QR code; the file
can be fetched once more with GET within 15 minutes (for ``loa provision``), then it
is gone: the password is never stored in clear.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio
import segno
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from devices import provisioning
from devices.signing import public_to_hex
from loa.errors import Conflict, LoaError, NotFound, PayloadTooLarge

from ..api import ok, path_id, svc
from ..places.service import Places
from ..services import Services
from . import speaker_csv

logger = logging.getLogger(__name__)
KEEP_S = 900.0  # how long an issued provisioning file can be fetched (once)


def broker_urls(s: Services) -> list[str]:
    if s.settings.broker.public_urls:
        return list(s.settings.broker.public_urls)
    host, urls = s.settings.mqtt.host, []
    if s.settings.broker.tls_port:
        urls.append(f"mqtts://{host}:{s.settings.broker.tls_port}")
    urls.append(f"mqtt://{host}:{s.settings.mqtt.port}")
    return urls


def bundle(s: Services, device: str, password: str) -> provisioning.Provisioning:
    rows = s.store.query(
        "SELECT d.commune_id, d.hamlet_id, c.timezone FROM devices d"
        " JOIN communes c ON c.id=d.commune_id WHERE d.id=?",
        [device],
    )
    if not rows:
        raise NotFound(f"speaker {device!r} does not exist")
    ca = Path(s.settings.security.broker_auth_dir) / "tls" / "ca.crt"
    ca_pem = ca.read_text() if s.settings.broker.tls_port and ca.exists() else ""
    return provisioning.build(
        device=device,
        commune=rows[0]["commune_id"],
        hamlet=rows[0]["hamlet_id"],
        timezone=rows[0]["timezone"],
        urls=broker_urls(s),
        password=password,
        public_keys=[public_to_hex(s.signer.public), *s.settings.security.trusted_keys],
        issued_us=s.clock.now_us(),
        ca_pem=ca_pem,
    )


def _kept(request: Request) -> dict[str, tuple[float, provisioning.Provisioning]]:
    state = request.app.state
    if not hasattr(state, "provisioning"):
        state.provisioning = {}
    kept: dict[str, tuple[float, provisioning.Provisioning]] = state.provisioning
    now = svc(request).clock.monotonic()
    for key in [k for k, (t, _) in kept.items() if now - t > KEEP_S]:
        del kept[key]
    return kept


async def issue(request: Request) -> JSONResponse:
    """New broker credentials for a speaker, as its provisioning file and a QR code."""
    s = svc(request)
    device = path_id(request, "device")
    password = await anyio.to_thread.run_sync(s.broker_access.provision, device)
    p = bundle(s, device, password)
    _kept(request)[device] = (s.clock.monotonic(), p)
    s.audit("device.credentials", device=device)
    qr = segno.make(provisioning.to_json(p, compact=True), error="l")
    return ok(
        {
            "username": device,
            "password": password,
            "note": "shown once: put it in the speaker's provisioning now",
            "provisioning": p.model_dump(),
            "qr": qr.svg_data_uri(scale=3, border=2),
        },
        201,
    )


async def fetch_once(request: Request) -> JSONResponse:
    device = path_id(request, "device")
    kept = _kept(request).pop(device, None)
    if kept is None:
        raise NotFound(
            f"no provisioning file waiting for {device!r}: issue its credentials "
            "(POST /api/devices/{device}/credentials); a file can be fetched once, "
            "within 15 minutes"
        )
    svc(request).audit("device.provisioning", device=device)
    return ok({"provisioning": kept[1].model_dump()})


async def _body(request: Request) -> bytes:
    limit = svc(request).settings.http.max_body_bytes
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        form = await request.form(max_files=1, max_fields=5)
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise LoaError("send the CSV as the form field 'file'")
        data = await upload.read(limit + 1)
    else:
        data = b""
        async for part in request.stream():
            data += part
            if len(data) > limit:
                break
    if len(data) > limit:
        raise PayloadTooLarge(f"the file is over {limit} bytes")
    return data


def _apply(
    s: Services, commune: str, rows: list[speaker_csv.SpeakerRow], create_hamlets: bool
) -> dict[str, Any]:
    """Every row or none (one transaction)."""
    places = Places(s.store)
    owners = {r["id"]: r["commune_id"] for r in s.store.query("SELECT id, commune_id FROM devices")}
    new_hamlets: dict[str, str] = {}  # name as written → id
    resolved: list[tuple[speaker_csv.SpeakerRow, str | None]] = []
    for r in rows:
        if owners.get(r.id, commune) != commune:
            raise speaker_csv.refuse(r.row, "id", f"{r.id!r} is a speaker of another commune")
        hid = places.find_hamlet(commune, r.hamlet)
        if hid is None and not create_hamlets:
            raise speaker_csv.refuse(
                r.row,
                "hamlet",
                f"no hamlet {r.hamlet!r} in this commune (add ?create_hamlets=1 to create it)",
            )
        resolved.append((r, hid))
    created, updated = [], []
    with s.store.db.atomic():
        for r, found in resolved:
            hid = found
            if hid is None:
                key = r.hamlet.strip().casefold()
                if key not in new_hamlets:
                    new_hamlets[key] = places.create_hamlet(commune, r.hamlet)["id"]
                hid = new_hamlets[key]
            values = dict(r.values)
            if r.id in owners:
                values["hamlet_id"] = hid
                s.store.db.table("devices").update((commune, r.id), values)
                updated.append(r.id)
            else:
                s.store.upsert_device(commune, r.id, hid, str(values.pop("name", "")))
                if values:
                    s.store.db.table("devices").update((commune, r.id), values)
                created.append(r.id)
    return {
        "created": created,
        "updated": updated,
        "hamlets_created": sorted(new_hamlets.values()),
    }


async def import_csv(request: Request) -> JSONResponse:
    s = svc(request)
    commune = path_id(request, "commune")
    s.store.require_commune(commune)
    create_hamlets = request.query_params.get("create_hamlets", "0") in ("1", "true", "yes")
    rows = speaker_csv.parse(speaker_csv.decode(await _body(request)))
    try:
        result = _apply(s, commune, rows, create_hamlets)
    except Conflict as exc:
        raise Conflict(f"{exc.message}; nothing was imported", errors=exc.errors) from None
    touched = set(result["created"]) | set(result["updated"])
    for device in s.store.devices(commune):
        if device.id in touched:
            await push_config(s, device)
    if result["updated"]:
        await anyio.to_thread.run_sync(s.broker_access.apply)  # hamlet moves: new ACLs
    s.audit(
        "device.import",
        commune=commune,
        created=len(result["created"]),
        updated=len(result["updated"]),
    )
    return ok(result, 201 if result["created"] else 200)


async def push_config(s: Services, device: Any) -> None:
    """Publish a speaker's retained signed config now (it is published again at every
    controller connect, so a broker that is down now only delays it)."""
    try:
        await s.facts.push_config(device)
    except LoaError as exc:
        logger.warning("config for %s not published yet: %s", device.id, exc.message)


async def export_csv(request: Request) -> Response:
    s = svc(request)
    commune = path_id(request, "commune")
    s.store.require_commune(commune)
    if request.query_params.get("template") in ("1", "true"):
        text, name = speaker_csv.render(speaker_csv.TEMPLATE_ROWS), "mau-danh-sach-loa.csv"
    else:
        names = {h["id"]: h["name"] for h in s.store.hamlets(commune)}
        rows = [
            {**d, "hamlet": names.get(d["hamlet"], d["hamlet"])}
            for d in s.store.device_details(commune)
        ]
        text, name = speaker_csv.render(rows), f"loa-{commune}.csv"
    return Response(
        text.encode("utf-8"),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}"},
    )


routes = [
    Route("/api/devices/{device}/credentials", issue, methods=["POST"]),
    Route("/api/communes/{commune}/devices/import", import_csv, methods=["POST"]),
    Route("/api/communes/{commune}/devices/export.csv", export_csv, methods=["GET"]),
    Route("/api/devices/{device}/provisioning", fetch_once, methods=["GET"]),
]
