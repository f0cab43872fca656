#pragma version ==0.4.3
#pragma evm-version cancun
#pragma optimize gas
"""
@title ballot-ledger election registry
@notice The EVM half of a ballot-ledger chain: every election's definition and phase,
        the per-block checkpoint of the ballot log, and the published results.
        Ballots themselves never enter the EVM; the chain's rules read `is_open` here.
@dev    Deployed at a fixed address in the genesis state. Phase changes and results
        come from the election authority (the address of the genesis authority key);
        `checkpoint` comes once per block from the system sender
        0xff..fe, with no signature, derived by every validator from the block.
        Every refusal reverts with a short machine-readable reason (the ledger error
        code the node maps it to): not_authority, not_system, wrong_phase,
        unknown_election, election_exists, bad_definition, bad_result, bad_checkpoint,
        not_trustee, already_posted, no_dealing, bad_ceremony, bad_validator_change.
        An election with trustees gets its joint key from their ceremony: each trustee
        posts a dealing (Feldman commitments with proofs of knowledge and the shares it
        encrypted to the others) and may post a complaint that a share to it is bad;
        the authority then sets the key the qualified dealings give, and only then may
        the election open. After the close each trustee posts a decryption share.
        Every validator checks what the EVM cannot (proofs, curve points, the key) before
        such a call may enter a block: contracts/engine.py.
        The authority also changes the validator set (`change_validators`): the registry
        records each change in order with the block that carried it, in force from that
        height + VALIDATOR_CHANGE_DELAY; validators refuse a change the set's rules refuse
        (ledger.validators) before it may enter a block.
"""

# Phases of an election. NONE is "no such election".
PHASE_NONE: constant(uint8) = 0
PHASE_SETUP: constant(uint8) = 1
PHASE_OPEN: constant(uint8) = 2
PHASE_CLOSED: constant(uint8) = 3
PHASE_TALLIED: constant(uint8) = 4

# Re-voting policies (the genesis names "first-counts" and "last-counts").
REVOTING_FIRST_COUNTS: constant(uint8) = 0
REVOTING_LAST_COUNTS: constant(uint8) = 1

MAX_CHOICES: constant(uint256) = 255
MAX_GATEWAYS: constant(uint256) = 32
MAX_ELECTIONS: constant(uint256) = 256
# ledger.genesis.MAX_DEFINITION_BYTES: an election's canonical definition
MAX_DEFINITION_BYTES: constant(uint256) = 65536
MAX_TRUSTEES: constant(uint256) = 64
# ledger.trustees: a dealing of 64 commitments and 63 encrypted shares is ~12 KB
MAX_DEALING_BYTES: constant(uint256) = 16384
MAX_COMPLAINT_BYTES: constant(uint256) = 256
# ledger.tally_crypto: a decryption share of 255 choices is ~25 KB
MAX_SHARE_BYTES: constant(uint256) = 32768
# ledger.validators: MAX_VALIDATOR_CHANGES, VALIDATOR_CHANGE_DELAY; ledger.genesis: names
MAX_VALIDATOR_CHANGES: constant(uint256) = 1024
VALIDATOR_CHANGE_DELAY: constant(uint64) = 2
MAX_VALIDATOR_NAME_BYTES: constant(uint256) = 64

SYSTEM: public(constant(address)) = 0xffffFFFfFFffffffffffffffFfFFFfffFFFfFFfE
AUTHORITY: public(immutable(address))


struct Election:
    question_hash: bytes32  # keccak256 of the canonical RLP of [question, [choices...], payload scheme]
    choice_count: uint8
    opens_at_ms: uint64
    closes_at_ms: uint64
    credential_root: bytes32
    credential_count: uint64
    trustees_key_hash: bytes32  # zero until trustees are set (v1 ballots are not encrypted)
    revoting: uint8
    phase: uint8
    ballots: uint64  # ballots in the log for this election, as of the last checkpoint
    definition_hash: bytes32  # keccak256 of the canonical definition (in ElectionDefined)
    threshold: uint8  # 0: no ceremony (the definition names the joint key)


struct ElectionSummary:
    election_id: bytes32
    phase: uint8
    definition_hash: bytes32
    joint_key: Bytes[33]  # empty until a ceremony election's key is set


