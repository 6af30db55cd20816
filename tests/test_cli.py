"""The deepsphere-pyg command."""

import re
import subprocess
import sys

from deepsphere_pyg.cli import main


def test_demo_denoises_a_map(capsys):
    assert main(["demo", "--nside", "16", "--k", "8", "--order", "20"]) == 0
    out = capsys.readouterr().out
    assert "nside=16 k=8: 3072 nodes" in out
    noisy, filtered = map(float, re.search(r"noisy ([\d.]+) -> filtered ([\d.]+)", out).groups())
    assert filtered < 0.7 * noisy


def test_demo_reports_bad_arguments(capsys):
    assert main(["demo", "--nside", "12"]) == 2
    assert "nside must be a power of two" in capsys.readouterr().err


def test_module_entry_point_help():
    result = subprocess.run([sys.executable, "-m", "deepsphere_pyg", "demo", "--help"],
                            capture_output=True, text=True, check=True)
    assert "--nside" in result.stdout
