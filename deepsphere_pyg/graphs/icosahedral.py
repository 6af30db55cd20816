r"""Icosahedral samplings: subdivided icosahedron graphs and their pooling hierarchy.

**Vertices.** Level 0 is the regular icosahedron with a vertex at each pole: node 0 is the
north pole, nodes 1-5 lie at latitude :math:`\arctan(1/2) \approx 26.57°` and longitudes
0°, 72°, ..., 288°, nodes 6-10 at latitude :math:`-\arctan(1/2)` and longitudes 36°,
108°, ..., 324°, node 11 is the south pole. Level :math:`r` splits every triangle of level
:math:`r - 1` into four, adding the midpoints of the edges projected onto the unit sphere:

.. math::

    N_r = 10 \cdot 4^r + 2, \qquad E_r = 30 \cdot 4^r, \qquad F_r = 20 \cdot 4^r.

The vertices of level :math:`r - 1` keep their ids (the first :math:`N_{r-1}`), and the
midpoint of the ``e``-th edge of level :math:`r - 1` (edges sorted by their
``(min id, max id)`` pair) is vertex :math:`N_{r-1} + e`. Faces are oriented
counter-clockwise seen from outside the sphere. Twelve vertices (those of level 0) have 5
neighbours, all others 6.

**Graphs.** ``edges="neighbours"`` joins the vertices along the edges of the
triangulation; ``edges="knn"`` builds the k-nearest-neighbour graph of the vertices with
:func:`~deepsphere_pyg.graphs.knn_graph.knn_graph`. Weights are the heat kernel
:math:`w_{ij} = \exp(-d_{ij}^2 / (4t))` of the chord distance :math:`d_{ij}`.

**Pooling.** Every vertex of level :math:`r` is assigned to one vertex of level
:math:`r - 1`: a vertex of level :math:`r - 1` is its own child, and the midpoint of a
coarse edge goes to the endpoint that *owns* the edge. A coarse vertex and its children
form a cell: the vertex plus the midpoints of the edges it owns. Ownership is fixed
at level 0 by :data:`BASE_EDGE_OWNERS` and inherited at each subdivision:

* a coarse edge :math:`u \to v` (owned by :math:`u`, midpoint :math:`x`) becomes
  :math:`u \to x` (owned by :math:`u`) and :math:`x \to v` (owned by :math:`x`);
* in each coarse face the three midpoints are joined in a directed cycle, each midpoint
  owning one of the three inner edges; of the two cycles, the one is taken in which most
  midpoints (2 or 3 of 3, never a tie) point to the midpoint that shares the owner of
  their own coarse edge.

Every vertex created by a subdivision therefore owns exactly 3 edges, and every vertex
keeps the number it owned before. Level 0 gives 3 edges to the north pole and the five
southern vertices (6-10) and 2 to the others, so at every level all cells hold 4 vertices
except the six level-0 vertices 1-5 and 11, which hold 3:
:math:`N_{r} = 4 N_{r-1} - 6`. Where the faces of level :math:`r - 1` are directed
cycles (all but :math:`6 \cdot 2^{r-1}` of them) a vertex owns every second edge around
it, so its cell is a three-armed star centred on it (the mean of the cell's unit vectors
points at the vertex; it is off by at most 0.16 coarse edge lengths, near the twelve
level-0 vertices and the faces that are not cycles).

**Cost.** Each level is built from the previous one with vectorised numpy and cached for
the life of the process (read-only; the public functions return copies), so only the
first request of a fine level pays for its construction and for the levels below it
(build times and memory: ``BENCHMARKS.md``, "Costs behind the library's defaults").
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch

from .checks import check_edges, check_isolated, check_positive_int, induced_pairs
from .hierarchy import SphereHierarchy
from .kernels import check_kernel
from .knn_graph import keep_index, knn_graph
from .lonlat import region_mask, vec_to_lonlat
from .node_weight import mesh_dual_areas, node_weight_tensor
from .sphere_graph import SphereGraph

__all__ = [
    "BASE_EDGE_OWNERS",
    "MAX_LEVEL",
    "icosahedral_graph",
    "icosahedral_hierarchy",
    "icosahedral_mesh_width",
    "icosahedral_num_vertices",
    "icosahedral_pool_index",
    "icosahedral_vertices",
]

#: Finest level accepted (:math:`N = 671{,}088{,}642` vertices; level 10 already has
#: 10.5 million, about HEALPix ``nside=1024``).
MAX_LEVEL = 13

#: Ownership of the 30 edges of the level-0 icosahedron, ``(owner, other)`` node ids. The
#: north pole (0) and the southern vertices 6-10 own 3 edges, the other six own 2; the
#: table is one with the fewest faces that are not directed cycles (6 of 20, the minimum
#: for these counts: each vertex owning 3 of 5 edges has two consecutive ones).
BASE_EDGE_OWNERS: tuple[tuple[int, int], ...] = (
    (0, 1), (0, 2), (3, 0), (0, 4), (5, 0), (1, 2), (1, 5), (6, 1), (10, 1), (2, 3),
    (2, 6), (7, 2), (4, 3), (3, 7), (8, 3), (4, 5), (8, 4), (9, 4), (5, 9), (10, 5),
    (6, 7), (6, 10), (11, 6), (7, 8), (7, 11), (9, 8), (8, 11), (9, 10), (11, 9), (10, 11),
)

#: Old names of the edge recipes (the deprecated ``neighbours=`` keyword) -> ``edges``.
NEIGHBOURS = {"mesh": "neighbours", "knn": "knn"}

#: Default ``k`` of ``edges="knn"``.
DEFAULT_K = 8

#: :math:`t / \overline{d^2}` of the named widths of mesh graphs, :math:`\overline{d^2}` the
#: mean squared chord length of the mesh edges (see :func:`icosahedral_mesh_width`).
MESH_WIDTH_RATIO: dict[str, float] = {"auto": 0.25, "v1": 0.5}


class _Mesh(NamedTuple):
    """One level of the subdivision (read-only arrays).

    pos: ``[N, 3]`` float64 unit vectors; faces: ``[F, 3]`` int64 counter-clockwise;
    edges: ``[E, 2]`` int64 ``(min id, max id)`` pairs sorted by ``min * N + max``;
    owner: ``[E]`` int64 id of the endpoint that owns each edge.
    """

    pos: np.ndarray
    faces: np.ndarray
    edges: np.ndarray
    owner: np.ndarray


# ------------------------------------------------------------------------- checks
def _check_level(level: object, name: str = "level") -> int:
    """Return ``level`` as an int in ``[0, MAX_LEVEL]``, or raise."""
    if isinstance(level, bool) or not isinstance(level, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= 0 (0 = the icosahedron, each level "
                        f"splits every triangle into 4), got {level!r}")
    level = int(level)
    if not 0 <= level <= MAX_LEVEL:
        raise ValueError(f"{name} must lie in [0, {MAX_LEVEL}] (N = 10 * 4^level + 2 "
                         f"vertices), got {level}")
    return level


def icosahedral_num_vertices(level: int) -> int:
    r"""Vertex count :math:`N = 10 \cdot 4^\mathrm{level} + 2` of a subdivision level."""
    return 10 * 4 ** _check_level(level) + 2


# ---------------------------------------------------------------------- subdivision
def _readonly(*arrays: np.ndarray) -> None:
    for array in arrays:
        array.flags.writeable = False


def _edge_keys(lo: np.ndarray, hi: np.ndarray, num_nodes: int) -> np.ndarray:
    """One int64 per undirected edge, ordering edges by ``(min id, max id)``."""
    return np.minimum(lo, hi) * num_nodes + np.maximum(lo, hi)


def _face_sides(faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(start, end)`` ``[F, 3]`` of the sides (0, 1), (1, 2), (2, 0) of every face."""
    return faces, np.roll(faces, -1, axis=1)


