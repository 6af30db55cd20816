"""Figures of sphere graphs, node signals and training runs, written as PNG files.

Matplotlib (a dependency; ``pip install matplotlib`` where it was left out) is imported
when a function is called. Figures are plain :class:`matplotlib.figure.Figure` objects
drawn by the Agg canvas, so nothing here touches pyplot's global state: the backend
of an interactive session is left alone and no figure is left open.

What lives where:

* :mod:`~deepsphere_pyg.plots.figure`: the matplotlib set-up (lazy import, Agg
  figures), the conversion of input arrays, and :func:`save_figure` (atomic PNG write).
* :mod:`~deepsphere_pyg.plots.sphere`: sphere maps (:func:`plot_maps`, the Mollweide
  panels, :data:`MISSING_COLOR`, :data:`MAX_SCATTER_POINTS`) and graph pictures
  (:func:`plot_graph`, :data:`WINDOW_NODES`).
* :mod:`~deepsphere_pyg.plots.training`: training figures (:func:`plot_learning_curves`,
  :func:`plot_confusion_matrix`).

The public names of these modules are re-exported here.
"""

from .figure import save_figure
from .sphere import MAX_SCATTER_POINTS, MISSING_COLOR, WINDOW_NODES, plot_graph, plot_maps
from .training import plot_confusion_matrix, plot_learning_curves

__all__ = [
    "MAX_SCATTER_POINTS",
    "MISSING_COLOR",
    "WINDOW_NODES",
    "plot_confusion_matrix",
    "plot_graph",
    "plot_learning_curves",
    "plot_maps",
    "save_figure",
]
