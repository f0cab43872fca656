"""The peer link's cryptography: an authenticated key exchange, then sealed frames.

Pure: no sockets, no clock, no randomness of its own (the caller passes each ephemeral
secret in), so every step is testable byte for byte. ``node/transport.py`` moves the
bytes; ``node/frames.py`` owns the frame types and the unencrypted handshake framing.

The exchange (SIGMA-style, signatures over the whole transcript; the dialler initiates)::

    I -> R  INIT      version, chain id, genesis hash, S_I, E_I
    R -> I  RESPONSE  S_R, E_R, sig_R( H(transcript) , "responder")
    I -> R  FINISH    sig_I( H(transcript) , "initiator")

    transcript = version, chain id, genesis hash, S_I, E_I, S_R, E_R
    keys       = HKDF-SHA256(ikm = X25519(e_I, e_R), salt = H(transcript)) -> k_I->R, k_R->I

``S_*`` are the validators' secp256k1 keys from genesis, ``E_*`` fresh X25519 ephemerals
(one per connection, discarded after it), ``H`` the project's tagged keccak256.

What each binding defeats:

* **Both ephemerals under both signatures.** The old HELLO_ACK signed only the other side's
  nonce, so a signature made on one connection could be carried to another (that is how a
  relay made a validator log "connected to validator-1" and then got validator-1 banned).
  Here a signature covers its own side's fresh ephemeral, which the signer generated and
  keeps, and the session keys come from those same ephemerals: a relaying party that
  forwards the messages unchanged learns nothing (it has neither ephemeral secret) and
  every frame after the handshake is sealed under keys it does not know; one that swaps in
  its own ephemeral gets a signature nobody else will accept, because the honest end's
  transcript holds a different ephemeral.
* **Both static keys under both signatures.** Stops identity misbinding (unknown key
  share): a validator M that relays I's INIT to R under its own name cannot make I accept
  R's RESPONSE (R signed a transcript naming S_M, I checks one naming S_I), and the link R
  then holds for "M" runs under keys only I and R could compute, with I gone.
* **Role labels.** A responder's signature cannot be reflected as an initiator's FINISH
  (or the other way), even between the same two keys.
* **Chain id, genesis hash, protocol version.** A signature made for one chain, one
  genesis or one protocol version is worthless on another.
* **Transcript hash as the HKDF salt.** The keys are bound to everything both signed, not
  just to the Diffie-Hellman output; both directions get their own key.

The responder signs before it knows the initiator holds S_I (anyone can ask for a
RESPONSE naming any validator). That is harmless here: the signature names the asker's
ephemeral, so it is useless on any other connection. It costs the responder a signature
and an X25519 exchange, which is why the transport bounds handshake frames by size and
each remote host by a handshake rate before any of this runs.

Identities are sent in the clear (SIGMA-I would encrypt them): validator keys are public
in genesis, so there is nothing to hide.

Followers (``LinkParams.outsiders``) run the same exchange with a key of their own that is
in no validator set. The link proves only that the peer holds that key, so it can never
pass for a validator: what counts as a vote is a signature by a key of the set in force,
checked in consensus, never the link a message came by; and the transport keeps an
outsider's link to what a follower needs (``node.transport``).

Frames after the handshake (ChaCha20-Poly1305, RFC 8439)::

    length (4 bytes, big-endian) | ciphertext of (type byte | payload) | tag (16 bytes)

``length`` counts ciphertext and tag and is the AEAD's associated data. The nonce is a
per-direction counter (4 zero bytes, then 8 bytes big-endian), never sent: a replayed,
reordered, dropped or reflected frame fails its tag, as does any flipped bit. Only a cut
at the end of the stream cannot be told from a lost connection, and is treated as one
(no message's meaning depends on the frames after it).

A frame whose tag fails, or whose length is impossible, was not proven to come from the
peer (anyone on the path can write such bytes): it drops the connection and is charged to
nobody (:class:`LinkCorrupted`). A frame that opens is the peer's own, so anything wrong
inside it is its misbehaviour (:class:`~node.frames.BadFrame`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ledger import codec
from ledger.crypto import PUBLIC_KEY_SIZE, SIGNATURE_SIZE, SigningKey, is_valid_signature
from ledger.errors import BadEncoding
from ledger.hashing import HASH_SIZE, tag, tagged_hash
from node.frames import (
    MAX_CHAIN_ID_SIZE,
    BadFrame,
    ConnectedToSelf,
    Frame,
    FrameType,
    HandshakeFailed,
    OversizedFrame,
    TransportError,
)

VERSION = 1
EPHEMERAL_SIZE = 32  # X25519 public key and secret
KEY_SIZE = 32
TAG_SIZE = 16
LENGTH_SIZE = 4
MAX_COUNTER = 2**64 - 1
TRANSCRIPT_TAG = tag("peerlink/transcript/v1")
SIGNATURE_TAG = tag("peerlink/signature/v1")
KEYS_INFO = b"ballot-ledger/peerlink/v1 session keys"


class Role(Enum):
    INITIATOR = b"initiator"
    RESPONDER = b"responder"


class LinkCorrupted(TransportError):
    """Bytes on an established link that do not open under the session key."""

    code = "link_corrupted"


# --- handshake messages ----------------------------------------------------------------
def _decode_fields(payload: bytes, count: int, what: str) -> list[codec.Item]:
    try:
        return codec.as_list(codec.decode(payload), count, what)
    except BadEncoding as exc:
        raise HandshakeFailed(f"malformed {what}: {exc.message}") from exc


@dataclass(frozen=True)
class Init:
    version: int
    chain_id: str
    genesis_hash: bytes
    static_key: bytes
    ephemeral: bytes

    def encode(self) -> bytes:
        return codec.encode([
            codec.int_bytes(self.version), self.chain_id.encode(), self.genesis_hash,
            self.static_key, self.ephemeral,
        ])

    @classmethod
    def decode(cls, payload: bytes) -> Init:
        f = _decode_fields(payload, 5, "INIT")
        try:
            return cls(
                version=codec.as_int(f[0], "init version"),
                chain_id=codec.as_text(f[1], "init chain id", max_size=MAX_CHAIN_ID_SIZE),
                genesis_hash=codec.as_bytes(f[2], "init genesis hash", size=HASH_SIZE),
                static_key=codec.as_bytes(f[3], "init static key", size=PUBLIC_KEY_SIZE),
                ephemeral=codec.as_bytes(f[4], "init ephemeral", size=EPHEMERAL_SIZE),
            )
        except BadEncoding as exc:
            raise HandshakeFailed(f"malformed INIT: {exc.message}") from exc


@dataclass(frozen=True)
class Response:
    static_key: bytes
    ephemeral: bytes
    signature: bytes

    def encode(self) -> bytes:
        return codec.encode([self.static_key, self.ephemeral, self.signature])

    @classmethod
    def decode(cls, payload: bytes) -> Response:
        f = _decode_fields(payload, 3, "RESPONSE")
        try:
            return cls(
                static_key=codec.as_bytes(f[0], "response static key", size=PUBLIC_KEY_SIZE),
                ephemeral=codec.as_bytes(f[1], "response ephemeral", size=EPHEMERAL_SIZE),
                signature=codec.as_bytes(f[2], "response signature", size=SIGNATURE_SIZE),
            )
        except BadEncoding as exc:
            raise HandshakeFailed(f"malformed RESPONSE: {exc.message}") from exc


@dataclass(frozen=True)
class Finish:
    signature: bytes

    def encode(self) -> bytes:
        return codec.encode([self.signature])

    @classmethod
    def decode(cls, payload: bytes) -> Finish:
        f = _decode_fields(payload, 1, "FINISH")
        try:
            return cls(codec.as_bytes(f[0], "finish signature", size=SIGNATURE_SIZE))
        except BadEncoding as exc:
            raise HandshakeFailed(f"malformed FINISH: {exc.message}") from exc


# --- the bindings ----------------------------------------------------------------------
def transcript_hash(init: Init, responder_key: bytes, responder_ephemeral: bytes) -> bytes:
    """H(version, chain id, genesis hash, S_I, E_I, S_R, E_R): what both sides sign."""
    fields = [
        codec.int_bytes(init.version), init.chain_id.encode(), init.genesis_hash,
        init.static_key, init.ephemeral, responder_key, responder_ephemeral,
    ]
    return tagged_hash(TRANSCRIPT_TAG, codec.encode(fields))


def signed_digest(transcript: bytes, role: Role) -> bytes:
    return tagged_hash(SIGNATURE_TAG, role.value + transcript)


def ephemeral_public(secret: bytes) -> bytes:
    return X25519PrivateKey.from_private_bytes(secret).public_key().public_bytes_raw()


def _shared_secret(secret: bytes, their_ephemeral: bytes) -> bytes:
    try:
        shared = X25519PrivateKey.from_private_bytes(secret).exchange(
            X25519PublicKey.from_public_bytes(their_ephemeral)
        )
    except ValueError as exc:  # a low-order point gives the all-zero secret
        raise HandshakeFailed("the peer's ephemeral key is unusable") from exc
    if shared == bytes(len(shared)):
        raise HandshakeFailed("the peer's ephemeral key is unusable")
    return shared


def _session(secret: bytes, their_ephemeral: bytes, transcript: bytes, role: Role,
             peer_key: bytes, max_frame_size: int) -> Session:
    okm = HKDF(
        algorithm=hashes.SHA256(), length=2 * KEY_SIZE, salt=transcript, info=KEYS_INFO
    ).derive(_shared_secret(secret, their_ephemeral))
    i_to_r, r_to_i = okm[:KEY_SIZE], okm[KEY_SIZE:]
    send, recv = (i_to_r, r_to_i) if role is Role.INITIATOR else (r_to_i, i_to_r)
    return Session(
        peer_key=peer_key, transcript=transcript,
        sealer=FrameSealer(send, max_frame_size), opener=FrameOpener(recv, max_frame_size),
    )


@dataclass(frozen=True)
class LinkParams:
    """What both ends must agree on, and who may connect."""

    key: SigningKey
    chain_id: str
    genesis_hash: bytes
    validators: Mapping[bytes, str]
    max_frame_size: int
    # Whether a key outside the validator set may link at all (a follower: the transport
    # decides which ones, and what they may send).
    outsiders: bool = False


def _check_peer_key(params: LinkParams, peer_key: bytes, role: Role) -> None:
    if peer_key == params.key.public_key:
        # A listener never answers its own key, so only an INIT can be us; a RESPONSE
        # naming our key is somebody's lie, which must not stop us dialling the address.
        if role is Role.INITIATOR:
            raise ConnectedToSelf("the peer has our own key (dialled ourselves?)")
        raise HandshakeFailed("RESPONSE names our own key")
    if peer_key not in params.validators and not params.outsiders:
        raise HandshakeFailed(f"key {peer_key.hex()} is not a validator")


# --- the two state machines ------------------------------------------------------------
class Initiator:
    """The dialler's side: ``init()``, then ``on_response(payload)`` -> (FINISH, session)."""

    def __init__(self, params: LinkParams, ephemeral_secret: bytes) -> None:
        self._params = params
        self._secret = ephemeral_secret
        self._init = Init(
            VERSION, params.chain_id, params.genesis_hash, params.key.public_key,
            ephemeral_public(ephemeral_secret),
        )
        self._done = False

    @property
    def ephemeral(self) -> bytes:
        return self._init.ephemeral

    def init(self) -> bytes:
        return self._init.encode()

    def on_response(self, payload: bytes) -> tuple[bytes, Session]:
        if self._done:
            raise HandshakeFailed("a second RESPONSE")
        self._done = True
        response = Response.decode(payload)
        _check_peer_key(self._params, response.static_key, Role.RESPONDER)
        transcript = transcript_hash(self._init, response.static_key, response.ephemeral)
        digest = signed_digest(transcript, Role.RESPONDER)
        if not is_valid_signature(response.static_key, digest, response.signature):
            raise HandshakeFailed("RESPONSE signature does not verify")
        session = _session(self._secret, response.ephemeral, transcript, Role.INITIATOR,
                           response.static_key, self._params.max_frame_size)
        signature = self._params.key.sign(signed_digest(transcript, Role.INITIATOR))
        return Finish(signature).encode(), session


