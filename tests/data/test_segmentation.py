"""Segmentation maps: exact fields on both samplings, labels by the documented rule."""

import healpy as hp
import numpy as np
import pytest
import torch
from torch_geometric.loader import DataLoader

from deepsphere_pyg.data.segmentation import SegmentationMaps, field_spectrum
from deepsphere_pyg.data.spectra import gaussian_alm
from deepsphere_pyg.graphs import equiangular_graph
from deepsphere_pyg.graphs.harmonics import alm_to_real, design_matrix

NSIDE = 8


def standardised(values):
    return (values - values.mean()) / values.std()


def reference_labels(clean, quantiles):
    """y = number of thresholds t_j = quantile_j(clean) that the clean value exceeds."""
    return sum((clean > np.quantile(clean, q)).astype(np.int64) for q in quantiles)


@pytest.mark.parametrize("sampling", ["healpix", "equiangular"])
def test_shapes_node_order_and_batching(sampling):
    ds = SegmentationMaps(num_samples=4, nside=NSIDE, sampling=sampling)
    hierarchy = ds.hierarchy(2, k=8)
    sample = ds[0]
    n = hierarchy.num_nodes[0]
    assert n == ds.num_nodes
    assert sample.x.shape == (n, 1) and sample.x.dtype == torch.float32
    assert sample.y_node.shape == (n,) and sample.y_node.dtype == torch.long
    np.testing.assert_allclose(ds.pos, hierarchy[0].pos.double().numpy(), atol=1e-6)
    if sampling == "healpix":
        assert n == hp.nside2npix(NSIDE)
        np.testing.assert_allclose(
            ds.pos, np.stack(hp.pix2vec(NSIDE, np.arange(n), nest=True), axis=1))
    else:
        graph = equiangular_graph(4 * NSIDE, grid="driscoll-healy", k=8)
        np.testing.assert_allclose(ds.pos, graph.pos.double().numpy(), atol=1e-6)
    batch = next(iter(DataLoader([ds[i] for i in range(4)], batch_size=4)))
    assert batch.x.shape == (4, n, 1) and batch.y_node.shape == (4, n)


@pytest.mark.parametrize("sampling,grid", [("healpix", None), ("equiangular", "driscoll-healy"),
                                           ("equiangular", "gauss-legendre"),
                                           ("equiangular", "clenshaw-curtis")])
def test_field_is_the_exact_band_limited_synthesis(sampling, grid):
    """healpy alm2map (HEALPix) and the ring FFT synthesis (grids) agree with spherical
    harmonics evaluated at the nodes by the real design matrix."""
    kwargs = {} if grid is None else {"grid": grid}
    ds = SegmentationMaps(num_samples=2, nside=NSIDE, sampling=sampling, **kwargs)
    for i in range(2):
        alm = ds.coefficients(i)
        expected = design_matrix(ds.pos, ds.lmax) @ alm_to_real(alm, ds.lmax)
        np.testing.assert_allclose(ds.clean_field(i), standardised(expected), atol=1e-10)
    hierarchy = ds.hierarchy(3)
    assert hierarchy.num_nodes[0] == ds.num_nodes
    np.testing.assert_allclose(ds.pos, hierarchy[0].pos.double().numpy(), atol=1e-6)


def test_same_field_on_both_samplings():
    healpix = SegmentationMaps(num_samples=2, nside=NSIDE, seed=4)
    grid = SegmentationMaps(num_samples=2, nside=NSIDE, seed=4, sampling="equiangular")
    np.testing.assert_array_equal(healpix.coefficients(1), grid.coefficients(1))


