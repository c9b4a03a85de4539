"""Setting up speakers in bulk (CSV import and export) and provisioning them in one step.

Issuing a speaker's credentials answers with its provisioning file (device id, broker
URLs, user name and password, the controller's public keys with their key ids, the
time-sync topics, the commune's time zone) and the same JSON as a QR code; the file
can be fetched once more with GET within 15 minutes (for ``loa provision``), then it
is gone: the password is never stored in clear.
"""

from __future__ import annotations

import hashlib
import ipaddress
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
from devices.frames import MINOR_VERSION, VERSION
from devices.signing import public_to_hex
from devices.topics import DeviceTopic, device_topic
from loa.errors import Conflict, Forbidden, InvalidInput, LoaError, NotFound, PayloadTooLarge

from ..auth.guard import principal, require_targets
from ..auth.roles import Perm
from ..places.service import Places
from ..places.targeting import Target
from ..services import Services
from ..web.bodies import ok, path_id, svc
from . import speaker_csv

logger = logging.getLogger(__name__)
KEEP_S = 900.0  # how long an issued provisioning file can be fetched (once)


def broker_urls(s: Services) -> list[str]:
    """Where a speaker connects. With a TLS listener only there: the plaintext listener
    is then the controller's alone, on loopback (issue 16)."""
    if s.settings.broker.public_urls:
        return list(s.settings.broker.public_urls)
    host = s.settings.mqtt.host
    if s.settings.broker.tls_port:
        return [f"mqtts://{host}:{s.settings.broker.tls_port}"]
    return [f"mqtt://{host}:{s.settings.mqtt.port}"]


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


def require_speaker(
    request: Request, commune: str, hamlet: str | None = None, device: str = ""
) -> None:
    """An account limited to hamlets acts only on speakers in them (and puts speakers
    only into them); others are checked by area in the middleware."""
    who = principal(request)
    if who.area.hamlets:
        target = Target(commune, device=device) if device else Target(commune, hamlet=hamlet)
        require_targets(who, [target], svc(request).store)


def _own(request: Request, device: str) -> None:
    commune = svc(request).store.device_commune(device)
    if commune is not None:
        require_speaker(request, commune, device=device)


async def issue(request: Request) -> JSONResponse:
    """New broker credentials for a speaker, as its provisioning file and a QR code."""
    s = svc(request)
    device = path_id(request, "device")
    _own(request, device)
    password = await anyio.to_thread.run_sync(s.broker_access.provision, device)
    p = bundle(s, device, password)
    _kept(request)[device] = (s.clock.monotonic(), p)
    s.audit("device.credentials", device=device)
    qr = await anyio.to_thread.run_sync(qr_svg, provisioning.to_json(p, compact=True))
    note = "shown once: put it in the speaker's provisioning now"
    if not s.settings.broker.public_urls and _loopback(s.settings.mqtt.host):
        note += (
            f" (the broker address {s.settings.mqtt.host} is this machine only: a real "
            "speaker needs broker.public_urls set to an address it can reach)"
        )
    if qr is None:
        note += " (the file is too large for a QR code: use the JSON or loa provision)"
    return ok(
        {
            "username": device,
            "password": password,
            "note": note,
            "provisioning": p.model_dump(),
            "qr": qr,
        },
        201,
    )


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def qr_svg(text: str) -> str | None:
    """The text as a QR code (an SVG data URI), or None when it does not fit in one
    (a long CA chain): the credentials are issued already, so no error may lose them."""
    try:
        qr = segno.make(text, error="l")
    except segno.DataOverflowError:
        return None
    return str(qr.svg_data_uri(scale=3, border=2))


async def fetch_once(request: Request) -> JSONResponse:
    device = path_id(request, "device")
    _own(request, device)
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
            raise InvalidInput("send the CSV as the form field 'file'; nothing was imported")
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
    s: Services,
    commune: str,
    rows: list[speaker_csv.SpeakerRow],
    create_hamlets: bool,
    only: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """Every row or none (one transaction). ``only``: the hamlets of an account limited
    to hamlets; every row (and every speaker it moves) must be in them."""
    places = Places(s.store)
    where = {
        r["id"]: (r["commune_id"], r["hamlet_id"])
        for r in s.store.query("SELECT id, commune_id, hamlet_id FROM devices")
    }
    owners = {k: v[0] for k, v in where.items()}
    if only and create_hamlets:
        raise Forbidden(
            "hamlets are created by an admin of the whole commune; nothing was imported"
        )
    new_hamlets: list[str] = []
    resolved: list[tuple[speaker_csv.SpeakerRow, str | None]] = []
    found: dict[str, str | None] = {}  # hamlet as written → id (a file names few hamlets)
    for r in rows:
        if owners.get(r.id, commune) != commune:
            raise speaker_csv.refuse(r.row, "id", f"{r.id!r} is a speaker of another commune")
        if r.hamlet not in found:
            try:
                found[r.hamlet] = places.find_hamlet(commune, r.hamlet)
            except InvalidInput as exc:
                raise speaker_csv.refuse(r.row, "hamlet", exc.message) from None
        hid = found[r.hamlet]
        if hid is None and not create_hamlets:
            raise speaker_csv.refuse(
                r.row,
                "hamlet",
                f"no hamlet {r.hamlet!r} in this commune (add ?create_hamlets=1 to create it)",
            )
        if only and (hid not in only or (r.id in where and where[r.id][1] not in only)):
            raise Forbidden(
                f"row {r.row}: you may set up speakers only in your hamlets "
                f"({', '.join(sorted(only))}); nothing was imported"
            )
        resolved.append((r, hid))
    created, updated = [], []
    db = s.store.db
    with db.atomic():  # plain SQL: thousands of rows stay well under a second on the loop
        for r, known in resolved:
            hid = known or places.find_hamlet(commune, r.hamlet)  # made by an earlier row?
            if hid is None:
                hid = places.create_hamlet(commune, r.hamlet)["id"]
                new_hamlets.append(hid)
            values: dict[str, object] = {**r.values, "hamlet_id": hid}
            if r.id in owners:
                updated.append(r.id)
            else:
                values.setdefault("name", r.id)
                db.execute(
                    "INSERT INTO devices (commune_id, id, hamlet_id, name) VALUES (?, ?, ?, ?)",
                    [commune, r.id, hid, values["name"]],
                )
                created.append(r.id)
            columns = ", ".join(f"{k}=?" for k in values)  # keys: speaker_csv's columns
            db.execute(
                f"UPDATE devices SET {columns} WHERE commune_id=? AND id=?",  # noqa: S608
                [*values.values(), commune, r.id],
            )
    return {
        "created": created,
        "updated": updated,
        "hamlets_created": sorted(new_hamlets),
    }


