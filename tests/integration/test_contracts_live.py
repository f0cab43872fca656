"""The election registry on real validators: web3.py reads the chain unmodified, the
authority drives the phases with signed transactions, and the ballot rules follow."""

from __future__ import annotations

import asyncio
import http.server
import json
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from web3 import AsyncWeb3, Web3
from web3.providers.persistent import WebSocketProvider

from ballotledger.loadgen import make_ballots
from ballotledger.localnet import Localnet
from ballotledger.netsetup import read_voters, voter_key
from contracts import REGISTRY_ADDRESS, Phase, election_key, load_artifact
from ledger.ballot import BallotEnvelope
from ledger.credentials import CredentialSet
from ledger.crypto import SigningKey
from node.config import write_key
from node.gateway.client import GatewayClient, GatewayProblem
from tests.contracts import schema_subset
from tests.helpers import QUICK_TIMEOUTS, run_cli
from verifier.rpc_client import RpcClient, RpcError

pytestmark = pytest.mark.integration


def _shape_differences(url: str) -> list[str]:
    """Answers of a real validator to the methods this work added or changed, against
    the specification's result schemas (tests/contracts/eth_rpc_schema.json)."""
    spec = schema_subset.load()
    registry = "0x" + REGISTRY_ADDRESS.hex()
    calls: list[tuple[str, list[Any]]] = [
        ("eth_getBlockByNumber", ["latest", True]), ("eth_getBlockByNumber", ["0x0", True]),
        ("eth_getBlockReceipts", ["0x1"]), ("eth_getBlockReceipts", ["0x0"]),
        ("eth_feeHistory", ["0x4", "latest", [50]]), ("net_peerCount", []), ("eth_syncing", []),
        ("web3_sha3", ["0x00"]), ("eth_getProof", [registry, ["0x0", "0x109"], "latest"]),
        ("eth_getLogs", [{"fromBlock": "0x0", "toBlock": "0xffffffff", "address": registry}]),
        ("eth_newPendingTransactionFilter", []), ("eth_blobBaseFee", []),
    ]
    out: list[str] = []
    with RpcClient(url) as client:
        for method, params in calls:
            result = client.call(method, *params)
            out += [f"{method}: {d}" for d in
                    schema_subset.differences(result, spec["methods"][method], spec["components"])]
    return out


async def _follow_heads(ws_url: str, count: int) -> int:
    """How many consecutive new heads a newHeads subscription delivers (up to ``count``)."""
    async with AsyncWeb3(WebSocketProvider(ws_url)) as w3:
        await w3.eth.subscribe("newHeads")
        numbers: list[int] = []
        async with asyncio.timeout(30):
            async for message in w3.socket.process_subscriptions():
                numbers.append(message["result"]["number"])
                if len(numbers) == count:
                    break
        assert numbers == list(range(numbers[0], numbers[0] + count))
        return len(numbers)


