"""Secret-ballot cryptography benchmark: encryption, verification against its floor, the tally.

    python scripts/bench/crypto.py [--quick]

One core (one process, one thread). The ballot shape is one contest of 5 choices with a
selection limit of 1: 5 ciphertexts, 5 proofs of 0-or-1 and one proof on their product.

- ``encrypt_ms``: median time to encrypt such a ballot with all its proofs and encode it.
- ``verify_ballots_per_s_per_core``: ``encrypted_ballot.verify_payload`` (decoding,
  shape, every proof) over distinct ballots.
- ``floor_ballots_per_s_per_core``: the same ballots' libsecp256k1 calls alone, through
  coincurve's bindings with every argument prepared beforehand (10 point parses, the two
  contest sums, and per proof branch: two constant-time multiplications, two sums of
  34 points (a fixed-base table's 33 terms and the product), one shift for the second
  branch, two serialisations); ``verify_over_floor`` is the ratio, in the same run.
- ``tally_1m_s``: the sums over 1,000,000 ballots (their ciphertexts read from checked
  payloads), decryption shares with proofs from 3 of 5 trustees, the combination and
  the discrete logs bounded by 1,000,000. ``--quick`` sums fewer ballots and
  extrapolates the linear part (``tally_ballots_measured`` says how many).
- ``tally_verify_1m_s``: recomputing the sums, every posted share's proof, the
  combination and the published counts (a check, no discrete log).
- ``electionguard_verify_ballots_per_s``: electionguard-python 1.4.0 (4096-bit group) on
  the same shape, decoding (JSON) plus ``ballot_is_valid_for_election``, in its own venv
  under pyenv's Python 3.10.13 (it does not import on 3.11); null with the reason if it
  cannot run.

Times are this process's CPU time (``time.process_time``): on a machine shared with
other work, wall time measures the neighbours as much as the code. Wall-clock rates for
verification and the floor are reported beside them (``*_wall``), and the load average
before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit, machine, peak_rss_mib
from coincurve._libsecp256k1 import ffi, lib

from ledger.crypto import SigningKey
from ledger.elgamal import discrete_log
from ledger.encrypted_ballot import (
    BallotContext,
    ContestShape,
    EncryptedBallot,
    encoded_ciphertexts,
    encrypt_ballot,
    verify_payload,
)
from ledger.group import (
    LIB_CONTEXT,
    ORDER,
    POINT_SIZE,
    TERM_WORDS,
    base_mul,
    base_table,
    neg_base_multiple,
    scalar_lanes,
)
from ledger.tally_crypto import CiphertextAccumulator, TallyContext, decrypt_tally, make_decryption_share, verify_tally
from ledger.trustees import (
    CeremonyContext,
    TrusteeSecret,
    combine_shares,
    deal,
    decrypt_share,
    joint_key,
    qualified_dealers,
)

SHAPE = (ContestShape(5, 1),)
TALLY_TARGET = 1_000_000
EG_PYTHON = Path.home() / ".pyenv/versions/3.10.13/bin/python"
EG_VENV = Path.home() / ".cache/ballot-ledger-bench/electionguard-1.4.0"


class Clock:
    """CPU and wall time of one measured stretch."""

    def __enter__(self) -> Clock:
        self.cpu0, self.wall0 = time.process_time(), time.perf_counter()
        return self

    def __exit__(self, *_: object) -> None:
        self.cpu = time.process_time() - self.cpu0
        self.wall = time.perf_counter() - self.wall0


def ceremony(n: int = 5, t: int = 3) -> tuple[CeremonyContext, dict[int, TrusteeSecret], Any]:
    drafts = {i: TrusteeSecret.generate(i, t) for i in range(1, n + 1)}
    ctx = CeremonyContext("bench-chain", "bench-election", tuple(drafts[i].encryption_key for i in drafts), t)
    commitments, shares = [], []
    for s in drafts.values():
        c, enc = deal(ctx, s)
        commitments.append(c)
        shares.extend(enc)
    qualified = qualified_dealers(ctx, commitments)
    final = {
        j: s.with_share(combine_shares([*(decrypt_share(ctx, e, s) for e in shares if e.recipient == j),
                                        s.evaluate(j)]))
        for j, s in drafts.items()
    }
    return ctx, final, qualified


def contexts(key: bytes, n: int) -> list[BallotContext]:
    return [
        BallotContext("bench-chain", "bench-election", key, credential, SHAPE)
        for credential in (SigningKey.from_seed(f"voter-{i}".encode()).public_key for i in range(n))
    ]


def bench_encrypt(ctxs: list[BallotContext]) -> tuple[float, list[bytes]]:
    """Median CPU milliseconds per ballot (in groups of 10: process_time is coarse)."""
    times, payloads = [], []
    for start in range(0, len(ctxs), 10):
        with Clock() as clock:
            for i in range(start, min(start + 10, len(ctxs))):
                selections = [[1 if j == i % 6 else 0 for j in range(5)]]  # every sixth selects nothing
                ballot, _ = encrypt_ballot(ctxs[i], selections)
                payloads.append(ballot.encode())
        times.append(clock.cpu / (min(start + 10, len(ctxs)) - start))
    return statistics.median(times) * 1000, payloads


def bench_verify(ctxs: list[BallotContext], payloads: list[bytes]) -> Clock:
    with Clock() as clock:
        for ctx, raw in zip(ctxs, payloads, strict=True):
            verify_payload(ctx, raw)
    return clock


class FloorBallot:
    """One ballot's library calls with every argument prepared."""

    def __init__(self, ctx: BallotContext, raw: bytes) -> None:
        ballot = EncryptedBallot.decode(raw, max_size=len(raw))
        self.points = encoded_ciphertexts(ctx, raw)
        self.structs = [ffi.new("secp256k1_pubkey *") for _ in self.points]
        alphas = self.structs[0::2]
        betas = self.structs[1::2]
        self.alpha_arr = ffi.new("secp256k1_pubkey *[]", alphas)
        self.beta_arr = ffi.new("secp256k1_pubkey *[]", betas)
        self.sum_alpha = ffi.new("secp256k1_pubkey *")
        self.sum_beta = ffi.new("secp256k1_pubkey *")
        self.term = ffi.new("secp256k1_pubkey *")
        self.total = ffi.new("secp256k1_pubkey *")
        self.keep: list[Any] = []  # the arrays the casts below point into
        key_table = ctx.key.table
        g_table = base_table()
        proofs = [(alphas[i], betas[i], sel.proof) for i, sel in enumerate(ballot.contests[0].selections)]
        proofs.append((self.sum_alpha, self.sum_beta, ballot.contests[0].proof))
        self.branches = []
        for alpha, beta, proof in proofs:
            for j, (c, v) in enumerate(zip(proof.challenges, proof.responses, strict=True)):
                neg_c = (ORDER - c).to_bytes(32, "big")
                arrays = []
                for table in (g_table, key_table):
                    words = ffi.new(f"uintptr_t[{TERM_WORDS + 1}]")
                    table.fill(scalar_lanes(v), words)
                    words[TERM_WORDS] = int(ffi.cast("uintptr_t", self.term))
                    self.keep.append(words)
                    arrays.append(ffi.cast("secp256k1_pubkey **", words))
                shift = None if j == 0 else ffi.new("secp256k1_pubkey *[2]", [beta, neg_base_multiple(j).raw])
                self.branches.append((alpha, beta, neg_c, arrays[0], TERM_WORDS + 1, arrays[1], TERM_WORDS + 1, shift))
        self.out = ffi.new("unsigned char[33]")
        self.out_len = ffi.new("size_t *", POINT_SIZE)

    def run(self) -> None:
        ctx, term, total, out, out_len = LIB_CONTEXT, self.term, self.total, self.out, self.out_len
        parse, combine = lib.secp256k1_ec_pubkey_parse, lib.secp256k1_ec_pubkey_combine
        tweak_mul = lib.secp256k1_ec_pubkey_tweak_mul
        serialize, memmove, compressed = lib.secp256k1_ec_pubkey_serialize, ffi.memmove, lib.SECP256K1_EC_COMPRESSED
        for raw, struct in zip(self.points, self.structs, strict=True):
            parse(ctx, struct, raw, POINT_SIZE)
        combine(ctx, self.sum_alpha, self.alpha_arr, 5)
        combine(ctx, self.sum_beta, self.beta_arr, 5)
        for alpha, beta, neg_c, g_arr, ng, k_arr, nk, shift in self.branches:
            memmove(term, alpha, 64)
            tweak_mul(ctx, term, neg_c)
            combine(ctx, total, g_arr, ng)
            serialize(ctx, out, out_len, total, compressed)
            if shift is None:
                memmove(term, beta, 64)
            else:
                combine(ctx, term, shift, 2)
            tweak_mul(ctx, term, neg_c)
            combine(ctx, total, k_arr, nk)
            serialize(ctx, out, out_len, total, compressed)


