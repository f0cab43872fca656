"""The file of encrypted sums a trustee decrypts and the authority tallies: the one place
the commands read it.

A trustee must decrypt only sums it computed itself from the counted ballots (decrypting
anything else would open whatever ciphertexts it was handed), so the file comes from the
trustee's own verification of the chain: ``ballotledger tally sums --bundle DIR``
(``ledger.encrypted_tally.sums_file_obj``). It names the chain (its genesis hash), the
election and whether voting had closed at the tip replayed to; :func:`read_sums` refuses
one for another chain or election, or of an election still open (its sums are not final).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ledger.elgamal import EncryptedSum
from ledger.encrypted_tally import MAX_SUMS_FILE_BYTES, EncryptedTally, read_sums_file, sums_file_obj
from ledger.errors import BadEncoding
from ledger.files import read_bounded, write_atomic


def load_sums(path: Path) -> SumsFile:
    """The file parsed and self-consistent (``BadEncoding`` otherwise; ``OSError`` is the
    caller's); :meth:`SumsFile.for_election` then holds it to a chain and an election."""
    total, obj = read_sums_file(read_bounded(path, MAX_SUMS_FILE_BYTES, what="sums file"))
    return SumsFile(total, obj["genesis_hash"], bool(obj["voting_closed"]))


@dataclass(frozen=True)
class SumsFile:
    total: EncryptedTally
    genesis_hash: str
    voting_closed: bool

    def for_election(self, *, genesis_hash: bytes, election_id: str) -> tuple[tuple[EncryptedSum, ...], int]:
        """(the sums per choice, how many ballots were summed), if they are of
        ``election_id`` on the chain of ``genesis_hash`` after voting closed."""
        if self.genesis_hash != genesis_hash.hex():
            raise BadEncoding("the sums file was computed on another chain (its genesis hash differs)")
        if self.total.election_id != election_id:
            raise BadEncoding(f"the sums file is of election {self.total.election_id!r}, not {election_id!r}")
        if not self.voting_closed:
            raise BadEncoding("the sums file was computed before voting closed: verify the chain again after the close")
        return self.total.sums, self.total.ballots


def read_sums(path: Path, *, genesis_hash: bytes, election_id: str) -> tuple[tuple[EncryptedSum, ...], int]:
    """:func:`load_sums`, held to ``election_id`` on the chain of ``genesis_hash``."""
    return load_sums(path).for_election(genesis_hash=genesis_hash, election_id=election_id)


def write_sums(path: Path, *, chain_id: str, election_id: str, genesis_hash: bytes, tip_height: int,
               sums: Sequence[EncryptedSum], ballots: int) -> None:
    """The file ``tally sums`` writes (tests and tools that computed the sums themselves)."""
    total = EncryptedTally(chain_id, election_id, ballots, tuple(sums))
    obj = sums_file_obj(total, genesis_hash=genesis_hash, tip_height=tip_height, voting_closed=True)
    write_atomic(path, (json.dumps(obj, indent=1) + "\n").encode())
