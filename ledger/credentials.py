"""Voter credential sets: the Merkle tree an election's credential root commits to.

The election authority registers one public key per eligible voter; the root goes into
the election definition and each voter gets an inclusion proof with their credential.
Leaves are the 33-byte compressed public keys in byte order, not in the roll's order: a
ballot shows its credential's index in the tree, and a sorted tree makes that index
depend only on the set of keys (anyone can rebuild the root from them), never on where
the voter stands on the roll.
"""

from __future__ import annotations

from collections.abc import Sequence

from ledger import merkle
from ledger.ballot import CredentialProof
from ledger.crypto import check_public_key
from ledger.errors import BadGenesis


class CredentialSet:
    """Builds the tree once (O(n) hashing, ~2n stored nodes) and serves proofs in O(log n)."""

    def __init__(self, credentials: Sequence[bytes]) -> None:
        frontier = merkle.MerkleFrontier()
        reader = merkle.DictHashReader()
        position: dict[bytes, int] = {}
        for i, credential in enumerate(sorted(credentials)):
            check_public_key(credential)
            if credential in position:
                raise BadGenesis(f"credential {credential.hex()} registered twice")
            position[credential] = i
            reader.add(frontier.append(merkle.leaf_hash(credential)))
        self._frontier = frontier
        self._reader = reader
        self._position = position

    def __len__(self) -> int:
        return self._frontier.size

    @property
    def root(self) -> bytes:
        return self._frontier.root()

    def proof(self, credential: bytes) -> CredentialProof:
        index = self._position.get(credential)
        if index is None:
            raise KeyError("credential is not registered")
        path = merkle.inclusion_proof_from(self._reader, index, len(self))
        return CredentialProof.of(index, path)