struct ValidatorChange:
    height: uint64  # the block that carried it
    removed: Bytes[33]  # a compressed secp256k1 key, or empty
    added: Bytes[33]  # a compressed secp256k1 key, or empty
    name: String[MAX_VALIDATOR_NAME_BYTES]  # the added validator's
    power: uint64  # the added validator's


event ElectionDefined:
    election_id: indexed(bytes32)
    question_hash: bytes32
    choice_count: uint8
    opens_at_ms: uint64
    closes_at_ms: uint64
    credential_root: bytes32
    credential_count: uint64
    trustees_key_hash: bytes32
    revoting: uint8
    definition_hash: bytes32
    definition: Bytes[MAX_DEFINITION_BYTES]

event PhaseChanged:
    election_id: indexed(bytes32)
    old_phase: uint8
    new_phase: uint8

event TrusteesKeySet:
    election_id: indexed(bytes32)
    trustees_key_hash: bytes32

event GatewaySet:
    election_id: indexed(bytes32)
    key_hash: indexed(bytes32)
    authorised: bool

event Checkpoint:
    height: indexed(uint64)
    log_size: uint64
    log_root: bytes32

event ResultPublished:
    election_id: indexed(bytes32)
    counts: DynArray[uint256, MAX_CHOICES]

event DealingPosted:
    election_id: indexed(bytes32)
    trustee: uint8
    dealing_hash: bytes32
    dealing: Bytes[MAX_DEALING_BYTES]

event ComplaintPosted:
    election_id: indexed(bytes32)
    trustee: uint8
    dealer: uint8
    complaint: Bytes[MAX_COMPLAINT_BYTES]

event JointKeySet:
    election_id: indexed(bytes32)
    joint_key: Bytes[33]
    qualified: DynArray[uint8, MAX_TRUSTEES]

event ValidatorSetChanged:
    effective_height: indexed(uint64)
    height: uint64
    removed: Bytes[33]
    added: Bytes[33]
    name: String[MAX_VALIDATOR_NAME_BYTES]
    power: uint64

event DecryptionSharePosted:
    election_id: indexed(bytes32)
    trustee: uint8
    share_hash: bytes32
    share: Bytes[MAX_SHARE_BYTES]


elections: HashMap[bytes32, Election]
results: HashMap[bytes32, DynArray[uint256, MAX_CHOICES]]
gateways: HashMap[bytes32, HashMap[bytes32, bool]]
election_ids: public(DynArray[bytes32, MAX_ELECTIONS])

trustee_addresses: HashMap[bytes32, DynArray[address, MAX_TRUSTEES]]
joint_keys: HashMap[bytes32, Bytes[33]]
dealings: HashMap[bytes32, HashMap[uint8, bytes32]]  # trustee -> keccak256 of its dealing
disqualified: HashMap[bytes32, HashMap[uint8, bool]]  # dealers with an upheld complaint
decryption_shares: HashMap[bytes32, HashMap[uint8, bytes32]]  # trustee -> keccak256 of its share

last_height: public(uint64)
log_size: public(uint64)
log_root: public(bytes32)

validator_changes: DynArray[ValidatorChange, MAX_VALIDATOR_CHANGES]


@deploy
def __init__(authority: address):
    AUTHORITY = authority


@internal
@view
def _only_authority():
    assert msg.sender == AUTHORITY, "not_authority"


@internal
@view
def _phase(election_id: bytes32) -> uint8:
    p: uint8 = self.elections[election_id].phase
    assert p != PHASE_NONE, "unknown_election"
    return p


@internal
def _move(election_id: bytes32, expected: uint8, new_phase: uint8):
    assert self._phase(election_id) == expected, "wrong_phase"
    self.elections[election_id].phase = new_phase
    log PhaseChanged(election_id=election_id, old_phase=expected, new_phase=new_phase)


# --- the authority's transactions ---------------------------------------------------

