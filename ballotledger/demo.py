"""The demo: a chain, an election, ballots (good and bad), a bundle, and its verification."""

from __future__ import annotations

import json
import random
import shutil
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ballotledger.election_kit import ElectionKit, make_election
from ballotledger.report import print_report
from ledger.assemble import assemble_block
from ledger.ballot import BallotEnvelope
from ledger.block import CommitCertificate
from ledger.chain import Chain
from ledger.crypto import SigningKey
from ledger.errors import LedgerError
from ledger.hashing import keccak256
from ledger.receipt import Receipt
from ledger.rules import check_ballot
from verifier.bundle import BLOCKS_FILE, GENESIS_FILE, block_line
from verifier.verify import verify_bundle


def run_demo(out: Path, voters: int, block_size: int, console: Console) -> int:
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    kit = make_election(validators=1, voters=voters, genesis_time_ms=int(time.time() * 1000) - 60_000)
    genesis = kit.genesis
    console.print(f"[bold]Election[/] {kit.election_id}: {voters} registered voters, "
                  f"choices {', '.join(genesis.elections[0].choices)}")
    console.print(f"Genesis hash (observers pin this): {genesis.hash().hex()}")
    (out / "genesis.json").write_text(genesis.to_json())

    rng = random.Random(2026)
    raw_ballots = [kit.ballot(i, rng.randrange(3)).encode() for i in range(voters)]
    refusals = _bad_ballots(kit, raw_ballots[0])

    chain = Chain(out / "node0" / "db", genesis)
    key = kit.validator_keys[0]
    last: CommitCertificate | None = None
    started = time.perf_counter()
    for start in range(0, len(raw_ballots), block_size):
        tip = chain.store.tip
        block = assemble_block(genesis, tip, raw_ballots[start : start + block_size],
                               time_ms=int(time.time() * 1000), proposer=key.public_key, last_commit=last)
        cert = CommitCertificate.create([(0, key)], chain_id=genesis.chain_id, height=block.height,
                                        round_=0, block_hash=block.hash())
        chain.commit(block, cert)
        last = cert
    elapsed = time.perf_counter() - started
    store = chain.store
    console.print(f"Finalized {store.tip.height} blocks holding {store.log_size} ballots "
                  f"in {elapsed:.2f} s (single validator)")

    table = Table(title="Bad input is refused with a precise code")
    table.add_column("attempt")
    table.add_column("code")
    table.add_column("message")
    for attempt, (refusal, message) in refusals.items():
        table.add_row(attempt, refusal, message)
    tip = store.tip
    replay_block = assemble_block(genesis, tip, [raw_ballots[0]], time_ms=int(time.time() * 1000),
                                  proposer=key.public_key, last_commit=last)
    try:
        chain.check(replay_block)
    except LedgerError as exc:
        table.add_row("the same ballot again, in a new block", exc.code, exc.message)
    console.print(table)

    code = keccak256(raw_ballots[0])
    position = store.ballot_position(code)
    assert position is not None
    index, height = position
    receipt = Receipt(genesis.chain_id, kit.election_id, code, index, height, store.checkpoint(),
                      tuple(store.inclusion_proof(index, store.log_size)))
    (out / "receipt.json").write_text(receipt.to_json())
    console.print(f"Voter 0's tracking code {code.hex()} -> receipt.json")

    bundle = out / "bundle"
    bundle.mkdir()
    shutil.copy(out / "genesis.json", bundle / GENESIS_FILE)
    with (bundle / BLOCKS_FILE).open("w") as fh:
        for raw_block, raw_cert in store.iter_blocks():
            fh.write(block_line(raw_block, raw_cert))
    chain.close()

    console.rule("verifier: ballotledger verify " + str(bundle))
    report = verify_bundle(bundle, pin_genesis=genesis.hash().hex())
    print_report(console, report)
    receipt_back = Receipt.from_json_obj(json.loads((out / "receipt.json").read_text()))
    receipt_back.verify(genesis)
    console.print("[bold green]Receipt verified[/]: voter 0's ballot is in the quorum-signed log")
    return report.exit_code


def _bad_ballots(kit: ElectionKit, good: bytes) -> dict[str, tuple[str, str]]:
    genesis = kit.genesis
    env = BallotEnvelope.decode(good)
    outsider = SigningKey.from_seed(b"not-registered")
    forged = BallotEnvelope(env.chain_id, env.election_id, env.credential, env.proof, bytes([1]), env.signature)
    attempts = {
        "signature over a different choice": forged.encode(),
        "credential not on the voter roll": BallotEnvelope.create(
            outsider, chain_id=genesis.chain_id, election_id=kit.election_id, proof=env.proof,
            payload=b"\x00").encode(),
        "ballot for another chain": BallotEnvelope.create(
            kit.voters[1], chain_id="other-chain", election_id=kit.election_id,
            proof=kit.credentials.proof(kit.voters[1].public_key), payload=b"\x00").encode(),
        "a choice that does not exist": kit.ballot(2, 7).encode(),
        "truncated bytes": good[:-3],
    }
    out: dict[str, tuple[str, str]] = {}
    for name, raw in attempts.items():
        try:
            check_ballot(genesis, raw)
            out[name] = ("ACCEPTED", "this should not happen")
        except LedgerError as exc:
            out[name] = (exc.code, exc.message)
    return out