class _TamperingProxy:
    """A loopback HTTP proxy to a node that answers eth_getProof with the first slot's
    value changed (and leaves everything else as the node sent it)."""

    def __init__(self, upstream: str) -> None:
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                answer = httpx.post(proxy.upstream, content=body, headers={"content-type": "application/json"}).json()
                if json.loads(body).get("method") == "eth_getProof" and answer.get("result"):
                    slot = answer["result"]["storageProof"][0]
                    slot["value"] = hex(int(slot["value"], 16) + 1)
                out = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args: object) -> None:
                pass

        self.upstream = upstream
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_lifecycle_with_web3_and_signed_authority_transactions(tmp_path: Path) -> None:
    with Localnet.create(tmp_path, validators=4, voters=40, timeouts=QUICK_TIMEOUTS) as net:
        net.start()
        net.wait_ready()
        url = net.rpc_urls[1]
        election = net.genesis.elections[0].election_id
        w3 = Web3(Web3.HTTPProvider(url))
        registry = w3.eth.contract(address=Web3.to_checksum_address(REGISTRY_ADDRESS),
                                   abi=list(load_artifact("ElectionRegistry").abi))
        assert w3.eth.chain_id > 0 and w3.eth.block_number >= 0
        assert w3.net.peer_count == 3 and w3.eth.syncing is False  # the other validators, asked of consensus
        assert asyncio.run(_follow_heads(url.replace("http://", "ws://") + "/", 2)) == 2  # eth_subscribe, real node
        assert _shape_differences(url) == []  # through the node's own table: workers, consensus loop, caps
        assert registry.functions.phase(election_key(election)).call() == Phase.OPEN
        ballots = make_ballots(tmp_path, 40)
        with RpcClient(url) as c:
            codes = [a["tracking_code"] for a in c.call("ballot_submitBatch", [b.hex() for b in ballots[:10]])]
            deadline = time.monotonic() + 30
            while c.call("ballot_getReceipt", codes[-1])["status"] != "final":
                assert time.monotonic() < deadline
                time.sleep(0.1)
        number = w3.eth.block_number  # read once: the chain grows between two calls
        block = w3.eth.get_block(number)
        assert block["number"] == number and len(block["hash"]) == 32

        # a key that is not the authority's is refused with the contract's reason
        intruder = tmp_path / "intruder.key"
        write_key(intruder, SigningKey.from_seed(b"intruder"))
        proc = run_cli("election", "close", "--rpc", url, "--election", election, "--authority-key", intruder)
        assert proc.returncode == 1 and "not_authority" in proc.stdout, proc.stdout + proc.stderr
        # publishing before the close is the wrong phase
        authority = tmp_path / "authority.key"
        proc = run_cli("election", "publish", "--rpc", url, "--election", election, "--authority-key", authority,
                    "--counts", "1,2,3")
        assert proc.returncode == 1 and "wrong_phase" in proc.stdout, proc.stdout + proc.stderr

        proc = run_cli("election", "close", "--rpc", url, "--election", election, "--authority-key", authority)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert registry.functions.phase(election_key(election)).call() == Phase.CLOSED
        assert "closed" in run_cli("election", "phase", "--rpc", net.rpc_urls[3], "--election", election).stdout
        # after the close, the chain refuses ballots for it, on every validator
        with RpcClient(net.rpc_urls[2]) as c, pytest.raises(RpcError) as info:
            c.call("ballot_submit", ballots[20].hex())
        assert info.value.code == "election_not_open"

        with RpcClient(url) as c:
            tally = c.call("ballot_getResults")["elections"][election]["tally"]
        # The authority publishes a result one vote off: the chain records it (the contract
        # cannot count ballots), and the verifier catches the lie.
        claimed = [v + (1 if i == 0 else 0) for i, v in enumerate(tally.values())]
        proc = run_cli("election", "publish", "--rpc", url, "--election", election, "--authority-key", authority,
                    "--counts", ",".join(map(str, claimed)))
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert registry.functions.phase(election_key(election)).call() == Phase.TALLIED
        assert list(registry.functions.result(election_key(election)).call()) == claimed
        # web3 filters the registry's events: open -> closed -> tallied, and every block's checkpoint
        changes = registry.events.PhaseChanged.get_logs(from_block=0)
        assert [(e.args.old_phase, e.args.new_phase) for e in changes][-2:] == [
            (Phase.OPEN, Phase.CLOSED), (Phase.CLOSED, Phase.TALLIED)]
        checkpoints = registry.events.Checkpoint.get_logs(from_block=0)
        assert {e.args.height for e in checkpoints} >= set(range(1, block["number"] + 1))

        # the phase and the published result, proven against a quorum-signed checkpoint's
        # state root by Merkle-Patricia proofs from a node that need not be trusted
        saved = tmp_path / "cp.json"
        assert run_cli("checkpoint", "save", "--rpc", url, "--out", saved).returncode == 0
        proc = run_cli("state", "verify", "--rpc", net.rpc_urls[3], "--election", election,
                       "--genesis", tmp_path / "genesis.json", "--checkpoint", saved, "--json")
        proven = json.loads(proc.stdout)
        assert proc.returncode == 0 and proven["phase"] == "tallied" and proven["result"] == claimed, proc.stdout
        with _TamperingProxy(url) as lying:  # a node that changes a proven value is caught by name
            proc = run_cli("state", "verify", "--rpc", lying, "--election", election,
                           "--genesis", tmp_path / "genesis.json", "--json")
        assert proc.returncode == 1 and json.loads(proc.stdout)["check"] == "storage_value", proc.stdout

        # every rule, signature and contract state root replays; the published result does not
        proc = run_cli("verify", "--rpc", url, "--json")
        report = json.loads(proc.stdout)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert report["failure"]["check"] == "published_result"
        assert report["failure"]["where"] == f"registry result of election {election}"
        assert report["blocks"] == 0 or report["failure"]["message"].startswith("the authority published")


