"""CPU-heavy work in a child process: it runs elsewhere, a dead child is replaced, and
the child stops with the controller."""

from __future__ import annotations

import os
import signal

import anyio
import pytest

from broadcaster.web.offload import Offload
from loa.errors import LoaError


def _pid_and_square(x: int) -> tuple[int, int]:
    return os.getpid(), x * x


def _die(_: int) -> int:
    os.kill(os.getpid(), signal.SIGKILL)
    return 0


def test_work_runs_in_another_process_and_returns_its_result() -> None:
    off = Offload()

    async def main() -> tuple[int, int]:
        return await off.run(_pid_and_square, 12)

    try:
        pid, sq = anyio.run(main)
        assert sq == 144
        assert pid != os.getpid()
    finally:
        off.close()
        off.close()  # idempotent


def test_a_child_that_dies_is_a_clear_error_and_the_next_call_gets_a_new_one() -> None:
    off = Offload()

    async def main() -> tuple[int, int]:
        with pytest.raises(LoaError, match="stopped unexpectedly"):
            await off.run(_die, 0)
        return await off.run(_pid_and_square, 3)

    try:
        assert anyio.run(main)[1] == 9
    finally:
        off.close()


def test_after_close_work_is_refused_and_no_child_is_left() -> None:
    off = Offload()

    async def first() -> int:
        return (await off.run(_pid_and_square, 2))[0]

    child = anyio.run(first)
    off.close()
    with pytest.raises(OSError):  # the child process has exited
        os.kill(child, 0)

    async def again() -> None:
        await off.run(_pid_and_square, 2)

    with pytest.raises(LoaError, match="stopping"):
        anyio.run(again)
