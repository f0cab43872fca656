"""web3.py 8, unmodified, over real HTTP against the node's Ethereum RPC methods.

The chain is an in-process fake of node.eth_rpc.BlockSource holding real ledger blocks
(real ballots, real headers whose state root is the EVM's); the server is the node's own
RpcServer; the client is Web3(HTTPProvider(url)).
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
import rlp
from web3 import HTTPProvider, Web3
from web3.exceptions import ContractLogicError

from contracts import REGISTRY_ADDRESS, SYSTEM_ADDRESS, Phase, election_key, load_artifact, registry
from ledger import merkle
from ledger.ballot import BallotEnvelope
from ledger.block import Block, BlockHeader, last_commit_hash, transactions_hash
from ledger.crypto import address_of
from ledger.genesis import ElectionDef
from ledger.hashing import keccak256
from ledger.tx_index import presented_hashes
from node.eth_rpc import EthMethods
from node.evm import CheckpointInput, EvmExecutor, sign_transaction, system_call_hash
from node.jsonrpc import handle_body
from node.rpc_server import RpcServer

from .helpers import kit, new_election

EID = "board-2026"


class FakeChain:
    """A BlockSource: real ledger blocks executed on the EVM, kept in memory."""

    def __init__(self, executor: EvmExecutor) -> None:
        self.executor = executor
        self.genesis = executor.genesis
        self.blocks: list[Block] = []
        self.by_hash: dict[bytes, int] = {}
        self.frontier = merkle.MerkleFrontier()
        self.state_root = executor.genesis_state_root()
        self.parent = self.genesis.hash()
        self.time_ms = self.genesis.genesis_time_ms

    @property
    def height(self) -> int:
        return len(self.blocks)

    def header(self, height: int) -> BlockHeader:
        return self.blocks[height - 1].header

    def block(self, height: int) -> Block:
        return self.blocks[height - 1]

    def height_of(self, block_hash: bytes) -> int | None:
        return self.by_hash.get(block_hash)

    def transaction_location(self, tx_hash: bytes) -> tuple[int, int] | None:
        """By a scan of every block (the store keeps an index; tests/test_tx_index.py
        holds it to this scan)."""
        found = None
        for height, block in enumerate(self.blocks, start=1):
            hashes = presented_hashes(self.genesis.chain_id, height, block.transactions)
            if tx_hash in hashes:
                found = (height, len(hashes) - 1 - hashes[::-1].index(tx_hash))
        return found

    def heights_with_transactions(self, lo: int, hi: int, limit: int) -> list[int]:
        return [h for h in range(lo, min(hi, self.height) + 1) if self.blocks[h - 1].transactions][:limit]

    def add(self, txs: Sequence[bytes] = (), ballots: Sequence[bytes] = ()) -> Block:
        for raw in ballots:
            self.frontier.append(merkle.leaf_hash(keccak256(raw)))
        height, self.time_ms = self.height + 1, self.time_ms + 1500
        cp = CheckpointInput.of_block(self.executor.elections(self.state_root),
            self.frontier.size, self.frontier.root(),
                                      [BallotEnvelope.decode(b).election_id for b in ballots])
        result = self.executor.execute_block(self.state_root, height, self.time_ms, list(txs), cp)
        header = BlockHeader(
            chain_id=self.genesis.chain_id, height=height, time_ms=self.time_ms, parent_hash=self.parent,
            proposer=self.genesis.validators.validators[0].public_key,
            validator_set_hash=self.genesis.validators.hash(), log_size=self.frontier.size,
            log_root=self.frontier.root(), state_root=result.state_root, txs_hash=transactions_hash(list(txs)),
            last_commit_hash=last_commit_hash(None),
        )
        block = Block(header, tuple(ballots), tuple(txs), None)
        self.blocks.append(block)
        self.by_hash[block.hash()] = height
        self.state_root, self.parent = result.state_root, block.hash()
        return block


class Served:
    def __init__(self) -> None:
        self.kit = kit()
        self.executor = EvmExecutor(self.kit.genesis)
        self.chain = FakeChain(self.executor)
        self.methods = EthMethods(self.chain, self.executor)
        self.nonce = 0

    def tx(self, data: bytes) -> bytes:
        raw = sign_transaction(self.kit.authority_key, chain_id=self.executor.chain_id, nonce=self.nonce,
                               to=REGISTRY_ADDRESS, data=data)
        self.nonce += 1
        return raw


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[Served, Web3]]:
    s = Served()
    reg = registry()
    e = new_election(s.kit)
    ballots = [s.kit.ballot(i, i % 3).encode() for i in range(5)]
    s.chain.add([s.tx(reg.define_election(e))], ballots[:2])             # 1
    s.chain.add(ballots=ballots[2:])                                     # 2
    s.chain.add([s.tx(reg.open_election(e.election_id)), s.tx(reg.open_election(EID))])  # 3 (2nd reverts)
    s.chain.add()                                                        # 4
    s.chain.add([s.tx(reg.close_election(EID))])                         # 5
    s.chain.add([s.tx(reg.publish_result(EID, [2, 2, 1]))])              # 6

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    port = _free_port()
    server = RpcServer(s.methods.table(), "127.0.0.1", port)
    asyncio.run_coroutine_threadsafe(server.start(), loop).result(10)
    w3 = Web3(HTTPProvider(f"http://127.0.0.1:{port}", request_kwargs={"timeout": 30}))
    try:
        yield s, w3
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)


def _contract(w3: Web3) -> Any:
    address = Web3.to_checksum_address(REGISTRY_ADDRESS)
    return w3.eth.contract(address=address, abi=load_artifact("ElectionRegistry").abi)


def test_identity(served: tuple[Served, Web3]) -> None:
    s, w3 = served
    assert w3.is_connected()
    assert w3.eth.chain_id == s.executor.chain_id
    assert w3.net.version == str(s.executor.chain_id)
    assert w3.client_version.startswith("ballot-ledger/")
    assert w3.eth.block_number == 6


def test_blocks_by_number_and_hash(served: tuple[Served, Web3]) -> None:
    s, w3 = served
    genesis = w3.eth.get_block(0)
    assert bytes(genesis["hash"]) == s.kit.genesis.hash()
    assert bytes(genesis["stateRoot"]) == s.executor.genesis_state_root()
    for n in range(1, 7):
        b = w3.eth.get_block(n)
        ledger = s.chain.block(n)
        assert bytes(b["hash"]) == ledger.hash() and b["number"] == n
        assert bytes(b["parentHash"]) == ledger.header.parent_hash
        assert bytes(b["stateRoot"]) == ledger.header.state_root
        assert b["timestamp"] == ledger.header.time_ms // 1000
        assert b["miner"] == Web3.to_checksum_address(address_of(ledger.header.proposer))
        assert len(b["transactions"]) == len(ledger.transactions) + 1  # + the checkpoint call
        assert bytes(b["transactions"][-1]) == system_call_hash(s.kit.genesis.chain_id, n)
        assert w3.eth.get_block(b["hash"])["number"] == n
    latest = w3.eth.get_block("latest", full_transactions=True)
    assert latest["number"] == 6 and latest["transactions"][0]["from"] == Web3.to_checksum_address(s.executor.authority)
    assert w3.eth.get_block("finalized")["number"] == 6
    assert w3.eth.get_block(2)["logSize"] == "0x5"  # extra fields pass through unformatted


def test_transactions_and_receipts(served: tuple[Served, Web3]) -> None:
    s, w3 = served
    raw = s.chain.block(5).transactions[0]
    tx = w3.eth.get_transaction(keccak256(raw))
    assert tx["blockNumber"] == 5 and tx["transactionIndex"] == 0 and tx["nonce"] == 3
    assert bytes(tx["input"]) == registry().close_election(EID)
    receipt = w3.eth.get_transaction_receipt(keccak256(raw))
    assert receipt["status"] == 1 and receipt["gasUsed"] > 21_000
    events = _contract(w3).events.PhaseChanged().process_receipt(receipt)
    assert [(e.args.old_phase, e.args.new_phase) for e in events] == [(Phase.OPEN, Phase.CLOSED)]
    reverted = w3.eth.get_transaction_receipt(keccak256(s.chain.block(3).transactions[1]))
    assert reverted["status"] == 0 and reverted["logs"] == []
    system = w3.eth.get_transaction_receipt(system_call_hash(s.kit.genesis.chain_id, 4))
    assert system["from"] == Web3.to_checksum_address(SYSTEM_ADDRESS) and len(system["logs"]) == 1
    assert w3.eth.get_transaction(system_call_hash(s.kit.genesis.chain_id, 4))["blockNumber"] == 4


def test_contract_views(served: tuple[Served, Web3]) -> None:
    s, w3 = served
    c = _contract(w3)
    key = election_key(EID)
    assert c.functions.phase(key).call() == Phase.TALLIED
    assert c.functions.phase(key).call(block_identifier=4) == Phase.OPEN
    assert c.functions.is_open(election_key("budget-2027"), s.kit.genesis.genesis_time_ms + 1).call()
    assert c.functions.result(key).call() == [2, 2, 1]
    record = c.functions.election(key).call()
    assert record[8] == Phase.TALLIED and record[9] == 5  # phase, ballots checkpointed
    assert c.functions.last_height().call() == 6
    assert c.functions.log_root().call() == s.chain.block(6).header.log_root
    assert c.functions.AUTHORITY().call() == Web3.to_checksum_address(s.executor.authority)
    with pytest.raises(ContractLogicError, match="not_authority"):
        c.functions.close_election(key).call()
    with pytest.raises(ContractLogicError, match="wrong_phase"):
        c.functions.close_election(key).call({"from": Web3.to_checksum_address(s.executor.authority)})
    code = bytes(w3.eth.get_code(Web3.to_checksum_address(REGISTRY_ADDRESS)))
    runtime = load_artifact("ElectionRegistry").bytecode_runtime
    assert code == runtime + s.executor.authority.rjust(32, b"\x00")  # the immutable follows the runtime
    assert w3.eth.get_balance(Web3.to_checksum_address(s.executor.authority)) == 0
    assert w3.eth.get_transaction_count(Web3.to_checksum_address(s.executor.authority)) == 5


def test_event_filtering(served: tuple[Served, Web3]) -> None:
    s, w3 = served
    c = _contract(w3)
    changes = c.events.PhaseChanged.get_logs(from_block=0)
    assert [(e.blockNumber, e.args.new_phase) for e in changes] == [  # block 0: the genesis election's
        (0, Phase.SETUP), (0, Phase.OPEN), (1, Phase.SETUP), (3, Phase.OPEN), (5, Phase.CLOSED), (6, Phase.TALLIED)]
    only_board = c.events.PhaseChanged.get_logs(from_block=0, argument_filters={"election_id": election_key(EID)})
    assert [e.args.new_phase for e in only_board] == [Phase.SETUP, Phase.OPEN, Phase.CLOSED, Phase.TALLIED]
    # an indexer starting from block 0 rebuilds every election's definition from logs alone
    defined = c.events.ElectionDefined.get_logs(from_block=0)
    assert [ElectionDef.decode(bytes(e.args.definition)) for e in defined] == [
        s.kit.genesis.elections[0], new_election(s.kit)]
    checkpoints = c.events.Checkpoint.get_logs(from_block=1, to_block=6)
    assert [(e.args.height, e.args.log_size) for e in checkpoints] == [(1, 2), (2, 5), (3, 5), (4, 5), (5, 5), (6, 5)]
    assert [e.args.log_root for e in checkpoints] == [s.chain.block(n).header.log_root for n in range(1, 7)]
    # the header-only checkpoint log of a block without transactions is what execution gives
    b4 = s.methods._presented(4).outcomes[-1].logs
    served_logs = w3.eth.get_logs({"fromBlock": 4, "toBlock": 4})
    assert [(log.topics, log.data) for log in b4] == [
        (tuple(bytes(t) for t in e["topics"]), bytes(e["data"])) for e in served_logs]
    result = c.events.ResultPublished.get_logs(from_block=0)
    assert len(result) == 1 and result[0].args.counts == [2, 2, 1]
    logs = w3.eth.get_logs({"fromBlock": 0, "toBlock": "latest", "address": Web3.to_checksum_address(REGISTRY_ADDRESS)})
    assert [log["logIndex"] for log in logs if log["blockNumber"] == 1] == [0, 1, 2]
    flt = c.events.PhaseChanged.create_filter(from_block=0)
    assert len(flt.get_all_entries()) == 6
    assert len(flt.get_new_entries()) == 6
    assert flt.get_new_entries() == []
    assert bytes(w3.eth.get_block(1)["logsBloom"]) != b"\x00" * 256


def test_unknown_things_are_none_or_errors(served: tuple[Served, Web3]) -> None:
    _, w3 = served
    from web3.exceptions import BlockNotFound, TransactionNotFound

    with pytest.raises(BlockNotFound):
        w3.eth.get_block(99)
    with pytest.raises(TransactionNotFound):
        w3.eth.get_transaction(b"\x01" * 32)


def _independent_receipt(receipt: Any) -> bytes:
    """A served receipt re-encoded with py-evm's own receipt classes (not node.eth_blocks)."""
    from eth.rlp.logs import Log
    from eth.rlp.receipts import Receipt
    from eth.vm.forks.cancun.receipts import CancunTypedReceipt

    logs = [Log(bytes.fromhex(log["address"][2:]), [int.from_bytes(bytes(t), "big") for t in log["topics"]],
                bytes(log["data"])) for log in receipt["logs"]]
    legacy = Receipt(b"\x01" if receipt["status"] else b"", receipt["cumulativeGasUsed"], logs)
    assert legacy.bloom == int.from_bytes(bytes(receipt["logsBloom"]), "big")
    return legacy.encode() if receipt["type"] == 0 else CancunTypedReceipt(receipt["type"], legacy).encode()


