"""Benchmark: start-up time of the ``deepsphere-pyg`` command on calls that do no work.

Each call runs in a fresh subprocess (``python -m deepsphere_pyg ...``, what the
``deepsphere-pyg`` entry point runs) and is timed by the wall clock, ``--repeat`` times;
the table gives the median and the ratio to the baseline, ``python -c "import
torch_geometric"``, measured in the same run (the machines are shared and noisy). The
calls: ``--help``, ``train --help``, ``experiments``, and three configuration errors of
``train`` (an unknown section, a value of the wrong type, a missing ``--config`` file),
each checked for its exit status (0 for help and the listing, 2 for the errors).

Usage::

    python scripts/bench_cli_startup.py --repeat 5
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence

#: The baseline: importing PyTorch Geometric, the heaviest dependency of the package.
BASELINE = ("-c", "import torch_geometric")

#: Timed calls: label, arguments of ``deepsphere-pyg``, expected exit status.
CALLS: tuple[tuple[str, tuple[str, ...], int], ...] = (
    ("--help", ("--help",), 0),
    ("train --help", ("train", "--help"), 0),
    ("experiments", ("experiments",), 0),
    ("train: unknown section", ("train", "--set", "nosuchsection.x=1"), 2),
    ("train: bad value", ("train", "--set", "train.epochs=abc"), 2),
    ("train: missing --config", ("train", "--config", "no-such-file.yaml"), 2),
)


def wall_seconds(arguments: Sequence[str], expected: int, repeat: int) -> list[float]:
    """Wall-clock seconds of ``repeat`` runs of ``python ARGUMENTS``.

    Raises:
        RuntimeError: a run whose exit status is not ``expected`` (its stderr attached).
    """
    command = [sys.executable, *arguments]
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True)
        times.append(time.perf_counter() - start)
        if result.returncode != expected:
            raise RuntimeError(f"{shlex.join(command)} exited with {result.returncode}, "
                               f"expected {expected}:\n{result.stderr}")
    return times


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5,
                        help="runs per call, the median is reported (default 5)")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error(f"--repeat must be >= 1, got {args.repeat}")

    baseline = statistics.median(wall_seconds(BASELINE, 0, args.repeat))
    rows = [("python " + shlex.join(BASELINE) + " (baseline)", baseline)]
    for label, arguments, expected in CALLS:
        times = wall_seconds(("-m", "deepsphere_pyg", *arguments), expected, args.repeat)
        rows.append((f"deepsphere-pyg {label}", statistics.median(times)))

    width = max(len(label) for label, _ in rows)
    print(f"median of {args.repeat} run(s), wall clock, Python {sys.version.split()[0]}")
    print(f"| {'call':<{width}} | median (s) | / baseline |")
    print(f"|{'-' * (width + 2)}|-----------:|-----------:|")
    for label, seconds in rows:
        print(f"| {label:<{width}} | {seconds:10.2f} | {seconds / baseline:10.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
