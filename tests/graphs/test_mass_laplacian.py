"""The mass Laplacian: spectrum against l(l+1) (dense generalised eigenproblem), the
symmetric form, its bound, fixed filters and the equivariance protocol."""

import math

import numpy as np
import pytest
import scipy.linalg
import torch

from deepsphere_pyg.graphs import (
    equiangular_graph,
    equivariance_error,
    estimate_lambda_max,
    harmonic_scale,
    icosahedral_graph,
    knn_graph,
    lambda_max_bound,
    laplacian,
    laplacian_scipy,
    rescaled_laplacian,
)
from deepsphere_pyg.graphs.chebyshev import chebyshev_filter
from deepsphere_pyg.graphs.laplacian import mass_scale
from deepsphere_pyg.graphs.node_weight import node_weight, voronoi_areas
from deepsphere_pyg.graphs.operator import check_normalization, mass_constant
from deepsphere_pyg.scattering.calibration import expected_rayleigh_quotients

#: Degrees l = 1..3: multiplet of 2l + 1 eigenvalues each, after the constant (l = 0).
DEGREES = (1, 2, 3)


@pytest.fixture(scope="module")
def grid_graph():
    """Gauss-Legendre 16 x 32 k-NN graph whose heat kernel (t = 0.006) lies well inside
    the 40 neighbours everywhere but at the rows next to the poles."""
    return equiangular_graph(16, 32, grid="gauss-legendre", k=40, kernel=0.006,
                             dtype=torch.float64)


def dense(graph):
    """``(W, m)``: dense float64 adjacency and masses."""
    n = int(graph.num_nodes)
    weights = np.zeros((n, n))
    row, col = graph.edge_index.numpy()
    weights[row, col] = graph.edge_weight.double().numpy()
    return weights, node_weight(graph).double().numpy()


def mass_matrices(graph):
    """``(L_m, M)`` of the definition: (L_m)_ij = -m_i m_j w_ij, rows summing to 0."""
    weights, mass = dense(graph)
    weighted = mass[:, None] * weights * mass[None, :]
    return np.diag(weighted.sum(axis=1)) - weighted, np.diag(mass)


def multiplets(eigenvalues: np.ndarray) -> dict[int, np.ndarray]:
    """The sorted eigenvalues 1..15 grouped by degree (2l + 1 each)."""
    out, start = {}, 1
    for ell in DEGREES:
        out[ell] = eigenvalues[start:start + 2 * ell + 1]
        start += 2 * ell + 1
    return out


def test_low_spectrum_is_l_l_plus_one_with_multiplicities(grid_graph):
    lap, mass = mass_matrices(grid_graph)
    c = mass_scale(grid_graph)
    generalised = scipy.linalg.eigh(lap, mass, eigvals_only=True, subset_by_index=[0, 16]) / c
    assert abs(generalised[0]) < 1e-10
    groups = multiplets(generalised)
    for ell, values in groups.items():
        relative = values / (ell * (ell + 1)) - 1.0
        # Measured: -4.3 % (l = 3) to +0.4 %, multiplets spread by at most 2.3 %.
        assert np.abs(relative).max() < 0.06, (ell, relative)
        assert (values.max() - values.min()) / values.mean() < 0.035, (ell, values)
    # The next degree starts well above the l = 3 multiplet (measured 1.58; ideal 20/12).
    assert generalised[16] > 1.5 * groups[3].max()
    # The sparse symmetric form has the same spectrum.
    symmetric = laplacian(grid_graph, "mass").to_dense().numpy()
    np.testing.assert_allclose(np.linalg.eigvalsh(symmetric)[:17], generalised, atol=1e-9)


