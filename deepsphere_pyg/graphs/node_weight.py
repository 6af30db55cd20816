r"""Node masses: the area (quadrature weight) of every node of a sphere graph.

A node's mass :math:`m_i` is the area of the sphere it stands for, in steradians, so that
:math:`\sum_i m_i f(x_i) \approx \int_{S^2} f` and the masses of a full-sphere graph sum
to :math:`4\pi`. The mass Laplacian
(:func:`~deepsphere_pyg.graphs.operator.laplacian_scipy` with ``normalization="mass"``)
uses them to make the graph operator independent of the node density.

Rules per sampling (each sums to :math:`4\pi` on the full sphere):

* **HEALPix**: :math:`4\pi / (12\, n_\mathrm{side}^2)` for every pixel (equal areas).
* **Equiangular grids**: Gauss-Legendre rows get the Gauss weight :math:`w_j`
  (:func:`numpy.polynomial.legendre.leggauss`, :math:`\sum_j w_j = 2`) times
  :math:`2\pi / n_\mathrm{lon}`. Driscoll-Healy, SOFT and Clenshaw-Curtis nodes get the
  area of their cell between the parallels halfway between rows,
  :math:`(\cos\vartheta_{j-1/2} - \cos\vartheta_{j+1/2})\, 2\pi / n_\mathrm{lon}` with
  :math:`\vartheta_{-1/2} = 0` and :math:`\vartheta_{n_\mathrm{lat} - 1/2} = \pi`; a
  pole node (one node for a pole row) gets the polar cap down to the first mid-latitude.
  (:func:`~deepsphere_pyg.graphs.equiangular_layout.node_areas`.)
* **Point sets, icosahedral vertices**: the area of each node's spherical Voronoi cell.
  Point sets use :class:`scipy.spatial.SphericalVoronoi`; the icosahedral mesh, which is
  the spherical Delaunay triangulation of its vertices, sums each vertex's share of its
  faces (:func:`mesh_dual_areas`: the part of a face nearer that vertex, bounded by the
  edge midpoints and the face's circumcentre), the same areas without a hull
  computation.
* **Hierarchies**: a coarse node's mass is the sum of its children's
  (:func:`~deepsphere_pyg.graphs.hierarchy.coarse_node_weights`), for every sampling.

**Masks.** The masses of a masked graph are the kept nodes' own areas in the full
sampling: no renormalisation, so they sum to the kept area. For point sets and
icosahedral meshes the Voronoi cells are those of the *full* point set; at a region
border a kept node keeps its whole cell, so the kept area ends on the Voronoi edges
between kept and dropped nodes.

Builders store the masses as ``graph.node_weight`` (``[N]``, the graph's float dtype, a
node attribute that PyG batching concatenates and ``.to()`` moves);
:func:`node_weight` reads them, or computes them from the graph's metadata when the
attribute is absent.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.spatial import QhullError, SphericalVoronoi

from .equiangular_layout import GridLayout, check_grid, grid_layout, node_areas
from .sphere_graph import SphereGraph

__all__ = [
    "grid_node_weight",
    "healpix_node_weight",
    "mesh_dual_areas",
    "node_weight",
    "node_weight_tensor",
    "voronoi_areas",
]


def healpix_node_weight(nside: int, num_nodes: int | None = None,
                        dtype: torch.dtype = torch.float64) -> torch.Tensor:
    r"""``[N]`` masses :math:`4\pi / (12\, n_\mathrm{side}^2)` of HEALPix pixels (``N``
    defaults to all :math:`12\, n_\mathrm{side}^2` pixels), as a tensor of ``dtype``."""
    npix = 12 * int(nside) ** 2
    count = npix if num_nodes is None else int(num_nodes)
    return torch.full((count,), 4.0 * math.pi / npix, dtype=torch.float64).to(dtype)


def grid_node_weight(layout: GridLayout) -> np.ndarray:
    """float64 ``[N]`` masses of every node of a full equiangular grid (module rules)."""
    if layout.grid != "gauss-legendre":
        return node_areas(layout)
    _, weights = np.polynomial.legendre.leggauss(layout.nlat)  # ascending cos(theta)
    row = weights[::-1] * (2.0 * np.pi / layout.nlon)  # rows north to south
    return np.bincount(layout.grid_index, weights=np.repeat(row, layout.nlon),
                       minlength=layout.num_nodes)


def voronoi_areas(pos: np.ndarray) -> np.ndarray:
    """float64 ``[N]`` areas of the spherical Voronoi cells of distinct unit vectors
    ``pos`` ``[N, 3]`` (:class:`scipy.spatial.SphericalVoronoi`); they sum to 4 pi.
    Cells cover the whole sphere: for a regional network the outermost points' cells
    extend over the unsampled rest of it.

    Raises:
        ValueError: fewer than 4 points, or points on one great circle.
    """
    points = np.asarray(pos, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3 or points.shape[0] < 4:
        raise ValueError(f"Voronoi areas need at least 4 unit vectors [N, 3], got shape "
                         f"{points.shape}")
    points = points / np.linalg.norm(points, axis=1, keepdims=True)
    try:
        return SphericalVoronoi(points, radius=1.0, center=np.zeros(3)).calculate_areas()
    except (ValueError, QhullError) as error:
        raise ValueError(f"the spherical Voronoi cells of these {points.shape[0]} points are "
                         f"not defined ({error}); points on one great circle have none") \
            from error


def _signed_triangle_area(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    r"""Signed area of the spherical triangles ``(a, b, c)`` (rows of unit vectors),
    :math:`2 \operatorname{atan2}(a \cdot (b \times c),\ 1 + a\cdot b + b\cdot c + c\cdot a)`
    (Van Oosterom & Strackee), positive when counter-clockwise seen from outside."""
    det = np.einsum("ij,ij->i", a, np.cross(b, c))
    den = 1.0 + np.einsum("ij,ij->i", a, b) + np.einsum("ij,ij->i", b, c) \
        + np.einsum("ij,ij->i", c, a)
    return 2.0 * np.arctan2(det, den)


def mesh_dual_areas(pos: np.ndarray, faces: np.ndarray) -> np.ndarray:
    r"""float64 ``[N]`` Voronoi areas of the vertices of a spherical Delaunay
    triangulation.

    The Voronoi cell of vertex :math:`a` meets a face :math:`(a, b, c)` (counter-clockwise)
    in the quadrilateral :math:`a, m_{ab}, o, m_{ca}`, with :math:`m` the normalised edge
    midpoints (the cell edges are the perpendicular bisectors) and :math:`o` the face's
    circumcentre (the normalised normal of its plane); its area is that of the spherical
    triangles :math:`(a, m_{ab}, o)` and :math:`(a, o, m_{ca})`, signed, so that the areas
    sum to :math:`4\pi` for any closed oriented mesh.

    Args:
        pos: ``[N, 3]`` unit vectors.
        faces: ``[F, 3]`` vertex ids, counter-clockwise seen from outside.
    """
    pos = np.asarray(pos, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64)
    corners = [pos[faces[:, i]] for i in range(3)]
    normal = np.cross(corners[1] - corners[0], corners[2] - corners[0])
    centre = normal / np.linalg.norm(normal, axis=1, keepdims=True)
    area = np.zeros(pos.shape[0])
    for i in range(3):
        a, b, c = corners[i], corners[(i + 1) % 3], corners[(i + 2) % 3]
        m_ab, m_ca = a + b, c + a
        m_ab /= np.linalg.norm(m_ab, axis=1, keepdims=True)
        m_ca /= np.linalg.norm(m_ca, axis=1, keepdims=True)
        share = _signed_triangle_area(a, m_ab, centre) + _signed_triangle_area(a, centre, m_ca)
        area += np.bincount(faces[:, i], weights=share, minlength=pos.shape[0])
    return area


def node_weight_tensor(full: np.ndarray, pixels: torch.Tensor | np.ndarray | None,
                       dtype: torch.dtype) -> torch.Tensor:
    """The masses ``full`` ``[N_full]`` of a full sampling restricted to the kept nodes
    ``pixels`` (``None``: all), as a tensor ``[N]`` of ``dtype``."""
    values = np.asarray(full, dtype=np.float64)
    if pixels is not None:
        ids = pixels.cpu().numpy() if isinstance(pixels, torch.Tensor) else np.asarray(pixels)
        values = values[ids]
    return torch.from_numpy(np.ascontiguousarray(values)).to(dtype)


def node_weight(graph: SphereGraph) -> torch.Tensor:
    r"""The masses ``[N]`` of ``graph``'s nodes (module docstring), in the dtype and on the
    device of ``graph.pos``.

    ``graph.node_weight`` when the builder stored it; otherwise computed from the metadata:
    HEALPix from ``nside``, equiangular grids from ``grid``, ``nlat``, ``nlon`` and
    ``pixels``, any other full-sphere graph (``pixels`` absent) from the spherical Voronoi
    cells of ``pos``.

    Raises:
        ValueError: a partial graph of another sampling without ``node_weight`` (its
            full point set is unknown), or a graph without ``pos``.
    """
    pos = graph.pos if "pos" in graph else None
    dtype = pos.dtype if pos is not None else torch.float64
    device = pos.device if pos is not None else torch.device("cpu")
    if "node_weight" in graph and graph.node_weight is not None:
        return torch.as_tensor(graph.node_weight).to(device=device, dtype=dtype)
    sampling = graph.sampling if "sampling" in graph else None
    num_nodes = int(graph.num_nodes)
    if sampling == "healpix" and "nside" in graph:
        return healpix_node_weight(int(graph.nside), num_nodes, dtype).to(device)
    if sampling == "equiangular" and all(key in graph for key in ("grid", "nlat", "nlon")):
        layout = grid_layout(int(graph.nlat), int(graph.nlon), check_grid(graph.grid))
        return node_weight_tensor(grid_node_weight(layout), graph.pixels, dtype).to(device)
    if graph.pixels is not None:
        raise ValueError(
            f"graph (sampling={sampling!r}) covers part of its sampling and has no "
            "node_weight; build it with its sampling's builder (equiangular_graph, "
            "points_graph, icosahedral_graph set node_weight) or set graph.node_weight "
            "to the [N] node areas")
    if pos is None:
        raise ValueError("graph has neither node_weight nor pos; set graph.node_weight to "
                         "the [N] node areas")
    return node_weight_tensor(voronoi_areas(pos.detach().cpu().double().numpy()), None,
                              dtype).to(device)