def _independent_tx(s: Served, height: int, tx: Any) -> bytes:
    from eth.vm.forks.cancun.transactions import CancunLegacyTransaction

    if tx["from"] == Web3.to_checksum_address(SYSTEM_ADDRESS):  # the pseudo transaction, as presented
        assert tx["v"] == 0 and bytes(tx["r"]).strip(b"\0") == bytes(tx["s"]).strip(b"\0") == b""
        assert tx["nonce"] == 0 and tx["value"] == 0
        return bytes(rlp.encode(CancunLegacyTransaction(0, 0, tx["gas"], bytes.fromhex(tx["to"][2:]), 0,
                                                        bytes(tx["input"]), 0, 0, 0)))
    return s.chain.block(height).transactions[tx["transactionIndex"]]


def test_roots_gas_and_blooms_are_ethereums(served: tuple[Served, Web3]) -> None:
    """transactionsRoot and receiptsRoot are the tries of the served transactions and
    receipts (re-encoded by py-evm, rooted by py-evm's trie helper); gas adds up with the
    checkpoint call counted; the block bloom is the union of the receipts' blooms.
    Fails when the checkpoint call's gas is left out of cumulativeGasUsed (checked by hand)."""
    from eth.db.trie import _make_trie_root_and_nodes

    s, w3 = served
    for n in range(0, 7):
        block = w3.eth.get_block(n, full_transactions=True)
        receipts = w3.eth.get_block_receipts(n)
        assert [r["transactionHash"] for r in receipts] == [t["hash"] for t in block["transactions"]]
        tx_root, _ = _make_trie_root_and_nodes(tuple(_independent_tx(s, n, t) for t in block["transactions"]))
        receipt_root, _ = _make_trie_root_and_nodes(tuple(_independent_receipt(r) for r in receipts))
        assert bytes(block["transactionsRoot"]) == tx_root
        assert bytes(block["receiptsRoot"]) == receipt_root
        total = 0
        union = 0
        for r in receipts:
            total += r["gasUsed"]
            assert r["cumulativeGasUsed"] == total
            union |= int.from_bytes(bytes(r["logsBloom"]), "big")
            assert w3.eth.get_transaction_receipt(r["transactionHash"]) == r
        assert block["gasUsed"] == total <= block["gasLimit"]
        assert int.from_bytes(bytes(block["logsBloom"]), "big") == union
        if n > 0:
            assert receipts[-1]["gasUsed"] > 0  # the checkpoint call's gas is real and counted
        assert w3.eth.get_block_transaction_count(n) == len(block["transactions"])
    genesis_logs = w3.eth.get_block_receipts(0)[0]["logs"]
    assert [log["logIndex"] for log in genesis_logs] == list(range(len(genesis_logs))) and genesis_logs
    assert w3.eth.get_logs({"fromBlock": 0, "toBlock": 0}) == genesis_logs


