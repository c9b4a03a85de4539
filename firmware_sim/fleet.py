"""Many simulated speakers in one process, each its own MQTT client."""

from __future__ import annotations

from collections.abc import Sequence

import anyio

from devices.signing import Verifier
from loa.clock import Clock, SystemClock

from .framecache import FrameCache
from .playlog import PlayLog
from .speaker import Speaker, SpeakerOptions
from .spec import DeviceSpec


class Fleet:
    def __init__(
        self,
        specs: Sequence[DeviceSpec],
        *,
        host: str,
        port: int,
        verifier: Verifier,
        clock: Clock | None = None,
        log: PlayLog | None = None,
        options: SpeakerOptions | None = None,
    ) -> None:
        self.log = log or PlayLog()
        frames = FrameCache(verifier)  # verify once per process, not once per speaker
        clock = clock or SystemClock()
        self.speakers = {
            s.id: Speaker(
                s,
                host=host,
                port=port,
                verifier=frames,
                clock=clock,
                log=self.log,
                options=options,
            )
            for s in specs
        }

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Start every speaker; ``started`` once all are connected; runs until cancelled."""
        async with anyio.create_task_group() as tg:
            for sp in self.speakers.values():
                await tg.start(sp.run)
            task_status.started()

    async def wait_synced(self, timeout: float) -> None:
        with anyio.fail_after(timeout):
            while not all(s.synced for s in self.speakers.values()):  # noqa: ASYNC110
                await anyio.sleep(0.05)
