"""``ballotledger trustee ...``: a trustee's key, its side of the key ceremony, and its
decryption share, all through a node's JSON-RPC.

Exit codes: 0 done; 1 the chain refused a call (its ledger code is shown), or the
ceremony was not over within ``--wait``; 2 unusable input (a wrong passphrase, not a
trustee of this election, an election in the wrong phase, a corrupt key file, ...).
Nothing secret (the key, a polynomial, a share, the passphrase) is ever printed.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.markup import escape

app = typer.Typer(no_args_is_help=True, help="A trustee: its key, the key ceremony, its decryption share.")
console = Console(highlight=False, soft_wrap=True)
errors = Console(stderr=True, highlight=False, soft_wrap=True)

if TYPE_CHECKING:
    from ballotledger.registry_rpc import PublishedElection, RegistryRpc
    from ballotledger.trustee_key import TrusteeKey
    from contracts.ceremony import Ceremony
    from ledger.trustees import CeremonyContext, TrusteeSecret
    from verifier.rpc_client import RpcClient

PASSPHRASE_HELP = ("A file whose first line is the key file's passphrase (else the environment's "
                   "BALLOTLEDGER_PASSPHRASE, else a prompt).")
POLL_S = 1.0


class Stop(Exception):
    """End the command with ``code`` after saying ``message`` in one line."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def _stop(exc: Stop) -> typer.Exit:
    errors.print(f"[red]{escape(str(exc))}[/]")
    return typer.Exit(exc.code)


def passphrase(file: Path | None, *, confirm: bool = False) -> str:
    """From ``file``, the environment or a prompt (``voter_key.ask_passphrase``)."""
    from ballotledger.voter_key import ask_passphrase

    return ask_passphrase(file, "trustee key file", confirm=confirm)


def open_key(key_file: Path, passphrase_file: Path | None) -> tuple[TrusteeKey, str]:
    from ballotledger.trustee_key import read_trustee_key
    from ledger.errors import LedgerError

    try:
        secret = passphrase(passphrase_file)
        return read_trustee_key(key_file, secret), secret
    except (LedgerError, OSError) as exc:
        raise Stop(f"unusable key file: {exc}", 2) from None


def trustee_context(rpc: RegistryRpc, election_id: str, key: TrusteeKey) -> tuple[PublishedElection, int]:
    """The election as the registry holds it, and this key's trustee number in it."""
    from ledger.errors import LedgerError

    try:
        published = rpc.election(election_id)
    except LedgerError as exc:
        raise Stop(f"election {election_id}: {exc}", 2) from None
    election = published.election
    if not election.has_ceremony:
        raise Stop(f"election {election_id} has no trustees' ceremony (its key is fixed in its definition)", 2)
    if key.public_key not in election.trustees:
        raise Stop(f"this key ({key.public_key.hex()}) is not a trustee of election {election_id} "
                   f"({len(election.trustees)} trustees)", 2)
    return published, election.trustees.index(key.public_key) + 1


def post(rpc_url: str, secret: TrusteeSecret, data: bytes, what: str) -> int:
    from ballotledger.authority_cli import AuthorityActionFailed, send_signed_call

    try:
        return send_signed_call(rpc_url, secret.signing_key, data, what)
    except AuthorityActionFailed as exc:
        raise Stop(str(exc), 1) from None


# --- keygen --------------------------------------------------------------------------
@app.command("keygen")
def keygen(
    out: Path = typer.Option(..., help="The new key file (never replaces an existing one)."),
    passphrase_file: Path | None = typer.Option(None, help=PASSPHRASE_HELP),
) -> None:
    """Make a trustee key, sealed under a passphrase in OUT (mode 0600). Prints only its
    public key (hex): that is what the authority lists in an election's trustees."""
    from ballotledger.trustee_key import TrusteeKey, write_new_trustee_key
    from ledger.errors import LedgerError

    try:
        secret = passphrase(passphrase_file, confirm=True)
        key = TrusteeKey.generate()
        write_new_trustee_key(out, key, secret)
    except (LedgerError, OSError) as exc:
        raise _stop(Stop(f"no key made: {exc}", 2)) from None
    errors.print(f"trustee key sealed in {escape(str(out))}; the authority lists this public key:")
    print(key.public_key.hex())


# --- ceremony ------------------------------------------------------------------------
@app.command("ceremony")
def ceremony(
    key_file: Path = typer.Option(..., "--key", help="The trustee key file."),
    rpc: str = typer.Option(..., help="A node's JSON-RPC address."),
    election: str = typer.Option(..., help="The election id."),
    wait: float = typer.Option(300.0, min=0, help="Seconds to wait for the other trustees and the authority."),
    passphrase_file: Path | None = typer.Option(None, help=PASSPHRASE_HELP),
) -> None:
    """Take part in an election's key ceremony; safe to run again at any point. Deals
    (once), checks the shares dealt to this trustee, complains of bad ones, and once the
    authority set the joint key keeps this trustee's share of it in the key file."""
    from verifier.rpc_client import RpcClient

    try:
        key, secret = open_key(key_file, passphrase_file)
        with RpcClient(rpc) as client:
            _run_ceremony(rpc, client, key_file, key, secret, election, time.monotonic() + wait)
    except Stop as exc:
        raise _stop(exc) from None


