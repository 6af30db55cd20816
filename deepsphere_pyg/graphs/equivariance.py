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
field :math:`(\mathcal R_g f)(x) = f(g^{-1} x)` at the pixels and is applied exactly in
harmonic space with the Wigner rotation of :func:`healpy.rotate_alm`:

* :math:`\mathbf{R}(g)\mathbf{f} = \mathrm{alm2map}(D(g)\, a)` — exact, as :math:`f` is
  band-limited to :math:`\ell`;
* :math:`\mathbf{R}(g)\mathbf{L}\mathbf{f} = \mathrm{alm2map}(D(g)\,
  \mathrm{map2alm}(\mathbf{L}\mathbf{f}))` with :math:`\ell_\max = 3 n_\mathrm{side} - 1`
  and three Jacobi iterations. The part of :math:`\mathbf{L}\mathbf{f}` above
  :math:`\ell_\max` is lost, as in the paper; for :math:`\ell < 3 n_\mathrm{side}` this
  error is small next to the graph's own error (an exactly equivariant operator measures
  :math:`\sim 10^{-6}`, see the tests).

``squared=False`` reports :math:`\sqrt{E}` instead (the plain relative error); averages
are taken of the reported quantity.

:func:`tune_kernel_width` finds the heat-kernel width :math:`t` of a graph recipe that
minimises the mean error over a set of degrees; it is the rule for samplings and
neighbour counts outside the published table of
:data:`~deepsphere_pyg.graphs.kernels.V2_KERNEL_WIDTHS`.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Callable, Iterable, Sequence

import healpy as hp
import numpy as np
import scipy.optimize
from scipy.spatial.transform import Rotation

from .checks import check_positive_int
from .laplacian import laplacian_scipy
from .sphere_graph import SphereGraph

__all__ = [
    "equivariance_error",
    "equivariance_samples",
    "pure_degree_alm",
    "random_rotations",
    "rotate_alm",
    "tune_kernel_width",
]

Operator = Callable[[np.ndarray], np.ndarray]

#: Jacobi iterations of :func:`healpy.map2alm` for the analysis of :math:`\mathbf{L f}`.
MAP2ALM_ITER = 3


# --------------------------------------------------------------------------- helpers
def random_rotations(num: int, rng: np.random.Generator) -> np.ndarray:
    r"""``[num, 3, 3]`` rotation matrices drawn uniformly (Haar measure) on :math:`SO(3)`.

    A unit quaternion with i.i.d. Gaussian components is uniform on :math:`S^3`, hence
    its rotation is Haar-distributed on :math:`SO(3)`.
    """
    quaternions = rng.standard_normal((check_positive_int(num, "num"), 4))
    quaternions /= np.linalg.norm(quaternions, axis=1, keepdims=True)
    return Rotation.from_quat(quaternions).as_matrix()


def rotate_alm(alm: np.ndarray, matrix: np.ndarray, lmax: int) -> np.ndarray:
    r"""Harmonic coefficients of the actively rotated field :math:`f(M^{-1} x)`.

    Args:
        alm: coefficients of :math:`f` in healpy's layout (``m``-major, ``mmax = lmax``).
        matrix: ``[3, 3]`` rotation matrix :math:`M`.
        lmax: band limit of ``alm``.

    Returns:
        A rotated copy (``alm`` is left unchanged). With :math:`M` the point
        :math:`M x` of the rotated field carries the value that :math:`f` has at
        :math:`x`; this is :func:`healpy.rotate_alm` with ``matrix=M`` (checked in
        ``tests/graphs/test_equivariance.py``).
    """
    out = np.array(alm, dtype=np.complex128, copy=True)
    hp.rotate_alm(out, matrix=np.asarray(matrix, dtype=np.float64), lmax=lmax, mmax=lmax)
    return out


def pure_degree_alm(ell: int, rng: np.random.Generator) -> np.ndarray:
    r"""Random coefficients (layout ``lmax = ell``) of a real field of degree ``ell`` only.

    :math:`a_{\ell 0} \sim \mathcal N(0, 1)` and :math:`a_{\ell m} \sim \mathcal{CN}(0, 1)`
    for :math:`m > 0`; all other degrees are zero. The field is statistically isotropic.
    """
    ell = check_positive_int(ell, "ell")
    alm = np.zeros(hp.Alm.getsize(ell), dtype=np.complex128)
    m = np.arange(ell + 1)
    index = hp.Alm.getidx(ell, ell, m)
    values = rng.standard_normal(ell + 1) + 1j * rng.standard_normal(ell + 1)
    values[1:] /= math.sqrt(2.0)
    values[0] = values[0].real
    alm[index] = values
    return alm


