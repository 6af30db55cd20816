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

**Pooling.** :func:`~deepsphere_pyg.graphs.equiangular_hierarchy.equiangular_hierarchy`
halves both sizes per level (2x2 blocks of rows x longitudes), each level a grid of the
same family; see there for the rules at the poles.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from .checks import EDGES, check_edges, check_float_dtype, check_isolated, induced_pairs
from .equiangular_layout import (
    GRIDS,
    GridLayout,
    check_grid,
    check_grid_sizes,
    equiangular_grid,
    grid_layout,
    kept_grid_nodes,
    layout_positions,
    pole_rows,
)
from .kernels import check_kernel
from .knn_graph import knn_graph
from .node_weight import grid_node_weight, node_weight_tensor
from .sphere_graph import SphereGraph

__all__ = [
    "GRIDS",
    "WEIGHTS",
    "equiangular_graph",
    "equiangular_grid",
    "grid_to_nodes",
    "nodes_to_grid",
]

#: Edge recipes of :func:`equiangular_graph` (:data:`~deepsphere_pyg.graphs.checks.EDGES`).
WEIGHTS = EDGES

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


# ------------------------------------------------------------------------------ edges
def _neighbour_edges(layout: GridLayout, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Undirected 4-neighbour pairs ``[2, M]`` (``i < j``, unique) and geodesic lengths ``[M]``."""
    nlat, nlon = layout.nlat, layout.nlon
    cells = layout.grid_index.reshape(nlat, nlon)
    east = np.stack([cells, np.roll(cells, -1, axis=1)]).reshape(2, -1)  # wraps at 360
    south = np.stack([cells[:-1], cells[1:]]).reshape(2, -1)
    pairs = [east, south]
    if nlon % 2 == 0:  # across a pole missing from the grid, to the opposite meridian
        poles = pole_rows(nlat, layout.grid)
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
    layout: GridLayout, pos: np.ndarray, kept: np.ndarray | None, isolated: str,
    dtype: torch.dtype,
) -> SphereGraph:
    pairs, angle = _neighbour_edges(layout, pos)
    if kept is not None:
        kept, pairs, inside = induced_pairs(pairs, kept, layout.num_nodes, isolated,
                                            stacklevel=4)
        angle = angle[inside]
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


def check_edges_kernel(edges: str | None, kernel: object, weights: str | None = None,
                       stacklevel: int = 4) -> tuple[str, str | float | None]:
    """The edge recipe (``weights``: its deprecated name) and the checked width rule
    (``None`` for the fixed 1/d weights of ``"neighbours"``)."""
    edges = check_edges(edges, default="knn", old_name="weights", old_value=weights,
                        old_names={name: name for name in EDGES}, stacklevel=stacklevel)
    rule = check_kernel(kernel, "equiangular", edges)
    return edges, (None if edges == "neighbours" else rule)


def equiangular_graph(
    nlat: int,
    nlon: int | None = None,
    *,
    grid: str = "driscoll-healy",
    edges: str | None = None,
    k: int = 8,
    kernel: str | float = "auto",
    mask: object = None,
    region: Sequence[float] | None = None,
    isolated: str = "raise",
    dtype: torch.dtype = torch.float32,
    weights: str | None = None,
) -> SphereGraph:
    r"""Graph of an equiangular grid (module docstring: grids, node order).

    Pole rows are single nodes, so no two nodes coincide. Edges follow ``edges``:

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
        edges: ``"knn"`` (default) or ``"neighbours"``.
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
        weights: the old name of ``edges`` (deprecated).

    Returns:
        A :class:`SphereGraph` with ``pos`` ``[N, 3]``, ``sampling="equiangular"``, ``grid``,
        ``nlat``, ``nlon``, ``edges`` (also as ``weights``), ``grid_index`` (LongTensor
        ``[nlat * nlon]``: node of each grid cell, row-major; ``-1`` for cells whose node
        is not in the graph),
        ``pixels`` (``[N]`` full-grid node ids, ``None`` without a mask), ``node_weight``
        (``[N]`` node areas, :mod:`~deepsphere_pyg.graphs.node_weight`: Gauss weights
        for Gauss-Legendre, cells between mid-latitudes otherwise), ``kernel`` and,
        for ``"knn"``, ``k`` and ``kernel_width``.

    Raises:
        ValueError: unknown ``grid``/``edges``/``kernel``, sizes ``< 2``, ``k >= N``, a
            region out of range, a mask or region that keeps nothing, isolated kept nodes.

    Example:
        >>> g = equiangular_graph(8, grid="driscoll-healy", edges="neighbours")
        >>> g.num_nodes  # 7 rows of 8 + the north pole
        57
    """
    grid = check_grid(grid)
    nlat, nlon = check_grid_sizes(nlat, nlon, grid)
    edges, resolved = check_edges_kernel(edges, kernel, weights)
    check_isolated(isolated)
    dtype = check_float_dtype(dtype)
    layout = grid_layout(nlat, nlon, grid)
    kept = kept_grid_nodes(mask, region, layout)
    pos = layout_positions(layout)
    if edges == "knn":
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
    graph.edges = edges
    graph.weights = edges  # the recipe's old name
    graph.grid_index = _graph_grid_index(layout, graph.pixels)
    graph.node_weight = node_weight_tensor(grid_node_weight(layout), graph.pixels, dtype)
    return graph


def _graph_grid_index(layout: GridLayout, pixels: torch.Tensor | None) -> torch.Tensor:
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
