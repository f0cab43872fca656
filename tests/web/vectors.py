"""Test vectors for the page's checks, made by the ledger's own code: Merkle proofs,
genesis hashes, checkpoints and receipts, each with what ``ledger/`` says of it (valid,
or the code of the check that refuses it). The browser's implementation must agree."""

from __future__ import annotations

import dataclasses
from typing import Any

from ledger import merkle
from ledger.block import BlockHeader, Checkpoint, CommitCertificate, CommitSignature
from ledger.crypto import SigningKey
from ledger.errors import (
    BadCertificate,
    BadConsistencyProof,
    BadInclusionProof,
    BadSignature,
    BadValidatorSet,
    InsufficientQuorum,
    LedgerError,
    WrongChain,
)
from ledger.genesis import Genesis
from ledger.group import base_mul
from ledger.hashing import ZERO_HASH, keccak256
from ledger.receipt import Receipt
from tests.helpers import kit

# ledger exception -> the name of the page's check that must fail
CHECK_OF: list[tuple[type[LedgerError], str]] = [
    (InsufficientQuorum, "quorum"), (BadSignature, "signature"), (BadCertificate, "certificate"),
    (BadInclusionProof, "inclusion"), (WrongChain, "chain"), (BadValidatorSet, "validator_set"),
]


def _leaves(n: int) -> list[bytes]:
    return [keccak256(b"leaf %d" % i) for i in range(n)]


def _flip(h: bytes) -> bytes:
    return bytes([h[0] ^ 1]) + h[1:]


def _verdict(check: Any, *args: Any) -> bool:
    try:
        check(*args)
    except (BadInclusionProof, BadConsistencyProof):
        return False
    return True


def merkle_vectors(max_size: int = 33) -> dict[str, list[dict[str, Any]]]:
    """Every proof of trees of 1..max_size leaves, and tampered ones; ``valid`` is what
    ledger.merkle says of each."""
    inclusion: list[dict[str, Any]] = []
    consistency: list[dict[str, Any]] = []
    for size in range(1, max_size + 1):
        leaves = _leaves(size)
        root = merkle.root(leaves)
        for index in range(size):
            proof = merkle.inclusion_proof(leaves, index)
            variants = [(leaves[index], proof), (_flip(leaves[index]), proof)]
            if proof:
                variants += [(leaves[index], [_flip(proof[0]), *proof[1:]]), (leaves[index], proof[:-1])]
            for leaf, path in variants:
                inclusion.append({"leaf": leaf.hex(), "index": index, "size": size, "root": root.hex(),
                                  "proof": [h.hex() for h in path],
                                  "valid": _verdict(merkle.verify_inclusion, leaf, index, size, path, root)})
        for old in range(0, size + 1):
            old_root = merkle.root(leaves[:old])
            proof = merkle.consistency_proof(leaves, old)
            variants = [(old_root, root, proof), (old_root, _flip(root), proof), (_flip(old_root), root, proof)]
            if proof:
                variants.append((old_root, root, [*proof[:-1], _flip(proof[-1])]))
            for a, b, path in variants:
                consistency.append({"old_size": old, "new_size": size, "old_root": a.hex(), "new_root": b.hex(),
                                    "proof": [h.hex() for h in path],
                                    "valid": _verdict(merkle.verify_consistency, old, size, a, b, path)})
    return {"inclusion": inclusion, "consistency": consistency}


def genesis_vectors() -> list[dict[str, Any]]:
    """Genesis files with every kind of election: plaintext, encrypted with its key, and
    encrypted with trustees whose ceremony makes the key."""
    base = kit(validators=4).genesis
    obj = base.to_json_obj()
    election = obj["elections"][0]
    trustees = [SigningKey.from_seed(b"trustee %d" % i).public_key.hex() for i in range(3)]
    point = base_mul(0x5EC2E7)
    assert point is not None
    contests = [{"question": "Chair?", "choices": ["ada", "grace", "alan"], "limit": 1},
                {"question": "예산을 채택합니까?", "choices": ["예", "아니오"], "limit": 1}]
    obj["elections"] += [
        {**election, "id": "secret-2026", "choices": [], "payload_scheme": "elgamal-secp256k1/v1",
         "joint_key": point.encode().hex(), "contests": contests},
        {**election, "id": "ceremony-2026", "choices": [], "payload_scheme": "elgamal-secp256k1/v1",
         "joint_key": "", "contests": contests, "trustees": trustees, "threshold": 2},
    ]
    wide = Genesis.from_json_obj(obj)
    return [{"genesis": g.to_json_obj(), "hash": g.hash().hex(), "validator_set_hash": g.validators.hash().hex()}
            for g in (base, wide)]


