"""The file of encrypted sums a trustee decrypts: the one place that reads and writes it.

A trustee must decrypt only sums it computed itself from the counted ballots (decrypting
anything else would open whatever ciphertexts it was handed), so the file comes from the
trustee's own check of the chain. Its form, JSON::

    {"format": "ballot-ledger/sums/v0", "ballots": N,
     "sums": [[alpha, beta], ...]}      # per choice, contest by contest; hex, "" = identity

``read_sums`` is all the commands use, so another canonical form can replace this one
there alone.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from ledger import jsonbound
from ledger.elgamal import EncryptedSum
from ledger.errors import BadEncoding
from ledger.files import read_bounded
from ledger.genesis import MAX_CHOICES, MAX_GENESIS_INT
from ledger.group import POINT_SIZE, decode_optional, encode_optional

SUMS_FORMAT = "ballot-ledger/sums/v0"
MAX_SUMS_FILE_BYTES = 4096 + MAX_CHOICES * (2 * (2 * POINT_SIZE + 4) + 8)


def sums_json(sums: Sequence[EncryptedSum], ballots: int) -> str:
    return json.dumps({
        "format": SUMS_FORMAT,
        "ballots": ballots,
        "sums": [[encode_optional(s.alpha).hex(), encode_optional(s.beta).hex()] for s in sums],
    }, indent=1) + "\n"


def write_sums(path: Path, sums: Sequence[EncryptedSum], ballots: int) -> None:
    path.write_text(sums_json(sums, ballots))


def read_sums(path: Path) -> tuple[tuple[EncryptedSum, ...], int]:
    """(the sums per choice, how many ballots were summed); ``BadEncoding`` for anything
    else, ``OSError`` is the caller's."""
    obj = jsonbound.loads(read_bounded(path, MAX_SUMS_FILE_BYTES, what="sums file"), max_bytes=MAX_SUMS_FILE_BYTES,
                          max_depth=3, what="sums file")
    if not isinstance(obj, dict) or obj.get("format") != SUMS_FORMAT or set(obj) != {"format", "ballots", "sums"}:
        raise BadEncoding(f"sums file: not a {SUMS_FORMAT} file")
    ballots, pairs = obj["ballots"], obj["sums"]
    if not isinstance(ballots, int) or isinstance(ballots, bool) or not 0 <= ballots <= MAX_GENESIS_INT:
        raise BadEncoding("sums file: ballots must be a count")
    if not isinstance(pairs, list) or not 1 <= len(pairs) <= MAX_CHOICES:
        raise BadEncoding(f"sums file: 1 to {MAX_CHOICES} sums")
    sums = []
    for c, pair in enumerate(pairs):
        what = f"sums file: choice {c}"
        if not isinstance(pair, list) or len(pair) != 2 or not all(isinstance(x, str) for x in pair):
            raise BadEncoding(f"{what}: a pair of hex points")
        try:
            alpha, beta = (bytes.fromhex(x) for x in pair)
        except ValueError:
            raise BadEncoding(f"{what}: not hex") from None
        sums.append(EncryptedSum(decode_optional(alpha, f"{what} alpha"), decode_optional(beta, f"{what} beta")))
    return tuple(sums), ballots
