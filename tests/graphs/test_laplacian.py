"""Laplacians against PyG and dense references; spectrum properties; caching."""

import numpy as np
import pytest
import scipy.sparse.linalg
import torch
from torch_geometric.utils import get_laplacian, to_dense_adj

from deepsphere_pyg.graphs import (
    estimate_lambda_max,
    harmonic_scale,
    healpix_graph,
    lambda_max_bound,
    laplacian,
    laplacian_scipy,
    rescaled_laplacian,
)


def dense_pyg_laplacian(graph, normalization):
    index, weight = get_laplacian(graph.edge_index, graph.edge_weight.double(),
                                  normalization=normalization, num_nodes=graph.num_nodes)
    return to_dense_adj(index, edge_attr=weight, max_num_nodes=graph.num_nodes)[0]


@pytest.mark.parametrize("normalization", [None, "sym", "rw"])
def test_laplacian_matches_pyg(graph_nside8, normalization):
    ours = laplacian(graph_nside8, normalization).to_dense().double()
    torch.testing.assert_close(ours, dense_pyg_laplacian(graph_nside8, normalization),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("normalization", [None, "sym"])
def test_symmetric_laplacians_are_psd_with_one_zero_eigenvalue(graph_nside8, normalization):
    eigenvalues = np.linalg.eigvalsh(laplacian(graph_nside8, normalization).to_dense().double())
    assert eigenvalues[0] == pytest.approx(0.0, abs=1e-5)  # float32 operator
    assert eigenvalues[1] > 1e-3  # connected graph
    assert eigenvalues[-1] <= lambda_max_bound(graph_nside8, normalization) + 1e-9


@pytest.mark.parametrize("nside", [4, 8], ids=["dense-path", "lanczos-path"])
@pytest.mark.parametrize("normalization", [None, "sym", "rw"])
def test_lambda_max_estimate_is_tight_and_not_below_the_truth(nside, normalization):
    graph = healpix_graph(nside, k=8)
    similar = "sym" if normalization == "rw" else normalization  # same spectrum
    dense = laplacian(graph, similar).to_dense().double().numpy()
    true_max = np.linalg.eigvalsh(dense)[-1]
    estimate = estimate_lambda_max(graph, normalization)
    assert true_max * (1 - 1e-6) <= estimate <= true_max * (1 + 2e-3)
    assert estimate <= lambda_max_bound(graph, normalization)


@pytest.mark.parametrize("normalization", [None, "sym"])
def test_rescaled_laplacian_spectrum_lies_in_minus_one_one(graph_nside8, normalization):
    scaled = rescaled_laplacian(graph_nside8, normalization).to_dense().double()
    eigenvalues = np.linalg.eigvalsh(scaled)
    assert eigenvalues[0] == pytest.approx(-1.0, abs=1e-6)
    assert -1 - 1e-6 <= eigenvalues[0] and eigenvalues[-1] <= 1 + 1e-6
    assert eigenvalues[-1] > 0.99
    lam = estimate_lambda_max(graph_nside8, normalization)
    expected = 2 * laplacian(graph_nside8, normalization).to_dense() / lam - torch.eye(768)
    torch.testing.assert_close(scaled.float(), expected, rtol=1e-5, atol=1e-6)


def test_given_lambda_max_is_used(graph_nside8):
    scaled = rescaled_laplacian(graph_nside8, "sym", lambda_max=2.0).to_dense()
    expected = laplacian(graph_nside8, "sym").to_dense() - torch.eye(768)
    torch.testing.assert_close(scaled, expected)
    with pytest.raises(ValueError, match="lambda_max must be positive"):
        rescaled_laplacian(graph_nside8, "sym", lambda_max=0.0)
    with pytest.raises(ValueError, match="normalization must be None"):
        laplacian(graph_nside8, "random")


def test_operators_are_cached_and_invalidated_by_edits():
    graph = healpix_graph(4, k=8)
    first = rescaled_laplacian(graph, "sym")
    assert rescaled_laplacian(graph, "sym") is first
    assert rescaled_laplacian(graph, None) is not first
    graph.edge_weight.mul_(2.0)  # in-place edit: version counter changes
    refreshed = laplacian(graph, None)
    torch.testing.assert_close(refreshed.to_dense(),
                               dense_pyg_laplacian(graph, None).float())
    assert rescaled_laplacian(graph, "sym") is not first


def test_low_spectrum_follows_spherical_harmonic_degrees():
    """Eigenvalues of a full-sky graph come in groups of 2l+1, close to c * l(l+1)."""
    graph = healpix_graph(16, k=20)
    lap = laplacian_scipy(graph.edge_index, graph.edge_weight, graph.num_nodes)
    # The 40 smallest eigenvalues (degrees 0..5 and the first of degree 6), shift-invert.
    eigenvalues = np.sort(scipy.sparse.linalg.eigsh(lap, k=40, sigma=-1e-3,
                                                    return_eigenvectors=False))
    c = eigenvalues[1:4].mean() / 2.0
    assert harmonic_scale(graph) == pytest.approx(c, rel=0.01)
    start = 0
    for ell in range(6):
        group = eigenvalues[start:start + 2 * ell + 1]
        following = eigenvalues[start + 2 * ell + 1]
        spread = group.max() - group.min()
        assert spread < 0.5 * (following - group.max()) or ell == 0, ell
        assert group.mean() == pytest.approx(c * ell * (ell + 1), rel=0.05, abs=1e-6), ell
        start += 2 * ell + 1
