"""The outbox's promise at the HTTP edge: no 202 before the ballot's batch is on disk, and
every batch written with sync=True.

SIGKILL keeps the OS page cache, so the kill tests cannot see a missing fsync or an
answer sent before the write: here the gateway runs under a real uvicorn on loopback in
this process, its outbox's write is held in its worker thread, and a spy on the outbox's
database records the sync flag of every batch.
"""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from ballotledger.netsetup import free_ports
from node.gateway.app import create_app
from node.gateway.config import GatewayConfig, add_key
from node.gateway.edge import EdgeMiddleware
from tests.gateway.harness import MAIN, Voters, make_network

HOLD_S = 0.5  # how long the write is held while the test listens for an answer


class SyncSpy:
    """The outbox's plyvel database, recording the keyword arguments of every batch."""

    def __init__(self, db: Any) -> None:
        self._db = db
        self.batches: list[dict[str, Any]] = []

    def write_batch(self, **kwargs: Any) -> Any:
        self.batches.append(kwargs)
        return self._db.write_batch(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)


@pytest.fixture(scope="module")
def voters(tmp_path_factory: pytest.TempPathFactory) -> Voters:
    directory = tmp_path_factory.mktemp("outbox-sync")
    make_network(directory, voters=16)
    return Voters(directory)


def _request(port: int, key: str, raw: bytes) -> bytes:
    body = json.dumps({"ballot": raw.hex()}).encode()
    return (f"POST /v1/elections/{MAIN}/ballots HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body


@pytest.mark.parametrize("edge", [False, True], ids=["route", "edge-fast-path"])
def test_no_202_before_the_batch_is_written_and_every_batch_is_synced(
    voters: Voters, tmp_path: Path, edge: bool
) -> None:
    """A ballot's request gets not one byte of answer while its batch's write is held; once
    the write completes it gets 202, and every batch the outbox wrote had sync=True.

    Fails when Outbox.admit returns before its batch's future resolves (a 202 leaves while
    the write is held), and when Outbox._write drops sync=True (tried by hand)."""
    port = free_ports(1)[0]
    key = add_key(tmp_path / "keys.json", "fe", rate_per_s=1000, burst=1000)
    config = GatewayConfig(listen=f"127.0.0.1:{port}", genesis_file=voters.genesis_path,
                           validators=("http://127.0.0.1:9",), outbox_dir=tmp_path / "ob",
                           api_keys_file=tmp_path / "keys.json")
    fastapi_app = create_app(config)
    app: Any = EdgeMiddleware(fastapi_app) if edge else fastapi_app
    writing, release = threading.Event(), threading.Event()

    async def scenario() -> tuple[list[bytes], list[dict[str, Any]]]:
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                               lifespan="on"))
        serving = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.01)
        outbox = fastapi_app.state.gateway.outbox
        spy = SyncSpy(outbox.db)
        outbox.db = spy
        real_write = outbox._write

        def held_write(batch: Any) -> None:
            writing.set()
            release.wait(10)
            real_write(batch)

        outbox._write = held_write
        try:
            streams = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
            for i, (_, writer) in enumerate(streams):
                writer.write(_request(port, key, voters.ballot(i, 1)))
                await writer.drain()
            while not writing.is_set():
                await asyncio.sleep(0.01)
            # The write is in progress: nobody may have been told "accepted" yet.
            for reader, _ in streams:
                with pytest.raises(TimeoutError):
                    await asyncio.wait_for(reader.read(1), HOLD_S / len(streams))
            release.set()
            answers = [await asyncio.wait_for(reader.read(), 10) for reader, _ in streams]
            for _, writer in streams:
                writer.close()
        finally:
            release.set()
            server.should_exit = True
            await serving
        return answers, spy.batches

    answers, batches = asyncio.run(scenario())
    for answer in answers:
        assert answer.startswith(b"HTTP/1.1 202 "), answer[:200]
    assert batches and all(b.get("sync") is True for b in batches), batches
