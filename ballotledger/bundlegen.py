"""Large synthetic election bundles for benchmarks and scale tests.

Real ballots, real signatures, real certificates: only the chain was never run by a
network. Voter keys derive from a seed; the credential tree is kept as one flat byte
array per level (32 bytes a node), so 10 million voters fit in about 640 MB.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
from collections.abc import Sequence
from pathlib import Path

from contracts.engine import EvmExecutor, memory_state_db
from ledger import merkle
from ledger.assemble import assemble_block
from ledger.ballot import BallotEnvelope, CredentialProof
from ledger.block import CommitCertificate
from ledger.crypto import SigningKey
from ledger.genesis import ENCRYPTED_SCHEME, ChainParams, Contest, ElectionDef, Genesis, ValidatorInfo, ValidatorSet
from ledger.group import base_mul, hash_to_scalar
from ledger.hashing import tag
from ledger.state import ChainTip
from ledger.tally import Tally
from ledger.voter import encrypted_ballot
from verifier.bundle import BLOCKS_FILE, BUNDLE_README, GENESIS_FILE, block_line, write_contract_artifacts
from verifier.verify import results_text

GENESIS_TIME_MS = 1_700_000_000_000


def _voter(seed: str, i: int) -> SigningKey:
    return SigningKey.from_seed(f"{seed}/voter/{i}".encode())


class LevelTree:
    """A credential tree held as flat per-level arrays; serves RFC 9162 proofs."""

    def __init__(self, leaf_hashes: bytes) -> None:
        self.size = len(leaf_hashes) // 32
        self.levels = [leaf_hashes]
        level = leaf_hashes
        while len(level) >= 64:
            nxt = bytearray()
            for j in range(0, len(level) - 63, 64):
                nxt += merkle.node_hash(level[j : j + 32], level[j + 32 : j + 64])
            level = bytes(nxt)
            self.levels.append(level)
        # The root over an arbitrary size folds the complete subtrees (RFC 9162 2.1.1).
        self.root = merkle.root_from(self, self.size) if self.size else merkle.EMPTY_ROOT

    def read_hashes(self, ids: Sequence[tuple[int, int]]) -> list[bytes]:
        return [self.levels[level][index * 32 : index * 32 + 32] for level, index in ids]

    def proof(self, index: int) -> CredentialProof:
        return CredentialProof.of(index, merkle.inclusion_proof_from(self, index, self.size))


def _pubkeys(args: tuple[str, int, int]) -> bytes:
    seed, start, stop = args
    return b"".join(_voter(seed, i).public_key for i in range(start, stop))


_TREE: LevelTree | None = None
_GEN: Genesis | None = None


def _sign(args: tuple[str, int, int]) -> list[bytes]:
    seed, start, stop = args
    assert _TREE is not None and _GEN is not None
    election = _GEN.elections[0]
    if election.encrypted:
        return [
            encrypted_ballot(_voter(seed, i), chain_id=_GEN.chain_id, election=election, proof=_TREE.proof(i),
                             selected=[[i % len(c.choices)] for c in election.contests])[0].encode()
            for i in range(start, stop)
        ]
    return [
        BallotEnvelope.create(_voter(seed, i), chain_id=_GEN.chain_id, election_id=election.election_id,
                              proof=_TREE.proof(i), payload=bytes([i % 3])).encode()
        for i in range(start, stop)
    ]


def bundle_election(root: bytes, size: int, *, seed: str, encrypted: bool,
                    joint_key: bytes | None = None) -> ElectionDef:
    """The bundle's one election: three plaintext choices, or one encrypted contest of
    five choices under ``joint_key`` (a key ceremony's) or else a key derived from
    ``seed`` (a stand-in for a trustees' key)."""
    plain = ElectionDef(
        election_id="national-2026", question="Which option do you support?", choices=("a", "b", "c"),
        credential_root=root, credential_count=size, opens_at_ms=GENESIS_TIME_MS,
        closes_at_ms=GENESIS_TIME_MS + 10**10,
    )
    if not encrypted:
        return plain
    if joint_key is None:
        key = base_mul(bundle_key_secret(seed))
        assert key is not None
        joint_key = key.encode()
    return dataclasses.replace(
        plain, question="National election", choices=(), payload_scheme=ENCRYPTED_SCHEME,
        contests=(Contest("Who should lead?", ("a", "b", "c", "d", "e"), 1),), joint_key=joint_key,
    )


def bundle_key_secret(seed: str) -> int:
    """The decryption key of an encrypted bundle made without a ceremony's joint key."""
    return hash_to_scalar(tag("bundle-election-key/v1"), seed.encode())


def generate_bundle(out: Path, ballots: int, *, seed: str = "bundle", block_ballots: int = 4000,
                    validators: int = 4, processes: int | None = None,
                    max_block_ballots: int | None = None, encrypted: bool = False,
                    joint_key: bytes | None = None) -> Genesis:
    """Write genesis.json, blocks.jsonl and results.json for ``ballots`` voters voting once
    (``encrypted``: ballots of the encrypted scheme, encrypted and proven like a voter's,
    under ``joint_key`` if given; voter i selects choice i mod 5)."""
    global _TREE, _GEN
    out.mkdir(parents=True, exist_ok=True)
    processes = processes or os.cpu_count() or 1
    ctx = multiprocessing.get_context("fork")
    chunk = 20_000
    spans = [(seed, s, min(ballots, s + chunk)) for s in range(0, ballots, chunk)]
    with ctx.Pool(processes) as pool:
        pubkeys = b"".join(pool.imap(_pubkeys, spans))
    leaves = b"".join(merkle.leaf_hash(pubkeys[i : i + 33]) for i in range(0, len(pubkeys), 33))
    del pubkeys
    tree = LevelTree(leaves)
    vkeys = [SigningKey.from_seed(f"{seed}/validator/{i}".encode()) for i in range(validators)]
    election = bundle_election(tree.root, tree.size, seed=seed, encrypted=encrypted, joint_key=joint_key)
    genesis = Genesis(
        chain_id="bench-chain", genesis_time_ms=GENESIS_TIME_MS,
        authority=SigningKey.from_seed(f"{seed}/authority".encode()).public_key,
        validators=ValidatorSet(tuple(ValidatorInfo(f"v{i}", k.public_key, 1) for i, k in enumerate(vkeys))),
        params=ChainParams(max_block_ballots=max_block_ballots or block_ballots, contracts=True), elections=(election,),
    )
    (out / GENESIS_FILE).write_text(genesis.to_json())
    _TREE, _GEN = tree, genesis
    engine = EvmExecutor(genesis, memory_state_db())
    tip = ChainTip.at_genesis(genesis, engine)
    last: CommitCertificate | None = None
    tally = Tally(genesis)
    block_spans = [(seed, s, min(ballots, s + block_ballots)) for s in range(0, ballots, block_ballots)]
    frontier = merkle.MerkleFrontier()
    with ctx.Pool(processes) as pool, (out / BLOCKS_FILE).open("w") as fh:
        for body in pool.imap(_sign, block_spans, chunksize=1):
            block = assemble_block(genesis, tip, body, time_ms=tip.time_ms + 1000,
                                   proposer=vkeys[0].public_key, last_commit=last, engine=engine)
            cert = CommitCertificate.create(list(enumerate(vkeys))[: 3 * validators // 4 + 1],
                                            chain_id=genesis.chain_id, height=block.height, round_=0,
                                            block_hash=block.hash())
            fh.write(block_line(block.encode(), cert.encode()))
            for raw in body:
                envelope = BallotEnvelope.decode(raw)
                frontier.append(merkle.leaf_hash(envelope.tracking_code))
                tally.record(envelope)
            tip = ChainTip(tip.chain_id, block.height, block.hash(), block.header.time_ms, block.header.state_root,
                           frontier.to_bytes())
            last = cert
    tally.height = tip.height
    (out / "results.json").write_text(results_text(tally.to_json_obj()))
    (out / "README").write_text(BUNDLE_README)
    write_contract_artifacts(out, genesis)
    _TREE = _GEN = None
    return genesis
