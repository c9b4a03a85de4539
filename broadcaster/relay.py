"""Relay ("tiếp sóng"): pull a radio stream over HTTP and put it on the air for a while.

The stream (mp3, aac, ogg — an Icecast/Shoutcast mount or any HTTP audio URL) is read
here with httpx and piped into a :class:`audio.live.LiveEncoder`, so ffmpeg itself
never touches the network. If the upstream drops or cannot be reached, the relay keeps
trying with capped exponential backoff until its time is up; the silence is recorded
as gaps on the broadcast (and logged), never hidden.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import anyio
import httpx

from audio.live import LiveEncoder
from audio.settings import AudioSettings
from loa.errors import AudioError, FieldError, InvalidInput

from .live import LiveBroadcast

logger = logging.getLogger(__name__)


def check_url(url: str) -> str:
    """Accept only http(s) URLs with a host; return the URL without credentials (for logs)."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(
            "the relay source must be an http:// or https:// stream address",
            errors=[FieldError("url", "not an http(s) address", "url")],
        )
    host = parts.hostname + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, host, parts.path, parts.query, ""))


@dataclass
class RelayReport:
    connections: int = 0
    failures: int = 0
    last_error: str = ""


async def relay(
    live: LiveBroadcast,
    url: str,
    duration_s: float,
    audio: AudioSettings,
    *,
    retry_max_s: float,
    client: httpx.AsyncClient | None = None,
) -> RelayReport:
    """Relay ``url`` into ``live`` for ``duration_s`` seconds of air time, then close it."""
    report = RelayReport()
    air_us = int(duration_s * 1e6)
    deadline = live.dispatcher.clock.now_us() + air_us
    own = client is None
    http = client or httpx.AsyncClient(timeout=httpx.Timeout(10.0, read=10.0))
    try:
        async with anyio.create_task_group() as tg:

            async def watch() -> None:
                await live.stop_requested.wait()
                report.last_error = "stopped by an operator"
                tg.cancel_scope.cancel()

            tg.start_soon(watch)
            await _loop(live, url, audio, http, report, deadline, air_us, retry_max_s)
            tg.cancel_scope.cancel()
    finally:
        if own:
            await http.aclose()
        gaps = len(live.timeline.gaps)
        note = ""
        if report.failures or gaps:
            note = (
                f"upstream interrupted ({report.failures} failed attempts, {gaps} gaps,"
                f" {live.timeline.gap_us // 1000} ms of silence): {report.last_error}"
            )
        with anyio.CancelScope(shield=True):
            if live.seq or live.pending:
                await live.close("complete", note=note)
            else:
                await live.close("complete", error=note or "no audio received")
    return report


async def _loop(
    live: LiveBroadcast,
    url: str,
    audio: AudioSettings,
    http: httpx.AsyncClient,
    report: RelayReport,
    deadline: int,
    air_us: int,
    retry_max_s: float,
) -> None:
    """Connect, relay, and reconnect with backoff until ``air_us`` of air time is covered.

    Without audio the relay gives up at ``deadline`` (start + duration, controller
    clock); once audio flows, gaps count as air time, so it ends on schedule either way.
    """
    clock = live.dispatcher.clock
    backoff = 1.0
    while live.timeline.covered_us < air_us:
        end = deadline if live.seq == 0 else live.timeline.start_us or deadline
        end = max(deadline, end + air_us - live.timeline.lead_us)
        if clock.now_us() >= end:
            return
        try:
            with anyio.fail_after(max(0.1, (end - clock.now_us()) / 1e6)):
                got = await _one_connection(live, url, audio, http, report, air_us)
            if live.timeline.covered_us >= air_us:
                return
            if got:
                backoff = 1.0
            report.failures += 1
            report.last_error = "the stream ended early"
        except TimeoutError:
            return  # time is up
        except (httpx.HTTPError, AudioError, OSError, BaseExceptionGroup) as caught:
            report.failures += 1
            report.last_error = _describe(_unwrap(caught))
        logger.warning("relay %s: %s; retrying in %.0f s", live.id, report.last_error, backoff)
        wait = min(backoff, max(0.0, (end - clock.now_us()) / 1e6))
        if wait <= 0:
            return
        await clock.sleep(wait)
        backoff = min(backoff * 2, retry_max_s)


async def _one_connection(
    live: LiveBroadcast,
    url: str,
    audio: AudioSettings,
    http: httpx.AsyncClient,
    report: RelayReport,
    air_us: int,
) -> bool:
    """Relay one HTTP connection until it ends or the air time is covered.

    Returns True if any audio went out.
    """
    sent_before = live.seq
    async with http.stream("GET", url, headers={"Icy-MetaData": "0"}) as response:
        if response.status_code != 200:
            raise AudioError(f"the stream answered HTTP {response.status_code}")
        report.connections += 1
        async with LiveEncoder(audio) as enc, anyio.create_task_group() as tg:

            async def pump() -> None:
                try:
                    async for data in response.aiter_raw():
                        await enc.feed(data)
                finally:
                    await enc.finish()

            tg.start_soon(pump)
            async for packet in enc.packets():
                await live.push(packet, pre_skip=enc.reader.pre_skip)
                if live.timeline.covered_us >= air_us:
                    tg.cancel_scope.cancel()
                    break
    return live.seq > sent_before or bool(live.pending)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, AudioError):
        return exc.message
    if isinstance(exc, httpx.ConnectError):
        return "cannot connect to the stream"
    if isinstance(exc, httpx.TimeoutException):
        return "the stream stopped sending"
    return f"{type(exc).__name__}: {exc}"


def _unwrap(exc: BaseException) -> BaseException:
    """The one error worth reporting from a task group's exception group."""
    while isinstance(exc, BaseExceptionGroup):
        inner = exc.exceptions[0]
        if not isinstance(inner, (httpx.HTTPError, AudioError, OSError, BaseExceptionGroup)):
            raise exc
        exc = inner
    return exc
