"""Checking the ballots of synced blocks in worker processes.

A validator that was down must re-check every ballot of the blocks it fetches; the
signatures and credential proofs dominate, and they do not depend on order, so workers
check them (the same ``ledger.rules.check_ballot``) while the event loop goes on, and the
in-order ``apply_block`` then skips what passed. Started on first use: a validator that
never falls behind never pays for the workers.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

from ledger.elections import Elections
from ledger.genesis import Genesis
from ledger.workers import check_in_worker, definitions_of, init_worker


class BallotPrechecker:
    def __init__(self, genesis: Genesis, workers: int | None = None) -> None:
        self.genesis = genesis
        self.workers = workers or max(1, min(2, os.cpu_count() or 1))
        self._pool: ProcessPoolExecutor | None = None

    async def check(self, raw_blocks: list[bytes], elections: Elections) -> list[bytes]:
        """Per block, one flag byte per ballot (see ledger.rules.check_block_ballots),
        with the definitions of ``elections``."""
        definitions = definitions_of(elections, self.genesis)
        if self._pool is None:
            # spawn, not fork: the parent runs LevelDB and event-loop threads.
            self._pool = ProcessPoolExecutor(
                self.workers, mp_context=multiprocessing.get_context("spawn"),
                initializer=init_worker, initargs=(self.genesis.to_json(),),
            )
        loop = asyncio.get_running_loop()
        return list(await asyncio.gather(
            *(loop.run_in_executor(self._pool, check_in_worker, b, definitions) for b in raw_blocks)))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
