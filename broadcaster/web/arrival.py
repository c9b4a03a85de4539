"""Stamp each HTTP request with when it arrived (before authentication or any queueing
behind the store), so an action accepted late can say how late (issue 18)."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from loa.clock import Clock

KEY = "loa.arrived_us"


class ArrivalMiddleware:
    def __init__(self, app: ASGIApp, clock: Clock) -> None:
        self.app = app
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope[KEY] = self.clock.now_us()
        await self.app(scope, receive, send)


def arrived_us(scope: Scope) -> int | None:
    value = scope.get(KEY)
    return value if isinstance(value, int) else None
