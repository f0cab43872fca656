"""The Ethereum JSON-RPC methods common clients call, over the ledger's blocks and EVM state.

Same shape as :mod:`node.rpc_methods`: ``EthMethods(chain, executor).table()`` maps
method names to async callables for :func:`node.jsonrpc.handle_body`.

How ledger blocks look to an Ethereum client:

- block ``n`` is ledger block ``n`` (block 0 is the genesis: its hash is the genesis hash);
  ``hash``/``parentHash`` are the ledger's header hashes (a documented difference: the
  hash is not keccak256 of an Ethereum header's RLP, and commit certificates sign it),
  ``stateRoot`` the EVM state root in the header, ``miner`` the proposer's address,
  ``timestamp`` seconds (``timestampMs``, ``logSize`` and ``logRoot`` are extra fields);
- a block's transactions are its authority transactions, then one pseudo transaction for
  the checkpoint system call (from 0xff..fe, no signature, hash
  ``ledger.tx_index.system_call_hash``), so the ``Checkpoint`` events have a
  transaction like every other log; block 0 has one pseudo transaction, the genesis
  call, whose receipt holds the genesis elections' events. That one presentation holds
  everywhere: transaction lists and counts, receipts, gas (the checkpoint call's gas
  counts in its receipt, in ``cumulativeGasUsed`` and in the block's ``gasUsed``),
  logs, blooms, and ``transactionsRoot``/``receiptsRoot``, which are the real
  Merkle-Patricia tries of those transactions and receipts (:mod:`node.eth_blocks`).
  The ledger header's own ``txs_hash`` (a tagged hash over the authority transactions)
  is not shown;
- every block is final (BFT), so ``latest``, ``safe``, ``finalized`` and ``pending`` all
  mean the tip.

Receipts and logs are not stored: they come from re-executing the block on its parent's
state (deterministic, and cached), except for ``eth_getLogs`` over blocks without
transactions, whose only log (the checkpoint's) is built from the header. Which block
holds a transaction, and which blocks hold transactions at all, the store's transaction
index says (:mod:`ledger.tx_index`, written as blocks commit), so no query builds it.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from eth.constants import BLANK_ROOT_HASH
from eth.exceptions import VMError
from eth_utils.exceptions import ValidationError

from contracts import REGISTRY_ADDRESS, ContractRevert, registry
from contracts.engine import (
    SYSTEM_CALL_GAS,
    CheckpointInput,
    EvmExecutor,
    EvmLog,
    TxOutcome,
    checkpoint_log,
    decode_transaction,
)
from ledger.block import EMPTY_TXS_HASH, Block, BlockHeader
from ledger.crypto import address_of
from ledger.hashing import ZERO_HASH, keccak256
from ledger.tx_index import system_call_hash
from node.eth_blocks import PRESENTED_GAS_LIMIT, PresentedBlock, bloom_bytes, genesis_call, tx_encoding, tx_type
from node.eth_common import FINAL_TAGS, EthRpcError, data_hex, parse_quantity, qty
from node.eth_filters import LogFilters, LogQuery
from node.jsonrpc import InvalidParams, Method, hex_param

CLIENT_VERSION = "ballot-ledger/0.1.0/py-evm-0.12.1b1"
MAX_FEE_HISTORY = 32  # blocks one eth_feeHistory reports (each one is executed, if not cached)
MAX_SHA3_BYTES = 1 << 20
CHECKPOINT_TOPIC = registry().events["Checkpoint"].topic
MAX_PROOF_KEYS = 256  # storage slots one eth_getProof proves (a result's 255 counts and its length)
MAX_LOG_BLOCKS = 10_000
EMPTY_UNCLES_HASH = bytes.fromhex("1dcc4de8dec75d7aab85b567b6ccd41ad312451b948a7413f0a142fd40d49347")
T = TypeVar("T")


class BlockSource(Protocol):
    """What the Ethereum RPC needs from the node's block store (the node's is
    ``node.rpc_table.HeaderSource``)."""

    @property
    def height(self) -> int:
        """The height of the last committed block (0 before the first)."""
        ...

    def header(self, height: int) -> BlockHeader:
        """The header of committed block ``height`` (1 to ``height``)."""
        ...

    def block(self, height: int) -> Block:
        """Committed block ``height`` (1 to ``height``)."""
        ...

    def height_of(self, block_hash: bytes) -> int | None:
        """The height of the committed block with this header hash, if any."""
        ...

    def transaction_location(self, tx_hash: bytes) -> tuple[int, int] | None:
        """(height, position) of the transaction with this hash among those its committed
        block presents (:func:`ledger.tx_index.presented_hashes`), if any."""
        ...

    def heights_with_transactions(self, lo: int, hi: int, limit: int) -> list[int]:
        """The heights from ``lo >= 1`` to ``hi`` of committed blocks that hold authority
        transactions, in order, at most ``limit`` of them."""
        ...


class ExecutionError(EthRpcError):
    """The EVM refused the message itself (funds, value, gas), as opposed to a revert."""

    code = "execution_error"


def _executed(run: Callable[[], T]) -> T:
    """``run()``, with the EVM's refusals of a caller's message as an execution error
    (-32000 with py-evm's reason) instead of an internal error."""
    try:
        return run()
    except (VMError, ValidationError) as exc:
        raise ExecutionError(f"execution error: {exc}") from None


@dataclass(frozen=True)
class _BlockInfo:
    height: int
    hash: bytes
    parent_hash: bytes
    time_ms: int
    state_root: bytes
    txs_hash: bytes
    miner: bytes
    log_size: int
    log_root: bytes


_hex = data_hex
_q = qty


class EthMethods:
    def __init__(
        self, chain: BlockSource, executor: EvmExecutor, *, cache_blocks: int = 256,
        max_log_blocks: int = MAX_LOG_BLOCKS, peer_count: Callable[[], Awaitable[int]] | None = None,
    ) -> None:
        self.chain = chain
        self._peer_count = peer_count
        self.max_log_blocks = max_log_blocks
        self.executor = executor
        self.genesis = executor.genesis
        self.chain_id = executor.chain_id
        self._cache_size = cache_blocks
        self._blocks: OrderedDict[int, PresentedBlock] = OrderedDict()
        self._genesis_call = system_call_hash(self.genesis.chain_id, 0)  # no block to index
        self.filters = LogFilters(self, max_log_blocks=max_log_blocks)

    def table(self) -> dict[str, Method]:
        return self.filters.table() | {
            "eth_chainId": self.chain_id_,
            "net_version": self.net_version,
            "net_listening": self.net_listening,
            "web3_clientVersion": self.client_version,
            "eth_syncing": self.syncing,
            "eth_blockNumber": self.block_number,
            "eth_getBlockByNumber": self.get_block_by_number,
            "eth_getBlockByHash": self.get_block_by_hash,
            "eth_getBlockTransactionCountByNumber": self.get_block_transaction_count_by_number,
            "eth_getTransactionByHash": self.get_transaction_by_hash,
            "eth_getTransactionByBlockNumberAndIndex": self.get_transaction_by_block_number_and_index,
            "eth_getTransactionReceipt": self.get_transaction_receipt,
            "eth_getBlockReceipts": self.get_block_receipts,
            "eth_call": self.call,
            "eth_estimateGas": self.estimate_gas,
            "eth_getCode": self.get_code,
            "eth_getBalance": self.get_balance,
            "eth_getTransactionCount": self.get_transaction_count,
            "eth_getStorageAt": self.get_storage_at,
            "eth_getProof": self.get_proof,
            "eth_gasPrice": self.gas_price,
            "eth_maxPriorityFeePerGas": self.gas_price,
            "eth_accounts": self.accounts,
            "net_peerCount": self.peer_count,
            "web3_sha3": self.sha3,
            "eth_feeHistory": self.fee_history,
            "eth_mining": self.false,
            "eth_hashrate": self.zero,
            "eth_blobBaseFee": self.blob_base_fee,
            "eth_getBlockTransactionCountByHash": self.get_block_transaction_count_by_hash,
            "eth_getTransactionByBlockHashAndIndex": self.get_transaction_by_block_hash_and_index,
            "eth_getRawTransactionByHash": self.get_raw_transaction_by_hash,
            "eth_getUncleCountByBlockNumber": self.uncle_count,
            "eth_getUncleCountByBlockHash": self.uncle_count,
            "eth_getUncleByBlockNumberAndIndex": self.no_uncle,
            "eth_getUncleByBlockHashAndIndex": self.no_uncle,
        }

    # --- chain ------------------------------------------------------------------------
    async def chain_id_(self) -> str:
        return _q(self.chain_id)

    async def net_version(self) -> str:
        return str(self.chain_id)

    async def net_listening(self) -> bool:
        return True

    async def client_version(self) -> str:
        return CLIENT_VERSION

    async def syncing(self) -> bool:
        """False: the RPC serves only committed blocks, each final, and the node does not
        learn its peers' heights (block sync asks for what follows its tip until a peer
        has nothing more), so it has no highest block to report while catching up."""
        return False

    async def peer_count(self) -> str:
        return _q(await self._peer_count() if self._peer_count is not None else 0)

    async def sha3(self, data: str) -> str:
        return _hex(keccak256(hex_param(data, "data", max_size=MAX_SHA3_BYTES)))

    async def false(self) -> bool:
        return False

    async def zero(self) -> str:
        return "0x0"

    async def blob_base_fee(self) -> str:
        return "0x1"  # EIP-4844's minimum: no blob gas is ever used here

    async def fee_history(self, block_count: Any, newest_block: Any, reward_percentiles: Any = None) -> dict[str, Any]:
        """Fees are all zero; ``gasUsedRatio`` is each block's presented gas used over its
        presented limit. At most MAX_FEE_HISTORY blocks (fewer than asked is allowed)."""
        count = min(_quantity(block_count, "blockCount"), MAX_FEE_HISTORY)
        newest = self._height(newest_block)
        percentiles: list[float] = []
        if reward_percentiles is not None:
            if (not isinstance(reward_percentiles, list) or len(reward_percentiles) > 100
                    or not all(isinstance(p, (int, float)) and not isinstance(p, bool) and 0 <= p <= 100
                               for p in reward_percentiles)
                    or any(a > b for a, b in itertools.pairwise(reward_percentiles))):
                raise InvalidParams("rewardPercentiles must be at most 100 increasing numbers from 0 to 100")
            percentiles = [float(p) for p in reward_percentiles]
        oldest = max(0, newest - count + 1)
        heights = range(oldest, newest + 1) if count else range(0)
        answer: dict[str, Any] = {
            "oldestBlock": _q(oldest if count else newest),
            "baseFeePerGas": ["0x0"] * (len(heights) + 1),
            "gasUsedRatio": [self._presented(h).gas_used / PRESENTED_GAS_LIMIT for h in heights],
            "baseFeePerBlobGas": ["0x1"] * (len(heights) + 1),
            "blobGasUsedRatio": [0.0] * len(heights),
        }
        if reward_percentiles is not None:
            answer["reward"] = [["0x0"] * len(percentiles) for _ in heights]
        return answer

    async def block_number(self) -> str:
        return _q(self.chain.height)

    async def gas_price(self) -> str:
        return "0x0"

    async def accounts(self) -> list[str]:
        return []

    # --- blocks -----------------------------------------------------------------------
    def _height(self, tag: Any, what: str = "block") -> int:
        """A block number or tag (or an EIP-1898 object) as a committed height."""
        head = self.chain.height
        if isinstance(tag, dict):
            if "blockHash" in tag:
                h = self.chain_height_of(hex_param(tag["blockHash"], "blockHash", size=32))
                if h is None:
                    raise EthRpcError(f"block {tag['blockHash']} not found")
                return h
            tag = tag.get("blockNumber", "latest")
        if tag is None or tag in FINAL_TAGS:
            return head
        if tag == "earliest":
            return 0
        n = _quantity(tag, what)
        if n > head:
            raise EthRpcError(f"block {n} not found: the chain is at {head}")
        return n

    def chain_height_of(self, block_hash: bytes) -> int | None:
        if block_hash == self.genesis.hash():
            return 0
        return self.chain.height_of(block_hash)

    def _info(self, height: int) -> _BlockInfo:
        if height == 0:
            g = self.genesis
            return _BlockInfo(0, g.hash(), ZERO_HASH, g.genesis_time_ms, self.executor.genesis_state_root(),
                              EMPTY_TXS_HASH, b"\x00" * 20, 0, ZERO_HASH)
        h = self.chain.header(height)
        return _BlockInfo(height, h.hash(), h.parent_hash, h.time_ms, h.state_root, h.txs_hash,
                          address_of(h.proposer), h.log_size, h.log_root)

    def state_root_at(self, height: int) -> bytes:
        return self._info(height).state_root

    def _presented(self, height: int) -> PresentedBlock:
        """The block as Ethereum presents it (:mod:`node.eth_blocks`), from its execution
        on its parent state (cached)."""
        cached = self._blocks.get(height)
        if cached is not None:
            self._blocks.move_to_end(height)
            return cached
        if height == 0:
            presented = PresentedBlock.of((genesis_call(self.genesis.chain_id, self.executor.genesis_logs()),))
        else:
            block = self.chain.block(height)
            parent_root = self.state_root_at(height - 1)
            result = self.executor.execute_block(
                parent_root, height, block.header.time_ms, block.transactions,
                CheckpointInput.of_ledger_block(self.executor.elections(parent_root), block),
            )
            if result.state_root != block.header.state_root:
                raise EthRpcError(f"re-executing block {height} gives a state root other than its header's")
            presented = PresentedBlock.of_execution(result)
        self._blocks[height] = presented
        if len(self._blocks) > self._cache_size:
            self._blocks.popitem(last=False)
        return presented

    def _logs_of(self, info: _BlockInfo) -> list[tuple[int, bytes, EvmLog]]:
        """(transaction index, transaction hash, log) for every log of a block, in order.

        A block without transactions has one log, the checkpoint's, built from its header
        without executing it (what keeps ``eth_getLogs`` over long ranges cheap)."""
        if info.height > 0 and info.txs_hash == EMPTY_TXS_HASH:
            return [(0, system_call_hash(self.genesis.chain_id, info.height),
                     checkpoint_log(info.height, info.log_size, info.log_root))]
        return [(i, o.tx_hash, log) for i, o in enumerate(self._presented(info.height).outcomes) for log in o.logs]

    def _block_obj(self, info: _BlockInfo, full: bool) -> dict[str, Any]:
        presented = self._presented(info.height)
        txs = [self._tx_obj(info, i, o) if full else _hex(o.tx_hash) for i, o in enumerate(presented.outcomes)]
        size = len(self.genesis.encode()) if info.height == 0 else len(self.chain.block(info.height).encode())
        return {
            "number": _q(info.height),
            "hash": _hex(info.hash),
            "parentHash": _hex(info.parent_hash),
            "nonce": "0x0000000000000000",
            "sha3Uncles": _hex(EMPTY_UNCLES_HASH),
            "logsBloom": _hex(bloom_bytes(presented.bloom)),
            "transactionsRoot": _hex(presented.transactions_root),
            "stateRoot": _hex(info.state_root),
            "receiptsRoot": _hex(presented.receipts_root),
            "miner": _hex(info.miner),
            "difficulty": "0x0",
            "totalDifficulty": "0x0",
            "extraData": "0x",
            "size": _q(size),
            "gasLimit": _q(PRESENTED_GAS_LIMIT),
            "gasUsed": _q(presented.gas_used),
            "timestamp": _q(info.time_ms // 1000),
            "transactions": txs,
            "uncles": [],
            "baseFeePerGas": "0x0",
            "mixHash": _hex(ZERO_HASH),
            "withdrawals": [],
            "withdrawalsRoot": _hex(BLANK_ROOT_HASH),
            "blobGasUsed": "0x0",
            "excessBlobGas": "0x0",
            "parentBeaconBlockRoot": _hex(ZERO_HASH),
            "timestampMs": _q(info.time_ms),
            "logSize": _q(info.log_size),
            "logRoot": _hex(info.log_root),
        }

    async def get_block_by_number(self, block: Any, full_transactions: bool = False) -> dict[str, Any] | None:
        try:
            height = self._height(block)
        except EthRpcError:
            return None
        return self._block_obj(self._info(height), bool(full_transactions))

    async def get_block_by_hash(self, block_hash: str, full_transactions: bool = False) -> dict[str, Any] | None:
        height = self.chain_height_of(hex_param(block_hash, "block hash", size=32))
        if height is None:
            return None
        return self._block_obj(self._info(height), bool(full_transactions))

    async def get_block_transaction_count_by_number(self, block: Any) -> str | None:
        try:
            info = self._info(self._height(block))
        except EthRpcError:
            return None
        if info.height == 0:
            return "0x1"  # the genesis call
        return _q(len(self.chain.block(info.height).transactions) + 1)  # + the checkpoint call

    async def get_block_transaction_count_by_hash(self, block_hash: str) -> str | None:
        height = self.chain_height_of(hex_param(block_hash, "block hash", size=32))
        return None if height is None else await self.get_block_transaction_count_by_number(_q(height))

    async def uncle_count(self, block: Any) -> str | None:
        if isinstance(block, str) and len(block) == 66:  # a block hash
            return None if self.chain_height_of(hex_param(block, "block hash", size=32)) is None else "0x0"
        try:
            self._height(block)
        except EthRpcError:
            return None
        return "0x0"

    async def no_uncle(self, block: Any, index: Any) -> None:
        return None

    # --- as a node.eth_filters.LogSource -----------------------------------------------
    @property
    def head(self) -> int:
        return self.chain.height

    def height_of_hash(self, block_hash: bytes) -> int | None:
        return self.chain_height_of(block_hash)

    def block_hash_at(self, height: int) -> bytes:
        return self._info(height).hash

    def candidate_heights(self, q: LogQuery, lo: int, hi: int) -> Sequence[int]:
        """Every height from ``lo`` to ``hi`` if ``q`` may match the checkpoint log every
        block has; else the blocks with transactions (and genesis), from the store's
        transaction index, plus any block whose checkpoint ``q`` names by height. Reads
        at most one more block with transactions than a query may read, enough to tell
        a range that has too many."""
        checkpoint_heights = self._checkpoint_heights(q, lo, hi)
        if isinstance(checkpoint_heights, range):
            return checkpoint_heights
        if q.topics and q.topics[0] == frozenset({CHECKPOINT_TOPIC}):
            return checkpoint_heights  # only checkpoint logs match, each at its own height
        with_txs = [0] if lo == 0 else []  # the genesis call's logs
        with_txs += self.chain.heights_with_transactions(max(lo, 1), hi, self.max_log_blocks + 1)
        return sorted(set(with_txs) | set(checkpoint_heights)) if checkpoint_heights else with_txs

    @staticmethod
    def _checkpoint_heights(q: LogQuery, lo: int, hi: int) -> range | list[int]:
        """The heights from ``lo`` to ``hi`` whose checkpoint log (registry address,
        topics: the Checkpoint event, the height) ``q`` may match."""
        if q.addresses is not None and REGISTRY_ADDRESS not in q.addresses:
            return []
        if len(q.topics) > 2 or (q.topics and q.topics[0] is not None and CHECKPOINT_TOPIC not in q.topics[0]):
            return []
        if len(q.topics) == 2 and q.topics[1] is not None:
            return sorted(h for h in (int.from_bytes(t, "big") for t in q.topics[1]) if lo <= h <= hi)
        return range(lo, hi + 1)

    def logs_at(self, height: int, keep: Callable[[EvmLog], bool]) -> list[dict[str, Any]]:
        info = self._info(height)
        return [self._log_obj(info, tx_index, tx_hash, log_index, log)
                for log_index, (tx_index, tx_hash, log) in enumerate(self._logs_of(info)) if keep(log)]

    # --- transactions and receipts ------------------------------------------------------
    def _locate(self, tx_hash: str) -> tuple[_BlockInfo, int, TxOutcome] | None:
        code = hex_param(tx_hash, "transaction hash", size=32)
        where = (0, 0) if code == self._genesis_call else self.chain.transaction_location(code)
        if where is None:
            return None
        height, index = where
        return self._info(height), index, self._presented(height).outcomes[index]

    def _tx_obj(self, info: _BlockInfo, index: int, o: TxOutcome) -> dict[str, Any]:
        base: dict[str, Any] = {
            "hash": _hex(o.tx_hash),
            "blockHash": _hex(info.hash),
            "blockNumber": _q(info.height),
            "blockTimestamp": _q(info.time_ms // 1000),
            "transactionIndex": _q(index),
            "from": _hex(o.sender),
            "to": None if o.to is None else _hex(o.to),
            "nonce": _q(o.nonce),
            "gas": _q(o.gas_limit),
            "gasPrice": "0x0",
            "value": "0x0",
        }
        if o.system:
            return base | {"input": _hex(o.raw), "type": "0x0", "v": "0x0", "r": "0x0", "s": "0x0",
                           "chainId": _q(self.chain_id)}
        tx = decode_transaction(o.raw, self.chain_id)
        base |= {
            "input": _hex(tx.data),
            "value": _q(tx.value),
            "type": _q(tx.type_id or 0),
            "chainId": _q(self.chain_id),
            "v": _q(int(getattr(tx, "v", 0)) if tx.type_id is None else tx.y_parity),
            "r": _q(tx.r),
            "s": _q(tx.s),
        }
        if tx.type_id is None:
            base["gasPrice"] = _q(tx.gas_price)
        else:
            base["yParity"] = _q(tx.y_parity)
            base["accessList"] = [
                {"address": _hex(addr), "storageKeys": [_hex(k.to_bytes(32, "big")) for k in keys]}
                for addr, keys in tx.access_list
            ]
            if tx.type_id == 1:
                base["gasPrice"] = _q(tx.gas_price)
            else:
                base["maxFeePerGas"] = _q(tx.max_fee_per_gas)
                base["maxPriorityFeePerGas"] = _q(tx.max_priority_fee_per_gas)
        return base

    def _log_obj(self, info: _BlockInfo, tx_index: int, tx_hash: bytes, log_index: int, log: EvmLog) -> dict[str, Any]:
        return {
            "address": _hex(log.address),
            "topics": [_hex(t) for t in log.topics],
            "data": _hex(log.data),
            "blockNumber": _q(info.height),
            "blockHash": _hex(info.hash),
            "blockTimestamp": _q(info.time_ms // 1000),
            "transactionHash": _hex(tx_hash),
            "transactionIndex": _q(tx_index),
            "logIndex": _q(log_index),
            "removed": False,
        }

    def _receipt_obj(self, info: _BlockInfo, index: int, block: PresentedBlock) -> dict[str, Any]:
        o = block.outcomes[index]
        first_log = block.first_log_index(index)
        return {
            "transactionHash": _hex(o.tx_hash),
            "transactionIndex": _q(index),
            "blockHash": _hex(info.hash),
            "blockNumber": _q(info.height),
            "from": _hex(o.sender),
            "to": None if o.to is None else _hex(o.to),
            "cumulativeGasUsed": _q(block.cumulative_gas[index]),
            "gasUsed": _q(o.gas_used),
            "effectiveGasPrice": "0x0",
            "contractAddress": None if o.contract_address is None else _hex(o.contract_address),
            "logs": [self._log_obj(info, index, o.tx_hash, first_log + j, log) for j, log in enumerate(o.logs)],
            "logsBloom": _hex(bloom_bytes(block.blooms[index])),
            "status": "0x1" if o.success else "0x0",
            "type": _q(tx_type(o)),
        }

    async def get_transaction_by_hash(self, tx_hash: str) -> dict[str, Any] | None:
        found = self._locate(tx_hash)
        if found is None:
            return None
        info, index, outcome = found
        return self._tx_obj(info, index, outcome)

    async def get_transaction_by_block_number_and_index(self, block: Any, index: str) -> dict[str, Any] | None:
        try:
            info = self._info(self._height(block))
        except EthRpcError:
            return None
        i = _quantity(index, "index")
        outcomes = self._presented(info.height).outcomes
        return self._tx_obj(info, i, outcomes[i]) if i < len(outcomes) else None

    async def get_transaction_by_block_hash_and_index(self, block_hash: str, index: str) -> dict[str, Any] | None:
        height = self.chain_height_of(hex_param(block_hash, "block hash", size=32))
        return None if height is None else await self.get_transaction_by_block_number_and_index(_q(height), index)

    async def get_raw_transaction_by_hash(self, tx_hash: str) -> str | None:
        """A signed transaction's bytes; a pseudo transaction's legacy encoding."""
        found = self._locate(tx_hash)
        return None if found is None else _hex(tx_encoding(found[2]))

    async def get_transaction_receipt(self, tx_hash: str) -> dict[str, Any] | None:
        found = self._locate(tx_hash)
        if found is None:
            return None
        info, index, _ = found
        return self._receipt_obj(info, index, self._presented(info.height))

    async def get_block_receipts(self, block: Any) -> list[dict[str, Any]] | None:
        try:
            info = self._info(self._height(block))
        except EthRpcError:
            return None
        block = self._presented(info.height)
        return [self._receipt_obj(info, i, block) for i in range(len(block.outcomes))]

    # --- state ------------------------------------------------------------------------
    def _call_args(self, call: Any) -> tuple[bytes, bytes, bytes, int]:
        if not isinstance(call, dict):
            raise InvalidParams("call must be an object")
        if call.get("to") is None:
            raise InvalidParams("call needs a 'to' address")
        to = hex_param(call["to"], "to", size=20)
        sender = hex_param(call["from"], "from", size=20) if call.get("from") else b"\x00" * 20
        data_hex = call.get("input", call.get("data")) or "0x"
        data = hex_param(data_hex, "data", max_size=1 << 20)
        value = _quantity(call["value"], "value") if call.get("value") else 0
        return to, sender, data, value

    async def call(self, call: Any, block: Any = "latest", state_overrides: Any = None) -> str:
        if state_overrides:
            raise InvalidParams("state overrides are not supported")
        to, sender, data, value = self._call_args(call)
        info = self._info(self._height(block))
        gas = _quantity(call["gas"], "gas") if call.get("gas") else SYSTEM_CALL_GAS
        try:
            out = _executed(lambda: self.executor.call(info.state_root, to, data, sender=sender, value=value,
                                                       gas=gas, height=info.height, time_ms=info.time_ms))
        except ContractRevert as exc:  # web3.py shows "execution reverted: <code>"
            raise type(exc)(exc.code) from None
        return _hex(out)

    async def estimate_gas(self, call: Any, block: Any = "latest") -> str:
        to, sender, data, _ = self._call_args(call)
        info = self._info(self._height(block))
        try:
            return _q(_executed(lambda: self.executor.estimate_gas(info.state_root, to, data, sender=sender)))
        except ContractRevert as exc:
            raise type(exc)(exc.code) from None

    async def get_code(self, address: str, block: Any = "latest") -> str:
        addr = hex_param(address, "address", size=20)
        return _hex(self.executor.get_code(self.state_root_at(self._height(block)), addr))

    async def get_balance(self, address: str, block: Any = "latest") -> str:
        addr = hex_param(address, "address", size=20)
        return _q(self.executor.get_balance(self.state_root_at(self._height(block)), addr))

    async def get_transaction_count(self, address: str, block: Any = "latest") -> str:
        addr = hex_param(address, "address", size=20)
        return _q(self.executor.get_nonce(self.state_root_at(self._height(block)), addr))

    async def get_storage_at(self, address: str, slot: str, block: Any = "latest") -> str:
        addr = hex_param(address, "address", size=20)
        value = self.executor.get_storage(self.state_root_at(self._height(block)), addr, _quantity(slot, "slot"))
        return _hex(value.to_bytes(32, "big"))

    async def get_proof(self, address: str, storage_keys: Any, block: Any = "latest") -> dict[str, Any]:
        """EIP-1186: the account and the given storage slots with their Merkle-Patricia
        proofs against the state root of ``block``'s header, which a quorum signed."""
        addr = hex_param(address, "address", size=20)
        if not isinstance(storage_keys, list) or len(storage_keys) > MAX_PROOF_KEYS:
            raise InvalidParams(f"storageKeys must be a list of at most {MAX_PROOF_KEYS} slots")
        slots = [_quantity(k, "storage key") for k in storage_keys]
        proof = self.executor.account_proof(self.state_root_at(self._height(block)), addr, slots)
        return {
            "address": _hex(addr),
            "accountProof": [_hex(n) for n in proof.proof],
            "balance": _q(proof.balance),
            "codeHash": _hex(proof.code_hash),
            "nonce": _q(proof.nonce),
            "storageHash": _hex(proof.storage_root),
            "storageProof": [
                {"key": _hex(p.slot.to_bytes(32, "big")), "value": _q(p.value), "proof": [_hex(n) for n in p.proof]}
                for p in proof.slots
            ],
        }


_quantity = parse_quantity
