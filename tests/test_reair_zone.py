"""Storm and flood re-airs fall on the commune's own hours, whatever the controller's zone."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from tests.conftest import make_settings, serve
from tests.test_alerts import FLOOD, act, create, targets


async def test_re_airs_follow_the_communes_time_zone(tmp_path: Path, broker: Any) -> None:
    # The controller runs on UTC; Xã Vị Tân keeps Vietnam's time (UTC+7). Every 3 hours
    # on the commune's clock (…, 09:00, 12:00, …) is never on a UTC multiple of 3.
    settings = make_settings(tmp_path, broker, scheduler={"timezone": "UTC"})
    async with serve(settings) as r:
        alert = await create(r, {**FLOOD, "targets": targets("ap-1"), "reair_every_hours": 3})
        confirmed = await act(r, alert["id"], "confirm")
    at = confirmed["next_airing_us"] / 1e6
    local = datetime.fromtimestamp(at, ZoneInfo("Asia/Ho_Chi_Minh"))
    assert (local.minute, local.second, local.hour % 3) == (0, 0, 0), local
    assert datetime.fromtimestamp(at, UTC).hour % 3 != 0