def test_log_ranges_like_the_common_clients(served: tuple[Served, Web3]) -> None:
    """toBlock past the tip is the tip, fromBlock past the tip matches nothing, and a span
    over the limit is refused with -32005 naming the limit and the asked span.
    Fails when the clamp is removed (the old 'block 1000000 not found')."""
    s, w3 = served
    whole = w3.eth.get_logs({"fromBlock": 0, "toBlock": "latest"})
    assert w3.eth.get_logs({"fromBlock": 0, "toBlock": 1_000_000}) == whole
    assert w3.eth.get_logs({"fromBlock": 7, "toBlock": 1_000_000}) == []
    assert w3.eth.get_logs({"fromBlock": 1_000_000}) == []
    wide = s.methods.table()
    narrow = EthMethods(s.chain, s.executor, max_log_blocks=3).table()

    def get_logs(table: Any, params: dict[str, Any]) -> Any:
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_getLogs", "params": [params]}).encode()
        return asyncio.run(handle_body(table, body))

    clamped = get_logs(narrow, {"fromBlock": "0x4", "toBlock": "0xf4240"})["result"]  # 4..6: within the limit
    assert clamped == get_logs(wide, {"fromBlock": "0x4", "toBlock": "0x6"})["result"]
    assert {int(log["blockNumber"], 16) for log in clamped} == {4, 5, 6}
    error = get_logs(narrow, {"fromBlock": "0x2", "toBlock": "0xf4240"})["error"]  # 2..6: five blocks
    assert error["code"] == -32005 and error["data"]["code"] == "log_range_too_large"
    assert "at most 3 blocks" in error["message"] and "2 to 6" in error["message"]
    # a query that cannot match the per-block checkpoint reads only blocks with
    # transactions (here 3, 5 and 6 of 2..6), so it may span more than the limit
    topic = "0x" + registry().events["PhaseChanged"].topic.hex()
    sparse = get_logs(narrow, {"fromBlock": "0x2", "topics": [topic]})["result"]
    assert sparse == get_logs(wide, {"fromBlock": "0x2", "topics": [topic]})["result"] and len(sparse) == 3
    checkpoint = "0x" + registry().events["Checkpoint"].topic.hex()
    at_4 = get_logs(narrow, {"fromBlock": "0x0", "topics": [checkpoint, "0x" + (4).to_bytes(32, "big").hex()]})
    assert [int(log["blockNumber"], 16) for log in at_4["result"]] == [4]
    over = get_logs(narrow, {"fromBlock": "0x2", "topics": [checkpoint]})["error"]
    assert over["data"]["code"] == "log_range_too_large"
    # a filter polled after a long pause catches up by the limit's worth per poll
    fid = asyncio.run(narrow["eth_newFilter"]({"fromBlock": "0x0", "toBlock": "0xf4240"}))
    polls = [asyncio.run(narrow["eth_getFilterChanges"](fid)) for _ in range(4)]
    assert [sorted({int(log["blockNumber"], 16) for log in p}) for p in polls] == [[0, 1, 2], [3, 4, 5], [6], []]
    assert [log for p in polls for log in p] == get_logs(wide, {"fromBlock": "0x0"})["result"]


