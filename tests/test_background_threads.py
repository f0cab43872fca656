"""Library threads below consensus (``node.background``), in a fresh interpreter: LevelDB
starts its one background thread per process, so the test needs a process of its own."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

PROBE = textwrap.dedent(
    """
    import os, sys, tempfile, threading, time
    import plyvel
    from node.background import BACKGROUND_NICE, BackgroundThreads

    def nice(tid):
        return os.getpriority(os.PRIO_PROCESS, tid)

    base = nice(threading.main_thread().native_id)  # the test run's own nice value
    stop = threading.Event()
    worker = threading.Thread(target=stop.wait, name="a-python-thread")
    worker.start()
    before = set(os.listdir("/proc/self/task"))
    with tempfile.TemporaryDirectory() as tmp:
        db = plyvel.DB(tmp, create_if_missing=True, write_buffer_size=64 << 10)
        for i in range(4000):  # several memtables' worth: LevelDB starts its thread to flush
            db.put(i.to_bytes(4, "big"), os.urandom(200))
        deadline = time.monotonic() + 10
        while set(os.listdir("/proc/self/task")) == before and time.monotonic() < deadline:
            time.sleep(0.01)
        library = sorted(int(t) for t in set(os.listdir("/proc/self/task")) - before)
        assert library, "LevelDB started no thread"
        assert all(nice(t) == base for t in library)

        background = BackgroundThreads()
        assert background.lower_new() == []  # seen once: maybe a Python thread starting
        lowered = background.lower_new()
        assert lowered == library, (lowered, library)
        assert all(nice(t) == max(base, BACKGROUND_NICE) for t in library)
        assert background.lower_new() == []  # each thread once
        # Python's own threads keep their priority.
        assert nice(threading.main_thread().native_id) == base
        assert nice(worker.native_id) == base
        db.close()
    stop.set()
    worker.join()
    print("ok", lowered)
    """
)


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs /proc")
def test_library_threads_are_lowered_and_python_threads_are_not() -> None:
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok ")


def test_without_proc_nothing_is_done(tmp_path: Path) -> None:
    from node.background import BackgroundThreads

    assert BackgroundThreads(tasks=tmp_path / "missing").lower_new() == []