def test_mass_operator_beats_the_combinatorial_one_on_the_grid(grid_graph):
    """The same graph's combinatorial Laplacian, scaled by its own constant, splits the
    degree-1 multiplet (measured -70 % for m = 0, -8 % for m = +-1: the rows are denser
    near the poles); the mass operator's is within 0.9 %."""
    weights, _ = dense(grid_graph)
    comb = np.linalg.eigvalsh(np.diag(weights.sum(axis=1)) - weights)[:16]
    comb_error = np.abs(comb[1:4] / harmonic_scale(grid_graph) / 2.0 - 1.0).max()
    lap, mass = mass_matrices(grid_graph)
    ours = scipy.linalg.eigh(lap, mass, eigvals_only=True, subset_by_index=[0, 3])
    ours_error = np.abs(ours[1:4] / mass_scale(grid_graph) / 2.0 - 1.0).max()
    assert ours_error < 0.02 < 0.1 < comb_error


def test_constant_is_four_pi_t_squared_for_a_resolved_kernel(grid_graph):
    t = grid_graph.kernel_width
    assert mass_scale(grid_graph) == pytest.approx(4.0 * math.pi * t**2, rel=0.04)
    # The kernel truncated to 8 neighbours has a smaller second moment (measured 0.82).
    narrow = equiangular_graph(16, 32, grid="gauss-legendre", k=8, kernel=0.006,
                               dtype=torch.float64)
    assert mass_scale(narrow) < 0.9 * 4.0 * math.pi * t**2


def test_symmetric_form_is_similar_to_m_inverse_l(grid_graph):
    lap, mass = mass_matrices(grid_graph)
    c = mass_scale(grid_graph)
    symmetric = laplacian(grid_graph, "mass").to_dense().numpy()
    root = np.sqrt(np.diag(mass))
    np.testing.assert_allclose(symmetric, symmetric.T, atol=1e-12)
    # M^-1/2 S M^1/2 = M^-1 L_m / c.
    np.testing.assert_allclose(symmetric * (1.0 / root)[:, None] * root[None, :],
                               np.linalg.solve(mass, lap) / c, atol=1e-8)
    # Eigenvectors: v of S gives M^-1/2 v of M^-1 L_m.
    values, vectors = np.linalg.eigh(symmetric)
    for index in (1, 5, 30):
        vector = vectors[:, index] / root
        np.testing.assert_allclose(np.linalg.solve(mass, lap) @ vector / c,
                                   values[index] * vector, atol=1e-8)


def test_scipy_assembly_matches_the_definition(grid_graph):
    weights, mass = dense(grid_graph)
    sparse = laplacian_scipy(grid_graph.edge_index, grid_graph.edge_weight,
                             grid_graph.num_nodes, "mass", node_weight=mass, scale=2.5)
    root = np.sqrt(mass)
    expected = (np.diag((weights * mass[None, :]).sum(axis=1))
                - root[:, None] * weights * root[None, :]) / 2.5
    np.testing.assert_allclose(sparse.toarray(), expected, atol=1e-14)
    assert sparse.has_sorted_indices
    c = mass_constant(grid_graph.pos, grid_graph.edge_index, grid_graph.edge_weight, mass)
    assert c == mass_scale(grid_graph)


def test_bound_and_lanczos_estimate(grid_graph):
    symmetric = laplacian(grid_graph, "mass").to_dense().numpy()
    top = np.linalg.eigvalsh(symmetric)[-1]
    bound = lambda_max_bound(grid_graph, "mass")
    estimate = estimate_lambda_max(grid_graph, "mass")
    assert top <= estimate <= bound
    assert estimate == pytest.approx(top, rel=2e-3)
    scaled = rescaled_laplacian(grid_graph, "mass").to_dense().numpy()
    assert np.abs(np.linalg.eigvalsh(scaled)).max() <= 1.0 + 1e-9


