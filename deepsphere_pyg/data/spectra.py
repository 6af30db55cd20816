r"""Angular power spectra shipped with the package (``resources/spectra.npz``).

The file is written by ``scripts/make_spectra.py`` (CAMB; see that script for the
physics). It holds, for :math:`\ell = 0 \dots 3072` (:math:`3 \times 1024`, the band limit
of HEALPix maps up to nside 1024), with :math:`C_0 = C_1 = 0`:

* ``kappa_cl`` ``[3, 3073]``: weak-lensing convergence spectra :math:`C_\ell^\kappa`
  (dimensionless) of three flat LCDM cosmologies (``kappa_models`` ``[3, 2]``, rows
  :math:`(\Omega_m, \sigma_8)`): model 0 :math:`(0.31, 0.82)` and model 1
  :math:`(0.26, 0.91)` (the DeepSphere v1 pair), and model 2 :math:`(0.26, \sigma_8^*)`,
  :math:`\sigma_8^*` tuned by the script so that model 2 matches model 0 within 3 % over
  :math:`100 \le \ell \le 1500`. Single source plane at :math:`z_s = 0.8` (DeepSphere
  v1), Limber integral of the non-linear (halofit) matter power spectrum.
* ``kappa_shift`` ``[3]``: the lognormal shift of each model, the ray-tracing calibration
  of Hilbert, Hartlap & Schneider (2011) scaled to the model's empty-beam convergence
  (``scripts/make_spectra.py``).
* ``cmb_tt`` ``[3073]``: lensed CMB temperature spectrum :math:`C_\ell^{TT}` in
  :math:`\mu K^2`, Planck 2018 best-fit LCDM.

Values are stored as float32 and returned as float64 read-only arrays.

The module also holds the spectrum tools of the generated data sets: the smoothing window
of a HEALPix resolution (:func:`pixel_window`), Legendre transforms between a spectrum
and its correlation function (:func:`correlation_from_cl`, :func:`cl_from_correlation`),
the spectrum of the Gaussian field behind a shifted lognormal field
(:func:`lognormal_gaussian_cl`), the spectrum of the square of a Gaussian field
(:func:`squared_field_cl`), and Gaussian harmonic coefficients drawn from a seeded
generator (:func:`gaussian_alm`).
"""

from __future__ import annotations

import functools
import importlib.resources
import json
from dataclasses import dataclass, field
from typing import Any

import healpy as hp
import numpy as np
import scipy.special

from ..graphs.checks import check_nside
from ..openmp import single_threaded_openmp

__all__ = [
    "Spectra",
    "beam_window",
    "cl_from_correlation",
    "correlation_from_cl",
    "gaussian_alm",
    "gaussian_map",
    "legendre_nodes",
    "load_spectra",
    "lognormal_gaussian_cl",
    "pixel_window",
    "product_field_cl",
    "squared_field_cl",
]

#: Name of the resource file inside ``deepsphere_pyg.data.resources``.
SPECTRA_FILE = "spectra.npz"

#: Largest nside whose band limit 3 nside - 1 the shipped spectra cover.
MAX_NSIDE = 1024


@dataclass(frozen=True, eq=False)
class Spectra:
    r"""The shipped spectra (module docstring).

    Attributes:
        ell: ``[L + 1]`` multipoles :math:`0 \dots L`, :math:`L = 3072`.
        kappa_cl: ``[M, L + 1]`` convergence spectra of the models.
        kappa_models: ``[M, 2]`` :math:`(\Omega_m, \sigma_8)` of each model.
        kappa_shift: ``[M]`` lognormal shifts.
        cmb_tt: ``[L + 1]`` CMB temperature spectrum in :math:`\mu K^2`.
        metadata: parameters, CAMB version and method (decoded JSON).
    """

    ell: np.ndarray
    kappa_cl: np.ndarray
    kappa_models: np.ndarray
    kappa_shift: np.ndarray
    cmb_tt: np.ndarray
    metadata: dict[str, Any] = field(repr=False)

    @property
    def lmax(self) -> int:
        """Largest multipole stored."""
        return int(self.ell[-1])


def _read_only(array: np.ndarray) -> np.ndarray:
    out = np.asarray(array, dtype=np.float64)
    out.flags.writeable = False
    return out


