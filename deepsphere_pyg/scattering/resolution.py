r"""Resolution of the levels of a hierarchy, and which level a band-limited signal needs.

A level "resolves" degrees up to its effective :math:`n_\mathrm{side}`: on a k-NN HEALPix
graph the Laplacian eigenvalues follow :math:`c\,\ell(\ell+1)` up to
:math:`\ell \approx n_\mathrm{side}` and bend below it above (within 5 % up to
:math:`0.5`-:math:`0.75\, n_\mathrm{side}`, 9-16 % below at :math:`n_\mathrm{side}`, see
:mod:`~deepsphere_pyg.scattering.calibration`), so a signal band-limited to
:math:`\ell < B` is placed on the coarsest level with
:math:`n_\mathrm{side} \ge \text{margin} \cdot B`.

For samplings without an ``nside`` the effective value comes from the spacing of the
nodes: on HEALPix the median angular distance to the nearest pixel is
:math:`1.024 / n_\mathrm{side}` (measured at nside 8 to 64, constant to 0.2 %), so
:math:`n_\mathrm{eff} = 1.024 / \tilde d` with :math:`\tilde d` the median nearest-node
angle of the graph's nodes.

The default margin 1 chooses the level that can represent a band (the output level of
the scattering coefficients). A graph filter is more accurate one level finer, where its
band ends at half the resolution: the graph backend applies the scaling function there
(:data:`~deepsphere_pyg.scattering.graph_backend.SCALING_MARGIN`) and interpolates the
result to the output level (:func:`interpolation_matrix`).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse
import torch
from scipy.spatial import cKDTree

from ..graphs.hierarchy import SphereHierarchy
from ..graphs.sphere_graph import SphereGraph

#: Source points of each target point in :func:`interpolation_matrix`.
INTERPOLATION_NEIGHBOURS = 12

#: Median nearest-pixel angle of HEALPix times nside.
HEALPIX_SPACING = 1.024

#: Default ratio of a level's effective nside to the band limit it must hold.
DEFAULT_MARGIN = 1.0


def effective_nside(graph: SphereGraph) -> float:
    """The graph's ``nside`` (HEALPix), else :math:`1.024 / \\tilde d` (module docstring;
    computed once per graph and cached on it)."""
    if getattr(graph, "sampling", None) == "healpix" and "nside" in graph:
        return float(graph.nside)
    if graph.pos.shape[0] < 2:
        raise ValueError("graph needs at least 2 nodes to estimate its resolution")

    def compute() -> float:
        pos = graph.pos.detach().cpu().double().numpy()
        chord, _ = cKDTree(pos).query(pos, 2)
        angle = 2.0 * np.arcsin(np.clip(chord[:, 1] / 2.0, 0.0, 1.0))
        return float(HEALPIX_SPACING / np.median(angle))

    if isinstance(graph, SphereGraph) and graph.edge_index is not None:
        # Cached with the graph's other derived quantities (keyed by its edges).
        return graph.cached("effective_nside", (graph.pos.data_ptr(),), compute)
    return compute()


def level_for_band_limit(
    hierarchy: SphereHierarchy, band_limit: float, margin: float = DEFAULT_MARGIN
) -> int:
    r"""Index of the coarsest level with effective nside :math:`\ge` ``margin * band_limit``
    (0, the finest, when no level is fine enough)."""
    chosen = 0
    for level, graph in enumerate(hierarchy.graphs):
        if effective_nside(graph) >= margin * band_limit:
            chosen = level
    return chosen


def _as_unit_vectors(pos: np.ndarray | torch.Tensor, name: str) -> np.ndarray:
    if isinstance(pos, torch.Tensor):
        pos = pos.detach().cpu().numpy()
    pos = np.asarray(pos, dtype=np.float64)
    if pos.ndim != 2 or pos.shape[1] != 3 or pos.shape[0] < 1:
        raise ValueError(f"{name} must have shape [N, 3] with N >= 1, got {pos.shape}")
    return pos / np.linalg.norm(pos, axis=1, keepdims=True)


def interpolation_matrix(
    source_pos: np.ndarray | torch.Tensor,
    target_pos: np.ndarray | torch.Tensor,
    num_neighbours: int = INTERPOLATION_NEIGHBOURS,
) -> scipy.sparse.csr_array:
    r"""Local quadratic interpolation from one point set of the sphere to another.

    For each target point :math:`y`, the quadratic
    :math:`a + b u + c v + d u^2 + e uv + g v^2` in the coordinates :math:`(u, v)` of the
    tangent plane at :math:`y` is fitted by least squares to the values at the
    ``num_neighbours`` nearest source points; its value :math:`a` at :math:`y` is a fixed
    linear combination of those values (the first row of the pseudo-inverse of the fit).
    It is exact for quadratics; for maps band-limited to :math:`\ell < n_\mathrm{side}`
    moved from HEALPix :math:`2 n_\mathrm{side}` to :math:`n_\mathrm{side}` the relative
    error is :math:`7 \times 10^{-4}` (the mean of the four children is off by 1.4 %:
    a pixel-shape-dependent smoothing).

    Args:
        source_pos: ``[N_s, 3]`` unit vectors of the points holding the values.
        target_pos: ``[N_t, 3]`` unit vectors of the points to evaluate.
        num_neighbours: source points per target (at most ``N_s``; default 12, twice the
            six coefficients of the quadratic).

    Returns:
        ``[N_t, N_s]`` CSR array (float64): ``values_t = M @ values_s``.
    """
    source = _as_unit_vectors(source_pos, "source_pos")
    target = _as_unit_vectors(target_pos, "target_pos")
    if isinstance(num_neighbours, bool) or not isinstance(num_neighbours, int) \
            or num_neighbours < 1:
        raise ValueError(f"num_neighbours must be a positive integer, got {num_neighbours!r}")
    k = min(num_neighbours, source.shape[0])
    _, index = cKDTree(source).query(target, k)
    index = index.reshape(target.shape[0], k)
    # Tangent basis (e1, e2) at each target point.
    helper = np.where(np.abs(target[:, 2:3]) < 0.9, [[0.0, 0.0, 1.0]], [[1.0, 0.0, 0.0]])
    e1 = np.cross(target, helper)
    e1 /= np.linalg.norm(e1, axis=1, keepdims=True)
    e2 = np.cross(target, e1)
    weights = np.empty(index.shape)
    step = 1 << 16
    for start in range(0, target.shape[0], step):
        stop = start + step
        points = source[index[start:stop]]
        u = np.einsum("nkd,nd->nk", points, e1[start:stop])
        v = np.einsum("nkd,nd->nk", points, e2[start:stop])
        design = np.stack([np.ones_like(u), u, v, u * u, u * v, v * v], axis=-1)
        weights[start:stop] = np.linalg.pinv(design)[:, 0, :]
    rows = np.repeat(np.arange(target.shape[0]), k)
    matrix = scipy.sparse.csr_array((weights.ravel(), (rows, index.ravel())),
                                    shape=(target.shape[0], source.shape[0]))
    matrix.sum_duplicates()
    matrix.sort_indices()
    return matrix