class Responder:
    """The accepting side: ``on_init(payload)`` -> claimed key (no crypto yet), then
    ``respond()`` -> RESPONSE, then ``on_finish(payload)`` -> session.

    Between ``on_init`` and ``respond`` the caller can refuse the claimed key (banned)
    before spending a signature on it.
    """

    def __init__(self, params: LinkParams, ephemeral_secret: bytes) -> None:
        self._params = params
        self._secret = ephemeral_secret
        self._init: Init | None = None
        self._transcript: bytes | None = None
        self._finished = False

    def on_init(self, payload: bytes) -> bytes:
        if self._init is not None:
            raise HandshakeFailed("a second INIT")
        init = Init.decode(payload)
        p = self._params
        if init.version != VERSION:
            raise HandshakeFailed(f"peer speaks link version {init.version}, not {VERSION}")
        if init.chain_id != p.chain_id:
            raise HandshakeFailed(f"peer is on chain {init.chain_id!r}, not {p.chain_id!r}")
        if init.genesis_hash != p.genesis_hash:
            raise HandshakeFailed(f"peer has genesis {init.genesis_hash.hex()[:16]}.., not ours")
        _check_peer_key(p, init.static_key, Role.INITIATOR)
        self._init = init
        return init.static_key

    def respond(self) -> bytes:
        if self._init is None or self._transcript is not None:
            raise HandshakeFailed("RESPONSE out of order")
        ours = ephemeral_public(self._secret)
        self._transcript = transcript_hash(self._init, self._params.key.public_key, ours)
        signature = self._params.key.sign(signed_digest(self._transcript, Role.RESPONDER))
        return Response(self._params.key.public_key, ours, signature).encode()

    def on_finish(self, payload: bytes) -> Session:
        if self._init is None or self._transcript is None or self._finished:
            raise HandshakeFailed("FINISH out of order")
        self._finished = True
        finish = Finish.decode(payload)
        digest = signed_digest(self._transcript, Role.INITIATOR)
        if not is_valid_signature(self._init.static_key, digest, finish.signature):
            raise HandshakeFailed("FINISH signature does not verify")
        return _session(self._secret, self._init.ephemeral, self._transcript, Role.RESPONDER,
                        self._init.static_key, self._params.max_frame_size)


