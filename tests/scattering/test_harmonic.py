"""Harmonic scattering backend against direct healpy computations of the definition."""

import healpy as hp
import numpy as np
import pytest
import torch

from deepsphere_pyg.graphs import SphereHierarchy, equiangular_hierarchy
from deepsphere_pyg.graphs.equivariance import random_rotations, rotate_alm
from deepsphere_pyg.scattering import FilterBank, HarmonicBackend, SphericalScattering
from deepsphere_pyg.scattering.backend import ScatteringBackend

NSIDE = 32

pytestmark = pytest.mark.usefixtures("one_openmp_thread")


@pytest.fixture(scope="module")
def hierarchy():
    """Full-sky NEST hierarchy, nside 32 -> 4."""
    return SphereHierarchy.healpix(NSIDE, 4)


def _random_nest_maps(rng, count):
    return rng.standard_normal((count, hp.nside2npix(NSIDE)))


def _band_limited_alm(band, rng):
    """Coefficients (lmax = band) of a random real field with a flat spectrum up to band."""
    alm = np.zeros(hp.Alm.getsize(band), dtype=np.complex128)
    for ell in range(1, band + 1):
        m = np.arange(ell + 1)
        values = rng.standard_normal(ell + 1) + 1j * rng.standard_normal(ell + 1)
        values[0] = values[0].real * np.sqrt(2)
        alm[hp.Alm.getidx(band, ell, m)] = values / np.sqrt(2)
    return alm


def _to_nest(ring_map):
    return hp.reorder(ring_map, r2n=True)


def _to_ring(nest_map):
    return hp.reorder(nest_map, n2r=True)


def _energy(alm, lmax):
    """sum_{l, m} |a_lm|^2 over all m (negative m from the reality condition)."""
    return float(np.sum(hp.alm2cl(alm, lmax=lmax) * (2 * np.arange(lmax + 1) + 1)))


def _reference_scattering(f_nest, bank, depth, nside_out):
    """S[p] f for every path, directly from the definition on full-band transforms.

    Input analysed with map2alm(iter=3), modulus maps with the plain quadrature
    (map2alm(iter=0)), every transform at lmax = L - 1: the analyses documented in
    deepsphere_pyg.scattering.harmonic, without its per-step band limits.
    """
    lmax = bank.L - 1
    ell = np.arange(bank.L, dtype=float)
    phi = bank.scaling(ell)

    def analyse(m, iters):
        return hp.map2alm(m, lmax=lmax, iter=iters, pol=False, use_pixel_weights=False)

    coefficients = {(): analyse(_to_ring(f_nest), 3)}  # of U[p] f, by path scales
    out = []
    for path in bank.paths(depth):  # a path's prefix always comes before it
        if path.scales:
            wavelet = hp.almxfl(coefficients[path.scales[:-1]], bank.wavelet(ell, path.scales[-1]))
            u = np.abs(hp.alm2map(wavelet, NSIDE, lmax=lmax, pol=False))
            coefficients[path.scales] = analyse(u, 0)
        lowpass = hp.almxfl(coefficients[path.scales], phi)
        out.append(_to_nest(hp.alm2map(lowpass, nside_out, lmax=lmax, pol=False)))
    return np.stack(out, axis=-1)  # [N_out, P]


def test_order0_is_healpy_smoothing(hierarchy):
    """S[()] f = alm2map(almxfl(map2alm(f), Phi), nside_out), for maps that are not
    band-limited, in both float64 and float32."""
    rng = np.random.default_rng(0)
    maps = _random_nest_maps(rng, 4)
    bank = FilterBank(3 * NSIDE, 2)
    backend = HarmonicBackend(hierarchy, bank, 2, 3)
    x = torch.from_numpy(maps.reshape(2, 2, -1).transpose(0, 2, 1).copy())  # [B=2, N, C=2]
    out = backend(x)
    assert out.shape == (2, hp.nside2npix(4), 2, len(bank.paths(2))) and out.dtype == x.dtype
    phi = bank.scaling(np.arange(bank.L, dtype=float))
    for b in range(2):
        for c in range(2):
            alm = hp.map2alm(_to_ring(maps[2 * b + c]), lmax=bank.L - 1, iter=3, pol=False,
                             use_pixel_weights=False)
            expected = _to_nest(hp.alm2map(hp.almxfl(alm, phi), 4, lmax=bank.L - 1, pol=False))
            np.testing.assert_allclose(out[b, :, c, 0].numpy(), expected, rtol=0,
                                       atol=1e-12 * np.abs(expected).max())
    out32 = backend(x.float())
    assert out32.dtype == torch.float32
    np.testing.assert_allclose(out32.numpy(), out.numpy(), rtol=0, atol=1e-5)


