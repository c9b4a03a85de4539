"""Which permission every route needs (deny by default: a route missing here is 403,
and a test fails while any route is missing).

Keys are (method, path template); ``WS`` for WebSocket routes. ``None`` means public.
The area an action touches comes from the path (commune, province, media, broadcast,
programme, alert, device) and, for targets in a body, from the handler
(:func:`broadcaster.auth.guard.require_targets`).
"""

from __future__ import annotations

from .roles import Perm

PUBLIC = None
R, M, S, A = Perm.READ, Perm.MEDIA, Perm.SCHEDULE, Perm.APPROVE
B, AL, D, U, AU = Perm.BROADCAST, Perm.ALERT, Perm.DEVICE, Perm.USERS, Perm.AUDIT

POLICY: dict[tuple[str, str], Perm | None] = {
    ("GET", "/login"): PUBLIC,
    ("GET", "/static"): PUBLIC,
    ("GET", "/"): R,
    ("GET", "/library"): R,
    ("GET", "/schedule"): R,
    ("GET", "/live"): R,
    ("GET", "/emergency"): R,
    ("GET", "/devices"): R,
    ("GET", "/devices/{device}"): R,
    ("GET", "/reports"): R,
    ("GET", "/api/health"): PUBLIC,
    ("GET", "/api/keys"): R,
    ("POST", "/api/login"): PUBLIC,
    ("POST", "/api/logout"): R,
    ("GET", "/api/me"): R,
    ("GET", "/api/me/tokens"): R,
    ("POST", "/api/me/tokens"): R,
    ("DELETE", "/api/me/tokens/{token}"): R,
    ("POST", "/api/me/password"): R,
    ("GET", "/api/users"): U,
    ("POST", "/api/users"): U,
    ("GET", "/api/users/{user}"): U,
    ("PUT", "/api/users/{user}"): U,
    ("GET", "/api/audit"): AU,
    # places, devices, broadcasts
    ("GET", "/api/communes"): R,
    ("GET", "/api/communes/{commune}/hamlets"): R,
    ("GET", "/api/communes/{commune}/devices"): R,
    ("POST", "/api/communes/{commune}/devices"): D,
    ("GET", "/api/devices/{device}"): R,
    ("PUT", "/api/devices/{device}"): D,
    ("GET", "/api/devices/{device}/uptime"): R,
    ("GET", "/api/communes/{commune}/uptime"): R,
    ("GET", "/api/communes/{commune}/alarms"): R,
    ("GET", "/api/communes/{commune}/alarms/stream"): R,
    ("POST", "/api/alarms/{alarm}/ack"): D,
    ("POST", "/api/devices/{device}/commands"): D,
    ("GET", "/api/devices/{device}/commands"): R,
    ("GET", "/metrics"): R,
    ("POST", "/api/firmware"): D,
    ("GET", "/api/firmware"): R,
    ("POST", "/api/firmware/{firmware}/rollouts"): D,
    ("GET", "/api/rollouts/{rollout}"): R,
    ("GET", "/api/communes/{commune}/report"): R,
    ("GET", "/api/provinces/{province}/report"): R,
    ("POST", "/api/devices/{device}/credentials"): D,
    ("DELETE", "/api/devices/{device}/credentials"): D,
    ("GET", "/api/communes/{commune}/broadcasts"): R,
    ("POST", "/api/broadcasts"): B,
    ("GET", "/api/broadcasts/{broadcast}"): R,
    ("POST", "/api/broadcasts/{broadcast}/stop"): B,
    ("WS", "/api/communes/{commune}/live"): B,
    ("POST", "/api/communes/{commune}/relays"): B,
    # library
    ("GET", "/api/communes/{commune}/media"): R,
    ("POST", "/api/communes/{commune}/media"): M,
    ("POST", "/api/communes/{commune}/media/text"): M,
    ("POST", "/api/communes/{commune}/media/compose"): M,
    ("POST", "/api/provinces/{province}/media"): M,
    ("GET", "/api/signals"): R,
    ("GET", "/api/media/{media}"): R,
    ("DELETE", "/api/media/{media}"): M,
    ("GET", "/api/media/{media}/waveform.png"): R,
    ("GET", "/api/media/{media}/audio"): R,
    # schedule
    ("POST", "/api/provinces/{province}/bulletins"): S,
    ("GET", "/api/communes/{commune}/programmes"): R,
    ("POST", "/api/communes/{commune}/programmes"): S,
    ("POST", "/api/communes/{commune}/programmes/check"): S,
    ("GET", "/api/communes/{commune}/occurrences"): R,
    ("GET", "/api/communes/{commune}/occurrences/history"): R,
    ("GET", "/api/programmes/{programme}"): R,
    ("PUT", "/api/programmes/{programme}"): S,
    ("DELETE", "/api/programmes/{programme}"): S,
    ("POST", "/api/programmes/{programme}/submit"): S,
    ("POST", "/api/programmes/{programme}/approve"): A,
    ("POST", "/api/programmes/{programme}/return"): A,
    # alerts
    ("GET", "/api/communes/{commune}/alerts"): R,
    ("POST", "/api/communes/{commune}/alerts"): AL,
    ("POST", "/api/communes/{commune}/alerts/cap"): AL,
    ("GET", "/api/alerts/{alert}"): R,
    ("POST", "/api/alerts/{alert}/confirm"): AL,
    ("POST", "/api/alerts/{alert}/cancel"): AL,
    ("POST", "/api/alerts/{alert}/update"): AL,
    ("POST", "/api/alerts/{alert}/all-clear"): AL,
    ("GET", "/api/alerts/{alert}/events"): R,
    ("GET", "/api/alerts/{alert}/cap"): R,
}
