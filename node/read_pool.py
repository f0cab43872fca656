"""The RPC's costly reads, off the consensus loop: one worker thread, a bounded queue,
and turns taken fairly between client addresses.

The validator's asyncio loop runs consensus; a read that decodes blocks, walks the log
or runs the EVM there would stall every vote behind it. Reads are queued here instead
and the loop only awaits their answers. One worker, because the work is Python (the GIL
lets one thread run at a time, so a second worker would add contention, not speed) and
because then the method objects it runs need no locks of their own. Fair: each client
address has its own queue and the worker serves one job per client in turn, so a
client that queues many reads delays others by at most one of its reads each. Bounded:
a client with ``max_per_client`` reads waiting or running, or a full queue, is answered
``Busy`` at once. Throttled: after each job the worker rests in proportion to the CPU
time the job took, so that it holds at most ``share`` of a core however much is asked
of it. A thread that computes in Python holds the GIL; each time the consensus thread
comes back from a socket or an fsync it must wait for it, and on a loaded machine that
wait stretches with every scheduling delay. The rest is when consensus has it free.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from node.rpc_limits import Busy

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class _Job:
    client: str
    fn: Callable[[], Any]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any] = field(repr=False)


class ReadPool:
    def __init__(
        self, *, max_queued: int = 256, max_per_client: int = 8, share: float = 0.25, name: str = "rpc-reads"
    ) -> None:
        if not 0 < share <= 1:
            raise ValueError("share must be in (0, 1]")
        self.max_queued = max_queued
        self.max_per_client = max_per_client
        self.share = share
        self._name = name
        self._queues: OrderedDict[str, deque[_Job]] = OrderedDict()  # order = whose turn is next
        self._held: dict[str, int] = {}  # per client: waiting + running
        self._waiting = 0
        self._cond = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None
        self.served = 0
        self.refused = 0

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name=self._name, daemon=True)
            self._thread.start()

    def close(self) -> None:
        """Finish the running job, answer the waiting ones Busy, stop the worker."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    async def run(self, client: str, fn: Callable[[], T]) -> T:
        """``fn()`` on the worker, in ``client``'s turn; raises Busy when over the bounds."""
        if not self._closed:
            self.start()
        loop = asyncio.get_running_loop()
        job = _Job(client, fn, loop, loop.create_future())
        with self._cond:
            if self._closed:
                raise Busy("the node is stopping")
            if self._waiting >= self.max_queued:
                self.refused += 1
                raise Busy(f"{self._waiting} reads are waiting; retry shortly", retry_after_ms=100)
            if self._held.get(client, 0) >= self.max_per_client:
                self.refused += 1
                raise Busy(f"a client may have {self.max_per_client} reads in progress; retry shortly",
                           retry_after_ms=100)
            self._held[client] = self._held.get(client, 0) + 1
            queue = self._queues.get(client)
            if queue is None:
                queue = self._queues[client] = deque()
            queue.append(job)
            self._waiting += 1
            self._cond.notify()
        result: T = await job.future
        return result

    def stats(self) -> dict[str, int]:
        with self._cond:
            return {"waiting": self._waiting, "clients": len(self._queues), "served": self.served,
                    "refused": self.refused}

    # --- the worker thread --------------------------------------------------------------
    def _next(self) -> _Job | None:
        with self._cond:
            while not self._queues and not self._closed:
                self._cond.wait()
            if self._closed:
                for queue in self._queues.values():
                    for job in queue:
                        _settle(job, None, Busy("the node is stopping"))
                self._queues.clear()
                return None
            client, queue = next(iter(self._queues.items()))
            job = queue.popleft()
            del self._queues[client]
            if queue:
                self._queues[client] = queue  # back of the line: one job per turn
            self._waiting -= 1
            return job

    def _work(self) -> None:
        while (job := self._next()) is not None:
            began = time.thread_time()
            try:
                result, error = job.fn(), None
            except BaseException as exc:  # handed to the awaiting call, which maps it
                result, error = None, exc
            used = time.thread_time() - began
            with self._cond:
                held = self._held[job.client] - 1
                if held:
                    self._held[job.client] = held
                else:
                    del self._held[job.client]
                self.served += 1
            _settle(job, result, error)
            if self.share < 1:
                rest = used * (1 - self.share) / self.share
                with self._cond:  # rest, unless the pool is closing
                    self._cond.wait_for(lambda: self._closed, timeout=rest)


def _settle(job: _Job, result: Any, error: BaseException | None) -> None:
    def done() -> None:
        if job.future.done():
            return  # the caller went away
        if error is not None:
            job.future.set_exception(error)
        else:
            job.future.set_result(result)

    try:
        job.loop.call_soon_threadsafe(done)
    except RuntimeError:  # the loop has closed: nobody is waiting any more
        log.debug("read answered after its loop closed")
