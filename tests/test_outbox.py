"""A speaker's unsent proof of play survives a restart (issue 18, item 1): the bounded
on-disk queue of ``firmware_sim.outbox``."""

from __future__ import annotations

from pathlib import Path

from devices.messages import PlayReport
from firmware_sim.outbox import Outbox


def report(n: int) -> PlayReport:
    return PlayReport(stream=f"00000000-0000-4000-8000-{n:012d}", outcome="played", frames_played=n)


def test_reports_survive_a_restart_in_order(tmp_path: Path) -> None:
    path = tmp_path / "vt-ap-1-1.reports.jsonl"
    box = Outbox(path, limit=10)
    for n in range(1, 4):
        box.append(report(n))
    assert box.popleft() == report(1)  # the broker took the first one
    again = Outbox(path, limit=10)  # power cut, reboot
    assert [again[i].frames_played for i in range(len(again))] == [2, 3]
    assert not list(tmp_path.glob("*.part"))


def test_the_queue_is_bounded_and_a_damaged_line_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    box = Outbox(path, limit=3)
    for n in range(1, 6):
        box.append(report(n))
    assert len(box) == 3 and box.dropped == 2 and box[0].frames_played == 3
    with path.open("ab") as fh:
        fh.write(b'{"not": "a report"}\n')
    again = Outbox(path, limit=3)
    assert [again[i].frames_played for i in range(len(again))] == [4, 5]


def test_without_a_folder_it_is_memory_only(tmp_path: Path) -> None:
    box = Outbox(None)
    box.append(report(1))
    assert len(box) == 1 and box.popleft().frames_played == 1 and not box
