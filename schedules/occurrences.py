"""What the firing engine works on, and the small interfaces it speaks through.

An *occurrence* is one firing of one programme: a row keyed (programme, fire time) that
the engine writes ahead, moves from ``scheduled`` to ``started`` exactly once, and
settles with an outcome. The engine never touches a database, a broker or the real
clock itself; the control plane hands it an :class:`OccurrenceStore`, a
:class:`StartBroadcast` callable and a :class:`Clock`, and its settings as a
:class:`Policy`.

Statuses: ``scheduled`` → ``started`` → ``played`` | ``partial`` | ``preempted`` |
``skipped`` | ``failed`` | ``interrupted``; or, never started, ``missed`` | ``skipped`` |
``failed``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from .recurrence import Rule

Key = tuple[str, int]
"""An occurrence's identity: (programme id, fire time in µs since the epoch)."""


def us_of(t: datetime) -> int:
    """An aware instant → µs since the epoch, as fire times are stored."""
    return int(t.timestamp() * 1_000_000)


def dt_of(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1e6, UTC)


@dataclass(frozen=True)
class Approved:
    """An approved programme's rule, as the engine needs it to write firings ahead."""

    programme_id: str
    commune_id: str
    rule: Rule
    approved_us: int | None


@dataclass(frozen=True)
class Occurrence:
    """A firing to be written ahead (status ``scheduled``); existing rows are kept."""

    programme_id: str
    fire_us: int
    commune_id: str


@dataclass(frozen=True)
class Due:
    """A scheduled firing whose time has come."""

    programme_id: str
    fire_us: int
    approved: bool  # its programme is still approved
    reason: str  # a note an earlier attempt left (the broker was away)
    #: The store's columns for the firing (what to play, where, its class): opaque to
    #: the engine, handed back untouched to the store and the starter.
    programme: Mapping[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> Key:
        return (self.programme_id, self.fire_us)


@dataclass(frozen=True)
class Finished:
    """A started firing whose broadcast is over, with its speakers' outcomes counted."""

    programme_id: str
    fire_us: int
    status: str  # the occurrence's status now
    reason: str
    broadcast_status: str
    broadcast_error: str
    counts: Mapping[str, int]  # delivery outcome → speakers

    @property
    def key(self) -> Key:
        return (self.programme_id, self.fire_us)


@dataclass(frozen=True)
class Start:
    """How the engine asks for a firing's broadcast."""

    #: Armed speakers played it from their cache on their own (the controller was
    #: away past the grace): record the broadcast, send nothing.
    record_only: bool
    #: It sounds (or sounded) from the speakers' cache rather than at a requested time.
    from_cache: bool
    #: Moves the occurrence to ``started`` with this broadcast id; run it in the
    #: transaction that records the broadcast. Raises :class:`loa.errors.Conflict`
    #: when the firing was already started.
    mark: Callable[[str], None]


class Clock(Protocol):
    def now_us(self) -> int:
        """The controller's wall-clock time in µs since the epoch."""


class Policy(Protocol):
    """The scheduler's settings the engine obeys (``scheduler.*``)."""

    @property
    def grace_s(self) -> float:
        """A firing late by less than this still plays (late); older ones are missed."""

    @property
    def tick_s(self) -> float:
        """The longest the engine sleeps between reconciliations."""

    @property
    def horizon_h(self) -> float:
        """How far ahead firings are written as rows."""

    @property
    def same_priority(self) -> str:
        """``queue``: wait while a same-class broadcast plays on its speakers."""

    @property
    def queue_max_s(self) -> float:
        """A queued firing that cannot start within this is skipped."""


class StartBroadcast(Protocol):
    """Start a due firing's broadcast; returns its id.

    Raises :class:`loa.errors.Conflict` (already started: nothing to do),
    :class:`loa.errors.BrokerError` (the broker is away: kept due, tried again) or any
    other :class:`loa.errors.LoaError` (the firing failed, with its message).
    """

    def __call__(self, due: Due, start: Start) -> str: ...


class OccurrenceStore(Protocol):
    """Where occurrences live (a database table in the control plane)."""

    def approved_rules(self) -> Sequence[Approved]:
        """Every approved, not deleted programme."""

    def write_ahead(self, firings: Sequence[Occurrence]) -> None:
        """Insert these as ``scheduled`` in one transaction, keeping rows that exist."""

    def due(self, now_us: int) -> Sequence[Due]:
        """Scheduled firings at or before ``now_us``, oldest first."""

    def next_fire(self, now_us: int) -> int | None:
        """The earliest scheduled firing after ``now_us``."""

    def armed_at(self, due: Due) -> int | None:
        """When the speakers that armed this firing (pushed ahead) sound it; None when
        no speaker armed it."""

    def busy(self, due: Due, now_us: int) -> bool:
        """A broadcast of the firing's class still plays on one of its speakers."""

    def mark_started(
        self, key: Key, broadcast_id: str, *, started_us: int, late_ms: int, reason: str
    ) -> bool:
        """``scheduled`` → ``started``; False (nothing changed) when it was not scheduled."""

    def settle(self, key: Key, status: str, reason: str) -> None:
        """Set an occurrence's status and reason."""

    def note(self, key: Key, reason: str) -> None:
        """Leave a reason on an occurrence, its status unchanged."""

    def recover(self, missed_before_us: int) -> tuple[int, int]:
        """At start-up, in one transaction: firings whose broadcast a crash interrupted
        become ``interrupted``; scheduled ones due before ``missed_before_us`` become
        ``missed``, unless armed on a speaker (the tick records those). Returns the two
        counts."""

    def finished(self, since_us: int) -> Sequence[Finished]:
        """Started firings whose broadcast is over, and settled ones started after
        ``since_us`` (their outcome is computed again: proof of play may come late)."""
