"""node.peerlink: the handshake state machines and sealed frames, pure (no sockets).

The relay and replay tests here play the attacker with the same pure objects; the one
over real sockets is in tests/test_transport.py.
"""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from hypothesis import given
from hypothesis import strategies as st

from ledger.crypto import SigningKey
from ledger.hashing import keccak256
from node.frames import (
    BadFrame,
    ConnectedToSelf,
    Frame,
    FrameType,
    HandshakeFailed,
    HostBudget,
    OversizedFrame,
)
from node.peerlink import (
    LENGTH_SIZE,
    TAG_SIZE,
    Finish,
    FrameOpener,
    FrameSealer,
    Init,
    Initiator,
    LinkCorrupted,
    LinkParams,
    Responder,
    Response,
    Role,
    Session,
    ephemeral_public,
    signed_digest,
    transcript_hash,
)

CHAIN = "test-chain"
GENESIS = keccak256(b"test genesis")
KEYS = [SigningKey.from_seed(bytes([i])) for i in range(6)]
VALIDATORS = {k.public_key: f"v{i}" for i, k in enumerate(KEYS[:4])}
OUTSIDER = KEYS[5]
MAX_FRAME = 4096


def params(i: int, *, key: SigningKey | None = None, chain: str = CHAIN,
           genesis: bytes = GENESIS) -> LinkParams:
    return LinkParams(key or KEYS[i], chain, genesis, VALIDATORS, MAX_FRAME)


def eph(label: str) -> bytes:
    return keccak256(label.encode())  # deterministic X25519 secrets; any 32 bytes are one


def handshake(i: int = 0, r: int = 1, tag: str = "s") -> tuple[Session, Session]:
    initiator = Initiator(params(i), eph(tag + "i"))
    responder = Responder(params(r), eph(tag + "r"))
    assert responder.on_init(initiator.init()) == KEYS[i].public_key
    finish, i_session = initiator.on_response(responder.respond())
    return i_session, responder.on_finish(finish)


def test_handshake_gives_both_sides_one_session_with_the_right_peer() -> None:
    i_side, r_side = handshake(0, 1)
    assert i_side.peer_key == KEYS[1].public_key and r_side.peer_key == KEYS[0].public_key
    assert i_side.transcript == r_side.transcript
    wire = i_side.sealer.seal(FrameType.CONSENSUS, b"vote") + i_side.sealer.seal(FrameType.PING, b"")
    assert r_side.opener.feed(wire) == [Frame(FrameType.CONSENSUS, b"vote"), Frame(FrameType.PING, b"")]
    assert i_side.opener.feed(r_side.sealer.seal(FrameType.TXS, b"b")) == [Frame(FrameType.TXS, b"b")]
    assert b"vote" not in wire  # encrypted, not just authenticated


def test_keys_differ_per_session() -> None:
    """Fails when the session keys do not depend on the ephemerals (e.g. static ECDH only)."""
    first, _ = handshake(tag="one")
    _, second = handshake(tag="two")
    assert first.transcript != second.transcript
    with pytest.raises(LinkCorrupted):  # a frame of session one means nothing in session two
        second.opener.feed(first.sealer.seal(FrameType.CONSENSUS, b"vote"))


