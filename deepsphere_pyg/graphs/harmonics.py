r"""Spherical harmonics at arbitrary points: real design matrices and least-squares fits.

A real band-limited field is written with healpy's complex coefficients
:math:`a_{\ell m}` (:math:`m \ge 0`, :func:`healpy.Alm.getidx` order),

.. math::

    f(x) = \sum_{\ell \le \ell_\max} \Big( a_{\ell 0} Y_{\ell 0}(x)
           + 2 \sum_{m = 1}^{\ell} \operatorname{Re}\big(a_{\ell m} Y_{\ell m}(x)\big) \Big),

and as a real vector :math:`\theta` of :math:`(\ell_\max + 1)^2` parameters
(:math:`\operatorname{Re} a_{\ell m}` for all :math:`m \ge 0`, then
:math:`\operatorname{Im} a_{\ell m}` for :math:`m > 0`), so that :math:`f = B \theta` with a
real design matrix :math:`B` ``[N, (lmax+1)^2]``. This is what lets samplings other than
HEALPix (lat-lon grids, icosahedral vertices, station networks) use healpy's exact Wigner
rotations (:func:`healpy.rotate_alm`) on fitted coefficients.
"""

from __future__ import annotations

import healpy as hp
import numpy as np
import scipy.linalg
import scipy.special

#: Points per block when evaluating the Legendre functions (bounds the temporaries).
_BLOCK_POINTS = 1024


def num_real_coefficients(lmax: int) -> int:
    """Length :math:`(\\ell_\\max + 1)^2` of the real parameter vector."""
    return (lmax + 1) ** 2


def design_matrix(pos: np.ndarray, lmax: int) -> np.ndarray:
    r"""Real design matrix :math:`B` ``[N, (lmax+1)^2]`` (float64) at unit vectors ``pos``.

    Columns: for every healpy index ``i`` (degree :math:`\ell`, order :math:`m`) the
    coefficient of :math:`\operatorname{Re} a_{\ell m}` (:math:`Y_{\ell 0}` for
    :math:`m = 0`, :math:`2 \operatorname{Re} Y_{\ell m}` otherwise), then for every
    :math:`m > 0` the coefficient of :math:`\operatorname{Im} a_{\ell m}`
    (:math:`-2 \operatorname{Im} Y_{\ell m}`).
    """
    pos = np.asarray(pos, dtype=np.float64)
    theta = np.arccos(np.clip(pos[:, 2], -1.0, 1.0))
    phi = np.arctan2(pos[:, 1], pos[:, 0])
    ell, m = hp.Alm.getlm(lmax)
    positive = m > 0
    num_alm = ell.size
    out = np.empty((pos.shape[0], num_real_coefficients(lmax)))
    for start in range(0, pos.shape[0], _BLOCK_POINTS):
        stop = min(start + _BLOCK_POINTS, pos.shape[0])
        # [lmax + 1, 2 lmax + 1, n]: normalised P_lm(cos theta), orders -lmax..lmax.
        legendre = scipy.special.sph_legendre_p_all(lmax, lmax, theta[start:stop])[0]
        values = legendre[ell, m]  # [num_alm, n], orders m >= 0
        angle = m[:, None] * phi[None, start:stop]
        scale = np.where(positive, 2.0, 1.0)[:, None]
        out[start:stop, :num_alm] = (scale * values * np.cos(angle)).T
        out[start:stop, num_alm:] = (-2.0 * values[positive] * np.sin(angle[positive])).T
    return out


def alm_to_real(alm: np.ndarray, lmax: int) -> np.ndarray:
    """healpy complex coefficients ``[..., num_alm]`` -> real parameters ``[..., (lmax+1)^2]``."""
    _, m = hp.Alm.getlm(lmax)
    return np.concatenate([alm.real, alm.imag[..., m > 0]], axis=-1)


def real_to_alm(theta: np.ndarray, lmax: int) -> np.ndarray:
    """Real parameters ``[..., (lmax+1)^2]`` -> healpy complex coefficients ``[..., num_alm]``."""
    _, m = hp.Alm.getlm(lmax)
    num_alm = m.size
    alm = theta[..., :num_alm].astype(np.complex128)
    alm[..., m > 0] += 1j * theta[..., num_alm:]
    return alm


class LeastSquaresAnalysis:
    r"""Least-squares harmonic analysis on a fixed point set: :math:`\hat\theta =
    \arg\min \lVert B\theta - f \rVert`, via one thin QR factorisation of :math:`B`.

    Args:
        pos: ``[N, 3]`` unit vectors.
        lmax: band limit; needs :math:`N \ge (\ell_\max+1)^2` and a well-conditioned
            :math:`B` (points spread enough to resolve degree :math:`\ell_\max`).
        max_condition: raise when the condition number of :math:`B` exceeds it.

    Raises:
        ValueError: too few points, or an ill-conditioned fit (the points cannot
            resolve ``lmax``; lower it).
    """

    def __init__(self, pos: np.ndarray, lmax: int, max_condition: float = 1e6) -> None:
        self.lmax = int(lmax)
        self.basis = design_matrix(pos, self.lmax)
        num_points, num_params = self.basis.shape
        if num_points < num_params:
            raise ValueError(
                f"lmax={lmax} needs at least {num_params} points for a least-squares fit, "
                f"got {num_points}; lower lmax")
        self._q, self._r = scipy.linalg.qr(self.basis, mode="economic")
        diagonal = np.abs(np.diag(self._r))
        condition = float(diagonal.max() / max(diagonal.min(), 1e-300))
        if condition > max_condition:
            raise ValueError(
                f"the points cannot resolve degree lmax={lmax} (condition number of the "
                f"harmonic fit ~{condition:.2g}); lower lmax")

    def fit(self, values: np.ndarray) -> np.ndarray:
        """Coefficients ``[(lmax+1)^2, B]`` of maps ``values [N, B]`` (or ``[N]``)."""
        return scipy.linalg.solve_triangular(self._r, self._q.T @ values)

    def synthesis(self, theta: np.ndarray) -> np.ndarray:
        """Maps ``[N, B]`` at the analysis points of coefficients ``[(lmax+1)^2, B]``."""
        return self.basis @ theta
