r"""Scale-discretised wavelets on the sphere (Leistedt, McEwen et al. 2013; used by the
spherical scattering network of McEwen, Wallis & Mavor-Parker, ICLR 2022).

All kernels are functions of the spherical-harmonic degree :math:`\ell` (axisymmetric
filters), evaluated on float arrays so that graph backends can use them at the
non-integer degrees that Laplacian eigenvalues map to.

With the dilation factor :math:`\lambda > 1` (2 by default):

.. math::

    s(t) = \exp\!\left(-\frac{1}{1 - t^2}\right) \ (|t| < 1), \qquad
    s_\lambda(t) = s\!\left(\frac{2\lambda}{\lambda - 1}\left(t - \frac{1}{\lambda}\right)
    - 1\right),

    k_\lambda(t) = \frac{\int_t^1 s_\lambda^2(t') / t'\, dt'}
                        {\int_{1/\lambda}^1 s_\lambda^2(t') / t'\, dt'}
    \quad (1 \text{ for } t \le 1/\lambda,\ 0 \text{ for } t \ge 1),

    \Phi_{J_0}(\ell) = \sqrt{k_\lambda(\ell / \lambda^{J_0})}, \qquad
    \kappa_j(\ell) = \sqrt{k_\lambda(\ell / \lambda^{j+1}) - k_\lambda(\ell / \lambda^j)}.

:math:`\kappa_j` is supported on :math:`\lambda^{j-1} < \ell < \lambda^{j+1}` and
:math:`\Phi_{J_0}` on :math:`\ell < \lambda^{J_0}` (equal to 1 for
:math:`\ell \le \lambda^{J_0 - 1}`). The sum telescopes:

.. math::

    \Phi_{J_0}(\ell)^2 + \sum_{j=J_0}^{J} \kappa_j(\ell)^2 = k_\lambda(\ell/\lambda^{J+1}) = 1
    \quad \text{for } \ell \le \lambda^J,

so with :math:`J = \lceil \log_\lambda L \rceil` the bank is a tight frame for signals
band-limited to :math:`\ell < L`: filtering preserves the energy exactly.
"""

from __future__ import annotations

import functools
import math
import numbers
from dataclasses import dataclass
from functools import cached_property

import numpy as np

__all__ = [
    "FilterBank",
    "ScatteringPath",
    "k_lambda",
    "scaling_kernel",
    "scattering_paths",
    "wavelet_kernel",
]

#: Gauss-Legendre nodes used for the integral of :math:`k_\lambda` (the integrand is
#: smooth, so 200 nodes give ~1e-14 accuracy).
_QUADRATURE_NODES = 200


def _bump_squared_over_t(t: np.ndarray, lam: float) -> np.ndarray:
    r""":math:`s_\lambda(t)^2 / t`, zero outside :math:`(1/\lambda, 1)`."""
    u = 2.0 * lam / (lam - 1.0) * (t - 1.0 / lam) - 1.0
    out = np.zeros_like(t)
    inside = np.abs(u) < 1.0
    out[inside] = np.exp(-2.0 / (1.0 - u[inside] ** 2)) / t[inside]
    return out


