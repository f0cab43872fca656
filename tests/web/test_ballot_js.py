"""The page's checks of an encrypted ballot's proofs (web/src/ballot.js, run by Node)
give the same verdicts as ledger/ on ballots ledger/ made: valid ones of several shapes,
and ballots with a changed ciphertext, proofs for another election, chain, key or
credential, a selection encrypting 2, a contest over its limit, and every kind of
non-canonical point, scalar and shape; the same refusal code at the same contest and
selection."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.web.ballot_vectors import ballot_vectors

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "web"
NODE = shutil.which("node")
pytestmark = [
    pytest.mark.skipif(NODE is None, reason="Node.js is not installed (scripts/test needs it for the page)"),
    pytest.mark.skipif(not (WEB / "node_modules" / "@noble").is_dir(),
                       reason="web/node_modules is missing: run scripts/build_web.sh --install"),
]


def test_the_browser_checks_ballot_proofs_as_the_ledger_does(tmp_path: Path) -> None:
    """Fails when ballot.js drifts from ledger/encrypted_ballot.py or ledger/sigma.py
    (tried by hand: with the joint key left out of the ballot statement, every valid
    ballot is refused; with the scalar check `k >= ORDER` made `k > ORDER`, the
    scalar_equal_to_order case is accepted as a proof failure instead of bad_scalar)."""
    vectors = ballot_vectors()
    path = tmp_path / "ballots.json"
    path.write_text(json.dumps(vectors))
    result = subprocess.run([str(NODE), str(WEB / "test" / "run_ballots.mjs"), str(path)],
                            capture_output=True, text=True, timeout=120, cwd=WEB)
    assert result.returncode == 0, result.stderr
    got = json.loads(result.stdout)
    assert got == [{"name": v["name"], "refused": v["refused"]} for v in vectors]
    verdicts = {v["name"]: v["refused"] for v in vectors}
    assert [n for n, r in verdicts.items() if r is None] == ["valid", "valid_blank", "valid_wide", "valid_wide_blank"]
    assert verdicts["encrypts_two"] == {"code": "bad_ballot_proof", "where": "contest 0 selection 1"}
    assert verdicts["proof_for_another_election"] == {"code": "bad_ballot_proof", "where": "contest 0 selection 0"}
    assert {verdicts[n]["code"] for n in ("off_curve_point", "x_not_below_p", "identity_as_zeros")} == {"bad_point"}


def test_the_scanner_reads_tracking_codes_and_the_codes_the_page_draws() -> None:
    """A QR code's text gives its tracking code (bare, 0x-prefixed, upper case, or the
    ``?code=`` of a receipt page's address) and nothing else; the page's own drawing of a
    checked code, as a camera would see it, reads back to that code."""
    code = "5eb0" * 16
    result = subprocess.run([str(NODE), str(WEB / "test" / "run_scan.mjs"), code],
                            capture_output=True, text=True, timeout=60, cwd=WEB)
    assert result.returncode == 0, result.stderr
    got = json.loads(result.stdout)
    assert got["codes"] == [code] * 6 + [None] * 6
    assert got["drawn"] == code


def test_the_page_reads_an_elections_scheme_contests_and_key_from_its_definition() -> None:
    """Through a node's RPC the page learns an election defined on chain, or a ceremony
    election's key, from its definition (``ballot_getElections``): its scheme, contests,
    and the key once the ceremony set it, none before; a plaintext election has none."""
    from ledger.crypto import SigningKey
    from ledger.genesis import Genesis
    from ledger.group import base_mul
    from tests.web.vectors import genesis_vectors

    wide = Genesis.from_json_obj(genesis_vectors()[1]["genesis"])
    ceremony = wide.election("ceremony-2026")
    plain = wide.elections[0]
    assert ceremony is not None and ceremony.has_ceremony and not ceremony.joint_key
    point = base_mul(int.from_bytes(SigningKey.from_seed(b"joint").public_key[1:], "big"))
    assert point is not None
    keyed = ceremony.with_joint_key(point.encode())
    definitions = [d.encode().hex() for d in (keyed, ceremony, plain)]
    script = ("import('./src/ledger.js').then((m) => process.stdout.write(JSON.stringify(JSON.parse(process.argv[1])"
              ".map((d) => { const h = m.decodeElectionHead(m.fromHex(d, 'definition')); "
              "return [h.id, m.toHex(h.jointKey), h.payloadScheme, h.contests]; }))))")
    result = subprocess.run([str(NODE), "-e", script, json.dumps(definitions)], capture_output=True, text=True,
                            timeout=60, cwd=WEB)
    assert result.returncode == 0, result.stderr
    contests = [c.to_json_obj() for c in ceremony.contests]
    assert json.loads(result.stdout) == [
        ["ceremony-2026", point.encode().hex(), "elgamal-secp256k1/v1", contests],
        ["ceremony-2026", "", "elgamal-secp256k1/v1", contests],
        [plain.election_id, "", plain.payload_scheme, []],
    ]
