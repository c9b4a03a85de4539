"""A speaker's firmware updates: download an image in slices, check it, install it or say why not.

An image is installed only if its size, SHA-256 and the controller's signed manifest
all check out; installing is a reboot (uptime starts again) and a fresh presence.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable

from devices.frames import Frame, FrameType
from devices.messages import MANIFEST_CONTEXT, FirmwareOffer, FirmwareStatus, dump, manifest_bytes
from devices.topics import DeviceTopic
from loa.errors import LoaError, ProtocolError

from .device import Device, Publish

logger = logging.getLogger(__name__)


class FirmwareUpdater:
    def __init__(
        self,
        dev: Device,
        publish: Publish,
        announce: Callable[[], Awaitable[None]],
        *,
        corrupt: bool = False,
    ) -> None:
        self.dev = dev
        self._publish = publish
        self._announce = announce  # presence again, with the new version
        self.corrupt = corrupt  # fault injection: images arrive damaged
        self._fw: tuple[FirmwareOffer, bytearray, int] | None = None  # offer, data, next slice

    async def on_frame(self, frame: Frame, topic: str) -> None:
        """FIRMWARE starts a download; FIRMWARE_DATA slices must follow in order."""
        if frame.type is FrameType.FIRMWARE:
            offer = self.dev.parse(FirmwareOffer, frame, topic)
            if offer is not None:
                self._fw = (offer, bytearray(), 1)
            return
        if self._fw is None:
            return
        offer, data, want = self._fw
        if frame.seq != want:
            self._fw = None
            await self._status(offer, "refused", f"slice {want} lost")
            return
        data += frame.payload
        self._fw = (offer, data, want + 1)
        if want < offer.slices:
            return
        self._fw = None
        await self._install(offer, bytes(data))

    async def _install(self, offer: FirmwareOffer, image: bytes) -> None:
        dev = self.dev
        if self.corrupt:
            image = bytes([image[0] ^ 0xFF]) + image[1:]
        manifest = MANIFEST_CONTEXT + manifest_bytes(offer.version, offer.sha256, offer.size)
        try:
            dev.frames.verifier.verify(
                bytes.fromhex(offer.key_id), manifest, bytes.fromhex(offer.manifest_sig)
            )
        except ProtocolError as exc:
            await self._status(offer, "refused", f"manifest signature: {exc.message}"[:200])
            return
        if len(image) != offer.size:
            await self._status(offer, "refused", "size does not match the manifest")
        elif hashlib.sha256(image).hexdigest() != offer.sha256:
            await self._status(offer, "refused", "SHA-256 does not match the manifest")
        else:
            dev.firmware = offer.version
            dev.started_mono = dev.clock.monotonic()  # "installed": a reboot
            await self._status(offer, "installed")
            try:
                await self._announce()
            except LoaError as exc:
                logger.info("speaker %s: presence not sent: %s", dev.id, exc.message)

    async def _status(self, offer: FirmwareOffer, state: str, detail: str = "") -> None:
        status = FirmwareStatus(
            rollout=offer.rollout,
            version=offer.version if state == "installed" else self.dev.firmware,
            state=state,  # type: ignore[arg-type]
            detail=detail,
        )
        self.dev.event("firmware", state=state, detail=detail)
        await self._publish(DeviceTopic.FW_STATUS, dump(status))
