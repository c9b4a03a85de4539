"""Hypothesis against every route: random path ids, query strings and JSON bodies (and
mutations of real ones) never make the server answer 500 or break the one error shape."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broadcaster.auth.policy import POLICY
from tests.conftest import Running
from tests.test_dispatch import upload

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
    | st.sampled_from(["vi-tan", "ap-1", "Bão số 3 đổ bộ", "06:00", "2027-02-30", "../../etc"])
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
KEYS = [
    "targets", "media_id", "title", "what", "when", "text", "priority", "repeat", "type",
    "risk_level", "fields", "message", "siren", "username", "password", "roles", "area",
    "name", "parts", "url", "duration_s", "volume", "reason", "communes", "current", "new",
]  # fmt: skip
bodies = st.one_of(
    json_values,
    st.dictionaries(st.sampled_from(KEYS), json_values, max_size=6),
    st.just({"targets": [{"commune": "vi-tan", "hamlet": "ap-1"}], "media_id": "x" * 36}),
)
REAL_IDS = ["vi-tan", "ap-1", "vt-ap-1-1", "can-tho", "00000000-0000-4000-8000-000000000000"]
ids = st.one_of(
    st.text(min_size=1, max_size=70).filter(lambda s: "/" not in s and s not in (".", "..")),
    st.sampled_from(REAL_IDS),
)
queries = st.dictionaries(
    st.sampled_from(["from", "to", "limit", "codec", "since_us", "action", "actor", "x"]),
    st.text(max_size=20),
    max_size=3,
)


def check(resp: httpx.Response, what: str) -> None:
    assert resp.status_code < 500, (what, resp.status_code, resp.text[:300])
    if resp.status_code >= 400 and resp.headers.get("content-type", "").startswith(
        "application/json"
    ):
        body = resp.json()
        assert body["ok"] is False and body["status"] == resp.status_code and body["error"]


async def test_no_route_answers_500(running: Running) -> None:
    media_id = await upload(running, 0.5)
    routes = sorted((m, p) for (m, p) in POLICY if m != "WS")
    client = httpx.Client(base_url=running.url, headers=running.auth, timeout=30)

    @settings(
        max_examples=15,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(params=st.data(), body=bodies, query=queries)
    def fuzz(method: str, path: str, params: Any, body: Any, query: dict[str, str]) -> None:
        def fill(m: re.Match[str]) -> str:
            value = params.draw(st.one_of(ids, st.just(media_id)), label=m.group(1))
            return quote(value, safe="")

        url = re.sub(r"\{(\w+)\}", fill, path)
        req = client.build_request(method, url, params=query, json=body)
        resp = client.send(req, stream=True)  # a live feed (SSE) never ends: headers only
        try:
            if "event-stream" not in resp.headers.get("content-type", ""):
                resp.read()
            check(resp, f"{method} {url} {body!r}")
        finally:
            resp.close()

    try:
        for method, path in routes:
            if path == "/api/logout":
                continue
            fuzz(method, path)  # type: ignore[call-arg]
        for raw in (b"{", b"\xff\xfe", b"[" * 5000 + b"]" * 5000, b'{"a": 1e999999}'):
            resp = client.post(
                "/api/broadcasts", content=raw, headers={"content-type": "application/json"}
            )
            check(resp, repr(raw[:20]))
        assert client.get("/api/health").status_code == 200  # still up
    finally:
        client.close()
