"""The RPC table's wiring: the guards on eth_call, the worker keeping each method's
signature, pages and results over a real store, and the [rpc] limits in node.toml."""

from __future__ import annotations

import asyncio
import inspect
import tomllib
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from ledger.ballot import BallotEnvelope
from ledger.chain import Chain
from ledger.tally import Tally
from node.config import ConfigError, NodeConfig, RpcLimits
from node.http_limits import HttpLimits
from node.jsonrpc import InvalidParams, current_client
from node.read_pool import ReadPool
from node.rpc_methods import BallotMethods
from node.rpc_table import HeaderSource, capped_call, on_worker
from tests.helpers import certify, kit, next_block

K = kit(voters=24)


class _Node:
    def __init__(self, chain: Chain) -> None:
        self.chain = chain
        self.mempool: Any = None

    def status(self) -> dict[str, Any]:
        return {}

    def gossip_ballots(self, raws: list[bytes]) -> None:
        pass


@pytest.fixture
def chain(tmp_path: Path) -> Any:
    with Chain(tmp_path / "db", K.genesis) as c:
        last = None
        for h in range(6):
            ballots = [K.ballot(v, v % 3).encode() for v in range(4 * h, 4 * h + 4)]
            block = next_block(K, c.store.tip, ballots, last)
            last = certify(K, block)
            c.commit(block, last)
        yield c


def test_eth_call_is_capped_and_kept_out_of_precompiles() -> None:
    seen: list[Any] = []

    async def call(call: Any, block: Any = "latest") -> str:
        seen.append(call)
        return "0x"

    guarded = capped_call(call, 1000)
    asyncio.run(guarded({"to": "0x" + "11" * 20, "gas": hex(2**63)}))
    asyncio.run(guarded({"to": "0x" + "11" * 20}))
    asyncio.run(guarded({"to": "0x" + "11" * 20, "gas": "0x10"}))
    assert [c["gas"] for c in seen] == [hex(1000), hex(1000), "0x10"]
    for precompile in ("0x" + "00" * 19 + "08", "0x" + "00" * 19 + "01", "0x" + "00" * 18 + "0100"):
        with pytest.raises(InvalidParams):
            asyncio.run(guarded({"to": precompile, "data": "0x"}))
    assert len(seen) == 3


def test_a_method_on_the_worker_keeps_its_signature_and_answer() -> None:
    async def method(a: int, b: int = 2) -> int:
        return a + b

    pool = ReadPool()
    try:
        wrapped = on_worker(pool, method)
        assert inspect.signature(wrapped) == inspect.signature(method)  # the dispatcher checks params by it
        assert asyncio.run(wrapped(40)) == 42
    finally:
        pool.close()


def test_headers_read_without_the_ballots_match_the_blocks(chain: Chain) -> None:
    source = HeaderSource(chain.store, cache=2)
    for h in (1, 3, 6, 3, 1):
        assert source.header(h) == chain.store.block(h).header


def test_pages_stop_at_their_byte_budget_and_results_match_a_replay(chain: Chain) -> None:
    one_block = len(chain.store.raw_block(2)) + len(chain.store.raw_certificate(2))
    pool = ReadPool()
    try:
        methods = BallotMethods(_Node(chain), limits=RpcLimits(max_page_bytes=2 * one_block + 10), pool=pool)

        async def main() -> tuple[Any, Any, list[Any]]:
            current_client.set("10.0.0.1")
            page = await methods.get_blocks(2, 500)
            tiny = BallotMethods(_Node(chain), limits=RpcLimits(max_page_bytes=1), pool=pool)
            return page, await tiny.get_blocks(1, 500), [await methods.get_results(h) for h in (6, 2, 4, None)]

        page, tiny, results = asyncio.run(main())
    finally:
        pool.close()
    assert [b["block"] for b in page["blocks"]] == [chain.store.raw_block(h).hex() for h in (2, 3)]
    assert len(tiny["blocks"]) == 1  # never an empty page while blocks are left
    for h, got in zip((6, 2, 4, 6), results, strict=True):
        tally = Tally(K.genesis)
        for height in range(1, h + 1):
            for raw in chain.store.block(height).ballots:
                tally.record(BallotEnvelope.decode(raw))
        tally.height = h
        assert got == tally.to_json_obj()


def test_rpc_limits_round_trip_through_node_toml_and_refuse_unknown_keys(tmp_path: Path) -> None:
    config = NodeConfig(name="n", data_dir=tmp_path / "d", genesis_file=tmp_path / "g.json",
                        key_file=tmp_path / "k", p2p_listen="127.0.0.1:1", rpc_listen="127.0.0.1:2",
                        rpc_limits=RpcLimits(submit_rate=5.0, submit_exempt=("10.1.1.1",), batch_budget=77))
    path = tmp_path / "node.toml"
    path.write_text(tomli_w.dumps(config.to_obj(relative_to=tmp_path)))
    assert NodeConfig.load(path).rpc_limits == config.rpc_limits
    raw = tomllib.loads(path.read_text())
    # every default is written out: the RPC's cost limits and its HTTP limits share the table
    assert set(raw["rpc"]) == {"listen", *RpcLimits.__dataclass_fields__, *HttpLimits.__dataclass_fields__}
    for bad in ({"batch_budgt": 5}, {"submit_rate": 0}, {"read_share": 2.0}):
        path.write_text(tomli_w.dumps(raw | {"rpc": raw["rpc"] | bad}))
        with pytest.raises(ConfigError):
            NodeConfig.load(path)
