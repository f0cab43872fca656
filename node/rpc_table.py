"""A validator's whole JSON-RPC table: the ``ballot_*`` and ``eth_*`` methods, each run
where its cost allows, under the limits of the node's config.

- On the RPC's own loop (``node.rpc_thread``): constants, ``web3_sha3`` (of at most
  1 MiB) and ``net_peerCount`` (which asks the consensus loop).
- On the consensus loop: ``ballot_status`` and submissions (which feed the mempool and
  the transaction pool), charged to the client's token bucket first.
- On the read worker (``node.read_pool``): everything else. The Ethereum methods are
  synchronous bodies in ``async def``; they are driven to completion on the worker.
- ``eth_call``: gas capped at ``eth_call_gas``; it and ``eth_estimateGas`` (which runs with
  the engine's own gas) refuse calls straight into a precompiled contract, because
  py-evm prices those by Ethereum's gas but runs them in Python: a bn256 pairing
  (34,000 gas) takes about 0.2 s here, so the default 30M gas would buy minutes of work.
  Other code on this chain is the registry's or the authority's.
"""

from __future__ import annotations

import functools
import time
from collections import OrderedDict
from collections.abc import Awaitable, Coroutine
from typing import Any

from contracts.engine import EvmExecutor
from ledger import codec
from ledger.block import Block, BlockHeader
from ledger.store import LedgerStore
from node.config import RpcLimits
from node.eth_rpc import EthMethods
from node.jsonrpc import InvalidParams, Method, MethodTable, current_client
from node.read_pool import ReadPool
from node.rpc_limits import BYTES_PER_PARSE_UNIT, ClientBuckets
from node.rpc_methods import BallotMethods, NodeState
from node.rpc_thread import ConsensusLoop

INLINE = frozenset({
    "eth_chainId", "net_version", "net_listening", "web3_clientVersion", "eth_syncing",
    "eth_blockNumber", "eth_gasPrice", "eth_maxPriorityFeePerGas", "eth_accounts",
    "net_peerCount", "web3_sha3", "eth_mining", "eth_hashrate", "eth_blobBaseFee",
})
LAST_PRECOMPILE = 0x100  # addresses 0x01..0x100 are precompiles or reserved for them
HEADER_CACHE = 4096


def build_rpc_table(
    node: NodeState,
    limits: RpcLimits,
    pool: ReadPool,
    *,
    engine: EvmExecutor | None = None,
    send_raw_transaction: Method | None = None,
    consensus: ConsensusLoop | None = None,
) -> MethodTable:
    consensus = consensus or ConsensusLoop()
    submissions = ClientBuckets(limits.submit_rate, limits.submit_burst, exempt=limits.submit_exempt)
    table = MethodTable(
        BallotMethods(node, limits=limits, pool=pool, submissions=submissions, consensus=consensus).table(),
        batch_budget=limits.batch_budget, max_body_bytes=limits.max_body_bytes, max_json_values=limits.max_json_values,
        parse_buckets=ClientBuckets(limits.parse_rate, parse_units_of(limits), exempt=limits.submit_exempt),
    )
    if engine is None:
        return table
    async def peer_count() -> int:
        async def count() -> int:
            return len(node.status()["peers"])

        return await consensus.run(count)

    eth = EthMethods(HeaderSource(node.chain.store), engine, max_log_blocks=limits.max_log_blocks,
                     peer_count=peer_count)
    for name, method in eth.table().items():
        if name in INLINE:
            table[name] = method
        else:
            table[name] = on_worker(pool, method)
    for name in ("eth_call", "eth_estimateGas"):
        table[name] = capped_call(table[name], limits.eth_call_gas)
    if send_raw_transaction is not None:
        table["eth_sendRawTransaction"] = rate_limited(
            on_consensus(consensus, send_raw_transaction), submissions, "transactions")
    return table


