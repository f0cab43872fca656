"""A voter's selections as typed on the command line, and as an audit's opening shows them.

Syntax of ``--select``: one ``CONTEST:CHOICES`` part per contest of the election,
separated by ``;``. CONTEST and each CHOICE are indices from 0, in the order the
election lists them; CHOICES is a comma-separated list, or nothing for a contest left
blank. ``0:1;1:0,2;2:`` selects choice 1 in contest 0, choices 0 and 2 in contest 1, and
nothing in contest 2. Every contest is named exactly once, so a forgotten contest is an
error, never a silent blank.
"""

from __future__ import annotations

import re

from ledger.encrypted_ballot import BallotOpening
from ledger.errors import BadEncoding
from ledger.genesis import ElectionDef

SELECT_SYNTAX = "CONTEST:CHOICE[,CHOICE...] for every contest, joined by ';' (indices from 0; 'C:' leaves C blank)"
MAX_SELECT_CHARS = 4096
_PART = re.compile(r"^\s*(\d{1,3})\s*:\s*(\d{1,3}(?:\s*,\s*\d{1,3})*)?\s*$")


def parse_select(text: str, contests: int) -> list[list[int]]:
    """Per contest, the choice indices ``text`` selects (in the order given). Checks
    syntax and that each of the ``contests`` is named once; the ranges and the limits
    are :func:`ledger.voter.selection_vectors`' to check. ``BadEncoding`` otherwise."""
    if len(text) > MAX_SELECT_CHARS:
        raise BadEncoding(f"--select is longer than {MAX_SELECT_CHARS} characters")
    parts = text.strip().removesuffix(";").split(";")
    selected: dict[int, list[int]] = {}
    for part in parts:
        match = _PART.match(part)
        if match is None:
            raise BadEncoding(f"--select: cannot read {part.strip()[:40]!r}; write {SELECT_SYNTAX}")
        contest = int(match.group(1))
        if contest >= contests:
            raise BadEncoding(f"--select: contest {contest} does not exist (the election has {contests}: "
                              f"0 to {contests - 1})")
        if contest in selected:
            raise BadEncoding(f"--select: contest {contest} is named twice")
        choices = match.group(2)
        selected[contest] = [int(c) for c in choices.split(",")] if choices else []
    missing = [i for i in range(contests) if i not in selected]
    if missing:
        raise BadEncoding(f"--select: no selection for contest {', '.join(map(str, missing))}; "
                          "name every contest (write 'C:' to leave contest C blank)")
    return [selected[i] for i in range(contests)]


def opened_selections(election: ElectionDef, opening: BallotOpening) -> list[dict[str, object]]:
    """What an audit's opening says the ballot holds, contest by contest, by name."""
    return [
        {"contest": i, "question": contest.question,
         "selected": [contest.choices[j] for j, m in enumerate(ms) if m == 1]}
        for i, (contest, ms) in enumerate(zip(election.contests, opening.choices, strict=True))
    ]
