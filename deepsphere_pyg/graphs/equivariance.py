r"""Rotation equivariance of graph operators on the sphere (DeepSphere v2 protocol).

A graph Laplacian :math:`\mathbf{L}` of a sampled sphere is not exactly equivariant to
rotations. DeepSphere v2 (Defferrard et al., ICLR 2020) measures how far it is with the
*normalised equivariance error* of a signal :math:`\mathbf{f}` and a rotation
:math:`g \in SO(3)`,

.. math::

    E_{\mathbf{L}}(\mathbf{f}, g) =
    \left( \frac{\lVert \mathbf{R}(g)\, \mathbf{L} \mathbf{f}
                       - \mathbf{L}\, \mathbf{R}(g) \mathbf{f} \rVert}
                {\lVert \mathbf{L} \mathbf{f} \rVert} \right)^2,

and its mean :math:`\overline{E}_{\mathbf{L}, C(\ell)} = \mathbb{E}_{f \in C(\ell),\, g}
E_{\mathbf{L}}(\mathbf{f}, g)` over random fields of a single spherical-harmonic degree
:math:`\ell`,

.. math::

    f(x) = \sum_{m=-\ell}^{\ell} a_{\ell m} Y_{\ell m}(x), \qquad
    a_{\ell 0} \sim \mathcal N(0, 1),\;
    a_{\ell m} \sim \mathcal{CN}(0, 1) \ (m > 0),\;
    a_{\ell, -m} = (-1)^m \overline{a_{\ell m}},

(a statistically isotropic real field), and over rotations :math:`g` drawn uniformly (Haar
measure) on :math:`SO(3)`. The rotation operator :math:`\mathbf{R}(g)` samples the rotated
field :math:`(\mathcal R_g f)(x) = f(g^{-1} x)` at the pixels; it is applied in harmonic
space with the Wigner rotation :math:`D(g)` of :func:`healpy.rotate_alm`, with
:math:`\ell_\max = 3 n_\mathrm{side} - 1` for :math:`\mathbf{L}\mathbf{f}`. ``method``
chooses how maps are analysed:

* ``"iter"``: :math:`\mathbf{R}(g)\mathbf{f} = \mathrm{alm2map}(D(g)\, a)` is
  exact (:math:`f` is band-limited to :math:`\ell`);
  :math:`\mathbf{R}(g)\mathbf{L}\mathbf{f} = \mathrm{alm2map}(D(g)\,
  \mathrm{map2alm}(\mathbf{L}\mathbf{f}))` with three Jacobi iterations. HEALPix
  analysis is not exact: near :math:`\ell_\max` this adds a floor to the measured error
  (the identity operator measures :math:`E \approx 0.04` at :math:`\ell = 90`,
  :math:`n_\mathrm{side} = 32`; below :math:`\ell \approx 2 n_\mathrm{side}` the floor is
  under :math:`10^{-4}`).
* ``"lsq"`` (default): as ``"iter"`` but :math:`\mathbf{L}\mathbf{f}` is analysed by least squares
  (:func:`healpy.map2alm_lsq`), which removes that floor (the identity operator measures
  :math:`\sim 10^{-9}` at :math:`\ell = 90` and :math:`10^{-6}` at :math:`\ell_\max = 95`,
  nside 32); slower (up to 100 LSQR iterations per map).
* ``"paper"``: the protocol of the published DeepSphere v2 code: *both* :math:`\mathbf{f}`
  and :math:`\mathbf{L}\mathbf{f}` are rotated by map2alm (three iterations), rotate_alm,
  alm2map. The identity is then exactly equivariant and the analysis errors of the two
  sides partly cancel; use it to compare with the published figures.

The part of :math:`\mathbf{L}\mathbf{f}` above :math:`\ell_\max` cannot be rotated and
counts as error, as in the paper.

**Other samplings** (lat-lon grids, icosahedral vertices, point sets: any full-sphere graph
that is not HEALPix) use the same protocol with a least-squares harmonic analysis on the
nodes (:class:`~deepsphere_pyg.graphs.harmonics.LeastSquaresAnalysis`, only ``method="lsq"``):
:math:`\mathbf{f}` and :math:`\mathbf{R}(g)\mathbf{f}` are evaluated exactly at the node
positions from their coefficients, :math:`\mathbf{L}\mathbf{f}` is fitted up to the
sampling's band limit :math:`\ell_\max` (``lmax``: by default :math:`n_\mathrm{lon}/2 - 1`
capped at :math:`n_\mathrm{lat} - 1` for lat-lon grids, :math:`\lfloor\sqrt{N/1.5}\rfloor - 1`
otherwise, HEALPix's ratio of pixels to coefficients), rotated with
:func:`healpy.rotate_alm` and evaluated at the nodes.

``method="eigenspace"`` rotates nothing. A rotation-equivariant operator acts on the
fields of one degree as a scalar (Schur's lemma), so the error of a field is its distance
to that scalar's multiple, at the nodes: :math:`E_\ell = \lVert \mathbf{L}\mathbf{f} -
\lambda_\ell \mathbf{f} \rVert^2 / \lVert \mathbf{L}\mathbf{f} \rVert^2` with one
least-squares :math:`\lambda_\ell` per degree over the ``num_signals`` fields
(``num_rotations`` is ignored; the samples have one column). It is 0 exactly when the
operator commutes with rotations on those fields, needs no harmonic fit of
:math:`\mathbf{L}\mathbf{f}`, and so also measures clustered networks (stations, cities)
whose nodes cannot resolve the fit of the other methods (``lmax`` only bounds the
degrees). Its values are not those of the rotation protocol: compare graphs with one
method.

``squared=False`` reports :math:`\sqrt{E}` instead (the plain relative error); averages
are taken of the reported quantity. (The code behind the published figures averaged the
plain ratio of norms, although the paper writes the square.)

:func:`tune_kernel_width` finds the heat-kernel width :math:`t` of a graph recipe that
minimises the mean error over a set of degrees; it is the rule for samplings and
neighbour counts outside the published table of
:data:`~deepsphere_pyg.graphs.kernels.V2_KERNEL_WIDTHS`.

The transforms here are small, so healpy's OpenMP is run single-threaded while they run
(and restored afterwards): on a loaded machine OpenMP threads waiting for busy cores made
:func:`healpy.rotate_alm` far slower than one thread (``BENCHMARKS.md``, "Costs behind the
library's defaults").

The random fields, rotations and transforms behind these functions (the *probes*, drawn
once and reused for every operator) live in :mod:`~deepsphere_pyg.graphs.equivariance_probe`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import scipy.optimize

from ..openmp import single_threaded_openmp
from .equivariance_probe import (
    METHODS,
    Operator,
    check_full_sphere,
    default_lmax,
    make_probe,
    pure_degree_alm,
    random_rotations,
    rotate_alm,
)
from .node_weight import node_weight
from .operator import check_normalization, laplacian_scipy
from .sphere_graph import SphereGraph

__all__ = [
    "METHODS",
    "equivariance_error",
    "default_lmax",
    "equivariance_samples",
    "mean_squared_edge_length",
    "pure_degree_alm",
    "random_rotations",
    "rotate_alm",
    "tune_kernel_width",
]


# --------------------------------------------------------------------------- helpers


def mean_squared_edge_length(graph: SphereGraph) -> float:
    r"""Mean squared chord length :math:`\overline{d^2}` over the edges of ``graph``."""
    pos = graph.pos.detach().cpu().double().numpy()
    row, col = graph.edge_index.detach().cpu().numpy()
    if row.size == 0:
        raise ValueError("graph has no edges")
    return float(((pos[row] - pos[col]) ** 2).sum(axis=1).mean())


def _laplacian_operator(graph: SphereGraph, normalization: str | None) -> Operator:
    """The Laplacian of ``graph`` on node values ``[N, B]`` (float64); ``"mass"``:
    :math:`M^{-1} L_m x = M^{-1/2} S M^{1/2} x` (up to the constant :math:`c`, which the
    normalised error does not see)."""
    if normalization != "mass":
        lap = laplacian_scipy(graph.edge_index, graph.edge_weight, graph.num_nodes,
                              normalization)
        return lambda x: lap @ x
    mass = node_weight(graph).detach().cpu().double().numpy()
    lap = laplacian_scipy(graph.edge_index, graph.edge_weight, graph.num_nodes, "mass",
                          node_weight=mass)
    root = np.sqrt(mass)[:, None]
    return lambda x: (lap @ (root * x)) / root


def _batched(operator: Operator, num_nodes: int) -> Operator:
    """Apply a user map -> map operator column by column to ``[N, B]`` arrays."""

    def apply(x: np.ndarray) -> np.ndarray:
        columns = []
        for column in np.asarray(x).T:
            out = np.asarray(operator(np.ascontiguousarray(column)), dtype=np.float64)
            if out.shape != (num_nodes,):
                raise ValueError(
                    f"operator must map a map of shape ({num_nodes},) to one of the same "
                    f"shape, got {out.shape}"
                )
            columns.append(out)
        return np.stack(columns, axis=1)

    return apply


def _resolve_operator(graph: SphereGraph, operator: Operator | None,
                      normalization: str | None) -> Operator:
    if operator is None:
        check_normalization(normalization, mass=True)
        return _laplacian_operator(graph, normalization)
    if not callable(operator):
        raise TypeError(f"operator must be a callable map -> map or None, got {operator!r}")
    return _batched(operator, int(graph.num_nodes))


def _signature(graph: SphereGraph) -> tuple:
    """What must not change between the graphs of a width search: sampling and nodes."""
    return (getattr(graph, "sampling", None), int(graph.num_nodes),
            graph.pos.detach().cpu().double().numpy().round(9).tobytes())


# ------------------------------------------------------------------------ public API
def equivariance_samples(
    graph: SphereGraph,
    ells: int | Iterable[int],
    *,
    num_signals: int = 4,
    num_rotations: int = 4,
    normalization: str | None = None,
    squared: bool = True,
    seed: int | np.random.Generator | None = 0,
    operator: Operator | None = None,
    method: str = "lsq",
    lmax: int | None = None,
) -> dict[int, np.ndarray]:
    r"""Per-sample equivariance errors ``{ell: array [num_signals, num_rotations]}``.

    The arguments are documented in :func:`equivariance_error`, which returns the means
    of these arrays (and takes the keyword arguments of this function); use the samples
    for error bars (standard error of the mean).
    """
    with single_threaded_openmp():
        probe = make_probe(graph, ells, num_signals, num_rotations, seed, method, lmax)
        apply = _resolve_operator(graph, operator, normalization)
        return probe.samples(apply, bool(squared))


def equivariance_error(graph: SphereGraph, ells: int | Iterable[int], **options: Any
                       ) -> dict[int, float]:
    r"""Mean normalised equivariance error of a graph Laplacian, per degree :math:`\ell`.

    For each degree :math:`\ell` in ``ells``, ``num_signals`` random real fields with
    power at degree :math:`\ell` only are sampled at the graph's nodes, each is rotated by
    ``num_rotations`` Haar-random rotations (in harmonic space), and

    .. math::

        \overline{E}_\ell = \frac{1}{S R} \sum_{s, r}
        \left( \frac{\lVert \mathbf{R}(g_r) \mathbf{L} \mathbf{f}_s
                          - \mathbf{L} \mathbf{R}(g_r) \mathbf{f}_s \rVert}
                    {\lVert \mathbf{L} \mathbf{f}_s \rVert} \right)^2

    is returned (see the module docstring for how :math:`\mathbf{R}(g)` is computed).
    0 means exactly equivariant; lower is better.

    Args:
        graph: a :class:`SphereGraph` of a whole sampling (no mask): full-sky HEALPix
            (NEST or RING node order), a lat-lon grid, icosahedral vertices, a point set.
        ells: degree(s) :math:`1 \le \ell \le \ell_\max`
            (HEALPix: :math:`3 n_\mathrm{side} - 1`).

    Keyword arguments (those of :func:`equivariance_samples`):
        num_signals: random fields per degree (default 4).
        num_rotations: random rotations per field (default 4).
        normalization: Laplacian of the graph: ``None`` (default, combinatorial
            :math:`D - W` as in the paper), ``"sym"``, ``"rw"`` or ``"mass"`` (the mass
            Laplacian :math:`M^{-1} L_m` on node values, masses from
            :func:`~deepsphere_pyg.graphs.node_weight.node_weight`;
            :mod:`~deepsphere_pyg.graphs.operator`). Ignored when ``operator`` is given.
        squared: ``True`` (default) averages :math:`E` as defined in the paper;
            ``False`` averages :math:`\sqrt{E}`, the plain relative error.
        seed: seed or :class:`numpy.random.Generator` of the random fields and rotations.
        operator: optional callable replacing :math:`\mathbf{L}`: maps a float64 map
            ``[N]`` in the graph's node order to a map ``[N]``.
        method: ``"lsq"`` (default), ``"iter"`` or ``"paper"``: how rotated maps are
            computed (module docstring); other samplings than HEALPix: ``"lsq"`` only.
            ``"eigenspace"`` (any sampling): distance to a scalar on each degree, no
            rotation (module docstring).
        lmax: band limit of the analysis of :math:`\mathbf{L}\mathbf{f}`; default: the
            sampling's (module docstring). Giving it for a HEALPix graph switches to the
            generic least-squares analysis.

    Returns:
        ``{ell: mean error}`` in the order of ``ells``.

    Raises:
        ValueError: a partial graph (mask); a degree outside :math:`[1, \ell_\max]`;
            counts below 1; an unknown method; nodes that cannot resolve ``lmax``; an
            operator that returns a zero map.

    Example:
        >>> from deepsphere_pyg.graphs import healpix_graph
        >>> errors = equivariance_error(healpix_graph(8, k=20), [4, 8], num_signals=2)
        >>> sorted(errors)
        [4, 8]
    """
    samples = equivariance_samples(graph, ells, **options)
    return {ell: float(values.mean()) for ell, values in samples.items()}


def tune_kernel_width(
    build: Callable[[float], SphereGraph],
    ells: int | Iterable[int],
    *,
    bounds: tuple[float, float] | None = None,
    num_signals: int = 4,
    num_rotations: int = 4,
    seed: int | np.random.Generator | None = 0,
    normalization: str | None = None,
    squared: bool = True,
    method: str = "lsq",
    lmax: int | None = None,
    xatol: float = 0.01,
    maxiter: int = 50,
) -> tuple[float, float]:
    r"""Heat-kernel width :math:`t` minimising the mean equivariance error over ``ells``.

    Minimises :math:`J(t) = \frac{1}{|\mathcal L|} \sum_{\ell \in \mathcal L}
    \overline{E}_\ell(\mathbf{L}_t)` over :math:`\log t` in ``bounds`` with
    :func:`scipy.optimize.minimize_scalar` (``method="bounded"``, Brent's method). The
    random fields and rotations are drawn once and reused for every :math:`t` (common
    random numbers), so :math:`J` is a smooth deterministic function of :math:`t`.

    This is the DeepSphere v2 rule behind the published widths; use it for samplings and
    neighbour counts outside :data:`~deepsphere_pyg.graphs.kernels.V2_KERNEL_WIDTHS`.
    The optimum depends somewhat on ``ells`` (low degrees favour wider kernels).

    Args:
        build: ``build(t) -> SphereGraph``, a whole-sphere graph with width ``t`` (same
            nodes for every ``t``), e.g. ``lambda t: healpix_graph(32, k=20, kernel=t)``.
        ells: degrees whose mean error is minimised (e.g. ``[10, 50, 90]`` at nside 32).
        bounds: ``(t_min, t_max)``; default
            :math:`(\overline{d^2} / 100,\ 10\, \overline{d^2})` with
            :math:`\overline{d^2}` the mean squared chord length of the edges of
            ``build(1.0)`` (for reference, the v1 rule is :math:`t = \overline{d^2}/2` over
            the 8 HEALPix neighbours).
        num_signals, num_rotations, seed, normalization, squared, method, lmax: as in
            :func:`equivariance_error` (``normalization="mass"`` tunes the width of the
            mass Laplacian).
        xatol: absolute tolerance on :math:`\log t` (0.01 = 1 % on :math:`t`).
        maxiter: maximum number of objective evaluations of the optimiser.

    Returns:
        ``(t_opt, J(t_opt))``. A warning is issued when the optimum lies at a bound.

    Example:
        >>> from deepsphere_pyg.graphs import healpix_graph
        >>> t, err = tune_kernel_width(lambda t: healpix_graph(8, k=8, kernel=t), [4, 8],
        ...                            num_signals=2, num_rotations=2)
    """
    if bounds is None:
        first = build(1.0)
        check_full_sphere(first)
        d2 = mean_squared_edge_length(first)
        lo, hi = d2 / 100.0, 10.0 * d2
    else:
        lo, hi = (float(b) for b in bounds)
        if not (np.isfinite(lo) and np.isfinite(hi) and 0 < lo < hi):
            raise ValueError(
                f"bounds must be (t_min, t_max) with 0 < t_min < t_max, got {bounds!r}")
        first = build(math.sqrt(lo * hi))
    signature = _signature(first)
    check_normalization(normalization, mass=True)

    def objective(log_t: float) -> float:
        graph = build(float(math.exp(log_t)))
        if _signature(graph) != signature:
            raise ValueError("build(t) must return graphs of the same nodes for every t")
        samples = probe.samples(_laplacian_operator(graph, normalization), bool(squared))
        return float(np.mean([values.mean() for values in samples.values()]))

    log_lo, log_hi = math.log(lo), math.log(hi)
    with single_threaded_openmp():
        probe = make_probe(first, ells, num_signals, num_rotations, seed, method, lmax)
        result = scipy.optimize.minimize_scalar(
            objective, bounds=(log_lo, log_hi), method="bounded",
            options={"xatol": float(xatol), "maxiter": int(maxiter)})
    log_t = float(result.x)
    if min(log_t - log_lo, log_hi - log_t) < 10 * xatol:
        warnings.warn(
            f"tune_kernel_width: the optimum t={math.exp(log_t):.4g} lies at a bound of "
            f"({lo:.4g}, {hi:.4g}); widen the bounds", stacklevel=2)
    return float(math.exp(log_t)), float(result.fun)
