"""Matplotlib set-up shared by every figure of :mod:`deepsphere_pyg.plots`.

Matplotlib (a dependency; ``pip install matplotlib`` where it was left out) is imported
when a function is called (:func:`import_matplotlib`). Figures are plain
:class:`matplotlib.figure.Figure` objects drawn by the Agg canvas (:func:`new_figure`),
so nothing here touches pyplot's global state: the backend of an interactive session is
left alone and no figure is left open. :func:`save_figure` writes them as PNG files,
atomically; :func:`float_array` turns the arrays and tensors the figures are given into
float64 NumPy arrays.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..io import atomic_path

if TYPE_CHECKING:  # pragma: no cover - typing only
    from matplotlib.figure import Figure

__all__ = ["float_array", "import_matplotlib", "new_figure", "save_figure"]


# ------------------------------------------------------------------------ matplotlib
def import_matplotlib() -> Any:
    """The ``matplotlib`` module, or an ImportError that says how to install it."""
    try:
        import matplotlib
        import matplotlib.backends.backend_agg  # noqa: F401 - the canvas of every figure
        import matplotlib.cm  # noqa: F401
        import matplotlib.collections  # noqa: F401
        import matplotlib.colors  # noqa: F401
        import matplotlib.figure  # noqa: F401
        import matplotlib.patches  # noqa: F401
    except ImportError as error:
        raise ImportError(
            "deepsphere_pyg.plots needs matplotlib: pip install matplotlib"
        ) from error
    return matplotlib


def new_figure(width: float, height: float) -> Figure:
    """A pyplot-free figure of ``width`` x ``height`` inches on an Agg canvas."""
    mpl = import_matplotlib()
    figure = mpl.figure.Figure(figsize=(width, height))
    mpl.backends.backend_agg.FigureCanvasAgg(figure)
    return figure


def save_figure(figure: Figure, path: str | os.PathLike, dpi: int = 100) -> None:
    """Write ``figure`` as a PNG file at ``path``, atomically, then close it.

    The image is saved to a temporary file in the destination folder and renamed over
    ``path`` (:func:`os.replace`), so readers see the previous file or the complete new
    one, never a partial image; a failing save leaves ``path`` untouched and removes the
    temporary file. Missing parent folders are created. The figure is closed afterwards
    (released from pyplot when pyplot manages it), also when saving fails.

    Args:
        figure: a :class:`matplotlib.figure.Figure`.
        path: destination file (written as PNG whatever its suffix).
        dpi: resolution in dots per inch (default 100).
    """
    try:
        with atomic_path(path, ".png.tmp") as tmp, open(tmp, "wb") as file:
            figure.savefig(file, format="png", dpi=dpi)
            file.flush()
            os.fsync(file.fileno())
    finally:
        _close(figure)


def _close(figure: Figure) -> None:
    """Release ``figure``: from pyplot when pyplot holds it, else clear it."""
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None and getattr(figure, "number", None) in pyplot.get_fignums():
        pyplot.close(figure)
    else:
        figure.clear()


# ------------------------------------------------------------------------- helpers
def float_array(values: Any, name: str) -> np.ndarray:
    """``values`` (array, tensor, sequence) as a float64 NumPy array; a TypeError that
    names the argument ``name`` when it is not numeric."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{name} must be a numeric array or tensor, got "
                        f"{type(values).__name__}") from error