def bench_floor(floors: list[FloorBallot]) -> Clock:
    with Clock() as clock:
        for f in floors:
            f.run()
    return clock


def bench_tally(
    cer: tuple[CeremonyContext, dict[int, TrusteeSecret], Any], ctx: BallotContext,
    payloads: list[bytes], n_ballots: int,
) -> dict[str, Any]:
    cctx, secrets, qualified = cer
    tctx = TallyContext.from_ceremony(cctx, qualified)

    def sums() -> tuple[Any, float]:
        acc = CiphertextAccumulator(5)
        with Clock() as clock:
            for i in range(n_ballots):
                acc.add_encoded(encoded_ciphertexts(ctx, payloads[i % len(payloads)]))
            result = acc.sums()
        return result, clock.cpu

    totals, sum_s = sums()
    scale = TALLY_TARGET / n_ballots
    with Clock() as clock:
        posted = [make_decryption_share(tctx, totals, j, secrets[j].share or 0) for j in (1, 3, 5)]
        posted.append(make_decryption_share(tctx, totals, 4, (secrets[4].share or 0) + 1))  # a bad share, named
    shares_s = clock.cpu
    with Clock() as clock:
        outcome = decrypt_tally(tctx, totals, posted, n_ballots)
    combine_s = clock.cpu
    assert set(outcome.rejected) == {4}
    expected = [sum(1 for i in range(n_ballots) if (i % len(payloads)) % 6 == c) for c in range(5)]
    assert list(outcome.counts) == expected, (outcome.counts, expected)
    # the discrete logs at full size: counts scaled to 1,000,000 ballots, bound 1,000,000
    with Clock() as clock:
        for count in outcome.counts:
            discrete_log(base_mul(round(count * scale)), TALLY_TARGET)
    dlog_1m_s = clock.cpu
    totals2, sum2_s = sums()
    with Clock() as clock:
        verify_tally(tctx, totals2, posted, outcome.counts, n_ballots)
    check_s = clock.cpu
    return {
        "tally_ballots_measured": n_ballots,
        "tally_extrapolated": n_ballots != TALLY_TARGET,
        "tally_distinct_payloads": len(payloads),
        "tally_sum_us_per_ballot": round(sum_s / n_ballots * 1e6, 2),
        "tally_shares_s": round(shares_s, 3),
        "tally_combine_and_dlog_s": round(combine_s, 3),
        "tally_dlog_1m_s": round(dlog_1m_s, 3),
        "tally_1m_s": round(sum_s * scale + shares_s + combine_s + dlog_1m_s, 1),
        "tally_verify_1m_s": round(sum2_s * scale + check_s, 1),
    }