@functools.lru_cache(maxsize=1)
def load_spectra() -> Spectra:
    """The shipped spectra, read once per process.

    Returns:
        A :class:`Spectra` with float64 read-only arrays.

    Raises:
        FileNotFoundError: the resource file is missing from the installation (the
            package data must include ``deepsphere_pyg/data/resources/*.npz``).
    """
    resource = importlib.resources.files("deepsphere_pyg.data") / "resources" / SPECTRA_FILE
    if not resource.is_file():
        raise FileNotFoundError(
            f"{SPECTRA_FILE} is missing from deepsphere_pyg/data/resources; reinstall the "
            "package with its package data, or regenerate it with scripts/make_spectra.py")
    with resource.open("rb") as stream, np.load(stream, allow_pickle=False) as data:
        ell = np.asarray(data["ell"], dtype=np.int64)
        ell.flags.writeable = False
        return Spectra(
            ell=ell,
            kappa_cl=_read_only(data["kappa_cl"]),
            kappa_models=_read_only(data["kappa_models"]),
            kappa_shift=_read_only(data["kappa_shift"]),
            cmb_tt=_read_only(data["cmb_tt"]),
            metadata=json.loads(str(data["metadata"])),
        )


# ------------------------------------------------------------------ spectrum tools
def pixel_window(nside: int) -> np.ndarray:
    r"""Smoothing window :math:`b_\ell` of maps at ``nside``, ``[3 nside]``.

    A Gaussian beam whose full width at half maximum is the pixel size
    :math:`\theta_\mathrm{pix} = \sqrt{4\pi / (12 n_\mathrm{side}^2)}`,
    :math:`b_\ell = \exp(-\ell(\ell + 1)\sigma^2 / 2)`,
    :math:`\sigma = \theta_\mathrm{pix} / \sqrt{8 \ln 2}`, for
    :math:`\ell \le 3 n_\mathrm{side} - 1` (the band limit of the generated maps). It damps
    the spectrum to :math:`b_\ell^2 \approx 0.18` at the band limit, which keeps the
    truncation ringing of band-limited maps small.
    """
    lmax = 3 * int(nside) - 1
    return hp.gauss_beam(hp.nside2resol(int(nside)), lmax=lmax)


def beam_window(fwhm_arcmin: float, lmax: int) -> np.ndarray:
    r"""Gaussian beam :math:`b_\ell = e^{-\ell(\ell+1)\sigma^2/2}` of full width at half
    maximum ``fwhm_arcmin``, :math:`\sigma = \mathrm{FWHM} / \sqrt{8 \ln 2}`, ``[lmax + 1]``."""
    return hp.gauss_beam(np.radians(float(fwhm_arcmin) / 60.0), lmax=int(lmax))


def target_cl(cl: np.ndarray, nside: int, smoothing: float | None = None) -> np.ndarray:
    r"""Spectrum of the generated maps at ``nside``: :math:`C_\ell b_\ell^2`, ``[..., 3 nside]``.

    ``cl`` ``[..., L + 1]`` (a shipped spectrum) is cut at the band limit
    :math:`3 n_\mathrm{side} - 1` and smoothed by :func:`pixel_window` (``smoothing=None``)
    or by a Gaussian beam of ``smoothing`` arcmin FWHM (:func:`beam_window`); ``nside`` is
    checked (a power of two <= :data:`MAX_NSIDE`).
    """
    nside = check_spectra_nside(nside)
    window = pixel_window(nside) if smoothing is None else beam_window(smoothing, 3 * nside - 1)
    return cl[..., : 3 * nside] * window**2


@functools.lru_cache(maxsize=8)
def legendre_nodes(num: int) -> tuple[np.ndarray, np.ndarray]:
    r"""Gauss-Legendre nodes :math:`x_i` and weights :math:`w_i` on :math:`[-1, 1]` (cached).

    ``num`` nodes integrate polynomials of degree up to :math:`2\,\mathrm{num} - 1` exactly.
    Returns read-only arrays ``([num], [num])``.
    """
    nodes, weights = scipy.special.roots_legendre(int(num))
    nodes.flags.writeable = False
    weights.flags.writeable = False
    return nodes, weights


def correlation_from_cl(cl: np.ndarray, x: np.ndarray) -> np.ndarray:
    r"""Correlation function of an isotropic field with spectrum ``cl``, at ``x = cos theta``.

    .. math:: \xi(x) = \sum_{\ell=0}^{L} \frac{2\ell + 1}{4\pi} C_\ell P_\ell(x)

    (Clenshaw summation, :func:`numpy.polynomial.legendre.legval`).

    Args:
        cl: ``[L + 1]`` spectrum.
        x: cosines of the angular separation, any shape, in :math:`[-1, 1]`.

    Returns:
        :math:`\xi(x)`, shape of ``x``.
    """
    cl = np.asarray(cl, dtype=np.float64)
    ell = np.arange(cl.size)
    return np.polynomial.legendre.legval(np.asarray(x, dtype=np.float64),
                                         (2 * ell + 1) / (4 * np.pi) * cl)


