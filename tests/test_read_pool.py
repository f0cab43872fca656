"""The read worker: fair turns between clients, bounded queues, answers and errors back
on the caller's loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from node.read_pool import ReadPool
from node.rpc_limits import Busy


@pytest.fixture
def pool() -> Iterator[ReadPool]:
    p = ReadPool(max_queued=16, max_per_client=6)
    yield p
    p.close()


def test_clients_take_turns_whatever_one_of_them_queued(pool: ReadPool) -> None:
    """Fails when the worker serves jobs first-come first-served: the quiet client's one
    read would then wait behind all of the busy client's."""
    gate = threading.Event()
    order: list[str] = []

    def job(name: str) -> str:
        if name == "a0":
            gate.wait(5)
        order.append(name)
        return name

    async def main() -> list[str]:
        first = asyncio.create_task(pool.run("10.0.0.1", lambda: job("a0")))
        await asyncio.sleep(0.05)  # a0 is running and holds the worker
        busy = [asyncio.create_task(pool.run("10.0.0.1", lambda n=n: job(f"a{n}"))) for n in range(1, 6)]
        await asyncio.sleep(0.01)
        quiet = asyncio.create_task(pool.run("10.0.0.2", lambda: job("b")))
        await asyncio.sleep(0.01)
        gate.set()
        return list(await asyncio.gather(first, *busy, quiet))

    answers = asyncio.run(main())
    assert answers == ["a0", "a1", "a2", "a3", "a4", "a5", "b"]
    assert order.index("b") <= 2, order  # after a0 and at most one more of a's


def test_a_client_over_its_share_is_told_busy_at_once(pool: ReadPool) -> None:
    gate = threading.Event()

    async def main() -> tuple[int, int]:
        held = [asyncio.create_task(pool.run("10.0.0.1", lambda: gate.wait(5))) for _ in range(6)]
        await asyncio.sleep(0.05)
        with pytest.raises(Busy):
            await pool.run("10.0.0.1", lambda: None)
        others = [asyncio.create_task(pool.run(f"10.0.1.{i}", lambda: 1)) for i in range(16)]
        await asyncio.sleep(0.05)
        refused = sum(1 for t in others if t.done() and isinstance(t.exception(), Busy))
        gate.set()
        await asyncio.gather(*held)
        served = sum(1 for r in await asyncio.gather(*others, return_exceptions=True) if r == 1)
        return refused, served

    refused, served = asyncio.run(main())
    assert refused >= 1 and served + refused == 16  # the whole queue holds 16 waiting reads


def test_errors_come_back_as_raised(pool: ReadPool) -> None:
    def fails() -> None:
        raise KeyError("missing")

    async def main() -> None:
        with pytest.raises(KeyError):
            await pool.run("c", fails)
        assert await pool.run("c", lambda: 42) == 42

    asyncio.run(main())
    assert pool.stats()["served"] == 2


def test_the_worker_rests_after_costly_jobs_but_not_through_a_close() -> None:
    """The worker's CPU share: after a job that took ~50 ms of CPU it rests ~450 ms at a
    10% share before the next; closing does not wait for the rest."""
    import time

    pool = ReadPool(share=0.1)

    def spin() -> None:
        end = time.thread_time() + 0.05
        while time.thread_time() < end:
            pass

    async def main() -> float:
        await pool.run("c", spin)
        began = time.monotonic()
        await pool.run("c", lambda: None)
        return time.monotonic() - began

    waited = asyncio.run(main())
    assert waited >= 0.3, waited
    asyncio.run(pool.run("c", spin))
    began = time.monotonic()
    pool.close()
    assert time.monotonic() - began < 0.3
