r"""Graph Laplacians, their largest eigenvalue, and the rescaled Chebyshev operator.

For a weighted adjacency :math:`W` with degrees :math:`D = \mathrm{diag}(W \mathbf{1})`:

* ``normalization=None`` — combinatorial :math:`L = D - W`;
* ``"sym"`` — symmetric normalised :math:`L = I - D^{-1/2} W D^{-1/2}`;
* ``"rw"`` — random walk :math:`L = I - D^{-1} W`;
* ``"mass"`` — the mass Laplacian in its symmetric form
  :math:`S = \frac1c M^{-1/2} L_m M^{-1/2}` (:mod:`~deepsphere_pyg.graphs.operator`),
  with the node masses of :func:`~deepsphere_pyg.graphs.node_weight.node_weight` and
  the constant :math:`c` of :func:`mass_scale`, so that its low eigenvalues approximate
  :math:`\ell(\ell + 1)`.

(nodes of zero degree get :math:`D^{-1} = 0`). The Chebyshev filters use the rescaled
operator :math:`\tilde L = 2L / \lambda_\max - I`, whose spectrum lies in :math:`[-1, 1]`.
The matrices are assembled by :mod:`~deepsphere_pyg.graphs.operator`; this module gives
them per graph.

Functions taking a :class:`~deepsphere_pyg.graphs.SphereGraph` cache their result on the
graph, so every layer sharing a graph computes each operator once.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse.linalg
import torch

from .node_weight import node_weight
from .operator import (
    check_normalization,
    laplacian_scipy,
    mass_constant,
    numpy_float,
    rescale,
    scipy_to_torch_csr,
)
from .sphere_graph import SphereGraph, tensor_fingerprint


def mass_key(graph: SphereGraph) -> tuple:
    """What the mass operator depends on beyond the edges: the stored masses (their
    identity and version), or the metadata they are derived from."""
    if "node_weight" in graph and graph.node_weight is not None:
        return tensor_fingerprint(graph.node_weight)
    return ("derived",)


def mass_scale(graph: SphereGraph) -> float:
    r"""The constant :math:`c` of the mass Laplacian of ``graph``
    (:func:`~deepsphere_pyg.graphs.operator.mass_constant`: the area-weighted mean of
    :math:`\frac14 \sum_j m_j w_{ij} d_{ij}^2`; about :math:`4\pi t^2` for a heat kernel
    of width :math:`t` resolved by the edges), cached on the graph."""
    return graph.cached("mass_scale", mass_key(graph), lambda: mass_constant(
        graph.pos, graph.edge_index, graph.edge_weight, node_weight(graph)))


def graph_laplacian_scipy(graph: SphereGraph, normalization: str | None,
                          dtype: type[np.floating] | None = None):
    """The scipy Laplacian of ``graph`` (:func:`~deepsphere_pyg.graphs.operator.
    laplacian_scipy`); for ``"mass"`` with the graph's masses and constant :math:`c`."""
    dtype = numpy_float(graph.edge_weight.dtype) if dtype is None else dtype
    if normalization != "mass":
        return laplacian_scipy(graph.edge_index, graph.edge_weight, graph.num_nodes,
                               normalization, dtype=dtype)
    return laplacian_scipy(graph.edge_index, graph.edge_weight, graph.num_nodes, "mass",
                           dtype=dtype, node_weight=node_weight(graph),
                           scale=mass_scale(graph))


def _key(graph: SphereGraph, normalization: str | None) -> tuple:
    return (normalization, *(mass_key(graph) if normalization == "mass" else ()))


def laplacian(graph: SphereGraph, normalization: str | None = "sym") -> torch.Tensor:
    """Laplacian of ``graph`` as a sparse CSR tensor ``[N, N]``, cached on the graph
    (``"mass"``: the symmetric form :math:`S`)."""
    check_normalization(normalization, mass=True)

    def compute() -> torch.Tensor:
        lap = graph_laplacian_scipy(graph, normalization)
        return scipy_to_torch_csr(lap, graph.edge_weight.dtype, device=graph.edge_weight.device)

    return graph.cached("laplacian", _key(graph, normalization), compute)


