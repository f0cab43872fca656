"""The demo: four validators and a gateway; a secret-ballot election defined on chain
with five trustees (threshold 3) and their key ceremony; ballots encrypted on the voters'
side, good and bad, a re-vote, an audited ballot and a crash; the close, the trustees'
decryption with one of them absent, the published result; and the verifier's report on
the exported bundle, which decrypts the result itself."""

from __future__ import annotations

import dataclasses
import random
import shutil
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ballotledger.demo_trustees import (
    CONTESTS,
    ELECTION,
    THRESHOLD,
    TRUSTEES,
    Trustees,
    decrypt_and_publish,
    definition_toml,
    make_trustees,
    run_ceremony,
    run_command,
)
from ballotledger.localnet import Localnet
from ballotledger.netsetup import read_voters, voter_key
from ballotledger.report import print_report
from ledger.ballot import BallotEnvelope
from ledger.block import Checkpoint
from ledger.credentials import CredentialSet
from ledger.crypto import SigningKey
from ledger.errors import LedgerError
from ledger.files import read_bounded
from ledger.genesis import ElectionDef, Genesis
from ledger.receipt import MAX_RECEIPT_JSON_BYTES, Receipt
from ledger.voter import Selections, audit_ballot, encrypted_ballot
from node.config import ConsensusTimeouts
from node.gateway.client import GatewayClient, GatewayProblem, verified_receipt
from verifier.checkpoints import SavedCheckpoint
from verifier.export import export_bundle
from verifier.verify import verify_bundle

DEMO_TIMEOUTS = ConsensusTimeouts(propose_ms=1000, prevote_ms=400, precommit_ms=400, delta_ms=300,
                                  block_interval_ms=200)


@dataclasses.dataclass(frozen=True)
class Cast:
    voter: int
    selected: tuple[tuple[int, ...], ...]
    raw: bytes


def run_demo(out: Path, voters: int, validators: int, console: Console) -> int:
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    net = Localnet.create(out / "net", validators=validators, voters=voters, timeouts=DEMO_TIMEOUTS, gateway=True)
    genesis = net.genesis
    console.print(f"Genesis hash (observers pin this): {genesis.hash().hex()}")
    console.print(f"The genesis holds {voters} voters' roll (with its plaintext election "
                  f"{genesis.elections[0].election_id}, kept for tests and benchmarks); this demo's secret-ballot "
                  "election is defined on chain")
    with net:
        net.start()
        net.wait_ready()
        net.start_gateway()
        net.wait_gateway()
        net.write_description()
        console.print(f"{validators} validators on loopback ({', '.join(net.rpc_urls)}), gateway {net.gateway_url}")
        election, trustees = _define_and_key(out, net, console)
        casts = _vote(out, net, election, voters, console)
        _close(out, net, casts, console)
        counts = _tally(out, net, trustees, console)
    console.rule(f"verifier: ballotledger verify {out / 'bundle'}")
    report = verify_bundle(out / "bundle", pin_genesis=genesis.hash().hex())
    print_report(console, report)
    receipt = Receipt.from_json(read_bounded(out / "receipt.json", MAX_RECEIPT_JSON_BYTES))
    receipt.verify(genesis)
    console.print("[bold green]Receipt verified[/]: voter 0's encrypted ballot is in the quorum-signed log")
    _compare(console, report.results.get(ELECTION, {}), counts, casts)
    return report.exit_code


def _define_and_key(out: Path, net: Localnet, console: Console) -> tuple[ElectionDef, Trustees]:
    console.rule(f"election {ELECTION}: defined on chain, {TRUSTEES} trustees, threshold {THRESHOLD}")
    trustees = make_trustees(out / "trustees")
    definition = out / "council.toml"
    definition.write_text(definition_toml(net, trustees))
    authority = out / "net" / "authority.key"
    run_command("election", "define", "--rpc", net.rpc_urls[0], "--file", definition, "--authority-key", authority)
    console.print(f"  ballotledger election define --file {definition}: in setup, no key yet")
    election = run_ceremony(net, trustees, authority, console)
    console.print(f"  opened with joint key {election.joint_key.hex()[:16]}…, made by the ceremony, held by no one")
    return election, trustees


