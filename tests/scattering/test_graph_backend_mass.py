"""Graph scattering backend on the mass Laplacian (``normalization="mass"``): the filters
are M^-1/2 g(S) M^1/2, the calibration and the moves between levels use the node masses.
Small Gauss-Legendre grids, whose cells shrink towards the poles."""

from functools import partial

import numpy as np
import pytest
import scipy.linalg
import torch

from deepsphere_pyg.graphs import SphereHierarchy, equiangular_hierarchy
from deepsphere_pyg.graphs.equiangular import equiangular_graph
from deepsphere_pyg.graphs.laplacian import graph_laplacian_scipy
from deepsphere_pyg.graphs.node_weight import node_weight
from deepsphere_pyg.scattering import SphericalScattering
from deepsphere_pyg.scattering.calibration import degree_calibration, pooling_gain
from deepsphere_pyg.scattering.filters import FilterBank
from deepsphere_pyg.scattering.graph_backend import GraphBackend, degree_filter
from deepsphere_pyg.scattering.resolution import level_for_band_limit

#: Heat-kernel widths of the k = 40 Gauss-Legendre 32 x 64 and 16 x 32 graphs (tuned for
#: the mass operator by scripts/scattering_latlon.py; as in
#: tests/graphs/test_mass_laplacian.py).
WIDTH = {32: 0.00109, 16: 0.006}


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _graph(nlat):
    return equiangular_graph(nlat, 2 * nlat, grid="gauss-legendre", k=40,
                             kernel=WIDTH[nlat], dtype=torch.float64)


@pytest.fixture(scope="module")
def grid():
    """Gauss-Legendre 32 x 64 and 16 x 32 (k = 40, widths WIDTH) over the builder's
    8 x 16 level."""
    base = equiangular_hierarchy(32, 3, grid="gauss-legendre", k=20, dtype=torch.float64)
    return SphereHierarchy([_graph(32), _graph(16), base[2]], base.pool_index)


def _z(graph):
    return graph.pos[:, 2].clone()


def test_calibration_uses_the_masses():
    """The quadrature Rayleigh quotients follow l(l+1) (degree 1 exactly, by the constant
    c; measured 2, 5.92, 11.6, 18.9 for degrees 1-4 on 16 x 32) and are recomputed when the
    masses change (equal masses: another curve)."""
    graph = _graph(16)
    ell = np.arange(1, 5, dtype=np.float64)
    mass = degree_calibration(graph, "mass").eigenvalues[1:5]
    np.testing.assert_allclose(mass, ell * (ell + 1), rtol=0.06)
    graph.node_weight = torch.full_like(graph.node_weight, 4 * np.pi / graph.num_nodes)
    equal = degree_calibration(graph, "mass").eigenvalues[1:5]
    assert equal[0] == pytest.approx(2.0)
    assert np.max(np.abs(equal / mass - 1.0)) > 1e-3


def test_weighted_pooling_gain(grid):
    """Degree 0 passes unchanged; mass weights change the gain on unequal cells."""
    plain = pooling_gain(grid[0], grid[1], grid.pool_index[0], 8)
    weighted = pooling_gain(grid[0], grid[1], grid.pool_index[0], 8, weighted=True)
    assert weighted[0] == pytest.approx(1.0) and plain[0] == pytest.approx(1.0)
    assert np.all(weighted[1:] < 1.0) and not np.allclose(weighted, plain, rtol=1e-4)


def test_degree_filter_matches_dense_mass_filter(grid):
    r"""degree_filter(normalization="mass") is M^-1/2 kappa(l(S)) M^1/2 x (dense eigh)."""
    graph = grid[1]
    bank = FilterBank(24, 2)
    kernel = partial(bank.wavelet, j=2)
    x = torch.randn(int(graph.num_nodes), 2, generator=torch.Generator().manual_seed(0),
                    dtype=torch.float64)
    out = degree_filter(graph, x, kernel, order=80, normalization="mass").numpy()
    mu, vectors = scipy.linalg.eigh(graph_laplacian_scipy(graph, "mass").toarray())
    root = np.sqrt(node_weight(graph).double().numpy())[:, None]
    response = kernel(degree_calibration(graph, "mass").degree(mu))
    exact = vectors @ (response[:, None] * (vectors.T @ (root * x.numpy()))) / root
    assert np.linalg.norm(out - exact) < 0.02 * np.linalg.norm(exact)


def test_constant_map_and_low_degree_field(grid):
    """A constant map gives S0 = the constant and zero wavelet coefficients (the filters
    are conjugated by M^1/2, the moves mass-weighted; without the conjugation, g(S) on
    node values, S0 is off by 40 %); the degree-1 field z (Phi(1) = 1 at J0 = 1) comes
    out as z on the output nodes: measured 3.3 % off with the masses, 7.6 % with the
    combinatorial Laplacian of the same graphs."""
    bank = FilterBank(44, 1)
    out_level = level_for_band_limit(grid, bank.scaling_band_limit)
    backend = GraphBackend(grid, bank, 2, out_level, normalization="mass")
    assert backend.scaling_level == 1 and out_level == 2  # one mass-weighted move
    with torch.no_grad():
        out = backend(torch.full((1, grid.num_nodes[0], 1), 2.5, dtype=torch.float64))
    torch.testing.assert_close(out[..., 0], torch.full_like(out[..., 0], 2.5))
    assert float(out[..., 1:].abs().max()) < 1e-10
    target = _z(grid[out_level])
    errors = {}
    for normalization in ("mass", None):
        backend = GraphBackend(grid, bank, 1, out_level, normalization=normalization)
        with torch.no_grad():
            s0 = backend(_z(grid[0])[None, :, None])[0, :, 0, 0]
        errors[normalization] = float((s0 - target).norm() / target.norm())
    assert errors["mass"] < 0.04
    assert errors["mass"] < 0.5 * errors[None]


def test_module_option_and_config(grid):
    module = SphericalScattering(grid, J0=2, L=44, backend_options={"normalization": "mass"})
    assert module.config()["backend_config"]["normalization"] == "mass"
    out = module(torch.randn(3, grid.num_nodes[0], 1, dtype=torch.float64))
    assert out.shape == (3, grid.num_nodes[module.output_level], module.num_paths)
    assert torch.isfinite(out).all()


def test_bad_masses_and_normalization(grid):
    bank = FilterBank(24, 2)
    broken = _graph(16)
    broken.node_weight = torch.zeros(int(broken.num_nodes), dtype=torch.float64)
    with pytest.raises(ValueError, match="positive"):
        GraphBackend(SphereHierarchy([broken], []), bank, 1, 0, normalization="mass")
    with pytest.raises(ValueError, match="normalization"):
        GraphBackend(grid, bank, 1, 0, normalization="masses")
    with pytest.raises(ValueError, match="normalization"):
        degree_filter(grid[0], _z(grid[0]), bank.scaling, normalization="area")
