"""The node's and the verifier's counts against a reference tally written here.

The node (``ballot_getResults``) and the verifier (its replay) count with the same
``ledger.tally``, so comparing them with each other cannot find a bug in it. The
reference below is a few plain lines per re-voting policy, working from what each
voter cast rather than from envelopes; random sequences of blocks with revotes and
resubmitted ballots go through the real chain rules, then all three must agree.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.chain import Chain
from ledger.errors import LedgerError
from node.rpc_methods import BallotMethods
from tests.helpers import certify, kit, next_block
from verifier.bundle import BLOCKS_FILE, BUNDLE_README, GENESIS_FILE, block_line, write_contract_artifacts
from verifier.verify import results_text, verify_bundle

VOTERS = 6
CHOICES = 3
Cast = tuple[int, int]  # (voter, choice)


def reference_first_counts(casts: list[Cast]) -> tuple[int, Counter[int]]:
    """Each voter's first ballot counts: (ballots counted, count per choice)."""
    counted: dict[int, int] = {}
    for voter, choice in casts:
        if voter not in counted:
            counted[voter] = choice
    return len(counted), Counter(counted.values())


def reference_last_counts(casts: list[Cast]) -> tuple[int, Counter[int]]:
    """Each voter's last ballot counts."""
    counted: dict[int, int] = {}
    for voter, choice in casts:
        counted[voter] = choice
    return len(counted), Counter(counted.values())


REFERENCE = {"first-counts": reference_first_counts, "last-counts": reference_last_counts}

blocks = st.lists(
    st.lists(st.tuples(st.integers(0, VOTERS - 1), st.integers(0, CHOICES - 1)), min_size=1, max_size=4),
    min_size=1, max_size=8,
)


def _bundle(chain: Chain, out: Path, results: dict[str, object]) -> None:
    """What ``ballotledger export`` writes, from the store directly."""
    out.mkdir()
    store = chain.store
    (out / GENESIS_FILE).write_text(store.genesis.to_json())
    (out / "README").write_text(BUNDLE_README)
    write_contract_artifacts(out, store.genesis)
    lines = (block_line(store.raw_block(h), store.raw_certificate(h)) for h in range(1, store.height + 1))
    (out / BLOCKS_FILE).write_text("".join(lines))
    (out / "results.json").write_text(results_text(results))


@pytest.mark.parametrize("revoting", ["first-counts", "last-counts"])
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=blocks)
def test_node_and_verifier_count_as_the_reference_does(
    revoting: str, plan: list[list[Cast]], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Blocks of random casts (a voter casting again is a revote; the same voter and
    choice again is the very same ballot resubmitted) go through the chain rules; blocks
    the rules refuse are left out. Whatever went in, the node's results and the
    verifier's recount equal the reference's.

    Fails when ledger.tally keeps the first ballot under last-counts (tried by hand:
    every run finds a revote that changed a choice)."""
    k = kit(1, VOTERS, revoting)
    election = k.genesis.elections[0]
    work = tmp_path_factory.mktemp("tally")
    casts: list[Cast] = []
    with Chain(work / "store", k.genesis) as chain:
        last = None
        for block_casts in plan:
            block = next_block(k, chain.store.tip, [k.ballot(v, c).encode() for v, c in block_casts], last)
            try:
                chain.commit(block, cert := certify(k, block))
            except LedgerError:
                continue  # e.g. a second ballot under first-counts, or a resubmission
            casts.extend(block_casts)
            last = cert
        node = asyncio.run(BallotMethods(SimpleNamespace(chain=chain)).get_results())["elections"]  # type: ignore[arg-type]
        _bundle(chain, work / "bundle", {"format": "ballot-ledger/results/v1", "height": chain.store.height,
                                         "elections": node})
    report = verify_bundle(work / "bundle")
    assert report.valid, report.failure

    counted, per_choice = REFERENCE[revoting](casts)
    expected = {
        "ballots_recorded": len(casts),
        "ballots_counted": counted,
        "tally": {name: per_choice[i] for i, name in enumerate(election.choices)},
    }
    for counts in (node[election.election_id], report.results[election.election_id]):
        assert {key: counts[key] for key in expected} == expected
