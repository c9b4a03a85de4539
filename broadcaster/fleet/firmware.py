"""Firmware: images with a signed manifest, rolled out in waves (canary first).

Each device of the current wave gets a FIRMWARE offer (version, SHA-256, size, the
manifest signature) and the image in FIRMWARE_DATA slices on its own ``dev/{id}/fw``
topic, verifies hash and signature before installing, and answers on
``dev/{id}/fw/status``. A wave passes when every device in it installed; one refusal
or timeout halts the rollout with the reason, and later waves never get the image.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from pathlib import Path
from typing import Any

import anyio

from devices.frames import Codec, Frame, FrameType, encode_frame
from devices.items import slices
from devices.messages import (
    MANIFEST_CONTEXT,
    FirmwareOffer,
    FirmwareStatus,
    dump,
    manifest_bytes,
)
from devices.signing import Signer
from devices.topics import DeviceTopic, device_topic
from loa.clock import Clock
from loa.errors import BrokerError, Conflict, FieldError, InvalidInput, NotFound

from ..settings import FleetSettings
from ..store.store import Store
from .service import Publish

logger = logging.getLogger(__name__)
FINAL = ("installed", "refused", "timeout")


class Firmware:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        settings: FleetSettings,
        signer: Signer,
        publish: Publish,
        directory: Path,
    ) -> None:
        self.store = store
        self.db = store.db
        self.clock = clock
        self.settings = settings
        self.signer = signer
        self.publish = publish
        self.dir = directory
        self._changed = anyio.Event()

    def add(self, version: str, image: bytes) -> dict[str, Any]:
        """Store an image and sign its manifest."""
        version = version.strip()
        if not version or len(version) > 64:
            raise InvalidInput(
                "give the firmware version (1-64 characters)",
                errors=[FieldError("version", "required", "required")],
            )
        if not image:
            raise InvalidInput(
                "the firmware image is empty", errors=[FieldError("file", "empty", "empty")]
            )
        if len(image) > self.settings.firmware_max_bytes:
            raise InvalidInput(
                f"the image is over {self.settings.firmware_max_bytes} bytes",
                errors=[FieldError("file", "too large", "too_large")],
            )
        if self.store.query("SELECT id FROM firmware WHERE version=?", [version]):
            raise Conflict(f"firmware {version!r} was already uploaded")
        sha = hashlib.sha256(image).hexdigest()
        sig = self.signer.sign(MANIFEST_CONTEXT + manifest_bytes(version, sha, len(image)))
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / f"{sha}.bin"
        part = path.with_name(path.name + ".part")
        try:  # all or nothing: a full disk leaves no half-written image behind
            part.write_bytes(image)
            part.replace(path)
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        row = {
            "id": str(uuid.uuid4()),
            "version": version,
            "sha256": sha,
            "size": len(image),
            "path": str(path),
            "key_id": self.signer.key_id.hex(),
            "manifest_sig": sig.hex(),
            "created_us": self.clock.now_us(),
        }
        self.db.table("firmware").insert(row, pk="id")
        return {k: v for k, v in row.items() if k != "path"}

    def images(self) -> list[dict[str, Any]]:
        return self.store.query(
            "SELECT id, version, sha256, size, key_id, manifest_sig, created_us FROM firmware"
            " ORDER BY created_us DESC"
        )

    def plan(self, firmware_id: str, devices: list[str], canary: int, actor: str) -> str:
        """Record a rollout: wave 0 = the first ``canary`` devices, wave 1 = the rest."""
        if not self.store.query("SELECT id FROM firmware WHERE id=?", [firmware_id]):
            raise NotFound(f"firmware {firmware_id!r} does not exist")
        unknown = [d for d in devices if self.store.device_commune(d) is None]
        if unknown or not devices or len(set(devices)) != len(devices):
            raise InvalidInput(
                "choose existing speakers, each once",
                errors=[FieldError("devices", f"unknown: {', '.join(unknown)}", "unknown")],
            )
        if self.store.query("SELECT id FROM rollouts WHERE status='running'"):
            raise Conflict("a rollout is already running; wait for it to finish or halt")
        rid = str(uuid.uuid4())
        canary = max(0, min(canary, len(devices)))
        waves = [devices[:canary], devices[canary:]] if canary else [devices]
        waves = [w for w in waves if w]
        with self.db.atomic():
            self.db.table("rollouts").insert(
                {
                    "id": rid,
                    "firmware_id": firmware_id,
                    "status": "running",
                    "reason": "",
                    "wave": 0,
                    "waves": len(waves),
                    "created_us": self.clock.now_us(),
                    "ended_us": None,
                    "actor": actor,
                },
                pk="id",
            )
            self.db.table("rollout_devices").insert_all(
                [
                    {
                        "rollout_id": rid,
                        "device_id": d,
                        "wave": n,
                        "state": "pending",
                        "detail": "",
                        "at_us": None,
                    }
                    for n, wave in enumerate(waves)
                    for d in wave
                ],
                pk=("rollout_id", "device_id"),
            )
        return rid

    def get(self, rollout_id: str) -> dict[str, Any]:
        rows = self.store.query("SELECT * FROM rollouts WHERE id=?", [rollout_id])
        if not rows:
            raise NotFound(f"rollout {rollout_id!r} does not exist")
        out = dict(rows[0])
        out["devices"] = self.store.query(
            "SELECT device_id, wave, state, detail, at_us FROM rollout_devices"
            " WHERE rollout_id=? ORDER BY wave, device_id",
            [rollout_id],
        )
        return out

    def on_status(self, device: str, status: FirmwareStatus) -> None:
        self.db.execute(
            "UPDATE rollout_devices SET state=?, detail=?, at_us=? WHERE rollout_id=?"
            " AND device_id=? AND state='sent'",
            [status.state, status.detail, self.clock.now_us(), status.rollout, device],
        )
        self._changed.set()

    async def run(self, rollout_id: str) -> None:
        """Send wave after wave; halt at the first refusal or timeout (or when the MQTT
        broker stays unreachable)."""
        try:
            await self._run(rollout_id)
        except BrokerError as exc:
            self._end(rollout_id, "halted", f"MQTT broker unreachable: {exc.message}")
            logger.warning("rollout %s halted: %s", rollout_id, exc.message)

    async def _run(self, rollout_id: str) -> None:
        r = self.get(rollout_id)
        fw = self.store.query("SELECT * FROM firmware WHERE id=?", [r["firmware_id"]])[0]
        image = await anyio.Path(fw["path"]).read_bytes()
        parts = slices(image)
        offer = FirmwareOffer(
            rollout=rollout_id,
            version=fw["version"],
            sha256=fw["sha256"],
            size=fw["size"],
            slices=len(parts),
            key_id=fw["key_id"],
            manifest_sig=fw["manifest_sig"],
        )
        for wave in range(r["waves"]):
            self.db.execute("UPDATE rollouts SET wave=? WHERE id=?", [wave, rollout_id])
            members = [d["device_id"] for d in self.get(rollout_id)["devices"] if d["wave"] == wave]
            for device in members:
                await self._send(device, offer, parts)
                self.db.execute(
                    "UPDATE rollout_devices SET state='sent', at_us=? WHERE rollout_id=?"
                    " AND device_id=?",
                    [self.clock.now_us(), rollout_id, device],
                )
            failed = await self._wait(rollout_id, wave)
            if failed:
                reason = f"wave {wave + 1} of {r['waves']}: " + "; ".join(
                    f"{d['device_id']} {d['state']}" + (f" ({d['detail']})" if d["detail"] else "")
                    for d in failed
                )
                self._end(rollout_id, "halted", reason)
                logger.warning("rollout %s halted: %s", rollout_id, reason)
                return
        self._end(rollout_id, "completed", "")

    async def _send(self, device: str, offer: FirmwareOffer, parts: list[bytes]) -> None:
        commune = self.store.device_commune(device)
        assert commune is not None
        topic = device_topic(commune, device, DeviceTopic.FW)
        sid = uuid.UUID(offer.rollout)
        now = self.clock.now_us()
        head = Frame(FrameType.FIRMWARE, sid, 0, now, now, dump(offer), Codec.NONE)
        await self.publish(topic, encode_frame(head, self.signer, topic))
        for n, part in enumerate(parts, start=1):
            now = self.clock.now_us()
            frame = Frame(FrameType.FIRMWARE_DATA, sid, n, now, now, part, Codec.NONE)
            await self.publish(topic, encode_frame(frame, self.signer, topic))

    async def _wait(self, rollout_id: str, wave: int) -> list[dict[str, Any]]:
        """Until every device of the wave has a result; returns those that failed."""
        deadline = self.clock.now_us() + int(self.settings.firmware_timeout_s * 1e6)
        while True:
            rows = [d for d in self.get(rollout_id)["devices"] if d["wave"] == wave]
            failed = [d for d in rows if d["state"] in ("refused", "timeout")]
            if failed or all(d["state"] in FINAL for d in rows):
                return failed
            if self.clock.now_us() >= deadline:
                self.db.execute(
                    "UPDATE rollout_devices SET state='timeout', detail='no report in time'"
                    " WHERE rollout_id=? AND wave=? AND state='sent'",
                    [rollout_id, wave],
                )
                continue
            self._changed = anyio.Event()
            with anyio.move_on_after(1.0):
                await self._changed.wait()

    def _end(self, rollout_id: str, status: str, reason: str) -> None:
        self.db.execute(
            "UPDATE rollouts SET status=?, reason=?, ended_us=? WHERE id=?",
            [status, reason, self.clock.now_us(), rollout_id],
        )
