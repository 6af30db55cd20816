"""Convergence maps of two cosmologies, and the shipped spectra they are drawn from."""

import healpy as hp
import numpy as np
import pytest
import scipy.special
import scipy.stats
import torch
from torch_geometric.loader import DataLoader

from deepsphere_pyg.data.cosmology import CLASS_CHOICES, CosmologyMaps, convergence_cl
from deepsphere_pyg.data.spectra import (
    cl_from_correlation,
    correlation_from_cl,
    gaussian_alm,
    gaussian_map,
    legendre_nodes,
    load_spectra,
    lognormal_gaussian_cl,
    pixel_window,
    squared_field_cl,
)
from deepsphere_pyg.openmp import single_threaded_openmp


def _anafast(ring: np.ndarray, lmax: int) -> np.ndarray:
    """healpy.anafast, single-threaded (OpenMP threads crawl on a busy machine)."""
    with single_threaded_openmp():
        return hp.anafast(ring, lmax=lmax, iter=3, use_pixel_weights=False)


def _spectrum(x: torch.Tensor, nside: int) -> np.ndarray:
    """Spectrum of a NEST sample map, up to 3 nside - 1."""
    return _anafast(hp.reorder(x[:, 0].double().numpy(), n2r=True), 3 * nside - 1)


# ------------------------------------------------------------------ shipped spectra
def test_shipped_spectra_contents():
    spectra = load_spectra()
    assert spectra.lmax == 3072
    assert spectra.kappa_cl.shape == (3, 3073) and spectra.cmb_tt.shape == (3073,)
    assert np.all(spectra.kappa_cl[:, :2] == 0) and np.all(spectra.kappa_cl[:, 2:] > 0)
    assert not spectra.kappa_cl.flags.writeable
    assert "camb_version" in spectra.metadata
    models = spectra.metadata["kappa"]["models"]
    assert [(m["omega_m"], m["sigma_8"]) for m in models][:2] == [(0.31, 0.82), (0.26, 0.91)]
    np.testing.assert_allclose(spectra.kappa_models,
                               [[m["omega_m"], m["sigma_8"]] for m in models])
    assert all(m["z_source"] == 0.8 for m in models)
    # Planck: first acoustic peak D_220 = l(l+1) C_l / 2 pi about 5700 muK^2.
    d220 = 220 * 221 * spectra.cmb_tt[220] / (2 * np.pi)
    assert 5400 < d220 < 6000
    # Convergence at z_s = 0.8: l(l+1) C_l / 2 pi of order 1e-5 at l = 100, 1e-4 at 1000.
    d = np.arange(3073) * np.arange(1, 3074) * spectra.kappa_cl / (2 * np.pi)
    assert np.all((3e-6 < d[:, 100]) & (d[:, 100] < 5e-5))
    assert np.all((2e-5 < d[:, 1000]) & (d[:, 1000] < 3e-4))
    # The published pair is nearly degenerate on small scales.
    ratio = spectra.kappa_cl[1, 100:3000] / spectra.kappa_cl[0, 100:3000]
    assert np.all(np.abs(ratio - 1) < 0.06)
    # Hilbert et al. (2011) shift at z_s = 0.8, 0.0212 for the Millennium cosmology,
    # scaled by the empty-beam convergence: about 0.02 for these cosmologies.
    assert np.all((0.015 < spectra.kappa_shift) & (spectra.kappa_shift < 0.03))


def test_degenerate_classes_share_the_spectrum_over_the_signal_band():
    degenerate = convergence_cl(512)[:, 100:1501]
    assert np.all(np.abs(degenerate[1] / degenerate[0] - 1) < 0.03)
    paper = convergence_cl(512, "paper")
    np.testing.assert_array_equal(paper[0], convergence_cl(512)[0])
    assert not np.array_equal(paper[1], convergence_cl(512)[1])
    # Below l = 100 the models differ (the patches see little of it).
    low = convergence_cl(512)[:, 2:30]
    assert np.max(low[1] / low[0]) > 1.1
    # 3-arcmin smoothing: b_l^2 = exp(-l (l + 1) sigma^2).
    sigma = np.radians(3 / 60) / np.sqrt(8 * np.log(2))
    ell = np.arange(1536)
    np.testing.assert_allclose(convergence_cl(512)[0],
                               load_spectra().kappa_cl[0, :1536]
                               * np.exp(-ell * (ell + 1) * sigma**2), rtol=1e-6)


