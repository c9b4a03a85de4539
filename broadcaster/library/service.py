"""The media library: uploads, spoken text, composed bulletins and generated signals.

Everything becomes an item the same way (:func:`audio.master.prepare`): trimmed,
loudness-normalised, kept as a FLAC master with Opus and MP3 renditions, a SHA-256 of
each, and a waveform. ffmpeg runs in worker threads, at most two items at a time.
A refused item stores nothing: files are written only after every step succeeded, and
removed again if the database refuses the row.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import unicodedata
import uuid
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import anyio

from audio import ffmpeg as ff
from audio import tones
from audio.compose import Part, Step, plan, render
from audio.encode import Stored
from audio.ingest import decode_to_file
from audio.master import Prepared, prepare
from audio.master_file import PreparedFiles, prepare_file
from audio.settings import AudioSettings
from audio.tts import SpeechEngine, speak
from loa.clock import Clock
from loa.errors import AudioError, NotFound, ToolMissing

from ..store.rows import MediaRow
from ..store.store import Store

logger = logging.getLogger(__name__)

#: Generated signals kept ready for alerts: name → (kind of sound, seconds).
SIGNALS: dict[str, tuple[str, float]] = {
    "chime-open": ("chime-open", 0.0),
    "chime-close": ("chime-close", 0.0),
    "test-tone": ("test-tone", 5.0),
    "siren-wail": ("wail", 8.0),
    "siren-yelp": ("yelp", 6.0),
    "siren-steady": ("steady", 6.0),
    "all-clear": ("all_clear", 6.0),
}
#: Signals already encoded in this process, by id: they depend only on the settings,
#: so another app in the same process (tests, benches) reuses them.
_ENCODED: dict[str, Prepared] = {}
_SIGNAL_NS = uuid.UUID("6f1c1b7e-4d5a-4a39-9a57-0c0a7d1b2c3d")


def signal_id(name: str, settings: AudioSettings) -> str:
    """A stable id per signal and encoding settings: re-encoded only when they change."""
    key = f"{name}|{settings.sample_rate}|{settings.opus_bitrate_kbps}|{settings.mp3_bitrate_kbps}"
    return str(uuid.uuid5(_SIGNAL_NS, key + f"|{settings.opus_frame_ms}|{settings.loudness_lufs}"))


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text).strip()


class Library:
    def __init__(
        self,
        store: Store,
        settings: AudioSettings,
        media_dir: Path,
        clock: Clock,
        engine: SpeechEngine | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.media_dir = media_dir
        self.clock = clock
        self.engine = engine
        media_dir.mkdir(parents=True, exist_ok=True)
        swept = self.sweep_temp()
        if swept:
            logger.warning("removed %d temporary files a previous run left behind", swept)
        # Decoding holds a whole recording as PCM: at most two at a time.
        self._ingest_slots = anyio.Semaphore(2)

    def sweep_temp(self) -> int:
        """At start-up: uploads and half-written files of a previous run are removed."""
        count = 0
        for path in [*self.media_dir.glob(".upload-*"), *self.media_dir.glob("*.part")]:
            path.unlink(missing_ok=True)
            count += 1
        return count

    def temp_path(self, suffix: str = "") -> Path:
        """A private temporary file inside the media folder (same disk, cleaned by caller)."""
        fd, name = tempfile.mkstemp(prefix=".upload-", suffix=suffix[:16], dir=self.media_dir)
        os.close(fd)
        return Path(name)

    # --- making items -----------------------------------------------------------------

    async def add_file(
        self, source: Path, *, commune_id: str | None, title: str, filename: str
    ) -> dict[str, Any]:
        """Decode, check, normalise, encode and store; AudioError and nothing stored if refused."""
        if commune_id is not None:
            self.store.require_commune(commune_id)
        name = _nfc(filename)[:200] or "upload"
        # On disk from end to end (decode, trim, loudness, encode): memory stays flat
        # however long the recording; the slots bound CPU and disk, not memory.
        async with self._ingest_slots:
            work = Path(tempfile.mkdtemp(prefix=".ingest-", dir=self.media_dir))
            try:
                decoded = await anyio.to_thread.run_sync(
                    decode_to_file, source, self.settings, work / "decoded.raw"
                )
                prepared = await anyio.to_thread.run_sync(
                    prepare_file, decoded.path, self.settings, work
                )
                decoded.path.unlink()
                return self._store(
                    prepared,
                    commune_id=commune_id,
                    kind="upload",
                    title=_nfc(title) or name,
                    filename=name,
                    peak_dbfs=decoded.peak_dbfs,
                )
            finally:
                shutil.rmtree(work, ignore_errors=True)

    async def add_text(self, text: str, *, commune_id: str | None, title: str) -> dict[str, Any]:
        """Speak Vietnamese text (TTS) and store it like any upload."""
        if commune_id is not None:
            self.store.require_commune(commune_id)
        text = _nfc(text)
        engine = self._engine()
        async with self._ingest_slots:
            pcm = await anyio.to_thread.run_sync(speak, engine, text, self.settings)
            prepared = await anyio.to_thread.run_sync(prepare, pcm, self.settings)
        return self._store(
            prepared,
            commune_id=commune_id,
            kind="tts",
            title=_nfc(title) or text[:80],
            filename="",
            source_text=text,
        )

    async def add_composed(
        self,
        parts: Sequence[Part],
        *,
        commune_id: str | None,
        title: str,
        repeat: int = 1,
        chimes: bool = True,
    ) -> dict[str, Any]:
        """A bulletin made of items and text, with chimes and a repeat count."""
        steps = plan(parts, repeat=repeat, chimes=chimes)
        for step in steps:  # refuse unknown or foreign items before any work
            if step.kind == "media":
                row = self.store.media_row(step.ref)
                if row["commune_id"] not in (None, commune_id):
                    raise NotFound(f"media {step.ref!r} does not exist in this library")
            if step.kind == "text":
                self._engine()
        prepared = await self._render(steps, self.settings)
        texts = [s.ref for s in steps if s.kind == "text"]
        return self._store(
            prepared,
            commune_id=commune_id,
            kind="composed",
            title=_nfc(title) or "Bản tin",
            filename="",
            source_text="\n".join(dict.fromkeys(texts)),
        )

    async def add_alert_audio(
        self,
        *,
        siren: str,
        text: str | None,
        media_id: str | None,
        repeat: int,
        commune_id: str | None,
        title: str,
        loudness_lufs: float | None = None,
    ) -> dict[str, Any]:
        """An alert as it airs: the siren (3–10 s), then the message ``repeat`` times,
        rendered to ``loudness_lufs`` (alerts are louder than bulletins), peaks limited.

        Voice-alarm practice (ISO 7240-16): an attention signal before the first
        message and no more than 30 s between messages; here 1 s after the siren and
        2 s between readings.
        """
        signal = f"siren-{siren}" if f"siren-{siren}" in SIGNALS else siren
        if signal not in SIGNALS:
            raise NotFound(f"there is no siren called {siren!r}")
        message: Step | None = None
        if media_id is not None:
            row = self.store.media_row(media_id)
            if row["commune_id"] not in (None, commune_id):
                raise NotFound(f"media {media_id!r} does not exist in this library")
            message = Step("media", media_id)
        elif (text or "").strip():
            self._engine()
            message = Step("text", _nfc(text or ""))
        steps = [Step("signal", signal)]
        for i in range(repeat if message is not None else 0):
            assert message is not None
            steps += [Step("pause", ms=2000 if i else 1000), message]
        settings = self._signal_settings()
        if loudness_lufs is not None:
            settings = settings.model_copy(update={"loudness_lufs": loudness_lufs})
        prepared = await self._render(steps, settings, application="lowdelay")
        return self._store(
            prepared,
            commune_id=commune_id,
            kind="alert",
            title=_nfc(title) or "Cảnh báo khẩn",
            filename="",
            source_text=message.ref if message is not None and message.kind == "text" else "",
        )

    async def _render(
        self, steps: Sequence[Step], settings: AudioSettings, application: str = "voip"
    ) -> Prepared:
        """Render a plan and prepare it, in worker threads, holding an ingest slot."""
        async with self._ingest_slots:
            pcm = await anyio.to_thread.run_sync(
                partial(render, steps, self._step_pcm, rate=self.settings.sample_rate)
            )
            prepared: Prepared = await anyio.to_thread.run_sync(
                partial(prepare, pcm, settings, application=application)
            )
        return prepared

    async def ensure_signals(self) -> int:
        """Encode the chimes, test tone and sirens once, so an alert never waits for ffmpeg.

        Two at a time in worker threads; returns how many were stored anew.
        """
        missing = []
        for name in SIGNALS:
            sid = signal_id(name, self.settings)
            try:
                self.store.media_row(sid)
            except NotFound:
                missing.append((name, sid))

        async def make(name: str, sid: str) -> None:
            prepared = _ENCODED.get(sid)
            if prepared is None:
                pcm = self.signal_pcm(name)
                prepared = await anyio.to_thread.run_sync(
                    partial(prepare, pcm, self._signal_settings(), normalise_loudness=False)
                )
                _ENCODED[sid] = prepared
            self._store(
                prepared, commune_id=None, kind="tone", title=name, filename="", media_id=sid
            )

        async with anyio.create_task_group() as tg:
            for name, sid in missing:
                tg.start_soon(make, name, sid)
        if missing:
            logger.info("stored %d chimes and sirens", len(missing))
        return len(missing)

    def signals(self) -> list[dict[str, Any]]:
        """The built-in chimes, test tone and sirens, ready to play."""
        return [self.store.media_info(signal_id(name, self.settings)) for name in SIGNALS]

    def signal(self, name: str) -> MediaRow:
        if name not in SIGNALS:
            raise NotFound(f"there is no signal called {name!r}")
        return self.store.media(signal_id(name, self.settings))

    def signal_pcm(self, name: str) -> bytes:
        rate = self.settings.sample_rate
        sound, seconds = SIGNALS[name]
        if sound == "chime-open":
            seg = tones.attention_chime(rate)
        elif sound == "chime-close":
            seg = tones.attention_chime(rate, closing=True)
        elif sound == "test-tone":
            seg = tones.test_tone(seconds, rate=rate)
        else:
            seg = tones.siren(sound, seconds, rate=rate)
        data: bytes = seg.set_frame_rate(rate).set_channels(1).set_sample_width(2).raw_data
        return data

    def _signal_settings(self) -> AudioSettings:
        return self.settings.model_copy(update={"trim_silence": False})

    # --- reading and deleting -----------------------------------------------------------

    def pcm(self, media_id: str) -> bytes:
        """The normalised PCM of an item, from its FLAC master (or its Opus rendition)."""
        row = self.store.media_row(media_id)
        path = row["master_path"] or row["path"]
        return ff.read_pcm(path, self.settings)

    def file(self, media_id: str, codec: str) -> tuple[Path, str]:
        """A rendition's file and MIME type, for preview and download."""
        row = self.store.media_row(media_id)
        column, mime = {
            "opus": ("path", "audio/ogg"),
            "mp3": ("mp3_path", "audio/mpeg"),
            "flac": ("master_path", "audio/flac"),
        }[codec]
        if not row[column]:
            raise NotFound(f"media {media_id!r} has no {codec} rendition")
        return Path(row[column]), mime

    def delete(self, media_id: str) -> None:
        """Remove an item from the library and its files; history keeps naming it."""
        row = self.store.media_row(media_id)
        self.store.delete_media(media_id, self.clock.now_us())
        for column in ("path", "mp3_path", "master_path"):
            if row[column]:
                Path(row[column]).unlink(missing_ok=True)

    # --- internals --------------------------------------------------------------------

    def _engine(self) -> SpeechEngine:
        if self.engine is None:
            raise ToolMissing("text-to-speech is not available: apt-get install espeak-ng")
        return self.engine

    def _step_pcm(self, step: Step) -> bytes:
        if step.kind == "media":
            return self.pcm(step.ref)
        if step.kind == "text":
            return speak(self._engine(), step.ref, self.settings)
        if step.kind == "chime":
            return self.signal_pcm(f"chime-{step.ref}")
        if step.kind == "signal":
            return self.signal_pcm(step.ref)
        raise AudioError(f"cannot render a {step.kind} step")

    def _store(
        self,
        prepared: Prepared | PreparedFiles,
        *,
        commune_id: str | None,
        kind: str,
        title: str,
        filename: str,
        source_text: str = "",
        peak_dbfs: float | None = None,
        media_id: str | None = None,
    ) -> dict[str, Any]:
        media_id = media_id or str(uuid.uuid4())
        written: list[Path] = []
        try:
            opus = self._write(f"{media_id}.opus", prepared.opus, written)
            mp3 = self._write(f"{media_id}.mp3", prepared.mp3, written)
            master = self._write(f"{media_id}.flac", prepared.master, written)
            frame_ms = self.settings.opus_frame_ms
            self.store.add_media(
                {
                    "id": media_id,
                    "commune_id": commune_id,
                    "kind": kind,
                    "title": title[:200],
                    "filename": filename,
                    "source_text": source_text,
                    "duration_ms": prepared.duration_ms,
                    "trimmed_ms": prepared.trimmed_ms,
                    "codec": "opus",
                    "bitrate_kbps": prepared.opus.bitrate_kbps,
                    "frame_ms": frame_ms,
                    "sha256": prepared.opus.sha256,
                    "bytes": prepared.opus.size,
                    "path": str(opus),
                    "peak_dbfs": round(peak_dbfs if peak_dbfs is not None else 0.0, 2),
                    "mp3_path": str(mp3),
                    "mp3_sha256": prepared.mp3.sha256,
                    "mp3_bytes": prepared.mp3.size,
                    "mp3_bitrate_kbps": prepared.mp3.bitrate_kbps,
                    "master_path": str(master),
                    "master_sha256": prepared.master.sha256,
                    "master_bytes": prepared.master.size,
                    "loudness_in_lufs": prepared.loudness_in.integrated_lufs,
                    "true_peak_in_dbtp": prepared.loudness_in.true_peak_dbtp,
                    "loudness_lufs": prepared.loudness_out.integrated_lufs,
                    "true_peak_dbtp": prepared.true_peak_dbtp,
                    "peaks": json.dumps(prepared.peaks),
                    "created_us": self.clock.now_us(),
                }
            )
        except BaseException:
            for path in written:
                path.unlink(missing_ok=True)
            raise
        return self.store.media_info(media_id)

    def _write(self, name: str, rendition: Stored, written: list[Path]) -> Path:
        """Write atomically (temp file, then rename) into the media folder."""
        final = self.media_dir / name
        tmp = final.with_name(final.name + ".part")
        try:
            rendition.save(tmp)
            tmp.replace(final)
        except BaseException:  # a full disk (ENOSPC) leaves no half-written file
            tmp.unlink(missing_ok=True)
            raise
        written.append(final)
        return final
