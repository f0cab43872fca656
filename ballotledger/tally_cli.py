"""``ballotledger tally ...``: the encrypted tally, recomputed from a verified bundle."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

app = typer.Typer(no_args_is_help=True, help="The encrypted tally: the sums trustees decrypt.")
console = Console(stderr=True)


@app.command("sums")
def sums(
    bundle: Path = typer.Option(..., help="An election bundle directory."),
    election: str = typer.Option(..., help="The encrypted election's id."),
    out: Path | None = typer.Option(None, help="Write the sums here (JSON) instead of to standard output."),
    pin_genesis: str | None = typer.Option(None, help="Refuse unless genesis has this hash."),
    jobs: int = typer.Option(1, min=1, max=256, help="Processes checking proofs and summing."),
    state: Path | None = typer.Option(None, help="Keep and resume the replay's state here (as verify does)."),
) -> None:
    """Verify the bundle (the full replay) and write one encrypted election's homomorphic
    sums over exactly its counted ballots. Exit 0 written, 1 bundle invalid, 2 unusable input
    or no such encrypted election. A trustee decrypts only sums it recomputed itself."""
    from ballotledger.report import print_report
    from ledger.encrypted_tally import sums_file_obj
    from verifier.verify import verify_bundle

    report = verify_bundle(bundle, pin_genesis=pin_genesis, jobs=jobs, state_dir=state)
    if not report.valid:
        print_report(console, report)
        raise typer.Exit(report.exit_code)
    total = report.encrypted_sums.get(election)
    if total is None or report.genesis_hash is None:
        console.print(f"[red]no encrypted election {escape(election)!r} on this chain[/]", soft_wrap=True)
        raise typer.Exit(2)
    entry = report.results[election]
    text = json.dumps(sums_file_obj(total, genesis_hash=bytes.fromhex(report.genesis_hash),
                                    tip_height=report.tip_height, voting_closed=entry["voting_closed"]),
                      indent=2, sort_keys=True) + "\n"
    if out is None:
        print(text, end="")
    else:
        out.write_text(text)
    state_note = "voting closed" if entry["voting_closed"] else "[yellow]voting still open: not final[/]"
    console.print(f"sums of {escape(election)} over {total.ballots} counted ballots at height {report.tip_height} "
                  f"({state_note}): sha256 {total.sha256()}" + (f" -> {escape(str(out))}" if out else ""),
                  soft_wrap=True)
