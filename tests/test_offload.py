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


def _pid(_: int) -> int:
    return os.getpid()


def _sleep(seconds: float) -> int:
    import time

    time.sleep(seconds)
    return 0


def test_ctrl_c_in_the_terminal_does_not_kill_the_child() -> None:
    """A terminal's Ctrl-C reaches the whole process group: the child ignores it (the
    controller stops it itself), so a report being drawn is not lost."""
    off = Offload()

    async def main() -> tuple[int, int]:
        first = await off.run(_pid, 0)
        os.kill(first, signal.SIGINT)
        await anyio.sleep(0.3)
        return first, await off.run(_pid, 0)

    try:
        first, again = anyio.run(main)
        assert first == again
    finally:
        off.close()


def test_close_stops_a_child_that_is_still_working() -> None:
    off = Offload()
    child: list[int] = []

    async def main() -> None:
        child.append(await off.run(_pid, 0))
        async with anyio.create_task_group() as tg:

            async def busy() -> None:
                with pytest.raises(BaseException):  # noqa: B017 — abandoned work
                    await off.run(_sleep, 60.0)

            tg.start_soon(busy)
            await anyio.sleep(0.5)
            t0 = anyio.current_time()
            off.close(timeout_s=0.5)
            assert anyio.current_time() - t0 < 5
            tg.cancel_scope.cancel()

    anyio.run(main)
    with pytest.raises(OSError):
        os.kill(child[0], 0)