def harmonic_scale(graph: SphereGraph) -> float:
    r"""The constant :math:`c` of :math:`L \approx -c\,\Delta_{S^2}` for the combinatorial
    Laplacian of a near-uniform sphere graph, so that degree :math:`\ell` maps to the
    eigenvalue :math:`\lambda_\ell \approx c\,\ell(\ell + 1)` (for :math:`\ell` well
    below the sampling's resolution).

    A second-order expansion of :math:`\sum_j w_{ij}(f_i - f_j)` over an isotropic
    neighbourhood gives :math:`c = \tfrac14 \langle \sum_j w_{ij} d_{ij}^2 \rangle_i`.
    (On HEALPix k-NN graphs this matches the eigenvalues of degrees 1 and 2 to 0.3%.)
    """
    row, col = graph.edge_index
    pos = graph.pos.double()
    dist2 = (pos[row] - pos[col]).pow(2).sum(1)
    per_node = torch.zeros(int(graph.num_nodes), dtype=torch.float64)
    per_node.index_add_(0, row.cpu(), (graph.edge_weight.double() * dist2).cpu())
    return float(per_node.mean() / 4.0)


def lambda_max_bound(graph: SphereGraph, normalization: str | None = "sym") -> float:
    r"""An upper bound of the largest Laplacian eigenvalue (no eigensolver).

    2 for the normalised Laplacians; :math:`\max_{(i,j)} (d_i + d_j)` over edges for the
    combinatorial one (Anderson & Morley); for ``"mass"`` Gershgorin's bound of
    :math:`\frac1c M^{-1} L_m` (the spectrum of :math:`S`),
    :math:`\frac2c \max_i \sum_j m_j w_{ij}`.
    """
    check_normalization(normalization, mass=True)
    if normalization == "mass":
        mass = node_weight(graph).double()
        row, col = graph.edge_index
        weighted = torch.zeros_like(mass).index_add_(0, row, mass[col] *
                                                     graph.edge_weight.double())
        return 2.0 * float(weighted.max()) / mass_scale(graph) if row.numel() else 0.0
    if normalization is not None:
        return 2.0
    degree = graph.degree.double()
    row, col = graph.edge_index
    return float((degree[row] + degree[col]).max()) if row.numel() else 0.0


def estimate_lambda_max(
    graph: SphereGraph, normalization: str | None = "sym", tol: float = 1e-3
) -> float:
    r"""Largest eigenvalue of the Laplacian by Lanczos iterations, cached on the graph.

    Computed with :func:`scipy.sparse.linalg.eigsh` to relative accuracy ``tol`` (in the
    precision of the graph's weights) and raised by that tolerance so that the result
    is not below the true value (the rescaled operator must keep its spectrum inside
    :math:`[-1, 1]`). The random-walk Laplacian has the spectrum of the symmetric one;
    ``"mass"`` is computed on its symmetric form :math:`S`.
    Run time: ``BENCHMARKS.md``, "Costs behind the library's defaults".
    """
    check_normalization(normalization, mass=True)
    similar = "sym" if normalization == "rw" else normalization

    def compute() -> float:
        precision = numpy_float(graph.edge_weight.dtype)
        lap = graph_laplacian_scipy(graph, similar, precision)
        n = lap.shape[0]
        if n <= 256:
            value = float(np.linalg.eigvalsh(lap.toarray().astype(np.float64))[-1])
        else:
            v0 = np.random.default_rng(0).standard_normal(n).astype(precision)
            value = float(scipy.sparse.linalg.eigsh(lap, k=1, which="LA", tol=tol, v0=v0,
                                                    return_eigenvectors=False)[0])
        return min(value * (1.0 + tol), lambda_max_bound(graph, normalization))

    return graph.cached("lambda_max", (*_key(graph, normalization), tol), compute)


def rescaled_laplacian(
    graph: SphereGraph,
    normalization: str | None = "sym",
    lambda_max: float | None = None,
) -> torch.Tensor:
    r"""The Chebyshev operator :math:`\tilde L = 2L/\lambda_\max - I` as sparse CSR ``[N, N]``.

    Args:
        graph: the graph.
        normalization: Laplacian normalisation (None, ``"sym"``, ``"rw"``, ``"mass"``:
            the rescaled symmetric form :math:`2S/\lambda_\max - I`).
        lambda_max: largest eigenvalue used for the rescaling; ``None`` estimates it with
            :func:`estimate_lambda_max`. (PyG's ``ChebConv`` assumes 2.0 for ``"sym"``.)

    The result is cached on the graph per ``(normalization, lambda_max)``.
    """
    check_normalization(normalization, mass=True)
    if lambda_max is None:
        lambda_max = estimate_lambda_max(graph, normalization)
    lambda_max = float(lambda_max)
    if not (np.isfinite(lambda_max) and lambda_max > 0):
        raise ValueError(f"lambda_max must be positive and finite, got {lambda_max}")

    def compute() -> torch.Tensor:
        lap = graph_laplacian_scipy(graph, normalization)
        return scipy_to_torch_csr(rescale(lap, lambda_max), graph.edge_weight.dtype,
                                  device=graph.edge_weight.device)

    return graph.cached("rescaled_laplacian", (*_key(graph, normalization), lambda_max),
                        compute)
