"""Starting and stopping the control plane leaks no file descriptors or threads."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from broadcaster.bench.harness import ControllerThread
from broadcaster.broker.process import Broker
from tests.conftest import make_settings


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_start_stop_cycles_do_not_leak(tmp_path: Path, broker: Broker) -> None:
    def cycle(i: int) -> None:
        st = ControllerThread(make_settings(tmp_path / str(i), broker))
        st.start()
        st.stop()

    cycle(0)  # warm up imports, caches and the first database file
    fds, threads = open_fds(), threading.active_count()
    for i in range(1, 4):
        cycle(i)
    assert open_fds() <= fds + 1, "file descriptors leaked"
    assert threading.active_count() <= threads, "threads leaked"