# --- every single bit of the handshake matters ------------------------------------------
def run_flipped(message: int, bit: int) -> tuple[bool, bool]:
    """Run a handshake with one bit of message 0 (INIT), 1 (RESPONSE) or 2 (FINISH)
    flipped on the wire; return which sides ended with a session."""
    initiator = Initiator(params(0), eph("fi"))
    responder = Responder(params(1), eph("fr"))
    i_ok = r_ok = False

    def flip(index: int, data: bytes) -> bytes:
        if index != message:
            return data
        out = bytearray(data)
        out[(bit // 8) % len(out)] ^= 1 << (bit % 8)
        return bytes(out)

    try:
        responder.on_init(flip(0, initiator.init()))
        response = flip(1, responder.respond())
        finish, _ = initiator.on_response(response)
        i_ok = True
        responder.on_finish(flip(2, finish))
        r_ok = True
    except HandshakeFailed:
        pass
    return i_ok, r_ok


@given(message=st.integers(0, 2), bit=st.integers(0, 8 * 300))
def test_any_flipped_bit_in_the_handshake_is_refused(message: int, bit: int) -> None:
    """Fails when any field (ephemeral, static key, chain, genesis, version, signature) is
    left out of the transcript: the flip would then go unnoticed by both sides."""
    i_ok, r_ok = run_flipped(message, bit)
    assert not r_ok  # the responder never accepts a handshake that was tampered with
    if message == 2:
        assert i_ok  # the initiator finished before the flip; the responder refused it
    else:
        assert not i_ok  # refused by the receiver of the flipped message, or of the next


def test_every_bit_of_every_handshake_message_exhaustively() -> None:
    sizes = [len(Init(1, CHAIN, GENESIS, KEYS[0].public_key, bytes(32)).encode()),
             len(Response(KEYS[1].public_key, bytes(32), bytes(64)).encode()),
             len(Finish(bytes(64)).encode())]
    for message, size in enumerate(sizes):
        for bit in range(8 * size):
            i_ok, r_ok = run_flipped(message, bit)
            assert not r_ok and i_ok == (message == 2), (message, bit)


# --- relay, reflection, replay, misbinding ----------------------------------------------
def test_relayed_responder_signature_does_not_finish_a_handshake() -> None:
    """The attack that broke the old handshake, replayed against this one: M claims to be
    v0 to v1, and gets v0 to sign for it by dialling v0 as well (v0 answers as a
    responder, the only thing it does for a stranger). Fails when the role label or the
    ephemerals are left out of the signed transcript."""
    target = Responder(params(1), eph("target"))
    claimed = Init(1, CHAIN, GENESIS, KEYS[0].public_key, ephemeral_public(eph("mallory")))
    target.on_init(claimed.encode())
    response = Response.decode(target.respond())
    # M dials v0, presenting v1's own ephemeral under v1's name: v0 signs as RESPONDER.
    victim = Responder(params(0), eph("victim"))
    victim.on_init(Init(1, CHAIN, GENESIS, KEYS[1].public_key, response.ephemeral).encode())
    victims_signature = Response.decode(victim.respond()).signature
    with pytest.raises(HandshakeFailed, match="does not verify"):
        target.on_finish(Finish(victims_signature).encode())


def test_faithful_relay_gives_the_relay_no_usable_link() -> None:
    """M forwards every handshake byte unchanged: v0 and v1 get a link, and M (which saw
    everything on the wire) cannot make a frame that v1 opens, nor read one. Fails when
    session keys are derived from public values only."""
    i_side, _ = handshake(0, 1, tag="relay")
    # M's best guesses: keys from what it saw (public ephemerals, transcript).
    for guess in (i_side.transcript, keccak256(i_side.transcript), bytes(32)):
        forged = FrameSealer(guess, MAX_FRAME).seal(FrameType.CONSENSUS, b"malformed vote")
        fresh = handshake(0, 1, tag="relay")[1]
        with pytest.raises(LinkCorrupted):
            fresh.opener.feed(forged)
    assert b"secret ballot" not in i_side.sealer.seal(FrameType.TXS, b"secret ballot")


def test_replayed_handshake_messages_are_refused() -> None:
    """Fails when a side's fresh ephemeral is not under the other side's signature."""
    initiator = Initiator(params(0), eph("old-i"))
    responder = Responder(params(1), eph("old-r"))
    init = initiator.init()
    responder.on_init(init)
    old_response = responder.respond()
    old_finish, _ = initiator.on_response(old_response)
    # Replay the initiator's side to a new responder connection (fresh ephemeral).
    later = Responder(params(1), eph("new-r"))
    later.on_init(init)
    later.respond()
    with pytest.raises(HandshakeFailed, match="does not verify"):
        later.on_finish(old_finish)
    # Replay the responder's side to a new initiator connection.
    with pytest.raises(HandshakeFailed, match="does not verify"):
        Initiator(params(0), eph("new-i")).on_response(old_response)


def test_a_validator_cannot_claim_another_validators_handshake() -> None:
    """Identity misbinding: validator v2 relays v0's INIT to v1 under its own name. v0
    refuses v1's RESPONSE (it names v2), so v1's link 'to v2' has nobody on it who can
    open or seal a frame. Fails when S_I is left out of the transcript."""
    initiator = Initiator(params(0), eph("mb-i"))
    responder = Responder(params(1), eph("mb-r"))
    honest = Init.decode(initiator.init())
    relabelled = Init(honest.version, honest.chain_id, honest.genesis_hash,
                      KEYS[2].public_key, honest.ephemeral)
    assert responder.on_init(relabelled.encode()) == KEYS[2].public_key
    with pytest.raises(HandshakeFailed, match="does not verify"):
        initiator.on_response(responder.respond())


def test_checks_before_any_cryptography() -> None:
    def init_from(key: SigningKey, **kw: str | bytes) -> bytes:
        p = LinkParams(key, str(kw.get("chain", CHAIN)), bytes(kw.get("genesis", GENESIS)),
                       VALIDATORS, MAX_FRAME)
        return Initiator(p, eph("c")).init()

    with pytest.raises(HandshakeFailed, match="not a validator"):
        Responder(params(1), eph("r")).on_init(init_from(OUTSIDER))
    with pytest.raises(HandshakeFailed, match="is on chain"):
        Responder(params(1), eph("r")).on_init(init_from(KEYS[0], chain="other"))
    with pytest.raises(HandshakeFailed, match="has genesis"):
        Responder(params(1), eph("r")).on_init(init_from(KEYS[0], genesis=keccak256(b"x")))
    with pytest.raises(ConnectedToSelf):
        Responder(params(1), eph("r")).on_init(init_from(KEYS[1]))
    # A RESPONSE in our own name is a lie (a listener never answers its own key): refused,
    # but not as a self-dial, which would make the transport stop dialling that address.
    liar = Responder(params(1), eph("r"))
    liar.on_init(Initiator(params(0), eph("i")).init())
    with pytest.raises(HandshakeFailed, match="names our own key") as info:
        Initiator(params(1), eph("i")).on_response(liar.respond())
    assert not isinstance(info.value, ConnectedToSelf)
    wrong_version = Init(2, CHAIN, GENESIS, KEYS[0].public_key, bytes(32)).encode()
    with pytest.raises(HandshakeFailed, match="version 2"):
        Responder(params(1), eph("r")).on_init(wrong_version)
    with pytest.raises(HandshakeFailed, match="malformed INIT"):
        Responder(params(1), eph("r")).on_init(init_from(KEYS[0]) + b"\x00")
    out_of_order = Responder(params(1), eph("r"))
    with pytest.raises(HandshakeFailed, match="out of order"):
        out_of_order.on_finish(Finish(bytes(64)).encode())
    with pytest.raises(HandshakeFailed, match="out of order"):
        out_of_order.respond()
    # A low-order X25519 point as the ephemeral gives the all-zero secret: refused even
    # with a valid signature (v0 itself could be the one sending it).
    responder = Responder(params(1), eph("lo-r"))
    low_order = Init(1, CHAIN, GENESIS, KEYS[0].public_key, bytes(32))
    responder.on_init(low_order.encode())
    response = Response.decode(responder.respond())
    transcript = transcript_hash(low_order, response.static_key, response.ephemeral)
    signature = KEYS[0].sign(signed_digest(transcript, Role.INITIATOR))
    with pytest.raises(HandshakeFailed, match="unusable"):
        responder.on_finish(Finish(signature).encode())


# --- sealed frames ----------------------------------------------------------------------
def stream(session: Session, count: int) -> tuple[list[Frame], list[bytes]]:
    frames = [Frame(FrameType.CONSENSUS, b"frame %d " % n + b"x" * (n * 37 % 300)) for n in range(count)]
    return frames, [session.sealer.seal(f.type, f.payload) for f in frames]


@given(data=st.data())
def test_any_flipped_bit_in_a_sealed_frame_is_refused(data: st.DataObject) -> None:
    """Fails when a frame whose tag does not check is skipped instead of refused. (Taking
    the length out of the associated data does not make it fail: a changed length moves
    the frame's boundaries, so the tag fails anyway; the length is bound all the same, so
    that this never rests on that accident.)"""
    i_side, r_side = handshake(tag="bits")
    frames, wires = stream(i_side, 6)
    target = data.draw(st.integers(0, 5))
    bit = data.draw(st.integers(0, 8 * len(wires[target]) - 1))
    corrupted = bytearray(wires[target])
    corrupted[bit // 8] ^= 1 << (bit % 8)
    opener = r_side.opener
    assert opener.feed(b"".join(wires[:target])) == frames[:target]
    got: list[Frame] = []
    with pytest.raises(LinkCorrupted):
        got += opener.feed(bytes(corrupted))
        got += opener.feed(b"".join(wires[target + 1 :]))
        got += opener.feed(bytes(MAX_FRAME + TAG_SIZE + LENGTH_SIZE))  # a longer length waits
    assert got == []
    with pytest.raises(LinkCorrupted):  # poisoned for good
        opener.feed(wires[target])


def test_replay_reorder_drop_and_reflection_are_refused() -> None:
    cases = {
        "replay": lambda w: w[0] + w[1] + w[1],
        "reorder": lambda w: w[0] + w[2] + w[1],
        "drop": lambda w: w[0] + w[2],
    }
    for name, build in cases.items():
        i_side, r_side = handshake(tag=name)
        _, wires = stream(i_side, 3)
        with pytest.raises(LinkCorrupted):
            r_side.opener.feed(build(wires))
    i_side, r_side = handshake(tag="reflect")
    _, wires = stream(i_side, 1)
    with pytest.raises(LinkCorrupted):  # sent back to its sender: the other direction's key
        i_side.opener.feed(wires[0])


def test_any_split_of_a_sealed_stream_opens_to_the_same_frames() -> None:
    i_side, r_side = handshake(tag="split")
    frames, wires = stream(i_side, 20)
    data = b"".join(wires)
    got: list[Frame] = []
    for start in range(0, len(data), 7):
        got += r_side.opener.feed(data[start : start + 7])
    assert got == frames and r_side.opener.buffered == 0


def test_frame_sizes_and_inner_type() -> None:
    i_side, r_side = handshake(tag="sizes")
    with pytest.raises(OversizedFrame):
        i_side.sealer.seal(FrameType.CONSENSUS, bytes(MAX_FRAME))
    biggest = i_side.sealer.seal(FrameType.CONSENSUS, bytes(MAX_FRAME - 1))
    assert r_side.opener.feed(biggest)[0].payload == bytes(MAX_FRAME - 1)
    with pytest.raises(LinkCorrupted, match="length"):  # refused on the 4 bytes alone
        r_side.opener.feed((MAX_FRAME + TAG_SIZE + 1).to_bytes(4, "big"))
    with pytest.raises(LinkCorrupted, match="length"):
        handshake(tag="tiny")[1].opener.feed(TAG_SIZE.to_bytes(4, "big"))
    # An unknown type inside a frame that authenticates is the peer's own doing.
    key = b"\x01" * 32
    header = (2 + TAG_SIZE).to_bytes(4, "big")
    odd = header + ChaCha20Poly1305(key).encrypt(bytes(12), b"\xeex", header)
    with pytest.raises(BadFrame, match="unknown frame type 238") as info:
        FrameOpener(key, MAX_FRAME).feed(odd)
    assert not isinstance(info.value, LinkCorrupted)


def test_host_budget() -> None:
    budget = HostBudget(rate=1, burst=3, failure_cost=2, max_open_per_host=2,
                        max_open_total=3, max_hosts=2)
    assert budget.admit("a", 0.0) is None and budget.admit("a", 0.0) is None
    assert "already in handshake" in str(budget.admit("a", 0.0))  # per host
    assert budget.admit("b", 0.0) is None
    assert "already in handshake" in str(budget.admit("c", 0.0))  # in total
    budget.release("a", 0.0, failed=True)  # a: 1 token left, minus 2 for the failure
    budget.release("a", 0.0, failed=False)
    assert "too many handshakes" in str(budget.admit("a", 0.5))
    assert budget.admit("a", 2.0) is None  # refilled at 1/s
    budget.release("a", 2.0, failed=False)
    budget.release("b", 2.0, failed=False)
    assert budget.admit("c", 2.0) is None  # b is idle (bucket full again): forgotten
    assert "too many hosts" in str(budget.admit("d", 2.0))  # a still refilling, c open
    budget.release("c", 2.0, failed=False)
    assert budget.admit("d", 10.0) is None
    assert budget.open_total == 1
