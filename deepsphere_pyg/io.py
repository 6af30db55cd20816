"""File output that is never left half-written."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file in the same folder and
    an atomic rename, so readers see either the old file or the complete new one. Missing
    parent folders are created; the file gets the usual permissions (0644 less the umask),
    not the private ones of a temporary file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o644 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def publish_report(text: str, output: str | os.PathLike | None = None) -> None:
    """Print a Markdown report and, when ``output`` is given, write it there atomically."""
    print(text if text.endswith("\n") else text + "\n", end="")
    if output:
        write_text_atomic(output, text)
