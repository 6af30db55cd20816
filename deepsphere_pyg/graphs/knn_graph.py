r"""k-NN heat-kernel graphs of any point set on the sphere, with the data-derived widths.

Every sampling other than HEALPix (lat-lon grids, icosahedral vertices, station networks)
builds its k-NN graph here: exact k nearest neighbours by chord distance, union
symmetrisation, heat-kernel weights :math:`w_{ij} = \exp(-d_{ij}^2 / (4 t_{ij}))`.

**Global width** (``kernel="global"``). DeepSphere v2 tuned :math:`t` on HEALPix by minimising
the equivariance error. Measured against the mean squared distance
:math:`\overline{d^2}` of the k-NN entries, the published widths are the same fraction
of it at every resolution (nside 32, 64, 128 agree to 4 %):

.. math::

    t = \alpha(k)\, \overline{d^2}, \qquad \alpha(8) = 0.137,\ \alpha(20) = 0.0993,\
    \alpha(40) = 0.0966,

(:data:`KNN_WIDTH_RATIO`, interpolated in :math:`\log k` and held constant outside).
For any roughly uniform sampling this transfers the tuned HEALPix width without a new
optimisation; :func:`~deepsphere_pyg.graphs.equivariance.tune_kernel_width` refines it.

**Adaptive width** (``kernel="adaptive"``), for strongly non-uniform point sets such as
weather stations: :math:`t_{ij} = \alpha(k) \max(m_i, m_j)` with :math:`m_i` the mean
squared distance of node ``i``'s k neighbours (local scaling in the spirit of
Zelnik-Manor & Perona 2004, with the larger of the two scales). An entry of ``i``'s own
list has :math:`d_{ij}^2 \le k\, m_i`, so every weight is at least
:math:`\exp(-k / (4\alpha(k)))` (:math:`4.5 \cdot 10^{-7}` for ``k = 8``): a remote
station keeps usable weights instead of underflowing to zero. (The geometric mean
:math:`\sqrt{m_i m_j}` does not bound them: on the GeoNames world cities, where
:math:`m_i` spans seven orders of magnitude, it leaves weights of :math:`10^{-169}`.) On
a uniform sampling it is within a few per cent of ``"global"``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from .checks import check_isolated, check_k, check_unit_vectors, report_isolated
from .kernels import check_kernel
from .knn import (
    index_dtype_for,
    isolated_rows,
    knn_chord,
    missing_reverse_entries,
    to_kept_nodes,
    union_symmetric_weighted,
)
from .sphere_graph import SphereGraph

#: :math:`t / \overline{d^2}` of the published DeepSphere v2 widths on HEALPix, per ``k``
#: (measured at nside 64: 0.1368 / 0.0993 / 0.0966; nside 32 and 128 within 4 %).
KNN_WIDTH_RATIO: dict[int, float] = {8: 0.1368, 20: 0.0993, 40: 0.0966}

#: Squared chord distance below which two points count as duplicates (about 0.2 arcsec).
DUPLICATE_DIST2 = 1e-12


def knn_width_ratio(k: int) -> float:
    r""":math:`\alpha(k)`: the width rule's ratio :math:`t / \overline{d^2}` for ``k``
    neighbours, interpolated linearly in :math:`\log k` in :data:`KNN_WIDTH_RATIO`."""
    ks = sorted(KNN_WIDTH_RATIO)
    return float(np.interp(math.log(k), np.log(ks), [KNN_WIDTH_RATIO[kk] for kk in ks]))


def keep_index(keep: object, num_points: int, name: str = "mask") -> np.ndarray | None:
    """Sorted ids of the kept points from a boolean ``[num_points]`` mask or an id array.

    Returns ``None`` when every point is kept.
    """
    if keep is None:
        return None
    if isinstance(keep, torch.Tensor):
        keep = keep.detach().cpu().numpy()
    array = np.asarray(keep)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D (a boolean mask or node ids), got shape "
                         f"{array.shape}")
    if array.dtype == bool:
        if array.size != num_points:
            raise ValueError(f"{name} has {array.size} entries but the sampling has "
                             f"{num_points} nodes; give one boolean per node or node ids")
        ids = np.flatnonzero(array)
    else:
        if not np.issubdtype(array.dtype, np.integer):
            raise TypeError(f"{name} must be a boolean mask or integer node ids, "
                            f"got dtype {array.dtype}")
        if array.size and (array.min() < 0 or array.max() >= num_points):
            raise ValueError(f"{name} node ids must lie in [0, {num_points - 1}], got range "
                             f"[{array.min()}, {array.max()}]")
        ids = np.unique(array.astype(np.int64))
        if ids.size != array.size:
            raise ValueError(f"{name} node ids contain duplicates; pass each node once")
    if ids.size == 0:
        raise ValueError(f"{name} keeps no node; at least one node must be kept")
    return None if ids.size == num_points else ids.astype(np.int64)


def knn_graph(
    pos: np.ndarray,
    *,
    k: int,
    kernel: str | float = "global",
    mask: object = None,
    isolated: str = "raise",
    sampling: str = "points",
    dtype: torch.dtype = torch.float32,
    width_factor: float = 1.0,
    **metadata: Any,
) -> SphereGraph:
    r"""Union-symmetrised k-NN heat-kernel graph of unit vectors ``pos``.

    The neighbours (and, for ``"global"``, the width) are those of the full point set; a
    ``mask`` keeps the subgraph induced by the kept nodes, so a masked graph has exactly
    the edges and weights its nodes have in the full graph.

    Args:
        pos: ``[N, 3]`` unit vectors (any float dtype; computed in float64).
        k: neighbours per node before symmetrisation, ``1 <= k < N``.
        kernel: ``"global"`` (one width from the rule), ``"adaptive"`` (local widths) or a positive
            float :math:`t` (module docstring).
        mask: ``None``, a boolean ``[N]`` mask or node ids of the kept nodes.
        isolated: kept nodes left without a neighbour: ``"raise"`` or ``"drop"`` (warns).
        sampling: name stored in the graph's ``sampling`` attribute.
        dtype: floating dtype of ``pos`` and ``edge_weight``.
        width_factor: multiplies the rule's widths (``"global"``, ``"adaptive"``): a
            sampling whose tuned width differs from the HEALPix-calibrated rule (lat-lon
            grids) sets it from its own tuning.
        **metadata: further attributes stored in the graph (grid parameters, ...).

    Returns:
        A :class:`SphereGraph` with ``k``, ``kernel``, ``kernel_width`` (:math:`t`, the
        median :math:`t_{ij}` for ``"adaptive"``) and ``pixels`` (ids of the kept nodes in
        the full sampling, ``None`` without a mask).

    Raises:
        ValueError: duplicate points (distance below ~0.2 arcsec), weights that underflow
            to zero in ``dtype`` (a fixed ``t`` far too small), isolated kept nodes.
    """
    pos = check_unit_vectors(pos)
    kernel = check_kernel(kernel)
    check_isolated(isolated)
    num_points = pos.shape[0]
    k = check_k(k, num_points)
    kept = keep_index(mask, num_points)

    neighbours, dist2 = knn_chord(pos, k, index_dtype=index_dtype_for(num_points))
    _check_duplicates(dist2, neighbours)
    local = dist2.mean(axis=1)  # m_i
    if not (math.isfinite(width_factor) and width_factor > 0):
        raise ValueError(f"width_factor must be positive and finite, got {width_factor!r}")
    ratio = knn_width_ratio(k) * width_factor
    width = float(kernel) if isinstance(kernel, float) else ratio * float(local.mean())
    if kept is not None:
        neighbours, dist2, local = neighbours[kept], dist2[kept], local[kept]
        neighbours = to_kept_nodes(neighbours, kept, num_points)
        lonely = kept[isolated_rows(neighbours)]
        if lonely.size:
            report_isolated(lonely, isolated, stacklevel=3)
            return knn_graph(pos, k=k, kernel=kernel, mask=np.setdiff1d(kept, lonely),
                             sampling=sampling, dtype=dtype, width_factor=width_factor,
                             **metadata)

    if kernel == "adaptive":
        safe = np.maximum(neighbours, 0)
        t_entries = ratio * np.maximum(local[:, None], local[safe])
        width = float(np.median(t_entries))
    else:
        t_entries = width
    weights = np.exp(-dist2 / (4.0 * t_entries))
    missing = missing_reverse_entries(neighbours, dist2)
    edge_index, edge_weight = union_symmetric_weighted(neighbours, weights, missing=missing)
    edge_weight = torch.from_numpy(edge_weight).to(dtype)
    if edge_weight.numel() and not bool((edge_weight > 0).all()):
        zero = int((edge_weight <= 0).sum())
        raise ValueError(
            f"kernel={kernel!r} (width t={width:.4g}) is too small for the longest edges "
            f"(squared chord up to {float(dist2.max()):.4g}): {zero} weight(s) underflow to 0 "
            f"in {dtype}; use kernel='adaptive' (local widths) or a larger t")
    node_pos = pos if kept is None else pos[kept]
    return SphereGraph(
        pos=torch.from_numpy(node_pos).to(dtype),
        edge_index=torch.from_numpy(edge_index),
        edge_weight=edge_weight,
        num_nodes=int(node_pos.shape[0]),
        sampling=sampling,
        k=int(k),
        kernel=kernel if isinstance(kernel, str) else "custom",
        kernel_width=width,
        pixels=None if kept is None else torch.from_numpy(kept),
        **{"edges": "knn", **metadata},
    )


def _check_duplicates(dist2: np.ndarray, neighbours: np.ndarray) -> None:
    """Raise if two points (nearly) coincide: their weight would be 1 and their signals
    indistinguishable, and local widths would vanish."""
    close = dist2[:, 0] < DUPLICATE_DIST2
    if close.any():
        first = int(np.flatnonzero(close)[0])
        raise ValueError(
            f"pos holds {int(close.sum())} point(s) closer than "
            f"{math.degrees(math.sqrt(DUPLICATE_DIST2)) * 3600:.2f} arcsec to another "
            f"(e.g. nodes {first} and {int(neighbours[first, 0])}); remove duplicates "
            "or merge them (points_graph(..., duplicates='merge'))")
