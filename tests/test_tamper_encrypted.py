"""The verifier checks every encrypted ballot's proofs, and names the ballot and the
selection whose proof fails (12's tamper tests: a ballot that encrypts 2, a proof made
for another election). The validators refuse such ballots; here they are written into
a bundle directly, as a dishonest quorum could, under a valid voter signature."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from ballotledger.bundlegen import _voter, generate_bundle
from ledger.ballot import BallotEnvelope
from ledger.block import Block, CommitCertificate
from ledger.genesis import Genesis
from ledger.rules import ballot_context
from tests.crypto.helpers import forge_ballot, make_context
from verifier.bundle import BLOCKS_FILE, GENESIS_FILE, block_line
from verifier.verify import verify_bundle

SEED = "tamper-encrypted"


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("enc") / "b"
    generate_bundle(out, 24, seed=SEED, block_ballots=8, processes=1, encrypted=True)
    report = verify_bundle(out)
    assert report.valid and report.ballots == 24 and report.blocks == 3, report.failure
    results = json.loads((out / "results.json").read_text())["elections"]["national-2026"]
    assert results == {"ballots_recorded": 24, "ballots_counted": 24}  # no counts per choice anywhere
    return out


def _replace_ballot(bundle: Path, height: int, index: int, payload: bytes) -> None:
    """Re-sign ballot ``index`` of block ``height`` with a new payload, by its own voter."""
    genesis = Genesis.from_json((bundle / GENESIS_FILE).read_bytes())
    lines = []
    for text in (bundle / BLOCKS_FILE).read_text().splitlines():
        obj = json.loads(text)
        block = Block.decode(bytes.fromhex(obj["block"]))
        lines.append((block, CommitCertificate.decode(bytes.fromhex(obj["certificate"]))))
    block, cert = lines[height - 1]
    ballots = list(block.ballots)
    old = BallotEnvelope.decode(ballots[index])
    voter = _voter(SEED, old.proof.index)
    assert voter.public_key == old.credential
    ballots[index] = BallotEnvelope.create(voter, chain_id=genesis.chain_id, election_id=old.election_id,
                                           proof=old.proof, payload=payload).encode()
    lines[height - 1] = (dataclasses.replace(block, ballots=tuple(ballots)), cert)
    (bundle / BLOCKS_FILE).write_text("".join(block_line(b.encode(), c.encode()) for b, c in lines))


def _credential(bundle: Path, height: int, index: int) -> bytes:
    text = (bundle / BLOCKS_FILE).read_text().splitlines()[height - 1]
    return BallotEnvelope.decode(Block.decode(bytes.fromhex(json.loads(text)["block"])).ballots[index]).credential


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_ballot_that_encrypts_two_is_named(pristine: Path, tmp_path: Path, jobs: int) -> None:
    bundle = tmp_path / "b"
    shutil.copytree(pristine, bundle)
    genesis = Genesis.from_json((bundle / GENESIS_FILE).read_bytes())
    election = genesis.elections[0]
    context = ballot_context(genesis.chain_id, election, _credential(bundle, 2, 3))
    forged = forge_ballot(context, [[0, 0, 2, 0, 0]], [[0, 0, 1, 0, 0]]).encode()
    _replace_ballot(bundle, 2, 3, forged)
    report = verify_bundle(bundle, jobs=jobs)
    assert not report.valid and report.exit_code == 1 and report.failure is not None
    assert (report.failure["check"], report.failure["where"]) == (
        "bad_ballot_proof", "block 2 ballot 3: payload: contest 0 selection 2"), report.failure


def test_a_proof_made_for_another_election_is_named(pristine: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "b"
    shutil.copytree(pristine, bundle)
    genesis = Genesis.from_json((bundle / GENESIS_FILE).read_bytes())
    election = genesis.elections[0]
    credential = _credential(bundle, 3, 0)
    # an honest ballot of the same shape by the same credential, for another chain's election
    _, elsewhere = make_context(((5, 1),), voter=b"unused", chain="another-chain", election=election.election_id)
    elsewhere = dataclasses.replace(elsewhere, joint_key=election.joint_key, credential=credential)
    honest_there = forge_ballot(elsewhere, [[1, 0, 0, 0, 0]], [[1, 0, 0, 0, 0]]).encode()
    _replace_ballot(bundle, 3, 0, honest_there)
    report = verify_bundle(bundle)
    assert report.failure is not None and report.failure["check"] == "bad_ballot_proof", report.failure
    assert report.failure["where"].startswith("block 3 ballot 0: payload: contest 0")
