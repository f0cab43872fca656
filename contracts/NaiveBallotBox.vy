#pragma version ==0.4.3
#pragma evm-version cancun
#pragma optimize gas
"""
@title The naive design, kept only as the benchmark's baseline
@notice Every ballot is its own contract transaction: the contract stores the ballot's
        hash and counts it. ballot-ledger does NOT do this (ballots stay out of the EVM);
        scripts/bench/evm.py measures how much slower it is than the ledger's path.
"""

MAX_BALLOT: constant(uint256) = 4096

event BallotCast:
    tracking_code: indexed(bytes32)
    index: uint256

seen: public(HashMap[bytes32, bool])
count: public(uint256)


@external
def cast_ballot(ballot: Bytes[MAX_BALLOT]):
    code: bytes32 = keccak256(ballot)
    assert not self.seen[code], "duplicate_ballot"
    self.seen[code] = True
    log BallotCast(tracking_code=code, index=self.count)
    self.count += 1