def bench_electionguard(n_ballots: int, budget_s: float) -> dict[str, Any]:
    """electionguard 1.4.0 in a venv of its own (made on first use)."""
    script = Path(__file__).resolve().parent / "_electionguard_verify.py"
    python = EG_VENV / "bin/python"
    started = time.monotonic()
    try:
        if not python.exists():
            if not EG_PYTHON.exists():
                return {"electionguard_verify_ballots_per_s": None,
                        "electionguard_reason": f"no Python 3.10 at {EG_PYTHON} (electionguard 1.4.0 needs < 3.11)"}
            subprocess.run([str(EG_PYTHON), "-m", "venv", str(EG_VENV)], check=True, capture_output=True, timeout=120)
            subprocess.run([str(python), "-m", "pip", "install", "-q", "electionguard==1.4.0"], check=True,
                           capture_output=True, timeout=max(60.0, budget_s - (time.monotonic() - started)))
        proc = subprocess.run([str(python), str(script), str(n_ballots)], capture_output=True, text=True,
                              timeout=max(60.0, budget_s - (time.monotonic() - started)))
        last = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
        if proc.returncode != 0 or not last.startswith("{"):
            return {"electionguard_verify_ballots_per_s": None,
                    "electionguard_reason": f"exit {proc.returncode}: {proc.stderr.strip()[-300:]}"}
        figures = json.loads(last)
        return {"electionguard_verify_ballots_per_s": round(figures["verify_ballots_per_s"], 2),
                "electionguard_verify_ballots_per_s_wall": round(figures["verify_ballots_per_s_wall"], 2),
                "electionguard_encrypt_ms": round(figures["encrypt_ms"], 1),
                "electionguard_ballots_measured": figures["ballots"]}
    except (OSError, subprocess.SubprocessError) as exc:
        return {"electionguard_verify_ballots_per_s": None, "electionguard_reason": f"{type(exc).__name__}: {exc}"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--skip-electionguard", action="store_true")
    args = parser.parse_args()
    figures: dict[str, Any] = {"benchmark": "crypto", "quick": args.quick, "machine": machine(),
                               "load_before": [round(x, 2) for x in os.getloadavg()]}
    n_ballots = 150 if args.quick else 1000
    cer = ceremony()
    key = joint_key(cer[2]).encode()
    ctxs = contexts(key, n_ballots)
    ctxs[0].key.table  # noqa: B018 - build the election key's table outside the timings
    base_table()
    print(f"  encrypting {n_ballots} ballots ...", file=sys.stderr)
    figures["encrypt_ms"], payloads = bench_encrypt(ctxs)
    figures["encrypt_ms"] = round(figures["encrypt_ms"], 3)
    figures["payload_bytes"] = len(payloads[0])
    rounds = 3 if args.quick else 5
    print("  verifying against the floor ...", file=sys.stderr)
    floors = [FloorBallot(ctx, raw) for ctx, raw in zip(ctxs, payloads, strict=True)]
    verify, floor = [], []
    for _ in range(rounds):  # interleaved, so a change in the machine's load hits both
        verify.append(bench_verify(ctxs, payloads))
        floor.append(bench_floor(floors))
    n = len(payloads)
    figures["verify_ballots_per_s_per_core"] = round(n * rounds / sum(c.cpu for c in verify), 1)
    figures["floor_ballots_per_s_per_core"] = round(n * rounds / sum(c.cpu for c in floor), 1)
    figures["verify_over_floor"] = round(sum(c.cpu for c in floor) / sum(c.cpu for c in verify), 3)
    figures["verify_ballots_per_s_wall"] = round(n * rounds / sum(c.wall for c in verify), 1)
    figures["floor_ballots_per_s_wall"] = round(n * rounds / sum(c.wall for c in floor), 1)
    figures["clock"] = "process CPU time (wall-clock rates in *_wall)"
    print("  tally ...", file=sys.stderr)
    figures.update(bench_tally(cer, ctxs[0], payloads, 40_000 if args.quick else TALLY_TARGET))
    if args.skip_electionguard:
        figures["electionguard_verify_ballots_per_s"] = None
        figures["electionguard_reason"] = "skipped (--skip-electionguard)"
    else:
        print("  electionguard 1.4.0 ...", file=sys.stderr)
        figures.update(bench_electionguard(6 if args.quick else 30, 20 * 60))
    eg = figures.get("electionguard_verify_ballots_per_s")
    figures["verify_over_electionguard"] = round(figures["verify_ballots_per_s_per_core"] / eg, 1) if eg else None
    figures["load_after"] = [round(x, 2) for x in os.getloadavg()]
    figures["peak_rss_mib"] = peak_rss_mib()
    emit(figures)


if __name__ == "__main__":
    main()
