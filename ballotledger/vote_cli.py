"""``ballotledger vote``: the reference voter client.

The ballot is made on this device: for an encrypted election the choices are encrypted
under the trustees' joint key here, and what leaves is the ciphertexts with their proofs.
The opening (choices and nonces) of a cast ballot is dropped as soon as the ballot is
made: it is never printed, logged or saved. ``--audit`` makes a ballot the same way,
opens it and shows what it holds (a Benaloh challenge), and never casts it.

A real voter names their key file, the election's credential list and the chain's
genesis; a demo voter of a local network (``--dir --voter``) gets a key derived from
the seed in voters.json.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape

from ballotledger.selections import SELECT_SYNTAX
from ballotledger.voter_cli import PASSPHRASE_HELP, console, refuse

if TYPE_CHECKING:
    from ballotledger.roll import CredentialList
    from ledger.ballot import BallotEnvelope, CredentialProof
    from ledger.crypto import SigningKey
    from ledger.genesis import ElectionDef, Genesis


@dataclass(frozen=True)
class Voter:
    key: SigningKey
    credentials: CredentialList
    genesis: Genesis
    election_id: str
    gateway: str


def vote(
    directory: Path | None = typer.Option(
        None, "--dir", help="Demo: a localnet directory (genesis.json, voters.json, localnet.json); with --voter."),
    voter: int | None = typer.Option(None, min=0, help="Demo: index of the demo voter credential to vote with."),
    key_file: Path | None = typer.Option(
        None, "--key", help="The voter's key file (`ballotledger voter keygen`); with --credentials, --genesis "
        "and --election."),
    credentials_file: Path | None = typer.Option(
        None, "--credentials", help="The election's public credential list (`ballotledger credentials issue`)."),
    genesis_file: Path | None = typer.Option(
        None, "--genesis", help="The chain's published genesis.json (with --dir: DIR/genesis.json); the receipt "
        "is checked against it, and so is the gateway's election where the genesis defines it."),
    passphrase_file: Path | None = typer.Option(None, help=PASSPHRASE_HELP),
    election: str | None = typer.Option(None, help="Election id (with --dir, default: voters.json's)."),
    choice: int | None = typer.Option(
        None, min=0, help="A plaintext election: index of the choice, from 0 (with --dir, default 0)."),
    select: str | None = typer.Option(
        None, help=f"An encrypted election: {SELECT_SYNTAX}. For example '0:2;1:0' selects choice 2 of "
        "contest 0 and choice 0 of contest 1; '0:1,3;1:' selects choices 1 and 3 of contest 0 and leaves "
        "contest 1 blank. At most each contest's limit. '-' reads it from the standard input instead, out of "
        "sight of other users' process lists."),
    audit: bool = typer.Option(
        False, "--audit", help="Make the encrypted ballot, open it and show the selections it holds and its "
        "tracking code (a Benaloh challenge). The audited ballot is NEVER cast, shown or saved; vote again "
        "without --audit to cast a new one."),
    gateway: str | None = typer.Option(None, help="Gateway URL (with --dir, default: DIR/localnet.json's)."),
    api_key: str | None = typer.Option(None, envvar="BALLOTLEDGER_API_KEY", help="The front end's API key."),
    out: Path = typer.Option(Path("receipt.json"), help="Where the verified receipt goes."),
    timeout: float = typer.Option(60.0, help="Seconds to wait for finality."),
) -> None:
    """Cast a ballot through the gateway, wait until it is final, verify its receipt.

    Exit 0 cast (or audited), 1 refused or not final in time, 2 unusable input."""
    from ballotledger.election_source import GatewayUnavailable, fetch_election
    from ledger.errors import LedgerError
    from node.gateway.client import GatewayProblem

    if choice is not None and select is not None:
        raise refuse("unusable input", "give --choice (a plaintext election) or --select (an encrypted one), not both")
    if api_key is None:
        raise refuse("unusable input", "an API key is needed: --api-key or BALLOTLEDGER_API_KEY")
    try:
        if directory is not None or voter is not None:
            if key_file is not None or credentials_file is not None:
                raise ValueError("--dir/--voter (a demo voter) or --key/--credentials (a voter's own key), not both")
            who = _demo_voter(directory, voter, genesis_file, election, gateway)
        else:
            who = _own_voter(key_file, credentials_file, genesis_file, election, gateway, passphrase_file)
        published = fetch_election(who.gateway, api_key, who.election_id, genesis=who.genesis)
        proof = _credential_proof(who, published.election)
    except GatewayUnavailable as exc:
        raise refuse("gateway unavailable", exc, 1) from None
    except GatewayProblem as exc:
        raise refuse("refused", f"{exc.code}: {exc.detail}", 1) from None
    except (LedgerError, OSError, ValueError) as exc:  # unknown election, wrong passphrase, mismatches ...
        raise refuse("unusable input", exc) from None
    try:
        envelope = _make_ballot(who, published.election, proof, choice, select, audit=audit,
                                default_choice=0 if directory is not None else None)
    except (LedgerError, ValueError) as exc:
        raise refuse("unusable input", exc) from None
    if envelope is None:
        return  # audited, never cast
    _cast(who, envelope, api_key, out, timeout)


def _demo_voter(directory: Path | None, voter: int | None, genesis_file: Path | None, election: str | None,
                gateway: str | None) -> Voter:
    from ballotledger.netsetup import read_voters, voter_key
    from ballotledger.roll import CredentialList
    from ledger.files import load_genesis, load_json

    if directory is None or voter is None:
        raise ValueError("a demo voter needs both --dir and --voter")
    voters = read_voters(directory)
    if not 0 <= voter < voters["count"]:
        raise ValueError(f"--voter must be below {voters['count']}")
    if gateway is None:
        described = directory / "localnet.json"
        gateway = load_json(described, max_bytes=1 << 20, max_depth=3).get("gateway") if described.exists() else None
        if not gateway:
            raise ValueError("no --gateway and no gateway in localnet.json")
    keys = [voter_key(voters["seed"], i).public_key for i in range(voters["count"])]
    return Voter(voter_key(voters["seed"], voter), CredentialList.of(keys),
                 load_genesis(genesis_file or directory / "genesis.json"), election or voters["election_id"], gateway)


def _own_voter(key_file: Path | None, credentials_file: Path | None, genesis_file: Path | None,
               election: str | None, gateway: str | None, passphrase_file: Path | None) -> Voter:
    from ballotledger.voter_cli import load_credentials, passphrase
    from ballotledger.voter_key import read_voter_key
    from ledger.files import load_genesis

    missing = [name for name, value in (("--key", key_file), ("--credentials", credentials_file),
                                        ("--genesis", genesis_file), ("--election", election),
                                        ("--gateway", gateway)) if value is None]
    if missing:
        raise ValueError(f"a voter needs {', '.join(missing)} (or --dir and --voter for a demo voter)")
    assert key_file and credentials_file and genesis_file and election and gateway
    genesis = load_genesis(genesis_file)
    credentials = load_credentials(credentials_file)
    key = read_voter_key(key_file, passphrase(passphrase_file))
    return Voter(key, credentials, genesis, election, gateway)


def _credential_proof(who: Voter, election: ElectionDef) -> CredentialProof:
    from ballotledger.roll import NotListed

    if (who.credentials.root, who.credentials.count) != (election.credential_root, election.credential_count):
        raise ValueError(f"the credential list is not election {election.election_id}'s (its root "
                         f"{who.credentials.root.hex()[:16]}... and {who.credentials.count} keys; the election's "
                         f"{election.credential_root.hex()[:16]}... and {election.credential_count})")
    try:
        return who.credentials.proof(who.key.public_key)
    except NotListed:
        raise ValueError(f"this voter's public key {who.key.public_key.hex()} is not on election "
                         f"{election.election_id}'s credential list") from None


def _make_ballot(who: Voter, election: ElectionDef, proof: CredentialProof, choice: int | None, select: str | None, *,
                 audit: bool, default_choice: int | None) -> BallotEnvelope | None:
    """The signed ballot to cast; None after an audit (which prints what it opened)."""
    from ballotledger.selections import opened_selections, parse_select
    from ledger.ballot import BallotEnvelope
    from ledger.genesis import PLAINTEXT_SCHEME
    from ledger.voter import audit_ballot, encrypted_ballot

    chain_id = who.genesis.chain_id
    if election.encrypted:
        if select is None:
            raise ValueError(f"election {election.election_id} is encrypted: say what you select with --select "
                             f"({SELECT_SYNTAX})")
        selected = parse_select(_read_stdin_line() if select == "-" else select, len(election.contests))
        if audit:
            envelope, opening = audit_ballot(who.key, chain_id=chain_id, election=election, proof=proof,
                                             selected=selected)
            _show_audit(election, envelope.tracking_code.hex(), opened_selections(election, opening))
            return None
        envelope, _ = encrypted_ballot(who.key, chain_id=chain_id, election=election, proof=proof,
                                       selected=selected)  # the opening is dropped here: it reveals the vote
        return envelope
    if select is not None:
        raise ValueError(f"election {election.election_id} is not encrypted ({election.payload_scheme}): "
                         "give --choice, not --select")
    if audit:
        raise ValueError(f"election {election.election_id} is not encrypted: there is no encryption to audit")
    if election.payload_scheme != PLAINTEXT_SCHEME:
        raise ValueError(f"election {election.election_id} takes {election.payload_scheme} ballots, which this "
                         "client does not make")
    picked = default_choice if choice is None else choice
    if picked is None:
        raise ValueError("say what you choose with --choice")
    if not 0 <= picked < len(election.choices):
        raise ValueError(f"--choice must be from 0 to {len(election.choices) - 1} "
                         f"({', '.join(election.choices)})")
    return BallotEnvelope.create(who.key, chain_id=chain_id, election_id=election.election_id, proof=proof,
                                 payload=bytes([picked]))


def _read_stdin_line() -> str:
    import sys

    from ballotledger.selections import MAX_SELECT_CHARS

    return sys.stdin.readline(MAX_SELECT_CHARS + 1).rstrip("\n")


def _show_audit(election: ElectionDef, tracking_code: str, selections: list[dict[str, object]]) -> None:
    for entry in selections:
        picked = entry["selected"]
        names = ", ".join(map(str, picked)) if isinstance(picked, list) and picked else "(none)"
        console.print(f"contest {entry['contest']} [bold]{escape(str(entry['question']))}[/]: {escape(names)}",
                      highlight=False)
    console.print(f"AUDITED, NOT CAST: the ballot with tracking code {tracking_code} was opened and its proofs "
                  "checked. It is not saved and will never be cast; if that tracking code ever appears on the "
                  "ledger, your device cast an opened ballot: report it. Vote again without --audit.",
                  highlight=False)
    print(json.dumps({"audit": True, "cast": False, "election_id": election.election_id,
                      "tracking_code": tracking_code, "selections": selections}))


def _cast(who: Voter, envelope: BallotEnvelope, api_key: str, out: Path, timeout: float) -> None:
    import httpx

    from ledger.errors import LedgerError
    from node.gateway.client import GatewayClient, GatewayProblem, verified_receipt

    try:
        with GatewayClient(who.gateway, api_key) as client:
            accepted = client.submit(envelope.election_id, envelope.encode())
            code = accepted["tracking_code"]
            console.print(f"accepted: tracking code {code}")
            receipt = verified_receipt(client.wait_final(code, timeout=timeout), who.genesis, code)
    except GatewayProblem as exc:
        raise refuse("refused", f"{exc.code}: {exc.detail}", 1) from None
    except httpx.HTTPError as exc:
        raise refuse("gateway unavailable", exc, 1) from None
    except (TimeoutError, LedgerError) as exc:
        raise refuse("not final", exc, 1) from None
    tmp = out.with_suffix(".tmp")
    tmp.write_text(receipt.to_json())
    os.replace(tmp, out)
    console.print(f"final at height {receipt.height}, log index {receipt.log_index}; receipt verified, saved to "
                  f"{escape(str(out))}")
    print(json.dumps({"tracking_code": code, "height": receipt.height, "receipt": str(out)}))