def _unique_edges(faces: np.ndarray, num_nodes: int) -> np.ndarray:
    """``[E, 2]`` sorted ``(min, max)`` pairs of the distinct sides of ``faces``."""
    start, end = _face_sides(faces)
    keys = np.sort(_edge_keys(start, end, num_nodes), axis=None)
    # Sorted keys: drop repeats (np.unique hashes instead of sorting, several times slower).
    keys = keys[np.concatenate([[True], keys[1:] != keys[:-1]])]
    return np.stack([keys // num_nodes, keys % num_nodes], axis=1)


def _edge_ids(edges: np.ndarray, lo: np.ndarray, hi: np.ndarray, num_nodes: int) -> np.ndarray:
    """Row of ``edges`` (as built by :func:`_unique_edges`) of each edge ``(lo, hi)``."""
    table = edges[:, 0] * num_nodes + edges[:, 1]
    keys = _edge_keys(lo, hi, num_nodes)
    ids = np.searchsorted(table, keys)
    if not np.array_equal(table[np.minimum(ids, table.size - 1)], keys):
        raise RuntimeError("edge not found in the mesh (inconsistent subdivision)")
    return ids


def _base_mesh() -> _Mesh:
    """The level-0 icosahedron, poles at nodes 0 and 11."""
    lat = math.atan(0.5)
    lon_north = np.radians(72.0 * np.arange(5))
    lon_south = lon_north + math.radians(36.0)
    ring = [np.stack([math.cos(lat) * np.cos(lon), math.cos(lat) * np.sin(lon),
                      np.full(5, sign * math.sin(lat))], axis=1)
            for lon, sign in ((lon_north, 1.0), (lon_south, -1.0))]
    pos = np.concatenate([[[0.0, 0.0, 1.0]], ring[0], ring[1], [[0.0, 0.0, -1.0]]])
    i = np.arange(5)
    north, south = 1 + i, 6 + i  # rings; vertex 6 + i lies between 1 + i and 1 + (i + 1) % 5
    north_next, south_next = 1 + (i + 1) % 5, 6 + (i + 1) % 5
    faces = np.concatenate([
        np.stack([np.zeros(5, np.int64), north, north_next], axis=1),
        np.stack([north, south, north_next], axis=1),
        np.stack([north_next, south, south_next], axis=1),
        np.stack([np.full(5, 11, np.int64), south_next, south], axis=1),
    ]).astype(np.int64)
    edges = _unique_edges(faces, 12)
    owned = np.array(BASE_EDGE_OWNERS, dtype=np.int64)
    owner = np.empty(edges.shape[0], dtype=np.int64)
    owner[_edge_ids(edges, owned[:, 0], owned[:, 1], 12)] = owned[:, 0]
    return _Mesh(pos, faces, edges, owner)


def _subdivide(mesh: _Mesh) -> _Mesh:
    """Split every face into four and pass edge ownership on (module docstring)."""
    pos, faces, edges, owner = mesh
    n = pos.shape[0]
    # Midpoint of edge e is vertex n + e.
    midpoint = pos[edges[:, 0]] + pos[edges[:, 1]]
    midpoint /= np.linalg.norm(midpoint, axis=1, keepdims=True)
    new_pos = np.concatenate([pos, midpoint])
    start, end = _face_sides(faces)
    side_edge = _edge_ids(edges, start, end, n)  # [F, 3]: sides 01, 12, 20
    m01, m12, m20 = (n + side_edge).T
    a, b, c = faces.T
    new_faces = np.concatenate([
        np.stack([a, m01, m20], axis=1),
        np.stack([m01, b, m12], axis=1),
        np.stack([m20, m12, c], axis=1),
        np.stack([m01, m12, m20], axis=1),
    ])
    num_new = new_pos.shape[0]

    # Directed (owner, other) edges of the new level.
    mid = n + np.arange(edges.shape[0])
    other = edges[:, 0] + edges[:, 1] - owner
    # Side s of a face runs start[s] -> end[s], and the midpoint of side s + 1 shares end[s]
    # with it. In the cycle m01 -> m12 -> m20 -> m01 the midpoint of side s points to that
    # of side s + 1, i.e. to the midpoint sharing its owner iff the owner is end[s]; the
    # reverse cycle does so iff the owner is start[s]. Take the cycle most sides agree with.
    owned_by_end = owner[side_edge] == end  # [F, 3]
    along_sides = owned_by_end.sum(axis=1) >= 2
    cycle = np.stack([m01, m12, m20], axis=1)
    successor = np.where(along_sides[:, None], np.roll(cycle, -1, axis=1),
                         np.roll(cycle, 1, axis=1))
    new_owner_of = np.concatenate([owner, mid, cycle.ravel()])
    new_other_of = np.concatenate([mid, other, successor.ravel()])
    new_edges = _unique_edges(new_faces, num_new)
    new_owner = np.full(new_edges.shape[0], -1, dtype=np.int64)
    new_owner[_edge_ids(new_edges, new_owner_of, new_other_of, num_new)] = new_owner_of
    if new_owner_of.size != new_edges.shape[0] or (new_owner < 0).any():
        raise RuntimeError("edge ownership is not a partition of the edges")
    return _Mesh(new_pos, new_faces, new_edges, new_owner)


@functools.cache
def _mesh(level: int) -> _Mesh:
    """Cached subdivision ``level`` (read-only arrays)."""
    mesh = _base_mesh() if level == 0 else _subdivide(_mesh(level - 1))
    _readonly(*mesh)
    return mesh


def icosahedral_vertices(level: int) -> tuple[np.ndarray, np.ndarray]:
    r"""Vertices and faces of the icosahedron subdivided ``level`` times.

    See the module docstring for the construction and the vertex order (levels nest:
    the first :math:`N_{r-1}` vertices of level :math:`r` are those of level
    :math:`r - 1`). Results are cached per level; the arrays returned are copies.

    Args:
        level: subdivision level, ``0 <= level <=`` :data:`MAX_LEVEL`.

    Returns:
        ``(pos, faces)``: float64 ``[N, 3]`` unit vectors with
        :math:`N = 10 \cdot 4^\mathrm{level} + 2`, and int64 ``[F, 3]`` vertex ids of the
        :math:`F = 20 \cdot 4^\mathrm{level}` triangles, counter-clockwise seen from outside.

    Raises:
        TypeError: ``level`` not an integer.
        ValueError: ``level`` outside ``[0, MAX_LEVEL]``.

    Example:
        >>> pos, faces = icosahedral_vertices(1)
        >>> pos.shape, faces.shape
        ((42, 3), (80, 3))
    """
    mesh = _mesh(_check_level(level))
    return mesh.pos.copy(), mesh.faces.copy()


def icosahedral_pool_index(level: int) -> np.ndarray:
    r"""Parent at level ``level - 1`` of every vertex of level ``level`` (module docstring).

    Args:
        level: the finer level, ``1 <= level <=`` :data:`MAX_LEVEL`.

    Returns:
        int64 ``[N_level]``: ``parent[i] = i`` for the first :math:`N_{level-1}` vertices,
        and the owner of the split coarse edge for the midpoints. Every coarse vertex has
        4 children, except vertices 1-5 and 11, which have 3.
    """
    level = _check_level(level)
    if level == 0:
        raise ValueError("level 0 (the icosahedron) has no coarser level; use level >= 1")
    coarse = _mesh(level - 1)
    return np.concatenate([np.arange(coarse.pos.shape[0], dtype=np.int64), coarse.owner])


# --------------------------------------------------------------------------- graphs
def icosahedral_mesh_width(level: int, kernel: str = "auto") -> float:
    r"""Heat-kernel width :math:`t` of the mesh graph at ``level`` for a named rule.

    :math:`\overline{d^2}` is the mean squared chord length of the mesh edges of the full
    sphere at ``level``.

    * ``"auto"``: :math:`t = \overline{d^2} / 4`. This ratio minimises the equivariance
      error :math:`E_\ell = \sum_f \lVert \mathbf{L} f - c_\ell f \rVert^2 /
      \sum_f \lVert \mathbf{L} f \rVert^2` (:math:`\mathbf{L} = \mathbf{D} - \mathbf{W}`,
      random real fields :math:`f` of a single degree :math:`\ell`, :math:`c_\ell` the
      least-squares eigenvalue; zero for an equivariant operator, about half the
      DeepSphere v2 error on HEALPix graphs) averaged over the degrees
      :math:`\ell = 2, 4, 8, 12` (level 3), 4, 8, 16, 24 (level 4), 4, 8, 16, 32, 48
      (level 5) and 8, 16, 32, 64 (level 6): the optimum ratio is 0.25 at every level,
      and ratios 0.2 to 0.3 stay within 15 % of it.
    * ``"v1"``: :math:`t = \overline{d^2} / 2`, the DeepSphere v1 rule
      (:math:`w = \exp(-d^2 / (2 \overline{d^2}))`) of ``healpix_graph(edges="neighbours")``;
      its error is 1.6 to 2 times that of ``"auto"``.

    Raises:
        ValueError: ``kernel`` not ``"auto"`` or ``"v1"``.
    """
    if kernel not in MESH_WIDTH_RATIO:
        raise ValueError(f"kernel must be one of {tuple(MESH_WIDTH_RATIO)}, got {kernel!r}")
    return MESH_WIDTH_RATIO[kernel] * _mean_squared_edge_length(_check_level(level))


@functools.cache
def _mean_squared_edge_length(level: int) -> float:
    mesh = _mesh(level)
    diff = mesh.pos[mesh.edges[:, 0]] - mesh.pos[mesh.edges[:, 1]]
    return float(np.einsum("ij,ij->i", diff, diff).mean())


def _kept_nodes(pos: np.ndarray, mask: object, region: Sequence[float] | None
                ) -> np.ndarray | None:
    """Sorted ids kept by ``mask`` and ``region`` (both must keep a node), ``None``: all."""
    n = pos.shape[0]
    kept = keep_index(mask, n, "mask")
    if region is None:
        return kept
    lon, lat = vec_to_lonlat(pos)
    inside = region_mask(lon, lat, region)
    if kept is not None:
        restricted = np.zeros(n, dtype=bool)
        restricted[kept] = inside[kept]
        inside = restricted
    if not inside.any():
        raise ValueError(f"region={tuple(region)!r} (lon_min, lon_max, lat_min, lat_max in "
                         f"degrees) keeps no node{' of the mask' if kept is not None else ''}; "
                         "enlarge the region or use a finer level")
    return None if inside.all() else np.flatnonzero(inside)


def icosahedral_graph(
    level: int,
    *,
    edges: str | None = None,
    k: int | None = None,
    kernel: str | float = "auto",
    mask: object = None,
    region: Sequence[float] | None = None,
    isolated: str = "raise",
    dtype: torch.dtype = torch.float32,
    neighbours: str | None = None,
) -> SphereGraph:
    r"""Graph of the icosahedron subdivided ``level`` times (:math:`10 \cdot 4^r + 2` nodes).

    * ``edges="neighbours"`` (default): the edges of the triangulation (6 neighbours per node, 5 for
      the 12 vertices of the icosahedron). ``kernel="auto"`` sets
      :math:`t = \overline{d^2} / 4` over the mesh edges (tuned for equivariance),
      ``"v1"`` :math:`t = \overline{d^2} / 2` (DeepSphere v1 rule), both in
      :func:`icosahedral_mesh_width`; a float sets :math:`t`.
    * ``edges="knn"``: union-symmetrised ``k``-NN graph of
      :func:`~deepsphere_pyg.graphs.knn_graph.knn_graph` (``k`` defaults to 8);
      ``kernel="auto"`` is its ``"global"`` rule :math:`t = \alpha(k)\,\overline{d^2}`
      calibrated on the DeepSphere v2 HEALPix widths; ``"adaptive"`` or a float also work.

    **Partial sphere.** ``mask`` and ``region`` select nodes (both must keep a node when
    both are given); the graph is the subgraph of the full-sphere graph induced by them,
    with the same weights (the width is the one of the full sphere). ``pixels`` holds the
    vertex ids of the kept nodes. Kept nodes left without a neighbour raise
    (``isolated="raise"``) or are dropped with a warning (``isolated="drop"``).

    Args:
        level: subdivision level, ``0 <= level <=`` :data:`MAX_LEVEL`.
        edges: ``"neighbours"`` (the mesh) or ``"knn"``; ``neighbours``: its old name
            (``"mesh"`` or ``"knn"``, deprecated).
        k: neighbours per node before symmetrisation (``"knn"`` only; ``1 <= k < N``).
        kernel: ``"auto"``, ``"v1"`` (``"mesh"`` only), ``"global"``/``"adaptive"``
            (``"knn"`` only) or a positive float :math:`t`.
        mask: ``None``, a boolean ``[N]`` mask or vertex ids of the kept nodes.
        region: ``(lon_min, lon_max, lat_min, lat_max)`` in degrees (see
            :func:`~deepsphere_pyg.graphs.lonlat.region_mask`).
        isolated: ``"raise"`` or ``"drop"``.
        dtype: floating dtype of ``pos`` and ``edge_weight``.

    Returns:
        A :class:`SphereGraph` (edges in both directions, grouped by source node in
        ascending order, targets ascending for ``"mesh"``) with ``sampling="icosahedral"``,
        ``level``, ``edges``, ``neighbours`` (the recipe's old name, ``"mesh"`` or
        ``"knn"``), ``kernel`` (the rule's name, or
        ``"custom"`` for a float), ``kernel_width`` (:math:`t`), ``pixels`` (``None`` on
        the full sphere), ``node_weight`` (``[N]`` Voronoi areas of the nodes in the
        full mesh, :func:`~deepsphere_pyg.graphs.node_weight.mesh_dual_areas`) and, for
        ``"knn"``, ``k``.

    Raises:
        TypeError: ``level`` not an integer, ``kernel`` of the wrong type.
        ValueError: ``level`` out of range, unknown ``edges`` or ``kernel``, ``k``
            given for ``"mesh"``, ``k >= N``, ``t <= 0``, a mask or region that keeps
            nothing, isolated kept nodes with ``isolated="raise"``, weights that underflow
            to 0 (``t`` far too small).

    Example:
        >>> g = icosahedral_graph(2)
        >>> g.num_nodes, g.edge_index.shape[1]
        (162, 960)
    """
    level = _check_level(level)
    edges = check_edges(edges, default="neighbours", old_name="neighbours",
                        old_value=neighbours, old_names=NEIGHBOURS)
    kernel = check_kernel(kernel, "icosahedral", edges)
    check_isolated(isolated)
    mesh = _mesh(level)
    kept = _kept_nodes(mesh.pos, mask, region)
    if edges == "knn":
        graph = knn_graph(np.array(mesh.pos), k=DEFAULT_K if k is None else k,
                          kernel="global" if kernel == "auto" else kernel, mask=kept,
                          isolated=isolated, sampling="icosahedral", dtype=dtype,
                          level=level, edges="knn", neighbours="knn")
    elif k is not None:
        raise ValueError("k applies to edges='knn' only; the mesh graph has the "
                         "triangulation's 5 or 6 neighbours per node (pass k=None)")
    else:
        graph = _mesh_graph(mesh, level, kernel, kept, isolated, dtype)
    # Voronoi areas of the full mesh (the kept nodes keep their own cells).
    graph.node_weight = node_weight_tensor(mesh_dual_areas(mesh.pos, mesh.faces),
                                           graph.pixels, dtype)
    return graph


def _mesh_graph(mesh: _Mesh, level: int, kernel: str | float, kept: np.ndarray | None,
                isolated: str, dtype: torch.dtype) -> SphereGraph:
    """Induced subgraph of the triangulation on ``kept`` (``None``: all nodes)."""
    pos, edges = mesh.pos, mesh.edges
    num_points = pos.shape[0]
    width = (icosahedral_mesh_width(level, kernel) if isinstance(kernel, str)
             else float(kernel))
    lo, hi = edges[:, 0], edges[:, 1]
    node_pos = pos
    diff = pos[lo] - pos[hi]
    dist2 = np.einsum("ij,ij->i", diff, diff)
    if kept is not None:
        kept, (lo, hi), inside = induced_pairs(np.stack([lo, hi]), kept, num_points,
                                               isolated, stacklevel=4)
        dist2 = dist2[inside]
        node_pos = pos[kept]
    weight = torch.from_numpy(np.exp(-dist2 / (4.0 * width))).to(dtype)
    if weight.numel() and not bool((weight > 0).all()):
        raise ValueError(
            f"kernel width t={width:.4g} is too small for the edge lengths (longest squared "
            f"chord {float(dist2.max()):.4g}): weights underflow to 0 in {dtype}; use "
            "kernel='auto' or a larger t")
    # Both directions, grouped by source, targets ascending (CSR order).
    row, col = np.concatenate([lo, hi]), np.concatenate([hi, lo])
    order = np.lexsort((col, row))
    return SphereGraph(
        pos=torch.tensor(node_pos, dtype=dtype),  # a copy: the cached mesh is read-only
        edge_index=torch.from_numpy(np.stack([row[order], col[order]])),
        edge_weight=torch.cat([weight, weight])[torch.from_numpy(order)],
        num_nodes=int(node_pos.shape[0]),
        sampling="icosahedral",
        level=level,
        edges="neighbours",
        neighbours="mesh",
        kernel=kernel if isinstance(kernel, str) else "custom",
        kernel_width=width,
        pixels=None if kept is None else torch.from_numpy(kept),
    )


# ------------------------------------------------------------------------ hierarchy
@SphereHierarchy.register_builder("icosahedral")
def icosahedral_hierarchy(
    level: int,
    levels: int,
    *,
    edges: str | None = None,
    k: int | Sequence[int] | None = None,
    kernel: str | float = "auto",
    mask: object = None,
    region: Sequence[float] | None = None,
    dtype: torch.dtype = torch.float32,
    neighbours: str | None = None,
) -> SphereHierarchy:
    r"""Icosahedral graphs at levels ``level, level - 1, ..., level - levels + 1``.

    ``pool_index[l]`` maps every node of the ``l``-th graph to its cell at the next coarser
    level (:func:`icosahedral_pool_index`): a coarse vertex and the midpoints of the
    coarse edges it owns, 4 vertices per cell (3 for six of the twelve level-0
    vertices). Pooling (max/mean over ``pool_index``) therefore aggregates a
    neighbourhood of every coarse vertex and unpooling copies a coarse value to its whole
    cell.

    **Partial sphere.** ``mask``/``region`` select nodes of the finest level (as in
    :func:`icosahedral_graph`); a coarse vertex is kept when *any* of its children is kept,
    and ids are re-indexed to the kept nodes at every level (``pixels`` holds the vertex
    ids). ``coverage[l]`` is, for every node, the fraction of the finest-level vertices
    of its cell (recursively: of all its descendants) that are kept; at the first coarse
    level this is the fraction of its children kept. It is 1 on the full sphere.

    Args:
        level: finest level, ``0 <= level <=`` :data:`MAX_LEVEL`.
        levels: number of graphs, ``1 <= levels <= level + 1``.
        edges: ``"neighbours"`` (the mesh) or ``"knn"`` (:func:`icosahedral_graph`);
            ``neighbours``: its old name (deprecated).
        k: ``"knn"`` neighbour count, one value or one per level (finest first).
        kernel: edge-weight recipe of every level (:func:`icosahedral_graph`); ``"auto"``
            sets each level's width from its own edges.
        mask: finest-level mask (boolean ``[N]`` or vertex ids).
        region: finest-level ``(lon_min, lon_max, lat_min, lat_max)`` in degrees.
        dtype: floating dtype of the graphs.

    Returns:
        A :class:`SphereHierarchy` (graphs finest first).

    Raises:
        ValueError: bad arguments as in :func:`icosahedral_graph`, ``levels`` outside
            ``[1, level + 1]``, a level where a kept node has no kept neighbour.
    """
    level = _check_level(level)
    levels = check_positive_int(levels, "levels")
    edges = check_edges(edges, default="neighbours", old_name="neighbours",
                        old_value=neighbours, old_names=NEIGHBOURS)
    if levels > level + 1:
        raise ValueError(f"levels={levels} goes below level 0 from level={level}; use at most "
                         f"{level + 1} levels (or a finer level)")
    if k is None or isinstance(k, numbers.Integral):
        ks = [k] * levels
    else:
        ks = list(k)
        if len(ks) != levels:
            raise ValueError(f"k must be None, an int or a list of {levels} ints, got {k!r}")
    full = _mesh(level)
    pool_maps = [icosahedral_pool_index(level - step) for step in range(levels - 1)]

    def parents(step: int, ids: np.ndarray | None) -> np.ndarray:
        return pool_maps[step] if ids is None else pool_maps[step][ids]

    def build_level(step: int, ids: np.ndarray | None) -> SphereGraph:
        return icosahedral_graph(level - step, edges=edges, k=ks[step],
                                 kernel=kernel, mask=ids, isolated="raise", dtype=dtype)

    return SphereHierarchy.from_parents(
        parents, levels, build_level, kept=_kept_nodes(full.pos, mask, region),
        area=np.ones(full.pos.shape[0]),
        level_name=lambda step: f"level {level - step} of the hierarchy")