def _ring_to_graph(maps: np.ndarray, nest: bool) -> np.ndarray:
    return hp.reorder(maps, r2n=True) if nest else maps


def _graph_to_ring(maps: np.ndarray, nest: bool) -> np.ndarray:
    return hp.reorder(maps, n2r=True) if nest else maps


def _check_graph(graph: SphereGraph) -> tuple[int, bool]:
    """``(nside, nest)`` of a full-sky HEALPix graph, or a ValueError naming ``graph``."""
    if not isinstance(graph, SphereGraph):
        raise TypeError(f"graph must be a SphereGraph, got {type(graph).__name__}")
    sampling = getattr(graph, "sampling", None)
    if sampling != "healpix":
        raise ValueError(
            f"graph: the equivariance error is implemented for full-sky HEALPix graphs only "
            f"(exact rotations through healpy), got sampling={sampling!r}"
        )
    if graph.pixels is not None:
        raise ValueError(
            f"graph is a partial-sky HEALPix graph ({int(graph.num_nodes)} of "
            f"{hp.nside2npix(int(graph.nside))} pixels): a rotation moves the signal out of "
            "the mask, so the equivariance error is defined on the full sky only; "
            "build the graph with mask=None"
        )
    nside, nest = int(graph.nside), bool(graph.nest)
    if int(graph.num_nodes) != hp.nside2npix(nside):
        raise ValueError(
            f"graph has {int(graph.num_nodes)} nodes but a full-sky HEALPix graph at "
            f"nside={nside} has {hp.nside2npix(nside)}"
        )
    return nside, nest


def _check_ells(ells: int | Iterable[int], nside: int) -> list[int]:
    values = [ells] if isinstance(ells, numbers.Integral) else list(ells)
    if not values:
        raise ValueError("ells must hold at least one spherical-harmonic degree")
    lmax = 3 * nside - 1
    out: list[int] = []
    for ell in values:
        if isinstance(ell, bool) or not isinstance(ell, numbers.Integral):
            raise TypeError(f"ells must be integers, got {ell!r}")
        if not 1 <= ell <= lmax:
            raise ValueError(
                f"ells must lie in [1, 3*nside-1] = [1, {lmax}] at nside={nside} "
                f"(degree 0 is constant, so L f = 0; higher degrees alias), got {int(ell)}"
            )
        if int(ell) not in out:
            out.append(int(ell))
    return out


def _laplacian_operator(graph: SphereGraph, normalization: str | None) -> Operator:
    lap = laplacian_scipy(graph.edge_index, graph.edge_weight, graph.num_nodes, normalization)
    return lambda x: lap @ x


def _batched(operator: Operator, num_nodes: int) -> Operator:
    """Apply a user map->map operator column by column to ``[N, B]`` arrays."""

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


# ---------------------------------------------------------------------------- probe
class _Probe:
    """Random fields, rotations and rotated fields, drawn once and reused.

    Everything that does not depend on the operator is precomputed, so evaluating many
    operators (as :func:`tune_kernel_width` does) reuses the same random numbers and
    costs one ``map2alm`` per signal and one ``rotate_alm`` + ``alm2map`` per rotation.
    """

    def __init__(self, nside: int, nest: bool, ells: Sequence[int], num_signals: int,
                 num_rotations: int, seed: int | np.random.Generator | None) -> None:
        self.nside, self.nest, self.ells = nside, nest, list(ells)
        self.lmax = 3 * nside - 1
        rng = np.random.default_rng(seed)
        # Per degree: signals [S, N], rotations [S, R, 3, 3], rotated signals [S, N, R].
        self.signals: list[np.ndarray] = []
        self.rotations: list[np.ndarray] = []
        self.rotated: list[np.ndarray] = []
        for ell in self.ells:
            signals, rotations, rotated = [], [], []
            for _ in range(num_signals):
                alm = pure_degree_alm(ell, rng)
                mats = random_rotations(num_rotations, rng)
                signals.append(self._synthesis(alm, ell))
                rotated.append(np.stack(
                    [self._synthesis(rotate_alm(alm, mat, ell), ell) for mat in mats], axis=1))
                rotations.append(mats)
            self.signals.append(np.stack(signals))
            self.rotations.append(np.stack(rotations))
            self.rotated.append(np.stack(rotated))

    def _synthesis(self, alm: np.ndarray, lmax: int) -> np.ndarray:
        return _ring_to_graph(hp.alm2map(alm, self.nside, lmax=lmax, mmax=lmax), self.nest)

    def samples(self, operator: Operator, squared: bool) -> dict[int, np.ndarray]:
        """``{ell: [S, R]}`` errors of a batched operator (``[N, B] -> [N, B]``)."""
        out: dict[int, np.ndarray] = {}
        for ell, signals, rotations, rotated in zip(
                self.ells, self.signals, self.rotations, self.rotated, strict=True):
            errors = np.empty(rotations.shape[:2])
            filtered = operator(signals.T).T  # L f, [S, N]
            for s, (lf, mats) in enumerate(zip(filtered, rotations, strict=True)):
                norm = float(np.linalg.norm(lf))
                if not (np.isfinite(norm) and norm > 0):
                    raise ValueError(
                        f"operator maps a degree-{ell} test signal to {norm} (||L f|| must be "
                        "positive and finite for the normalised error)"
                    )
                alm = hp.map2alm(_graph_to_ring(lf, self.nest), lmax=self.lmax,
                                 mmax=self.lmax, iter=MAP2ALM_ITER, use_pixel_weights=False)
                rotate_then_filter = operator(rotated[s])  # L R(g) f, [N, R]
                for r, mat in enumerate(mats):
                    filter_then_rotate = self._synthesis(rotate_alm(alm, mat, self.lmax),
                                                         self.lmax)
                    diff = filter_then_rotate - rotate_then_filter[:, r]
                    errors[s, r] = float(np.linalg.norm(diff)) / norm
            out[ell] = errors**2 if squared else errors
        return out


