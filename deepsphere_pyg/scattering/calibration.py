r"""Which spherical-harmonic degree :math:`\ell` an eigenvalue :math:`\mu` of a graph
Laplacian stands for, and how much averaging children attenuates a degree.

The scattering kernels are functions of the degree :math:`\ell`; a graph applies them as
functions :math:`g(\mu) = \kappa(\ell(\mu))` of its Laplacian. The map :math:`\ell(\mu)`
is calibrated on each graph with the Rayleigh quotients of random fields of one degree.

**Expected Rayleigh quotient.** A statistically isotropic real field of degree
:math:`\ell` only (:func:`~deepsphere_pyg.graphs.equivariance.pure_degree_alm`) has the
covariance :math:`\mathbb E[f(x) f(y)] = \frac{2\ell + 1}{4\pi} P_\ell(x \cdot y)` (addition
theorem), so for a Laplacian :math:`L` on nodes :math:`x_1, \dots, x_N`

.. math::

    \mu(\ell) = \frac{\mathbb E[f^\top L f]}{\mathbb E[f^\top f]}
    = \frac{1}{N} \sum_{i, j} L_{ij} P_\ell(x_i \cdot x_j)
    = \frac{1}{N}\Big(\mathbf 1^\top L \mathbf 1
      + \sum_{i \ne j} A_{ij} \big(1 - P_\ell(x_i \cdot x_j)\big)\Big),
    \qquad A_{ij} = -L_{ij},

the quotient that random fields sampled at the nodes give on average (their spread is
under 0.5 % at nside 32, and :math:`f^\top f` concentrates as :math:`N` grows). It needs no
synthesis at all, only :math:`P_\ell` on the edges, for all degrees at once by the
three-term recurrence (written for :math:`1 - P_\ell`, which keeps full relative precision
at the small angles of fine graphs). It holds for any sampling and for partial masks (the
quotient over the kept nodes). Graphs with more than :data:`MAX_PAIRS` edges use a
uniform random sample of edges (fixed seed; measured at nside 128, k = 8: relative
deviation from the sum over all edges below 2e-4), the :math:`\mathbf 1^\top L \mathbf 1`
term (0 for the combinatorial Laplacian) is summed exactly. The pairs are merged into
:data:`BINS` bins of their angle, so the recurrence costs the same for any graph. For the
random-walk Laplacian :math:`D^{-1}(D - W)`, self-adjoint for
:math:`\langle f, g\rangle_D = f^\top D g`, the denominator is
:math:`\mathbb E[f^\top D f]`. For the mass Laplacian :math:`\frac1c M^{-1} L_m`
(``normalization="mass"``, :mod:`~deepsphere_pyg.graphs.operator`), self-adjoint for
:math:`\langle f, g\rangle_M = f^\top M g`, the quotient is the quadrature one,

.. math::

    \mu(\ell) = \frac{\mathbb E[f^\top L_m f]}{c\, \mathbb E[f^\top M f]}
    = \frac{\sum_{i \ne j} m_i m_j w_{ij} \big(1 - P_\ell(x_i \cdot x_j)\big)}
      {c \sum_i m_i},

the same edge sum with the weights :math:`m_i m_j w_{ij}` (node masses :math:`m_i` of
:func:`~deepsphere_pyg.graphs.node_weight.node_weight`, :math:`c` of
:func:`~deepsphere_pyg.graphs.laplacian.mass_scale`): about :math:`\ell(\ell + 1)` at
low degrees whatever the node density, where the node-count quotients of the other
Laplacians are dominated by the densest regions (the poles of a lat-lon grid).

Measured (combinatorial Laplacian, v2 weights, HEALPix nside 32): :math:`\mu(\ell)` equals
:math:`c\,\ell(\ell+1)` (:math:`c = \mu(1)/2`) within 5 % up to :math:`\ell \approx 0.75\,
n_\mathrm{side}` (k = 8) or :math:`0.5\, n_\mathrm{side}` (k = 20), then bends below it:
ratio 0.91 (k = 8) / 0.84 (k = 20) at :math:`\ell = n_\mathrm{side}`, 0.69 / 0.53 at
:math:`2 n_\mathrm{side}`, 0.45 / 0.30 at :math:`3 n_\mathrm{side}`; it stays increasing up to
:math:`3 n_\mathrm{side}`.

**Interpolation.** :class:`DegreeMap` interpolates :math:`s = \ell(\ell + 1)` as a function of
:math:`\mu` with a monotone cubic (PCHIP) through the calibrated degrees
:math:`0, 1, \dots, \ell_c` (:math:`\ell_c = \lceil 3 n_\mathrm{eff} \rceil`, cut where
:math:`\mu` stops increasing); :math:`s` is nearly linear in :math:`\mu` at low degrees, which
keeps the interpolant accurate there. Below :math:`\mu(0)` the degree is 0. Above the
last calibrated point :math:`(\mu_c, s_c)` the map continues as :math:`s = s_c\, \mu / \mu_c`
(the degree grows as :math:`\sqrt\mu`, the rule of :math:`c\,\ell(\ell+1)`): the graph's top
eigenvalues belong to pixel-scale patterns with no degree of their own, and this keeps
:math:`\ell(\mu)` continuous and increasing there. (Continuing with the interpolant's
end slope instead, which is steeper because of the bend, compresses the kernels of the
top wavelets into the highest eigenvalues: their Chebyshev error on a white map doubled
at nside 8.)

**Pooling gain.** Averaging the children of each parent (:func:`~deepsphere_pyg.nn.
sphere_pool.sphere_pool`, ``"avg"``) attenuates degree :math:`\ell` on average by

.. math::

    \gamma(\ell) = \frac{\mathbb E[\bar f_p\, f(y_p)]}{\mathbb E[f(y_p)^2]}
    = \frac{1}{N'} \sum_p \frac{1}{|\mathcal C(p)|} \sum_{i \in \mathcal C(p)}
      P_\ell(x_i \cdot y_p)

(:math:`y_p` the parent's position); :func:`pooling_gain` computes it the same way (on
HEALPix 0.964 at :math:`\ell = n'_\mathrm{side}` of the parents, 0.863 at
:math:`2 n'_\mathrm{side}`, 0.709 at :math:`3 n'_\mathrm{side}`), so a low-pass applied
before the averaging can divide it out.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np
import torch
from scipy.interpolate import PchipInterpolator

from ..graphs.laplacian import mass_key, mass_scale
from ..graphs.node_weight import node_weight
from ..graphs.operator import check_normalization
from ..graphs.sphere_graph import SphereGraph
from .resolution import effective_nside

__all__ = [
    "BINS",
    "CALIBRATION_FACTOR",
    "MAX_PAIRS",
    "DegreeMap",
    "degree_calibration",
    "expected_rayleigh_quotients",
    "legendre_sums",
    "pooling_gain",
]

#: Calibrated degrees go up to ``CALIBRATION_FACTOR * effective_nside(graph)``.
CALIBRATION_FACTOR = 3.0

#: Largest number of node pairs summed exactly; larger graphs use a random sample.
MAX_PAIRS = 1 << 20

#: The pairs are merged into this many equal bins of their angle (up to the 99.9th
#: percentile; longer pairs are kept apart) before the Legendre recurrence: on k-NN
#: graphs, whose edges are shorter than about :math:`4 / n_\mathrm{side}`,
#: :math:`\ell \Delta\theta < 10^{-2}` within a bin up to :math:`\ell = 3 n_\mathrm{side}`,
#: and the error is of second order in it (relative 2e-8 measured at nside 32, k = 20).
BINS = 4096

def _check_lmax(lmax: object) -> int:
    if isinstance(lmax, bool) or not isinstance(lmax, numbers.Integral) or lmax < 1:
        raise ValueError(f"lmax must be an integer >= 1, got {lmax!r}")
    return int(lmax)


def legendre_sums(one_minus_cos: np.ndarray, weights: np.ndarray, lmax: int) -> np.ndarray:
    r""":math:`\sum_e w_e \big(1 - P_\ell(\cos\theta_e)\big)` for :math:`\ell = 0, \dots,` ``lmax``.

    With :math:`Q_\ell = 1 - P_\ell(x)` and :math:`s = 1 - x`, Bonnet's recurrence reads
    :math:`(\ell + 1) Q_{\ell+1} = (2\ell + 1)\,s + (2\ell + 1)\,x\,Q_\ell - \ell\,Q_{\ell-1}`,
    which stays accurate where :math:`x \to 1` (neighbouring nodes of fine graphs).

    Args:
        one_minus_cos: ``[M]`` values :math:`s_e = 1 - \cos\theta_e` (half the squared
            chord), in :math:`[0, 2]`.
        weights: ``[M]`` weights :math:`w_e`.
        lmax: largest degree.

    Returns:
        ``[lmax + 1]`` float64 sums (the entry for degree 0 is 0).
    """
    lmax = _check_lmax(lmax)
    s = np.asarray(one_minus_cos, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    if s.shape != w.shape or s.ndim != 1:
        raise ValueError(f"one_minus_cos and weights must be 1-D of one length, got "
                         f"{s.shape} and {w.shape}")
    s, w = _binned(s, w)
    x = 1.0 - s
    out = np.zeros(lmax + 1)
    previous, current = np.zeros_like(s), s.copy()
    out[1] = np.sum(current * w)
    scratch = np.empty_like(s)
    for ell in range(1, lmax):
        # next = ((2l+1) (s + x Q_l) - l Q_{l-1}) / (l+1), computed in place.
        np.multiply(x, current, out=scratch)
        scratch += s
        scratch *= (2 * ell + 1) / (ell + 1)
        previous *= -ell / (ell + 1)
        scratch += previous
        previous, current, scratch = current, scratch, previous
        out[ell + 1] = np.sum(current * w)
    return out


def _binned(s: np.ndarray, w: np.ndarray, bins: int = BINS) -> tuple[np.ndarray, np.ndarray]:
    """Pairs merged into ``bins`` equal bins of the angle up to its 99.9th percentile
    (per bin: the summed weight and the weight-averaged :math:`s`), longer pairs kept as
    they are: the recurrence then costs about ``bins`` per degree."""
    if s.size <= bins:
        return s, w
    angle = 2.0 * np.arcsin(np.sqrt(np.clip(s, 0.0, 2.0) / 2.0))
    top = float(np.quantile(angle, 0.999))
    if top == 0.0:
        return s, w
    inside = angle <= top
    index = np.minimum((angle[inside] / top * bins).astype(np.int64), bins - 1)
    total = np.bincount(index, weights=w[inside], minlength=bins)
    mean = np.bincount(index, weights=w[inside] * s[inside], minlength=bins)
    keep = total != 0
    return (np.concatenate([mean[keep] / total[keep], s[~inside]]),
            np.concatenate([total[keep], w[~inside]]))


def _sample(count: int, max_pairs: int, seed: int) -> np.ndarray | None:
    """Indices of ``max_pairs`` uniform draws (with replacement) out of ``count``
    (``None``: all)."""
    if count <= max_pairs:
        return None
    return np.sort(np.random.default_rng(seed).integers(0, count, max_pairs))


def expected_rayleigh_quotients(
    graph: SphereGraph,
    lmax: int,
    normalization: str | None = None,
    *,
    max_pairs: int = MAX_PAIRS,
    seed: int = 0,
) -> np.ndarray:
    r""":math:`\mu(\ell)` for :math:`\ell = 0, \dots,` ``lmax`` (module docstring).

    Args:
        graph: any sphere graph (``pos`` unit vectors, symmetric ``edge_weight``).
        lmax: largest degree.
        normalization: Laplacian: ``None`` (combinatorial), ``"sym"``, ``"rw"`` or
            ``"mass"``. The random-walk Laplacian :math:`D^{-1}(D - W)` is self-adjoint
            for the inner product :math:`\langle f, g\rangle_D = f^\top D g`, so its
            quotient is :math:`\mathbb E[f^\top (D - W) f] / \mathbb E[f^\top D f]`;
            ``"mass"`` uses the graph's node masses and constant :math:`c` (module
            docstring; ``ValueError`` without valid masses).
        max_pairs: edges summed exactly up to this count, else a uniform sample of it.
        seed: seed of that sample.

    Returns:
        ``[lmax + 1]`` float64 expected Rayleigh quotients.
    """
    check_normalization(normalization, mass=True)
    lmax = _check_lmax(lmax)
    n = int(graph.num_nodes)
    row, col = (t.detach().cpu().numpy() for t in graph.edge_index)
    weight = graph.edge_weight.detach().cpu().numpy().astype(np.float64)
    degree = np.bincount(row, weights=weight, minlength=n)
    denominator = float(n)
    if normalization == "mass":
        # 1^T L_m 1 = 0, A_ij = m_i m_j w_ij; denominator c E[f^T M f] / E[f_i^2].
        mass = node_weight(graph).detach().cpu().numpy().astype(np.float64)
        constant, scale = 0.0, mass
        denominator = mass_scale(graph) * float(mass.sum())
    elif normalization in (None, "rw"):
        # 1^T L 1 = 0 and A_ij = w_ij; for rw the denominator is E[f^T D f] / E[f_i^2].
        constant = 0.0
        scale = None
        if normalization == "rw":
            denominator = float(degree.sum())
    else:
        with np.errstate(divide="ignore"):
            inv_sqrt = np.where(degree > 0, 1.0 / np.sqrt(degree), 0.0)
        # 1^T L 1 = sum_i [d_i > 0] - sum_ij w_ij / sqrt(d_i d_j).
        constant = float(np.count_nonzero(degree > 0)
                         - (weight * inv_sqrt[row] * inv_sqrt[col]).sum())
        scale = inv_sqrt
    pick = _sample(row.size, max_pairs, seed)
    factor = 1.0
    if pick is not None:
        factor = row.size / pick.size
        row, col, weight = row[pick], col[pick], weight[pick]
    if scale is not None:
        weight = weight * scale[row] * scale[col]
    pos = graph.pos.detach().cpu().numpy().astype(np.float64)
    one_minus_cos = 0.5 * ((pos[row] - pos[col]) ** 2).sum(axis=1)
    sums = legendre_sums(one_minus_cos, weight, lmax)
    return (constant + factor * sums) / denominator


@dataclass(frozen=True, eq=False)
class DegreeMap:
    r"""Monotone map between Laplacian eigenvalues :math:`\mu` and degrees :math:`\ell`.

    Args:
        degrees: ``[M]`` calibrated degrees, increasing, starting at 0.
        eigenvalues: ``[M]`` expected Rayleigh quotients :math:`\mu(\ell)` at those degrees,
            strictly increasing.
        normalization: the Laplacian they belong to.
    """

    degrees: np.ndarray
    eigenvalues: np.ndarray
    normalization: str | None = None

    def __post_init__(self) -> None:
        degrees = np.asarray(self.degrees, dtype=np.float64)
        eigenvalues = np.asarray(self.eigenvalues, dtype=np.float64)
        if degrees.ndim != 1 or degrees.shape != eigenvalues.shape or degrees.size < 2:
            raise ValueError("degrees and eigenvalues must be 1-D of one length >= 2")
        if not (np.all(np.diff(degrees) > 0) and np.all(np.diff(eigenvalues) > 0)):
            raise ValueError("degrees and eigenvalues must both be strictly increasing")
        object.__setattr__(self, "degrees", degrees)
        object.__setattr__(self, "eigenvalues", eigenvalues)
        squares = degrees * (degrees + 1.0)
        object.__setattr__(self, "_forward", PchipInterpolator(eigenvalues, squares,
                                                               extrapolate=False))

    @property
    def max_degree(self) -> float:
        """Largest calibrated degree :math:`\\ell_c`."""
        return float(self.degrees[-1])

    def degree(self, mu: np.ndarray | float) -> np.ndarray:
        r""":math:`\ell(\mu)`, any shape, float64 (module docstring for the two ends)."""
        mu = np.asarray(mu, dtype=np.float64)
        low, high = self.eigenvalues[0], self.eigenvalues[-1]
        top = self.degrees[-1] * (self.degrees[-1] + 1.0)
        squares = np.where(
            mu <= low, 0.0,
            np.where(mu >= high, top * mu / high,
                     self._forward(np.clip(mu, low, high))))
        return 0.5 * (np.sqrt(1.0 + 4.0 * np.maximum(squares, 0.0)) - 1.0)

    def eigenvalue(self, ell: np.ndarray | float) -> np.ndarray:
        r""":math:`\mu(\ell)`: linear between calibrated degrees, the inverse of
        :meth:`degree` there and beyond the last one."""
        ell = np.asarray(ell, dtype=np.float64)
        inside = np.interp(ell, self.degrees, self.eigenvalues)
        top = self.degrees[-1] * (self.degrees[-1] + 1.0)
        beyond = self.eigenvalues[-1] * ell * (ell + 1.0) / top
        return np.where(ell > self.degrees[-1], beyond, inside)


def degree_calibration(
    graph: SphereGraph,
    normalization: str | None = None,
    *,
    max_degree: int | None = None,
    max_pairs: int = MAX_PAIRS,
) -> DegreeMap:
    r"""The :class:`DegreeMap` of ``graph``'s Laplacian, cached on the graph.

    Degrees :math:`0, \dots, \ell_c` with :math:`\ell_c` = ``max_degree`` (default
    :math:`\lceil 3\, n_\mathrm{eff} \rceil`, :func:`~deepsphere_pyg.scattering.resolution.
    effective_nside`), cut after the largest :math:`\mu` if the quotients stop increasing
    before. Cost: one pass over at most ``max_pairs`` edges, then :math:`\ell_c` vector
    operations on :data:`BINS` bins.
    """
    if max_degree is None:
        max_degree = int(np.ceil(CALIBRATION_FACTOR * effective_nside(graph)))
    max_degree = _check_lmax(max_degree)

    def compute() -> DegreeMap:
        mu = expected_rayleigh_quotients(graph, max_degree, normalization,
                                         max_pairs=max_pairs)
        rising = np.diff(mu) > 0
        stop = mu.size if rising.all() else int(np.argmin(rising)) + 1
        if stop < 2:
            raise ValueError("graph: the Rayleigh quotient of degree 1 is not above that of "
                             "degree 0; the graph has no edges that resolve degree 1")
        return DegreeMap(np.arange(stop, dtype=np.float64), mu[:stop], normalization)

    key = (normalization, max_degree, max_pairs,
           *(mass_key(graph) if normalization == "mass" else ()))
    return graph.cached("scattering_degree_map", key, compute)


def pooling_gain(
    child: SphereGraph,
    parent: SphereGraph,
    pool_index: torch.Tensor,
    lmax: int,
    *,
    max_pairs: int = MAX_PAIRS,
    seed: int = 0,
    weighted: bool = False,
) -> np.ndarray:
    r""":math:`\gamma(\ell)`, ``[lmax + 1]``, of averaging the children of each parent
    (module docstring), cached on ``child``; ``weighted=True``: of the mass-weighted
    average :math:`\bar f_p = \sum_{i \in \mathcal C(p)} m_i f_i / \sum_{i \in
    \mathcal C(p)} m_i` (child masses of
    :func:`~deepsphere_pyg.graphs.node_weight.node_weight`), the term of child :math:`i`
    weighted by :math:`m_i / \sum_{\mathcal C(p)} m` instead of
    :math:`1 / |\mathcal C(p)|`.

    Args:
        child: the finer graph.
        parent: the coarser graph.
        pool_index: ``[N_child]`` parent of each child node.
        lmax: largest degree.
        max_pairs: children summed exactly up to this count, else a uniform sample.
        seed: seed of that sample.
        weighted: mass-weighted averages (the pooling of ``normalization="mass"``).
    """
    lmax = _check_lmax(lmax)
    if tuple(pool_index.shape) != (int(child.num_nodes),):
        raise ValueError(f"pool_index must have shape [{int(child.num_nodes)}], "
                         f"got {tuple(pool_index.shape)}")
    key = (lmax, max_pairs, seed, pool_index.data_ptr(), pool_index._version,
           parent.pos.data_ptr(), int(parent.num_nodes), bool(weighted),
           *(mass_key(child) if weighted else ()))
    mass = (node_weight(child).detach().cpu().numpy().astype(np.float64) if weighted
            else None)
    return child.cached("scattering_pooling_gain", key,
                        lambda: _pooling_gain(child, parent, pool_index, lmax, max_pairs, seed,
                                              mass))


def _pooling_gain(child: SphereGraph, parent: SphereGraph, pool_index: torch.Tensor,
                  lmax: int, max_pairs: int, seed: int, mass: np.ndarray | None = None
                  ) -> np.ndarray:
    index = pool_index.detach().cpu().numpy().astype(np.int64)
    n_parent = int(parent.num_nodes)
    if mass is None:
        mass = np.ones(index.size)
    totals = np.bincount(index, weights=mass, minlength=n_parent)
    weight = mass / (totals[index] * n_parent)  # sums to 1
    nodes = np.arange(index.size)
    pick = _sample(index.size, max_pairs, seed)
    factor = 1.0
    if pick is not None:
        factor = index.size / pick.size
        nodes, weight = nodes[pick], weight[pick]
    child_pos = child.pos.detach().cpu().numpy().astype(np.float64)[nodes]
    parent_pos = parent.pos.detach().cpu().numpy().astype(np.float64)[index[nodes]]
    one_minus_cos = 0.5 * ((child_pos - parent_pos) ** 2).sum(axis=1)
    return 1.0 - factor * legendre_sums(one_minus_cos, weight, lmax)
