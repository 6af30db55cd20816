"""Gaussian vs power-modulated CMB maps with one power spectrum."""

import healpy as hp
import numpy as np
import pytest
import scipy.stats
import torch

from deepsphere_pyg.data.cmb import (
    CMBMaps,
    _modulated_spectra,
    cmb_cl,
    modulation_cl,
    modulation_lmax,
    small_scale_window,
)
from deepsphere_pyg.data.spectra import load_spectra, pixel_window, product_field_cl
from deepsphere_pyg.openmp import single_threaded_openmp


def _coupling(x: np.ndarray, nside: int) -> float:
    """Large-scale power of the local small-scale power (normalised): the class signal."""
    lmax, lm = 3 * nside - 1, modulation_lmax(nside)
    alm = hp.map2alm(x, lmax=lmax, iter=3, use_pixel_weights=False)
    high = hp.alm2map(hp.almxfl(alm, small_scale_window(lmax)), nside, lmax=lmax)
    local = hp.map2alm(high**2, lmax=lm, iter=0, use_pixel_weights=False)
    ell = np.arange(1, lm + 1)
    return float(np.sum(hp.alm2cl(local)[1:] * (2 * ell + 1)) / np.mean(high**2) ** 2)


@pytest.fixture(scope="module", params=[(16, 1.0), (32, 0.15)], ids=["strong16", "default32"])
def ensemble(request):
    """300 maps: spectra, skewness, kurtosis and the scale coupling of each."""
    nside, strength = request.param
    count = 150
    data = CMBMaps(num_samples=2 * count, nside=nside, strength=strength, seed=7)
    spectra, skew, kurt, coupling = [], [], [], []
    with single_threaded_openmp():
        for i in range(2 * count):
            x = hp.reorder(data[i].x[:, 0].double().numpy(), n2r=True)
            spectra.append(hp.anafast(x, lmax=3 * nside - 1, iter=3, use_pixel_weights=False))
            skew.append(scipy.stats.skew(x))
            kurt.append(scipy.stats.kurtosis(x))
            coupling.append(_coupling(x, nside))
    return data, np.stack(spectra), np.array(skew), np.array(kurt), np.array(coupling)


def test_samples_shapes_labels_determinism():
    data = CMBMaps(num_samples=4, nside=8)
    samples = [data[i] for i in range(4)]
    assert all(s.x.shape == (768, 1) and s.x.dtype == torch.float32 for s in samples)
    assert [int(s.y) for s in samples] == [0, 1, 0, 1]
    again = CMBMaps(num_samples=4, nside=8)
    assert torch.equal(again[1].x, samples[1].x)
    assert not torch.equal(CMBMaps("val", num_samples=4, nside=8)[1].x, samples[1].x)
    assert not torch.equal(CMBMaps(num_samples=4, nside=8, seed=1)[1].x, samples[1].x)
    assert data.hierarchy(2).num_nodes == [768, 192]


def test_target_spectrum():
    nside = 16
    np.testing.assert_allclose(cmb_cl(nside),
                               load_spectra().cmb_tt[:48] * pixel_window(nside) ** 2)


def test_expected_spectrum_of_the_modulated_part_is_the_target():
    nside, strength = 32, 0.5
    large, small = _modulated_spectra(nside, strength)
    target = cmb_cl(nside)
    envelope = strength**2 * modulation_cl(nside)
    envelope[0] += 4 * np.pi
    envelope /= 1 + strength**2
    total = large + product_field_cl(small, envelope, target.size - 1)
    np.testing.assert_allclose(total[2:], target[2:], rtol=3e-3)  # 40 iterations


def test_classes_share_the_spectrum(ensemble):
    data, spectra, _, _, _ = ensemble
    target = data.cl
    count = spectra.shape[0] // 2
    n = data.nside
    for lo, hi in [(2, n // 2), (n // 2, 3 * n // 2), (3 * n // 2, 3 * n)]:
        binned = spectra[:, lo:hi].sum(axis=1) / target[lo:hi].sum()
        gauss, non_gauss = binned[0::2], binned[1::2]
        error = np.hypot(gauss.std(ddof=1), non_gauss.std(ddof=1)) / np.sqrt(count)
        assert abs(non_gauss.mean() - gauss.mean()) < 3.5 * error + 0.01, (lo, hi)
        if hi <= 2 * data.nside:  # the HEALPix estimator is biased low near 3 nside
            assert abs(gauss.mean() - 1) < 4 * gauss.std(ddof=1) / np.sqrt(count) + 0.01


def test_one_point_statistics_barely_differ_while_scale_coupling_does(ensemble):
    data, _, skew, kurt, coupling = ensemble
    count = skew.size // 2
    gauss, modulated = skew[0::2], skew[1::2]
    error = np.hypot(gauss.std(ddof=1), modulated.std(ddof=1)) / np.sqrt(count)
    assert abs(modulated.mean() - gauss.mean()) < 4 * error  # odd moments vanish
    gauss, modulated = coupling[0::2], coupling[1::2]
    error = np.hypot(gauss.std(ddof=1), modulated.std(ddof=1)) / np.sqrt(count)
    assert modulated.mean() - gauss.mean() > 10 * error
    if data.strength < 0.5:  # the default: kurtosis within its sampling error
        gauss, modulated = kurt[0::2], kurt[1::2]
        error = np.hypot(gauss.std(ddof=1), modulated.std(ddof=1)) / np.sqrt(count)
        assert abs(modulated.mean() - gauss.mean()) < 4 * error
    else:  # a scale mixture: positive excess kurtosis
        assert kurt[1::2].mean() - kurt[0::2].mean() > 0


def test_noise_level_is_honoured():
    nside, noise = 16, 0.75
    clean = CMBMaps(num_samples=4, nside=nside)
    noisy = CMBMaps(num_samples=4, nside=nside, noise=noise)
    assert noisy.noise_std == pytest.approx(noise * clean.pixel_std)
    diff = torch.cat([noisy[i].x - clean[i].x for i in range(4)]).double()
    assert abs(float(diff.std()) / noisy.noise_std - 1) < 0.03
    # pixel_std is the standard deviation of the noiseless maps (low multipoles dominate
    # the variance, so many maps are needed).
    many = CMBMaps(num_samples=60, nside=8, strength=0.0)
    empirical = np.sqrt(np.mean([float(many[i].x.double().pow(2).mean()) for i in range(60)]))
    assert abs(empirical / many.pixel_std - 1) < 0.15


def test_repr():
    assert repr(CMBMaps(num_samples=2, nside=8, strength=0.1, noise=0.5)) == (
        "CMBMaps(split='train', num_samples=2, seed=0, nside=8, strength=0.1, noise=0.5)")


@pytest.mark.parametrize("kwargs, error, match", [
    ({"nside": 20}, ValueError, "power of two"),
    ({"nside": 4096}, ValueError, "nside must be <= 1024"),
    ({"noise": -0.1}, ValueError, "noise"),
    ({"strength": float("nan")}, ValueError, "strength"),
    ({"strength": -0.5}, ValueError, "strength"),
    ({"strength": "large"}, TypeError, "strength"),
    ({"split": "validation"}, ValueError, "split"),
])
def test_bad_input(kwargs, error, match):
    with pytest.raises(error, match=match):
        CMBMaps(**kwargs)