async def import_csv(request: Request) -> JSONResponse:
    s = svc(request)
    commune = path_id(request, "commune")
    s.store.require_commune(commune)
    create_hamlets = request.query_params.get("create_hamlets", "0") in ("1", "true", "yes")
    if create_hamlets and not principal(request).can(Perm.PLACES):
        raise Forbidden(
            "creating hamlets needs an admin (places); ask one, or import without "
            "create_hamlets=1; nothing was imported"
        )
    data = await _body(request)
    rows = await anyio.to_thread.run_sync(
        lambda: speaker_csv.parse(speaker_csv.decode(data))
    )  # a file of thousands of rows: parsed off the event loop
    try:
        result = _apply(s, commune, rows, create_hamlets, principal(request).area.hamlets)
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


async def keys(request: Request) -> JSONResponse:
    """The controller public keys a speaker must trust (protocol.md, *Keys*): the key it
    signs with now, then any other key a rotation announces. Public, never secret."""
    s = svc(request)
    signing = s.signer.public_hex()
    listed = [signing, *(k for k in s.settings.security.trusted_keys if k != signing)]
    return ok(
        {
            "protocol": f"{VERSION}.{MINOR_VERSION}",
            "keys": [
                {
                    "public_key": k,
                    "key_id": hashlib.sha256(bytes.fromhex(k)).digest()[:4].hex(),
                    "signing": k == signing,
                }
                for k in listed
            ],
        }
    )


async def device_revoke(request: Request) -> JSONResponse:
    s = svc(request)
    device = path_id(request, "device")
    await anyio.to_thread.run_sync(s.broker_access.revoke, device)
    s.audit("device.revoke", device=device)
    commune = s.store.device_commune(device)
    if commune is not None:  # the broker drops it without a will: say so ourselves
        s.store.set_presence(
            commune,
            device,
            online=False,
            at_us=s.clock.now_us(),
            firmware="",
            codecs=[],
            reason="broker credentials revoked",
        )
    return ok({})


async def device_delete(request: Request) -> JSONResponse:
    """Take a speaker out of the registry (stolen, broken beyond repair, registered by
    mistake): it can no longer log in to the broker, its retained config is cleared and
    it leaves its zones; the broadcasts it played stay in the history. Refused while a
    live programme or an unfinished alert names it."""
    s = svc(request)
    device = path_id(request, "device")
    commune = s.store.device_commune(device)
    if commune is None:
        raise NotFound(f"speaker {device!r} does not exist")
    require_speaker(request, commune, device=device)
    Places(s.store).refuse_device_in_use(commune, device)
    # On the loop, like every write on the shared writer connection: a transaction in a
    # worker thread would take in whatever the loop wrote meanwhile (indexed deletes only).
    s.store.delete_device(commune, device, s.clock.now_us())
    await anyio.to_thread.run_sync(s.broker_access.apply)  # its broker user is gone
    try:
        await s.link.publish(
            device_topic(commune, device, DeviceTopic.CONFIG), b"", qos=1, retain=True
        )
    except LoaError as exc:  # the broker is away: the retained sweep clears it later
        logger.warning("retained config of deleted speaker %s not cleared: %s", device, exc)
    _kept(request).pop(device, None)  # an unfetched provisioning file dies with it
    s.audit("device.delete", device=device, commune=commune)
    logger.info("speaker %s/%s deleted", commune, device)
    return ok({"deleted": device})


routes = [
    Route("/api/devices/{device}", device_delete, methods=["DELETE"]),
    Route("/api/keys", keys),
    Route("/api/devices/{device}/credentials", device_revoke, methods=["DELETE"]),
    Route("/api/devices/{device}/credentials", issue, methods=["POST"]),
    Route("/api/communes/{commune}/devices/import", import_csv, methods=["POST"]),
    Route("/api/communes/{commune}/devices/export.csv", export_csv, methods=["GET"]),
    Route("/api/devices/{device}/provisioning", fetch_once, methods=["GET"]),
]
