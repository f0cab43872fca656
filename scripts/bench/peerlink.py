"""Peer link benchmark: what sealing and opening the network's frames costs, one core.

    python scripts/bench/peerlink.py [--quick] [--voters N] [--rate R]

Typical frames, built from real objects: a prevote; a ballot gossip batch (TXS) of the
size one validator flushes every 10 ms at its share of the offered rate; a proposal whose
block holds one block interval's ballots (stood in for by the ballots' RLP list: a real
block adds a header of about 400 bytes). For each: seal + open per second and MB/s on
one core (node.peerlink, ChaCha20-Poly1305 from `cryptography`), the same for
pycryptodome's ChaCha20-Poly1305 (the AEAD the project already had), and one complete
handshake (both sides).

Then the frames the 4-validator network needs at the offered rate, counted from the
validator's own constants (gossip flush interval, votes per height, fan-out to 3 peers)
with heights/s as a parameter (the network benchmark's ~3-4 heights/s at 2,000/s; 5 is
assumed, which is an overestimate of the vote traffic), and the CPU their sealing and
opening costs across the network, per ballot and as a share of the 2 cores.
Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit, machine
from Crypto.Cipher import ChaCha20_Poly1305

from ballotledger.election_kit import make_election
from ledger import codec
from ledger.crypto import SigningKey
from node.consensus.messages import Proposal, Vote, VoteKind, encode_message
from node.frames import DEFAULT_MAX_FRAME_SIZE, FrameType
from node.peerlink import Initiator, LinkParams, Responder, Session
from node.validator import GOSSIP_FLUSH_S

VALIDATORS = 4
PEERS = VALIDATORS - 1
VOTES_PER_HEIGHT = 2  # a prevote and a precommit from each validator


def timed(fn: Callable[[], object], min_seconds: float) -> float:
    """Calls per second of ``fn``, run for at least ``min_seconds``."""
    calls, start = 0, time.perf_counter()
    while True:
        for _ in range(20):
            fn()
        calls += 20
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return calls / elapsed


def link(kit_keys: list[SigningKey], chain_id: str, genesis_hash: bytes) -> tuple[Session, Session]:
    validators = {k.public_key: f"v{i}" for i, k in enumerate(kit_keys)}

    def params(i: int) -> LinkParams:
        return LinkParams(kit_keys[i], chain_id, genesis_hash, validators, DEFAULT_MAX_FRAME_SIZE)

    initiator = Initiator(params(0), secrets.token_bytes(32))
    responder = Responder(params(1), secrets.token_bytes(32))
    responder.on_init(initiator.init())
    finish, mine = initiator.on_response(responder.respond())
    return mine, responder.on_finish(finish)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--voters", type=int, default=16384, help="credential set size (proof depth)")
    ap.add_argument("--rate", type=float, default=2000.0, help="ballots/s the network finalizes")
    ap.add_argument("--heights-per-second", type=float, default=5.0)
    args = ap.parse_args()
    seconds = 0.5 if args.quick else 3.0

    kit = make_election(validators=VALIDATORS, voters=args.voters, seed="bench-peerlink")
    chain_id, genesis_hash = kit.genesis.chain_id, kit.genesis.hash()
    per_block = int(args.rate / args.heights_per_second)
    per_flush = max(1, round(args.rate / VALIDATORS * GOSSIP_FLUSH_S))
    ballots = [kit.ballot(i % args.voters, i % 3).encode() for i in range(per_block)]
    vote = Vote.sign(kit.validator_keys[1], chain_id=chain_id, kind=VoteKind.PREVOTE, height=1000,
                     round_=0, block_hash=bytes(32), validator_index=1)
    proposal = Proposal.sign(kit.validator_keys[0], chain_id=chain_id, height=1000, round_=0,
                             block=codec.encode(ballots), valid_round=-1, proposer_index=0)
    frames = {
        "vote": (FrameType.CONSENSUS, encode_message(vote)),
        "gossip": (FrameType.TXS, codec.encode(ballots[:per_flush])),
        "proposal": (FrameType.CONSENSUS, encode_message(proposal)),
    }

    figures: dict[str, object] = {
        "benchmark": "peerlink", "quick": args.quick, "machine": machine(),
        "ballot_bytes": len(ballots[0]), "offered_rate": args.rate,
        "heights_per_second": args.heights_per_second,
    }
    cost_s: dict[str, float] = {}  # seconds of one core per seal+open of each frame
    for name, (ftype, payload) in frames.items():
        sender, receiver = link(kit.validator_keys, chain_id, genesis_hash)

        def round_trip(ftype: FrameType = ftype, payload: bytes = payload,
                       sender: Session = sender, receiver: Session = receiver) -> None:
            receiver.opener.feed(sender.sealer.seal(ftype, payload))

        per_s = timed(round_trip, seconds)
        key = secrets.token_bytes(32)

        def pycryptodome(payload: bytes = payload, key: bytes = key) -> None:
            nonce = secrets.token_bytes(12)
            ct, tag = ChaCha20_Poly1305.new(key=key, nonce=nonce).encrypt_and_digest(payload)
            ChaCha20_Poly1305.new(key=key, nonce=nonce).decrypt_and_verify(ct, tag)

        alt_per_s = timed(pycryptodome, seconds)
        cost_s[name] = 1 / per_s
        figures[name] = {
            "bytes": len(payload), "seal_open_per_s": round(per_s), "mb_per_s": round(per_s * len(payload) / 1e6, 1),
            "pycryptodome_seal_open_per_s": round(alt_per_s),
        }
        print(f"{name:9s} {len(payload):8d} B  {per_s:10.0f} seal+open/s  {per_s * len(payload) / 1e6:7.1f} MB/s"
              f"   (pycryptodome {alt_per_s:8.0f}/s)", file=sys.stderr)

    handshakes = timed(lambda: link(kit.validator_keys, chain_id, genesis_hash), seconds)
    figures["handshakes_per_s"] = round(handshakes)

    # What the network needs: every frame is sealed once and opened once.
    need = {
        "gossip": VALIDATORS * PEERS / GOSSIP_FLUSH_S,  # each validator flushes to each peer
        "vote": VALIDATORS * PEERS * VOTES_PER_HEIGHT * args.heights_per_second,
        "proposal": PEERS * args.heights_per_second,  # one proposer per height
    }
    frames_per_s = sum(need.values())
    bytes_per_s = sum(n * len(frames[k][1]) for k, n in need.items())
    cpu_s_per_s = sum(n * cost_s[k] for k, n in need.items())
    figures["network_needs"] = {
        "frames_per_s": round(frames_per_s), "mb_per_s": round(bytes_per_s / 1e6, 2),
        "cpu_core_share": round(cpu_s_per_s, 4), "share_of_2_cores": round(cpu_s_per_s / 2, 4),
        "us_per_ballot": round(cpu_s_per_s / args.rate * 1e6, 1),
        "headroom_x": round(1 / cpu_s_per_s, 1),
    }
    print(f"network at {args.rate:.0f} ballots/s: {frames_per_s:.0f} frames/s, {bytes_per_s / 1e6:.2f} MB/s "
          f"sealed and opened: {cpu_s_per_s * 100:.1f}% of one core, {cpu_s_per_s / args.rate * 1e6:.1f} us/ballot",
          file=sys.stderr)
    emit(figures)


if __name__ == "__main__":
    main()
