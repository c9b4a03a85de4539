"""Live microphone over WebSocket, relays, and stopping a live broadcast.

WebSocket ``/api/communes/{commune}/live`` — the browser (or any client) sends one text
message ``{"targets": [...], "title": "..."}``, waits for ``{"type": "on_air"}``, then
sends its MediaRecorder chunks (webm/opus or ogg/opus, any audio ffmpeg reads) as
binary messages. The broadcast ends when the client sends ``{"type": "stop"}``,
closes, disconnects, stays silent longer than ``stream.live_idle_timeout_s``, or
reaches ``stream.live_max_s`` (the dead-man rules: a dropped phone never leaves a
hamlet on an open microphone). The server reports with text messages: ``on_air``,
``stats`` and ``off_air`` (with the reason), or ``error``.
"""

from __future__ import annotations

import json
import logging
import unicodedata
from contextlib import suppress
from typing import Annotated, Any

import anyio
from pydantic import Field
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from audio.live import LiveEncoder
from loa.errors import FieldError, InvalidInput, LoaError

from ..auth.guard import principal
from ..services import Services
from ..web.bodies import UUID_RE, Body, TargetIn, ok, parse_json, path_id, read_json, svc
from .api import resolve_targets
from .live import LiveBroadcast, LiveRequest
from .relay import check_source, relay

logger = logging.getLogger(__name__)

#: Largest single WebSocket message accepted from a live client.
MAX_MESSAGE = 256 * 1024


class LiveIn(Body):
    targets: Annotated[list[TargetIn], Field(min_length=1, max_length=1000)]
    title: Annotated[str, Field(max_length=200)] = ""


class RelayIn(Body):
    url: Annotated[str, Field(min_length=8, max_length=2000)]
    duration_s: Annotated[float, Field(gt=0, le=6 * 3600)]
    targets: Annotated[list[TargetIn], Field(min_length=1, max_length=1000)]
    title: Annotated[str, Field(max_length=200)] = ""


def _scoped(s: Services, commune: str, targets: list[TargetIn]) -> None:
    s.store.require_commune(commune)
    if any(t.commune != commune for t in targets):
        raise InvalidInput(
            "live audio from a commune reaches only that commune's speakers",
            errors=[FieldError("targets", "target outside this commune", "scope")],
        )


async def _send(ws: WebSocket, **message: Any) -> None:
    with suppress(WebSocketDisconnect, RuntimeError, OSError):
        await ws.send_text(json.dumps(message, ensure_ascii=False))


async def live_socket(ws: WebSocket) -> None:
    s: Services = ws.app.state.loa
    await ws.accept()
    try:
        commune = ws.path_params["commune"]
        first = await ws.receive()
        text = first.get("text")
        if text is None:
            raise InvalidInput('send {"targets": [...], "title": "..."} as the first message')
        body = parse_json(text, LiveIn)
        _scoped(s, commune, body.targets)
        resolution = resolve_targets(s, body.targets, principal(ws))
        title = unicodedata.normalize("NFC", body.title).strip() or "Phát trực tiếp"
        live = s.dispatcher.open_live(LiveRequest(resolution, title))
    except LoaError as exc:
        await _send(ws, type="error", message=exc.message, errors=[e.as_dict() for e in exc.errors])
        await ws.close(code=1008)
        return
    except WebSocketDisconnect:
        return
    s.audit("live.start", commune=commune, broadcast=live.id)
    await _send(ws, type="on_air", broadcast=live.id)
    reason = await _run_live(ws, s, live)
    await live.close("complete" if reason in ("stopped", "disconnected") else "stopped")
    s.audit("live.end", broadcast=live.id, reason=reason)
    await _send(ws, type="off_air", broadcast=live.id, reason=reason, frames=live.seq)
    with suppress(RuntimeError, OSError):
        await ws.close()


async def _run_live(ws: WebSocket, s: Services, live: LiveBroadcast) -> str:
    """Pump the socket into the encoder and the encoder into the air; returns why it ended."""
    st = s.settings.stream
    reason = "stopped"
    async with LiveEncoder(s.settings.audio) as enc, anyio.create_task_group() as tg:
        receiving = anyio.CancelScope()

        async def watch() -> None:
            nonlocal reason
            await live.stop_requested.wait()
            reason = "stopped by an operator"
            receiving.cancel()

        async def receive() -> None:
            nonlocal reason
            with receiving, anyio.move_on_after(st.live_max_s) as limit:
                while True:
                    with anyio.move_on_after(st.live_idle_timeout_s) as idle:
                        try:
                            msg = await ws.receive()
                        except (WebSocketDisconnect, RuntimeError):
                            reason = "disconnected"
                            break
                    if idle.cancelled_caught:
                        reason = f"no audio for {st.live_idle_timeout_s:g} s"
                        break
                    if msg["type"] == "websocket.disconnect":
                        reason = "disconnected"
                        break
                    data = msg.get("bytes")
                    if data:
                        if len(data) > MAX_MESSAGE:
                            reason = "a message was too large"
                            break
                        await enc.feed(data)
                    elif msg.get("text") and '"stop"' in msg["text"]:
                        reason = "stopped"
                        break
            if limit.cancelled_caught:
                reason = f"the {st.live_max_s:g} s live limit was reached"
            await enc.finish()
            watcher.cancel()

        async def transmit() -> None:
            count = 0
            async for packet in enc.packets():
                await live.push(packet, pre_skip=enc.reader.pre_skip)
                count += 1
                if count % 50 == 0:
                    await _send(ws, type="stats", frames=live.seq, seconds=count / 50)

        watcher = anyio.CancelScope()

        async def watch_until_done() -> None:
            with watcher:
                await watch()

        tg.start_soon(watch_until_done)
        tg.start_soon(receive)
        try:
            await transmit()
        except LoaError as exc:
            reason = f"failed: {exc.message}"
            tg.cancel_scope.cancel()
    return reason


async def relay_start(request: Request) -> JSONResponse:
    s = svc(request)
    commune = path_id(request, "commune")
    body = await read_json(request, RelayIn)
    _scoped(s, commune, body.targets)
    safe_url = await check_source(body.url, s.settings.relay.allowed_hosts)
    resolution = resolve_targets(s, body.targets, principal(request))
    title = unicodedata.normalize("NFC", body.title).strip() or "Tiếp sóng"
    live = s.dispatcher.open_live(LiveRequest(resolution, title, kind="relay", source=safe_url))
    st = s.settings.stream
    s.dispatcher.spawn(
        relay,
        live,
        body.url,
        body.duration_s,
        s.settings.audio,
        retry_max_s=st.relay_retry_max_s,
        allowed_hosts=s.settings.relay.allowed_hosts,
    )
    s.audit("relay.start", commune=commune, broadcast=live.id, source=safe_url)
    return ok({"broadcast": s.ledger.get(live.id)}, status=202)


async def broadcast_stop(request: Request) -> JSONResponse:
    s = svc(request)
    bid = path_id(request, "broadcast", UUID_RE)
    s.ledger.get(bid)
    if not s.dispatcher.stop(bid):
        raise InvalidInput("this broadcast is not running; nothing to stop")
    s.audit("broadcast.stop", broadcast=bid)
    return ok({"broadcast": s.ledger.get(bid)}, status=202)


routes = [
    WebSocketRoute("/api/communes/{commune}/live", live_socket),
    Route("/api/communes/{commune}/relays", relay_start, methods=["POST"]),
    Route("/api/broadcasts/{broadcast}/stop", broadcast_stop, methods=["POST"]),
]
