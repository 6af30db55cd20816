"""Chebyshev spectral filters against a dense eigendecomposition."""

import numpy as np
import pytest
import torch

from deepsphere_pyg.graphs import healpix_graph, laplacian
from deepsphere_pyg.graphs.chebyshev import chebyshev_coefficients, chebyshev_filter


@pytest.mark.parametrize("normalization", [None, "sym"])
def test_heat_filter_matches_the_eigendecomposition(normalization):
    graph = healpix_graph(4, k=8, dtype=torch.float64)
    dense = laplacian(graph, normalization).to_dense().numpy()
    eigenvalues, eigenvectors = np.linalg.eigh(dense)
    tau = 0.3 if normalization is None else 2.0
    exact_operator = eigenvectors @ np.diag(np.exp(-tau * eigenvalues)) @ eigenvectors.T
    x = torch.randn(192, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    filtered = chebyshev_filter(graph, x, lambda lam: np.exp(-tau * lam), order=30,
                                normalization=normalization)
    np.testing.assert_allclose(filtered.numpy(), exact_operator @ x.numpy(), atol=1e-8)
    one_signal = chebyshev_filter(graph, x[:, 0], lambda lam: np.exp(-tau * lam), order=30,
                                  normalization=normalization)
    torch.testing.assert_close(one_signal, filtered[:, 0])


def test_coefficients_reproduce_a_polynomial_exactly():
    coefficients = chebyshev_coefficients(lambda lam: 1 - lam + lam**2, 3, lambda_max=2.0)
    # On [0, 2], lam = 1 + x: 1 - lam + lam^2 = 1 + x + x^2 = 1.5 T0 + T1 + 0.5 T2.
    np.testing.assert_allclose(coefficients, [1.5, 1.0, 0.5], atol=1e-12)


def test_filter_input_checks():
    graph = healpix_graph(2, k=8)
    with pytest.raises(ValueError, match=r"x must have shape \[N\] or \[N, F\] with N=48"):
        chebyshev_filter(graph, torch.zeros(47), np.exp)
    with pytest.raises(ValueError, match="order must be >= 1"):
        chebyshev_coefficients(np.exp, 0, 2.0)


def test_scipy_and_torch_products_agree_and_gradients_flow():
    # One column without autograd runs through scipy's kernel, a signal that requires a
    # gradient through torch's: both give the same filter, and gradcheck passes.
    graph = healpix_graph(4, k=8, dtype=torch.float64)
    x = torch.randn(graph.num_nodes, dtype=torch.float64,
                    generator=torch.Generator().manual_seed(0))
    response = lambda lam: np.exp(-lam)  # noqa: E731
    plain = chebyshev_filter(graph, x, response, order=12, normalization="sym")
    tracked = x.clone().requires_grad_(True)
    through_torch = chebyshev_filter(graph, tracked, response, order=12, normalization="sym")
    torch.testing.assert_close(plain, through_torch.detach(), rtol=1e-12, atol=1e-12)
    assert torch.autograd.gradcheck(
        lambda v: chebyshev_filter(graph, v, response, order=6, normalization="sym",
                                   lambda_max=2.0), (tracked,))