def test_chebyshev_filter_of_node_values(grid_graph):
    """g(M^-1 L_m) x = M^-1/2 g(S) M^1/2 x against an eigendecomposition."""
    lap, mass = mass_matrices(grid_graph)
    c = mass_scale(grid_graph)
    values, vectors = scipy.linalg.eigh(lap / c, mass)  # M-orthonormal eigenvectors

    def response(lam):
        return np.exp(-0.05 * lam)

    x = torch.from_numpy(np.random.default_rng(0).standard_normal((grid_graph.num_nodes, 2)))
    expected = vectors @ (response(values)[:, None] * (vectors.T @ mass @ x.numpy()))
    out = chebyshev_filter(grid_graph, x, response, order=40, normalization="mass")
    np.testing.assert_allclose(out.numpy(), expected, atol=1e-6)
    single = chebyshev_filter(grid_graph, x[:, 0], response, order=40, normalization="mass")
    np.testing.assert_allclose(single.numpy(), expected[:, 0], atol=1e-6)
    # A constant is an eigenvector of eigenvalue 0: kept as is.
    ones = torch.ones(grid_graph.num_nodes, dtype=torch.float64)
    np.testing.assert_allclose(chebyshev_filter(grid_graph, ones, response, order=40,
                                                normalization="mass").numpy(), 1.0, atol=1e-6)


def test_cache_follows_the_masses():
    graph = icosahedral_graph(2, dtype=torch.float64)
    first = laplacian(graph, "mass").to_dense()
    graph.node_weight = graph.node_weight * torch.linspace(0.5, 1.5, graph.num_nodes,
                                                           dtype=torch.float64)
    second = laplacian(graph, "mass").to_dense()
    assert not torch.allclose(first, second)


def test_mass_laplacian_makes_random_points_more_equivariant():
    rng = np.random.default_rng(5)
    pos = rng.standard_normal((768, 3))
    pos /= np.linalg.norm(pos, axis=1, keepdims=True)
    graph = knn_graph(pos, k=40, kernel=0.02, dtype=torch.float64)
    np.testing.assert_allclose(node_weight(graph).numpy(), voronoi_areas(pos))
    options = dict(num_signals=2, num_rotations=2, seed=1)
    mass = equivariance_error(graph, [3, 8], normalization="mass", **options)
    comb = equivariance_error(graph, [3, 8], **options)
    for ell in (3, 8):
        assert mass[ell] < 0.3 * comb[ell], (mass, comb)


# ------------------------------------------------------------------------- bad input
def test_bad_node_weights(grid_graph):
    edge_index, weight, n = grid_graph.edge_index, grid_graph.edge_weight, grid_graph.num_nodes
    masses = node_weight(grid_graph)
    with pytest.raises(ValueError, match="needs node_weight"):
        laplacian_scipy(edge_index, weight, n, "mass")
    for bad, match in ((-masses, "positive and finite"),
                       (masses.clone().fill_(float("nan")), "positive and finite"),
                       (masses[:-1], r"shape \[N\]")):
        with pytest.raises(ValueError, match=match):
            laplacian_scipy(edge_index, weight, n, "mass", node_weight=bad)
    with pytest.raises(ValueError, match="applies to normalization='mass' only"):
        laplacian_scipy(edge_index, weight, n, "sym", node_weight=masses)
    with pytest.raises(ValueError, match="scale"):
        laplacian_scipy(edge_index, weight, n, "mass", node_weight=masses, scale=0.0)


def test_mass_is_refused_where_masses_cannot_be_given(grid_graph):
    with pytest.raises(ValueError, match="not available here"):
        check_normalization("mass")
    assert check_normalization("mass", mass=True) == "mass"
    # The scattering calibration takes the masses (quadrature Rayleigh quotients; degree 1
    # gives 2 exactly through the constant c).
    mu = expected_rayleigh_quotients(grid_graph, 4, normalization="mass")
    assert mu[0] == 0.0 and mu[1] == pytest.approx(2.0)
    bad = grid_graph.clone()
    bad.node_weight = -bad.node_weight
    with pytest.raises(ValueError, match="positive"):
        expected_rayleigh_quotients(bad, 4, normalization="mass")
