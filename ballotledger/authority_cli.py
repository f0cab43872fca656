"""``ballotledger election ...``: the election authority drives phases and publishes
results with signed transactions; anyone reads the registry's state."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console

from ballotledger.refusal import refusal

app = typer.Typer(no_args_is_help=True, help="Election lifecycle on the chain's registry contract.")
console = Console()

if TYPE_CHECKING:
    from ledger.crypto import SigningKey
    from ledger.elgamal import EncryptedSum
    from ledger.genesis import ElectionDef
    from ledger.tally_crypto import TallyOutcome
    from verifier.rpc_client import RpcClient


# A definition encodes to at most 64 KiB; its TOML may quote every byte.
MAX_ELECTION_FILE_BYTES = 512 * 1024


class AuthorityActionFailed(Exception):
    """The transaction was refused, reverted, or not included in time."""


def authority_action(rpc: str, key_file: Path, election: str, action: str, counts: list[int] | None = None) -> int:
    """Sign and send one registry call as the authority; wait until it is in a block.

    Returns the block number; raises AuthorityActionFailed with the reason."""
    from contracts import registry

    reg = registry()
    data = {
        "open": lambda: reg.open_election(election),
        "close": lambda: reg.close_election(election),
        "publish": lambda: reg.publish_result(election, counts or []),
    }[action]()
    return send_registry_call(rpc, key_file, data, f"{action} {election}")


def send_registry_call(rpc: str, key_file: Path, data: bytes, what: str) -> int:
    """Sign ``data`` as a call to the registry with the authority's key, send it, and wait
    until a block carries it; the block number, or AuthorityActionFailed with the reason."""
    return send_signed_call(rpc, read_authority_key(key_file), data, what)


def send_signed_call(rpc: str, key: SigningKey, data: bytes, what: str, *, timeout: float = 60.0) -> int:
    """Sign ``data`` as a call to the registry with ``key`` (the authority's, or a
    trustee's for its own calls), send it, and wait until a block carries it; the block
    number, or AuthorityActionFailed with the reason (the ledger's code where the chain
    gave one)."""
    from contracts import REGISTRY_ADDRESS
    from contracts.engine import evm_chain_id, sign_transaction
    from ledger.crypto import address_of
    from ledger.errors import LedgerError
    from ledger.genesis import Genesis
    from verifier.rpc_client import RpcClient

    try:
        with RpcClient(rpc) as client:
            genesis = Genesis.from_json_obj(client.call("ballot_getGenesis"))
            sender = "0x" + address_of(key.public_key).hex()
            nonce = int(client.call("eth_getTransactionCount", sender, "latest"), 16)
            # calldata and its event cost ~30 gas a byte (a widest definition: 1.32M gas in all)
            raw = sign_transaction(key, chain_id=evm_chain_id(genesis.chain_id), nonce=nonce, to=REGISTRY_ADDRESS,
                                   data=data, gas=1_000_000 + 40 * len(data))
            try:
                tx_hash = client.call("eth_sendRawTransaction", "0x" + raw.hex())
            except LedgerError as exc:
                raise AuthorityActionFailed(f"{what} refused: {exc.code}: {exc.message}") from None
            deadline = time.monotonic() + timeout
            receipt = None
            while receipt is None and time.monotonic() < deadline:
                receipt = client.call("eth_getTransactionReceipt", tx_hash)
                if receipt is None:
                    time.sleep(0.2)
            if receipt is None:
                raise AuthorityActionFailed(f"{what}: {tx_hash} not included within {timeout:g} s")
            block = int(receipt["blockNumber"], 16)
            if int(receipt["status"], 16) != 1:
                raise AuthorityActionFailed(f"{what} reverted in block {block}"
                                            f"{_revert_code(client, sender, data, block)}")
    except LedgerError as exc:  # the node is unreachable, or its answers are not a node's
        raise AuthorityActionFailed(f"{what}: {exc}") from None
    return block


def _revert_code(client: RpcClient, sender: str, data: bytes, block: int) -> str:
    """Why the call reverted, as far as the same call on the state after its block says
    (another transaction of the block, before it, made it revert: posted twice, say)."""
    from contracts import REGISTRY_ADDRESS
    from ledger.errors import LedgerError

    try:
        client.call("eth_call", {"from": sender, "to": "0x" + REGISTRY_ADDRESS.hex(), "data": "0x" + data.hex()},
                    hex(block))
    except LedgerError as exc:
        return f": {exc.code}"
    return ""


def read_election_file(path: Path) -> ElectionDef:
    """An election definition file (TOML): the keys of a genesis election, at top level
    (``[[contests]]`` tables for an encrypted election). Bounded before it is parsed."""
    from ledger.genesis import ElectionDef
    from node.tomlbound import load

    obj = load(path, max_bytes=MAX_ELECTION_FILE_BYTES, max_depth=3)
    return ElectionDef.from_json_obj(obj, "election")


def _send(rpc: str, key_file: Path, election: str, action: str, counts: list[int] | None = None) -> None:
    try:
        height = authority_action(rpc, key_file, election, action, counts)
    except AuthorityActionFailed as exc:
        console.print(f"[red]{exc}[/]", soft_wrap=True)
        raise typer.Exit(1) from None
    console.print(f"{action} {election}: done in block {height}")


@app.command("define")
def define(rpc: str = typer.Option(...),
           file: Path = typer.Option(..., "--file", help="The election's definition (TOML)."),
           authority_key: Path = typer.Option(..., help="The authority's key file."),
           gateway_key_hash: list[str] = typer.Option([], help="Hash of a gateway key to authorise (repeatable)."),
           open_now: bool = typer.Option(False, "--open", help="Open it for voting once defined.")) -> None:
    """Define an election on the chain's registry (it starts in setup)."""
    from contracts import registry
    from ledger.errors import LedgerError

    try:
        election = read_election_file(file)
        gateways = [bytes.fromhex(h) for h in gateway_key_hash]
    except LedgerError as exc:
        console.print(f"[red]{file}: {exc.message}[/]", soft_wrap=True)
        raise typer.Exit(2) from None
    except (OSError, ValueError) as exc:
        console.print(f"[red]{file}: {exc}[/]", soft_wrap=True)
        raise typer.Exit(2) from None
    try:
        height = send_registry_call(rpc, authority_key, registry().define_election(election, gateways=gateways),
                                    f"define {election.election_id}")
    except AuthorityActionFailed as exc:
        console.print(f"[red]{exc}[/]", soft_wrap=True)
        raise typer.Exit(1) from None
    console.print(f"define {election.election_id}: done in block {height}")
    if open_now:
        _send(rpc, authority_key, election.election_id, "open")


@app.command("open")
def open_(rpc: str = typer.Option(...), election: str = typer.Option(...),
          authority_key: Path = typer.Option(..., help="The authority's key file.")) -> None:
    """Open an election (setup -> open)."""
    _send(rpc, authority_key, election, "open")


@app.command("close")
def close(rpc: str = typer.Option(...), election: str = typer.Option(...),
          authority_key: Path = typer.Option(..., help="The authority's key file.")) -> None:
    """Close an election (open -> closed): ballots after this are refused."""
    _send(rpc, authority_key, election, "close")


@app.command("publish")
def publish(rpc: str = typer.Option(...), election: str = typer.Option(...),
            authority_key: Path = typer.Option(..., help="The authority's key file."),
            counts: str = typer.Option(..., help="Votes per choice, comma separated, in choice order.")) -> None:
    """Publish the result of a closed election (closed -> tallied)."""
    _send(rpc, authority_key, election, "publish", [int(c) for c in counts.split(",")])


@app.command("phase")
def phase(rpc: str = typer.Option(...), election: str = typer.Option(...)) -> None:
    """Read an election's phase from the registry (eth_call)."""
    from contracts import REGISTRY_ADDRESS, Phase, election_key, registry
    from verifier.rpc_client import RpcClient

    reg = registry()
    data = reg.fn("phase").encode(election_key(election))
    with RpcClient(rpc) as client:
        out = client.call("eth_call", {"to": "0x" + REGISTRY_ADDRESS.hex(), "data": "0x" + data.hex()}, "latest")
    console.print(Phase(int(out, 16)).name.lower())


# --- the trustees' ceremony and the encrypted tally ----------------------------------------
def _refuse(message: str, code: int) -> typer.Exit:
    return refusal(console, None, message, code)


def read_authority_key(key_file: Path) -> SigningKey:
    """The authority's key: plain hex or a keystore, whose passphrase comes from
    BALLOTLEDGER_PASSPHRASE or a prompt (``voter_key.ask_passphrase``); ``ConfigError``."""
    from ballotledger.voter_key import ask_passphrase
    from node.config import read_key

    return read_key(key_file, lambda: ask_passphrase(None, "authority key"))


def _authority(key_file: Path) -> SigningKey:
    from node.config import ConfigError

    try:
        return read_authority_key(key_file)
    except ConfigError as exc:
        raise _refuse(str(exc), 2) from None


@app.command("finalize-key")
def finalize_key(rpc: str = typer.Option(...), election: str = typer.Option(...),
                 authority_key: Path = typer.Option(..., help="The authority's key file.")) -> None:
    """End an election's key ceremony: set the joint key of its qualified dealers (those
    that dealt and against whom no complaint was upheld); then it may open."""
    from ballotledger.registry_rpc import RegistryRpc
    from contracts import registry
    from ledger.errors import LedgerError
    from verifier.rpc_client import RpcClient

    authority = _authority(authority_key)
    try:
        with RpcClient(rpc) as client:
            reader = RegistryRpc(client)
            published = reader.election(election)
            defined = published.election
            if not defined.has_ceremony:
                raise _refuse(f"election {election} has no trustees' ceremony", 2)
            if published.phase != "setup" or defined.joint_key:
                raise _refuse(f"election {election} is {published.phase}"
                              f"{' with its key set' if defined.joint_key else ''}: its ceremony is over", 2)
            state = reader.ceremony(election)
    except LedgerError as exc:
        raise _refuse(f"election {election}: {exc}", 2) from None
    qualified = state.qualified()
    missing = [i for i, d in enumerate(state.dealings, start=1) if d is None]
    out = [i for i, d in enumerate(state.disqualified, start=1) if d]
    summary = (f"{len(defined.trustees)} trustees, threshold {defined.threshold}: qualified {qualified}, "
               f"disqualified {out}, not dealt {missing}")
    if len(qualified) < defined.threshold:
        raise _refuse(f"election {election}: {summary}: fewer qualified dealers than the threshold", 2)
    key = state.joint_key()
    console.print(summary, highlight=False)
    try:
        height = send_signed_call(rpc, authority, registry().set_joint_key(election, key, qualified),
                                  f"set the joint key of {election}")
    except AuthorityActionFailed as exc:
        raise _refuse(str(exc), 1) from None
    console.print(f"joint key {key.hex()} set in block {height}; open the election when its window comes",
                  highlight=False)


@app.command("tally")
def tally(rpc: str = typer.Option(...), election: str = typer.Option(...),
          sums: Path = typer.Option(..., help="The encrypted sums of the counted ballots."),
          authority_key: Path | None = typer.Option(None, help="The authority's key file (with --publish)."),
          publish_now: bool = typer.Option(False, "--publish", help="Publish the counts (closed -> tallied).")) -> None:
    """Decrypt a closed encrypted election's sums with any threshold of the decryption
    shares its trustees posted (a refused share is named and left out); print the counts
    per contest and choice, and with --publish send them as the result."""
    from ballotledger.sums_file import load_sums
    from contracts import registry
    from ledger.errors import LedgerError

    if publish_now and authority_key is None:
        raise _refuse("--publish needs --authority-key", 2)
    authority = _authority(authority_key) if publish_now and authority_key is not None else None
    try:
        loaded = load_sums(sums)
    except (LedgerError, OSError) as exc:
        raise _refuse(f"unusable sums file: {exc}", 2) from None
    try:
        genesis_hash = _genesis_hash(rpc)
    except LedgerError as exc:
        raise _refuse(f"no answer from {rpc}: {exc}", 1) from None
    try:
        counted_sums, ballots = loaded.for_election(genesis_hash=genesis_hash, election_id=election)
    except LedgerError as exc:
        raise _refuse(f"unusable sums file: {exc}", 2) from None
    defined, outcome = _decrypt(rpc, election, counted_sums, ballots, publish_now)
    for trustee, why in sorted(outcome.rejected.items()):
        console.print(f"trustee {trustee}'s decryption share refused: {why}", highlight=False, soft_wrap=True)
    console.print(f"{ballots} ballots; decrypted with the shares of trustees {list(outcome.used)}", highlight=False)
    counts = iter(outcome.counts)
    for contest in defined.contests:
        console.print(f"{contest.question}", highlight=False)
        for choice in contest.choices:
            console.print(f"  {choice}: {next(counts)}", highlight=False)
    if authority is not None:
        try:
            height = send_signed_call(rpc, authority, registry().publish_result(election, outcome.counts),
                                      f"publish {election}")
        except AuthorityActionFailed as exc:
            raise _refuse(str(exc), 1) from None
        console.print(f"published in block {height}: {','.join(map(str, outcome.counts))}", highlight=False)


def _genesis_hash(rpc: str) -> bytes:
    """The hash of the genesis the node at ``rpc`` serves (a LedgerError if it does not answer)."""
    from ledger.genesis import Genesis
    from verifier.rpc_client import RpcClient

    with RpcClient(rpc) as client:
        return Genesis.from_json_obj(client.call("ballot_getGenesis")).hash()


def _decrypt(rpc: str, election: str, sums: tuple[EncryptedSum, ...], ballots: int,
             publishing: bool) -> tuple[ElectionDef, TallyOutcome]:
    """The election and its counts from the posted decryption shares (exit 2 if the
    election is not closed with a ceremony's key, or fewer than t shares are valid)."""
    from ballotledger.registry_rpc import RegistryRpc
    from contracts import choice_count
    from contracts.ceremony import ceremony_context
    from ledger.errors import LedgerError
    from ledger.tally_crypto import TallyContext, decrypt_tally
    from verifier.rpc_client import RpcClient

    try:
        with RpcClient(rpc) as client:
            reader = RegistryRpc(client)
            published = reader.election(election)
            defined = published.election
            if not defined.has_ceremony or not defined.joint_key:
                raise _refuse(f"election {election} has no key from a trustees' ceremony", 2)
            if published.phase not in ("closed", "tallied") or (publishing and published.phase != "closed"):
                raise _refuse(f"election {election} is {published.phase}: "
                              f"{'its result is published' if published.phase == 'tallied' else 'close it first'}", 2)
            if len(sums) != choice_count(defined):
                raise _refuse(f"the sums file has {len(sums)} sums, election {election} has "
                              f"{choice_count(defined)} choices", 2)
            state = reader.ceremony(election)
            context = TallyContext.from_ceremony(ceremony_context(reader.chain_id, defined),
                                                 state.qualified_commitments())
            return defined, decrypt_tally(context, sums, [s for s in state.shares if s is not None], ballots)
    except LedgerError as exc:
        raise _refuse(f"election {election}: {exc}", 2) from None
