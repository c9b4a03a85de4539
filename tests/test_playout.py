"""Jitter-buffer rules of the reference speaker (pure): late, duplicate, order, gaps."""

from __future__ import annotations

import uuid

from hypothesis import given, settings
from hypothesis import strategies as st

from devices.frames import Codec, Frame, FrameType, Priority, pack_packets
from firmware_sim.playout import (
    Arrival,
    Chunk,
    StreamState,
    accept_audio,
    chunk_of,
    finished,
    should_preempt,
)

TOL = 40_000


def stream(prio: Priority = Priority.NORMAL) -> StreamState:
    return StreamState(uuid.uuid4(), prio)


def test_duplicates_are_dropped_once_seen() -> None:
    st_ = stream()
    assert accept_audio(st_, Chunk(1, 1_000_000, 20_000), 0, TOL) == Arrival.BUFFERED
    assert accept_audio(st_, Chunk(1, 1_000_000, 20_000), 0, TOL) == Arrival.DUPLICATE
    assert list(st_.buffer) == [1]


def test_a_chunk_after_its_time_is_late_and_never_buffered() -> None:
    st_ = stream()
    assert accept_audio(st_, Chunk(1, 1_000_000, 20_000), 1_000_000 + TOL + 1, TOL) == Arrival.LATE
    assert st_.late == 1 and not st_.buffer
    # Within the tolerance it still plays.
    assert accept_audio(st_, Chunk(2, 2_000_000, 20_000), 2_000_000 + TOL, TOL) == Arrival.BUFFERED


def test_out_of_order_behind_what_played_is_late() -> None:
    st_ = stream()
    st_.last_played_seq = 5
    assert accept_audio(st_, Chunk(4, 9_000_000, 20_000), 0, TOL) == Arrival.LATE


def test_suppressed_streams_buffer_nothing() -> None:
    st_ = stream()
    st_.suppressed = True
    assert accept_audio(st_, Chunk(1, 9_000_000, 20_000), 0, TOL) == Arrival.SUPPRESSED
    assert not st_.buffer


@settings(max_examples=150)
@given(st.permutations(list(range(1, 13))), st.sets(st.integers(1, 12), max_size=6))
def test_outcome_accounts_for_every_chunk(order: list[int], lost: set[int]) -> None:
    """Whatever the arrival order and gaps: played + late + missing == chunks sent."""
    st_ = stream()
    st_.expected = 12
    now = 0
    for seq in order:
        if seq in lost:
            continue
        accept_audio(st_, Chunk(seq, seq * 100_000, 100_000), now, TOL)
    for seq in sorted(st_.buffer):  # play in order
        st_.played += 1
        st_.last_played_seq = seq
    st_.buffer.clear()
    report = st_.outcome()
    assert report.frames_played + report.frames_late + report.frames_missing == 12
    assert report.frames_missing == len(lost)
    assert report.outcome == ("played" if not lost else "partial")


def test_outcomes() -> None:
    st_ = stream()
    st_.expected = 3
    assert st_.outcome().outcome == "missed"
    st_.preempted, st_.played = True, 1
    assert st_.outcome().outcome == "preempted"


def test_priority_rules() -> None:
    normal, emergency = stream(Priority.NORMAL), stream(Priority.EMERGENCY)
    assert should_preempt(None, Priority.NORMAL)
    assert should_preempt(normal, Priority.EMERGENCY)
    assert should_preempt(normal, Priority.NORMAL)  # same class: the newest wins
    assert not should_preempt(emergency, Priority.PRIORITY)
    emergency.ended = True
    assert should_preempt(emergency, Priority.NORMAL)  # nothing left to play


def test_finished_rules() -> None:
    st_ = stream()
    st_.last_activity_us = 0
    assert not finished(st_, 5_000_000, 10_000_000)
    assert finished(st_, 10_000_001, 10_000_000)  # idle: END lost
    st_.ended, st_.end_pts_us = True, 3_000_000
    assert not finished(st_, 2_000_000, 10_000_000)
    assert finished(st_, 3_000_000, 10_000_000)
    st_.buffer[1] = Chunk(1, 4_000_000, 1)
    assert not finished(st_, 3_500_000, 10_000_000)


def test_chunk_duration_by_codec() -> None:
    opus = Frame(FrameType.AUDIO, uuid.uuid4(), 1, 5, 5, pack_packets([b"a"] * 7), Codec.OPUS)
    assert chunk_of(opus, 20, 2000).duration_us == 140_000
    mp3 = Frame(FrameType.AUDIO, uuid.uuid4(), 1, 5, 5, b"\xff\xfb" + bytes(100), Codec.MP3)
    assert chunk_of(mp3, 20, 2000).duration_us == 2_000_000
