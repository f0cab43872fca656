"""Check a chain held in a store without replaying its ballots: what a restored backup
must pass before a node runs on it.

For every block from 1 to the stored tip, in order, streaming (memory stays flat):
a) it decodes, and its header fits the chain so far (``rules.check_header``: chain,
   height, parent hash, time, proposer, validator set, transactions hash, and the
   certificate of the block before, which it carries, checked against the validators);
b) its own stored certificate holds a quorum of the validators in force at its height for
   its hash;
c) the hash index points at its height;
d) its ballots' tracking codes extend the ballot log to the size and root its header
   states, and the log's stored nodes and the tracking-code index agree with them.
Last, the stored tip is the chain's last block. The validator sets come from ``schedule``,
which the caller reads from the stored tip's contract state before the check: each header
names the hash of its height's set and is certified by the set before it, back to
genesis's, so a schedule read from a forged state fails at the first height it differs.
The ballots themselves (signatures, credential proofs, uniqueness) were checked by the
rules when the block first entered a store and are covered by the quorum's certificates;
a full replay is the verifier's.
"""

from __future__ import annotations

from collections.abc import Callable

from ledger import merkle
from ledger.block import Block
from ledger.errors import LedgerError, StoreCorrupt
from ledger.genesis import Genesis
from ledger.hashing import keccak256
from ledger.rules import check_header
from ledger.state import ChainTip
from ledger.store import LedgerStore
from ledger.validators import ValidatorSchedule


def check_stored_chain(store: LedgerStore, genesis: Genesis, genesis_tip: ChainTip, schedule: ValidatorSchedule,
                       on_block: Callable[[int, int], None] | None = None) -> ChainTip:
    """The checked tip of ``store`` (see the module); ``StoreCorrupt`` naming the first
    height and check that fails. ``on_block(height, tip height)`` reports progress."""
    tip = genesis_tip
    frontier = tip.frontier()
    last = store.height
    for height in range(1, last + 1):
        try:
            tip = _check_block(store, genesis, schedule, tip, frontier, height)
        except LedgerError as exc:
            raise StoreCorrupt(f"block {height}: {exc.message}") from None
        if on_block is not None:
            on_block(height, last)
    if store.tip != tip:
        raise StoreCorrupt(f"the stored tip is not the summary of block {last}")
    return tip


def _check_block(store: LedgerStore, genesis: Genesis, schedule: ValidatorSchedule, tip: ChainTip,
                 frontier: merkle.MerkleFrontier, height: int) -> ChainTip:
    block = Block.decode(store.raw_block(height))  # a)
    check_header(genesis, tip, block, schedule)
    block_hash = block.hash()
    store.certificate(height).check(schedule.at(height), chain_id=genesis.chain_id, height=height,  # b)
                                    block_hash=block_hash)
    if store.height_of(block_hash) != height:  # c)
        raise StoreCorrupt("the hash index does not point at this block")
    first = frontier.size  # d)
    nodes: list[merkle.Node] = []
    for offset, raw in enumerate(block.ballots):
        code = keccak256(raw)
        if store.ballot_position(code) != (first + offset, height):
            raise StoreCorrupt(f"the tracking-code index is wrong for ballot {offset}")
        nodes += frontier.append(merkle.leaf_hash(code))
    header = block.header
    if frontier.size != header.log_size or frontier.root() != header.log_root:
        raise StoreCorrupt("the ballots do not make the log size and root the header states")
    if nodes and store.read_hashes([(level, index) for level, index, _ in nodes]) != [n for _, _, n in nodes]:
        raise StoreCorrupt("the stored log nodes are not those of the block's ballots")
    return ChainTip(tip.chain_id, height, block_hash, header.time_ms, header.state_root, frontier.to_bytes())
