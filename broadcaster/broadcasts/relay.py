"""Relay ("tiếp sóng"): pull a radio stream over HTTP and put it on the air for a while.

The stream (mp3, aac, ogg — an Icecast/Shoutcast mount or any HTTP audio URL) is read
here with httpx and piped into a :class:`audio.live.LiveEncoder`, so ffmpeg itself
never touches the network. If the upstream drops or cannot be reached, the relay keeps
trying with capped exponential backoff until its time is up; the silence is recorded
as gaps on the broadcast (and logged), never hidden.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit, urlunsplit

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


def _listed(host: str, ips: Sequence[str], allowed: Sequence[str]) -> bool:
    """Whether the host name, or every address it resolves to, is in the allow-list."""
    names = {a.lower() for a in allowed}
    if host.lower() in names:
        return True
    nets = []
    for a in allowed:
        try:
            nets.append(ipaddress.ip_network(a, strict=False))
        except ValueError:
            continue
    return bool(ips) and all(any(ipaddress.ip_address(i) in n for n in nets) for i in ips)


def _inside(ip: str) -> bool:
    """Loopback, private, link-local, shared or reserved: not a public radio stream."""
    addr = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return not addr.is_global or addr.is_multicast


async def addresses(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to (the one place the relay asks DNS)."""
    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(i[4][0]) for i in infos})


async def pin_source(url: str, allowed: Sequence[str]) -> str:
    """Resolve the source's host once and return the address to connect to, refusing
    one on the controller's own networks (loopback, link-local, private ranges: a relay
    must not become a way to scan them) unless listed in ``relay.allowed_hosts``.
    The connection then goes to that very address: a name that resolves to a public
    address for the check and to an inside one for the connection (DNS rebinding)
    never reaches inside. Raises OSError when the name does not resolve."""
    check_url(url)
    parts = urlsplit(url.strip())
    host = parts.hostname or ""
    ips = await addresses(host, parts.port or (443 if parts.scheme == "https" else 80))
    if not ips:
        raise OSError(f"{host} has no address")
    if any(_inside(i) for i in ips) and not _listed(host, ips, allowed):
        raise InvalidInput(
            f"the relay source {host!r} is on a loopback, private or link-local address; "
            "only public streams are relayed (an administrator can allow a local one in "
            "relay.allowed_hosts)",
            errors=[FieldError("url", "private address", "forbidden_host")],
        )
    return ips[0]


async def check_source(url: str, allowed: Sequence[str]) -> str:
    """``check_url``, and :func:`pin_source` when the name resolves now; returns the
    URL without credentials. A name that does not resolve yet (no network, a station
    only reachable later) is not refused: it is checked again before every connection."""
    safe = check_url(url)
    with contextlib.suppress(OSError):
        await pin_source(url, allowed)
    return safe


def pinned_request(
    url: str, ip: str
) -> tuple[str, dict[str, str], dict[str, str], httpx.Auth | None]:
    """The request for ``url`` sent to ``ip``: the address in the URL, the name in the
    Host header and (https) in the TLS server name, which the certificate is checked
    against; credentials in the URL become basic auth."""
    parts = urlsplit(url.strip())
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    literal = f"[{ip}]" if ":" in ip else ip
    target = urlunsplit((parts.scheme, literal + port, parts.path or "/", parts.query, ""))
    named = f"[{host}]" if ":" in host else host
    ext = {"sni_hostname": host} if parts.scheme == "https" else {}
    auth = None
    if parts.username is not None:
        auth = httpx.BasicAuth(unquote(parts.username), unquote(parts.password or ""))
    return target, {"Host": named + port}, ext, auth


def redact(url: str) -> str:
    """A relay URL with any user name and password removed (as shown to non-admins)."""
    try:
        return check_url(url)
    except InvalidInput:
        return ""


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
    allowed_hosts: Sequence[str] | None = None,
) -> RelayReport:
    """Relay ``url`` into ``live`` for ``duration_s`` seconds of air time, then close it."""
    report = RelayReport()
    air_us = int(duration_s * 1e6)
    deadline = live.runner.clock.now_us() + air_us
    own = client is None
    http = client or httpx.AsyncClient(timeout=httpx.Timeout(10.0, read=10.0))
    try:
        async with anyio.create_task_group() as tg:

            async def watch() -> None:
                await live.stop_requested.wait()
                report.last_error = "stopped by an operator"
                tg.cancel_scope.cancel()

            tg.start_soon(watch)
            await _loop(
                live, url, audio, http, report, deadline, air_us, retry_max_s, allowed_hosts
            )
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
    allowed_hosts: Sequence[str] | None = None,
) -> None:
    """Connect, relay, and reconnect with backoff until ``air_us`` of air time is covered.

    Without audio the relay gives up at ``deadline`` (start + duration, controller
    clock); once audio flows, gaps count as air time, so it ends on schedule either way.
    """
    clock = live.runner.clock
    backoff = 1.0
    while live.timeline.covered_us < air_us:
        end = deadline if live.seq == 0 else live.timeline.start_us or deadline
        end = max(deadline, end + air_us - live.timeline.lead_us)
        if clock.now_us() >= end:
            return
        try:
            with anyio.fail_after(max(0.1, (end - clock.now_us()) / 1e6)):
                ip = None
                if allowed_hosts is not None:  # at each connection: DNS may change
                    try:
                        ip = await pin_source(url, allowed_hosts)
                    except InvalidInput as exc:
                        raise AudioError(exc.message) from None
                    except OSError:
                        raise httpx.ConnectError("the name does not resolve") from None
                got = await _one_connection(live, url, audio, http, report, air_us, ip)
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
    ip: str | None = None,
) -> bool:
    """Relay one HTTP connection (to ``ip`` when pinned) until it ends or the air time
    is covered. Returns True if any audio went out.
    """
    sent_before = live.seq
    headers = {"Icy-MetaData": "0"}
    target: str = url
    ext: dict[str, str] = {}
    auth: httpx.Auth | None = None
    if ip is not None:
        target, host_header, ext, auth = pinned_request(url, ip)
        headers.update(host_header)
    request = http.stream(
        "GET",
        target,
        headers=headers,
        extensions=ext,
        auth=auth if auth is not None else httpx.USE_CLIENT_DEFAULT,
    )
    async with request as response:
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
    if isinstance(exc, httpx.HTTPError):
        return "the stream's server broke the connection"
    return "the stream could not be read"  # never echo what an inside server said


def _unwrap(exc: BaseException) -> BaseException:
    """The one error worth reporting from a task group's exception group."""
    while isinstance(exc, BaseExceptionGroup):
        inner = exc.exceptions[0]
        if not isinstance(inner, (httpx.HTTPError, AudioError, OSError, BaseExceptionGroup)):
            raise exc
        exc = inner
    return exc