@external
def define_election(
    election_id: bytes32,
    question_hash: bytes32,
    choice_count: uint8,
    opens_at_ms: uint64,
    closes_at_ms: uint64,
    credential_root: bytes32,
    credential_count: uint64,
    trustees_key_hash: bytes32,
    gateways: DynArray[bytes32, MAX_GATEWAYS],
    revoting: uint8,
    definition: Bytes[MAX_DEFINITION_BYTES],
    trustees: DynArray[address, MAX_TRUSTEES],
    threshold: uint8,
):
    """
    @notice Define a new election; it starts in phase SETUP.
    @dev    `definition` is the election's canonical encoding (ledger.genesis.ElectionDef);
            every validator refuses a transaction whose other arguments are not exactly
            the ones that definition gives (contracts.engine), which the EVM cannot check.
            Its full text lives in the ElectionDefined event; storage keeps its hash.
    """
    self._only_authority()
    assert self.elections[election_id].phase == PHASE_NONE, "election_exists"
    assert len(self.election_ids) < MAX_ELECTIONS, "bad_definition"
    assert opens_at_ms < closes_at_ms, "bad_definition"
    assert revoting <= REVOTING_LAST_COUNTS, "bad_definition"
    assert convert(threshold, uint256) <= len(trustees), "bad_definition"
    assert (threshold == 0) == (len(trustees) == 0), "bad_definition"
    definition_hash: bytes32 = keccak256(definition)
    self.elections[election_id] = Election(
        question_hash=question_hash,
        choice_count=choice_count,
        opens_at_ms=opens_at_ms,
        closes_at_ms=closes_at_ms,
        credential_root=credential_root,
        credential_count=credential_count,
        trustees_key_hash=trustees_key_hash,
        revoting=revoting,
        phase=PHASE_SETUP,
        ballots=0,
        definition_hash=definition_hash,
        threshold=threshold,
    )
    self.trustee_addresses[election_id] = trustees
    self.election_ids.append(election_id)
    log ElectionDefined(
        election_id=election_id,
        question_hash=question_hash,
        choice_count=choice_count,
        opens_at_ms=opens_at_ms,
        closes_at_ms=closes_at_ms,
        credential_root=credential_root,
        credential_count=credential_count,
        trustees_key_hash=trustees_key_hash,
        revoting=revoting,
        definition_hash=definition_hash,
        definition=definition,
    )
    log PhaseChanged(election_id=election_id, old_phase=PHASE_NONE, new_phase=PHASE_SETUP)
    for key_hash: bytes32 in gateways:
        self.gateways[election_id][key_hash] = True
        log GatewaySet(election_id=election_id, key_hash=key_hash, authorised=True)


@external
def set_trustees_key(election_id: bytes32, trustees_key_hash: bytes32):
    """
    @notice Record the hash of the trustees' joint public key (only during SETUP).
    """
    self._only_authority()
    assert self._phase(election_id) == PHASE_SETUP, "wrong_phase"
    self.elections[election_id].trustees_key_hash = trustees_key_hash
    log TrusteesKeySet(election_id=election_id, trustees_key_hash=trustees_key_hash)


@external
def set_gateway(election_id: bytes32, key_hash: bytes32, authorised: bool):
    """
    @notice Authorise or revoke a gateway key (by hash) while the election is in SETUP or OPEN.
    """
    self._only_authority()
    p: uint8 = self._phase(election_id)
    assert p == PHASE_SETUP or p == PHASE_OPEN, "wrong_phase"
    self.gateways[election_id][key_hash] = authorised
    log GatewaySet(election_id=election_id, key_hash=key_hash, authorised=authorised)


@external
def open_election(election_id: bytes32):
    self._only_authority()
    if self.elections[election_id].threshold != 0:
        assert len(self.joint_keys[election_id]) != 0, "bad_ceremony"
    self._move(election_id, PHASE_SETUP, PHASE_OPEN)


@external
def change_validators(removed: Bytes[33], added: Bytes[33], name: String[MAX_VALIDATOR_NAME_BYTES], power: uint64):
    """
    @notice Remove a validator, add one, or replace one with another (both keys given),
            from block.number + VALIDATOR_CHANGE_DELAY on.
    @dev    Validators refuse a change the set's rules refuse (a missing or duplicate key,
            fewer than 4 or more than 256 validators) before it may enter a block.
    """
    self._only_authority()
    assert len(removed) != 0 or len(added) != 0, "bad_validator_change"
    assert len(added) == 0 or power != 0, "bad_validator_change"
    assert len(self.validator_changes) < MAX_VALIDATOR_CHANGES, "bad_validator_change"
    h: uint64 = convert(block.number, uint64)
    self.validator_changes.append(ValidatorChange(height=h, removed=removed, added=added, name=name, power=power))
    log ValidatorSetChanged(
        effective_height=h + VALIDATOR_CHANGE_DELAY, height=h, removed=removed, added=added, name=name, power=power
    )


