"""Checking ballots in worker processes, ahead of the in-order rules.

A ballot's signature, credential proof and (for an encrypted ballot) payload proofs
dominate its cost and do not depend on order, so workers check them (the same
``ledger.rules.check_ballot``, through ``ledger.workers``) while the event loop goes on;
the in-order rules then skip what passed. Two callers: block sync (whole blocks, see
``node.blocksync``) and admission (lists of ballots: the validator's mempool, the
gateway's submissions). The pool starts on first use, so a node that never needs it
never pays for it, and a pool whose worker died is replaced: the batches it lost are
checked again once, then refused with :class:`WorkersUnavailable` (retryable).
"""

from __future__ import annotations

import asyncio
import functools
import multiprocessing
import os
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, TypeVar

from ledger.elections import Elections
from ledger.errors import LedgerError
from ledger.genesis import ElectionDef, Genesis
from ledger.workers import Verdict, check_ballots_in_worker, check_in_worker, definitions_of, init_worker, ready

T = TypeVar("T")
MAX_CHUNK = 32  # ballots per worker call: ~45 ms of encrypted checks, ~50 KB each way
# Workers run at a lower priority than the node: when the cores are busy the consensus
# loop and the RPC (answers, timers, votes) go first, the checks take what is left.
WORKER_NICE = 10


class WorkersUnavailable(LedgerError):
    """The worker processes died twice while checking a batch; the ballots are unharmed
    and the same request may be sent again."""

    code = "workers_unavailable"


def default_workers() -> int:
    return max(1, min(2, os.cpu_count() or 1))


