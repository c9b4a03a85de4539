"""Names the system keeps for itself, which can never be a speaker's id.

A speaker's id is also its broker user name (and, the broker binding the two, its MQTT
client id), so a speaker called ``loa-controller`` would be the controller's broker
account. Reserved: the controller's user and every ``loa-`` name (the controller, its
simulator and tools), ``$`` names (the broker's own), ``svc-`` names (Loa's service
accounts), and the broker's usual administrative names.
"""

from __future__ import annotations

from loa.errors import FieldError, InvalidInput

CONTROLLER_USER = "loa-controller"
RESERVED_PREFIXES = ("loa-", "loa_", "$", "svc-")
RESERVED_NAMES = frozenset(
    {CONTROLLER_USER, "admin", "root", "mosquitto", "anonymous", "controller", "broker"}
)


def reserved(device_id: str) -> bool:
    name = device_id.strip().lower()
    return name in RESERVED_NAMES or name.startswith(RESERVED_PREFIXES)


def check_device_id(device_id: str, field: str = "id") -> str:
    """``device_id``, or InvalidInput when the system keeps that name for itself."""
    if reserved(device_id):
        message = (
            f"{device_id!r} is reserved for the system (names starting with "
            f"{', '.join(RESERVED_PREFIXES)} or {', '.join(sorted(RESERVED_NAMES))}): "
            "choose another speaker id"
        )
        raise InvalidInput(message, errors=[FieldError(field, "reserved name", "reserved")])
    return device_id
