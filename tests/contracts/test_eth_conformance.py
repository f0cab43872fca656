"""Conformance with the Ethereum JSON-RPC specification, as two independent clients see it.

web3.py (Python) and ethers.js v6 (Node.js, installed from the npm registry with the
checked-in lockfile) each read blocks, transactions, receipts and logs, call the
registry's views, send a signed transaction and follow filters, through a recording
proxy in front of the node's own RPC server (real uvicorn, real EVM); ethers also follows
the new head and the event over the server's WebSocket (eth_subscribe), and checks the
election's phase from eth_getProof against the block's stateRoot with a Merkle-Patricia
walk of its own (not the node's Python). Every answer they
got is then compared with the specification's result schema for its method
(``eth_rpc_schema.json``, a checked-in subset of the execution-apis OpenRPC schemas):
0 differences is the figure. Shapes only: what the values mean is tested in
test_eth_rpc.py; the documented differences from Ethereum (README) are in values, not
shapes.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account
from web3 import HTTPProvider, Web3
from web3.exceptions import BlockNotFound, TransactionNotFound

from contracts import REGISTRY_ADDRESS, Phase, election_key, load_artifact, registry
from ledger.hashing import keccak256
from node.jsonrpc import hex_param
from node.rpc_server import RpcServer

from . import schema_subset
from .helpers import new_election
from .test_eth_rpc import EID, Served, _free_port

JS = Path(__file__).with_name("eth_js")
NEW = "budget-2027"


class RecordingProxy:
    """A loopback HTTP proxy that forwards JSON-RPC bodies (single or batch) to the node
    and keeps every (method, params, answer) it passed on."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.calls: list[tuple[str, Any, dict[str, Any]]] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                response = httpx.post(proxy.upstream, content=body, headers={"content-type": "application/json"},
                                      timeout=60)
                proxy._record(json.loads(body), response.json() if response.content else None)
                self.send_response(response.status_code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(response.content)))
                self.end_headers()
                self.wfile.write(response.content)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _record(self, request: Any, answer: Any) -> None:
        requests = request if isinstance(request, list) else [request]
        answers = answer if isinstance(answer, list) else [answer]
        by_id = {a.get("id"): a for a in answers if isinstance(a, dict)}
        with self._lock:
            for r in requests:
                self.calls.append((r["method"], r.get("params"), by_id.get(r.get("id"), {})))

    def take(self) -> list[tuple[str, Any, dict[str, Any]]]:
        with self._lock:
            calls, self.calls = self.calls, []
        return calls

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Node:
    def __init__(self, served: Served, proxy: RecordingProxy, table: dict[str, Any], port: int) -> None:
        self.port = port
        self.served = served
        self.proxy = proxy
        self.table = table


@pytest.fixture(scope="module")
def node() -> Iterator[Node]:
    s = Served()
    reg = registry()
    ballots = [s.kit.ballot(i, i % 3).encode() for i in range(4)]
    s.chain.add([s.tx(reg.define_election(new_election(s.kit, NEW)))], ballots[:2])   # 1
    s.chain.add([s.tx(reg.open_election(NEW))], ballots[2:])                            # 2
    s.chain.add()                                                                        # 3

    async def send_raw_transaction(raw: str) -> str:
        """The node's submission path stands in as: executed into the next block at once."""
        data = hex_param(raw, "transaction", max_size=128 * 1024)
        s.chain.add([data])
        return "0x" + keccak256(data).hex()

    table = dict(s.methods.table()) | {"eth_sendRawTransaction": send_raw_transaction}
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    port = _free_port()
    server = RpcServer(table, "127.0.0.1", port)
    asyncio.run_coroutine_threadsafe(server.start(), loop).result(10)
    proxy = RecordingProxy(f"http://127.0.0.1:{port}")
    try:
        yield Node(s, proxy, table, port)
    finally:
        proxy.close()
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)


