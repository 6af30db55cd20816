"""File helpers: output that is never left half-written, reports with their provenance,
text cells read as numbers."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary file next to ``path`` to write; renamed onto ``path`` when the block
    ends without an exception, removed otherwise.

    Readers see either the old file or the complete new one. Missing parent folders are
    created; the file gets the usual permissions (0644 less the umask), not the private
    ones of a temporary file.

    Example:
        >>> import numpy as np, tempfile, os
        >>> target = os.path.join(tempfile.mkdtemp(), "a.npy")
        >>> with atomic_path(target, ".npy") as tmp:
        ...     np.save(tmp, np.zeros(3))
        >>> np.load(target).shape
        (3,)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(handle)
    try:
        yield Path(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o644 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def is_number_text(text: str) -> bool:
    """Whether a text cell (of a CSV file, say) reads as a number: ``"1e-3"`` yes,
    ``"lon"`` no."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` through :func:`atomic_path` (flushed to disk
    before the rename)."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())


def publish_report(text: str, output: str | os.PathLike | None = None) -> None:
    """Print a Markdown report and, when ``output`` is given, write it there atomically."""
    print(text if text.endswith("\n") else text + "\n", end="")
    if output:
        write_text_atomic(output, text)


def machine_description() -> str:
    """One line naming the platform, CPU count, load and the versions results depend on."""
    import platform

    import healpy
    import numpy
    import scipy
    import torch

    try:
        load = "load average " + ", ".join(f"{value:.1f}" for value in os.getloadavg())
    except OSError:
        load = "load average unknown"
    device = (torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU")
    return (f"{platform.platform()}, {os.cpu_count()} CPUs ({load}), {device}; Python "
            f"{platform.python_version()}, torch {torch.__version__}, numpy "
            f"{numpy.__version__}, scipy {scipy.__version__}, healpy {healpy.__version__}")


def provenance_lines(seed: int | None = None) -> list[str]:
    """Markdown lines recording how a result was produced: command line, seed, machine.

    Scripts put them under their report's title so every published number names the
    command that reproduces it.
    """
    import shlex
    import sys

    command = " ".join(shlex.quote(arg) for arg in [Path(sys.executable).name, *sys.argv])
    lines = [f"Command: `{command}`"]
    if seed is not None:
        lines.append(f"Seed: {seed}")
    lines.append(f"Machine: {machine_description()}")
    return lines
