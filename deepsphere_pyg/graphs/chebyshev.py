r"""Fixed spectral filters :math:`g(L)` applied with Chebyshev polynomials.

A filter :math:`g(L) = U g(\Lambda) U^\top` of the graph Laplacian is approximated by a
truncated Chebyshev expansion on :math:`[0, \lambda_\max]`:

.. math::
    g(L)\,x \approx \sum_{k=0}^{K-1} c_k\, T_k(\tilde L)\, x, \qquad
    \tilde L = 2L/\lambda_\max - I,

computed with the three-term recurrence :math:`T_k(\tilde L)x = 2\tilde L\,T_{k-1}(\tilde
L)x - T_{k-2}(\tilde L)x`, i.e. ``K - 1`` sparse products and no eigendecomposition.

With the mass Laplacian (``normalization="mass"``, :mod:`~deepsphere_pyg.graphs.operator`)
the filter acts on node values as :math:`g(\tfrac1c M^{-1} L_m)\, x = M^{-1/2} g(S)\,
M^{1/2} x`, the polynomial evaluated on the symmetric form :math:`S`; its spectrum
approximates :math:`\ell(\ell + 1)` at low degrees, so responses can be written in
degrees.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from .laplacian import estimate_lambda_max, rescaled_laplacian
from .node_weight import node_weight
from .operator import SparseOperator, chebyshev_series, check_normalization
from .sphere_graph import SphereGraph


def chebyshev_coefficients(
    response: Callable[[np.ndarray], np.ndarray], order: int, lambda_max: float
) -> np.ndarray:
    r"""Coefficients ``[order]`` of the Chebyshev interpolant of ``response`` on
    :math:`[0, \lambda_\max]` (interpolation at Chebyshev points of the first kind, via
    :meth:`numpy.polynomial.chebyshev.Chebyshev.interpolate`).

    Args:
        response: vectorised filter :math:`g(\lambda)`.
        order: number of coefficients ``K`` (polynomial degree ``K - 1``), ``>= 1``.
        lambda_max: upper end of the spectrum.
    """
    if order < 1:
        raise ValueError(f"order must be >= 1, got {order}")
    if not lambda_max > 0:
        raise ValueError(f"lambda_max must be positive, got {lambda_max}")
    series = np.polynomial.chebyshev.Chebyshev.interpolate(
        response, order - 1, domain=[0.0, float(lambda_max)]
    )
    return series.coef


def chebyshev_filter(
    graph: SphereGraph,
    x: torch.Tensor,
    response: Callable[[np.ndarray], np.ndarray],
    order: int = 30,
    normalization: str | None = None,
    lambda_max: float | None = None,
) -> torch.Tensor:
    r"""Apply the spectral filter :math:`g(L)` to signals on ``graph``.

    Args:
        graph: the graph (its rescaled Laplacian is cached on it).
        x: signals, shape ``[N]`` or ``[N, F]``.
        response: vectorised :math:`g(\lambda)` on the Laplacian spectrum.
        order: number of Chebyshev terms ``K``.
        normalization: Laplacian normalisation (None: combinatorial, ``"sym"``, ``"rw"``,
            ``"mass"``: :math:`M^{-1/2} g(S) M^{1/2} x` with the graph's node masses).
        lambda_max: spectrum upper end (default: estimated and cached).

    Returns:
        Filtered signals, same shape as ``x``.
    """
    n = int(graph.num_nodes)
    if x.shape[0] != n or x.dim() not in (1, 2):
        raise ValueError(f"x must have shape [N] or [N, F] with N={n}, got {tuple(x.shape)}")
    check_normalization(normalization, mass=True)
    if lambda_max is None:
        lambda_max = estimate_lambda_max(graph, normalization)
    coefficients = chebyshev_coefficients(response, order, lambda_max)
    # scipy's kernel for one column on CPU (about 2x torch's there), torch's otherwise.
    operator = SparseOperator.for_signals(rescaled_laplacian(graph, normalization, lambda_max),
                                          x.dtype)
    if normalization != "mass":
        return chebyshev_series(x, operator, coefficients)
    root = node_weight(graph).to(device=x.device, dtype=x.dtype).sqrt()
    root = root if x.dim() == 1 else root.unsqueeze(1)
    return chebyshev_series(x * root, operator, coefficients) / root
