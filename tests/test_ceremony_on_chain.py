"""The trustees' key ceremony and decryption shares as registry transactions: dealings
checked by every validator, an upheld complaint disqualifies its dealer, a false one never
enters a block, the joint key must be the one the qualified dealings give, the election
opens only with it, and any t posted shares decrypt the counted ballots."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from ballotledger.election_kit import make_election
from contracts import (
    REGISTRY_ADDRESS,
    registry,
)
from contracts.ceremony import ceremony_context
from contracts.engine import EvmExecutor, memory_state_db, sign_transaction
from ledger.assemble import assemble_block
from ledger.ballot import BallotEnvelope
from ledger.block import Block, CommitCertificate
from ledger.chain import Chain
from ledger.crypto import SigningKey
from ledger.encrypted_ballot import EncryptedBallot
from ledger.errors import LedgerError
from ledger.genesis import ENCRYPTED_SCHEME, ChainParams, Contest, ElectionDef
from ledger.rules import check_admissible, elections_at
from ledger.tally import Tally
from ledger.tally_crypto import (
    CiphertextAccumulator,
    DecryptionShare,
    ShareEntry,
    TallyContext,
    decrypt_tally,
    make_decryption_share,
)
from ledger.trustees import (
    CeremonyContext,
    Dealing,
    TrusteeSecret,
    combine_shares,
    deal_message,
    decrypt_share,
    encrypt_share,
    make_complaint,
)
from ledger.voter import encrypted_ballot
from tests.helpers import certify, write_bundle
from verifier.verify import verify_bundle

ELECTION = "union-2027"
CONTESTS = (Contest("Chair", ("ana", "bo", "cy"), 1),)


class Ceremony:
    """A chain with contracts, an election with three trustees (threshold 2), and the
    trustees' and authority's transactions, block by block."""

    def __init__(self, path: Path) -> None:
        self.kit = make_election(voters=8, seed="ceremony-chain", params=ChainParams(contracts=True))
        self.genesis = self.kit.genesis
        self.engine = EvmExecutor(self.genesis, memory_state_db())
        self.chain = Chain(path, self.genesis, self.engine)
        self.secrets = {i: TrusteeSecret.generate(i, 2) for i in (1, 2, 3)}
        self.election = ElectionDef(
            election_id=ELECTION, question="Union board", choices=(), credential_root=self.kit.credentials.root,
            credential_count=len(self.kit.credentials), opens_at_ms=self.genesis.genesis_time_ms,
            closes_at_ms=self.genesis.genesis_time_ms + 86_400_000, payload_scheme=ENCRYPTED_SCHEME,
            contests=CONTESTS, trustees=tuple(self.secrets[i].encryption_key for i in (1, 2, 3)), threshold=2,
        )
        self.nonces: dict[bytes, int] = {}
        self.last: CommitCertificate | None = None
        self.blocks: list[tuple[Block, CommitCertificate]] = []
        self.tally = Tally(self.genesis)

    @property
    def root(self) -> bytes:
        return self.chain.store.tip.state_root

    def tx(self, data: bytes, key: SigningKey | None = None) -> bytes:
        key = key or self.kit.authority_key
        nonce = self.nonces.get(key.public_key, 0)
        self.nonces[key.public_key] = nonce + 1
        return sign_transaction(key, chain_id=self.engine.chain_id, nonce=nonce, to=REGISTRY_ADDRESS, data=data)

    def trustee_tx(self, i: int, data: bytes) -> bytes:
        return self.tx(data, self.secrets[i].signing_key)

    def preflight(self, raw: bytes) -> None:
        tip = self.chain.store.tip
        self.engine.check_transaction(tip.state_root, raw, height=tip.height + 1, time_ms=tip.time_ms + 1000)

    def commit(self, txs: Sequence[bytes] = (), ballots: Sequence[bytes] = ()) -> Block:
        tip = self.chain.store.tip
        block = assemble_block(self.genesis, tip, list(ballots), time_ms=tip.time_ms + 1000,
                               proposer=self.kit.validator_keys[0].public_key, last_commit=self.last,
                               transactions=list(txs), engine=self.engine)
        self.last = certify(self.kit, block)
        self.tally.record_block(self.chain.commit(block, self.last))
        self.blocks.append((block, self.last))
        return block

    def write_bundle(self, out: Path) -> Path:
        return write_bundle(out, self.genesis, self.blocks, self.tally)

    def refused(self, code: str, data: bytes, key: SigningKey | None = None) -> None:
        """Refused at admission with ``code`` (and the signer's nonce left unused)."""
        key = key or self.kit.authority_key
        with pytest.raises(LedgerError) as info:
            self.preflight(self.tx(data, key))
        self.nonces[key.public_key] -= 1
        assert info.value.code == code, info.value


@pytest.fixture()
def run(tmp_path: Path) -> Iterator[Ceremony]:
    c = Ceremony(tmp_path / "db")
    yield c
    c.chain.close()


def _bad_dealing(c: Ceremony, dealer: int, victim: int) -> Dealing:
    """``dealer``'s honest dealing, except that its share to ``victim`` is off by one."""
    honest = deal_message(_ctx(c), c.secrets[dealer])
    wrong = encrypt_share(_ctx(c), dealer, victim, c.secrets[dealer].evaluate(victim) + 1)
    return dataclasses.replace(honest, shares=tuple(wrong if s.recipient == victim else s for s in honest.shares))


def _ctx(c: Ceremony) -> CeremonyContext:
    return ceremony_context(c.genesis.chain_id, c.election)


def test_ceremony_then_ballots_then_shares(run: Ceremony) -> None:
    assert ceremony_ballots_and_shares(run) == (1, 3, 1)


def ceremony_ballots_and_shares(run: Ceremony) -> tuple[int, ...]:
    """The whole ceremony, five ballots, the close and two trustees' shares; the counts
    those shares decrypt. Fails when a false complaint, a wrong joint key or an opening before the key is
    admitted, or when the rules encrypt to anything but the ceremony's key."""
    c, reg = run, registry()
    c.commit([c.tx(reg.define_election(c.election))])
    elections = c.engine.elections(c.root)
    assert elections.phase(ELECTION) == "setup" and elections.get(ELECTION) == c.election  # keyless
    c.refused("bad_ceremony", reg.open_election(ELECTION))  # no key yet
    voter = c.kit.voters[0]
    with pytest.raises(LedgerError, match="no key yet"):
        encrypted_ballot(voter, chain_id=c.genesis.chain_id, election=c.election,
                         proof=c.kit.credentials.proof(voter.public_key), selected=[[0]])

    # dealings: trustee 3 cheats trustee 2; a stranger and a mismatched dealing are refused
    stranger = SigningKey.from_seed(b"stranger")
    honest_1 = deal_message(_ctx(c), c.secrets[1])
    c.refused("not_trustee", reg.post_dealing(ELECTION, honest_1.encode()), stranger)
    c.refused("bad_ceremony_message", reg.post_dealing(ELECTION, honest_1.encode()), c.secrets[2].signing_key)
    c.refused("bad_ceremony_message", reg.post_dealing(ELECTION, b"\x01\x02\x03"), c.secrets[1].signing_key)
    bad_3 = _bad_dealing(c, 3, victim=2)
    c.commit([c.trustee_tx(1, reg.post_dealing(ELECTION, honest_1.encode())),
              c.trustee_tx(2, reg.post_dealing(ELECTION, deal_message(_ctx(c), c.secrets[2]).encode())),
              c.trustee_tx(3, reg.post_dealing(ELECTION, bad_3.encode()))])
    c.refused("already_posted", reg.post_dealing(ELECTION, honest_1.encode()), c.secrets[1].signing_key)
    ceremony = c.engine.ceremony(c.root, ELECTION)
    assert [d.dealer if d else None for d in ceremony.dealings] == [1, 2, 3] and ceremony.qualified() == [1, 2, 3]

    # a false complaint (trustee 1 against 2, whose share is fine) never enters a block
    false = make_complaint(_ctx(c), ceremony.dealings[1].share_to(1), c.secrets[1])  # type: ignore[union-attr]
    c.refused("bad_ceremony_message", reg.post_complaint(ELECTION, 2, false.encode()), c.secrets[1].signing_key)
    true = make_complaint(_ctx(c), bad_3.share_to(2), c.secrets[2])
    c.commit([c.trustee_tx(2, reg.post_complaint(ELECTION, 3, true.encode()))])
    ceremony = c.engine.ceremony(c.root, ELECTION)
    assert ceremony.disqualified == (False, False, True) and ceremony.qualified() == [1, 2]

    # the key: only the qualified dealers' one, with exactly them listed
    key = ceremony.joint_key()
    everyone = ceremony_key_of_all(c)
    assert everyone != key
    c.refused("bad_ceremony_message", reg.set_joint_key(ELECTION, everyone, [1, 2]))
    c.refused("bad_ceremony", reg.set_joint_key(ELECTION, key, [1, 2, 3]))
    c.refused("not_authority", reg.set_joint_key(ELECTION, key, [1, 2]), c.secrets[1].signing_key)
    c.commit([c.tx(reg.set_joint_key(ELECTION, key, [1, 2])), c.tx(reg.open_election(ELECTION))])
    keyed = c.engine.elections(c.root).get(ELECTION)
    assert keyed is not None and keyed.joint_key == key and keyed.as_defined() == c.election
    # the block that set the key says so, as a block that defines an election does: what
    # follows the chain (its definitions, the verifier's workers) learns the key from it
    assert c.chain.definitions[ELECTION] == keyed
    c.refused("wrong_phase", reg.post_dealing(ELECTION, honest_1.encode()), c.secrets[1].signing_key)

    # ballots under the ceremony's key
    picks = [[0], [1], [1], [2], [1]]
    ballots = []
    for i, pick in enumerate(picks):
        key_i = c.kit.voters[i]
        envelope, _ = encrypted_ballot(key_i, chain_id=c.genesis.chain_id, election=keyed,
                                       proof=c.kit.credentials.proof(key_i.public_key), selected=[pick])
        ballots.append(envelope.encode())
    tip = c.chain.store.tip
    check_admissible(c.genesis, ballots[0], tip.time_ms + 1000, elections=elections_at(c.genesis, c.root, c.engine))
    c.commit(ballots=ballots)
    early = DecryptionShare(1, (ShareEntry(None, None),) * 3).encode()  # well formed, but voting is open
    c.refused("wrong_phase", reg.post_decryption_share(ELECTION, early), c.secrets[1].signing_key)
    c.commit([c.tx(reg.close_election(ELECTION))])

    # decryption: trustees 1 and 3 post (3 was disqualified as a dealer but holds a share of
    # the key all the same: its share is x_3 from the qualified dealings), 2 is absent
    accumulator = CiphertextAccumulator(3)
    for raw in ballots:
        payload = EncryptedBallot.decode(BallotEnvelope.decode(raw).payload, max_size=1 << 16)
        accumulator.add_ciphertexts(payload.ciphertexts())
    sums = accumulator.sums()
    tally_ctx = TallyContext.from_ceremony(_ctx(c), ceremony.qualified_commitments())
    assert tally_ctx.joint_key == key
    posted = []
    for j in (1, 3):
        x_j = final_share(c, ceremony, j)
        share = make_decryption_share(tally_ctx, sums, j, x_j)
        posted.append(share)
        c.commit([c.trustee_tx(j, reg.post_decryption_share(ELECTION, share.encode()))])
    c.refused("already_posted", reg.post_decryption_share(ELECTION, posted[0].encode()), c.secrets[1].signing_key)
    wrong_width = dataclasses.replace(posted[0], entries=posted[0].entries[:2])
    c.refused("bad_ceremony_message", reg.post_decryption_share(ELECTION, wrong_width.encode()),
              c.secrets[2].signing_key)
    on_chain = c.engine.ceremony(c.root, ELECTION).shares
    assert on_chain[0] == posted[0] and on_chain[1] is None and on_chain[2] == posted[1]
    outcome = decrypt_tally(tally_ctx, sums, [s for s in on_chain if s is not None], ballots=len(ballots))
    assert outcome.counts == (1, 3, 1) and outcome.used == (1, 3)
    return outcome.counts


def test_the_verifier_decrypts_the_published_result_itself(run: Ceremony, tmp_path: Path) -> None:
    """Fails when the verifier takes an encrypted election's published counts on trust."""
    counts = ceremony_ballots_and_shares(run)
    reg = registry()
    before_publish, tip_before = list(run.blocks), run.chain.store.tip
    run.commit([run.tx(reg.publish_result(ELECTION, list(counts)))])
    report = verify_bundle(run.write_bundle(tmp_path / "honest"))
    assert report.valid, report.failure
    entry = report.results[ELECTION]
    assert entry["decrypted_counts"] == [1, 3, 1] and entry["decryption_shares_used"] == [1, 3]

    # the same chain, but the authority publishes one vote moved from bo to cy: a valid
    # block (the registry cannot count), built on the state before the honest result
    run.blocks = before_publish
    tip = tip_before
    run.nonces[run.kit.authority_key.public_key] -= 1
    lie = assemble_block(run.genesis, tip, [], time_ms=tip.time_ms + 1000,
                         proposer=run.kit.validator_keys[0].public_key, last_commit=before_publish[-1][1],
                         transactions=[run.tx(reg.publish_result(ELECTION, [1, 2, 2]))], engine=run.engine)
    run.blocks.append((lie, certify(run.kit, lie)))
    report = verify_bundle(run.write_bundle(tmp_path / "lie"))
    assert not report.valid and report.failure is not None
    where = f"result of election {ELECTION}: choice 1"
    assert (report.failure["check"], report.failure["where"]) == ("bad_tally", where), report.failure


def ceremony_key_of_all(c: Ceremony) -> bytes:
    from ledger.trustees import joint_key

    ceremony = c.engine.ceremony(c.root, ELECTION)
    return joint_key([d.commitments for d in ceremony.dealings if d is not None]).encode()


def final_share(c: Ceremony, ceremony: object, j: int) -> int:
    """Trustee j's share of the key: the shares the qualified dealers sent it (its own
    evaluation where it is one of them)."""
    from contracts.ceremony import Ceremony as OnChain

    assert isinstance(ceremony, OnChain)
    received = []
    for i in ceremony.qualified():
        if i == j:
            received.append(c.secrets[j].evaluate(j))
        else:
            dealing = ceremony.dealings[i - 1]
            assert dealing is not None
            received.append(decrypt_share(_ctx(c), dealing.share_to(j), c.secrets[j]))
    return combine_shares(received)


def test_a_genesis_election_with_trustees_waits_for_its_ceremony(tmp_path: Path) -> None:
    c = Ceremony(tmp_path / "x")
    c.chain.close()
    genesis = dataclasses.replace(c.genesis, elections=(*c.genesis.elections, c.election))
    engine = EvmExecutor(genesis, memory_state_db())
    elections = engine.elections(engine.genesis_state_root())
    assert elections.phase(ELECTION) == "setup" and elections.phase(c.kit.election_id) == "open"
    with pytest.raises(LedgerError, match="define it without"):
        dataclasses.replace(genesis, elections=(c.election.with_joint_key(c.secrets[1].encryption_key),))
