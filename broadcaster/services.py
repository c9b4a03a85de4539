"""The bundle of live resources the lifespan builds and the routes use."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from devices.signing import Signer
from devices.transport import MqttLink
from loa.clock import Clock

from .alerts.service import AlertService
from .dispatcher import Dispatcher
from .facts import Facts
from .ledger import Ledger
from .library import Library
from .programmes import ProgrammeService
from .settings import Settings
from .store import Store

logger = logging.getLogger("loa.audit")


@dataclass
class Services:
    settings: Settings
    clock: Clock
    store: Store
    ledger: Ledger
    library: Library
    signer: Signer
    link: MqttLink
    facts: Facts
    dispatcher: Dispatcher
    version: str
    alerts: AlertService
    programmes: ProgrammeService

    def audit(self, action: str, **fields: Any) -> None:
        """Log an action (the security issue turns this into an append-only table)."""
        audit(action, **fields)


def audit(action: str, **fields: Any) -> None:
    """One audit line: the action and its fields, sorted."""
    logger.info("%s %s", action, " ".join(f"{k}={v}" for k, v in sorted(fields.items())))