def _differences(calls: list[tuple[str, Any, dict[str, Any]]]) -> list[str]:
    spec = schema_subset.load()
    out = []
    for method, params, answer in calls:
        if "error" in answer or "result" not in answer:
            out.append(f"{method}{json.dumps(params)[:120]}: no result: {answer.get('error')}")
            continue
        if method not in spec["methods"]:
            out.append(f"{method}: not in the schema subset")
            continue
        out += [f"{method}: {d}" for d in
                schema_subset.differences(answer["result"], spec["methods"][method], spec["components"])]
    return out


def _registry(w3: Web3) -> Any:
    return w3.eth.contract(address=Web3.to_checksum_address(REGISTRY_ADDRESS),
                           abi=load_artifact("ElectionRegistry").abi)


def _web3_session(node: Node) -> None:
    """What an observer or the authority does with web3.py, every call over the proxy."""
    s = node.served
    w3 = Web3(HTTPProvider(node.proxy.url, request_kwargs={"timeout": 30}))
    c = _registry(w3)
    authority = Account.from_key(s.kit.authority_key.secret)
    assert w3.is_connected() and w3.eth.chain_id == s.executor.chain_id
    assert w3.net.version and w3.net.listening and w3.net.peer_count == 0 and w3.eth.syncing is False
    assert w3.eth.accounts == [] and w3.eth.gas_price == 0 and w3.eth.max_priority_fee == 0
    assert w3.eth.blob_base_fee == 1
    w3.eth.fee_history(3, "latest", [25, 75])
    tip = w3.eth.block_number
    for ident in (0, 1, tip, "latest", "earliest", "safe", "finalized", "pending"):
        block = w3.eth.get_block(ident, full_transactions=True)
        w3.eth.get_block(block["hash"])
    w3.eth.get_block_transaction_count(1)
    w3.eth.get_block_transaction_count(w3.eth.get_block(1)["hash"])
    w3.eth.get_block_receipts(1)
    first = w3.eth.get_block(1)["transactions"][0]
    w3.eth.get_transaction(first)
    w3.eth.get_transaction_by_block(1, 0)
    w3.eth.get_transaction_by_block(w3.eth.get_block(2)["hash"], 1)
    w3.eth.get_raw_transaction(first)
    w3.eth.get_transaction_receipt(first)
    with pytest.raises(BlockNotFound):
        w3.eth.get_block(10_000)
    with pytest.raises(TransactionNotFound):
        w3.eth.get_transaction(b"\x01" * 32)
    address = Web3.to_checksum_address(REGISTRY_ADDRESS)
    w3.eth.get_code(address)
    w3.eth.get_balance(address)
    w3.eth.get_storage_at(address, 0)
    nonce = w3.eth.get_transaction_count(authority.address, "pending")
    w3.eth.get_proof(address, [0, 265], "latest")
    assert c.functions.phase(election_key(EID)).call() == Phase.OPEN
    c.functions.phase(election_key(EID)).estimate_gas()
    c.events.PhaseChanged.get_logs(from_block=0)
    w3.eth.get_logs({"fromBlock": 0, "toBlock": 1_000_000, "address": address})
    log_filter = c.events.PhaseChanged.create_filter(from_block=0)
    log_filter.get_all_entries()
    log_filter.get_new_entries()
    block_filter = w3.eth.filter("latest")
    pending_filter = w3.eth.filter("pending")
    # the authority closes an election with a transaction web3 builds, signs and sends
    tx = c.functions.close_election(election_key(EID)).build_transaction(
        {"from": authority.address, "nonce": nonce})
    signed = authority.sign_transaction(tx)
    tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=10)
    assert receipt["status"] == 1 and c.functions.phase(election_key(EID)).call() == Phase.CLOSED
    assert [e.args.new_phase for e in log_filter.get_new_entries()] == [Phase.CLOSED]
    assert block_filter.get_new_entries() == [receipt["blockHash"]]
    assert pending_filter.get_new_entries() == []
    assert w3.eth.uninstall_filter(block_filter.filter_id)
    for method, params in (
        ("web3_sha3", ["0x00"]), ("eth_mining", []), ("eth_hashrate", []),
        ("eth_getUncleCountByBlockNumber", ["0x1"]),
        ("eth_getUncleCountByBlockHash", [w3.eth.get_block(1)["hash"].to_0x_hex()]),
        ("eth_getUncleByBlockNumberAndIndex", ["0x1", "0x0"]),
        ("eth_getUncleByBlockHashAndIndex", [w3.eth.get_block(1)["hash"].to_0x_hex(), "0x0"]),
        ("eth_getFilterLogs", [log_filter.filter_id]),
    ):
        w3.manager.request_blocking(method, params)


