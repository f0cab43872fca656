"""The demo: four validators, an election, ballots good and bad, a crash, and the
verifier's report on the exported bundle."""

from __future__ import annotations

import dataclasses
import random
import shutil
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ballotledger.authority_cli import authority_action
from ballotledger.loadgen import make_ballots
from ballotledger.localnet import Localnet
from ballotledger.report import print_report
from ledger.ballot import BallotEnvelope
from ledger.block import Checkpoint
from ledger.crypto import SigningKey
from ledger.errors import LedgerError
from ledger.files import read_bounded
from ledger.genesis import Genesis
from ledger.receipt import MAX_RECEIPT_JSON_BYTES, Receipt
from node.config import ConsensusTimeouts
from node.gateway.client import GatewayClient, GatewayProblem, verified_receipt
from verifier.checkpoints import SavedCheckpoint
from verifier.export import export_bundle
from verifier.verify import verify_bundle

DEMO_TIMEOUTS = ConsensusTimeouts(propose_ms=1000, prevote_ms=400, precommit_ms=400, delta_ms=300,
                                  block_interval_ms=200)


def run_demo(out: Path, voters: int, validators: int, console: Console) -> int:
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    net = Localnet.create(out / "net", validators=validators, voters=voters, timeouts=DEMO_TIMEOUTS, gateway=True)
    genesis = net.genesis
    election = genesis.elections[0]
    console.print(f"[bold]Election[/] {election.election_id}: {voters} registered voters, "
                  f"choices {', '.join(election.choices)}")
    console.print(f"Genesis hash (observers pin this): {genesis.hash().hex()}")
    rng = random.Random(2026)
    ballots = make_ballots(out / "net", voters, choice=lambda i: rng.randrange(len(election.choices)))
    with net:
        net.start()
        net.wait_ready()
        net.start_gateway()
        net.wait_gateway()
        net.write_description()
        console.print(f"{validators} validators serving on loopback: {', '.join(net.rpc_urls)}")
        console.print(f"Gateway for front ends: {net.gateway_url}")
        assert net.gateway_url is not None
        with GatewayClient(net.gateway_url, net.gateway_key) as gateway:
            first = gateway.submit(election.election_id, ballots[0])
            console.print(f"Voter 0 voted through the gateway: 202, tracking code {first['tracking_code']}")
            console.print(_refusals(gateway, election.election_id, ballots[0]))
        late = ballots.pop()  # one voter waits until after the close
        half = len(ballots) // 2
        codes = [first["tracking_code"], *_submit(net, ballots[1:half])]
        console.print(f"Killing validator {validators - 1} (SIGKILL) and voting on without it ...")
        net.kill(validators - 1)
        codes += _submit(net, ballots[half:])
        _wait_final(net, 0, codes)
        with net.client(0) as c:
            before = c.call("ballot_status")["height"]
        net.start(validators - 1)
        net.wait_ready(indexes=[validators - 1])
        with net.client(validators - 1) as c:
            deadline = time.monotonic() + 60
            while c.call("ballot_status")["height"] < before and time.monotonic() < deadline:
                time.sleep(0.2)
            caught_up = c.call("ballot_status")["height"]
        console.print(f"Validator {validators - 1} restarted and caught up to height {caught_up} by block sync")
        with GatewayClient(net.gateway_url, net.gateway_key) as gateway:
            receipt = verified_receipt(gateway.wait_final(codes[0]), genesis, codes[0])
        (out / "receipt.json").write_text(receipt.to_json())
        console.print(f"Voter 0's receipt from the gateway (final at height {receipt.height}) -> "
                      f"{out / 'receipt.json'}")
        with net.client(1) as c:
            genesis_obj = c.call("ballot_getGenesis")
            cp = c.call("ballot_getCheckpoint")
        saved = SavedCheckpoint(genesis.chain_id, Genesis.from_json_obj(genesis_obj).hash(),
                                Checkpoint.decode(bytes.fromhex(cp["checkpoint"])))
        (out / "checkpoint.json").write_text(saved.to_json())
        authority = out / "net" / "authority.key"
        authority_action(net.rpc_urls[0], authority, election.election_id, "close")
        console.print(f"The election authority closed {election.election_id} with a signed transaction")
        try:
            with net.client(2) as c:
                c.call("ballot_submit", late.hex())
        except LedgerError as exc:
            console.print(f"  a ballot after the close: [bold]{exc.code}[/] ({exc.message})")
        with net.client(0) as c:
            tally = c.call("ballot_getResults")["elections"][election.election_id]["tally"]
        authority_action(net.rpc_urls[0], authority, election.election_id, "publish", list(tally.values()))
        console.print(f"The authority published the result on chain: {tally}")
        height = export_bundle(net.rpc_urls[2], out / "bundle")
        console.print(f"Exported blocks 1..{height} with certificates to {out / 'bundle'}")
    console.rule(f"verifier: ballotledger verify {out / 'bundle'}")
    report = verify_bundle(out / "bundle", pin_genesis=genesis.hash().hex())
    print_report(console, report)
    receipt = Receipt.from_json(read_bounded(out / "receipt.json", MAX_RECEIPT_JSON_BYTES))
    receipt.verify(genesis)
    console.print("[bold green]Receipt verified[/]: voter 0's ballot is in the quorum-signed log")
    return report.exit_code


def _submit(net: Localnet, ballots: list[bytes]) -> list[str]:
    codes: list[str] = []
    for i in range(0, len(ballots), 100):
        with net.client((i // 100) % 2) as c:
            answers = c.call("ballot_submitBatch", [b.hex() for b in ballots[i : i + 100]])
        codes.extend(a["tracking_code"] for a in answers)
    return codes


def _wait_final(net: Localnet, node: int, codes: list[str], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    with net.client(node) as c:
        for code in codes[-1:] + codes[:1]:
            while c.call("ballot_getReceipt", code)["status"] != "final":
                if time.monotonic() > deadline:
                    raise TimeoutError("ballots did not become final")
                time.sleep(0.1)


def _refusals(gateway: GatewayClient, election_id: str, good: bytes) -> Table:
    env = BallotEnvelope.decode(good)
    outsider = SigningKey.from_seed(b"not-registered")
    attempts = {
        "the same ballot again": good,
        "signature over a different choice": dataclasses.replace(
            env, payload=bytes([(env.payload[0] + 1) % 3])).encode(),
        "credential not on the voter roll": BallotEnvelope.create(
            outsider, chain_id=env.chain_id, election_id=env.election_id, proof=env.proof, payload=b"\x00").encode(),
        "ballot for another chain": dataclasses.replace(env, chain_id="other-chain").encode(),
        "a choice that does not exist": dataclasses.replace(env, payload=b"\x07").encode(),
        "truncated bytes": good[:-3],
    }
    table = Table(title="Bad input is refused with a precise code (gateway, RFC 9457 problems)")
    table.add_column("attempt")
    table.add_column("answer")
    table.add_column("detail")
    for name, raw in attempts.items():
        try:
            answer = gateway.submit(election_id, raw)
            code = answer["tracking_code"][:16]
            table.add_row(name, "202 again", f"same tracking code {code}…, never a second ballot")
        except GatewayProblem as exc:
            table.add_row(name, f"{exc.status} {exc.code}", exc.detail)
    return table
