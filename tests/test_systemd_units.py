"""The systemd units in docs/systemd: valid for systemd, and their command lines are ones
the installed ``ballotledger`` accepts (a config that does not exist is refused with exit 2,
the status the units do not restart on)."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNITS = Path(__file__).resolve().parent.parent / "docs" / "systemd"
INSTALLED = "/opt/ballotledger/.venv/bin/ballotledger"
HERE = str(Path(sys.executable).with_name("ballotledger"))


def _exec_start(unit: Path) -> list[str]:
    (line,) = [ln for ln in unit.read_text().splitlines() if ln.startswith("ExecStart=")]
    return shlex.split(line.removeprefix("ExecStart="))


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    names = []
    for unit in sorted(UNITS.glob("*.service")):
        # A template is verified as one of its instances, with this machine's executable.
        name = unit.name.replace("@.service", "@v1.service")
        (tmp_path / name).write_text(unit.read_text().replace(INSTALLED, HERE))
        names.append(str(tmp_path / name))
    assert len(names) == 2
    done = subprocess.run(["systemd-analyze", "verify", *names], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_unit_command_lines_are_ones_the_cli_accepts(tmp_path: Path) -> None:
    for unit in sorted(UNITS.glob("*.service")):
        argv = _exec_start(unit)
        assert argv[0] == INSTALLED
        config = argv.index("--config") + 1
        argv[0], argv[config] = HERE, str(tmp_path / "missing.toml")
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        assert done.returncode == 2, (unit.name, done.stdout, done.stderr)
        assert "missing.toml" in done.stdout + done.stderr
        assert "Traceback" not in done.stderr
        assert "RestartPreventExitStatus=2" in unit.read_text()
