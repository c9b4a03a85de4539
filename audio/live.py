"""Incremental re-encoding of live audio: any container in, Opus packets out as they come.

A browser's MediaRecorder (webm/opus or ogg/opus), a relayed radio stream (mp3, aac,
ogg) or a phone all arrive as a byte stream. One ffmpeg process per live source reads
it on stdin (only the ``pipe`` protocol and the audio demuxers of :mod:`audio.ingest`
are allowed), limits peaks, and writes Ogg Opus with one page per packet, which
:class:`audio.ogg.OggReader` turns into packets without waiting for the end.
"""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator
from contextlib import suppress

import anyio
from anyio.abc import Process

from loa.errors import AudioError

from .ffmpeg import find_ffmpeg
from .ingest import DEMUXERS
from .ogg import OggReader
from .settings import AudioSettings


def live_command(settings: AudioSettings, binary: str) -> list[str]:
    """The ffmpeg command line for a live source (low-latency flags, no network)."""
    return [
        binary,
        "-nostdin",
        "-hide_banner",
        "-loglevel",
        "error",
        "-probesize",
        "4096",
        "-analyzeduration",
        "0",
        "-protocol_whitelist",
        "pipe",
        "-format_whitelist",
        DEMUXERS,
        "-i",
        "pipe:0",
        "-map",
        "0:a:0",
        "-vn",
        "-ac",
        "1",
        "-ar",
        "48000",
        "-af",
        f"alimiter=limit={10 ** (settings.true_peak_dbtp / 20):.3f}:level=disabled",
        "-c:a",
        "libopus",
        "-b:a",
        f"{settings.opus_bitrate_kbps}k",
        "-application",
        "voip",
        "-vbr",
        "constrained",
        "-frame_duration",
        str(settings.opus_frame_ms),
        "-f",
        "ogg",
        "-page_duration",
        str(settings.opus_frame_ms * 1000),
        "-flush_packets",
        "1",
        "pipe:1",
    ]


class LiveEncoder:
    """One ffmpeg process: :meth:`feed` bytes in, iterate :meth:`packets` for Opus out.

    Use as an async context manager; leaving it kills ffmpeg if it is still running.
    """

    def __init__(self, settings: AudioSettings) -> None:
        self.settings = settings
        self._proc: Process | None = None
        self.reader = OggReader()
        self.stderr = b""

    async def __aenter__(self) -> LiveEncoder:
        self._proc = await anyio.open_process(
            live_command(self.settings, find_ffmpeg(self.settings.ffmpeg)),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.returncode is None:
            with suppress(ProcessLookupError):
                proc.kill()
        with anyio.CancelScope(shield=True):
            with suppress(Exception):
                await proc.aclose()

    async def feed(self, data: bytes) -> None:
        """Send source bytes to the decoder; AudioError if ffmpeg has gone away."""
        assert self._proc is not None and self._proc.stdin is not None
        try:
            await self._proc.stdin.send(data)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
            raise AudioError(
                "the live audio could not be decoded", detail=await self._err()
            ) from exc

    async def finish(self) -> None:
        """No more input: ffmpeg drains what it has and ends the stream."""
        assert self._proc is not None and self._proc.stdin is not None
        with suppress(Exception):
            await self._proc.stdin.aclose()

    async def packets(self) -> AsyncIterator[bytes]:
        """Opus packets as ffmpeg produces them; ends when ffmpeg ends."""
        assert self._proc is not None and self._proc.stdout is not None
        try:
            async for data in self._proc.stdout:
                for packet in self.reader.feed(data):
                    yield packet
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            return

    async def _err(self) -> str:
        if self._proc is None or self._proc.stderr is None:
            return ""
        with anyio.move_on_after(0.5), suppress(Exception):
            self.stderr += await self._proc.stderr.receive()
        return self.stderr.decode("utf-8", "replace")[-800:]

    async def error_text(self) -> str:
        """ffmpeg's last words, for the error chain of a failed live source."""
        return await self._err()
