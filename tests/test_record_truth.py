"""Issue 18, "the record is the truth": a broadcast's status comes from its deliveries;
proof of play that comes before its broadcast row is kept and applied; a firing's row
and its occurrence move in one transaction."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from broadcaster.broadcasts.ledger import Ledger
from broadcaster.broadcasts.outcome import final_status
from broadcaster.store.store import Store
from devices.messages import PlayReport
from tests.test_store import COMMUNE, add_media, broadcast_row, count, delivery

pytest_plugins = ["tests.test_store"]


def d(outcome: str, online: bool = True, targeted: bool = True) -> dict[str, Any]:
    return {"outcome": outcome, "online_at_start": online, "targeted": targeted}


@pytest.mark.parametrize(
    ("ending", "rows", "status", "words"),
    [
        ("done", [d("played"), d("played"), d("offline", online=False)], "done", ""),
        ("done", [d("played"), d("no_report")], "partial", "1 of 2 online speakers"),
        ("done", [d("missed"), d("missed")], "missed", "0 of 2 online speakers played"),
        ("done", [d("partial"), d("missed")], "partial", "1 missed, 1 partial"),
        ("done", [d("played"), d("preempted")], "partial", "1 preempted"),
        ("done", [d("offline", online=False)], "done", "no targeted speaker was online"),
        ("done", [d("played"), d("played", targeted=False)], "done", ""),
        ("done", [d("played", online=False), d("offline", online=False)], "done", ""),
        ("done", [d("missed", online=False), d("played")], "partial", "1 of 2"),
        ("stopped", [d("partial")], "stopped", "stopped before the end"),
        ("interrupted", [d("played"), d("missed")], "interrupted", "broker"),
    ],
)
def test_final_status_from_deliveries(
    ending: str, rows: list[dict[str, Any]], status: str, words: str
) -> None:
    error = {"stopped": "stopped before the end", "interrupted": "MQTT broker away"}.get(ending, "")
    got, reason = final_status(ending, error, rows)
    assert got == status
    assert words in reason
    if status == "done" and not words:
        assert reason == ""


def test_notes_are_kept_in_the_reason() -> None:
    status, reason = final_status("done", "", [d("played")], "accepted 15.4 s after it was asked")
    assert status == "done" and "15.4 s" in reason


def test_a_report_before_its_broadcast_is_kept_then_applied(seeded_store: Store) -> None:
    s = seeded_store
    ledger = Ledger(s)
    b = broadcast_row(add_media(s))
    early = PlayReport(stream=b["stream_id"], outcome="played", frames_played=7, source="cache")
    assert ledger.record_report("vt-ap-1-1", COMMUNE, "ap-1", early, 5) == "pending"
    assert count(s, "pending_reports") == 1
    marked: list[str] = []
    ledger.create(b, [COMMUNE], [], also=marked.append)
    assert marked == [b["id"]]
    assert count(s, "pending_reports") == 0
    # The per-speaker rows come after: the early report's row becomes a targeted one.
    ledger.add_deliveries(
        [delivery(b["id"], "vt-ap-1-1", "ap-1"), delivery(b["id"], "vt-ap-1-2", "ap-1")]
    )
    status = ledger.close(b["id"], "done", "")
    got = {x["device_id"]: x for x in ledger.get(b["id"])["deliveries"]}
    assert got["vt-ap-1-1"]["outcome"] == "played" and got["vt-ap-1-1"]["targeted"]
    assert got["vt-ap-1-1"]["source"] == "cache"
    assert got["vt-ap-1-2"]["outcome"] == "no_report"
    assert status == "partial"
    assert ledger.get(b["id"])["status"] == "partial"


def test_a_failing_also_rolls_the_broadcast_back(seeded_store: Store) -> None:
    s = seeded_store
    ledger = Ledger(s)
    b = broadcast_row(add_media(s))

    def refuse(bid: str) -> None:
        raise RuntimeError("the occurrence was already started")

    with pytest.raises(RuntimeError):
        ledger.create(b, [COMMUNE], [delivery(b["id"], "vt-ap-1-1", "ap-1")], also=refuse)
    assert count(s, "broadcasts") == 0 and count(s, "deliveries") == 0


def test_kept_reports_are_pruned_after_a_day(seeded_store: Store) -> None:
    ledger = Ledger(seeded_store)
    old = PlayReport(stream=str(uuid.uuid4()), outcome="played")
    ledger.record_report("vt-ap-1-1", COMMUNE, "ap-1", old, 1)
    assert ledger.prune_pending(2 * 86_400_000_000) == 1
    assert count(seeded_store, "pending_reports") == 0


def test_proof_after_the_close_recomputes_the_status(seeded_store: Store) -> None:
    s = seeded_store
    ledger = Ledger(s)
    b = broadcast_row(add_media(s))
    ledger.create(b, [COMMUNE], [delivery(b["id"], "vt-ap-1-1", "ap-1")])
    assert ledger.close(b["id"], "done", "", "accepted 2.0 s after it was asked for") == "missed"
    late = PlayReport(stream=b["stream_id"], outcome="played", frames_played=3)
    assert ledger.record_report("vt-ap-1-1", COMMUNE, "ap-1", late, 9) == "recorded"
    got = ledger.get(b["id"])
    assert got["status"] == "done"
    assert got["error"] == "accepted 2.0 s after it was asked for"


def test_a_late_acceptance_is_said_in_the_record(seeded_store: Store) -> None:
    from broadcaster.broadcasts.dispatcher import Dispatcher
    from broadcaster.settings import StreamSettings
    from devices.signing import Signer
    from loa.clock import FakeClock

    s = seeded_store
    ledger = Ledger(s)
    b = broadcast_row(add_media(s), late_ms=15_400)
    ledger.create(b, [COMMUNE], [delivery(b["id"], "vt-ap-1-1", "ap-1")])
    report = PlayReport(stream=b["stream_id"], outcome="played", frames_played=1)
    ledger.record_report("vt-ap-1-1", COMMUNE, "ap-1", report, 1)
    d = Dispatcher(ledger, None, Signer.generate(), FakeClock(), StreamSettings())  # type: ignore[arg-type]
    assert d._close(b["id"], "done", "") == "done"
    assert ledger.get(b["id"])["error"] == "accepted 15.4 s after it was asked for"