def parse_units_of(limits: RpcLimits) -> int:
    """A parse bucket's burst: the largest body the limits let through, twice."""
    return 2 * (limits.max_json_values + limits.max_body_bytes // BYTES_PER_PARSE_UNIT)


def on_worker(pool: ReadPool, method: Method) -> Method:
    """``method`` (an ``async def`` that never awaits) run to completion on the worker."""

    @functools.wraps(method)  # keeps the signature the dispatcher checks params against
    async def run(*args: Any, **kwargs: Any) -> Any:
        return await pool.run(current_client.get(), lambda: _finish(method(*args, **kwargs)))

    return run


def on_consensus(consensus: ConsensusLoop, method: Method) -> Method:
    @functools.wraps(method)
    async def run(*args: Any, **kwargs: Any) -> Any:
        return await consensus.run(functools.partial(method, *args, **kwargs))

    return run


def _finish(coroutine: Awaitable[Any]) -> Any:
    assert isinstance(coroutine, Coroutine)
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    coroutine.close()
    raise RuntimeError("a method run on the read worker awaited something")


def capped_call(method: Method, gas_cap: int) -> Method:
    """``eth_call``/``eth_estimateGas`` with the gas capped and precompiles refused."""

    @functools.wraps(method)
    async def call(call: Any, *rest: Any, **kwargs: Any) -> Any:
        if isinstance(call, dict):
            to = call.get("to")
            if isinstance(to, str) and _is_precompile(to):
                raise InvalidParams("calls into a precompiled contract are not served by this node's RPC")
            gas = call.get("gas")
            if gas is None or _quantity_above(gas, gas_cap):
                call = call | {"gas": hex(gas_cap)}
        return await method(call, *rest, **kwargs)

    return call


def _is_precompile(address: str) -> bool:
    text = address[2:] if address.startswith("0x") else address
    try:
        return 0 < int(text, 16) <= LAST_PRECOMPILE and len(text) == 40
    except ValueError:
        return False  # the method itself refuses a malformed address


def _quantity_above(value: Any, cap: int) -> bool:
    if isinstance(value, int) and not isinstance(value, bool):
        return value > cap
    if isinstance(value, str) and value.startswith("0x") and 2 < len(value) <= 66:
        try:
            return int(value, 16) > cap
        except ValueError:
            return False
    return False


def rate_limited(method: Method, buckets: ClientBuckets, what: str) -> Method:
    @functools.wraps(method)
    async def limited(*args: Any, **kwargs: Any) -> Any:
        buckets.take(current_client.get(), 1, time.monotonic(), what)
        return await method(*args, **kwargs)

    return limited


class HeaderSource:
    """The store as ``node.eth_rpc.BlockSource``, reading a header without decoding its
    block's ballots (``eth_getLogs`` reads one per block it scans), with recent
    headers cached, and the store's transaction index."""

    def __init__(self, store: LedgerStore, cache: int = HEADER_CACHE) -> None:
        self._store = store
        self._cache: OrderedDict[int, BlockHeader] = OrderedDict()
        self._cache_size = cache

    @property
    def height(self) -> int:
        return self._store.height

    def _header_bytes(self, height: int) -> bytes:
        raw = self._store.raw_block(height)
        # A block is [header encoding, ballots, transactions, last commit]: the header
        # is the outer list's first item, a byte string.
        _, start, end = codec.read_header(raw, 0, len(raw))
        _, h_start, h_end = codec.read_header(raw, start, end)
        return raw[h_start:h_end]

    def header(self, height: int) -> BlockHeader:
        header = self._cache.get(height)
        if header is not None:
            self._cache.move_to_end(height)
            return header
        header = BlockHeader.decode(self._header_bytes(height))
        self._cache[height] = header
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return header

    def block(self, height: int) -> Block:
        return self._store.block(height)

    def height_of(self, block_hash: bytes) -> int | None:
        return self._store.height_of(block_hash)

    def transaction_location(self, tx_hash: bytes) -> tuple[int, int] | None:
        return self._store.transaction_location(tx_hash)

    def heights_with_transactions(self, lo: int, hi: int, limit: int) -> list[int]:
        return self._store.heights_with_transactions(lo, hi, limit)