def test_the_methods_common_clients_also_call(served: tuple[Served, Web3]) -> None:
    s, w3 = served
    assert w3.net.peer_count == 0  # no peers given to this table: the node's own asks its consensus loop
    assert w3.eth.syncing is False
    assert w3.manager.request_blocking("web3_sha3", ["0x68656c6c6f"]) == "0x" + keccak256(b"hello").hex()
    history = w3.eth.fee_history(4, "latest", [10, 50])
    assert history["oldestBlock"] == 3 and history["baseFeePerGas"] == [0] * 5
    assert history["reward"] == [[0, 0]] * 4
    assert history["gasUsedRatio"] == [w3.eth.get_block(n)["gasUsed"] / w3.eth.get_block(n)["gasLimit"]
                                       for n in range(3, 7)]
    assert w3.eth.fee_history(1000, 2)["oldestBlock"] == 0  # fewer blocks than asked: from genesis
    pending = w3.eth.filter("pending")
    assert pending.get_new_entries() == []
    b5 = w3.eth.get_block(5)
    assert w3.eth.get_block_transaction_count(b5["hash"]) == 2
    tx = w3.eth.get_transaction_by_block(b5["hash"], 0)
    assert bytes(w3.eth.get_raw_transaction(tx["hash"])) == s.chain.block(5).transactions[0]
    assert w3.eth.get_transaction_by_block(5, 1)["hash"] == b5["transactions"][1]
    assert w3.manager.request_blocking("eth_getUncleCountByBlockNumber", ["0x5"]) == "0x0"
    assert w3.manager.request_blocking("eth_getUncleByBlockHashAndIndex", [b5["hash"].to_0x_hex(), "0x0"]) is None
    assert w3.eth.get_transaction_by_block(0, 0)["hash"] == w3.eth.get_block(0)["transactions"][0]