def test_an_election_defined_on_a_running_chain_takes_ballots_through_the_gateway(tmp_path: Path) -> None:
    """`ballotledger election define --file` on a live network: the validators learn the
    definition from the registry, the gateway from the validators, and the verifier
    counts it (fails when any of them reads elections from the genesis alone)."""
    with Localnet.create(tmp_path, validators=4, voters=12, timeouts=QUICK_TIMEOUTS, gateway=True) as net:
        net.start()
        net.wait_ready()
        net.start_gateway()
        net.wait_gateway()
        url, first = net.rpc_urls[0], net.genesis.elections[0]
        authority = tmp_path / "authority.key"
        definition = tmp_path / "budget.toml"
        definition.write_text(
            'id = "budget-2027"\nquestion = "Adopt the budget?"\nchoices = ["yes", "no"]\n'
            f'credential_root = "{first.credential_root.hex()}"\ncredential_count = {first.credential_count}\n'
            f"opens_at_ms = {first.opens_at_ms}\ncloses_at_ms = {first.closes_at_ms}\n"
            'revoting = "first-counts"\npayload_scheme = "plaintext-choice/v1"\n'
        )
        broken = tmp_path / "broken.toml"
        broken.write_text(definition.read_text().replace('choices = ["yes", "no"]', "choices = 3"))
        proc = run_cli("election", "define", "--rpc", url, "--file", broken, "--authority-key", authority)
        assert proc.returncode == 2 and "choices" in proc.stdout and "Traceback" not in proc.stderr, proc.stderr

        voters = read_voters(tmp_path)
        keys = [voter_key(voters["seed"], i) for i in range(voters["count"])]
        credentials = CredentialSet([k.public_key for k in keys])
        ballots = [BallotEnvelope.create(k, chain_id=net.genesis.chain_id, election_id="budget-2027",
                                         proof=credentials.proof(k.public_key), payload=bytes([i % 2])).encode()
                   for i, k in enumerate(keys[:5])]
        with GatewayClient(net.gateway_url or "", net.gateway_key) as gateway:
            with pytest.raises(GatewayProblem) as refused:
                gateway.submit("budget-2027", ballots[0])
            assert refused.value.code == "unknown_election"

            proc = run_cli("election", "define", "--rpc", url, "--file", definition, "--authority-key", authority,
                           "--open")
            assert proc.returncode == 0, proc.stdout + proc.stderr
            assert "define budget-2027: done" in proc.stdout and "open budget-2027: done" in proc.stdout
            proc = run_cli("election", "define", "--rpc", url, "--file", definition, "--authority-key", authority)
            assert proc.returncode == 1 and "election_exists" in proc.stdout, proc.stdout

            codes = [gateway.submit("budget-2027", raw)["tracking_code"] for raw in ballots]
            for code in codes:
                gateway.wait_final(code, timeout=60)
            view = gateway.election("budget-2027")
            deadline = time.monotonic() + 10  # the gateway refreshes phases every 2 s (stale by design)
            while view["phase"] != "open" and time.monotonic() < deadline:
                time.sleep(0.2)
                view = gateway.election("budget-2027")
            assert view["phase"] == "open" and view["question"] == "Adopt the budget?"

        proc = run_cli("verify", "--rpc", net.rpc_urls[2], "--json")
        report = json.loads(proc.stdout)
        assert proc.returncode == 0 and report["valid"], proc.stdout + proc.stderr
        assert report["results"]["budget-2027"]["tally"] == {"yes": 3, "no": 2}