def test_web3_sees_the_specifications_shapes(node: Node) -> None:
    """Fails when a field leaves its schema: checked by hand with transactionsRoot shown
    as a quantity and with a receipt carrying an unlisted field."""
    node.proxy.take()
    _web3_session(node)
    calls = node.proxy.take()
    called = {m for m, _, _ in calls}
    assert len(called) >= 40, sorted(called)
    assert _differences(calls) == []


def test_every_served_ethereum_method_is_in_the_schema(node: Node) -> None:
    spec = schema_subset.load()
    assert set(node.table) <= set(spec["methods"])


def _npm_install(into: Path) -> Path:
    for name in ("package.json", "package-lock.json", "conformance.mjs"):
        shutil.copy(JS / name, into / name)
    proc = subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--prefer-offline"], cwd=into,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return into / "conformance.mjs"


@pytest.mark.skipif(shutil.which("node") is None or shutil.which("npm") is None, reason="needs Node.js and npm")
def test_ethers_v6_reads_sends_and_follows_events_in_the_specifications_shapes(
        node: Node, tmp_path_factory: pytest.TempPathFactory) -> None:
    s = node.served
    script = _npm_install(tmp_path_factory.mktemp("eth_js"))
    abi = tmp_path_factory.mktemp("abi") / "registry.json"
    abi.write_text(json.dumps(load_artifact("ElectionRegistry").abi))
    node.proxy.take()
    proc = subprocess.run(
        ["node", str(script), node.proxy.url, "0x" + s.kit.authority_key.secret.hex(),
         Web3.to_checksum_address(REGISTRY_ADDRESS), str(abi), "0x" + election_key(NEW).hex(),
         f"ws://127.0.0.1:{node.port}/"],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert int(seen["chainId"]) == s.executor.chain_id
    assert seen["genesisHash"] == "0x" + s.kit.genesis.hash().hex()
    assert seen["fees"][0] == "0"  # ethers reads a base fee of 0 as "no EIP-1559" and sends legacy
    assert seen["firstTx"]["from"].lower() == "0x" + s.executor.authority.hex() and seen["firstTx"]["status"] == 1
    assert seen["phaseBefore"] == Phase.OPEN and seen["phaseAfter"] == Phase.CLOSED
    assert seen["sentStatus"] == 1 and seen["event"] == [Phase.OPEN, Phase.CLOSED]
    # and over WebSocket: the new block's head and the same event, by eth_subscribe
    assert int(seen["socketChainId"]) == s.executor.chain_id and seen["socketHead"] == seen["sentBlock"]
    assert seen["socketEvent"] == [Phase.OPEN, Phase.CLOSED]
    assert seen["pendingChanges"] == []
    assert seen["proof"]["address"].lower() == "0x" + REGISTRY_ADDRESS.hex()
    # the phase, proven in JavaScript from eth_getProof against the block's stateRoot
    assert seen["provenStorageHash"] is True and seen["provenPhase"] == Phase.CLOSED
    calls = node.proxy.take()
    called = {m for m, _, _ in calls}
    assert {"eth_chainId", "eth_getBlockByNumber", "eth_sendRawTransaction", "eth_newFilter",
            "eth_getFilterChanges", "eth_estimateGas", "eth_getTransactionReceipt"} <= called, sorted(called)
    assert _differences(calls) == []
