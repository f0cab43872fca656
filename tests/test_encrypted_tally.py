"""The verifier's side of the encrypted tally, on real replays: the sums over exactly the
counted ballots (one process, worker processes, a resumed replay, last-counts re-votes),
what the report shows of them, ``ballotledger tally sums``, and the check of a published
result from a real key ceremony's trustees, with every way the result can be wrong."""

from __future__ import annotations

import shutil
from functools import cache, lru_cache
from pathlib import Path

import plyvel
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import verifier.sums
from ballotledger.bundlegen import generate_bundle
from ballotledger.cli import app
from ballotledger.election_kit import ElectionKit, make_election
from ledger.ballot import BallotEnvelope
from ledger.block import Block
from ledger.chain import Chain
from ledger.elgamal import EncryptedSum, decrypt_with_secret, discrete_log
from ledger.encrypted_ballot import EncryptedBallot
from ledger.encrypted_tally import EncryptedTally, read_sums_file
from ledger.errors import LedgerError
from ledger.genesis import Contest, Genesis
from ledger.rules import apply_block
from ledger.state import ChainTip
from ledger.tally import Tally
from ledger.tally_crypto import DecryptionShare, TallyContext, decrypt_tally, make_decryption_share
from tests.crypto.ceremony import Ceremony, run_ceremony
from tests.helpers import certify, next_block
from verifier.bundle import BLOCKS_FILE, GENESIS_FILE, block_line, iter_block_lines
from verifier.index import DiskIndex
from verifier.replay import ReplayResult, replay
from verifier.verify import EXIT_UNUSABLE, check_encrypted_result, verify_bundle

SEED = "encrypted-tally"
ELECTION = "national-2026"  # generate_bundle's election, on chain "bench-chain"
VOTERS = 23  # voter i selects choice i mod 5
COUNTS = [5, 5, 5, 4, 4]
WHERE = f"result of election {ELECTION}"


class Interrupted(Exception):
    pass


@pytest.fixture(scope="module")
def ceremony() -> Ceremony:
    return run_ceremony(5, 3, chain="bench-chain", election=ELECTION)


@pytest.fixture(scope="module")
def context(ceremony: Ceremony) -> TallyContext:
    return TallyContext.from_ceremony(ceremony.ctx, ceremony.commitments)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory, ceremony: Ceremony) -> Path:
    out = tmp_path_factory.mktemp("tally") / "b"
    generate_bundle(out, VOTERS, seed=SEED, block_ballots=8, processes=1, encrypted=True,
                    joint_key=ceremony.key.encode())
    return out


@pytest.fixture(scope="module")
def result(bundle: Path) -> ReplayResult:
    genesis = Genesis.from_json((bundle / GENESIS_FILE).read_bytes())
    return replay(genesis, iter_block_lines(bundle, genesis=genesis))


def _payloads(bundle: Path) -> list[bytes]:
    return [BallotEnvelope.decode(raw).payload for line in iter_block_lines(bundle)
            for raw in Block.decode(line.block).ballots]


def _naive(payloads: list[bytes]) -> tuple[EncryptedSum, ...]:
    """Every ballot decoded by the reference decoder, its ciphertexts added one by one."""
    ballots = [EncryptedBallot.decode(raw, max_size=len(raw)).ciphertexts() for raw in payloads]
    return tuple(EncryptedSum.of([b[c] for b in ballots]) for c in range(len(ballots[0])))


def _shares(ceremony: Ceremony, context: TallyContext, sums: EncryptedTally,
            trustees: tuple[int, ...]) -> list[DecryptionShare]:
    return [make_decryption_share(context, sums.sums, j, ceremony.secrets[j].share or 0) for j in trustees]


