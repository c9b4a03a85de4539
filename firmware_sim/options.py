"""How a simulated speaker behaves: timeouts, limits, sync rate and injected faults."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class SpeakerOptions:
    telemetry_interval_s: float = 30.0
    first_sync_samples: int = 20  # burst at start and on resync_clock
    # Then one exchange per interval (0 = never). Each costs ~350 bytes on the air:
    # every 10 s is ~3 MB a day per SIM; faster converges sooner and tracks tighter.
    sync_interval_s: float = 10.0
    # After a burst (boot, resync_clock, a step) one exchange every settle_interval_s
    # for settle_s, so the drift is learnt in minutes, not an hour: ~150 more exchanges
    # (~50 kB) per boot. Then the interval above.
    settle_s: float = 300.0
    settle_interval_s: float = 2.0
    replay_window_s: float = 30.0
    late_tolerance_ms: int = 40
    idle_timeout_s: float = 10.0
    connect_timeout_s: float = 30.0
    remember_streams: int = 1024  # ended stream ids and command ids kept for replay checks
    record_dir: Path | None = None  # write what was played, per stream, for tests
    cache_bytes: int = 16 * 1024 * 1024  # prefetched items kept (least recently used go)
    cache_items: int = 32
    corrupt_items: bool = False  # fault injection: every download arrives damaged
    corrupt_firmware: bool = False  # fault injection: firmware images arrive damaged
    tls_ca: Path | None = None  # connect with TLS, trusting this CA (the broker's TLS URL)
    tls_ca_pem: str | None = None  # or TLS trusting this PEM ("" = the system CAs)
    #: Reports not yet taken by the broker are kept here (one file per speaker), so a
    #: restart resends them; None = in memory only.
    state_dir: Path | None = None
    outbox_max: int = 1000  # reports kept at most (the oldest go first)
    #: While the broker is unreachable, open streams stay open this long (the idle
    #: timeout counts connected time only); frames still ahead of their time play.
    outage_grace_s: float = 60.0
    clock_step_ms: int = 500  # a TIME answer this far off the model is a suspect step
