"""A verification kept in a state directory resumes: after an interruption, and on a
bundle that has grown since; and it refuses a state that does not belong to the bundle."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ballotledger.bundlegen import generate_bundle
from verifier.bundle import BLOCKS_FILE
from verifier.verify import EXIT_UNUSABLE, verify_bundle


class Interrupted(Exception):
    pass


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("resume") / "b"
    generate_bundle(out, 150, block_ballots=30, processes=1, max_block_ballots=100)
    return out


def _blocks_replayed(
    directory: Path, state: Path, *, missing: str | None = None
) -> tuple[list[int], dict[str, object]]:
    """Verify with a state; valid, or (``missing``) valid as far as it goes but lacking that file."""
    seen: list[int] = []
    report = verify_bundle(directory, state_dir=state, on_block=lambda h, n: seen.append(h))
    if missing is None:
        assert report.valid, report.failure
    else:
        assert report.failure is not None and report.exit_code == 1
        assert (report.failure["check"], report.failure["where"]) == ("missing_file", missing)
    return seen, report.to_json_obj()


def _same_verdict(a: dict[str, object], b: dict[str, object]) -> None:
    keys = ("valid", "blocks", "ballots", "tip_height", "log_size", "log_root", "results")
    assert {k: a[k] for k in keys} == {k: b[k] for k in keys}


def test_an_interrupted_verification_resumes_where_it_stopped(bundle: Path, tmp_path: Path) -> None:
    fresh = verify_bundle(bundle).to_json_obj()
    state = tmp_path / "state"

    def stop_after_two(height: int, _n: int) -> None:
        if height == 2:
            raise Interrupted

    with pytest.raises(Interrupted):
        verify_bundle(bundle, state_dir=state, on_block=stop_after_two)
    seen, resumed = _blocks_replayed(bundle, state)
    assert seen == [3, 4, 5]  # blocks 1 and 2 were saved with their index changes
    _same_verdict(resumed, fresh)
    seen, again = _blocks_replayed(bundle, state)  # nothing new: nothing replayed
    assert seen == []
    _same_verdict(again, fresh)


def test_a_grown_bundle_is_checked_from_its_new_blocks(bundle: Path, tmp_path: Path) -> None:
    partial = shutil.copytree(bundle, tmp_path / "partial")
    lines = (bundle / BLOCKS_FILE).read_bytes().splitlines(keepends=True)
    (partial / BLOCKS_FILE).write_bytes(b"".join(lines[:3]))
    (partial / "results.json").unlink()  # not written yet: export writes it last
    state = tmp_path / "state"
    seen, _ = _blocks_replayed(partial, state, missing="results.json")  # replayed and saved, then incomplete
    assert seen == [1, 2, 3]
    (partial / BLOCKS_FILE).write_bytes(b"".join(lines))  # the export went on
    shutil.copy(bundle / "results.json", partial / "results.json")
    seen, grown = _blocks_replayed(partial, state)
    assert seen == [4, 5]
    _same_verdict(grown, verify_bundle(bundle).to_json_obj())


def test_a_changed_prefix_or_another_chain_is_refused(bundle: Path, tmp_path: Path) -> None:
    copy = shutil.copytree(bundle, tmp_path / "copy")
    state = tmp_path / "state"
    _blocks_replayed(copy, state)
    data = bytearray((copy / BLOCKS_FILE).read_bytes())
    data[40] ^= 1  # inside line 1, which the state says was verified
    (copy / BLOCKS_FILE).write_bytes(bytes(data))
    report = verify_bundle(copy, state_dir=state)
    assert report.exit_code == EXIT_UNUSABLE and report.failure is not None
    assert report.failure["check"] == "state_mismatch" and "changed" in report.failure["message"]

    other = tmp_path / "other"
    generate_bundle(other, 30, seed="another", block_ballots=30, processes=1)
    report = verify_bundle(other, state_dir=state)
    assert report.exit_code == EXIT_UNUSABLE and report.failure is not None
    assert report.failure["check"] == "state_mismatch" and "another chain" in report.failure["message"]
