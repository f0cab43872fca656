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
import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, TypeVar

from ledger.errors import LedgerError
from ledger.genesis import ElectionDef, Genesis
from ledger.workers import Verdict, check_ballots_in_worker, check_in_worker, init_worker, ready

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
        self._gathered: list[_Request] = []  # check_ballots calls of this turn of the loop
        self._sending: set[asyncio.Task[None]] = set()
        self._closed = False

    async def check(self, raw_blocks: list[bytes]) -> list[bytes]:
        """Per block, one flag byte per ballot (see ledger.rules.check_block_ballots); no
        flags for any block if the workers keep dying (the blocks are then checked in
        order, in full: slower, never wrong, and no fault of the peer that sent them)."""
        try:
            return list(await asyncio.gather(*(self._run(check_in_worker, b) for b in raw_blocks)))
        except WorkersUnavailable:
            return [b"" for _ in raw_blocks]

    async def check_ballots(self, raws: Sequence[bytes], elections: Sequence[ElectionDef]) -> list[Verdict]:
        """``check_ballot`` for each of ``raws``, one verdict each, in order. ``elections``:
        the definitions the ballots name. Calls made in one turn of the event loop share
        their chunks, so many one-ballot requests still make few round trips."""
        if not raws:
            return []
        loop = asyncio.get_running_loop()
        request = _Request(list(raws), tuple(elections), loop.create_future())
        if not self._gathered:
            loop.call_soon(self._send_gathered)
        self._gathered.append(request)
        return await request.answer

    def _send_gathered(self) -> None:
        gathered, self._gathered = self._gathered, []
        task = asyncio.get_running_loop().create_task(self._check_gathered(gathered))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _check_gathered(self, gathered: list[_Request]) -> None:
        raws = [raw for request in gathered for raw in request.raws]
        definitions = tuple({e.election_id: e for request in gathered for e in request.elections}.values())
        size = max(1, min(MAX_CHUNK, -(-len(raws) // self.workers)))
        chunks = [raws[i : i + size] for i in range(0, len(raws), size)]
        try:
            answers = await asyncio.gather(*(self._run(check_ballots_in_worker, c, definitions) for c in chunks))
        except asyncio.CancelledError:
            for request in gathered:
                request.answer.cancel()
            raise
        except Exception as exc:  # every caller hears of it
            for request in gathered:
                if not request.answer.done():
                    request.answer.set_exception(exc)
            return
        verdicts = [verdict for answer in answers for verdict in answer]
        start = 0
        for request in gathered:
            if not request.answer.done():  # its caller may have given up
                request.answer.set_result(verdicts[start : start + len(request.raws)])
            start += len(request.raws)

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
                initializer=init_worker, initargs=(self.genesis.to_json(), WORKER_NICE),
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
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


@dataclass(frozen=True)
class _Request:
    raws: list[bytes]
    elections: tuple[ElectionDef, ...]
    answer: asyncio.Future[list[Verdict]]


class Turns:
    """The in-order step of each batch, in the order the batches arrived, however long
    their checks in the workers took: take a turn on arrival, wait for it after the
    checks, finish it after the in-order step (or on any failure)."""

    def __init__(self) -> None:
        self._tail: asyncio.Future[None] | None = None

    def take(self) -> Turn:
        mine = asyncio.get_running_loop().create_future()
        turn = Turn(self._tail, mine)
        self._tail = mine
        return turn


class Turn:
    def __init__(self, previous: asyncio.Future[None] | None, mine: asyncio.Future[None]) -> None:
        self._previous = previous
        self._mine = mine

    async def wait(self) -> None:
        if self._previous is not None and not self._previous.done():
            await asyncio.shield(self._previous)

    def finish(self) -> None:
        """This batch is done; the next may go once every earlier one is (a batch given up
        before its turn passes its turn on only when the one before it finishes)."""
        previous = self._previous
        if previous is None or previous.done():
            self._release()
        else:
            previous.add_done_callback(lambda _: self._release())

    def _release(self) -> None:
        if not self._mine.done():
            self._mine.set_result(None)