def cl_from_correlation(xi: np.ndarray, lmax: int, nodes: np.ndarray | None = None,
                        weights: np.ndarray | None = None) -> np.ndarray:
    r"""Spectrum of a correlation function sampled at Gauss-Legendre nodes.

    .. math:: C_\ell = 2\pi \int_{-1}^{1} \xi(x) P_\ell(x)\, dx
              \approx 2\pi \sum_i w_i\, \xi(x_i)\, P_\ell(x_i)

    The Legendre polynomials are built by the three-term recurrence (stable for
    :math:`|x| \le 1`).

    Args:
        xi: ``[num]`` values :math:`\xi(x_i)` at the nodes of :func:`legendre_nodes`.
        lmax: largest multipole returned.
        nodes, weights: the quadrature (default: ``legendre_nodes(len(xi))``).

    Returns:
        ``[lmax + 1]`` spectrum.
    """
    xi = np.asarray(xi, dtype=np.float64)
    if nodes is None or weights is None:
        nodes, weights = legendre_nodes(xi.size)
    weighted = 2 * np.pi * weights * xi
    out = np.empty(int(lmax) + 1)
    previous, current = np.ones_like(nodes), np.array(nodes, dtype=np.float64)
    out[0] = weighted.sum()
    for ell in range(1, int(lmax) + 1):
        out[ell] = weighted @ current
        previous, current = current, ((2 * ell + 1) * nodes * current - ell * previous) / (ell + 1)
    return out


def _quadrature_size(lmax: int) -> int:
    """Nodes for transforms of spectra up to ``lmax`` (see :func:`lognormal_gaussian_cl`)."""
    return 2 * (int(lmax) + 1)


def lognormal_gaussian_cl(cl: np.ndarray, shift: float) -> tuple[np.ndarray, int]:
    r"""Spectrum of the Gaussian field :math:`g` of a shifted lognormal field with spectrum ``cl``.

    The shifted lognormal field
    :math:`\kappa = \lambda\,(e^{g - \sigma_g^2/2} - 1)` (zero mean, minimum
    :math:`-\lambda`) has correlation function
    :math:`\xi_\kappa = \lambda^2 (e^{\xi_g} - 1)`, so the Gaussian field needs

    .. math:: \xi_g(x) = \ln\!\left(1 + \xi_\kappa(x) / \lambda^2\right), \qquad
              C^g_\ell = 2\pi \int_{-1}^{1} \xi_g(x) P_\ell(x)\, dx,

    computed with :func:`correlation_from_cl` and :func:`cl_from_correlation` on
    :math:`2 (L + 1)` Gauss-Legendre nodes. A target spectrum that no lognormal field can
    have gives negative :math:`C^g_\ell`; they are set to zero and counted.

    Args:
        cl: ``[L + 1]`` target spectrum of :math:`\kappa`.
        shift: :math:`\lambda > 0`.

    Returns:
        ``(cl_gaussian [L + 1], number of negative multipoles set to zero)``.

    Raises:
        ValueError: :math:`1 + \xi_\kappa / \lambda^2 \le 0` somewhere (the shift is too
            small for the target's negative correlations).
    """
    cl = np.asarray(cl, dtype=np.float64)
    lmax = cl.size - 1
    nodes, weights = legendre_nodes(_quadrature_size(lmax))
    argument = 1.0 + correlation_from_cl(cl, nodes) / float(shift) ** 2
    if np.any(argument <= 0):
        raise ValueError(
            f"shift={shift} is too small for this spectrum: 1 + xi / shift^2 reaches "
            f"{argument.min():.3g} <= 0; use a larger lognormal shift")
    gaussian = cl_from_correlation(np.log(argument), lmax, nodes, weights)
    negative = gaussian < 0
    gaussian[negative] = 0.0
    return gaussian, int(negative.sum())


def squared_field_cl(cl: np.ndarray, lmax: int | None = None) -> np.ndarray:
    r"""Spectrum of :math:`g^2 - \langle g^2 \rangle`, :math:`g` Gaussian with spectrum ``cl``.

    By Wick's theorem :math:`\langle (g_1^2 - \sigma^2)(g_2^2 - \sigma^2) \rangle
    = 2 \xi(x)^2`, so :math:`C^{(2)}_\ell = 2\pi \int 2\xi(x)^2 P_\ell(x)\, dx` (exact with
    :math:`\lceil (3L + 1)/2 \rceil` nodes; :math:`2(L + 1)` are used).

    Args:
        cl: ``[L + 1]`` spectrum of :math:`g`.
        lmax: largest multipole returned (default :math:`L`).

    Returns:
        ``[lmax + 1]`` spectrum.
    """
    cl = np.asarray(cl, dtype=np.float64)
    lmax = cl.size - 1 if lmax is None else int(lmax)
    nodes, weights = legendre_nodes(_quadrature_size(max(lmax, cl.size - 1)))
    xi = correlation_from_cl(cl, nodes)
    return cl_from_correlation(2.0 * xi**2, lmax, nodes, weights)