@functools.cache
def _quadrature() -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes and weights on [-1, 1] (computed once)."""
    return np.polynomial.legendre.leggauss(_QUADRATURE_NODES)


def _integral_to_one(t: np.ndarray, lam: float) -> np.ndarray:
    r""":math:`\int_t^1 s_\lambda^2(t')/t'\,dt'` for ``t`` in :math:`[1/\lambda, 1]`."""
    nodes, weights = _quadrature()
    half = (1.0 - t)[:, None] / 2.0
    points = t[:, None] + half * (nodes[None, :] + 1.0)
    return (half * weights[None, :] * _bump_squared_over_t(points, lam)).sum(axis=1)


def _check_lambda(lam: object) -> float:
    if isinstance(lam, bool) or not isinstance(lam, numbers.Real) or not lam > 1:
        raise ValueError(f"lam (the dilation factor) must be a real number > 1, got {lam!r}")
    return float(lam)


def k_lambda(t: np.ndarray | float, lam: float = 2.0) -> np.ndarray:
    r""":math:`k_\lambda(t)`: 1 for :math:`t \le 1/\lambda`, smooth decrease to 0 at
    :math:`t = 1` (module docstring). Any shape; float64 out."""
    lam = _check_lambda(lam)
    t = np.asarray(t, dtype=np.float64)
    flat = t.reshape(-1)
    out = np.where(flat <= 1.0 / lam, 1.0, 0.0)
    between = (flat > 1.0 / lam) & (flat < 1.0)
    if between.any():
        norm = _integral_to_one(np.array([1.0 / lam]), lam)[0]
        out[between] = _integral_to_one(flat[between], lam) / norm
    return out.reshape(t.shape)


def scaling_kernel(ell: np.ndarray | float, J0: int, lam: float = 2.0) -> np.ndarray:
    r"""Scaling function :math:`\Phi_{J_0}(\ell) = \sqrt{k_\lambda(\ell/\lambda^{J_0})}`,
    band-limited to :math:`\ell < \lambda^{J_0}`."""
    ell = np.asarray(ell, dtype=np.float64)
    return np.sqrt(k_lambda(ell / lam**J0, lam))


def wavelet_kernel(ell: np.ndarray | float, j: int, lam: float = 2.0) -> np.ndarray:
    r"""Wavelet :math:`\kappa_j(\ell) = \sqrt{k_\lambda(\ell/\lambda^{j+1}) -
    k_\lambda(\ell/\lambda^j)}`, supported on :math:`\lambda^{j-1} < \ell < \lambda^{j+1}`."""
    ell = np.asarray(ell, dtype=np.float64)
    difference = k_lambda(ell / lam ** (j + 1), lam) - k_lambda(ell / lam**j, lam)
    return np.sqrt(np.clip(difference, 0.0, None))


@dataclass(frozen=True)
class ScatteringPath:
    """One scattering coefficient: ``order`` 0 (``f * Phi``), 1 (``|f * psi_j1| * Phi``) or
    2 (``||f * psi_j1| * psi_j2| * Phi``); ``scales`` = ``(j1,)`` or ``(j1, j2)``."""

    order: int
    scales: tuple[int, ...]


def scattering_paths(J0: int, J: int, depth: int) -> list[ScatteringPath]:
    r"""The scattering paths up to ``depth``, in output order.

    Order 0 first, then order 1 by increasing :math:`j_1`, then order 2 by increasing
    :math:`j_1` and, within, increasing :math:`j_2`. Only :math:`j_2 < j_1` is kept (the
    second wavelet at a lower degree than the first): the modulus moves energy towards
    low degrees, so :math:`j_2 \ge j_1` carries little energy. With
    :math:`n = J - J_0 + 1` wavelets there are :math:`1 + n + n(n-1)/2` paths at depth 2.
    """
    scales = range(J0, J + 1)
    paths = [ScatteringPath(0, ())]
    frontier: list[tuple[int, ...]] = [()]
    for order in range(1, depth + 1):
        nxt = []
        for prefix in frontier:
            for j in scales:
                if prefix and j >= prefix[-1]:
                    continue
                nxt.append((*prefix, j))
        nxt.sort()
        paths.extend(ScatteringPath(order, p) for p in nxt)
        frontier = nxt
    return paths


@dataclass(frozen=True)
class FilterBank:
    r"""Scaling function and wavelets :math:`\Phi_{J_0}, \kappa_{J_0}, \dots, \kappa_J`.

    Args:
        L: band limit of the signals (degrees :math:`\ell < L`).
        J0: scale of the scaling function (:math:`\Phi` supported on
            :math:`\ell < \lambda^{J_0}`), ``0 <= J0 < J``.
        J: finest wavelet scale; default :math:`\lceil \log_\lambda L \rceil`, the smallest
            value for which the bank is a tight frame up to ``L``.
        lam: dilation factor :math:`\lambda > 1`.
    """

    L: int
    J0: int
    J: int | None = None
    lam: float = 2.0

    def __post_init__(self) -> None:
        if isinstance(self.L, bool) or not isinstance(self.L, numbers.Integral) or self.L < 2:
            raise ValueError(f"L (band limit) must be an integer >= 2, got {self.L!r}")
        lam = _check_lambda(self.lam)
        object.__setattr__(self, "lam", lam)
        finest = math.ceil(math.log(self.L) / math.log(lam) - 1e-12)
        J = finest if self.J is None else self.J
        for name, value in (("J0", self.J0), ("J", J)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
        if not self.J0 < J:
            raise ValueError(
                f"J0 must be smaller than J (J0={self.J0}, J={J}); the scaling function "
                f"then covers degrees below {lam:g}^J0 and the wavelets the rest up to L")
        if J < finest:
            raise ValueError(
                f"J={J} leaves degrees up to L={self.L} uncovered (need J >= "
                f"ceil(log_lambda L) = {finest} for a tight frame)")
        object.__setattr__(self, "J", int(J))
        object.__setattr__(self, "J0", int(self.J0))

    @cached_property
    def scales(self) -> list[int]:
        """Wavelet scales ``J0, ..., J``."""
        assert self.J is not None
        return list(range(self.J0, self.J + 1))

    def wavelet_band(self, j: int) -> tuple[float, float]:
        r"""Support :math:`(\lambda^{j-1}, \lambda^{j+1})` of :math:`\kappa_j`."""
        return self.lam ** (j - 1), self.lam ** (j + 1)

    @property
    def scaling_band_limit(self) -> float:
        r""":math:`\lambda^{J_0}`: :math:`\Phi` vanishes from this degree on."""
        return self.lam**self.J0

    def scaling(self, ell: np.ndarray | float) -> np.ndarray:
        r""":math:`\Phi_{J_0}(\ell)`."""
        return scaling_kernel(ell, self.J0, self.lam)

    def wavelet(self, ell: np.ndarray | float, j: int) -> np.ndarray:
        r""":math:`\kappa_j(\ell)` for ``j`` in :attr:`scales`."""
        if j not in self.scales:
            raise ValueError(f"j must be one of the scales {self.scales}, got {j!r}")
        return wavelet_kernel(ell, j, self.lam)

    def kernels(self, ell: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        r"""``(phi [len(ell)], psi [len(scales), len(ell)])`` on degrees ``ell``."""
        ell = np.asarray(ell, dtype=np.float64)
        return self.scaling(ell), np.stack([self.wavelet(ell, j) for j in self.scales])

    def paths(self, depth: int) -> list[ScatteringPath]:
        """:func:`scattering_paths` of this bank."""
        assert self.J is not None
        return scattering_paths(self.J0, self.J, depth)