@pytest.mark.parametrize(("J0", "depth"), [(2, 2), (4, 3)])
def test_all_paths_match_definition(hierarchy, J0, depth):
    """Every path equals a direct computation of |..|f * psi_j1| * psi_j2| ..| * Phi."""
    rng = np.random.default_rng(1)
    f = _random_nest_maps(rng, 1)[0]
    bank = FilterBank(3 * NSIDE, J0)
    scattering = SphericalScattering(hierarchy, J0=J0, depth=depth, backend="harmonic")
    out = scattering(torch.from_numpy(f)[:, None])  # [N_out, P]
    nside_out = int(hierarchy[scattering.output_level].nside)
    assert nside_out == 2**J0  # coarsest level holding degrees below 2^J0
    expected = _reference_scattering(f, bank, depth, nside_out)
    assert out.shape == expected.shape
    scale = np.abs(expected).max(axis=0)
    np.testing.assert_allclose(out.numpy() / scale, expected / scale, rtol=0, atol=1e-10)


def test_first_layer_conserves_energy(hierarchy):
    """sum_j ||f * psi_j||^2 + ||f * Phi||^2 = ||f||^2 for a band-limited f (alm power)."""
    rng = np.random.default_rng(2)
    band = NSIDE
    alm = _band_limited_alm(band, rng)
    f = _to_nest(hp.alm2map(alm, NSIDE, lmax=band, pol=False))
    bank = FilterBank(3 * NSIDE, 2)
    backend = HarmonicBackend(hierarchy, bank, 1, 3)
    x = torch.from_numpy(f)[None, :, None]
    wavelets = backend.wavelet_coefficients(x)[0, :, 0].numpy()  # [N, n]
    assert wavelets.shape == (hp.nside2npix(NSIDE), len(bank.scales))
    energies = []
    for k, j in enumerate(bank.scales):
        # f * psi_j lies in the band of kappa_j (degrees above that of f only hold the
        # HEALPix analysis error of f, a 1e-4 fraction of the energy).
        top = min(bank.L - 1, int(np.ceil(2.0 ** (j + 1))) - 1)
        coefficients = hp.map2alm_lsq(_to_ring(wavelets[:, k]), top, top, pol=False,
                                      tol=1e-12, maxiter=100)[0]
        energies.append(_energy(coefficients, top))
    lowpass = backend(x)[0, :, 0, 0].numpy()  # on nside 4, degrees < 4
    coefficients = hp.map2alm_lsq(_to_ring(lowpass), 3, 3, pol=False, tol=1e-12,
                                  maxiter=100)[0]
    energies.append(_energy(coefficients, 3))
    total = _energy(alm, band)
    print(f"first-layer energy / input energy - 1 = {sum(energies) / total - 1:.2e}")
    assert sum(energies) == pytest.approx(total, rel=5e-4)


def test_rotation_equivariance(hierarchy):
    """S(R f) = R S(f) with exact harmonic rotations; f band-limited to l <= nside.

    Order 0 is a band-limited filter (error only from the HEALPix analysis of f); orders 1
    and 2 include a modulus sampled at nside 32, which is not exactly rotatable.
    """
    rng = np.random.default_rng(3)
    band = NSIDE
    scattering = SphericalScattering(hierarchy, J0=3, depth=2, backend="harmonic")
    nside_out = int(hierarchy[scattering.output_level].nside)
    lmax_out = 7  # Phi vanishes from degree 2^J0 = 8 on
    errors = {0: [], 1: [], 2: []}
    orders = np.array([p.order for p in scattering.paths])
    for matrix in random_rotations(2, rng):
        alm = _band_limited_alm(band, rng)
        f = _to_nest(hp.alm2map(alm, NSIDE, lmax=band, pol=False))
        f_rot = _to_nest(hp.alm2map(rotate_alm(alm, matrix, band), NSIDE, lmax=band,
                                    pol=False))
        out = scattering(torch.from_numpy(np.stack([f, f_rot]))[..., None]).numpy()
        rotated = []
        for p in range(scattering.num_paths):
            coefficients = hp.map2alm_lsq(_to_ring(out[0, :, p]), lmax_out, lmax_out,
                                          pol=False, tol=1e-12, maxiter=100)[0]
            rotated.append(_to_nest(hp.alm2map(rotate_alm(coefficients, matrix, lmax_out),
                                               nside_out, lmax=lmax_out, pol=False)))
        rotated = np.stack(rotated, axis=-1)
        for order in errors:
            sel = orders == order
            errors[order].append(np.linalg.norm(out[1][:, sel] - rotated[:, sel])
                                 / np.linalg.norm(rotated[:, sel]))
    worst = {order: max(values) for order, values in errors.items()}
    print(f"relative equivariance error at nside {NSIDE}, J0=3, by order: {worst}")
    assert worst[0] < 1e-3
    assert worst[1] < 2e-2  # measured ~4e-3
    assert worst[2] < 5e-2  # measured ~1.4e-2