def _run_ceremony(rpc_url: str, client: RpcClient, key_file: Path, key: TrusteeKey, passphrase_: str,
                  election_id: str, deadline: float) -> None:
    from ballotledger.registry_rpc import RegistryRpc
    from contracts.ceremony import ceremony_context
    from ledger.errors import LedgerError

    rpc = RegistryRpc(client)
    try:
        published, j = trustee_context(rpc, election_id, key)
        ctx = ceremony_context(rpc.chain_id, published.election)
        secret = _election_secret(key_file, passphrase_, key, rpc.chain_id, published, j)
        console.print(f"election {election_id}: trustee {j} of {len(ctx.trustees)}, threshold {ctx.threshold}")
        state, joint_key = _until_keyed(rpc_url, rpc, ctx, secret, published, deadline)
        _keep_final_share(key_file, passphrase_, rpc.chain_id, ctx, secret, state, joint_key)
    except LedgerError as exc:
        raise Stop(f"election {election_id}: {exc}", 2) from None


def _until_keyed(rpc_url: str, rpc: RegistryRpc, ctx: CeremonyContext, secret: TrusteeSecret,
                 published: PublishedElection, deadline: float) -> tuple[Ceremony, bytes]:
    """Deal, check, complain, and wait until the authority set the key (or ``deadline``);
    the ceremony as the key was set, and the key."""
    from ballotledger.trustee_ceremony import plan
    from contracts import registry
    from ledger.trustees import deal_message, make_complaint

    reg, j, election_id = registry(), secret.index, ctx.election_id
    said = ""
    while True:
        state = rpc.ceremony(election_id)  # read after the election: once keyed, it shows the final dealers
        if published.election.joint_key:
            return state, published.election.joint_key
        if published.phase != "setup":
            raise Stop(f"election {election_id} is {published.phase} and has no key: nothing to do", 2)
        steps = plan(ctx, state, secret)
        if steps.deal:
            block = post(rpc_url, secret, reg.post_dealing(election_id, deal_message(ctx, secret).encode()),
                         f"trustee {j}'s dealing")
            console.print(f"dealing posted in block {block}")
            continue
        for dealer in steps.complain_against:
            dealing = state.dealings[dealer - 1]
            assert dealing is not None
            complaint = make_complaint(ctx, dealing.share_to(j), secret)
            block = post(rpc_url, secret, reg.post_complaint(election_id, dealer, complaint.encode()),
                         f"trustee {j}'s complaint against trustee {dealer}")
            console.print(f"trustee {dealer}'s share to trustee {j} is bad: complaint posted in block {block}")
        if steps.complain_against:
            continue
        now = _status(steps.waiting_for, steps.bad_dealers)
        if now != said:
            console.print(now)
            said = now
        if time.monotonic() >= deadline:
            raise Stop(f"not over yet: {now}; run it again to go on", 1)
        time.sleep(POLL_S)
        published = rpc.election(election_id)


def _keep_final_share(key_file: Path, passphrase_: str, chain_id: str, ctx: CeremonyContext,
                      secret: TrusteeSecret, state: Ceremony, joint_key: bytes) -> None:
    """Compute this trustee's share of the key, check it against the commitments, keep it."""
    from ballotledger.trustee_ceremony import final_share, share_matches
    from ledger.errors import LedgerError
    from ledger.tally_crypto import TallyContext

    j = secret.index
    tally = TallyContext.from_ceremony(ctx, state.qualified_commitments())
    if tally.joint_key != joint_key:
        raise Stop("the registry's joint key is not the one its qualified dealings give", 2)
    if secret.share is not None and share_matches(tally, j, secret.share):
        console.print(f"share of the joint key already kept; qualified dealers {state.qualified()}")
        return
    try:
        x_j = final_share(ctx, state, secret)
    except LedgerError as exc:
        raise Stop(f"no usable share of the key: {exc}", 2) from None
    if not share_matches(tally, j, x_j):
        raise Stop("the share of the key computed from the key file does not match the ceremony's "
                   "commitments (a key file that lost its polynomial?)", 2)
    _keep(key_file, passphrase_, chain_id, ctx.election_id, secret.with_share(x_j))
    console.print(f"joint key {tally.joint_key.hex()} from qualified dealers {state.qualified()}; "
                  f"trustee {j}'s share of it kept in {key_file}")


def _status(waiting_for: tuple[int, ...], bad: tuple[int, ...]) -> str:
    flagged = f" (bad shares from trustees {list(bad)})" if bad else ""
    if waiting_for:
        return f"waiting for the dealings of trustees {list(waiting_for)}{flagged}"
    return f"every dealing is in and checked{flagged}; waiting for the authority to set the joint key"


