r"""Equiangular (latitude-longitude) grids as sphere graphs, and their pooling hierarchies.

**Grids.** A grid has ``nlat`` rings of constant colatitude :math:`\vartheta_j` (rows, from
north to south) and ``nlon`` equally spaced longitudes :math:`\varphi_k = 2\pi k /
n_\mathrm{lon}`, :math:`k = 0, \dots, n_\mathrm{lon} - 1`. The families differ in the rings
(:func:`equiangular_grid`):

* ``"driscoll-healy"``: :math:`\vartheta_j = \pi j / n_\mathrm{lat}` (:math:`n_\mathrm{lat} = 2b`),
  north pole only; default ``nlon = nlat``.
* ``"soft"``: :math:`\vartheta_j = \pi (2j + 1) / (2 n_\mathrm{lat})`, no pole; default
  ``nlon = nlat``.
* ``"clenshaw-curtis"``: :math:`\vartheta_j = \pi j / (n_\mathrm{lat} - 1)`, both poles;
  default ``nlon = 2 (nlat - 1)``.
* ``"gauss-legendre"``: :math:`\cos\vartheta_j` the Gauss-Legendre nodes (descending), no
  pole; default ``nlon = 2 nlat``.

**Nodes.** A ring on a pole is one point repeated ``nlon`` times; it becomes a single
node. Nodes are numbered row-major over the grid (rows north to south, longitudes
increasing within a row), each pole row contributing one node (at longitude 0). So a
Driscoll-Healy grid has :math:`(n_\mathrm{lat} - 1) n_\mathrm{lon} + 1` nodes, a
Clenshaw-Curtis grid :math:`(n_\mathrm{lat} - 2) n_\mathrm{lon} + 2`, SOFT and
Gauss-Legendre :math:`n_\mathrm{lat} n_\mathrm{lon}`. The graph's ``grid_index``
(``[nlat * nlon]``) gives the node of every grid cell (row-major), and
:func:`grid_to_nodes` / :func:`nodes_to_grid` convert data arrays ``[..., nlat, nlon]``
to node signals ``[..., N]`` and back.

**Pooling.** :func:`equiangular_hierarchy` halves both sizes per level (2x2 blocks of
rows x longitudes), each level a grid of the same family; see there for the rules at
the poles.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from .checks import check_positive_int, report_isolated
from .knn_graph import check_kernel, keep_index, knn_graph
from .lonlat import lonlat_to_vec, region_mask
from .sphere_graph import SphereGraph

if TYPE_CHECKING:
    from .hierarchy import SphereHierarchy

__all__ = [
    "GRIDS",
    "equiangular_graph",
    "equiangular_grid",
    "equiangular_hierarchy",
    "grid_to_nodes",
    "nodes_to_grid",
]

#: Grid families accepted by the builders of this module.
GRIDS = ("driscoll-healy", "soft", "clenshaw-curtis", "gauss-legendre")

#: Edge recipes of :func:`equiangular_graph`.
WEIGHTS = ("knn", "neighbours")

#: ``kernel="auto"`` for k-NN graphs of equiangular grids: the global width rule of
#: :func:`~deepsphere_pyg.graphs.knn_graph.knn_graph` (calibrated on HEALPix) times this
#: factor, per ``k`` (interpolated in :math:`\log k`, held constant outside). The factors
#: are the widths found by :func:`~deepsphere_pyg.graphs.equivariance.tune_kernel_width`
#: (combinatorial Laplacian, degrees nlat/16, nlat/4, 7 nlat/16) on Driscoll-Healy grids,
#: geometric mean of nlat 64 and 128 (k=8: 2.00 and 1.83; k=20: 3.19 and 2.60; k=40: 5.66
#: and 3.38). Rows of an equiangular grid are closer in longitude than in latitude, so
#: the HEALPix width reaches too few rings; the tuned widths halve the mean equivariance
#: error of the k=8 graph and make k=20 about 2.3 times more equivariant than the
#: 4-neighbour graph (``scripts/equivariance_table.py``, BENCHMARKS.md).
AUTO_WIDTH_FACTOR: dict[int, float] = {8: 1.91, 20: 2.88, 40: 4.37}


def auto_width_factor(k: int) -> float:
    r""":data:`AUTO_WIDTH_FACTOR` interpolated in :math:`\log k`."""
    ks = sorted(AUTO_WIDTH_FACTOR)
    return float(np.interp(math.log(k), np.log(ks), [AUTO_WIDTH_FACTOR[kk] for kk in ks]))


_GRID_ALIASES = {"dh": "driscoll-healy", "cc": "clenshaw-curtis", "gl": "gauss-legendre"}


# ------------------------------------------------------------------------------ grids
def _check_grid(grid: object) -> str:
    if not isinstance(grid, str):
        raise TypeError(f"grid must be one of {GRIDS}, got {grid!r}")
    name = _GRID_ALIASES.get(grid.lower(), grid.lower())
    if name not in GRIDS:
        raise ValueError(f"grid must be one of {GRIDS} (or 'dh', 'cc', 'gl'), got {grid!r}")
    return name


def _check_size(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= 2, got {value!r}")
    if value < 2:
        raise ValueError(f"{name} must be >= 2 (a grid needs two rings and two longitudes), "
                         f"got {value}")
    return int(value)


def _default_nlon(nlat: int, grid: str) -> int:
    if grid == "clenshaw-curtis":
        return 2 * (nlat - 1)
    if grid == "gauss-legendre":
        return 2 * nlat
    return nlat


def _check_sizes(nlat: object, nlon: object, grid: str) -> tuple[int, int]:
    nlat = _check_size(nlat, "nlat")
    nlon = _default_nlon(nlat, grid) if nlon is None else _check_size(nlon, "nlon")
    return nlat, nlon


def _colatitudes(nlat: int, grid: str) -> np.ndarray:
    """Colatitudes ``[nlat]`` (radians, increasing: north to south) of the rows."""
    j = np.arange(nlat, dtype=np.float64)
    if grid == "driscoll-healy":
        return np.pi * j / nlat
    if grid == "soft":
        return np.pi * (2.0 * j + 1.0) / (2.0 * nlat)
    if grid == "clenshaw-curtis":
        return np.pi * j / (nlat - 1)
    nodes, _ = np.polynomial.legendre.leggauss(nlat)  # ascending cos(theta)
    return np.arccos(nodes[::-1])


def _pole_rows(nlat: int, grid: str) -> tuple[int, ...]:
    if grid == "driscoll-healy":
        return (0,)
    if grid == "clenshaw-curtis":
        return (0, nlat - 1)
    return ()


def equiangular_grid(
    nlat: int, nlon: int | None = None, *, grid: str = "driscoll-healy"
) -> tuple[np.ndarray, np.ndarray]:
    r"""Latitudes and longitudes (degrees) of an equiangular grid.

    With colatitude :math:`\vartheta_j` (row ``j``, north to south) and longitude
    :math:`\varphi_k = 2\pi k / n_\mathrm{lon}`, :math:`k = 0, \dots, n_\mathrm{lon} - 1`:

    * ``"driscoll-healy"`` (Driscoll & Healy 1994), :math:`n_\mathrm{lat} = 2b`:
      :math:`\vartheta_j = \pi j / (2b)`; contains the north pole (:math:`j = 0`), not the
      south pole.
    * ``"soft"`` (Kostelec & Rockmore's SOFT, used by s2cnn), :math:`n_\mathrm{lat} = 2b`:
      :math:`\vartheta_j = \pi (2j + 1) / (4b)`; no pole (the cell-centred grid of climate
      data sets, e.g. 180 x 360 rows at 89.5°, 88.5°, ...).
    * ``"clenshaw-curtis"``: :math:`\vartheta_j = \pi j / (n_\mathrm{lat} - 1)`; both poles.
    * ``"gauss-legendre"``: :math:`\cos\vartheta_j` are the ``nlat`` Gauss-Legendre nodes
      (:func:`numpy.polynomial.legendre.leggauss`) in descending order; no pole.

    For Driscoll-Healy and SOFT an odd ``nlat`` follows the same formulas with
    :math:`b = n_\mathrm{lat} / 2`.

    Args:
        nlat: number of rings (``>= 2``).
        nlon: number of longitudes (``>= 2``); default ``nlat`` (Driscoll-Healy, SOFT),
            ``2 (nlat - 1)`` (Clenshaw-Curtis) or ``2 nlat`` (Gauss-Legendre, even so that
            the grid can be pooled).
        grid: ``"driscoll-healy"``, ``"soft"``, ``"clenshaw-curtis"`` or
            ``"gauss-legendre"`` (also ``"dh"``, ``"cc"``, ``"gl"``).

    Returns:
        ``(lat, lon)``: float64 arrays ``[nlat]`` of latitudes
        :math:`90° - \vartheta_j` (degrees north, decreasing) and ``[nlon]`` of longitudes
        :math:`\varphi_k` in degrees east, in ``[0, 360)``.

    Raises:
        ValueError: unknown ``grid``, ``nlat < 2`` or ``nlon < 2``.
    """
    grid = _check_grid(grid)
    nlat, nlon = _check_sizes(nlat, nlon, grid)
    lat = 90.0 - np.degrees(_colatitudes(nlat, grid))
    for row in _pole_rows(nlat, grid):  # exact poles
        lat[row] = 90.0 if row == 0 else -90.0
    lon = 360.0 * np.arange(nlon, dtype=np.float64) / nlon
    return lat, lon


# ------------------------------------------------------------------------------ nodes
@dataclass(frozen=True)
class _Layout:
    """Nodes of a full grid: cell -> node map and node coordinates."""

    grid: str
    nlat: int
    nlon: int
    grid_index: np.ndarray  # [nlat * nlon] node of each cell (row-major), non-decreasing
    lat: np.ndarray  # [N] degrees
    lon: np.ndarray  # [N] degrees
    is_pole: np.ndarray  # [N] bool

    @property
    def num_nodes(self) -> int:
        return int(self.lat.size)


def _layout(nlat: int, nlon: int, grid: str) -> _Layout:
    lat, lon = equiangular_grid(nlat, nlon, grid=grid)
    poles = _pole_rows(nlat, grid)
    # Row r starts at node row_start[r]; a pole row holds one node.
    row_size = np.full(nlat, nlon, dtype=np.int64)
    row_size[list(poles)] = 1
    row_start = np.concatenate([[0], np.cumsum(row_size)[:-1]])
    cols = np.arange(nlon, dtype=np.int64)
    index = row_start[:, None] + np.where(row_size[:, None] == 1, 0, cols[None, :])
    first_cell = np.concatenate([[0], np.flatnonzero(np.diff(index.ravel())) + 1])
    rows, columns = np.divmod(first_cell, nlon)
    return _Layout(
        grid=grid, nlat=nlat, nlon=nlon, grid_index=index.ravel(), lat=lat[rows],
        lon=lon[columns], is_pole=np.isin(rows, poles) if poles else np.zeros(rows.size, bool),
    )


def _pos(layout: _Layout) -> np.ndarray:
    pos = lonlat_to_vec(layout.lon, layout.lat)
    pos[layout.is_pole] = 0.0  # exactly (0, 0, +-1)
    pos[layout.is_pole, 2] = np.sign(layout.lat[layout.is_pole])
    return pos


def _check_region(region: object) -> tuple[float, float, float, float]:
    values = [] if isinstance(region, str) else list(np.asarray(region, dtype=object).ravel())
    try:
        values = [float(v) for v in values]
    except (TypeError, ValueError):
        values = []
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise ValueError(f"region must be (lon_min, lon_max, lat_min, lat_max) in degrees, "
                         f"got {region!r}")
    lon_min, lon_max, lat_min, lat_max = values
    for name, value in (("lon_min", lon_min), ("lon_max", lon_max)):
        if not -180.0 <= value <= 360.0:
            raise ValueError(f"region {name}={value:g} must lie in [-180, 360] degrees east; "
                             "is the region given as (lon_min, lon_max, lat_min, lat_max)?")
    for name, value in (("lat_min", lat_min), ("lat_max", lat_max)):
        if not -90.0 <= value <= 90.0:
            raise ValueError(f"region {name}={value:g} must lie in [-90, 90] degrees north; "
                             "is the region given as (lon_min, lon_max, lat_min, lat_max)?")
    return lon_min, lon_max, lat_min, lat_max


def _kept_nodes(mask: object, region: object, layout: _Layout) -> np.ndarray | None:
    """Sorted node ids kept by ``mask`` and ``region`` (intersection); ``None``: all."""
    num_nodes = layout.num_nodes
    keep = np.ones(num_nodes, dtype=bool)
    if mask is not None:
        if isinstance(mask, torch.Tensor):
            mask = mask.detach().cpu().numpy()
        array = np.asarray(mask)
        if array.ndim == 2:
            if array.shape != (layout.nlat, layout.nlon):
                raise ValueError(f"a grid mask must have shape [nlat, nlon] = "
                                 f"[{layout.nlat}, {layout.nlon}], got {list(array.shape)}")
            if array.dtype != bool:
                raise TypeError(f"a grid mask [nlat, nlon] must be boolean, got dtype "
                                f"{array.dtype}; use mask != 0 or np.isfinite(data)")
            # A pole node is kept when any cell of its row is.
            keep &= np.bincount(layout.grid_index, weights=array.ravel(),
                                minlength=num_nodes) > 0
        else:
            if array.ndim == 1 and array.dtype == bool and array.size != num_nodes \
                    and array.size == layout.nlat * layout.nlon:
                raise ValueError(
                    f"mask has {array.size} = nlat * nlon entries but the graph has "
                    f"{num_nodes} nodes (pole rows are one node); pass the grid mask with "
                    f"shape [{layout.nlat}, {layout.nlon}] or one boolean per node")
            ids = keep_index(array, num_nodes, "mask")
            if ids is not None:
                keep &= np.isin(np.arange(num_nodes), ids)
    if region is not None:
        lon_min, lon_max, lat_min, lat_max = _check_region(region)
        inside = region_mask(layout.lon, layout.lat, (lon_min, lon_max, lat_min, lat_max))
        # The box touches a pole at every longitude: the pole is inside when its latitude is.
        inside |= layout.is_pole & (layout.lat >= lat_min) & (layout.lat <= lat_max)
        keep &= inside
    if not keep.any():
        what = " and ".join(n for n, v in (("mask", mask), ("region", region)) if v is not None)
        raise ValueError(f"{what} keep(s) no node of the {layout.nlat} x {layout.nlon} "
                         f"{layout.grid} grid; enlarge the mask or region")
    return None if keep.all() else np.flatnonzero(keep).astype(np.int64)


# ------------------------------------------------------------------------------ edges
def _neighbour_edges(layout: _Layout, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Undirected 4-neighbour pairs ``[2, M]`` (``i < j``, unique) and geodesic lengths ``[M]``."""
    nlat, nlon = layout.nlat, layout.nlon
    cells = layout.grid_index.reshape(nlat, nlon)
    east = np.stack([cells, np.roll(cells, -1, axis=1)]).reshape(2, -1)  # wraps at 360
    south = np.stack([cells[:-1], cells[1:]]).reshape(2, -1)
    pairs = [east, south]
    if nlon % 2 == 0:  # across a pole missing from the grid, to the opposite meridian
        poles = _pole_rows(nlat, layout.grid)
        half = np.arange(nlon // 2)
        for row, pole in ((0, 0), (nlat - 1, nlat - 1)):
            if pole not in poles:
                pairs.append(np.stack([cells[row, half], cells[row, half + nlon // 2]]))
    pairs = np.concatenate(pairs, axis=1)
    pairs = pairs[:, pairs[0] != pairs[1]]  # pole rows: self loops
    # Duplicates (pole rows, nlon = 2) removed through one int64 key per pair.
    key = np.sort(pairs.min(axis=0) * layout.num_nodes + pairs.max(axis=0))
    key = key[np.concatenate([[True], key[1:] != key[:-1]])]
    pairs = np.stack(np.divmod(key, layout.num_nodes))
    chord = np.linalg.norm(pos[pairs[0]] - pos[pairs[1]], axis=1)
    return pairs, 2.0 * np.arcsin(np.clip(chord / 2.0, 0.0, 1.0))


def _neighbour_graph(
    layout: _Layout, pos: np.ndarray, kept: np.ndarray | None, isolated: str,
    dtype: torch.dtype,
) -> SphereGraph:
    pairs, angle = _neighbour_edges(layout, pos)
    if kept is not None:
        node_of = np.full(layout.num_nodes, -1, dtype=np.int64)
        node_of[kept] = np.arange(kept.size)
        pairs = node_of[pairs]
        inside = (pairs >= 0).all(axis=0)
        pairs, angle = pairs[:, inside], angle[inside]
        has_edge = np.zeros(kept.size, dtype=bool)
        has_edge[pairs.ravel()] = True
        if not has_edge.all():
            lonely = kept[~has_edge]
            report_isolated(lonely, isolated, stacklevel=4)
            return _neighbour_graph(layout, pos, np.setdiff1d(kept, lonely), "raise", dtype)
    num_nodes = layout.num_nodes if kept is None else kept.size
    row = np.concatenate([pairs[0], pairs[1]])
    col = np.concatenate([pairs[1], pairs[0]])
    order = np.lexsort((col, row))
    weight = 1.0 / np.concatenate([angle, angle])[order]
    node_pos = pos if kept is None else pos[kept]
    return SphereGraph(
        pos=torch.from_numpy(node_pos).to(dtype),
        edge_index=torch.from_numpy(np.stack([row[order], col[order]])),
        edge_weight=torch.from_numpy(weight).to(dtype),
        num_nodes=int(num_nodes),
        sampling="equiangular",
        kernel="inverse-distance",
        pixels=None if kept is None else torch.from_numpy(kept),
    )


def _check_dtype(dtype: object) -> torch.dtype:
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating torch dtype (torch.float32, torch.float64), "
                        f"got {dtype!r}")
    return dtype


def _resolve_kernel(weights: object, kernel: object) -> str | float | None:
    if weights not in WEIGHTS:
        raise ValueError(f"weights must be one of {WEIGHTS}, got {weights!r}")
    if weights == "neighbours":
        if not (isinstance(kernel, str) and kernel == "auto"):
            raise ValueError(f"weights='neighbours' has fixed weights 1/d; kernel applies to "
                             f"weights='knn' only (leave kernel='auto'), got kernel={kernel!r}")
        return None
    return "auto" if isinstance(kernel, str) and kernel == "auto" else check_kernel(kernel)


def equiangular_graph(
    nlat: int,
    nlon: int | None = None,
    *,
    grid: str = "driscoll-healy",
    weights: str = "knn",
    k: int = 8,
    kernel: str | float = "auto",
    mask: object = None,
    region: Sequence[float] | None = None,
    isolated: str = "raise",
    dtype: torch.dtype = torch.float32,
) -> SphereGraph:
    r"""Graph of an equiangular grid (module docstring: grids, node order).

    Pole rows are single nodes, so no two nodes coincide. Edges follow ``weights``:

    * ``"knn"``: the k-NN heat-kernel graph of the node positions
      (:func:`~deepsphere_pyg.graphs.knn_graph.knn_graph`): ``k`` nearest nodes by chord
      distance, union-symmetrised, :math:`w_{ij} = \exp(-d_{ij}^2 / (4 t))`. ``kernel`` is
      ``"global"`` (one width :math:`t = \alpha(k)\, \overline{d^2}`), ``"adaptive"`` (local
      widths :math:`t_{ij} = \alpha(k) \max(m_i, m_j)`), a float :math:`t`, or ``"auto"``
      (default: the global width times the tuned factor of :data:`AUTO_WIDTH_FACTOR`,
      the most equivariant of these). Neighbours across the 0°/360° meridian are found
      like any other (the search works on unit vectors).
    * ``"neighbours"``: the 4-neighbour grid graph of Khasanova & Frossard (ICML 2017):
      every node is joined to the two nodes beside it in its row (wrapping around at
      360°) and the two above and below it in its column; a pole node is joined to every
      node of the adjacent row. Where the grid has no pole (both ends of SOFT and
      Gauss-Legendre grids, the south end of Driscoll-Healy grids) the column continues
      across the pole: a node of the first (last) ring is joined to the node of the same
      ring on the opposite meridian, :math:`\varphi + 180°` (for even ``nlon``; for odd
      ``nlon`` those nodes have three neighbours). So every node off the poles has four
      neighbours (``nlon >= 3``). Weights are :math:`w_{ij} = 1 / d_{ij}` with
      :math:`d_{ij}` the geodesic distance (great-circle angle, radians). ``k`` and
      ``kernel`` do not apply.

    **Partial coverage.** ``mask`` and ``region`` select nodes (both given: their
    intersection); the graph is the subgraph of the full-grid graph induced by them, and
    ``pixels`` holds the ids of the kept nodes in the full-grid node order.

    Args:
        nlat: number of rings (``>= 2``).
        nlon: number of longitudes (default: the grid's usual value,
            :func:`equiangular_grid`).
        grid: grid family (:data:`GRIDS`).
        weights: ``"knn"`` or ``"neighbours"``.
        k: neighbours per node for ``"knn"``, ``1 <= k < N`` (``N`` of the full grid).
        kernel: ``"auto"``, ``"global"``, ``"adaptive"`` or a positive float :math:`t`.
        mask: ``None``; a boolean ``[nlat, nlon]`` grid mask (a pole node is kept when any
            cell of its row is); a boolean ``[N]`` node mask; or node ids.
        region: ``(lon_min, lon_max, lat_min, lat_max)`` degrees, bounds inclusive
            (:func:`~deepsphere_pyg.graphs.lonlat.region_mask`; ``lon_min > lon_max``
            crosses the antimeridian). A pole node is inside when the latitude bounds
            include the pole.
        isolated: kept nodes left without a neighbour: ``"raise"`` or ``"drop"`` (warns).
        dtype: floating dtype of ``pos`` and ``edge_weight``.

    Returns:
        A :class:`SphereGraph` with ``pos`` ``[N, 3]``, ``sampling="equiangular"``, ``grid``,
        ``nlat``, ``nlon``, ``weights``, ``grid_index`` (LongTensor ``[nlat * nlon]``: node
        of each grid cell, row-major; ``-1`` for cells whose node is not in the graph),
        ``pixels`` (``[N]`` full-grid node ids, ``None`` without a mask), ``kernel`` and,
        for ``"knn"``, ``k`` and ``kernel_width``.

    Raises:
        ValueError: unknown ``grid``/``weights``/``kernel``, sizes ``< 2``, ``k >= N``, a
            region out of range, a mask or region that keeps nothing, isolated kept nodes.

    Example:
        >>> g = equiangular_graph(8, grid="driscoll-healy", weights="neighbours")
        >>> g.num_nodes  # 7 rows of 8 + the north pole
        57
    """
    grid = _check_grid(grid)
    nlat, nlon = _check_sizes(nlat, nlon, grid)
    resolved = _resolve_kernel(weights, kernel)
    if isolated not in ("raise", "drop"):
        raise ValueError(f"isolated must be 'raise' or 'drop', got {isolated!r}")
    dtype = _check_dtype(dtype)
    layout = _layout(nlat, nlon, grid)
    kept = _kept_nodes(mask, region, layout)
    pos = _pos(layout)
    if weights == "knn":
        auto = resolved == "auto"
        graph = knn_graph(pos, k=k, kernel="global" if auto else resolved, mask=kept,
                          isolated=isolated, sampling="equiangular", dtype=dtype,
                          width_factor=auto_width_factor(k) if auto else 1.0)
        if auto:
            graph.kernel = "auto"
    else:
        graph = _neighbour_graph(layout, pos, kept, isolated, dtype)
    graph.grid = grid
    graph.nlat = nlat
    graph.nlon = nlon
    graph.weights = weights
    graph.grid_index = _graph_grid_index(layout, graph.pixels)
    return graph


def _graph_grid_index(layout: _Layout, pixels: torch.Tensor | None) -> torch.Tensor:
    index = layout.grid_index
    if pixels is not None:
        node_of = np.full(layout.num_nodes, -1, dtype=np.int64)
        node_of[pixels.numpy()] = np.arange(pixels.numel())
        index = node_of[index]
    return torch.from_numpy(np.ascontiguousarray(index, dtype=np.int64))


# ------------------------------------------------------------------ grid <-> node signals
def _grid_metadata(graph: SphereGraph) -> tuple[int, int, torch.Tensor]:
    if not all(name in graph for name in ("grid_index", "nlat", "nlon")):
        raise ValueError("graph has no grid metadata (grid_index, nlat, nlon); build it with "
                         "equiangular_graph or equiangular_hierarchy")
    return int(graph.nlat), int(graph.nlon), graph.grid_index


def _as_tensor(values: object, name: str = "values") -> tuple[torch.Tensor, bool]:
    if isinstance(values, torch.Tensor):
        return values, False
    if isinstance(values, np.ndarray):
        return torch.from_numpy(values), True
    raise TypeError(f"{name} must be a torch.Tensor or numpy.ndarray, got "
                    f"{type(values).__name__}")


def grid_to_nodes(values: torch.Tensor | np.ndarray, graph: SphereGraph
                  ) -> torch.Tensor | np.ndarray:
    r"""Grid data ``[..., nlat, nlon]`` -> node signal ``[..., N]`` of an equiangular graph.

    Node ``i`` receives the mean of the cells ``c`` with ``grid_index[c] == i``: its own
    cell, or the ``nlon`` cells of its row for a pole node. Cells whose node is not in
    the graph (masked) are ignored.

    Args:
        values: ``[..., nlat, nlon]`` tensor or array (integer and boolean data are
            converted to the default float dtype).
        graph: a graph from :func:`equiangular_graph`.

    Returns:
        ``[..., N]`` node values, of the input's kind (tensor or array) and device.

    Raises:
        ValueError: the last two dimensions are not ``[nlat, nlon]`` of the graph.
    """
    nlat, nlon, index = _grid_metadata(graph)
    tensor, was_numpy = _as_tensor(values)
    if tensor.dim() < 2 or tuple(tensor.shape[-2:]) != (nlat, nlon):
        raise ValueError(f"values must have shape [..., nlat, nlon] = [..., {nlat}, {nlon}] "
                         f"for this graph, got {list(tensor.shape)}")
    if not (tensor.is_floating_point() or tensor.is_complex()):
        tensor = tensor.to(torch.get_default_dtype())
    flat = tensor.reshape(*tensor.shape[:-2], nlat * nlon)
    index = index.to(tensor.device)
    valid = index >= 0
    num_nodes = int(graph.num_nodes)
    if bool(valid.all()) and index.numel() == num_nodes:  # one cell per node, in order
        out = flat.clone()
    else:
        cells = flat[..., valid]
        nodes = index[valid]
        out = flat.new_zeros(*flat.shape[:-1], num_nodes).index_add_(-1, nodes, cells)
        counts = torch.bincount(nodes, minlength=num_nodes).to(out.dtype)
        out = out / counts
    return out.numpy() if was_numpy else out


def nodes_to_grid(
    values: torch.Tensor | np.ndarray, graph: SphereGraph, fill_value: float = float("nan")
) -> torch.Tensor | np.ndarray:
    r"""Node signal ``[..., N]`` -> grid data ``[..., nlat, nlon]`` of an equiangular graph.

    Cell ``c`` receives the value of node ``grid_index[c]`` (a pole node's value fills
    its whole row); cells whose node is not in the graph get ``fill_value``.

    Args:
        values: ``[..., N]`` tensor or array.
        graph: a graph from :func:`equiangular_graph`.
        fill_value: value of the cells outside the graph (a masked grid); it must be
            representable in the dtype of ``values`` (NaN needs floating values).

    Returns:
        ``[..., nlat, nlon]``, of the input's kind, dtype and device.

    Raises:
        ValueError: the last dimension is not the graph's node count.
    """
    nlat, nlon, index = _grid_metadata(graph)
    tensor, was_numpy = _as_tensor(values)
    num_nodes = int(graph.num_nodes)
    if tensor.dim() < 1 or tensor.shape[-1] != num_nodes:
        raise ValueError(f"values must have shape [..., N] with N = {num_nodes} nodes of this "
                         f"graph, got {list(tensor.shape)}")
    index = index.to(tensor.device)
    valid = index >= 0
    out = tensor[..., index.clamp(min=0)]
    if not bool(valid.all()):
        out[..., ~valid] = fill_value
    out = out.reshape(*tensor.shape[:-1], nlat, nlon)
    return out.numpy() if was_numpy else out


# ----------------------------------------------------------------------------- hierarchy
def _halvable(nlat: int, nlon: int, grid: str) -> bool:
    if nlon % 2 or nlon // 2 < 2:
        return False
    if grid == "clenshaw-curtis":
        return nlat % 2 == 1 and nlat >= 3
    return nlat % 2 == 0 and nlat // 2 >= 2


def _halved(nlat: int, nlon: int, grid: str) -> tuple[int, int]:
    if grid == "clenshaw-curtis":
        return (nlat - 1) // 2 + 1, nlon // 2
    return nlat // 2, nlon // 2


def _level_sizes(nlat: int, nlon: int, grid: str, levels: int) -> list[tuple[int, int]]:
    sizes = [(nlat, nlon)]
    while len(sizes) < levels:
        if not _halvable(*sizes[-1], grid):
            rows = "nlat - 1" if grid == "clenshaw-curtis" else "nlat"
            raise ValueError(
                f"a {grid} grid of nlat={nlat} x nlon={nlon} cannot be pooled into {levels} "
                f"levels: level {len(sizes) - 1} ({sizes[-1][0]} x {sizes[-1][1]}) cannot be "
                f"halved ({rows} and nlon must be even, and the halved sizes >= 2); use "
                f"levels <= {len(sizes)}, or {rows} and nlon divisible by 2^{levels - 1} = "
                f"{2 ** (levels - 1)}")
        sizes.append(_halved(*sizes[-1], grid))
    return sizes


def _row_parents(nlat: int, grid: str) -> np.ndarray:
    """Coarse row of each fine row (module and :func:`equiangular_hierarchy` docs)."""
    rows = np.arange(nlat)
    if grid != "clenshaw-curtis":
        return rows // 2
    m = (nlat - 1) // 2  # coarse row j sits on fine row 2j; odd rows go to the pole side
    return np.where(rows % 2 == 0, rows // 2, np.where(rows > m, (rows + 1) // 2, rows // 2))


def _pool_full(fine: _Layout, coarse: _Layout) -> np.ndarray:
    """Parent node ``[N_fine]`` (coarse full-grid id) of every fine full-grid node."""
    row = _row_parents(fine.nlat, fine.grid)
    col = np.arange(fine.nlon) // 2
    parent_cell = (row[:, None] * coarse.nlon + col[None, :]).ravel()
    parent_of_cell = coarse.grid_index[parent_cell]
    parent = np.empty(fine.num_nodes, dtype=np.int64)
    parent[fine.grid_index] = parent_of_cell  # all cells of a pole node agree
    return parent


def _node_areas(layout: _Layout) -> np.ndarray:
    """Area ``[N]`` (steradians) of each node's cells, bounded by the parallels halfway
    between rows (the pole rows at the poles); sums to 4 pi."""
    theta = _colatitudes(layout.nlat, layout.grid)
    edges = np.concatenate([[0.0], (theta[:-1] + theta[1:]) / 2.0, [np.pi]])
    row_area = (np.cos(edges[:-1]) - np.cos(edges[1:])) * 2.0 * np.pi / layout.nlon
    cell_area = np.repeat(row_area, layout.nlon)
    return np.bincount(layout.grid_index, weights=cell_area, minlength=layout.num_nodes)


def equiangular_hierarchy(
    nlat: int,
    levels: int,
    nlon: int | None = None,
    *,
    grid: str = "driscoll-healy",
    weights: str = "knn",
    k: int | Sequence[int] = 8,
    kernel: str | float = "auto",
    mask: object = None,
    region: Sequence[float] | None = None,
    dtype: torch.dtype = torch.float32,
) -> SphereHierarchy:
    r"""Equiangular graphs at ``nlat x nlon``, ``nlat/2 x nlon/2``, ... with 2x2 pooling.

    Level ``l`` is a grid of the same family with ``nlon / 2^l`` longitudes and
    ``nlat / 2^l`` rings (Clenshaw-Curtis: :math:`(n_\mathrm{lat} - 1)/2^l + 1`, keeping
    both poles). Column ``k`` pools into coarse column ``k // 2``; the coarse point sits
    on the longitude of its western child, half a fine spacing from their mean. Rows:

    * Driscoll-Healy, SOFT, Gauss-Legendre: fine rows ``2j`` and ``2j + 1`` pool into
      coarse row ``j``. For SOFT the coarse colatitude is the mean of the two; for
      Driscoll-Healy it is that of row ``2j``; for Gauss-Legendre the coarse rings are the
      Gauss-Legendre nodes of the smaller size, close to (not exactly at) the children's
      centroid. The Driscoll-Healy north pole node has as children the fine pole node
      and the whole first fine ring.
    * Clenshaw-Curtis (:math:`n_\mathrm{lat} = 2m + 1 \to m + 1`): fine row ``2j`` pools
      into coarse row ``j`` (same colatitude); an odd row, halfway between two coarse
      rows, pools into the one nearer its own pole (the northern one at the equator). So
      each pole node's parent is the coarse pole node, which also takes the first fine
      ring, symmetrically at both poles; the coarse row just south of the equator
      (:math:`m` odd) or on it (:math:`m` even) has one fine row of children.

    So every parent has children, four (two rows x two columns) away from the poles.

    **Partial coverage.** ``mask``/``region`` (as in :func:`equiangular_graph`) select
    the finest nodes; a coarse node is kept when any of its children is kept, and ids are
    re-indexed to the kept nodes of each level. ``coverage[l]`` is the observed fraction
    of each node's area: the area of its observed finest descendants over that of all of
    them, cell areas bounded by the parallels halfway between rings.

    Args:
        nlat: finest number of rings.
        levels: number of graphs (``>= 1``).
        nlon: finest number of longitudes (default: the grid's usual value).
        grid, weights, kernel, mask, region, dtype: as in :func:`equiangular_graph`
            (isolated kept nodes raise).
        k: neighbours per node, one value or one per level (finest first).

    Returns:
        A :class:`~deepsphere_pyg.graphs.hierarchy.SphereHierarchy`.

    Raises:
        ValueError: a level that cannot be halved (odd sizes; the message says how many
            levels would work), ``k`` too large for a coarse level, and the errors of
            :func:`equiangular_graph`.
    """
    from .hierarchy import SphereHierarchy

    grid = _check_grid(grid)
    levels = check_positive_int(levels, "levels")
    nlat, nlon = _check_sizes(nlat, nlon, grid)
    _resolve_kernel(weights, kernel)
    sizes = _level_sizes(nlat, nlon, grid, levels)
    if isinstance(k, numbers.Integral) and not isinstance(k, bool):
        ks = [int(k)] * levels
    else:
        ks = list(k) if isinstance(k, Sequence) and not isinstance(k, str) else []
        if len(ks) != levels:
            raise ValueError(f"k must be an int or a list of {levels} ints, got {k!r}")
    layouts = [_layout(a, b, grid) for a, b in sizes]
    ids = _kept_nodes(mask, region, layouts[0])
    total = _node_areas(layouts[0])
    observed = total if ids is None else np.where(np.isin(np.arange(total.size), ids),
                                                  total, 0.0)
    graphs, pool_index, coverage = [], [], []
    for level, (level_nlat, level_nlon) in enumerate(sizes):
        if level:
            parents = _pool_full(layouts[level - 1], layouts[level])
            size = layouts[level].num_nodes
            total = np.bincount(parents, weights=total, minlength=size)
            observed = np.bincount(parents, weights=observed, minlength=size)
            if ids is None:
                pool_index.append(torch.from_numpy(parents))
            else:
                ids, child_to_parent = np.unique(parents[ids], return_inverse=True)
                pool_index.append(torch.from_numpy(child_to_parent.astype(np.int64)))
        try:
            graph = equiangular_graph(level_nlat, level_nlon, grid=grid, weights=weights,
                                      k=ks[level], kernel=kernel, mask=ids, dtype=dtype)
        except ValueError as error:
            raise ValueError(f"level {level} ({level_nlat} x {level_nlon}): {error}") from error
        graphs.append(graph)
        fraction = observed / total
        coverage.append(torch.from_numpy(fraction if ids is None else fraction[ids]).float())
    return SphereHierarchy(graphs, pool_index, coverage)