def test_correlation_from_cl_matches_legendre_sum():
    cl = np.array([0.0, 0.0, 1.0, 0.5, 0.25, 0.1])
    x = np.linspace(-1, 1, 7)
    expected = sum((2 * ell + 1) / (4 * np.pi) * cl[ell] * scipy.special.eval_legendre(ell, x)
                   for ell in range(cl.size))
    np.testing.assert_allclose(correlation_from_cl(cl, x), expected, rtol=1e-12, atol=1e-15)
    nodes, weights = legendre_nodes(16)
    np.testing.assert_allclose(cl_from_correlation(correlation_from_cl(cl, nodes), 5),
                               cl, atol=1e-13)


def test_squared_field_cl_analytic():
    # xi = a x (power at l = 1 only): 2 xi^2 = 2 a^2 (P_0 + 2 P_2) / 3, so
    # C_0 = 8 pi a^2 / 3, C_2 = 16 pi a^2 / 15, all others zero.
    c1 = 2.0
    a = 3 / (4 * np.pi) * c1
    out = squared_field_cl(np.array([0.0, c1, 0.0, 0.0]), lmax=4)
    np.testing.assert_allclose(out, [8 * np.pi * a**2 / 3, 0, 16 * np.pi * a**2 / 15, 0, 0],
                               atol=1e-12)


def test_lognormal_gaussian_cl_inverts_the_lognormal_map():
    rng = np.random.default_rng(0)
    cl = np.concatenate([[0, 0], rng.uniform(0.5, 1.0, 30) / np.arange(2, 32) ** 2]) * 1e-4
    shift = 0.02
    gaussian, negative = lognormal_gaussian_cl(cl, shift)
    assert negative <= 2  # at most ell = 0, 1, where the target is zero
    # Forward: xi_kappa = shift^2 (exp(xi_g) - 1) must give back the target (up to the
    # truncation of the Gaussian spectrum at the target's band limit).
    nodes, weights = legendre_nodes(4 * cl.size)
    xi = shift**2 * np.expm1(correlation_from_cl(gaussian, nodes))
    back = cl_from_correlation(xi, cl.size - 1, nodes, weights)
    np.testing.assert_allclose(back[2:], cl[2:], rtol=3e-3)
    # Weak field: the Gaussian spectrum tends to cl / shift^2.
    weak, _ = lognormal_gaussian_cl(cl * 1e-6, shift)
    np.testing.assert_allclose(weak[2:], cl[2:] * 1e-6 / shift**2, rtol=1e-3)
    with pytest.raises(ValueError, match="shift"):
        lognormal_gaussian_cl(np.array([0, 0, -1.0]), 0.01)


def test_gaussian_alm_variance_and_determinism():
    cl = np.arange(1.0, 9.0)
    draws = np.stack([gaussian_alm(cl, np.random.default_rng(i)) for i in range(3000)])
    ell, m = hp.Alm.getlm(cl.size - 1)
    assert np.all(draws[:, m == 0].imag == 0)
    power = (np.abs(draws) ** 2).mean(axis=0) / cl[ell]
    assert np.all(np.abs(power - 1) < 0.15)
    np.testing.assert_array_equal(gaussian_alm(cl, np.random.default_rng(5)),
                                  gaussian_alm(cl, np.random.default_rng(5)))


def _maps(**kwargs):
    """Full-sky maps smoothed at the pixel scale, mean kept (the regime of most tests)."""
    kwargs = {"order": None, "smoothing": None, "subtract_mean": False, **kwargs}
    return CosmologyMaps(**kwargs)


