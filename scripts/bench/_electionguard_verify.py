"""Runs under electionguard-python 1.4.0 in its own Python 3.10 venv (see crypto.py):
encrypts ballots of one contest with 5 choices, selection limit 1 (the shape crypto.py
measures), then times decoding (JSON) plus ballot_is_valid_for_election, proofs included,
in this process's CPU time (as crypto.py does) and wall time. Prints one JSON object."""

from __future__ import annotations

import json
import logging
import sys
import time
from datetime import datetime

from electionguard.ballot import CiphertextBallot, PlaintextBallot, PlaintextBallotContest, PlaintextBallotSelection
from electionguard.ballot_validator import ballot_is_valid_for_election
from electionguard.election import make_ciphertext_election_context
from electionguard.elgamal import elgamal_keypair_random
from electionguard.encrypt import encrypt_ballot
from electionguard.group import ONE_MOD_Q
from electionguard.manifest import (
    BallotStyle,
    Candidate,
    ContestDescription,
    ElectionType,
    GeopoliticalUnit,
    InternalManifest,
    Manifest,
    ReportingUnitType,
    SelectionDescription,
    SpecVersion,
    VoteVariationType,
)
from electionguard.serialize import from_raw, to_raw


def main() -> None:
    logging.disable(logging.CRITICAL)  # electionguard logs every encryption at INFO
    n_ballots = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    candidates = [Candidate(f"c{i}") for i in range(5)]
    selections = [SelectionDescription(f"s{i}", i, f"c{i}") for i in range(5)]
    contest = ContestDescription("contest-0", 0, "district", VoteVariationType.one_of_m, 1, 1, "contest", selections)
    manifest = Manifest(
        "bench", SpecVersion.EG0_95, ElectionType.general, datetime(2026, 1, 1), datetime(2026, 1, 2),
        [GeopoliticalUnit("district", "district", ReportingUnitType.county)], [], candidates, [contest],
        [BallotStyle("style", ["district"])],
    )
    internal = InternalManifest(manifest)
    keypair = elgamal_keypair_random()
    context = make_ciphertext_election_context(1, 1, keypair.public_key, ONE_MOD_Q, manifest.crypto_hash())
    encoded = []
    t0 = time.process_time()
    for b in range(n_ballots):
        choice = b % 5
        plain = PlaintextBallot(f"ballot-{b}", "style", [
            PlaintextBallotContest("contest-0", [PlaintextBallotSelection(f"s{choice}", 1, False)])
        ])
        encrypted = encrypt_ballot(plain, internal, context, ONE_MOD_Q, should_verify_proofs=False)
        assert encrypted is not None
        encoded.append(to_raw(encrypted))
    encrypt_s = (time.process_time() - t0) / n_ballots
    t0, w0 = time.process_time(), time.perf_counter()
    for raw in encoded:
        ballot = from_raw(CiphertextBallot, raw)
        assert ballot_is_valid_for_election(ballot, internal, context, True)
    cpu, wall = time.process_time() - t0, time.perf_counter() - w0
    print(json.dumps({"ballots": n_ballots, "verify_ballots_per_s": n_ballots / cpu,
                      "verify_ballots_per_s_wall": n_ballots / wall, "encrypt_ms": encrypt_s * 1000}))


if __name__ == "__main__":
    main()