# --- the trustees' transactions ---------------------------------------------------------

@internal
@view
def _trustee(election_id: bytes32, who: address) -> uint8:
    """The sender's trustee number (1-based) in this election."""
    i: uint8 = 0
    for a: address in self.trustee_addresses[election_id]:
        i += 1
        if a == who:
            return i
    raise "not_trustee"


@internal
@view
def _in_ceremony(election_id: bytes32):
    assert self._phase(election_id) == PHASE_SETUP, "wrong_phase"
    assert self.elections[election_id].threshold != 0, "not_trustee"
    assert len(self.joint_keys[election_id]) == 0, "wrong_phase"


@external
def post_dealing(election_id: bytes32, dealing: Bytes[MAX_DEALING_BYTES]):
    """
    @notice A trustee's commitments and encrypted shares (once, during setup).
    """
    self._in_ceremony(election_id)
    i: uint8 = self._trustee(election_id, msg.sender)
    assert self.dealings[election_id][i] == empty(bytes32), "already_posted"
    h: bytes32 = keccak256(dealing)
    self.dealings[election_id][i] = h
    log DealingPosted(election_id=election_id, trustee=i, dealing_hash=h, dealing=dealing)


@external
def post_complaint(election_id: bytes32, dealer: uint8, complaint: Bytes[MAX_COMPLAINT_BYTES]):
    """
    @notice A trustee shows that `dealer`'s share to it is bad; validators admit only a
            complaint that public data upholds, so the dealer is disqualified.
    """
    self._in_ceremony(election_id)
    j: uint8 = self._trustee(election_id, msg.sender)
    assert self.dealings[election_id][dealer] != empty(bytes32), "no_dealing"
    self.disqualified[election_id][dealer] = True
    log ComplaintPosted(election_id=election_id, trustee=j, dealer=dealer, complaint=complaint)


@external
def set_joint_key(election_id: bytes32, joint_key: Bytes[33], qualified: DynArray[uint8, MAX_TRUSTEES]):
    """
    @notice End the ceremony: `qualified` must be exactly the dealers with a dealing and
            no upheld complaint, at least the threshold of them; validators check that
            `joint_key` is the product of their first commitments.
    """
    self._only_authority()
    self._in_ceremony(election_id)
    assert len(qualified) >= convert(self.elections[election_id].threshold, uint256), "bad_ceremony"
    n: uint8 = convert(len(self.trustee_addresses[election_id]), uint8)
    listed: uint256 = 0
    for i: uint8 in range(1, 65):
        if i > n:
            break
        if self.dealings[election_id][i] != empty(bytes32) and not self.disqualified[election_id][i]:
            assert listed < len(qualified) and qualified[listed] == i, "bad_ceremony"
            listed += 1
    assert listed == len(qualified), "bad_ceremony"
    self.joint_keys[election_id] = joint_key
    self.elections[election_id].trustees_key_hash = keccak256(joint_key)
    log JointKeySet(election_id=election_id, joint_key=joint_key, qualified=qualified)
    log TrusteesKeySet(election_id=election_id, trustees_key_hash=keccak256(joint_key))


@external
def post_decryption_share(election_id: bytes32, share: Bytes[MAX_SHARE_BYTES]):
    """
    @notice A trustee's share of the decryption of the closed election's sums, with its
            proofs (checked by the verifier against the sums it recomputes).
    """
    assert self._phase(election_id) == PHASE_CLOSED, "wrong_phase"
    j: uint8 = self._trustee(election_id, msg.sender)
    assert self.decryption_shares[election_id][j] == empty(bytes32), "already_posted"
    h: bytes32 = keccak256(share)
    self.decryption_shares[election_id][j] = h
    log DecryptionSharePosted(election_id=election_id, trustee=j, share_hash=h, share=share)


@external
def close_election(election_id: bytes32):
    self._only_authority()
    self._move(election_id, PHASE_OPEN, PHASE_CLOSED)