# --------------------------------------------------------------------- data set
def test_samples_shapes_labels_and_batching():
    data = _maps(num_samples=6, nside=16)
    samples = [data[i] for i in range(len(data))]
    assert all(s.x.shape == (3072, 1) and s.x.dtype == torch.float32 for s in samples)
    assert [int(s.y) for s in samples] == [0, 1, 0, 1, 0, 1]
    batch = next(iter(DataLoader(samples, batch_size=4)))
    assert batch.x.shape == (4, 3072, 1) and batch.y.tolist() == [0, 1, 0, 1]
    assert CosmologyMaps().num_samples == 400
    assert CosmologyMaps(split="test").num_samples == 100


def test_determinism_and_splits():
    a = _maps(num_samples=4, nside=16, seed=3)
    b = _maps(num_samples=4, nside=16, seed=3)
    assert torch.equal(a[3].x, b[3].x) and torch.equal(a[0].x, b[0].x)  # any access order
    assert not torch.equal(a[0].x, a[2].x)  # two maps of the same label
    val = _maps(split="val", num_samples=4, nside=16, seed=3)
    other = _maps(num_samples=4, nside=16, seed=4)
    assert not torch.equal(a[0].x, val[0].x) and not torch.equal(a[0].x, other[0].x)


def test_partial_sky_patches_and_hierarchy():
    nside, order = 16, 2
    data = _maps(num_samples=8, nside=nside, order=order)
    npatch = 12 * nside**2 // (12 * order**2)
    assert data.patch_size == npatch == 64
    samples = [data[i] for i in range(8)]
    assert [int(s.patch) for s in samples] == [0, 0, 1, 1, 2, 2, 3, 3]
    assert [int(s.y) for s in samples] == [0, 1] * 4
    full = data.full_map(0, 0)
    for s in samples[::2]:
        p = int(s.patch)
        np.testing.assert_allclose(s.x[:, 0].numpy(), full[p * npatch:(p + 1) * npatch],
                                   rtol=1e-6)
    hierarchy = data.hierarchy(3, k=8)
    assert hierarchy.num_nodes == [64, 16, 4]
    assert torch.equal(hierarchy[0].pixels, torch.arange(64))
    pos = np.stack(hp.pix2vec(nside, np.arange(64), nest=True), axis=1)
    np.testing.assert_allclose(hierarchy[0].pos.numpy(), pos, atol=1e-6)

    one = _maps(num_samples=2, nside=nside, order=order, patches=5)
    assert int(one[0].patch) == 5 and int(one[1].patch) == 5
    assert torch.equal(one.hierarchy(1)[0].pixels, torch.arange(5 * 64, 6 * 64))
    np.testing.assert_allclose(one[0].x[:, 0].numpy(), one.full_map(0, 0)[5 * 64:6 * 64],
                               rtol=1e-6)
    assert _maps(nside=16).hierarchy(2).num_nodes == [3072, 768]


@pytest.mark.slow
def test_default_patches_are_deterministic_and_mean_free():
    data = CosmologyMaps(num_samples=6, seed=1)
    assert (data.nside, data.order, data.patch_size) == (512, 4, 16384)
    sample = data[5]
    assert sample.x.shape == (16384, 1) and int(sample.y) == 1 and int(sample.patch) == 2
    assert abs(float(sample.x.double().mean())) < 1e-6 * float(sample.x.double().std())
    again = CosmologyMaps(num_samples=6, seed=1)
    assert torch.equal(again[5].x, sample.x)
    assert not torch.equal(CosmologyMaps("val", num_samples=6, seed=1)[5].x, sample.x)
    assert not torch.equal(CosmologyMaps(num_samples=6, seed=2)[5].x, sample.x)
    paper = CosmologyMaps(num_samples=6, seed=1, classes="paper")
    assert torch.equal(paper[4].x, data[4].x)  # label 0 is the same model in both
    assert not torch.equal(paper[5].x, sample.x)


def test_neighbour_graph_of_every_patch_has_the_same_edges():
    data = _maps(num_samples=2, nside=16, order=1)
    edges = [data.hierarchy(1, patch=p, edges="neighbours")[0].edge_index for p in (0, 5, 11)]
    assert torch.equal(edges[0], edges[1]) and torch.equal(edges[0], edges[2])