def product_field_cl(cl_a: np.ndarray, cl_b: np.ndarray, lmax: int) -> np.ndarray:
    r"""Spectrum of :math:`a\,b`, :math:`a, b` independent isotropic fields (spectra given).

    The correlation function of the product is :math:`\xi_a(x)\,\xi_b(x)`, so
    :math:`C^{ab}_\ell = 2\pi \int \xi_a \xi_b P_\ell\, dx` (Gauss-Legendre, exact for
    :math:`\ell_\max \le 2(L + 1) - L_a - L_b - 1`).

    Args:
        cl_a, cl_b: ``[L_a + 1]``, ``[L_b + 1]`` spectra (``C_0`` included).
        lmax: largest multipole returned.

    Returns:
        ``[lmax + 1]`` spectrum.
    """
    size = max(int(lmax), len(cl_a) - 1, len(cl_b) - 1) + len(cl_b)
    nodes, weights = legendre_nodes(_quadrature_size(size))
    xi = correlation_from_cl(cl_a, nodes) * correlation_from_cl(cl_b, nodes)
    return cl_from_correlation(xi, lmax, nodes, weights)


def gaussian_alm(cl: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    r"""Harmonic coefficients of a real isotropic Gaussian field with spectrum ``cl``.

    :math:`a_{\ell 0} \sim \mathcal N(0, C_\ell)`, :math:`a_{\ell m} \sim
    \mathcal{CN}(0, C_\ell)` (real and imaginary parts of variance :math:`C_\ell / 2`) for
    :math:`m > 0`, in healpy's layout with :math:`m_\max = \ell_\max = L` (the block of
    order :math:`m` holds :math:`\ell = m \dots L`). Unlike :func:`healpy.synalm`, draws
    only from ``rng`` (not numpy's global state).

    Args:
        cl: ``[L + 1]`` non-negative spectrum.
        rng: the random generator.

    Returns:
        ``[(L + 1)(L + 2) / 2]`` complex128 coefficients.
    """
    cl = np.asarray(cl, dtype=np.float64)
    lmax = cl.size - 1
    size = (lmax + 1) * (lmax + 2) // 2
    alm = rng.standard_normal(2 * size).view(np.complex128)
    scale = np.sqrt(cl / 2.0)
    start = 0
    for m in range(lmax + 1):
        stop = start + lmax + 1 - m
        alm[start:stop] *= scale[m:]
        start = stop
    alm[: lmax + 1] = alm[: lmax + 1].real * np.sqrt(2.0)  # m = 0: real, variance C_l
    return alm


def gaussian_map(cl: np.ndarray, nside: int, rng: np.random.Generator) -> np.ndarray:
    r"""RING map ``[12 nside^2]`` (float64) of a Gaussian field with spectrum ``cl``.

    :func:`gaussian_alm` then :func:`healpy.alm2map` with :math:`\ell_\max = m_\max =
    L` (``len(cl) - 1``), no pixel window. healpy runs single-threaded (its OpenMP threads
    slow small transforms down on busy machines; data loader workers parallelise instead).
    """
    lmax = len(cl) - 1
    alm = gaussian_alm(cl, rng)
    with single_threaded_openmp():
        return hp.alm2map(alm, int(nside), lmax=lmax, mmax=lmax)


def check_spectra_nside(nside: object) -> int:
    """``nside`` as an int: a power of two covered by the shipped spectra."""
    nside = check_nside(nside)
    if nside > MAX_NSIDE:
        raise ValueError(
            f"nside must be <= {MAX_NSIDE}: the shipped spectra stop at ell = 3 * "
            f"{MAX_NSIDE}, and maps at nside={nside} need ell up to {3 * nside - 1}")
    return nside


def check_noise(noise: object) -> float:
    """``noise`` as a finite float >= 0 (relative noise level)."""
    if isinstance(noise, bool) or not isinstance(noise, (int, float, np.floating, np.integer)):
        raise TypeError(f"noise must be a number >= 0 (relative noise level), got {noise!r}")
    value = float(noise)
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"noise must be a finite number >= 0 (0 = noiseless), got {noise!r}")
    return value
