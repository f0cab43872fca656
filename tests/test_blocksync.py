"""Block sync on its own: requests, serving from a store, taking in a response through the
``decide`` callable the driver passes in. The worker pool is replaced by a stand-in that
flags every ballot as not pre-checked, so the chain rules check everything in order."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ledger import codec
from ledger.block import Block
from ledger.chain import Chain
from ledger.elections import Elections
from ledger.errors import LedgerError
from node.blocksync import BATCH_BLOCKS, RETRY_S, BlockSync, SyncedBlock, decode_request, encode_request
from tests.helpers import certify, kit, next_block

K = kit(1, 16)


class NoPrecheck:
    async def check(self, raw_blocks: list[bytes], elections: Elections) -> list[bytes]:
        return [b"" for _ in raw_blocks]


def _source(path: Path, blocks: int) -> Chain:
    chain = Chain(path, K.genesis)
    last = None
    for h in range(blocks):
        block = next_block(K, chain.store.tip, [K.ballot(h, h % 3).encode()], last)
        last = certify(K, block)
        chain.commit(block, last)
    return chain


def _sync(chain: Chain, now: list[float] | None = None) -> BlockSync:
    clock = (lambda: now[0]) if now is not None else (lambda: 0.0)
    return BlockSync(K.genesis, chain.store, NoPrecheck(), clock=clock,  # type: ignore[arg-type]
                     elections=lambda: Elections.of_genesis(K.genesis))


def test_requests_are_spaced_unless_forced(tmp_path: Path) -> None:
    now = [100.0]
    with Chain(tmp_path / "db", K.genesis) as chain:
        sync = _sync(chain, now)
        assert sync.request() == encode_request(1)
        assert sync.request() is None
        assert sync.request(force=True) == encode_request(1)
        now[0] += RETRY_S
        assert sync.request() == encode_request(1)


def test_requests_are_bounded() -> None:
    assert decode_request(encode_request(0, 10**9)) == (1, BATCH_BLOCKS)
    with pytest.raises(LedgerError):
        decode_request(codec.encode([b"\x01"]))
    with pytest.raises(LedgerError):
        decode_request(b"\x00" * 100)


def test_a_behind_store_catches_up_through_decide_and_skips_what_it_has(tmp_path: Path) -> None:
    with _source(tmp_path / "src", 4) as source, Chain(tmp_path / "dst", K.genesis) as behind:
        response = _sync(source).serve(encode_request(1))
        decided: list[int] = []

        def decide(synced: SyncedBlock) -> bool:
            decided.append(synced.height)
            behind.commit(Block.decode(synced.block), synced.certificate, admitted=synced.admitted)
            return True

        sync = _sync(behind)
        outcome = asyncio.run(sync.receive(response, decide))
        assert (outcome.applied, outcome.ask_more) == (4, True)
        assert decided == [1, 2, 3, 4] and behind.store.tip == source.store.tip
        again = asyncio.run(sync.receive(response, decide))
        assert (again.applied, again.ask_more, decided) == (0, False, [1, 2, 3, 4])
        assert codec.as_list(codec.decode(_sync(source).serve(encode_request(5))), None, "empty") == []


def test_a_refused_block_is_the_peers_fault(tmp_path: Path) -> None:
    with _source(tmp_path / "src", 2) as source, Chain(tmp_path / "dst", K.genesis) as behind:
        response = _sync(source).serve(encode_request(1))
        with pytest.raises(LedgerError, match="synced block 1 was refused"):
            asyncio.run(_sync(behind).receive(response, lambda synced: False))
        assert behind.store.height == 0