def test_cache_fills_every_patch_of_a_map():
    cached = _maps(num_samples=10, nside=16, order=1, patches=[0, 3, 7], noise=0.5,
                           cache=True)
    plain = _maps(num_samples=10, nside=16, order=1, patches=[0, 3, 7], noise=0.5)
    first = cached[2]
    assert set(cached._cache) == {0, 2, 4}
    assert torch.equal(first.x, plain[2].x)
    for index in (0, 4, 9):
        assert torch.equal(cached[index].x, plain[index].x)


def test_noise_level_is_honoured():
    nside, noise = 16, 1.5
    clean = _maps(num_samples=6, nside=nside)
    noisy = _maps(num_samples=6, nside=nside, noise=noise)
    assert noisy.noise_std == pytest.approx(noise * clean.pixel_std)
    assert noisy.noise_cl == pytest.approx(noisy.noise_std**2 * 4 * np.pi / (12 * nside**2))
    diff = torch.cat([noisy[i].x - clean[i].x for i in range(6)]).double()
    assert abs(float(diff.std()) / noisy.noise_std - 1) < 0.03
    assert abs(float(diff.mean())) < 0.05 * noisy.noise_std
    # pixel_std is the standard deviation of the noiseless maps.
    many = _maps(num_samples=40, nside=nside, lognormal=False)
    empirical = float(torch.cat([many[i].x for i in range(40)]).double().std())
    assert abs(empirical / many.pixel_std - 1) < 0.1


@pytest.mark.parametrize("lognormal, smoothing", [(False, None), (True, None), (True, 3.0)])
def test_mean_spectrum_matches_target(lognormal, smoothing):
    nside, count = 32, 40
    data = _maps(num_samples=2 * count, nside=nside, lognormal=lognormal, seed=1,
                 smoothing=smoothing)
    spectra = np.stack([_spectrum(data[i].x, nside) for i in range(2 * count)])
    target = convergence_cl(nside, smoothing=smoothing)
    np.testing.assert_allclose(data.cl, target)
    for label in (0, 1):
        own = spectra[label::2]
        for lo, hi in [(2, 8), (8, 24), (24, 48), (48, 64)]:
            binned = own[:, lo:hi].sum(axis=1) / target[label, lo:hi].sum()
            error = binned.std(ddof=1) / np.sqrt(count)
            assert abs(binned.mean() - 1) < 4 * error + 0.01, (label, lo, hi, binned.mean())


def test_strongly_non_gaussian_lognormal_maps_keep_the_target_spectrum():
    # The data sets' fields are mildly non-Gaussian (sigma / shift < 0.2 up to nside 1024);
    # with sigma / shift = 0.5 the spectrum transform matters: using target / shift^2 as
    # the Gaussian spectrum gives 5-10 % too much power here.
    nside, count = 32, 100
    lmax = 3 * nside - 1
    target = convergence_cl(nside, smoothing=None)[0]
    shift = 2 * np.sqrt(correlation_from_cl(target, 1.0))
    gaussian, _ = lognormal_gaussian_cl(target, shift)
    variance = correlation_from_cl(gaussian, 1.0)
    rng = np.random.default_rng(0)
    spectra = np.stack([
        _anafast(shift * np.expm1(gaussian_map(gaussian, nside, rng) - variance / 2), lmax)
        for _ in range(count)])
    for lo, hi in [(2, 8), (8, 16), (16, 2 * nside)]:
        binned = spectra[:, lo:hi].sum(axis=1) / target[lo:hi].sum()
        error = binned.std(ddof=1) / np.sqrt(count)
        assert abs(binned.mean() - 1) < 4 * error + 0.01, (lo, hi, binned.mean())


def test_lognormal_maps_are_shifted_lognormal():
    nside = 32
    data = _maps(num_samples=20, nside=nside, seed=2)
    shifts = load_spectra().kappa_shift[list(CLASS_CHOICES["degenerate"])]
    skews = []
    for i in range(20):
        x = data[i].x[:, 0].double().numpy()
        assert x.min() > -shifts[i % 2]
        skews.append(scipy.stats.skew(x))
    gaussian = _maps(num_samples=20, nside=nside, seed=2, lognormal=False)
    gaussian_skews = [scipy.stats.skew(gaussian[i].x[:, 0].double().numpy()) for i in range(20)]
    # Skewness of a shifted lognormal field: 3 s + s^3 with s = sigma / shift.
    s = data.pixel_std / shifts.mean()
    assert np.mean(skews) == pytest.approx(3 * s + s**3, rel=0.3)
    assert np.mean(skews) - np.mean(gaussian_skews) > 5 * np.std(gaussian_skews) / np.sqrt(20)


