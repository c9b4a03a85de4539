"""The bundle of live resources the lifespan builds and the routes use."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from devices.router import Router
from devices.signing import Signer
from devices.transport import MqttLink
from loa.clock import Clock

from .alerts.service import AlertService
from .auth.accounts import Accounts
from .auth.audit import AuditLog
from .auth.limits import RateLimit
from .broadcasts.dispatcher import Dispatcher
from .broadcasts.ledger import Ledger
from .broker.access import BrokerAccess
from .fleet.facts import Facts
from .fleet.firmware import Firmware
from .fleet.service import FleetService
from .library.service import Library
from .looplag import LoopLag
from .programmes.service import ProgrammeService
from .settings import Settings
from .store.store import Store
from .web.offload import Offload


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
    accounts: Accounts
    audit_log: AuditLog
    login_limit: RateLimit
    alert_limit: RateLimit
    broker_access: BrokerAccess
    fleet: FleetService
    command_limit: RateLimit
    router: Router
    firmware: Firmware
    loop_lag: LoopLag = field(default_factory=LoopLag)  # measured by the lifespan
    #: CPU-heavy pure work (report charts) in a child process; stopped by the lifespan.
    offload: Offload = field(default_factory=Offload)

    def audit(self, action: str, **fields: Any) -> None:
        """Record an action in the append-only audit log (actor from the request)."""
        self.audit_log.record(action, **fields)
