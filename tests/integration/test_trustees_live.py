"""The trustees' commands on a running chain: a 5-trustee, threshold-3 ceremony through
`ballotledger trustee ceremony`, a cheating dealer caught by its victim's complaint, the
joint key set by `election finalize-key`, encrypted ballots, three trustees' decryption
shares (two absent) and `election tally --publish`."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ballotledger.authority_cli import send_signed_call
from ballotledger.cli import app
from ballotledger.localnet import Localnet
from ballotledger.netsetup import read_voters, voter_key
from ballotledger.registry_rpc import RegistryRpc
from ballotledger.sums_file import write_sums
from ballotledger.trustee_key import TrusteeKey, read_trustee_key, update_trustee_key, write_new_trustee_key
from contracts import REGISTRY_ADDRESS, election_key, registry
from contracts.ceremony import ceremony_context
from ledger.ballot import BallotEnvelope
from ledger.credentials import CredentialSet
from ledger.crypto import SigningKey
from ledger.encrypted_ballot import EncryptedBallot
from ledger.group import random_scalar
from ledger.tally_crypto import CiphertextAccumulator, TallyContext, make_decryption_share
from ledger.trustees import TrusteeSecret, deal_message, encrypt_share
from ledger.voter import encrypted_ballot
from node.config import write_key
from tests.helpers import QUICK_TIMEOUTS, ROOT
from verifier.rpc_client import RpcClient

pytestmark = pytest.mark.integration

ELECTION = "council-2027"
PASSPHRASE = "a trustee's long passphrase"
CHEAT, VICTIM = 3, 2
DECRYPTING = (1, 3, 4)  # 2 and 5 stay away; 3 cheated as a dealer but holds a share all the same
# (voter, [choices of contest 0], [choices of contest 1])
VOTES = [(0, [0], [1]), (1, [2], [0, 1]), (2, [2], []), (3, [1], [1]), (4, [2], [0])]


def _cli(*args: str | Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "ballotledger", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)


def _finish(proc: subprocess.Popen[str], timeout: float = 90) -> tuple[int, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out + err


def _run(*args: str | Path) -> tuple[int, str]:
    """A command in this process (typer's runner): no interpreter to start."""
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result.exit_code, result.output


def _definition(net: Localnet, keys: list[TrusteeKey]) -> str:
    first = net.genesis.elections[0]
    trustees = ", ".join(f'"{k.public_key.hex()}"' for k in keys)
    return (
        f'id = "{ELECTION}"\nquestion = "Council 2027"\nchoices = []\n'
        f'credential_root = "{first.credential_root.hex()}"\ncredential_count = {first.credential_count}\n'
        f"opens_at_ms = {first.opens_at_ms}\ncloses_at_ms = {first.closes_at_ms}\n"
        'revoting = "first-counts"\npayload_scheme = "elgamal-secp256k1/v1"\njoint_key = ""\n'
        f"trustees = [{trustees}]\nthreshold = 3\n"
        '[[contests]]\nquestion = "Chair"\nchoices = ["ana", "bo", "cy"]\nlimit = 1\n'
        '[[contests]]\nquestion = "Motions"\nchoices = ["parks", "roads"]\nlimit = 2\n'
    )


def _cheat(url: str, rpc: RegistryRpc, key_file: Path) -> None:
    """Trustee 3 keeps its polynomial in its key file as `trustee ceremony` would, then
    posts a dealing whose share to trustee 2 is off by one."""
    published = rpc.election(ELECTION)
    ctx = ceremony_context(rpc.chain_id, published.election)
    key = read_trustee_key(key_file, PASSPHRASE)
    secret = TrusteeSecret(CHEAT, key.encryption_secret, tuple(random_scalar() for _ in range(3)))
    update_trustee_key(key_file, PASSPHRASE, lambda k: k.with_secret(rpc.chain_id, ELECTION, secret))
    honest = deal_message(ctx, secret)
    wrong = encrypt_share(ctx, CHEAT, VICTIM, secret.evaluate(VICTIM) + 1)
    bad = dataclasses.replace(honest, shares=tuple(wrong if s.recipient == VICTIM else s for s in honest.shares))
    send_signed_call(url, secret.signing_key, registry().post_dealing(ELECTION, bad.encode()), "a bad dealing")


def _wait_for(what: str, done: object, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not done():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


def _page_checks_proofs(node_url: str, code: str, joint_key: str) -> None:
    """A node's own page, in Chromium, checks a ballot of this election (defined on chain,
    its key made by the ceremony): the proofs green under the key the chain holds."""
    from tests.web.browser import CHROMIUM_FLAGS, chromium_path, why_no_browser

    if why_no_browser() is not None:
        return
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS, headless=True)
        try:
            page = browser.new_page()
            page.goto(f"{node_url}/receipt?code={code}")
            page.wait_for_selector("#result[data-verdict]:not([data-verdict='working'])", timeout=20_000)
            text = page.inner_text("#result")
            assert page.get_attribute("#result", "data-verdict") == "final", text
            checks = page.eval_on_selector_all("#checks li",
                                               "items => items.map(i => i.className + ' ' + i.dataset.check)")
            assert checks[-2:] == ["ok ballot", "ok proofs"], text
            assert f"key {joint_key} (defined on chain)" in text
        finally:
            browser.close()


def test_five_trustees_threshold_three_from_ceremony_to_published_result(tmp_path: Path) -> None:
    """Fails when a trustee deals with another polynomial than the one it keeps, when a
    bad share goes without a complaint, when the key leaves out or lets in the wrong
    dealers, or when three trustees' shares do not decrypt the ballots cast (tried by
    hand: a ceremony that skips its complaint leaves trustee 3 qualified and the test
    waits in vain; a tally over the disqualified dealer's commitments refuses every share)."""
    with Localnet.create(tmp_path / "net", validators=4, voters=8, timeouts=QUICK_TIMEOUTS) as net:
        net.start()
        net.wait_ready()
        url = net.rpc_urls[0]
        authority = tmp_path / "net" / "authority.key"
        passphrase_file = tmp_path / "passphrase"
        passphrase_file.write_text(PASSPHRASE + "\n")
        key_files = [tmp_path / f"trustee{i}.key" for i in range(1, 6)]
        keys = [TrusteeKey.generate() for _ in key_files]
        for path, key in zip(key_files, keys, strict=True):
            write_new_trustee_key(path, key, PASSPHRASE, log2_n=10)
        definition = tmp_path / "council.toml"
        definition.write_text(_definition(net, keys))
        code, out = _run("election", "define", "--rpc", url, "--file", definition,
                         "--authority-key", authority)
        assert code == 0, out

        client = RpcClient(url)
        rpc = RegistryRpc(client)
        _cheat(url, rpc, key_files[CHEAT - 1])
        runs = [_cli("trustee", "ceremony", "--key", path, "--rpc", net.rpc_urls[i % len(net.rpc_urls)],
                     "--election", ELECTION, "--wait", "80", "--passphrase-file", passphrase_file)
                for i, path in enumerate(key_files)]
        stranger = tmp_path / "stranger.key"
        write_new_trustee_key(stranger, TrusteeKey.generate(), PASSPHRASE, log2_n=10)
        code, out = _run("trustee", "ceremony", "--key", stranger, "--rpc", url, "--election", ELECTION,
                         "--passphrase-file", passphrase_file)
        assert code == 2 and "not a trustee of election council-2027" in out and "Traceback" not in out, out

        def ceremony_complete() -> bool:
            state = rpc.ceremony(ELECTION)
            return all(d is not None for d in state.dealings) and state.disqualified[CHEAT - 1]

        _wait_for("every dealing and the victim's complaint", ceremony_complete)
        code, out = _run("election", "finalize-key", "--rpc", url, "--election", ELECTION,
                         "--authority-key", authority)
        assert code == 0 and "qualified [1, 2, 4, 5], disqualified [3]" in out, out
        outputs = [_finish(p) for p in runs]
        for code, out in outputs:
            assert code == 0 and "share of it kept" in out, out
        assert f"trustee {CHEAT}'s share to trustee {VICTIM} is bad: complaint posted" in outputs[VICTIM - 1][1]
        assert all("complaint" not in out for i, (_, out) in enumerate(outputs) if i != VICTIM - 1)

        code, out = _run("trustee", "ceremony", "--key", key_files[0], "--rpc", url, "--election", ELECTION,
                         "--passphrase-file", passphrase_file)
        assert code == 0 and "share of the joint key already kept" in out, out  # nothing done twice
        code, out = _run("election", "open", "--rpc", url, "--election", ELECTION, "--authority-key", authority)
        assert code == 0, out
        code, out = _run("election", "finalize-key", "--rpc", url, "--election", ELECTION,
                         "--authority-key", authority)
        assert code == 2 and "its ceremony is over" in out, out
        code, out = _run("trustee", "decrypt", "--key", key_files[4], "--rpc", url, "--election", ELECTION,
                         "--sums", definition, "--passphrase-file", passphrase_file)
        assert code == 2 and "election council-2027 is open" in out, out
        keyed = rpc.election(ELECTION).election
        voters = read_voters(tmp_path / "net")
        voter_keys = [voter_key(voters["seed"], i) for i in range(voters["count"])]
        credentials = CredentialSet([k.public_key for k in voter_keys])
        ballots = []
        for voter, chair, motions in VOTES:
            envelope, _ = encrypted_ballot(voter_keys[voter], chain_id=net.genesis.chain_id, election=keyed,
                                           proof=credentials.proof(voter_keys[voter].public_key),
                                           selected=[chair, motions])
            ballots.append(envelope.encode())
        codes = [a["tracking_code"] for a in client.call("ballot_submitBatch", [b.hex() for b in ballots])]
        _wait_for("the ballots to be final",
                  lambda: all(client.call("ballot_getReceipt", c)["status"] == "final" for c in codes))
        _page_checks_proofs(net.rpc_urls[1], codes[0], keyed.joint_key.hex())
        code, out = _run("election", "close", "--rpc", url, "--election", ELECTION,
                         "--authority-key", authority)
        assert code == 0, out

        accumulator = CiphertextAccumulator(5)
        for raw in ballots:
            payload = EncryptedBallot.decode(BallotEnvelope.decode(raw).payload, max_size=1 << 16)
            accumulator.add_ciphertexts(payload.ciphertexts())
        sums = tmp_path / "sums.json"
        write_sums(sums, chain_id=net.genesis.chain_id, election_id=ELECTION, genesis_hash=net.genesis.hash(),
                   tip_height=rpc.head(), sums=accumulator.sums(), ballots=accumulator.ballots)
        code, out = _run("election", "tally", "--rpc", url, "--election", ELECTION, "--sums", sums)
        assert code == 2 and "insufficient_shares: 0 valid shares, 3 needed" in out, out
        # a key file whose share of the key is not the one the ceremony implies
        corrupt = tmp_path / "corrupt.key"
        held = read_trustee_key(key_files[3], PASSPHRASE)
        own = held.secret_for(rpc.chain_id, ELECTION)
        assert own is not None and own.share is not None
        write_new_trustee_key(corrupt, held.with_secret(rpc.chain_id, ELECTION, own.with_share(own.share + 1)),
                              PASSPHRASE, log2_n=10)
        code, out = _run("trustee", "decrypt", "--key", corrupt, "--rpc", url, "--election", ELECTION,
                         "--sums", sums, "--passphrase-file", passphrase_file)
        assert code == 2 and "(a corrupt key file)" in out, out
        decrypting = [_cli("trustee", "decrypt", "--key", key_files[j - 1], "--rpc", url, "--election", ELECTION,
                           "--sums", sums, "--passphrase-file", passphrase_file) for j in DECRYPTING]
        # trustee 5 posts a share made with a key that is not its share of the election key
        state = rpc.ceremony(ELECTION)
        context = TallyContext.from_ceremony(ceremony_context(rpc.chain_id, keyed), state.qualified_commitments())
        forged = make_decryption_share(context, accumulator.sums(), 5, random_scalar())
        signer = read_trustee_key(key_files[4], PASSPHRASE)
        send_signed_call(url, SigningKey(signer.encryption_secret.to_bytes(32, "big")),
                         registry().post_decryption_share(ELECTION, forged.encode()), "a forged share")
        for j, proc in zip(DECRYPTING, decrypting, strict=True):
            code, out = _finish(proc)
            assert code == 0 and f"trustee {j}'s decryption share of 5 ballots posted" in out, out

        intruder = tmp_path / "intruder.key"
        write_key(intruder, SigningKey.generate())
        code, out = _run("election", "tally", "--rpc", url, "--election", ELECTION, "--sums", sums,
                         "--authority-key", intruder, "--publish")
        assert code == 1 and "not_authority" in out, out
        code, out = _run("trustee", "decrypt", "--key", key_files[0], "--rpc", url, "--election", ELECTION,
                         "--sums", sums, "--passphrase-file", passphrase_file)
        assert code == 0 and "trustee 1's decryption share is already posted" in out, out
        code, out = _run("election", "tally", "--rpc", url, "--election", ELECTION, "--sums", sums,
                         "--authority-key", authority, "--publish")
        expected = [sum(c in chair for _, chair, _ in VOTES) for c in range(3)]
        expected += [sum(c in motions for _, _, motions in VOTES) for c in range(2)]
        assert code == 0 and "published in block" in out and "trustees [1, 3, 4]" in out, out
        assert "  cy: 3" in out and "  parks: 2" in out and "trustee 5's decryption share refused" in out, out
        reg = registry()
        raw = client.call("eth_call", {"to": "0x" + REGISTRY_ADDRESS.hex(),
                                       "data": "0x" + reg.fn("result").encode(election_key(ELECTION)).hex()},
                          "latest")
        (published,) = reg.fn("result").decode(bytes.fromhex(raw.removeprefix("0x")))
        assert list(published) == expected == [1, 1, 3, 2, 3]
        client.close()
        # the whole chain, ceremony transactions included, replays under the verifier
        verify = _cli("verify", "--rpc", net.rpc_urls[2], "--json")
        out, err = verify.communicate(timeout=90)
        report = json.loads(out)
        assert verify.returncode == 0 and report["valid"], out + err
        entry = report["results"][ELECTION]
        assert entry["published_on_chain"] == expected
        # the verifier decrypted the published counts itself from the posted shares
        assert entry["decrypted_counts"] == expected and entry["decryption_shares_used"] == [1, 3, 4]
        assert list(entry["decryption_shares_refused"]) == ["5"]