def test_pixel_window_is_pixel_scale_gaussian():
    nside = 16
    b = pixel_window(nside)
    assert b.shape == (48,) and b[0] == 1.0
    sigma = hp.nside2resol(nside) / np.sqrt(8 * np.log(2))
    ell = np.arange(48)
    np.testing.assert_allclose(b, np.exp(-ell * (ell + 1) * sigma**2 / 2), rtol=1e-10)


def test_repr():
    data = CosmologyMaps(num_samples=4, nside=16, order=2, patches=[1, 2], noise=0.5)
    assert repr(data) == ("CosmologyMaps(split='train', num_samples=4, seed=0, nside=16, "
                          "order=2, patches=[1, 2], noise=0.5, lognormal=True, "
                          "classes='degenerate', smoothing=3.0, subtract_mean=True)")


@pytest.mark.parametrize("kwargs, error, match", [
    ({"nside": 48}, ValueError, "power of two"),
    ({"nside": 2048}, ValueError, "nside must be <= 1024"),
    ({"nside": 16, "order": 3}, ValueError, "order must be a power of two"),
    ({"nside": 16, "order": 32}, ValueError, "order=32 must be <= nside=16"),
    ({"nside": 16, "noise": -0.5}, ValueError, "noise"),
    ({"nside": 16, "noise": float("nan")}, ValueError, "noise"),
    ({"nside": 16, "split": "training"}, ValueError, "split"),
    ({"nside": 16, "order": 1, "patches": 12}, ValueError, r"\[0, 11\]"),
    ({"nside": 16, "order": None, "patches": 0}, ValueError, "patches needs order"),
    ({"nside": 16, "classes": "same"}, ValueError, "classes must be one of"),
    ({"nside": 16, "smoothing": -1.0}, ValueError, "smoothing"),
    ({"nside": 16, "smoothing": "3"}, TypeError, "smoothing"),
    ({"nside": 16, "subtract_mean": 1}, TypeError, "subtract_mean"),
    ({"nside": 16, "lognormal": "yes"}, TypeError, "lognormal"),
])
def test_bad_input(kwargs, error, match):
    with pytest.raises(error, match=match):
        CosmologyMaps(**kwargs)
    with pytest.raises(ValueError, match="order is None"):
        _maps(nside=16).hierarchy(2, patch=0)


def test_fresh_noise_draws_a_new_realisation_at_every_read_of_the_training_split():
    torch.manual_seed(0)
    kwargs = {"nside": 32, "order": 2, "noise": 1.0}
    train = CosmologyMaps("train", 4, fresh_noise=True, cache=True, **kwargs)
    clean = CosmologyMaps("train", 4, **{**kwargs, "noise": 0.0})[0].x
    first, second = train[0].x, train[0].x
    assert not torch.equal(first, second)  # a new draw per read (per epoch)
    for noisy in (first, second):  # same noiseless part, noise of the stated level
        residual = (noisy - clean).double()
        assert abs(float(residual.std()) / train.noise_std - 1) < 0.1
    torch.manual_seed(0)
    again = CosmologyMaps("train", 4, fresh_noise=True, **kwargs)
    assert torch.equal(again[0].x, first)  # reproducible under torch's seed
    val = CosmologyMaps("val", 4, fresh_noise=True, **kwargs)
    assert torch.equal(val[1].x, val[1].x)  # evaluation splits keep one draw
    assert torch.equal(val[1].x, CosmologyMaps("val", 4, **kwargs)[1].x)
    with pytest.raises(TypeError, match="fresh_noise must be True or False"):
        CosmologyMaps("train", 2, fresh_noise=1, **kwargs)
