"""Scale-discretised wavelet kernels against their defining formulas (independent quadrature)."""

import math

import numpy as np
import pytest
from scipy.integrate import quad

from deepsphere_pyg.scattering import FilterBank, ScatteringPath, scattering_paths
from deepsphere_pyg.scattering.filters import k_lambda, scaling_kernel, wavelet_kernel

BANKS = [(64, 2.0, 0), (64, 2.0, 3), (100, 1.5, 4), (30, 3.0, 1), (97, 2.0, 2), (1024, 2.0, 5)]


def _bump(t: float) -> float:
    return math.exp(-1.0 / (1.0 - t * t)) if abs(t) < 1.0 else 0.0


def _k_reference(t: float, lam: float) -> float:
    """k_lambda(t) from its definition, integrated with scipy's adaptive quadrature."""
    if t <= 1.0 / lam:
        return 1.0
    if t >= 1.0:
        return 0.0

    def integrand(u: float) -> float:
        return _bump(2.0 * lam / (lam - 1.0) * (u - 1.0 / lam) - 1.0) ** 2 / u

    numerator = quad(integrand, t, 1.0, epsabs=0.0, epsrel=1e-13, limit=200)[0]
    denominator = quad(integrand, 1.0 / lam, 1.0, epsabs=0.0, epsrel=1e-13, limit=200)[0]
    return numerator / denominator


@pytest.mark.parametrize("lam", [1.5, 2.0, 3.0])
def test_k_lambda_matches_quadrature(lam):
    t = np.linspace(0.0, 1.2, 61)
    expected = np.array([_k_reference(v, lam) for v in t])
    np.testing.assert_allclose(k_lambda(t, lam), expected, rtol=0, atol=1e-11)


@pytest.mark.parametrize("lam", [1.5, 2.0])
def test_kernels_match_their_formulas(lam):
    ell = np.linspace(0.0, 40.0, 41)
    k = np.vectorize(lambda t: _k_reference(t, lam))
    J0 = 3
    np.testing.assert_allclose(scaling_kernel(ell, J0, lam), np.sqrt(k(ell / lam**J0)),
                               atol=1e-7)
    for j in range(2, 6):
        expected = np.sqrt(np.clip(k(ell / lam ** (j + 1)) - k(ell / lam**j), 0, None))
        # sqrt amplifies the quadrature error near the support's ends: compare squares too.
        np.testing.assert_allclose(wavelet_kernel(ell, j, lam) ** 2, expected**2, atol=1e-11)
        np.testing.assert_allclose(wavelet_kernel(ell, j, lam), expected, atol=1e-5)


@pytest.mark.parametrize(("L", "lam", "J0"), BANKS)
def test_tight_frame(L, lam, J0):
    """Phi^2 + sum_j kappa_j^2 = 1 for every degree below L (integer and fractional)."""
    bank = FilterBank(L, J0, lam=lam)
    assert bank.J == math.ceil(math.log(L) / math.log(lam) - 1e-12)
    ell = np.concatenate([np.arange(L, dtype=float), np.linspace(0.0, L - 1e-9, 301)])
    phi, psi = bank.kernels(ell)
    np.testing.assert_allclose(phi**2 + (psi**2).sum(axis=0), 1.0, rtol=0, atol=1e-12)
    assert psi.shape == (len(bank.scales), ell.size)


@pytest.mark.parametrize(("L", "lam", "J0"), BANKS)
def test_supports(L, lam, J0):
    bank = FilterBank(L, J0, lam=lam)
    ell = np.linspace(0.0, 1.2 * lam ** (bank.J + 1), 4001)
    phi = bank.scaling(ell)
    band = bank.scaling_band_limit
    assert band == pytest.approx(lam**J0)
    np.testing.assert_array_equal(phi[ell <= lam ** (J0 - 1)], 1.0)
    np.testing.assert_array_equal(phi[ell >= band], 0.0)
    # Decreasing; strictly between 0 and 1 inside the transition (away from its ends, where
    # the smooth bump is flat to double precision).
    assert np.all(np.diff(phi) <= 1e-15)
    start = lam ** (J0 - 1)
    middle = (ell > start + 0.02 * (band - start)) & (ell < band - 0.02 * (band - start))
    assert middle.any() and np.all((phi[middle] > 0) & (phi[middle] < 1))
    for j in bank.scales:
        kappa = bank.wavelet(ell, j)
        low, high = bank.wavelet_band(j)
        assert (low, high) == pytest.approx((lam ** (j - 1), lam ** (j + 1)))
        np.testing.assert_array_equal(kappa[(ell <= low) | (ell >= high)], 0.0)
        inside = (ell > low + 0.02 * (high - low)) & (ell < high - 0.02 * (high - low))
        assert np.all(kappa[inside] > 0)
        assert kappa.max() <= 1.0 + 1e-12


def test_frame_needs_enough_scales():
    """Below lam^J the frame is tight; with J too small the top degrees are lost."""
    with pytest.raises(ValueError, match="uncovered"):
        FilterBank(64, 2, J=5)
    bank = FilterBank(64, 2, J=8)  # more scales than needed: still tight
    phi, psi = bank.kernels(np.arange(64.0))
    np.testing.assert_allclose(phi**2 + (psi**2).sum(axis=0), 1.0, atol=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"L": 64, "J0": 6}, "J0 must be smaller than J"),
        ({"L": 64, "J0": 7, "J": 7}, "J0 must be smaller than J"),
        ({"L": 1, "J0": 0}, "L"),
        ({"L": 64, "J0": -1}, "J0"),
        ({"L": 64, "J0": 2, "lam": 1.0}, "lam"),
        ({"L": 64.5, "J0": 2}, "L"),
    ],
)
def test_filter_bank_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FilterBank(**kwargs)


def test_wavelet_rejects_unknown_scale():
    with pytest.raises(ValueError, match="scales"):
        FilterBank(64, 2).wavelet(np.arange(4.0), 1)


@pytest.mark.parametrize(("J0", "J", "depth"), [(2, 7, 1), (2, 7, 2), (0, 5, 2), (1, 6, 3)])
def test_scattering_paths(J0, J, depth):
    paths = scattering_paths(J0, J, depth)
    n = J - J0 + 1
    expected_count = sum(math.comb(n, order) for order in range(depth + 1))
    assert len(paths) == expected_count  # strictly decreasing scale sequences
    assert paths[0] == ScatteringPath(0, ())
    assert [p.order for p in paths] == sorted(p.order for p in paths)
    for p in paths:
        assert p.order == len(p.scales)
        assert all(J0 <= j <= J for j in p.scales)
        assert all(a > b for a, b in zip(p.scales, p.scales[1:], strict=False))
    for order in range(1, depth + 1):
        scales = [p.scales for p in paths if p.order == order]
        assert scales == sorted(scales)
    assert FilterBank(2**J, J0, J).paths(depth) == paths
