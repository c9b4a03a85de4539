"""Security headers on every HTTP response: pages, API answers, static files.

- ``Content-Security-Policy``: scripts, styles, images, media and connections from
  this site only (the pages have no inline script or style; their translated strings
  travel in a JSON data block), images also as ``data:`` (a speaker's provisioning QR
  code), no plugins, never inside another site's frame.
- A printable report (HTML with its own style and chart) is the one exception: it has
  only its own print-button script file and may be framed by Loa's own reports page
  (DOCUMENT_HEADERS).
- ``X-Frame-Options: DENY`` for older browsers, ``X-Content-Type-Options: nosniff``,
  ``Referrer-Policy: same-origin`` (a page's address never leaves the site).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = (
    "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors 'none'"
)
#: A printable document (the monthly report): only its print button's script file, its
#: own inline style and data: chart; framed only by Loa's own reports page.
DOCUMENT_HEADERS = {
    "content-security-policy": "default-src 'none'; script-src 'self'; "
    "style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'",
    "x-frame-options": "SAMEORIGIN",
}
HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
)


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in HEADERS if k not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, with_headers)