# --- sealed frames ---------------------------------------------------------------------
def _nonce(counter: int) -> bytes:
    return b"\x00\x00\x00\x00" + counter.to_bytes(8, "big")


class FrameSealer:
    """One direction's sender: ``seal`` returns the wire bytes of the next frame."""

    def __init__(self, key: bytes, max_frame_size: int) -> None:
        self._aead = ChaCha20Poly1305(key)
        self._counter = 0
        self.max_frame_size = max_frame_size

    def seal(self, frame_type: FrameType, payload: bytes) -> bytes:
        body_len = 1 + len(payload)
        if body_len > self.max_frame_size:
            raise OversizedFrame(f"frame of {body_len} bytes exceeds the limit of {self.max_frame_size}")
        if self._counter > MAX_COUNTER:  # 2^64 frames: unreachable, but never reuse a nonce
            raise TransportError("session exhausted its nonces")
        header = (body_len + TAG_SIZE).to_bytes(LENGTH_SIZE, "big")
        sealed = self._aead.encrypt(_nonce(self._counter), bytes([frame_type]) + payload, header)
        self._counter += 1
        return header + sealed


class FrameOpener:
    """One direction's receiver: ``feed`` bytes as they arrive, get the frames they complete.

    A length is checked as soon as its 4 bytes are in. The first failure poisons the
    opener (the counter can never resynchronise): every later ``feed`` raises it again.
    """

    def __init__(self, key: bytes, max_frame_size: int) -> None:
        self._aead = ChaCha20Poly1305(key)
        self._counter = 0
        self._max_sealed = max_frame_size + TAG_SIZE
        self._buf = bytearray()
        self._pending: int | None = None  # sealed length of the frame being awaited
        self._error: TransportError | None = None

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def limit(self, max_frame_size: int) -> None:
        """Lower the largest frame the peer may send from now on (an outsider's link)."""
        self._max_sealed = min(self._max_sealed, max_frame_size + TAG_SIZE)

    def feed(self, data: bytes) -> list[Frame]:
        if self._error is not None:
            raise self._error
        self._buf += data
        frames: list[Frame] = []
        pos = 0
        buf = self._buf
        try:
            while True:
                if self._pending is None:
                    if len(buf) - pos < LENGTH_SIZE:
                        break
                    size = int.from_bytes(buf[pos : pos + LENGTH_SIZE], "big")
                    if not TAG_SIZE < size <= self._max_sealed:
                        raise LinkCorrupted(f"impossible sealed frame length {size}")
                    self._pending = size
                    pos += LENGTH_SIZE
                size = self._pending
                if len(buf) - pos < size:
                    break
                header = size.to_bytes(LENGTH_SIZE, "big")
                try:
                    # Decrypt straight from the buffer: a frame can be 8 MiB, and a copy
                    # of it per frame is memory and time for nothing.
                    with memoryview(buf) as view:
                        plain = self._aead.decrypt(_nonce(self._counter), view[pos : pos + size], header)
                except InvalidTag:
                    raise LinkCorrupted(f"frame {self._counter} does not authenticate") from None
                self._counter += 1
                pos += size
                self._pending = None
                try:
                    frames.append(Frame(FrameType(plain[0]), plain[1:]))
                except ValueError:
                    raise BadFrame(f"unknown frame type {plain[0]}") from None
        except TransportError as exc:
            self._error = exc
            self._buf = bytearray()
            raise
        del buf[:pos]
        return frames


@dataclass(frozen=True)
class Session:
    """An established link: who is on the other end, and the two directions' ciphers."""

    peer_key: bytes
    transcript: bytes
    sealer: FrameSealer
    opener: FrameOpener
