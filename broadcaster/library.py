"""The media library: turn an upload (or spoken text) into a stored, encoded item."""

from __future__ import annotations

import os
import tempfile
import unicodedata
import uuid
from pathlib import Path
from typing import Any

import anyio

from audio.encode import encode_mp3, encode_opus
from audio.ingest import decode_file
from audio.ogg import opus_stream
from audio.settings import AudioSettings
from loa.clock import Clock

from .store import Store


class Library:
    def __init__(
        self, store: Store, settings: AudioSettings, media_dir: Path, clock: Clock
    ) -> None:
        self.store = store
        self.settings = settings
        self.media_dir = media_dir
        self.clock = clock
        media_dir.mkdir(parents=True, exist_ok=True)
        # Decoding holds a whole recording as PCM: at most two at a time.
        self._ingest_slots = anyio.Semaphore(2)

    def temp_path(self, suffix: str = "") -> Path:
        """A private temporary file inside the media folder (same disk, cleaned by caller)."""
        fd, name = tempfile.mkstemp(prefix=".upload-", suffix=suffix[:16], dir=self.media_dir)
        os.close(fd)
        return Path(name)

    async def add_file(
        self, source: Path, *, commune_id: str | None, title: str, filename: str
    ) -> dict[str, Any]:
        """Decode, check, encode and store; raises AudioError and stores nothing on refusal."""
        if commune_id is not None:
            self.store.require_commune(commune_id)
        async with self._ingest_slots:
            decoded = await anyio.to_thread.run_sync(decode_file, source, self.settings)
            rendition = await anyio.to_thread.run_sync(encode_opus, decoded.pcm, self.settings)
            mp3 = await anyio.to_thread.run_sync(
                encode_mp3, decoded.pcm, self.settings, self.settings.mp3_bitrate_kbps
            )
            peak_dbfs = decoded.peak_dbfs
            del decoded  # free the PCM before the next upload's turn
        packets = opus_stream(rendition.data).packets
        media_id = str(uuid.uuid4())
        final = self._write(f"{media_id}.opus", rendition.data)
        final_mp3 = self._write(f"{media_id}.mp3", mp3.data)
        title = unicodedata.normalize("NFC", title).strip() or unicodedata.normalize(
            "NFC", filename
        )
        row = {
            "id": media_id,
            "commune_id": commune_id,
            "title": title[:200],
            "filename": unicodedata.normalize("NFC", filename)[:200],
            "duration_ms": len(packets) * self.settings.opus_frame_ms,
            "codec": rendition.codec,
            "bitrate_kbps": rendition.bitrate_kbps,
            "frame_ms": self.settings.opus_frame_ms,
            "sha256": rendition.sha256,
            "bytes": len(rendition.data),
            "path": str(final),
            "peak_dbfs": round(peak_dbfs, 2),
            "mp3_path": str(final_mp3),
            "mp3_sha256": mp3.sha256,
            "mp3_bytes": len(mp3.data),
            "mp3_bitrate_kbps": mp3.bitrate_kbps,
            "created_us": self.clock.now_us(),
        }
        try:
            self.store.add_media(row)
        except Exception:
            final.unlink(missing_ok=True)
            final_mp3.unlink(missing_ok=True)
            raise
        return self.store.media_info(media_id)

    def _write(self, name: str, data: bytes) -> Path:
        """Write atomically (temp file, then rename) into the media folder."""
        final = self.media_dir / name
        tmp = final.with_name(final.name + ".part")
        tmp.write_bytes(data)
        tmp.replace(final)
        return final
