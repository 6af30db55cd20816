r"""Sphere maps and graph pictures: node signals in Mollweide view, and sphere graphs.

:func:`plot_maps` draws node signals of a graph side by side; :func:`plot_graph` draws
a graph's edges seen from outside and its weighted degree. Both write PNG files through
:func:`~deepsphere_pyg.plots.figure.save_figure`.

**Mollweide panels** (:func:`plot_maps`, the degree panel of :func:`plot_graph`) use the
projection of :class:`healpy.projector.MollweideProj`, the one of :func:`healpy.mollview`:

* HEALPix graphs are drawn as sky maps (healpy's ``"astro"`` convention: longitude
  increases to the left). The node signal is put into a full map (``hp.UNSEEN`` outside a
  partial-sky mask, at the graph's ``pixels`` in its NEST or RING order) and rasterised
  by :meth:`~healpy.projector.MollweideProj.projmap`, so the cost does not grow with the
  number of pixels.
* Other samplings (equiangular grids, icosahedral meshes, point sets) are drawn as a
  scatter of the nodes at their longitude and latitude (from ``pos``; geographic
  convention: east to the right), markers about as wide as the node spacing (the
  median edge length), so that they tile the sampled part of the sphere; beyond
  :data:`MAX_SCATTER_POINTS` nodes a fixed random subset is drawn (the title says so).

Missing values (``NaN``, pixels outside the mask) are shown in :data:`MISSING_COLOR`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import healpy as hp
import numpy as np
import torch

from ..graphs.lonlat import vec_to_lonlat
from ..graphs.sphere_graph import SphereGraph
from .figure import float_array, import_matplotlib, new_figure, save_figure

if TYPE_CHECKING:  # pragma: no cover - typing only
    from matplotlib.axes import Axes

__all__ = [
    "MAX_SCATTER_POINTS",
    "MISSING_COLOR",
    "WINDOW_NODES",
    "plot_graph",
    "plot_maps",
]

#: Colour of missing values: pixels outside a partial-sky mask, ``NaN`` node values.
MISSING_COLOR = "#d9d9d9"

#: Most nodes drawn as markers in one scatter panel; larger graphs are subsampled
#: (a 4-inch panel at 100 dpi has about 10^5 pixels, so more markers change nothing).
MAX_SCATTER_POINTS = 200_000

#: Most nodes in the zoomed window that :func:`plot_graph` draws of a graph larger than its
#: ``max_nodes`` (a denser window hides the edges).
WINDOW_NODES = 1000

#: Width (pixels) of the rasterised HEALPix Mollweide image.
_MOLLWEIDE_XSIZE = 800


# ------------------------------------------------------------------------- helpers
def _meta(graph: SphereGraph, name: str, default: Any = None) -> Any:
    """Metadata attribute ``name`` of ``graph`` (``default`` when absent)."""
    return graph[name] if name in graph else default


def _is_healpix(graph: SphereGraph) -> bool:
    return _meta(graph, "sampling") == "healpix" and _meta(graph, "nside") is not None


def _unit_positions(graph: SphereGraph) -> np.ndarray:
    """``[N, 3]`` float64 unit vectors of the nodes."""
    pos = float_array(graph.pos, "graph.pos")
    if pos.ndim != 2 or pos.shape[1] != 3:
        raise ValueError(f"graph.pos must have shape [N, 3] (unit vectors), got {pos.shape}")
    norm = np.linalg.norm(pos, axis=1, keepdims=True)
    return pos / np.where(norm > 0, norm, 1.0)


def _describe(graph: SphereGraph) -> str:
    """``"healpix graph (nside=16, k=8, kernel=v2): 3072 nodes, 12288 edges"``."""
    names = ("nside", "grid", "nlat", "nlon", "level", "neighbours", "weights", "k", "kernel")
    params = [f"{name}={_meta(graph, name)}" for name in names
              if _meta(graph, name) is not None]
    if graph.pixels is not None:
        params.append("partial")
    label = f"{_meta(graph, 'sampling', 'sphere')} graph"
    if params:
        label += f" ({', '.join(params)})"
    num_edges = int(graph.edge_index.shape[1]) // 2
    return f"{label}: {int(graph.num_nodes)} nodes, {num_edges} edges"


def _mollweide_axes(ax: Axes) -> None:
    """Frame ``ax`` for the Mollweide plane of healpy (x in [-2, 2], y in [-1, 1])."""
    mpl = import_matplotlib()
    ax.add_patch(mpl.patches.Ellipse((0.0, 0.0), 4.0, 2.0, facecolor=MISSING_COLOR,
                                     edgecolor="none", zorder=0))
    ax.add_patch(mpl.patches.Ellipse((0.0, 0.0), 4.0, 2.0, facecolor="none",
                                     edgecolor="0.3", linewidth=0.8, zorder=3))
    ax.set_xlim(-2.03, 2.03)
    ax.set_ylim(-1.03, 1.03)
    ax.set_aspect("equal")
    ax.set_axis_off()


def _mollweide_panel(ax: Axes, values: np.ndarray, graph: SphereGraph, *, cmap: Any,
                     norm: Any, pos: np.ndarray | None = None) -> str:
    """Draw node values ``[N]`` of ``graph`` in Mollweide view on ``ax``.

    Returns a note for the title ("" or how many nodes a scatter shows).
    """
    _mollweide_axes(ax)
    if _is_healpix(graph):
        nside = int(graph.nside)
        nest = bool(_meta(graph, "nest", True))
        npix = hp.nside2npix(nside)
        full = np.full(npix, hp.UNSEEN, dtype=np.float64)
        pixels = graph.pixels
        index = np.arange(npix) if pixels is None \
            else float_array(pixels, "pixels").astype(np.int64)
        if index.size != values.size or (index.size and (index.min() < 0
                                                         or index.max() >= npix)):
            raise ValueError(f"graph.pixels must hold {values.size} pixel ids in [0, "
                             f"{npix - 1}] for nside={nside}; rebuild the graph")
        full[index] = np.where(np.isfinite(values), values, hp.UNSEEN)
        projector = hp.projector.MollweideProj(xsize=_MOLLWEIDE_XSIZE, flipconv="astro")
        image = projector.projmap(full, lambda x, y, z: hp.vec2pix(nside, x, y, z, nest=nest))
        image = np.ma.masked_where(~np.isfinite(image) | (image == hp.UNSEEN), image)
        ax.imshow(image, origin="lower", extent=projector.get_extent(), cmap=cmap, norm=norm,
                  interpolation="nearest", zorder=1)
        return ""
    pos = _unit_positions(graph) if pos is None else pos
    note = ""
    shown = np.arange(values.size)
    if values.size > MAX_SCATTER_POINTS:
        shown = np.sort(np.random.default_rng(0).choice(values.size, MAX_SCATTER_POINTS,
                                                        replace=False))
        note = f" ({MAX_SCATTER_POINTS} of {values.size} nodes shown)"
    lon, lat = vec_to_lonlat(pos[shown])
    projector = hp.projector.MollweideProj(flipconv="geo")
    x, y = projector.ang2xy(lon, lat, lonlat=True)
    finite = np.isfinite(values[shown])
    size = _marker_area(ax, graph, pos)
    ax.scatter(x[finite], y[finite], c=values[shown][finite], s=size, cmap=cmap, norm=norm,
               linewidths=0, rasterized=True, zorder=1)
    if not finite.all():
        ax.scatter(x[~finite], y[~finite], c=MISSING_COLOR, s=size, linewidths=0,
                   rasterized=True, zorder=1)
    return note


def _marker_area(ax: Axes, graph: SphereGraph, pos: np.ndarray) -> float:
    r"""Marker area (points\ :sup:`2`) of a Mollweide scatter: markers about as wide as the
    node spacing :math:`\delta` (median edge length, radians), so they tile the sampled
    part of the sphere. On the Mollweide plane (4 units for 360° at the equator) a
    width of :math:`\delta` is :math:`4 \delta / (2\pi)` units. Without edges, the
    area rule :math:`\delta^2 = 4\pi / N` is used."""
    row, col = graph.edge_index
    if row.numel():
        step = max(1, row.numel() // 100_000)
        chord = np.linalg.norm(pos[row[::step].cpu().numpy()] - pos[col[::step].cpu().numpy()],
                               axis=1)
        spacing = float(np.median(2.0 * np.arcsin(np.clip(chord / 2.0, 0.0, 1.0))))
    else:
        spacing = math.sqrt(4.0 * math.pi / max(pos.shape[0], 1))
    width_pt = ax.get_window_extent().width * 72.0 / ax.figure.dpi
    diameter_pt = 4.0 * spacing / (2.0 * math.pi) * width_pt / 4.06
    return float(np.clip(diameter_pt**2, 0.05, 60.0))


# ------------------------------------------------------------------------ node maps
def plot_maps(
    maps: Sequence[np.ndarray | torch.Tensor],
    graph: SphereGraph,
    path: str | os.PathLike,
    *,
    titles: Sequence[str] | None = None,
    cmap: Any = None,
    symmetric: bool = False,
) -> None:
    r"""Node signals of ``graph`` side by side in Mollweide view, with one colour bar.

    All panels share the colour scale :math:`[\min_m \min_i f_m(i), \max_m \max_i f_m(i)]`
    over the finite values, or :math:`[-a, a]` with :math:`a = \max_{m,i} |f_m(i)|` when
    ``symmetric`` (residuals, signed fields). See the module docstring for how each
    sampling is drawn; pixels outside a partial-sky mask and ``NaN`` values appear in
    :data:`MISSING_COLOR`.

    Args:
        maps: node signals, each ``[N]`` in the graph's node order (NEST or RING pixel
            order for HEALPix, as ``graph.nest`` says; the kept pixels ``graph.pixels`` on a
            partial sky). A ``[M, N]`` array also works.
        graph: the :class:`~deepsphere_pyg.graphs.SphereGraph` the signals live on.
        path: PNG file to write (atomically, :func:`save_figure`).
        titles: one title per map (default none).
        cmap: a matplotlib colour map or its name (default ``"viridis"``, ``"RdBu_r"``
            when ``symmetric``).
        symmetric: centre the colour scale on 0.

    Raises:
        ValueError: no maps, a map whose shape is not ``[N]``, ``titles`` of another
            length than ``maps``.
        ImportError: matplotlib missing.
    """
    mpl = import_matplotlib()
    if isinstance(maps, (np.ndarray, torch.Tensor)) and maps.ndim == 1:
        maps = [maps]
    arrays = [float_array(values, f"maps[{index}]") for index, values in enumerate(maps)]
    if not arrays:
        raise ValueError("maps is empty; give at least one node signal [N]")
    num_nodes = int(graph.num_nodes)
    for index, array in enumerate(arrays):
        if array.shape != (num_nodes,):
            raise ValueError(f"maps[{index}] has shape {list(array.shape)}, expected "
                             f"[{num_nodes}]: one value per graph node, in the graph's node "
                             "order")
    if titles is not None:
        titles = list(titles)
        if len(titles) != len(arrays):
            raise ValueError(f"titles has {len(titles)} entries for {len(arrays)} maps; give "
                             "one title per map or titles=None")
    finite = np.concatenate([array[np.isfinite(array)] for array in arrays])
    if symmetric:
        vmax = float(np.abs(finite).max()) if finite.size else 1.0
        vmin = -vmax
    else:
        vmin, vmax = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if vmax <= vmin:
        vmin, vmax = vmin - 0.5, vmax + 0.5
    norm = mpl.colors.Normalize(vmin=vmin, vmax=vmax)
    if cmap is None:
        cmap = "RdBu_r" if symmetric else "viridis"
    if isinstance(cmap, str):
        cmap = mpl.colormaps[cmap]

    figure = new_figure(4.2 * len(arrays), 3.1)
    axes = figure.subplots(1, len(arrays), squeeze=False)[0]
    pos = None if _is_healpix(graph) else _unit_positions(graph)
    for index, (ax, array) in enumerate(zip(axes, arrays, strict=True)):
        note = _mollweide_panel(ax, array, graph, cmap=cmap, norm=norm, pos=pos)
        title = titles[index] if titles is not None else ""
        if title or note:
            ax.set_title(f"{title}{note}", fontsize=10)
    figure.subplots_adjust(left=0.01, right=0.99, top=0.88, bottom=0.2, wspace=0.04)
    colorbar_axes = figure.add_axes((0.5 - 0.2 / len(arrays) ** 0.5, 0.08,
                                     0.4 / len(arrays) ** 0.5, 0.045))
    figure.colorbar(mpl.cm.ScalarMappable(norm=norm, cmap=cmap), cax=colorbar_axes,
                    orientation="horizontal")
    save_figure(figure, path)

# ---------------------------------------------------------------------------- graphs
def _view_center(pos: np.ndarray) -> np.ndarray:
    """View direction of the orthographic panel: the mean direction of the nodes when
    they gather on one side of the sphere (masks, regional point sets), else the point
    at longitude 0°, latitude 30°."""
    mean = pos.mean(axis=0) if pos.size else np.zeros(3)
    norm = float(np.linalg.norm(mean))
    if norm > 0.1:
        return mean / norm
    lat = math.radians(30.0)
    return np.array([math.cos(lat), 0.0, math.sin(lat)])


def _view_basis(center: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """East and north unit vectors of the plane seen from ``center`` (east to the right)."""
    east = np.cross([0.0, 0.0, 1.0], center)
    if np.linalg.norm(east) < 1e-9:  # looking at a pole
        east = np.array([0.0, 1.0, 0.0])
    east /= np.linalg.norm(east)
    return east, np.cross(center, east)


def _drawn_nodes(pos: np.ndarray, center: np.ndarray, max_nodes: int) -> tuple[np.ndarray, bool]:
    """Boolean ``[N]``: nodes of the orthographic panel, and whether it is a window.

    Up to ``max_nodes`` nodes: those on the visible hemisphere (``pos @ center > 0``).
    Beyond: the ``min(max_nodes, WINDOW_NODES)`` nodes closest to ``center`` (a window).
    """
    facing = pos @ center
    if pos.shape[0] <= max_nodes:
        return facing > 0, False
    size = min(max_nodes, WINDOW_NODES)
    keep = np.zeros(pos.shape[0], dtype=bool)
    keep[np.argpartition(-facing, size - 1)[:size]] = True
    return keep & (facing > 0), True


def plot_graph(
    graph: SphereGraph,
    path: str | os.PathLike,
    *,
    max_nodes: int = 5000,
    title: str | None = None,
) -> None:
    r"""A picture of a sphere graph: its edges seen from outside, and its weighted degree.

    * Left: orthographic view of the sphere from the direction :math:`c` (the mean
      direction of the nodes when they gather on one side, as for masks and regional
      point sets; else longitude 0°, latitude 30°). A node :math:`x` is drawn at
      :math:`(x \cdot e, x \cdot n)` with :math:`e, n` the east and north unit vectors
      at :math:`c`, when :math:`x \cdot c > 0`; an edge is drawn when both its nodes
      are, with opacity :math:`0.1 + 0.9\, w_{ij} / \max w`. Graphs of more than
      ``max_nodes`` nodes show only a window: the ``min(max_nodes,`` :data:`WINDOW_NODES`
      ``)`` nodes nearest :math:`c` and the edges between them, zoomed in (the panel
      title says so). A regional graph is zoomed in on its nodes likewise.
    * Right: the weighted degree :math:`d_i = \sum_j w_{ij}` in Mollweide view (as in
      :func:`plot_maps`): its uniformity shows how evenly the sampling and the weights
      cover the sphere.

    Works for every sampling (HEALPix, equiangular, icosahedral, points), full or partial.

    Args:
        graph: the graph.
        path: PNG file to write (atomically).
        max_nodes: largest graph drawn whole (default 5000); larger ones get a window.
        title: figure title (default: sampling, parameters, node and edge counts).

    Raises:
        ValueError: ``max_nodes < 1``.
    """
    mpl = import_matplotlib()
    if isinstance(max_nodes, bool) or not isinstance(max_nodes, int) or max_nodes < 1:
        raise ValueError(f"max_nodes must be an integer >= 1, got {max_nodes!r}")
    pos = _unit_positions(graph)
    center = _view_center(pos)
    east, north = _view_basis(center)
    drawn, window = _drawn_nodes(pos, center, max_nodes)
    xy = np.stack([pos @ east, pos @ north], axis=1)

    row, col = graph.edge_index
    weight = graph.edge_weight.detach()
    drawn_t = torch.from_numpy(drawn).to(row.device)
    edge_mask = (row < col) & drawn_t[row] & drawn_t[col]
    edges = torch.stack([row[edge_mask], col[edge_mask]]).cpu().numpy()
    edge_weight = weight[edge_mask].double().cpu().numpy()

    figure = new_figure(12.0, 5.2)
    left = figure.add_axes((0.02, 0.06, 0.40, 0.80))
    right = figure.add_axes((0.45, 0.16, 0.53, 0.70))

    segments = np.stack([xy[edges[0]], xy[edges[1]]], axis=1)
    colours = np.zeros((edges.shape[1], 4))
    colours[:, 2] = 0.35
    if edge_weight.size:
        colours[:, 3] = np.clip(0.1 + 0.9 * edge_weight / max(float(edge_weight.max()), 1e-300),
                                0.0, 1.0)
    left.add_collection(mpl.collections.LineCollection(segments, colors=colours,
                                                       linewidths=0.6, zorder=1))
    num_drawn = int(drawn.sum())
    left.scatter(xy[drawn, 0], xy[drawn, 1], s=float(np.clip(4000.0 / max(num_drawn, 1),
                                                             0.3, 25.0)),
                 color="black", linewidths=0, zorder=2, rasterized=num_drawn > 2000)
    left.set_aspect("equal")
    left.set_axis_off()
    lon_c, lat_c = vec_to_lonlat(center[None])
    view = f"seen from lon {(round(lon_c[0]) + 180) % 360 - 180:d}°, lat {round(lat_c[0]):d}°"
    left.add_patch(mpl.patches.Circle((0.0, 0.0), 1.0, facecolor="none", edgecolor="0.4",
                                      linewidth=0.8))
    lo, hi = (xy[drawn].min(axis=0), xy[drawn].max(axis=0)) if num_drawn else (-1.0, 1.0)
    extent = float(np.max(hi - lo)) if num_drawn else 2.0
    if extent < 1.2:  # a window or a regional graph: zoom in on the drawn nodes
        middle, half = (lo + hi) / 2.0, 0.55 * max(extent, 1e-6)
        left.set_xlim(middle[0] - half, middle[0] + half)
        left.set_ylim(middle[1] - half, middle[1] + half)
    else:
        left.set_xlim(-1.05, 1.05)
        left.set_ylim(-1.05, 1.05)
    if window:
        left.set_title(f"window: the {num_drawn} nodes nearest the centre, of "
                       f"{int(graph.num_nodes)}\n({edges.shape[1]} edges; {view})", fontsize=9)
    else:
        left.set_title(f"visible side: {num_drawn} nodes, {edges.shape[1]} edges\n"
                       f"({view}; opacity by weight)", fontsize=9)

    degree = graph.degree.detach().double().cpu().numpy()
    norm = mpl.colors.Normalize(vmin=float(degree.min()) if degree.size else 0.0,
                                vmax=float(degree.max()) if degree.size else 1.0)
    if norm.vmax <= norm.vmin:
        norm = mpl.colors.Normalize(vmin=norm.vmin - 0.5, vmax=norm.vmax + 0.5)
    cmap = mpl.colormaps["viridis"]
    note = _mollweide_panel(right, degree, graph, cmap=cmap, norm=norm, pos=pos)
    right.set_title(f"weighted degree $d_i = \\sum_j w_{{ij}}${note}", fontsize=10)
    figure.colorbar(mpl.cm.ScalarMappable(norm=norm, cmap=cmap), ax=right,
                    orientation="horizontal", fraction=0.06, pad=0.03, shrink=0.6)
    figure.suptitle(title if title is not None else _describe(graph), fontsize=11)
    save_figure(figure, path)