def test_modulus_approximates_the_continuous_definition():
    """Order-1 coefficients at nside 16 approach those computed from the same band-limited
    field at nside 64 (a finer sampling of the same modulus)."""
    band, J0 = 12, 2
    rng = np.random.default_rng(4)
    alm = _band_limited_alm(band, rng)
    outputs = []
    for nside in (16, 64):
        hierarchy = SphereHierarchy.healpix(nside, int(np.log2(nside)) - 1)
        scattering = SphericalScattering(hierarchy, J0=J0, depth=1, backend="harmonic",
                                         L=3 * 16)
        f = _to_nest(hp.alm2map(alm, nside, lmax=band, pol=False))
        outputs.append(scattering(torch.from_numpy(f)[:, None]).numpy())
    coarse, fine = outputs
    assert coarse.shape == fine.shape  # both on nside 4
    relative = np.linalg.norm(coarse - fine, axis=0) / np.linalg.norm(fine, axis=0)
    print("relative difference nside 16 vs 64, order 0 and j = 2..5:", relative)
    assert np.all(relative[:4] < 1e-2), relative  # order 0 and the wavelets j = 2, 3, 4


def test_buffers_and_protocol(hierarchy):
    backend = HarmonicBackend(hierarchy, FilterBank(3 * NSIDE, 2), 2, 3)
    assert isinstance(backend, ScatteringBackend)
    assert list(backend.parameters()) == [] and backend.state_dict() == {}
    assert backend.phi.dtype == torch.float64 and backend.psi.shape == (6, 3 * NSIDE)
    assert backend.num_threads == 1
    backend.num_threads = None
    with pytest.raises(ValueError, match="num_threads"):
        backend.num_threads = 0
    with pytest.raises(ValueError, match="num_threads"):
        HarmonicBackend(hierarchy, FilterBank(3 * NSIDE, 2), 2, 3, num_threads=-1)
    two = SphericalScattering(hierarchy, J0=2, backend="harmonic",
                              backend_options={"num_threads": 2})
    assert two.backend.num_threads == 2 and "backend_options={'num_threads': 2}" in repr(two)
    x = torch.randn(1, hp.nside2npix(NSIDE), 1, dtype=torch.float64)
    reference = SphericalScattering(hierarchy, J0=2, backend="harmonic")
    torch.testing.assert_close(two(x), reference(x), rtol=0, atol=1e-12)


def test_refuses_what_it_cannot_transform(hierarchy):
    bank = FilterBank(3 * NSIDE, 2)
    mask = np.zeros(hp.nside2npix(NSIDE), dtype=bool)
    mask[: hp.nside2npix(NSIDE) // 2] = True
    partial = SphereHierarchy.healpix(NSIDE, 3, mask=mask, mask_ordering="nest")
    with pytest.raises(ValueError, match="backend='graph'"):
        HarmonicBackend(partial, bank, 2, 2)
    grid = equiangular_hierarchy(16, 2)
    with pytest.raises(ValueError, match="backend='graph'"):
        HarmonicBackend(grid, FilterBank(24, 2), 2, 1)
    with pytest.raises(ValueError, match="exceeds 3 \\* nside"):
        HarmonicBackend(hierarchy, FilterBank(3 * NSIDE + 1, 2), 2, 3)
    with pytest.raises(ValueError, match="depth"):
        HarmonicBackend(hierarchy, bank, 4, 3)
    with pytest.raises(ValueError, match="output_level"):
        HarmonicBackend(hierarchy, bank, 2, 4)
    backend = HarmonicBackend(hierarchy, bank, 1, 3)
    x = torch.zeros(1, hp.nside2npix(NSIDE), 1, dtype=torch.float64)
    x[0, 5, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        backend(x)
    with pytest.raises(ValueError, match="nodes"):
        backend(torch.zeros(1, 10, 1))