class BallotPrechecker:
    def __init__(self, genesis: Genesis, workers: int | None = None) -> None:
        self.genesis = genesis
        self.workers = workers or default_workers()
        self._pool: ProcessPoolExecutor | None = None
        self.restarts = 0
        self._closed = False
        # Chunks wait in lanes, one lane per large call and one for the small calls of a
        # turn of the loop; workers take from the lanes in turn, so one client's large
        # batch delays another's by at most a chunk, not by the whole batch.
        self._lanes: deque[deque[_Chunk]] = deque()
        self._in_flight: set[asyncio.Task[list[Verdict]]] = set()
        self._gathered: list[_Request] = []  # small check_ballots calls of this turn of the loop

    async def check(self, raw_blocks: list[bytes], elections: Elections) -> list[bytes]:
        """Per block, one flag byte per ballot (see ledger.rules.check_block_ballots), with
        the definitions of ``elections``; no flags for any block if the workers keep dying
        (the blocks are then checked in order, in full: slower, never wrong, and no fault
        of the peer that sent them)."""
        definitions = definitions_of(elections, self.genesis)
        try:
            return list(await asyncio.gather(*(self._run(check_in_worker, b, definitions) for b in raw_blocks)))
        except WorkersUnavailable:
            return [b"" for _ in raw_blocks]

    async def check_ballots(self, raws: Sequence[bytes], elections: Sequence[ElectionDef]) -> list[Verdict]:
        """``check_ballot`` for each of ``raws``, one verdict each, in order. ``elections``:
        the definitions the ballots name. Calls of fewer than a chunk's ballots made in one
        turn of the event loop share chunks, so one-ballot requests make few round trips."""
        if not raws:
            return []
        if len(raws) >= MAX_CHUNK:
            chunks = self._queue(list(raws), tuple(elections))
            answers = await asyncio.gather(*(chunk.answer for chunk in chunks))
            return [verdict for answer in answers for verdict in answer]
        loop = asyncio.get_running_loop()
        request = _Request(list(raws), tuple(elections), loop.create_future())
        if not self._gathered:
            loop.call_soon(self._queue_gathered)
        self._gathered.append(request)
        return await request.answer

    def _queue_gathered(self) -> None:
        """The small calls of a turn of the loop as one lane; each call is answered as
        soon as the chunks holding its ballots are."""
        gathered, self._gathered = self._gathered, []
        raws = [raw for request in gathered for raw in request.raws]
        definitions = tuple({e.election_id: e for request in gathered for e in request.elections}.values())
        try:
            chunks = self._queue(raws, definitions)
        except WorkersUnavailable as exc:
            for request in gathered:
                request.answer.set_exception(exc)
            return
        size = len(chunks[0].raws)  # every chunk but the last holds this many
        start = 0
        for request in gathered:
            first, last = start // size, (start + len(request.raws) - 1) // size
            waiting = asyncio.gather(*(chunk.answer for chunk in chunks[first : last + 1]))
            waiting.add_done_callback(functools.partial(_answer, request, start - first * size))
            start += len(request.raws)

    def _queue(self, raws: list[bytes], definitions: tuple[ElectionDef, ...]) -> list[_Chunk]:
        """``raws`` in chunks spread over the workers, as a lane of their own."""
        if self._closed:
            raise WorkersUnavailable("the node is shutting down")
        loop = asyncio.get_running_loop()
        size = max(1, min(MAX_CHUNK, -(-len(raws) // self.workers)))
        chunks = [_Chunk(raws[i : i + size], definitions, loop.create_future()) for i in range(0, len(raws), size)]
        self._lanes.append(deque(chunks))
        self._pump()
        return chunks

    def _pump(self) -> None:
        """Keep every worker busy and one chunk waiting, taking from the lanes in turn."""
        while len(self._in_flight) <= self.workers and self._lanes:
            lane = self._lanes.popleft()
            chunk = lane.popleft()
            if lane:
                self._lanes.append(lane)
            if chunk.answer.done():
                continue  # its caller gave up
            task = asyncio.get_running_loop().create_task(self._run(check_ballots_in_worker, chunk.raws,
                                                                    chunk.definitions))
            self._in_flight.add(task)
            task.add_done_callback(functools.partial(self._chunk_done, chunk))

    def _chunk_done(self, chunk: _Chunk, task: asyncio.Task[list[Verdict]]) -> None:
        self._in_flight.discard(task)
        if task.cancelled():
            chunk.answer.cancel()
        elif (exc := task.exception()) is not None:
            if not chunk.answer.done():
                chunk.answer.set_exception(exc)
        elif not chunk.answer.done():
            chunk.answer.set_result(task.result())
        if not self._closed:
            self._pump()

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in a worker; if the pool breaks (a worker died), once more in a new one."""
        loop = asyncio.get_running_loop()
        for attempt in range(2):
            pool = self._started()
            try:
                return await loop.run_in_executor(pool, fn, *args)
            except BrokenProcessPool:
                self._replace(pool)
                if attempt:
                    raise WorkersUnavailable("the ballot checking workers stopped; send the ballots again") from None
        raise AssertionError("unreachable")  # or else the loop above has a bug

    def start(self) -> None:
        """Start the workers now rather than on first use."""
        self._started()

    def _started(self) -> ProcessPoolExecutor:
        if self._closed:
            raise WorkersUnavailable("the node is shutting down")
        if self._pool is None:
            # spawn, not fork: the parent runs LevelDB and event-loop threads.
            self._pool = ProcessPoolExecutor(
                self.workers, mp_context=multiprocessing.get_context("spawn"),
                initializer=init_worker, initargs=(self.genesis.to_json(), WORKER_NICE, os.getpid()),
            )
            for _ in range(self.workers):  # a pool spawns a worker per call while none is idle
                self._pool.submit(ready)
        return self._pool

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        """Drop ``broken`` (every call waiting on it fails over to the next pool)."""
        if self._pool is broken:
            self._pool = None
            self.restarts += 1
            broken.shutdown(wait=False, cancel_futures=True)

    def worker_pids(self) -> list[int]:
        """The running workers' process ids (none before the first use)."""
        return [] if self._pool is None else sorted(self._pool._processes or {})

    def close(self) -> None:
        self._closed = True
        for lane in self._lanes:
            for chunk in lane:
                chunk.answer.cancel()
        self._lanes.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


@dataclass(frozen=True)
class _Request:
    raws: list[bytes]
    elections: tuple[ElectionDef, ...]
    answer: asyncio.Future[list[Verdict]]


def _answer(request: _Request, offset: int, waiting: asyncio.Future[list[list[Verdict]]]) -> None:
    """``request``'s verdicts, from ``offset`` in the chunks that hold them."""
    if waiting.cancelled():
        request.answer.cancel()
        return
    failure = waiting.exception()
    if request.answer.done():  # its caller gave up
        return
    if failure is not None:
        request.answer.set_exception(failure)
        return
    verdicts = [verdict for answer in waiting.result() for verdict in answer]
    request.answer.set_result(verdicts[offset : offset + len(request.raws)])


@dataclass(frozen=True)
class _Chunk:
    raws: list[bytes]
    definitions: tuple[ElectionDef, ...]
    answer: asyncio.Future[list[Verdict]]


class ArrivalOrder:
    """Ballots of one credential admitted in the order their batches arrived, whatever
    order their checks finish in, without holding a batch behind earlier ones it shares
    no credential with (a small batch is not held behind another client's large one).

    A batch takes a :class:`Place` on arrival, tells it its ballots' keys (election and
    credential) once it has read them, waits before its in-order step, and finishes.
    The cost per batch is in its own keys, not in the number of batches running."""

    def __init__(self) -> None:
        self._arrived = 0
        self._unknown: OrderedDict[int, Place] = OrderedDict()  # keys not told yet, by arrival
        self._holders: dict[Hashable, list[Place]] = {}  # running places by the keys they hold

    def arrive(self) -> Place:
        loop = asyncio.get_running_loop()
        self._arrived += 1
        place = Place(self, self._arrived, loop.create_future(), loop.create_future())
        self._unknown[place.seq] = place
        return place


class Place:
    def __init__(self, order: ArrivalOrder, seq: int, known: asyncio.Future[None], done: asyncio.Future[None]) -> None:
        self._order = order
        self.seq = seq
        self._known = known
        self._done = done
        self.keys: frozenset[Hashable] = frozenset()

    def know(self, keys: frozenset[Hashable]) -> None:
        """This batch's keys (told once)."""
        if self._known.done():
            return
        self.keys = keys
        for key in keys:
            self._order._holders.setdefault(key, []).append(self)
        self._order._unknown.pop(self.seq, None)
        self._known.set_result(None)

    async def wait(self) -> None:
        """Until every earlier batch still running has told its keys, and those that
        share one with this batch have finished."""
        unknown = self._order._unknown
        while unknown:
            first = next(iter(unknown.values()))
            if first.seq >= self.seq:
                break
            await asyncio.shield(first._known)
        holders = self._order._holders
        for key in self.keys:
            for other in list(holders.get(key, ())):
                if other.seq < self.seq and not other._done.done():
                    await asyncio.shield(other._done)

    def finish(self) -> None:
        """Done (admitted, refused or given up): later batches need not wait for it."""
        if not self._known.done():  # given up before its keys: it admitted nothing
            self._order._unknown.pop(self.seq, None)
            self._known.set_result(None)
        holders = self._order._holders
        for key in self.keys:
            places = holders.get(key)
            if places is not None and self in places:
                places.remove(self)
                if not places:
                    del holders[key]
        if not self._done.done():
            self._done.set_result(None)