def _resolve_operator(graph: SphereGraph, operator: Operator | None,
                      normalization: str | None) -> Operator:
    if operator is None:
        return _laplacian_operator(graph, normalization)
    if not callable(operator):
        raise TypeError(f"operator must be a callable map -> map or None, got {operator!r}")
    return _batched(operator, int(graph.num_nodes))


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
) -> dict[int, np.ndarray]:
    r"""Per-sample equivariance errors ``{ell: array [num_signals, num_rotations]}``.

    Same arguments as :func:`equivariance_error`, which returns the means of these
    arrays; use the samples for error bars (standard error of the mean).
    """
    nside, nest = _check_graph(graph)
    ells = _check_ells(ells, nside)
    num_signals = check_positive_int(num_signals, "num_signals")
    num_rotations = check_positive_int(num_rotations, "num_rotations")
    apply = _resolve_operator(graph, operator, normalization)
    probe = _Probe(nside, nest, ells, num_signals, num_rotations, seed)
    return probe.samples(apply, bool(squared))


def equivariance_error(
    graph: SphereGraph,
    ells: int | Iterable[int],
    *,
    num_signals: int = 4,
    num_rotations: int = 4,
    normalization: str | None = None,
    squared: bool = True,
    seed: int | np.random.Generator | None = 0,
    operator: Operator | None = None,
) -> dict[int, float]:
    r"""Mean normalised equivariance error of a graph Laplacian, per degree :math:`\ell`.

    For each degree :math:`\ell` in ``ells``, ``num_signals`` random real fields with
    power at degree :math:`\ell` only are sampled at the graph's nodes, each is rotated by
    ``num_rotations`` Haar-random rotations (exactly, in harmonic space), and

    .. math::

        \overline{E}_\ell = \frac{1}{S R} \sum_{s, r}
        \left( \frac{\lVert \mathbf{R}(g_r) \mathbf{L} \mathbf{f}_s
                          - \mathbf{L} \mathbf{R}(g_r) \mathbf{f}_s \rVert}
                    {\lVert \mathbf{L} \mathbf{f}_s \rVert} \right)^2

    is returned (see the module docstring for how :math:`\mathbf{R}(g)` is computed).
    0 means exactly equivariant; lower is better.

    Args:
        graph: a full-sky HEALPix :class:`SphereGraph` (NEST or RING node order).
        ells: degree(s) :math:`1 \le \ell \le 3 n_\mathrm{side} - 1`.
        num_signals: random fields per degree (default 4).
        num_rotations: random rotations per field (default 4).
        normalization: Laplacian of the graph: ``None`` (default, combinatorial
            :math:`D - W` as in the paper), ``"sym"`` or ``"rw"``. Ignored when
            ``operator`` is given.
        squared: ``True`` (default) averages :math:`E` as defined in the paper;
            ``False`` averages :math:`\sqrt{E}`, the plain relative error.
        seed: seed or :class:`numpy.random.Generator` of the random fields and rotations.
        operator: optional callable replacing :math:`\mathbf{L}`: maps a float64 map
            ``[N]`` in the graph's node order to a map ``[N]``.

    Returns:
        ``{ell: mean error}`` in the order of ``ells``.

    Raises:
        ValueError: partial-sky or non-HEALPix graph; a degree outside
            :math:`[1, 3 n_\mathrm{side} - 1]`; counts below 1; an operator that returns
            a zero map.

    Example:
        >>> from deepsphere_pyg.graphs import healpix_graph
        >>> errors = equivariance_error(healpix_graph(8, k=20), [4, 8], num_signals=2)
        >>> sorted(errors)
        [4, 8]
    """
    samples = equivariance_samples(
        graph, ells, num_signals=num_signals, num_rotations=num_rotations,
        normalization=normalization, squared=squared, seed=seed, operator=operator)
    return {ell: float(values.mean()) for ell, values in samples.items()}