@external
def publish_result(election_id: bytes32, counts: DynArray[uint256, MAX_CHOICES]):
    """
    @notice Publish the per-choice counts of a closed election; it becomes TALLIED.
    """
    self._only_authority()
    assert self._phase(election_id) == PHASE_CLOSED, "wrong_phase"
    assert len(counts) == convert(self.elections[election_id].choice_count, uint256), "bad_result"
    self.results[election_id] = counts
    self._move(election_id, PHASE_CLOSED, PHASE_TALLIED)
    log ResultPublished(election_id=election_id, counts=counts)


# --- the per-block system call --------------------------------------------------------

@external
def checkpoint(
    height: uint64,
    log_size: uint64,
    log_root: bytes32,
    election_ids: DynArray[bytes32, MAX_ELECTIONS],
    ballots: DynArray[uint64, MAX_ELECTIONS],
):
    """
    @notice Record the ballot log after block `height`, and the ballots each election
            gained in that block. Called once per block by the system sender only.
    """
    assert msg.sender == SYSTEM, "not_system"
    assert height == self.last_height + 1, "bad_checkpoint"
    assert log_size >= self.log_size, "bad_checkpoint"
    assert len(election_ids) == len(ballots), "bad_checkpoint"
    for i: uint256 in range(len(election_ids), bound=MAX_ELECTIONS):
        e: bytes32 = election_ids[i]
        assert self.elections[e].phase != PHASE_NONE, "unknown_election"
        self.elections[e].ballots += ballots[i]
    self.last_height = height
    self.log_size = log_size
    self.log_root = log_root
    log Checkpoint(height=height, log_size=log_size, log_root=log_root)


# --- views ------------------------------------------------------------------------------

@external
@view
def phase(election_id: bytes32) -> uint8:
    """
    @notice The election's phase; 0 if there is no such election.
    """
    return self.elections[election_id].phase


@external
@view
def is_open(election_id: bytes32, time_ms: uint64) -> bool:
    """
    @notice Whether a ballot for this election is valid at `time_ms`: phase OPEN and
            the time inside the voting window [opens_at_ms, closes_at_ms).
    """
    e: Election = self.elections[election_id]
    return e.phase == PHASE_OPEN and e.opens_at_ms <= time_ms and time_ms < e.closes_at_ms


@external
@view
def election(election_id: bytes32) -> Election:
    return self.elections[election_id]


@external
@view
def result(election_id: bytes32) -> DynArray[uint256, MAX_CHOICES]:
    """
    @notice The published per-choice counts (empty until TALLIED).
    """
    return self.results[election_id]


@external
@view
def is_gateway(election_id: bytes32, key_hash: bytes32) -> bool:
    return self.gateways[election_id][key_hash]


@external
@view
def validator_change_count() -> uint256:
    return len(self.validator_changes)


@external
@view
def validator_change(i: uint256) -> ValidatorChange:
    """
    @notice The i-th change of the validator set, in chain order (ledger.validators).
    """
    return self.validator_changes[i]


@external
@view
def election_count() -> uint256:
    return len(self.election_ids)


@external
@view
def elections_summary() -> DynArray[ElectionSummary, MAX_ELECTIONS]:
    """
    @notice Every election in definition order with its phase and definition hash: what
            the chain's rules read once per state that a transaction changed.
    """
    out: DynArray[ElectionSummary, MAX_ELECTIONS] = []
    for e: bytes32 in self.election_ids:
        out.append(ElectionSummary(
            election_id=e, phase=self.elections[e].phase, definition_hash=self.elections[e].definition_hash,
            joint_key=self.joint_keys[e],
        ))
    return out


@external
@view
def ceremony(election_id: bytes32) -> (DynArray[bytes32, MAX_TRUSTEES], DynArray[bool, MAX_TRUSTEES], DynArray[bytes32, MAX_TRUSTEES]):
    """
    @notice Per trustee (in order): its dealing's hash (zero if none), whether an upheld
            complaint disqualified it, and its decryption share's hash (zero if none).
    """
    dealt: DynArray[bytes32, MAX_TRUSTEES] = []
    out: DynArray[bool, MAX_TRUSTEES] = []
    shares: DynArray[bytes32, MAX_TRUSTEES] = []
    n: uint8 = convert(len(self.trustee_addresses[election_id]), uint8)
    for i: uint8 in range(1, 65):
        if i > n:
            break
        dealt.append(self.dealings[election_id][i])
        out.append(self.disqualified[election_id][i])
        shares.append(self.decryption_shares[election_id][i])
    return dealt, out, shares
