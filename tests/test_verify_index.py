"""The verifier's on-disk index and the node's store answer the chain's rules alike.

The index skips what the rules never need (tracking codes of first-counts ballots) and
answers most lookups from a filter; run any sequence of blocks, with revotes and
resubmitted ballots, against both and they accept and refuse the same blocks, with the
same reasons.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.chain import Chain
from ledger.errors import LedgerError
from ledger.rules import ProofCache, apply_block
from ledger.state import ChainTip
from ledger.tally import Tally
from tests.helpers import certify, kit, next_block
from verifier.index import DiskIndex

VOTERS = 5
blocks = st.lists(st.lists(st.tuples(st.integers(0, VOTERS - 1), st.integers(0, 2)), min_size=1, max_size=3),
                  min_size=1, max_size=8)


@pytest.mark.parametrize("revoting", ["first-counts", "last-counts"])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=blocks)
def test_index_and_store_agree_on_every_block(revoting: str, plan: list[list[tuple[int, int]]],
                                              tmp_path_factory: pytest.TempPathFactory) -> None:
    k = kit(1, VOTERS, revoting)
    work = tmp_path_factory.mktemp("agree")
    with Chain(Path(work) / "store", k.genesis) as chain, DiskIndex(k.genesis, work) as index:
        tally = Tally(k.genesis, index.payloads)
        node_tally = Tally(k.genesis)
        proofs = ProofCache()
        last = None
        for ballots in plan:
            tip = chain.store.tip
            block = next_block(k, tip, [k.ballot(v, c).encode() for v, c in ballots], last)
            try:
                expected = chain.commit(block, cert := certify(k, block))
            except LedgerError as exc:
                with pytest.raises(LedgerError) as refused:
                    apply_block(k.genesis, tip, index, block, proofs=proofs)
                assert (refused.value.code, refused.value.where) == (exc.code, exc.where)
                continue
            effects = apply_block(k.genesis, tip, index, block, proofs=proofs)
            assert effects.tip == expected.tip
            tally.record_block(effects)
            node_tally.record_block(expected)
            index.apply(effects)
            last = cert
        assert tally.to_json_obj() == node_tally.to_json_obj()


def test_a_reopened_index_still_knows_every_credential_that_voted(tmp_path: Path) -> None:
    k = kit(1, VOTERS)
    state = tmp_path / "state"
    first = next_block(k, ChainTip.at_genesis(k.genesis), [k.ballot(v, 0).encode() for v in range(3)], None)
    with DiskIndex(k.genesis, keep_at=state) as index:
        effects = apply_block(k.genesis, ChainTip.at_genesis(k.genesis), index, first)
        index.apply(effects)
    with DiskIndex(k.genesis, keep_at=state) as index:  # a resumed verification: a fresh filter, refilled
        revote = next_block(k, effects.tip, [k.ballot(3, 1).encode(), k.ballot(1, 2).encode()], certify(k, first))
        with pytest.raises(LedgerError) as refused:
            apply_block(k.genesis, effects.tip, index, revote)
        assert (refused.value.code, refused.value.where) == ("duplicate_credential", "block 2 ballot 1")