def mean_squared_edge_length(graph: SphereGraph) -> float:
    r"""Mean squared chord length :math:`\overline{d^2}` over the edges of ``graph``."""
    pos = graph.pos.detach().cpu().double().numpy()
    row, col = graph.edge_index.detach().cpu().numpy()
    if row.size == 0:
        raise ValueError("graph has no edges")
    return float(((pos[row] - pos[col]) ** 2).sum(axis=1).mean())


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
    xatol: float = 0.01,
    maxiter: int = 50,
) -> tuple[float, float]:
    r"""Heat-kernel width :math:`t` minimising the mean equivariance error over ``ells``.

    Minimises :math:`J(t) = \frac{1}{|\mathcal L|} \sum_{\ell \in \mathcal L}
    \overline{E}_\ell(\mathbf{L}_t)` over :math:`\log t` in ``bounds`` with
    :func:`scipy.optimize.minimize_scalar` (``method="bounded"``, Brent's method). The
    random fields and rotations are drawn once and reused for every :math:`t` (common
    random numbers), so :math:`J` is a smooth deterministic function of :math:`t`.

    This is the DeepSphere v2 rule that produced the published widths; use it for
    samplings and neighbour counts outside
    :data:`~deepsphere_pyg.graphs.kernels.V2_KERNEL_WIDTHS`.

    Args:
        build: ``build(t) -> SphereGraph``, the full-sky HEALPix graph with width ``t``
            (same nodes and edges for every ``t``), e.g.
            ``lambda t: healpix_graph(32, k=20, kernel=t)``.
        ells: degrees whose mean error is minimised (e.g. ``[10, 50, 90]`` at nside 32).
        bounds: ``(t_min, t_max)``; default
            :math:`(\overline{d^2} / 100,\ 10\, \overline{d^2})` with
            :math:`\overline{d^2}` the mean squared chord length of the edges (for
            reference, the v1 rule is :math:`t = \overline{d^2}/2` over the 8 HEALPix
            neighbours).
        num_signals, num_rotations, seed, normalization, squared: as in
            :func:`equivariance_error`.
        xatol: absolute tolerance on :math:`\log t` (0.01 = 1 % on :math:`t`).
        maxiter: maximum number of objective evaluations of the optimiser.

    Returns:
        ``(t_opt, J(t_opt))``. A warning is issued when the optimum lies at a bound.
    """
    num_signals = check_positive_int(num_signals, "num_signals")
    num_rotations = check_positive_int(num_rotations, "num_rotations")
    if bounds is None:
        first = build(1.0)
        nside, _ = _check_graph(first)
        d2 = mean_squared_edge_length(first)
        bounds = (d2 / 100.0, 10.0 * d2)
    else:
        lo, hi = (float(b) for b in bounds)
        if not (np.isfinite(lo) and np.isfinite(hi) and 0 < lo < hi):
            raise ValueError(f"bounds must be (t_min, t_max) with 0 < t_min < t_max, got {bounds}")
        bounds = (lo, hi)
        first = build(math.sqrt(lo * hi))
    nside, nest = _check_graph(first)
    ells = _check_ells(ells, nside)
    probe = _Probe(nside, nest, ells, num_signals, num_rotations, seed)
    num_nodes = int(first.num_nodes)

    def objective(log_t: float) -> float:
        graph = build(float(math.exp(log_t)))
        if _check_graph(graph) != (nside, nest) or int(graph.num_nodes) != num_nodes:
            raise ValueError("build(t) must return graphs of the same sampling for every t")
        samples = probe.samples(_laplacian_operator(graph, normalization), bool(squared))
        return float(np.mean([values.mean() for values in samples.values()]))

    log_lo, log_hi = math.log(bounds[0]), math.log(bounds[1])
    result = scipy.optimize.minimize_scalar(
        objective, bounds=(log_lo, log_hi), method="bounded",
        options={"xatol": float(xatol), "maxiter": int(maxiter)})
    log_t = float(result.x)
    if min(log_t - log_lo, log_hi - log_t) < 10 * xatol:
        warnings.warn(
            f"tune_kernel_width: the optimum t={math.exp(log_t):.4g} lies at a bound of "
            f"{bounds}; widen the bounds", stacklevel=2)
    return float(math.exp(log_t)), float(result.fun)
