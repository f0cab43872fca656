"""Every refusal the ledger makes, as a specific exception type with a stable code.

The code is machine-readable and never changes once published: the gateway maps it to
an HTTP problem type, the verifier reports it as the name of the failing check.
"""

from __future__ import annotations


class LedgerError(Exception):
    """Base of every refusal. ``code`` is stable; ``where`` locates the fault if known."""

    code = "ledger_error"

    def __init__(self, message: str, *, where: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.where = where

    def at(self, where: str) -> LedgerError:
        """Attach (or prefix) a location such as ``block 12 ballot 3``."""
        self.where = where if self.where is None else f"{where}: {self.where}"
        return self

    def __str__(self) -> str:
        loc = f" at {self.where}" if self.where else ""
        return f"{self.code}{loc}: {self.message}"


# --- encodings -------------------------------------------------------------------------
class BadEncoding(LedgerError):
    code = "bad_encoding"


class Oversized(BadEncoding):
    code = "oversized"


class TooDeep(BadEncoding):
    """Nested deeper than the reader allows (checked before any parser recurses)."""

    code = "too_deep"


# --- cryptography ----------------------------------------------------------------------
class BadSignature(LedgerError):
    code = "bad_signature"


class BadPublicKey(LedgerError):
    code = "bad_public_key"


# --- Merkle proofs ---------------------------------------------------------------------
class BadProof(LedgerError):
    code = "bad_proof"


class BadInclusionProof(BadProof):
    code = "bad_inclusion_proof"


class BadConsistencyProof(BadProof):
    code = "bad_consistency_proof"


class BadTreeRange(LedgerError):
    """An index or size outside the tree (for example a proof for leaf 7 of a 5-leaf log)."""

    code = "bad_tree_range"


# --- ballots ---------------------------------------------------------------------------
class WrongChain(LedgerError):
    code = "wrong_chain"


class UnknownElection(LedgerError):
    code = "unknown_election"


class ElectionNotOpen(LedgerError):
    code = "election_not_open"


class NotInCredentialSet(LedgerError):
    code = "not_in_credential_set"


class DuplicateCredential(LedgerError):
    code = "duplicate_credential"


class DuplicateBallot(LedgerError):
    code = "duplicate_ballot"


# --- blocks ----------------------------------------------------------------------------
class BadHeight(LedgerError):
    code = "bad_height"


class BadParent(LedgerError):
    code = "bad_parent"


class BadTime(LedgerError):
    code = "bad_time"


class BadProposer(LedgerError):
    code = "bad_proposer"


class BadValidatorSet(LedgerError):
    code = "bad_validator_set"


class BadCertificate(LedgerError):
    code = "bad_certificate"


class InsufficientQuorum(BadCertificate):
    code = "insufficient_quorum"


class BadLastCommit(LedgerError):
    code = "bad_last_commit"


class BadLogRoot(LedgerError):
    code = "bad_log_root"


class BadStateRoot(LedgerError):
    code = "bad_state_root"


class BadBodyHash(LedgerError):
    code = "bad_body_hash"


class BadTransaction(LedgerError):
    code = "bad_transaction"


class BlockTooLarge(LedgerError):
    code = "block_too_large"


# --- genesis and store -----------------------------------------------------------------
class BadGenesis(LedgerError):
    code = "bad_genesis"


class StoreError(LedgerError):
    code = "store_error"


class NotAStore(StoreError):
    code = "not_a_store"


class StoreChainMismatch(StoreError):
    code = "store_chain_mismatch"


class StoreCorrupt(StoreError):
    code = "store_corrupt"


# --- secret ballots: group elements, proofs, trustees, tally ---------------------------
class BadScalar(BadEncoding):
    """A scalar that is not 32 bytes or not reduced modulo the group order."""

    code = "bad_scalar"


class BadPoint(BadEncoding):
    """A point that is not a 33-byte compressed point on secp256k1 (the identity has no
    encoding, so it is refused here too)."""

    code = "bad_point"


class BadBallotShape(BadEncoding):
    """An encrypted ballot whose contests or selections do not match the election."""

    code = "bad_ballot_shape"


class BadBallotProof(LedgerError):
    """A selection's or a contest's proof does not verify; ``where`` names which."""

    code = "bad_ballot_proof"


class BadOpening(LedgerError):
    """A Benaloh audit opening that does not match the ballot it claims to open."""

    code = "bad_opening"


class BadCeremonyProof(LedgerError):
    """A trustee's coefficient commitment comes with a proof of knowledge that fails."""

    code = "bad_ceremony_proof"


class BadShare(LedgerError):
    """A key-ceremony share that fails to decrypt or fails Feldman verification."""

    code = "bad_share"


class BadComplaint(LedgerError):
    """A complaint whose revealed key or proof does not check, or that names a good share."""

    code = "bad_complaint"


class BadKeyFile(LedgerError):
    """A trustee key file that is malformed or whose passphrase is wrong."""

    code = "bad_key_file"


class BadDecryptionShare(LedgerError):
    """A trustee's decryption share whose proof fails; ``where`` names trustee and choice."""

    code = "bad_decryption_share"


class InsufficientShares(LedgerError):
    """Fewer than the threshold of valid decryption shares."""

    code = "insufficient_shares"


class BadTally(LedgerError):
    """A published tally that does not follow from the ballots and shares."""

    code = "bad_tally"
