"""The homomorphic sums of every encrypted election, at the end of a replay.

Read from the index's counted payloads (``DiskIndex.counted_payloads``: exactly the
ballots the re-voting policy counts) and summed by ``ledger.encrypted_tally``. With a
process pool, this process reads the payloads and packs their points while the workers
sum earlier chunks (parsing the points, a square root each, is nearly all the work).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from concurrent.futures import Executor, Future

from ledger.encrypted_tally import PACK_BALLOTS, EncryptedTally, contest_shapes, pack_points, sum_counted, sum_packed
from ledger.genesis import ElectionDef
from ledger.tally import Tally
from verifier.bundle import StateMismatch
from verifier.index import DiskIndex

# Fewer counted ballots than this are summed here: a pool's round trips would cost more.
POOL_FROM_BALLOTS = 16_384
POOL_CHUNK_BALLOTS = PACK_BALLOTS  # ballots a worker sums per task


def encrypted_sums(
    chain_id: str, tally: Tally, index: DiskIndex, pool: Executor | None = None, jobs: int = 1
) -> dict[str, EncryptedTally]:
    """Election id -> its sums over the counted ballots, for every encrypted election."""
    out: dict[str, EncryptedTally] = {}
    for election_id, counted in tally.elections.items():
        election = counted.election
        if not election.encrypted:
            continue
        payloads = index.counted_payloads(election_id)
        if pool is None or counted.ballots_counted < POOL_FROM_BALLOTS:
            total = sum_counted(chain_id, election, payloads)
        else:
            total = _sum_in_pool(pool, 2 * jobs, chain_id, election, payloads, POOL_CHUNK_BALLOTS)
        if total.ballots != counted.ballots_counted:  # the index and the counts are saved together
            raise StateMismatch(
                f"the index holds {total.ballots} counted ballots of election {election_id}, the tally "
                f"{counted.ballots_counted}; verify again from the start", where=f"election {election_id} sums")
        out[election_id] = total
    return out


def _sum_in_pool(
    pool: Executor, window: int, chain_id: str, election: ElectionDef, payloads: Iterable[bytes], chunk: int
) -> EncryptedTally:
    shapes = contest_shapes(election)
    choices = sum(s.choices for s in shapes)
    total = EncryptedTally.empty(chain_id, election)
    pending: deque[Future[EncryptedTally]] = deque()
    for _, packed in pack_points(shapes, payloads, chunk):
        pending.append(pool.submit(sum_packed, chain_id, election.election_id, choices, packed))
        if len(pending) >= window:
            total = total.plus(pending.popleft().result())
    while pending:
        total = total.plus(pending.popleft().result())
    return total