def _vote(out: Path, net: Localnet, election: ElectionDef, voters: int, console: Console) -> list[Cast]:
    console.rule("voting: every choice encrypted on the voter's side")
    rng = random.Random(2026)
    seed = read_voters(out / "net")["seed"]
    keys = [voter_key(seed, i) for i in range(voters)]
    roll = CredentialSet([k.public_key for k in keys])
    casts = [_cast(i, keys[i], roll, election, net.genesis.chain_id, _pick(rng)) for i in range(voters)]
    _audit(keys[1], roll, election, net.genesis.chain_id, console)
    assert net.gateway_url is not None
    with GatewayClient(net.gateway_url, net.gateway_key) as gateway:
        first = gateway.submit(ELECTION, casts[0].raw)
        console.print(f"Voter 0 voted through the gateway: 202, tracking code {first['tracking_code']}")
        console.print(_refusals(gateway, keys[0], casts[0].raw, casts[1].raw))
    revote = _cast(2, keys[2], roll, election, net.genesis.chain_id, _pick(rng))
    late = casts.pop()  # one voter waits until after the close
    half = len(casts) // 2
    codes = [first["tracking_code"], *_submit(net, [c.raw for c in casts[1:half]])]
    codes += _submit(net, [revote.raw])
    console.print("Voter 2 votes again: under last-counts only the later ballot counts")
    casts = [revote if c.voter == 2 else c for c in casts]
    _crash_and_catch_up(net, [c.raw for c in casts[half:]], codes, console)
    with GatewayClient(net.gateway_url, net.gateway_key) as gateway:
        receipt = verified_receipt(gateway.wait_final(codes[0]), net.genesis, codes[0])
    (out / "receipt.json").write_text(receipt.to_json())
    console.print(f"Voter 0's receipt (final at height {receipt.height}) -> {out / 'receipt.json'}")
    return [*casts, dataclasses.replace(late, voter=-1)]


def _pick(rng: random.Random) -> tuple[tuple[int, ...], ...]:
    chair = (rng.randrange(len(CONTESTS[0].choices)),)
    motions = tuple(sorted(rng.sample(range(len(CONTESTS[1].choices)), rng.randint(0, CONTESTS[1].limit))))
    return chair, motions


def _cast(i: int, key: SigningKey, roll: CredentialSet, election: ElectionDef, chain_id: str,
          selected: Selections) -> Cast:
    envelope, _ = encrypted_ballot(key, chain_id=chain_id, election=election, proof=roll.proof(key.public_key),
                                   selected=selected)
    return Cast(i, tuple(tuple(s) for s in selected), envelope.encode())


def _audit(key: SigningKey, roll: CredentialSet, election: ElectionDef, chain_id: str, console: Console) -> None:
    """A Benaloh challenge: the device makes a ballot, the voter has it opened and
    checks it; that ballot is never cast."""
    envelope, opening = audit_ballot(key, chain_id=chain_id, election=election, proof=roll.proof(key.public_key),
                                     selected=[[3], [0, 2]])
    ok = opening.choices == ((0, 0, 0, 1, 0), (1, 0, 1))
    console.print(f"Voter 1 audits their device (Benaloh challenge): the opened ballot encrypts what they chose: "
                  f"{'yes' if ok else 'NO'}; tracking code {envelope.tracking_code.hex()[:16]}… is never cast")


