r"""Kernels given per degree, applied on a graph: :math:`\kappa(\ell(L))` through a
Chebyshev expansion of the rescaled Laplacian (the filters of
:class:`~deepsphere_pyg.scattering.graph_backend.GraphBackend`, one at a time).

:math:`\lambda_\max` is Gershgorin's bound of the assembled Laplacian
(:func:`chebyshev_operator`; an underestimate would make the recurrence diverge, and
Lanczos is far slower on large graphs: ``BENCHMARKS.md``, "Costs behind the library's
defaults"); ``lambda_max="lanczos"`` estimates it instead. The expansion interpolates at
the Chebyshev-Lobatto points (:func:`kernel_coefficients`), exact at :math:`\mu = 0`, so a
constant map is filtered exactly.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.fft
import torch

from ..graphs.laplacian import estimate_lambda_max, graph_laplacian_scipy, mass_key
from ..graphs.node_weight import node_weight
from ..graphs.operator import (
    SparseOperator,
    chebyshev_series,
    check_node_weight,
    check_normalization,
    gershgorin_bound,
    numpy_float,
    rescale,
    scipy_to_torch_csr,
)
from ..graphs.sphere_graph import SphereGraph
from .calibration import DegreeMap, degree_calibration

__all__ = [
    "DEFAULT_ORDER",
    "LAMBDA_MAX_METHODS",
    "chebyshev_operator",
    "check_order",
    "degree_filter",
    "kernel_coefficients",
    "mass_roots",
]

#: Chebyshev terms of a filter whose band ends at its level's resolution.
DEFAULT_ORDER = 30

#: How :math:`\lambda_\max` of each level is obtained.
LAMBDA_MAX_METHODS = ("bound", "lanczos")


def check_order(order: Any) -> int:
    if isinstance(order, bool) or not isinstance(order, numbers.Integral) or order < 2:
        raise ValueError(f"order (Chebyshev terms per filter) must be an integer >= 2, "
                         f"got {order!r}")
    return int(order)


def chebyshev_operator(graph: SphereGraph, normalization: str | None = None,
                       lambda_max: str = "bound") -> tuple[torch.Tensor, float]:
    r"""The rescaled Laplacian :math:`\tilde L = 2L/\lambda_\max - I` of ``graph`` and
    :math:`\lambda_\max`, cached on the graph.

    ``lambda_max="bound"``: Gershgorin's bound :math:`\max_i \sum_j |L_{ij}|` of the
    assembled Laplacian (:math:`2 \max_i d_i` for the combinatorial one; one pass over
    its entries, cheaper at nside 1024 than
    :func:`~deepsphere_pyg.graphs.laplacian.lambda_max_bound`: ``BENCHMARKS.md``, "Costs
    behind the library's defaults"); ``"lanczos"``: :func:`~deepsphere_pyg.graphs.laplacian.
    estimate_lambda_max`. The matrix is a CSR tensor with int32 indices where they fit
    (half the index memory and traffic of int64), in the graph's dtype and on its device.
    ``normalization="mass"``: the symmetric form :math:`S = \frac1c M^{-1/2} L_m M^{-1/2}`
    of the mass Laplacian (:func:`~deepsphere_pyg.graphs.laplacian.graph_laplacian_scipy`,
    with the graph's masses and constant :math:`c`); a filter of node values is then
    :math:`M^{-1/2} g(S) M^{1/2} x` (:func:`mass_roots`).
    """
    check_normalization(normalization, mass=True)
    if lambda_max not in LAMBDA_MAX_METHODS:
        raise ValueError(f"lambda_max must be one of {LAMBDA_MAX_METHODS}, got {lambda_max!r}")

    def compute() -> tuple[torch.Tensor, float]:
        dtype = graph.edge_weight.dtype
        lap = graph_laplacian_scipy(graph, normalization, numpy_float(dtype))
        if lambda_max == "bound":
            top = gershgorin_bound(lap) * (1.0 + 1e-6)
        else:
            top = float(estimate_lambda_max(graph, normalization))
        if not top > 0:
            raise ValueError("graph has no edges: its Laplacian is zero")
        scaled = rescale(lap, top)
        index = torch.int32 if scaled.nnz < 2**31 - 1 else torch.int64
        matrix = scipy_to_torch_csr(scaled, dtype, index_dtype=index,
                                    device=graph.edge_weight.device)
        return matrix, top

    key = (normalization, lambda_max, *(mass_key(graph) if normalization == "mass" else ()))
    return graph.cached("scattering_chebyshev_operator", key, compute)


def mass_roots(graph: SphereGraph) -> torch.Tensor:
    r""":math:`\sqrt{m}` ``[N, 1]`` of the graph's node masses (validated: positive,
    finite), in the graph's dtype and on its device: the conjugation
    :math:`M^{-1/2} g(S) M^{1/2}` of filters of the mass Laplacian."""
    mass = check_node_weight(node_weight(graph), int(graph.num_nodes))
    return mass.detach().to(device=graph.edge_weight.device,
                            dtype=graph.edge_weight.dtype).sqrt()[:, None]


def kernel_coefficients(
    kernel: Callable[[np.ndarray], np.ndarray],
    degree_map: DegreeMap,
    terms: int,
    lambda_max: float,
) -> np.ndarray:
    r"""Chebyshev coefficients ``[terms]`` of :math:`\mu \mapsto \kappa(\ell(\mu))` on
    :math:`[0, \lambda_\max]`, interpolating at the Chebyshev-Lobatto points
    :math:`\mu_k = \tfrac{\lambda_\max}{2}(1 + \cos(\pi k / (K - 1)))` (via a type-1
    DCT).

    The Lobatto points include both ends of the spectrum, so :math:`\mu = 0` is filtered
    exactly: a constant map gets :math:`\kappa(0)` (1 for :math:`\Phi` and the low-passes,
    0 for the wavelets) up to rounding, where interpolation at the first-kind points left
    errors of a few percent of the map's mean in the wavelet coefficients.

    Args:
        kernel: vectorised :math:`\kappa(\ell)`.
        degree_map: the graph's calibration :math:`\ell(\mu)`.
        terms: number of coefficients :math:`K \ge 2`.
        lambda_max: upper end of the spectrum.
    """
    terms = check_order(terms)
    if not (math.isfinite(lambda_max) and lambda_max > 0):
        raise ValueError(f"lambda_max must be positive and finite, got {lambda_max!r}")
    n = terms - 1
    nodes = 0.5 * lambda_max * (1.0 + np.cos(np.pi * np.arange(n + 1) / n))
    values = np.asarray(kernel(degree_map.degree(nodes)), dtype=np.float64)
    coefficients = scipy.fft.dct(values, type=1) / n
    coefficients[0] /= 2.0
    coefficients[-1] /= 2.0
    return coefficients


def degree_filter(
    graph: SphereGraph,
    x: torch.Tensor,
    kernel: Callable[[np.ndarray], np.ndarray],
    *,
    order: int = DEFAULT_ORDER,
    normalization: str | None = None,
    lambda_max: str = "bound",
) -> torch.Tensor:
    r"""Apply a kernel given per degree, :math:`\kappa(\ell)`, on a graph as
    :math:`\kappa(\ell(L))`: the Chebyshev expansion of :func:`kernel_coefficients` with
    the graph's calibrated :math:`\ell(\mu)`
    (:func:`~deepsphere_pyg.scattering.calibration.degree_calibration`), applied with the
    three-term recurrence on :math:`\tilde L = 2L/\lambda_\max - I`.

    The filters of :class:`GraphBackend` are computed the same way (one level at a time).

    Args:
        graph: the graph.
        x: signals ``[N]`` or ``[N, F]``.
        kernel: vectorised :math:`\kappa(\ell)` on float degrees, e.g.
            ``partial(bank.wavelet, j=3)`` or ``bank.scaling``.
        order: Chebyshev terms.
        normalization: Laplacian, ``None`` (combinatorial), ``"sym"``, ``"rw"`` or
            ``"mass"`` (:math:`M^{-1/2} g(S) M^{1/2} x` with the graph's masses).
        lambda_max: ``"bound"`` or ``"lanczos"`` (module docstring).

    Returns:
        The filtered signals, shape of ``x``.
    """
    check_normalization(normalization, mass=True)
    if lambda_max not in LAMBDA_MAX_METHODS:
        raise ValueError(f"lambda_max must be one of {LAMBDA_MAX_METHODS}, got {lambda_max!r}")
    n = int(graph.num_nodes)
    if not isinstance(x, torch.Tensor) or x.dim() not in (1, 2) or x.shape[0] != n:
        raise ValueError(f"x must be a tensor [N] or [N, F] with N={n}")
    matrix, top = chebyshev_operator(graph, normalization, lambda_max)
    coefficients = kernel_coefficients(kernel, degree_calibration(graph, normalization),
                                       check_order(order), top)
    if normalization != "mass":
        return chebyshev_series(x, SparseOperator.for_signals(matrix, x.dtype), coefficients)
    root = mass_roots(graph).to(x.dtype)
    y = x[:, None] if x.dim() == 1 else x
    out = chebyshev_series(y * root, SparseOperator.for_signals(matrix, x.dtype),
                           coefficients) / root
    return out[:, 0] if x.dim() == 1 else out
