"""Rendering a verification report for people (rich) and for machines (JSON)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from verifier.verify import Report


def print_report(console: Console, report: Report) -> None:
    if report.failure is not None:
        f = report.failure
        title = "INVALID" if report.exit_code == 1 else "UNUSABLE INPUT"
        # one line each, whatever the width, and nothing from the input taken as markup
        console.print(f"[bold red]{title}[/]: check [bold]{escape(f['check'])}[/] failed", soft_wrap=True)
        if f.get("where"):
            console.print(f"  where: {escape(f['where'])}", soft_wrap=True)
        console.print(f"  why:   {escape(f['message'])}", soft_wrap=True)
        return
    summary = Table(title="Chain verified from genesis", show_header=False)
    summary.add_row("chain id", str(report.chain_id))
    summary.add_row("genesis hash (pin this)", str(report.genesis_hash))
    summary.add_row("blocks", str(report.blocks))
    summary.add_row("ballots recorded", str(report.ballots))
    summary.add_row("log size / root", f"{report.log_size} / {report.log_root}")
    summary.add_row("time", f"{report.seconds:.2f} s")
    console.print(summary)
    for election_id, res in report.results.items():
        phase = f", phase {res['phase']}" if "phase" in res else ""
        if "tally" not in res:  # encrypted: no count per choice exists before a checked result
            _print_encrypted(console, election_id, res, phase)
            continue
        table = Table(title=f"Tally of {election_id} ({res['ballots_counted']} counted, "
                      f"{res['ballots_recorded']} recorded{phase})")
        table.add_column("choice")
        table.add_column("votes", justify="right")
        for choice, votes in res["tally"].items():
            table.add_row(choice, str(votes))
        console.print(table)
        if "published_on_chain" in res:
            console.print(f"Result published on chain by the authority: {res['published_on_chain']} "
                          "(matches the count of the ballots)")
    console.print("[bold green]VALID[/]: every header link, certificate, ballot, proof and rule checked")


def _print_encrypted(console: Console, election_id: str, res: dict[str, Any], phase: str) -> None:
    console.print(f"Encrypted election {escape(election_id)}: {res['ballots_counted']} counted, "
                  f"{res['ballots_recorded']} recorded{phase}")
    if "encrypted_sum_sha256" in res:
        console.print(f"  sums over the {res['ballots_summed']} counted ballots: sha256 {res['encrypted_sum_sha256']}")
    if "decrypted_counts" in res:
        console.print(f"  decrypted result {res['decrypted_counts']}, checked against the sums with the shares "
                      f"of trustees {res['decryption_shares_used']}")
        for trustee, why in res["decryption_shares_refused"].items():
            console.print(f"  share of trustee {trustee} refused: {escape(why)}", soft_wrap=True)