@pytest.mark.parametrize("sampling", ["healpix", "equiangular"])
def test_labels_follow_the_rule_and_input_is_field_plus_noise(sampling):
    ds = SegmentationMaps(num_samples=6, nside=NSIDE, sampling=sampling, noise=0.5)
    residuals = []
    for i in range(6):
        sample = ds[i]
        clean = ds.clean_field(i)
        assert clean.mean() == pytest.approx(0.0, abs=1e-12)
        assert clean.std() == pytest.approx(1.0)
        np.testing.assert_array_equal(sample.y_node.numpy(), reference_labels(clean, (0.1, 0.9)))
        counts = np.bincount(sample.y_node.numpy(), minlength=3) / clean.size
        np.testing.assert_allclose(counts, [0.1, 0.8, 0.1], atol=2.0 / clean.size)
        # Extreme regions: class 0 holds the lowest values, class 2 the highest.
        y = sample.y_node.numpy()
        assert clean[y == 0].max() < clean[y == 1].min()
        assert clean[y == 1].max() < clean[y == 2].min()
        residuals.append(sample.x[:, 0].numpy() - clean)
    noise = np.concatenate(residuals)
    assert noise.std() == pytest.approx(0.5, rel=0.05)
    assert abs(noise.mean()) < 0.02


def test_other_class_counts_and_quantiles():
    ds = SegmentationMaps(num_samples=2, nside=NSIDE, num_classes=4)
    assert ds.quantiles == (0.25, 0.5, 0.75)
    y = ds[0].y_node.numpy()
    np.testing.assert_allclose(np.bincount(y, minlength=4) / y.size, 0.25, atol=2.0 / y.size)
    custom = SegmentationMaps(num_samples=2, nside=NSIDE, num_classes=2, quantiles=[0.7])
    np.testing.assert_array_equal(custom[1].y_node.numpy(),
                                  reference_labels(custom.clean_field(1), (0.7,)))


def test_spectrum_and_alm_statistics():
    cl = field_spectrum(20, ell_scale=5.0)
    ell = np.arange(21)
    assert cl[0] == 0.0
    assert np.sum((2 * ell + 1) * cl) / (4 * np.pi) == pytest.approx(1.0)
    np.testing.assert_allclose(cl[2] / cl[1], np.exp(-(4 - 1) / 25.0))
    rng = np.random.default_rng(0)
    alms = np.stack([gaussian_alm(cl, rng) for _ in range(400)])
    # Empirical power per degree: (|a_l0|^2 + 2 sum_m>0 |a_lm|^2) / (2l + 1), 400 draws.
    ells, ms = hp.Alm.getlm(20)
    weights = np.where(ms > 0, 2.0, 1.0) * np.abs(alms) ** 2
    power = np.stack([weights[:, ells == ell].sum(1) for ell in range(21)], 1).mean(0)
    np.testing.assert_allclose(power[1:8], cl[1:8] * (2 * ell[1:8] + 1), rtol=0.15)
    # A real field of variance 1 at every point.
    pos = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.6, 0.0, -0.8]])
    values = design_matrix(pos, 20) @ alm_to_real(alms, 20).T
    np.testing.assert_allclose(values.var(axis=1), 1.0, rtol=0.2)


def test_determinism_and_splits():
    a = SegmentationMaps("train", num_samples=3, nside=NSIDE, seed=1)
    b = SegmentationMaps("train", num_samples=3, nside=NSIDE, seed=1)
    c = SegmentationMaps("test", num_samples=3, nside=NSIDE, seed=1)
    assert torch.equal(a[2].x, b[2].x) and torch.equal(a[2].y_node, b[2].y_node)
    assert not torch.equal(a[2].x, c[2].x)


def test_bad_input():
    with pytest.raises(ValueError, match="sampling"):
        SegmentationMaps(sampling="icosahedral")
    with pytest.raises(ValueError, match="power of two"):
        SegmentationMaps(nside=6)
    with pytest.raises(ValueError, match="num_classes"):
        SegmentationMaps(num_classes=1)
    with pytest.raises(ValueError, match="quantiles"):
        SegmentationMaps(quantiles=(0.9, 0.1))
    with pytest.raises(ValueError, match="quantiles"):
        SegmentationMaps(num_classes=3, quantiles=(0.5,))
    with pytest.raises(ValueError, match="noise"):
        SegmentationMaps(noise=-1.0)
    with pytest.raises(ValueError, match="nlat"):
        SegmentationMaps(nside=NSIDE, sampling="equiangular", nlat=16)
