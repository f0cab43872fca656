"""Background work below consensus: the threads a node's libraries start on their own.

LevelDB flushes and compacts in a thread of its own, started inside the library the
first time a table is due. Its work comes in bursts (a memtable flushed, then merged
into level 1) that every validator of a network reaches at about the same moment, since
they all write the same blocks; on machines shared with other work, or several
validators on one host, a burst at normal priority competes with the consensus loop and
stalls finality for seconds. The same reason makes RocksDB lower its compaction
threads' CPU priority. Threads Python did not start are found in ``/proc/self/task`` and
given a higher nice value, once each; a thread counts as the library's only when it is
unknown to :mod:`threading` at two looks in a row (a Python thread just starting is in
``/proc`` an instant before it is in ``threading``). Without ``/proc`` this does nothing.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

log = logging.getLogger(__name__)

TASKS = Path("/proc/self/task")
#: The nice value added for library threads: a tenth of a normal thread's CPU share when
#: the machine is busy, all of what is idle otherwise.
BACKGROUND_NICE = 10


class BackgroundThreads:
    """Lowers the priority of this process's threads that Python did not start."""

    def __init__(self, nice: int = BACKGROUND_NICE, tasks: Path = TASKS) -> None:
        self.nice = nice
        self.tasks = tasks
        self.lowered: set[int] = set()
        self._unknown: set[int] = set()  # unknown at the last look

    def lower_new(self) -> list[int]:
        """Renice every library thread not seen before; their thread ids."""
        try:
            present = {int(name) for name in os.listdir(self.tasks)}
        except OSError:  # no /proc: nothing to do here
            return []
        python_threads = {t.native_id for t in threading.enumerate()}
        unknown = present - python_threads - self.lowered - {os.getpid()}
        new, self._unknown = sorted(unknown & self._unknown), unknown
        for tid in new:
            try:
                current = os.getpriority(os.PRIO_PROCESS, tid)
                os.setpriority(os.PRIO_PROCESS, tid, min(19, max(current, self.nice)))
            except OSError as exc:  # the thread ended, or the system refuses: leave it
                log.debug("thread %d left at its priority: %s", tid, exc)
                continue
            self.lowered.add(tid)
            log.info("library thread %d runs at nice %d (background work below consensus)", tid,
                     os.getpriority(os.PRIO_PROCESS, tid))
        self.lowered &= present
        return new