def _election_secret(key_file: Path, passphrase_: str, key: TrusteeKey, chain_id: str,
                     published: PublishedElection, j: int) -> TrusteeSecret:
    """This election's secret from the key file, its polynomial drawn and written there
    first if the trustee has not dealt yet (under the file's lock: two runs draw once)."""
    from ballotledger.trustee_key import update_trustee_key
    from ledger.group import random_scalar
    from ledger.trustees import TrusteeSecret

    election = published.election
    election_id = election.election_id
    existing = key.secret_for(chain_id, election_id)
    if existing is not None:
        if existing.index != j:
            raise Stop(f"the key file holds trustee {existing.index}'s secret for this election, "
                       f"the registry lists it as trustee {j}", 2)
        return existing
    may_deal = published.phase == "setup" and not election.joint_key

    def draw(current: TrusteeKey) -> TrusteeKey:
        if current.secret_for(chain_id, election_id) is not None:
            return current  # another run drew it meanwhile
        # too late to deal: the secret only decrypts the shares the qualified dealers sent
        coefficients = tuple(random_scalar() for _ in range(election.threshold)) if may_deal else ()
        return current.with_secret(chain_id, election_id, TrusteeSecret(j, current.encryption_secret, coefficients))

    updated = update_trustee_key(key_file, passphrase_, draw)
    drawn = updated.secret_for(chain_id, election_id)
    assert drawn is not None
    return drawn


def _keep(key_file: Path, passphrase_: str, chain_id: str, election_id: str, secret: TrusteeSecret) -> None:
    from ballotledger.trustee_key import update_trustee_key

    update_trustee_key(key_file, passphrase_, lambda current: current.with_secret(chain_id, election_id, secret))


# --- decrypt -------------------------------------------------------------------------
@app.command("decrypt")
def decrypt(
    key_file: Path = typer.Option(..., "--key", help="The trustee key file."),
    rpc: str = typer.Option(..., help="A node's JSON-RPC address."),
    election: str = typer.Option(..., help="The election id."),
    sums: Path = typer.Option(..., help="The encrypted sums this trustee computed from the counted ballots."),
    passphrase_file: Path | None = typer.Option(None, help=PASSPHRASE_HELP),
) -> None:
    """Post this trustee's decryption share of a closed election's sums, with its proofs."""
    from verifier.rpc_client import RpcClient

    try:
        key, _ = open_key(key_file, passphrase_file)
        with RpcClient(rpc) as client:
            _run_decrypt(rpc, client, key, election, sums)
    except Stop as exc:
        raise _stop(exc) from None


def _run_decrypt(rpc_url: str, client: RpcClient, key: TrusteeKey, election_id: str, sums_file: Path) -> None:
    from ballotledger.registry_rpc import RegistryRpc
    from ballotledger.sums_file import read_sums
    from ballotledger.trustee_ceremony import share_matches
    from contracts import choice_count, registry
    from contracts.ceremony import ceremony_context
    from ledger.errors import LedgerError
    from ledger.tally_crypto import TallyContext, make_decryption_share, verify_decryption_share

    rpc = RegistryRpc(client)
    try:
        published, j = trustee_context(rpc, election_id, key)
        if published.phase != "closed":
            raise Stop(f"election {election_id} is {published.phase}: decryption shares are posted once it is "
                       "closed and before its result", 2)
        chain_id = rpc.chain_id
        secret = key.secret_for(chain_id, election_id)
        if secret is None or secret.share is None:
            raise Stop(f"the key file holds no share of election {election_id}'s key: run `trustee ceremony` "
                       "first", 2)
        try:
            sums, ballots = read_sums(sums_file, genesis_hash=rpc.genesis.hash(), election_id=election_id)
        except (LedgerError, OSError) as exc:
            raise Stop(f"unusable sums file: {exc}", 2) from None
        election = published.election
        if len(sums) != choice_count(election):
            raise Stop(f"the sums file has {len(sums)} sums, election {election_id} has "
                       f"{choice_count(election)} choices", 2)
        state = rpc.ceremony(election_id)
        ctx = ceremony_context(chain_id, election)
        tally = TallyContext.from_ceremony(ctx, state.qualified_commitments())
        if tally.joint_key != election.joint_key:
            raise Stop("the registry's joint key is not the one its qualified dealings give", 2)
        if not share_matches(tally, j, secret.share):
            raise Stop(f"the key file's share of the key is not trustee {j}'s public share key in the ceremony "
                       "(a corrupt key file)", 2)
        if state.shares[j - 1] is not None:
            console.print(f"trustee {j}'s decryption share is already posted")
            return
        share = make_decryption_share(tally, sums, j, secret.share)
        verify_decryption_share(tally, sums, share)
    except LedgerError as exc:
        raise Stop(f"election {election_id}: {exc}", 2) from None
    block = post(rpc_url, secret, registry().post_decryption_share(election_id, share.encode()),
                 f"trustee {j}'s decryption share")
    console.print(f"trustee {j}'s decryption share of {ballots} ballots posted in block {block}")