# --- the sums -------------------------------------------------------------------------
def test_the_report_has_the_sums_digest_and_no_count(bundle: Path, result: ReplayResult, ceremony: Ceremony,
                                                     context: TallyContext) -> None:
    """The replay sums every counted ballot (the reference sum of the bundle's ballots),
    the trustees' shares decrypt it to the votes cast, and the report shows a digest and
    how many were summed, and no count per choice."""
    sums = result.encrypted_sums[ELECTION]
    assert sums.sums == _naive(_payloads(bundle)) and sums.ballots == VOTERS
    outcome = decrypt_tally(context, sums.sums, _shares(ceremony, context, sums, (2, 4, 5)), sums.ballots)
    assert list(outcome.counts) == COUNTS
    report = verify_bundle(bundle)
    assert report.valid, report.failure
    entry = report.to_json_obj()["results"][ELECTION]
    assert entry == {"ballots_recorded": VOTERS, "ballots_counted": VOTERS, "phase": "open",
                     "encrypted_sum_sha256": sums.sha256(), "ballots_summed": VOTERS, "voting_closed": False}


def test_worker_processes_and_a_resumed_replay_give_the_same_sums(
    bundle: Path, result: ReplayResult, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    digest = result.encrypted_sums[ELECTION].sha256()
    # in the worker pool, 5 ballots a task (the first ones summed while the rest are read)
    monkeypatch.setattr(verifier.sums, "POOL_FROM_BALLOTS", 1)
    monkeypatch.setattr(verifier.sums, "POOL_CHUNK_BALLOTS", 5)
    report = verify_bundle(bundle, jobs=2)
    assert report.valid and report.results[ELECTION]["encrypted_sum_sha256"] == digest
    monkeypatch.undo()

    def stop_after_two(height: int, _n: int) -> None:
        if height == 2:
            raise Interrupted

    state = tmp_path / "state"
    with pytest.raises(Interrupted):
        verify_bundle(bundle, state_dir=state, on_block=stop_after_two)
    seen: list[int] = []
    resumed = verify_bundle(bundle, state_dir=state, on_block=lambda h, n: seen.append(h))
    assert seen == [3] and resumed.valid and resumed.results[ELECTION]["encrypted_sum_sha256"] == digest
    again = verify_bundle(bundle, state_dir=state)  # nothing new to replay: summed from the saved index
    assert again.results[ELECTION]["ballots_summed"] == VOTERS
    assert again.results[ELECTION]["encrypted_sum_sha256"] == digest

    # a saved index that lost a counted ballot no longer agrees with the saved counts
    db = plyvel.DB(str(state))
    key = next(db.iterator(prefix=b"u", include_value=False))
    db.delete(key)
    db.close()
    lost = verify_bundle(bundle, state_dir=state)
    assert lost.exit_code == EXIT_UNUSABLE and lost.failure is not None
    assert (lost.failure["check"], lost.failure["where"]) == ("state_mismatch", f"election {ELECTION} sums")


def test_tally_sums_writes_what_a_trustee_decrypts(bundle: Path, result: ReplayResult, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "sums.json"
    done = runner.invoke(app, ["tally", "sums", "--bundle", str(bundle), "--election", ELECTION,
                               "--out", str(out)])
    assert done.exit_code == 0, done.output
    total, obj = read_sums_file(out.read_bytes())
    assert total == result.encrypted_sums[ELECTION] and obj["tip_height"] == 3 and obj["voting_closed"] is False
    assert obj["genesis_hash"] == result.genesis_hash.hex()

    unknown = runner.invoke(app, ["tally", "sums", "--bundle", str(bundle), "--election", "no-such"])
    assert unknown.exit_code == 2 and "no encrypted election" in unknown.output

    broken = shutil.copytree(bundle, tmp_path / "broken")
    lines = (broken / BLOCKS_FILE).read_text().splitlines(keepends=True)
    (broken / BLOCKS_FILE).write_text("".join([lines[0], lines[2]]))  # a block left out
    refused = runner.invoke(app, ["tally", "sums", "--bundle", str(broken), "--election", ELECTION,
                                  "--out", str(tmp_path / "none.json")])
    assert refused.exit_code == 1 and "INVALID" in refused.output and not (tmp_path / "none.json").exists()


# --- a published result ---------------------------------------------------------------
def test_an_honest_result_and_a_wrong_share(result: ReplayResult, ceremony: Ceremony,
                                            context: TallyContext) -> None:
    """Trustees 1, 3, 5 post good shares and 4 a wrong one (2 is absent): the result
    holds on 1, 3, 5 and trustee 4 is named. Fails when shares go unchecked."""
    sums = result.encrypted_sums[ELECTION]
    posted = _shares(ceremony, context, sums, (1, 3, 5))
    posted.append(make_decryption_share(context, sums.sums, 4, (ceremony.secrets[4].share or 0) + 1))
    assert check_encrypted_result(result, ELECTION, context, posted, COUNTS) is None
    checked = result.result_checks.pop(ELECTION)
    assert checked.counts == tuple(COUNTS) and checked.used == (1, 3, 5) and set(checked.refused) == {4}
    assert "trustee 4 choice 0" in checked.refused[4]


def test_missing_shares_are_insufficient(result: ReplayResult, ceremony: Ceremony, context: TallyContext) -> None:
    sums = result.encrypted_sums[ELECTION]
    failure = check_encrypted_result(result, ELECTION, context, _shares(ceremony, context, sums, (1, 5)), COUNTS)
    assert failure is not None and (failure["check"], failure["where"]) == (
        "insufficient_shares", f"{WHERE}: decryption shares")
    assert ELECTION not in result.result_checks


@pytest.mark.parametrize("choice", [0, 2, 4])
def test_a_wrong_count_is_named(result: ReplayResult, ceremony: Ceremony, context: TallyContext,
                                choice: int) -> None:
    counts = list(COUNTS)
    counts[choice] -= 1
    shares = _shares(ceremony, context, result.encrypted_sums[ELECTION], (1, 2, 3))
    failure = check_encrypted_result(result, ELECTION, context, shares, counts)
    assert failure is not None and (failure["check"], failure["where"]) == ("bad_tally", f"{WHERE}: choice {choice}")


def test_a_ballot_dropped_from_the_sum_is_found(bundle: Path, result: ReplayResult, ceremony: Ceremony,
                                                context: TallyContext) -> None:
    """A tally made without voter 7's ballot (choice 2): its counts against the replay's
    sums are wrong at choice 2; its shares do not verify against them at all."""
    payloads = _payloads(bundle)
    dropped = EncryptedTally("bench-chain", ELECTION, VOTERS - 1, _naive(payloads[:7] + payloads[8:]))
    shares = _shares(ceremony, context, dropped, (1, 2, 3))
    counts = list(decrypt_tally(context, dropped.sums, shares, dropped.ballots).counts)
    assert counts == [5, 5, 4, 4, 4]
    failure = check_encrypted_result(result, ELECTION, context, shares, counts)
    assert failure is not None and (failure["check"], failure["where"]) == ("insufficient_shares",
                                                                             f"{WHERE}: decryption shares")
    honest = _shares(ceremony, context, result.encrypted_sums[ELECTION], (1, 2, 3))
    failure = check_encrypted_result(result, ELECTION, context, honest, counts)
    assert failure is not None and (failure["check"], failure["where"]) == ("bad_tally", f"{WHERE}: choice 2")


def test_an_election_without_sums(result: ReplayResult, context: TallyContext) -> None:
    failure = check_encrypted_result(result, "no-such", context, [], [])
    assert failure is not None and failure["check"] == "unknown_election"


# --- last-counts: a re-vote replaces the earlier ballot in the sum --------------------
CONTESTS = (Contest("Chair?", ("ada", "grace", "alan"), 1),)
SELECTIONS = ([0], [1], [2], [])  # one of three, or none
REVOTERS = 3


@lru_cache(maxsize=1)
def revote_kit() -> ElectionKit:
    return make_election(voters=REVOTERS, seed="tally-revotes", contests=CONTESTS, revoting="last-counts")


@cache
def _ballot(voter: int, selection: int, copy: int) -> bytes:
    """A distinct ballot (fresh nonces) for each copy of the same vote."""
    return revote_kit().encrypted_ballot(voter, [SELECTIONS[selection]])[0].encode()


votes = st.tuples(st.integers(0, REVOTERS - 1), st.integers(0, len(SELECTIONS) - 1))
plans = st.lists(st.lists(votes, min_size=1, max_size=3), min_size=1, max_size=4)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=plans)
def test_last_counts_sums_only_the_latest_ballots(plan: list[list[tuple[int, int]]],
                                                  tmp_path_factory: pytest.TempPathFactory) -> None:
    """Any sequence of votes and re-votes, in blocks (re-votes in one block included):
    the replay's sums are the reference sum of each voter's latest ballot, and decrypt
    to its votes. Fails when a replaced ballot stays in the sum."""
    k = revote_kit()
    work = tmp_path_factory.mktemp("revotes")
    latest: dict[int, tuple[int, bytes]] = {}
    copies: dict[tuple[int, int], int] = {}
    lines = []
    with Chain(work / "store", k.genesis) as chain:
        last = None
        for ballots in plan:
            raws = []
            for voter, selection in ballots:
                copies[voter, selection] = copies.get((voter, selection), -1) + 1
                raws.append(_ballot(voter, selection, copies[voter, selection]))
            block = next_block(k, chain.store.tip, raws, last)
            cert = certify(k, block)
            try:
                chain.commit(block, cert)
            except LedgerError:
                continue
            lines.append(block_line(block.encode(), cert.encode()))
            last = cert
            for (voter, selection), raw in zip(ballots, raws, strict=True):
                latest[voter] = (selection, BallotEnvelope.decode(raw).payload)
    (work / GENESIS_FILE).write_text(k.genesis.to_json())
    (work / BLOCKS_FILE).write_text("".join(lines))
    sums = replay(k.genesis, iter_block_lines(work, genesis=k.genesis)).encrypted_sums[k.election_id]
    assert sums.ballots == len(latest)
    if latest:
        assert sums.sums == _naive([payload for _, payload in latest.values()])
    counts = [discrete_log(decrypt_with_secret(s, k.election_secret or 0), sums.ballots) for s in sums.sums]
    assert counts == [sum(1 for sel, _ in latest.values() if SELECTIONS[sel] == [c]) for c in range(3)]


def test_counted_payloads_include_a_block_not_yet_written(tmp_path: Path) -> None:
    """Within a block (after the tally recorded it, before the index wrote it), the
    iterator gives the block's counted payloads over the stored ones, in key order.
    Fails when a stored payload wins over the block's pending one."""
    k = revote_kit()
    first = [_ballot(v, 0, 100) for v in range(2)]
    second = [_ballot(1, 1, 100), _ballot(2, 2, 100)]  # voter 1 re-votes, voter 2 votes
    with Chain(tmp_path / "store", k.genesis) as chain, DiskIndex(k.genesis, tmp_path) as index:
        tally = Tally(k.genesis, index.payloads)
        block = next_block(k, chain.store.tip, first, None)
        chain.commit(block, cert := certify(k, block))
        effects = apply_block(k.genesis, ChainTip.at_genesis(k.genesis), index, block)
        tally.record_block(effects)
        index.apply(effects)
        block2 = next_block(k, chain.store.tip, second, cert)
        effects = apply_block(k.genesis, effects.tip, index, block2)
        tally.record_block(effects)
        envelopes = [BallotEnvelope.decode(raw) for raw in [*first, *second]]
        by_credential = {e.credential: e.payload for e in envelopes}
        expected = [by_credential[c] for c in sorted(by_credential)]
        assert list(index.counted_payloads(k.election_id)) == expected  # pending
        index.apply(effects)
        assert list(index.counted_payloads(k.election_id)) == expected  # written
        assert list(index.counted_payloads("other")) == []