def _expected(receipt: Receipt, genesis: Genesis) -> str | None:
    try:
        receipt.verify(genesis)
    except LedgerError as exc:
        for kind, check in CHECK_OF:
            if isinstance(exc, kind):
                return check
        raise
    return None


def receipt_vectors() -> list[dict[str, Any]]:
    """A real receipt (four validators' signatures over a header whose log holds the
    ballot), the same receipt tampered with in each way the page must name, and one
    signed by exactly two thirds of three validators (not more: refused)."""
    out = _receipts(kit(validators=4), 2)
    out += [c for c in _receipts(kit(validators=3), 2) if c["name"] == "too_few_signatures"]
    out[-1]["name"] = "exactly_two_thirds"
    return out


def _receipts(k: Any, few: int) -> list[dict[str, Any]]:
    genesis = k.genesis
    codes = _leaves(11)
    index = 6
    header = BlockHeader(
        chain_id=genesis.chain_id, height=7, time_ms=1_767_225_600_000, parent_hash=ZERO_HASH,
        proposer=k.validator_keys[0].public_key, validator_set_hash=genesis.validators.hash(),
        log_size=len(codes), log_root=merkle.root(codes), state_root=ZERO_HASH, txs_hash=ZERO_HASH,
        last_commit_hash=ZERO_HASH)

    def checkpoint(signers: int = len(k.validator_keys), height: int | None = None) -> Checkpoint:
        cert = CommitCertificate.create(list(enumerate(k.validator_keys))[:signers], chain_id=genesis.chain_id,
                                        height=header.height if height is None else height, round_=0,
                                        block_hash=header.hash())
        return Checkpoint(header, cert)

    good = Receipt(chain_id=genesis.chain_id, election_id=k.election_id, tracking_code=codes[index],
                   log_index=index, height=5, checkpoint=checkpoint(),
                   inclusion_proof=tuple(merkle.inclusion_proof(codes, index)))
    forged_sig = checkpoint()
    sigs = list(forged_sig.certificate.signatures)
    sigs[1] = CommitSignature(sigs[1].validator_index, _flip(sigs[1].signature))
    cases = {
        "good": good,
        "tampered_proof": dataclasses.replace(good, inclusion_proof=(_flip(good.inclusion_proof[0]),
                                                                     *good.inclusion_proof[1:])),
        "wrong_index": dataclasses.replace(good, log_index=index + 1),
        "too_few_signatures": dataclasses.replace(good, checkpoint=checkpoint(signers=few)),
        "forged_signature": dataclasses.replace(good, checkpoint=Checkpoint(
            header, dataclasses.replace(forged_sig.certificate, signatures=tuple(sigs)))),
        "certificate_for_another_height": dataclasses.replace(good, checkpoint=checkpoint(height=8)),
        "other_chain": dataclasses.replace(good, chain_id="other-chain"),
        # made after a validator set change: genesis's set cannot check it, and says so
        "changed_validator_set": dataclasses.replace(good, checkpoint=Checkpoint(
            dataclasses.replace(header, validator_set_hash=_flip(header.validator_set_hash)),
            checkpoint().certificate)),
    }
    out = []
    for name, receipt in cases.items():
        out.append({"name": name, "receipt": receipt.to_json_obj(), "failed_check": _expected(receipt, genesis)})
    # the code the voter typed is not the receipt's: only the page can tell (ledger has no typed code)
    out.append({"name": "other_code_typed", "receipt": good.to_json_obj(), "typed_code": codes[0].hex(),
                "failed_check": "code"})
    return [{**case, "genesis": genesis.to_json_obj()} for case in out]


def all_vectors() -> dict[str, Any]:
    return {"merkle": merkle_vectors(), "genesis": genesis_vectors(), "receipts": receipt_vectors()}
