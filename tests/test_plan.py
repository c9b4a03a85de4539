"""Chunk planning: contiguous, complete, monotonic, and the first chunk as asked."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audio.plan import Chunk, plan_chunks


@st.composite
def plans(draw):
    frame_ms = draw(st.integers(1, 120))
    chunk_ms = draw(st.integers(frame_ms, 10_000))
    return {
        "packet_count": draw(st.integers(0, 3_000)),
        "frame_ms": frame_ms,
        "chunk_ms": chunk_ms,
        "start_us": draw(st.integers(0, 2**62)),
        "first_chunk_ms": draw(st.none() | st.integers(1, 10_000)),
    }


@settings(max_examples=200)
@given(plans())
def test_plan_properties(args: dict) -> None:
    chunks = plan_chunks(
        args["packet_count"],
        frame_ms=args["frame_ms"],
        chunk_ms=args["chunk_ms"],
        start_us=args["start_us"],
        first_chunk_ms=args["first_chunk_ms"],
    )
    count, frame_us = args["packet_count"], args["frame_ms"] * 1000
    per_chunk = args["chunk_ms"] // args["frame_ms"]
    first_size = max(1, (args["first_chunk_ms"] or args["chunk_ms"]) // args["frame_ms"])

    if count == 0:
        assert chunks == []
        return
    # every packet exactly once, in order, no gaps
    covered = [p for c in chunks for p in range(c.first_packet, c.first_packet + c.packets)]
    assert covered == list(range(count))
    assert [c.index for c in chunks] == list(range(len(chunks)))
    assert all(c.packets >= 1 for c in chunks)
    # times: start at start_us, strictly increasing, each chunk ends where the next starts
    assert chunks[0].pts_us == args["start_us"]
    for c in chunks:
        assert c.duration_us == c.packets * frame_us
        assert c.pts_us == args["start_us"] + c.first_packet * frame_us
    for a, b in itertools.pairwise(chunks):
        assert a.pts_us < b.pts_us
        assert a.pts_us + a.duration_us == b.pts_us
    assert sum(c.duration_us for c in chunks) == count * frame_us
    # sizes: the first chunk as asked, then full chunks, the last possibly short
    assert chunks[0].packets == min(first_size, count)
    for c in chunks[1:-1]:
        assert c.packets == per_chunk
    if len(chunks) > 1:
        assert 1 <= chunks[-1].packets <= per_chunk
    expected_chunks = 1 + -(-max(0, count - first_size) // per_chunk)
    assert len(chunks) == expected_chunks


def test_example_plan() -> None:
    chunks = plan_chunks(12, frame_ms=20, chunk_ms=100, start_us=1_000, first_chunk_ms=40)
    assert chunks == [
        Chunk(index=0, first_packet=0, packets=2, pts_us=1_000, duration_us=40_000),
        Chunk(index=1, first_packet=2, packets=5, pts_us=41_000, duration_us=100_000),
        Chunk(index=2, first_packet=7, packets=5, pts_us=141_000, duration_us=100_000),
    ]


def test_first_chunk_defaults_to_chunk_ms() -> None:
    sizes = [c.packets for c in plan_chunks(11, frame_ms=20, chunk_ms=100, start_us=0)]
    assert sizes == [5, 5, 1]


def test_first_chunk_shorter_than_a_frame_is_one_packet() -> None:
    chunks = plan_chunks(3, frame_ms=60, chunk_ms=120, start_us=0, first_chunk_ms=10)
    assert [c.packets for c in chunks] == [1, 2]


def test_chunk_ms_not_a_multiple_of_frame_ms_rounds_down() -> None:
    chunks = plan_chunks(10, frame_ms=20, chunk_ms=50, start_us=0)
    assert [c.packets for c in chunks] == [2, 2, 2, 2, 2]
    assert all(c.duration_us == 40_000 for c in chunks)


def test_first_chunk_larger_than_everything() -> None:
    chunks = plan_chunks(4, frame_ms=20, chunk_ms=40, start_us=7, first_chunk_ms=10_000)
    assert chunks == [Chunk(0, 0, 4, 7, 80_000)]


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"packet_count": -1}, "packet_count must be >= 0"),
        ({"frame_ms": 0}, "chunk_ms must be at least one frame"),
        ({"frame_ms": -20}, "chunk_ms must be at least one frame"),
        ({"chunk_ms": 19}, "chunk_ms must be at least one frame"),
        ({"chunk_ms": 0}, "chunk_ms must be at least one frame"),
        ({"chunk_ms": -100}, "chunk_ms must be at least one frame"),
    ],
)
def test_bad_arguments(kwargs: dict, reason: str) -> None:
    args = {"packet_count": 10, "frame_ms": 20, "chunk_ms": 100, "start_us": 0, **kwargs}
    count = args.pop("packet_count")
    with pytest.raises(ValueError, match=reason):
        plan_chunks(count, **args)
