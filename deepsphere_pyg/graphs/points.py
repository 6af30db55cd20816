r"""Graphs of irregular point sets (weather stations, cities, sensors) and their hierarchies.

**Coordinates.** Points are given as longitude and latitude in degrees (longitude east in
``[-180, 360]``, latitude north in ``[-90, 90]``; see :mod:`deepsphere_pyg.graphs.lonlat`)
and placed at the unit vectors
:math:`x = (\cos\theta \cos\phi,\ \cos\theta \sin\phi,\ \sin\theta)`.
Distances are chord distances :math:`d_{ij} = \|x_i - x_j\|`; angles such as
``merge_distance`` are great-circle angles in degrees (on the Earth one degree is about
111.2 km), so the same code serves the sky and the globe.

**Edges.** The union-symmetrised k-NN graph of
:func:`~deepsphere_pyg.graphs.knn_graph.knn_graph`, with heat-kernel weights
:math:`w_{ij} = \exp(-d_{ij}^2 / (4 t_{ij}))`. Writing :math:`m_i` for the mean squared
distance of point ``i`` to its ``k`` nearest neighbours and :math:`\alpha(k)` for the
ratio of the DeepSphere v2 widths to the mean squared k-NN distance on HEALPix
(:func:`~deepsphere_pyg.graphs.knn_graph.knn_width_ratio`; :math:`\alpha(8) = 0.137`),
the widths are

* ``"global"``: :math:`t = \alpha(k)\, \overline{m}` (one width, for near-uniform sets);
* ``"adaptive"``: :math:`t_{ij} = \alpha(k) \max(m_i, m_j)` (local scaling);
* a positive float: that :math:`t` for every edge.

``kernel="auto"`` (the default) resolves to ``"adaptive"``. Station networks are
strongly non-uniform (the world cities of GeoNames: :math:`m_i` spans seven orders of
magnitude). A global width fitted to the dense regions makes the weights of remote
stations underflow to 0 (886 zero weights in float32 on the cities). With the maximum of
the two local scales, an edge of ``i``'s own list has
:math:`d_{ij}^2 \le k\, m_i \le k \max(m_i, m_j)`, so every weight is at least
:math:`\exp(-k / (4\alpha(k)))` (:math:`4.5 \cdot 10^{-7}` for ``k = 8``; in practice the
exponent stays below :math:`\approx 15`). On a uniform sampling both rules give the
calibrated global width to a few per cent.

**Duplicates.** Points closer than ``merge_distance`` (default
:data:`DUPLICATE_DISTANCE_DEG`, about 0.2 arcsec, the builder's duplicate threshold) cannot
be separate nodes. ``duplicates="raise"`` reports them by input index;
``duplicates="merge"`` joins every group of points linked by pairs closer than
``merge_distance`` (single linkage: a chain of close points forms one group) into one node
placed at the normalised mean of the group's unit vectors, and ``point_index`` records the
node of each input point. :func:`points_to_nodes` averages values given per point onto the
nodes, :func:`nodes_to_points` copies node values back to the points.

**Hierarchy.** :func:`~deepsphere_pyg.graphs.points_hierarchy.points_hierarchy` pools the
points into the occupied HEALPix cells of decreasing resolution, so every pooling layer
works for any station network.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse
import torch
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from .checks import check_edges, check_float_dtype, check_isolated, check_positive_int
from .kernels import check_kernel
from .knn_graph import DUPLICATE_DIST2, keep_index, knn_graph
from .lonlat import check_lonlat, lonlat_to_vec, region_mask, vec_to_lonlat
from .node_weight import node_weight_tensor, voronoi_areas
from .sphere_graph import SphereGraph

#: Great-circle angle (degrees) below which two points are duplicates: the chord
#: :math:`\sqrt{\mathtt{DUPLICATE\_DIST2}} = 10^{-6}` of the k-NN builder (about 0.2 arcsec,
#: 6 m on the Earth).
DUPLICATE_DISTANCE_DEG = math.degrees(2.0 * math.asin(math.sqrt(DUPLICATE_DIST2) / 2.0))



# ----------------------------------------------------------------------- public API
def points_graph(
    lon: object,
    lat: object,
    *,
    k: int = 8,
    kernel: str | float = "auto",
    mask: object = None,
    region: Sequence[float] | None = None,
    duplicates: str = "raise",
    merge_distance: float | None = None,
    isolated: str = "raise",
    dtype: torch.dtype = torch.float32,
    edges: str | None = None,
) -> SphereGraph:
    r"""k-NN heat-kernel graph of points given by longitude and latitude (degrees).

    ``edges`` is ``"knn"`` (the default and only recipe of a point set, accepted so that
    code can name the recipe of any sampling).

    Nodes are the points in input order (after ``duplicates="merge"``: one node per group
    of merged points, ordered by the group's first input point). Edges join each node to
    its ``k`` nearest nodes by chord distance, symmetrised as the union of both directions,
    so every node of an unmasked graph has at least ``k`` neighbours. Weights follow
    ``kernel`` (module docstring; ``"auto"`` = ``"adaptive"``,
    :math:`t_{ij} = \alpha(k) \max(m_i, m_j)`).

    **Partial coverage.** ``mask`` and ``region`` select input points; a node is kept when
    any of its points is. The graph is the subgraph of the full graph induced by the kept
    nodes (the same edges and weights as in the full graph; nodes near the border of the
    selection keep fewer neighbours), as for masked HEALPix graphs. To build a graph of
    the selected points alone, index ``lon`` and ``lat`` before the call instead.

    Args:
        lon: ``[P]`` longitudes in degrees east, in ``[-180, 360]`` (array-like or tensor).
        lat: ``[P]`` latitudes in degrees north, in ``[-90, 90]``.
        k: neighbours per node before symmetrisation, ``1 <= k`` < number of nodes.
        kernel: ``"auto"``, ``"global"``, ``"adaptive"``, ``"adaptive"`` or a positive
            float width :math:`t`.
        mask: ``None``, a boolean ``[P]`` mask or integer ids of the kept input points.
        region: ``(lon_min, lon_max, lat_min, lat_max)`` box in degrees (inclusive;
            ``lon_min > lon_max`` crosses the antimeridian), combined with ``mask`` by "and".
        duplicates: ``"raise"`` or ``"merge"`` points closer than ``merge_distance``.
        merge_distance: great-circle angle in degrees (default and minimum
            :data:`DUPLICATE_DISTANCE_DEG`; values below it act as it).
        isolated: kept nodes left without a neighbour by ``mask``/``region``: ``"raise"``,
            or ``"drop"`` them (with a warning).
        dtype: floating dtype of ``pos``, ``edge_weight``, ``lon`` and ``lat``.

    Returns:
        A :class:`SphereGraph` with ``sampling="points"``, ``pos`` ``[N, 3]``,
        ``edge_index``, ``edge_weight``, ``k``, ``kernel`` (the resolved rule name, or
        ``"custom"`` for a float), ``kernel_width`` (:math:`t`; the median :math:`t_{ij}`
        of the local rules) and

        * ``lon``, ``lat``: ``[N]`` node coordinates in degrees. A node of one point keeps
          its input coordinates; a merged node gets those of its mean direction, with
          longitude in ``[-180, 180)`` if any input longitude is negative, else
          ``[0, 360)``.
        * ``point_index``: LongTensor ``[P]``, the node of each input point (``-1`` for
          points outside ``mask``/``region`` or on dropped nodes).
        * ``num_points``: LongTensor ``[N]``, the number of input points of each node.
        * ``pixels``: ``[N]`` ids of the kept nodes among all nodes (``None`` when every
          node is kept).
        * ``merge_distance``: the duplicate distance used, in degrees.
        * ``node_weight``: ``[N]`` areas (steradians) of the nodes' spherical Voronoi
          cells among all nodes (:mod:`~deepsphere_pyg.graphs.node_weight`; under a
          mask each kept node keeps its own cell, no renormalisation). Absent when the
          nodes have no Voronoi cells (fewer than 4, or all on one great circle).

    Raises:
        ValueError: lon/lat not 1-D, of different lengths, non-finite or out of range;
            fewer than ``k + 1`` distinct points; duplicates with ``duplicates="raise"``;
            an empty selection; isolated kept nodes with ``isolated="raise"``; weights
            underflowing to 0 (a float ``t`` far too small).
        TypeError: ``kernel``, ``mask`` or ``dtype`` of the wrong type.
    """
    check_edges(edges, default="knn", allowed=("knn",))
    graph, _ = points_level(lon, lat, k=k, kernel=kernel, mask=mask, region=region,
                             duplicates=duplicates, merge_distance=merge_distance,
                             isolated=isolated, dtype=dtype)
    return graph


def points_to_nodes(values: object, graph: SphereGraph, dim: int = 0) -> torch.Tensor:
    r"""Average values given per input point onto the nodes of a points graph.

    Node ``n`` gets :math:`\frac{1}{|S_n|}\sum_{p \in S_n} v_p` over the points
    :math:`S_n = \{p : \mathrm{point\_index}[p] = n\}`; points with ``point_index = -1``
    (outside the mask) are ignored. Without merged points this is a reindexing.

    Args:
        values: ``[..., P, ...]`` tensor or array with the points along ``dim``.
        graph: a graph from :func:`points_graph` (needs ``point_index``).
        dim: the points dimension of ``values``.

    Returns:
        ``[..., N, ...]`` node values (floating; integer input is converted to the default
        float dtype).

    Raises:
        TypeError: ``graph`` has no ``point_index``.
        ValueError: ``values`` has not ``P`` entries along ``dim``.
    """
    index, values, dim = _point_args(values, graph, dim)
    if not values.is_floating_point() and not values.is_complex():
        values = values.to(torch.get_default_dtype())
    keep = index >= 0
    if not bool(keep.all()):
        values = values.index_select(dim, torch.nonzero(keep).view(-1))
        index = index[keep]
    num_nodes = int(graph.num_nodes)
    shape = list(values.shape)
    shape[dim] = num_nodes
    out = torch.zeros(shape, dtype=values.dtype, device=values.device)
    out.index_add_(dim, index, values)
    counts = torch.bincount(index, minlength=num_nodes).to(values.dtype)
    view = [1] * values.dim()
    view[dim] = num_nodes
    return out / counts.view(view)


def nodes_to_points(values: object, graph: SphereGraph, dim: int = 0,
                    fill: float = float("nan")) -> torch.Tensor:
    """Copy node values to the input points of a points graph (each point gets its node's).

    Args:
        values: ``[..., N, ...]`` tensor or array with the nodes along ``dim``.
        graph: a graph from :func:`points_graph` (needs ``point_index``).
        dim: the nodes dimension of ``values``.
        fill: value of the points without a node (``point_index = -1``).

    Returns:
        ``[..., P, ...]`` values per input point.

    Raises:
        TypeError: ``graph`` has no ``point_index``.
        ValueError: ``values`` has not ``N`` entries along ``dim``; ``fill`` not
            representable (NaN into an integer tensor) while some point has no node.
    """
    index = _point_index(graph)
    values = torch.as_tensor(values)
    dim = _check_dim(dim, values)
    if values.shape[dim] != int(graph.num_nodes):
        raise ValueError(f"values must have {int(graph.num_nodes)} entries (one per node) "
                         f"along dim={dim}, got shape {tuple(values.shape)}")
    index = index.to(values.device)
    out = values.index_select(dim, index.clamp(min=0))
    missing = index < 0
    if bool(missing.any()):
        if not values.is_floating_point() and not math.isfinite(fill):
            raise ValueError(f"fill={fill!r} cannot be stored in {values.dtype}; pass an "
                             "integer fill for integer values")
        view = [1] * values.dim()
        view[dim] = index.numel()
        out = out.masked_fill(missing.view(view), fill)
    return out


# ------------------------------------------------------------------ level 0 (points)
def points_level(
    lon: object, lat: object, *, k: int, kernel: object, mask: object,
    region: Sequence[float] | None, duplicates: str, merge_distance: float | None,
    isolated: str, dtype: torch.dtype,
) -> tuple[SphereGraph, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, bool]]:
    """The points graph and float64 data of its kept nodes: ``(pos, lon, lat, counts,
    negative_lon)`` (``negative_lon``: whether any input longitude is negative)."""
    lon_a, lat_a = check_lonlat(lon, lat)
    num_points = lon_a.size
    rule = check_point_kernel(kernel)
    if duplicates not in ("raise", "merge"):
        raise ValueError(f"duplicates must be 'raise' or 'merge', got {duplicates!r}")
    check_isolated(isolated)
    check_float_dtype(dtype)
    k = check_positive_int(k, "k")
    merge_deg = check_merge_distance(merge_distance)
    radius = 2.0 * math.sin(math.radians(merge_deg) / 2.0)  # chord of merge_deg

    pos = lonlat_to_vec(lon_a, lat_a)
    if duplicates == "raise":
        groups = _close_groups(pos, radius)
        if groups:
            shown = ", ".join(str(g) for g in groups[:10])
            raise ValueError(
                f"lon/lat hold {len(groups)} group(s) of points closer than "
                f"merge_distance={merge_deg:.3g} degrees ({merge_deg * 3600:.3g} arcsec) to "
                f"each other, by input index: {shown}{' ...' if len(groups) > 10 else ''}; "
                "remove them, or pass duplicates='merge' to merge each group into one node")
        node_of_point, node_pos = np.arange(num_points), pos
    else:
        node_of_point, node_pos = merge_points(pos, radius)
    num_nodes = node_pos.shape[0]
    if num_nodes <= k:
        merged = f" ({num_points} input points before merging)" if num_nodes < num_points else ""
        raise ValueError(f"k={k} neighbours need at least k + 1 = {k + 1} distinct points, "
                         f"got {num_nodes}{merged}; choose k <= {max(num_nodes - 1, 0)} or "
                         "give more points")

    # Selection: kept input points -> kept nodes (a node is kept if any point is).
    kept_points = np.ones(num_points, dtype=bool)
    ids = keep_index(mask, num_points, "mask")
    if ids is not None:
        kept_points[:] = False
        kept_points[ids] = True
    if region is not None:
        inside = region_mask(lon_a, lat_a, region)
        if not inside.any():
            raise ValueError(f"region={tuple(region)!r} holds none of the {num_points} points; "
                             "check the bounds (lon_min > lon_max crosses the antimeridian)")
        kept_points &= inside
        if not kept_points.any():
            raise ValueError("mask and region together keep no point; check both")
    node_mask = None
    if not kept_points.all():
        node_mask = np.zeros(num_nodes, dtype=bool)
        node_mask[node_of_point[kept_points]] = True

    # Node coordinates: a single point keeps its own, a merged node its mean direction.
    negative_lon = bool((lon_a < 0).any())
    group_size = np.bincount(node_of_point, minlength=num_nodes)
    first_point = np.full(num_nodes, num_points, dtype=np.int64)
    np.minimum.at(first_point, node_of_point, np.arange(num_points))
    node_lon, node_lat = lon_a[first_point].copy(), lat_a[first_point].copy()
    merged = group_size > 1
    if merged.any():
        node_lon[merged], node_lat[merged] = node_lonlat(node_pos[merged], negative_lon)

    graph = _knn(node_pos, k=k, kernel=rule, mask=node_mask, isolated=isolated, dtype=dtype,
                 sampling="points")
    kept_nodes = np.arange(num_nodes) if graph.pixels is None else graph.pixels.numpy()
    local = np.full(num_nodes, -1, dtype=np.int64)
    local[kept_nodes] = np.arange(kept_nodes.size)
    point_index = np.where(kept_points, local[node_of_point], -1)
    counts = np.bincount(point_index[point_index >= 0], minlength=kept_nodes.size)

    graph.lon = torch.from_numpy(node_lon[kept_nodes]).to(dtype)
    graph.lat = torch.from_numpy(node_lat[kept_nodes]).to(dtype)
    graph.point_index = torch.from_numpy(point_index)
    graph.num_points = torch.from_numpy(counts.astype(np.int64))
    graph.merge_distance = float(merge_deg)
    # Voronoi cells of all nodes; a masked graph keeps its nodes' own cells. Sets without
    # cells (fewer than 4 nodes, all on one great circle) have no node_weight.
    try:
        graph.node_weight = node_weight_tensor(voronoi_areas(node_pos), kept_nodes, dtype)
    except ValueError:
        pass
    nodes = (node_pos[kept_nodes], node_lon[kept_nodes], node_lat[kept_nodes],
             counts.astype(np.int64), negative_lon)
    return graph, nodes


def merge_points(pos: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    r"""Merge groups of unit vectors linked by pairs closer than chord ``radius``.

    Groups are the connected components of the graph of pairs with
    :math:`\|x_i - x_j\| \le r` (single linkage, via :meth:`scipy.spatial.cKDTree.query_pairs`
    and :func:`scipy.sparse.csgraph.connected_components`); each becomes one node at the
    normalised mean of its points' unit vectors. If two nodes end up closer than ``r``, they
    are merged in turn, so the returned nodes are more than ``r`` apart.

    Args:
        pos: ``[P, 3]`` float64 unit vectors.
        radius: chord distance :math:`r = 2 \sin(\theta / 2)` of the merge angle
            :math:`\theta`.

    Returns:
        ``(node_of_point, node_pos)``: int64 ``[P]`` node of each point (nodes ordered by
        their first point) and float64 ``[N, 3]`` node unit vectors.

    Raises:
        ValueError: a group whose unit vectors cancel (merge angle far too large).
    """
    pos = np.asarray(pos, dtype=np.float64)
    num_points = pos.shape[0]
    node_of_point = np.arange(num_points)
    node_pos = pos
    while node_pos.shape[0] > 1:
        pairs = cKDTree(node_pos).query_pairs(radius, output_type="ndarray")
        if pairs.shape[0] == 0:
            break
        n = node_pos.shape[0]
        links = scipy.sparse.coo_array(
            (np.ones(pairs.shape[0]), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
        num_groups, labels = connected_components(links, directed=False)
        node_of_point = labels[node_of_point]
        # Order the groups by their first point.
        first = np.full(num_groups, num_points, dtype=np.int64)
        np.minimum.at(first, node_of_point, np.arange(num_points))
        rank = np.empty(num_groups, dtype=np.int64)
        rank[np.argsort(first, kind="stable")] = np.arange(num_groups)
        node_of_point = rank[node_of_point]
        sums = group_sum(pos, node_of_point, num_groups)
        norms = np.linalg.norm(sums, axis=1)
        weak = norms < 1e-9 * np.bincount(node_of_point, minlength=num_groups)
        if weak.any():
            raise ValueError("merged points have no mean direction (the merge angle joins "
                             "points from opposite sides of the sphere); use a much smaller "
                             "merge_distance")
        node_pos = sums / norms[:, None]
    return node_of_point.astype(np.int64), node_pos


# ---------------------------------------------------------------------- edge weights
def _knn(pos: np.ndarray, *, k: int, kernel: str | float, mask: np.ndarray | None,
         isolated: str, dtype: torch.dtype, sampling: str, **metadata: Any) -> SphereGraph:
    """:func:`knn_graph` of float64 unit vectors."""
    return knn_graph(pos, k=k, kernel=kernel, mask=mask, isolated=isolated,
                     sampling=sampling, dtype=dtype, **metadata)


def check_point_kernel(kernel: object) -> str | float:
    """:func:`~deepsphere_pyg.graphs.kernels.check_kernel` of a point set, with ``"auto"``
    resolved to ``"adaptive"``."""
    rule = check_kernel(kernel, "points")
    return "adaptive" if rule == "auto" else rule


# ---------------------------------------------------------------------------- helpers
def _close_groups(pos: np.ndarray, radius: float) -> list[list[int]]:
    """Groups (input indices, ascending) of points linked by pairs within chord ``radius``."""
    pairs = cKDTree(pos).query_pairs(radius, output_type="ndarray")
    if pairs.shape[0] == 0:
        return []
    n = pos.shape[0]
    links = scipy.sparse.coo_array((np.ones(pairs.shape[0]), (pairs[:, 0], pairs[:, 1])),
                                   shape=(n, n))
    _, labels = connected_components(links, directed=False)
    involved = np.unique(pairs)
    groups: dict[int, list[int]] = {}
    for point in involved.tolist():
        groups.setdefault(int(labels[point]), []).append(point)
    return sorted(groups.values())


def check_merge_distance(merge_distance: object, name: str = "merge_distance") -> float:
    """The merge angle in degrees (at least :data:`DUPLICATE_DISTANCE_DEG`); ``name`` is
    the argument or configuration key named in errors."""
    if merge_distance is None:
        return DUPLICATE_DISTANCE_DEG
    if isinstance(merge_distance, bool) or not isinstance(merge_distance, numbers.Real):
        raise TypeError(f"{name} must be an angle in degrees (a float), got "
                        f"{merge_distance!r}")
    value = float(merge_distance)
    if not (math.isfinite(value) and 0 <= value < 180):
        raise ValueError(f"{name} must be an angle in degrees in [0, 180), got "
                         f"{merge_distance!r} (one degree is about 111 km on the Earth)")
    return max(value, DUPLICATE_DISTANCE_DEG)


def group_sum(values: np.ndarray, group: np.ndarray, num_groups: int) -> np.ndarray:
    """``[num_groups, C]`` sums of the rows of ``values`` ``[M, C]`` by ``group``."""
    return np.stack([np.bincount(group, weights=values[:, c], minlength=num_groups)
                     for c in range(values.shape[1])], axis=1)


def node_lonlat(pos: np.ndarray, negative_lon: bool) -> tuple[np.ndarray, np.ndarray]:
    """Degrees of unit vectors, longitude in ``[-180, 180)`` or ``[0, 360)``."""
    lon, lat = vec_to_lonlat(pos)
    if negative_lon:
        lon = (lon + 180.0) % 360.0 - 180.0
    return lon, lat


def _point_index(graph: SphereGraph) -> torch.Tensor:
    if "point_index" not in graph:
        raise TypeError("graph has no point_index; build it with points_graph or "
                        "points_hierarchy (level 0)")
    return graph.point_index


def _check_dim(dim: int, values: torch.Tensor) -> int:
    if values.dim() == 0:
        raise ValueError("values must have at least one dimension (the points or nodes)")
    if not -values.dim() <= dim < values.dim():
        raise ValueError(f"dim={dim} is out of range for values of shape "
                         f"{tuple(values.shape)}")
    return dim % values.dim()


def _point_args(values: object, graph: SphereGraph,
                dim: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    index = _point_index(graph)
    values = torch.as_tensor(values)
    dim = _check_dim(dim, values)
    if values.shape[dim] != index.numel():
        raise ValueError(f"values must have {index.numel()} entries (one per input point) "
                         f"along dim={dim}, got shape {tuple(values.shape)}")
    return index.to(values.device), values, dim