def _submit(net: Localnet, ballots: list[bytes]) -> list[str]:
    codes: list[str] = []
    for i in range(0, len(ballots), 100):
        with net.client((i // 100) % 2) as c:
            answers = c.call("ballot_submitBatch", [b.hex() for b in ballots[i : i + 100]])
        codes.extend(a["tracking_code"] for a in answers)
    return codes


def _crash_and_catch_up(net: Localnet, rest: list[bytes], codes: list[str], console: Console) -> None:
    last = len(net.rpc_urls) - 1
    console.print(f"Killing validator {last} (SIGKILL) and voting on without it ...")
    net.kill(last)
    codes += _submit(net, rest)
    _wait_final(net, 0, codes)
    with net.client(0) as c:
        before = c.call("ballot_status")["height"]
    net.start(last)
    net.wait_ready(indexes=[last])
    with net.client(last) as c:
        deadline = time.monotonic() + 60
        while c.call("ballot_status")["height"] < before and time.monotonic() < deadline:
            time.sleep(0.2)
        caught_up = c.call("ballot_status")["height"]
    console.print(f"Validator {last} restarted and caught up to height {caught_up} by block sync")


def _wait_final(net: Localnet, node: int, codes: list[str], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    with net.client(node) as c:
        for code in codes[-1:] + codes[:1]:
            while c.call("ballot_getReceipt", code)["status"] != "final":
                if time.monotonic() > deadline:
                    raise TimeoutError("ballots did not become final")
                time.sleep(0.1)


def _close(out: Path, net: Localnet, casts: list[Cast], console: Console) -> None:
    console.rule("the close")
    with net.client(1) as c:
        genesis_obj = c.call("ballot_getGenesis")
        cp = c.call("ballot_getCheckpoint")
    saved = SavedCheckpoint(net.genesis.chain_id, Genesis.from_json_obj(genesis_obj).hash(),
                            Checkpoint.decode(bytes.fromhex(cp["checkpoint"])))
    (out / "checkpoint.json").write_text(saved.to_json())
    authority = out / "net" / "authority.key"
    run_command("election", "close", "--rpc", net.rpc_urls[0], "--election", ELECTION, "--authority-key", authority)
    console.print(f"The election authority closed {ELECTION} with a signed transaction")
    try:
        with net.client(2) as c:
            c.call("ballot_submit", casts[-1].raw.hex())
    except LedgerError as exc:
        console.print(f"  a ballot after the close: [bold]{exc.code}[/] ({exc.message})")
    with net.client(0) as c:
        entry = c.call("ballot_getResults")["elections"][ELECTION]
    console.print(f"  the chain recorded {entry['ballots_recorded']} ballots, {entry['ballots_counted']} count; "
                  "no count per choice exists anywhere yet")


def _tally(out: Path, net: Localnet, trustees: Trustees, console: Console) -> list[int]:
    console.rule("the tally: sums anyone can recompute, decrypted by the trustees")
    height = export_bundle(net.rpc_urls[2], out / "bundle")
    sums = out / "sums.json"
    run_command("tally", "sums", "--bundle", out / "bundle", "--election", ELECTION, "--out", sums)
    console.print(f"  each trustee verified the chain up to height {height} and recomputed the encrypted sums "
                  f"-> {sums}")
    tally = decrypt_and_publish(net, trustees, out / "net" / "authority.key", sums, console)
    console.print(tally.strip(), highlight=False)
    height = export_bundle(net.rpc_urls[2], out / "bundle")
    console.print(f"Exported blocks 1..{height} with certificates to {out / 'bundle'}")
    with net.client(0) as c:
        return _published(c.call("eth_call", _result_call(), "latest"))


def _result_call() -> dict[str, str]:
    from contracts import REGISTRY_ADDRESS, election_key, registry

    return {"to": "0x" + REGISTRY_ADDRESS.hex(), "data": "0x" + registry().fn("result").encode(
        election_key(ELECTION)).hex()}


def _published(raw: str) -> list[int]:
    from contracts import registry

    (counts,) = registry().fn("result").decode(bytes.fromhex(raw.removeprefix("0x")))
    return [int(c) for c in counts]


def _compare(console: Console, entry: dict[str, object], published: list[int], casts: list[Cast]) -> None:
    """What the simulated voters chose (known only to this demo) against the published
    and the verifier's own decryption."""
    chose = [0] * sum(len(c.choices) for c in CONTESTS)
    offsets = [0, len(CONTESTS[0].choices)]
    for cast in casts:
        if cast.voter >= 0:
            for contest, picks in enumerate(cast.selected):
                for p in picks:
                    chose[offsets[contest] + p] += 1
    table = Table(title=f"{ELECTION}: what the voters chose, what was published, what the verifier decrypted")
    for column in ("choice", "chosen", "published", "verifier"):
        table.add_column(column)
    decrypted = entry.get("decrypted_counts") or []
    names = [c for contest in CONTESTS for c in contest.choices]
    for k, name in enumerate(names):
        table.add_row(name, str(chose[k]), str(published[k]) if k < len(published) else "-",
                      str(decrypted[k]) if isinstance(decrypted, list) and k < len(decrypted) else "-")
    console.print(table)
    same = chose == published == decrypted
    console.print("[bold green]The published result is the voters' choices[/]" if same
                  else "[bold red]The published result differs from the voters' choices[/]")


def _refusals(gateway: GatewayClient, key: SigningKey, good: bytes, other: bytes) -> Table:
    """``good``: ``key``'s ballot; ``other``: another voter's."""
    env = BallotEnvelope.decode(good)
    stolen = BallotEnvelope.decode(other)
    outsider = SigningKey.from_seed(b"not-registered")
    attempts = {
        "the same ballot again": good,
        "signature over a changed ciphertext": dataclasses.replace(
            env, payload=env.payload[:-1] + bytes([env.payload[-1] ^ 1])).encode(),
        "credential not on the voter roll": BallotEnvelope.create(
            outsider, chain_id=env.chain_id, election_id=env.election_id, proof=env.proof,
            payload=env.payload).encode(),
        "ballot for another chain": dataclasses.replace(env, chain_id="other-chain").encode(),
        # signed by this voter, but its proofs are bound to the other voter's credential
        "another voter's encrypted choices, signed": BallotEnvelope.create(
            key, chain_id=env.chain_id, election_id=env.election_id, proof=env.proof,
            payload=stolen.payload).encode(),
        "truncated bytes": good[:-3],
    }
    table = Table(title="Bad input is refused with a precise code (gateway, RFC 9457 problems)")
    table.add_column("attempt")
    table.add_column("answer")
    table.add_column("detail")
    for name, raw in attempts.items():
        try:
            answer = gateway.submit(ELECTION, raw)
            code = answer["tracking_code"][:16]
            table.add_row(name, "202 again", f"same tracking code {code}…, never a second ballot")
        except GatewayProblem as exc:
            table.add_row(name, f"{exc.status} {exc.code}", exc.detail)
    return table
