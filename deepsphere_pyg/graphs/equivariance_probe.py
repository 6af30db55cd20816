r"""Machinery of the rotation-equivariance error of :mod:`deepsphere_pyg.graphs.equivariance`.

The error is measured with a *probe* (:func:`make_probe`): for each degree :math:`\ell` it
draws, once, random real fields with power at :math:`\ell` only (:func:`pure_degree_alm`),
Haar-random rotations (:func:`random_rotations`) and the rotated fields
:math:`\mathbf{R}(g)\mathbf{f}` at the graph's nodes, and then measures the error of any
batched operator on them. Everything that does not depend on the operator is precomputed,
so many operators (the widths of a kernel search, the graphs of a figure panel on the same
nodes) are compared on the same random numbers.

Rotations act in harmonic space (:func:`rotate_alm`, the active rotation of
:func:`healpy.rotate_alm`); a probe differs only by its synthesis and analysis:

* full-sky HEALPix graphs (NEST or RING node order): healpy's transforms, as chosen by
  ``method`` (one of :data:`METHODS`, described in the docstring of
  :mod:`~deepsphere_pyg.graphs.equivariance`), with :math:`\ell_\max = 3 n_\mathrm{side} - 1`;
* any other whole-sphere point set: exact synthesis at the nodes and a least-squares fit
  up to :func:`default_lmax` by :class:`~deepsphere_pyg.graphs.harmonics.LeastSquaresAnalysis`
  (``method="lsq"`` only).

The argument checks (a whole sampling without mask, degrees in :math:`[1, \ell_\max]`, a
known method) raise errors that name the argument. The transforms are small: callers run
them under :func:`~deepsphere_pyg.openmp.single_threaded_openmp` (see
:mod:`~deepsphere_pyg.graphs.equivariance`).
"""

from __future__ import annotations

import abc
import math
import numbers
from collections.abc import Callable, Iterable, Sequence

import healpy as hp
import numpy as np
import scipy.special
from scipy.spatial.transform import Rotation

from .checks import check_int_in_range, check_positive_int
from .harmonics import LeastSquaresAnalysis, alm_to_real, real_to_alm
from .sphere_graph import SphereGraph

__all__ = [
    "METHODS",
    "Operator",
    "check_full_sphere",
    "default_lmax",
    "make_probe",
    "pure_degree_alm",
    "random_rotations",
    "rotate_alm",
]

#: A map -> map operator on float64 arrays in node order (``[N] -> [N]`` as given by a
#: user, ``[N, B] -> [N, B]`` batched as a probe applies it).
Operator = Callable[[np.ndarray], np.ndarray]

#: Ways to measure the error (how rotated maps are computed, or ``"eigenspace"``: no
#: rotation); see the :mod:`~deepsphere_pyg.graphs.equivariance` docstring.
METHODS = ("iter", "lsq", "paper", "eigenspace")

#: Jacobi iterations of :func:`healpy.map2alm` (methods ``"iter"`` and ``"paper"``).
MAP2ALM_ITER = 3
#: Tolerance and iteration cap of :func:`healpy.map2alm_lsq` (method ``"lsq"``).
LSQ_TOL, LSQ_MAXITER = 1e-10, 100


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
    r"""Harmonic coefficients of the actively rotated field :math:`x \mapsto f(M^{-1} x)`.

    Args:
        alm: coefficients of :math:`f` in healpy's layout (``mmax = lmax``).
        matrix: ``[3, 3]`` rotation matrix :math:`M`.
        lmax: band limit of ``alm``.

    Returns:
        A rotated copy (``alm`` is left unchanged): the rotated field takes at
        :math:`M x` the value that :math:`f` takes at :math:`x`. This is
        :func:`healpy.rotate_alm` with ``matrix=M``; the convention is checked in
        ``tests/graphs/test_equivariance.py``.
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
    index = hp.Alm.getidx(ell, ell, np.arange(ell + 1))
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
    """``(nside, nest)`` of a full-sky HEALPix graph, or an error naming ``graph``."""
    if not isinstance(graph, SphereGraph):
        raise TypeError(f"graph must be a SphereGraph, got {type(graph).__name__}")
    sampling = getattr(graph, "sampling", None)
    if sampling != "healpix":
        raise ValueError(
            "graph: expected a full-sky HEALPix graph (exact rotations through healpy), "
            f"got sampling={sampling!r}")
    nside = int(graph.nside)
    if graph.pixels is not None:
        raise ValueError(
            f"graph is a partial-sky HEALPix graph ({int(graph.num_nodes)} of "
            f"{hp.nside2npix(nside)} pixels): a rotation moves the signal out of the mask, "
            "so the equivariance error is defined on the full sky only; build the graph "
            "with mask=None"
        )
    if int(graph.num_nodes) != hp.nside2npix(nside):
        raise ValueError(
            f"graph has {int(graph.num_nodes)} nodes but a full-sky HEALPix graph at "
            f"nside={nside} has {hp.nside2npix(nside)}"
        )
    return nside, bool(graph.nest)


def _is_healpix(graph: SphereGraph) -> bool:
    return getattr(graph, "sampling", None) == "healpix"


def check_full_sphere(graph: SphereGraph) -> None:
    """Raise unless ``graph`` is a SphereGraph of a whole sampling (no mask)."""
    if not isinstance(graph, SphereGraph):
        raise TypeError(f"graph must be a SphereGraph, got {type(graph).__name__}")
    if _is_healpix(graph):
        _check_graph(graph)
    elif graph.pixels is not None:
        raise ValueError(
            f"graph is a partial graph ({int(graph.num_nodes)} kept nodes): a rotation moves "
            "the signal out of the kept region, so the equivariance error is defined on the "
            "whole sphere only; build the graph without a mask or region")


def default_lmax(graph: SphereGraph) -> int:
    r"""Band limit of the harmonic analysis on ``graph``'s nodes.

    HEALPix: :math:`3 n_\mathrm{side} - 1`; other samplings: :math:`\lfloor\sqrt{N/1.5}
    \rfloor - 1` (HEALPix's ratio of pixels to coefficients), capped at
    :math:`n_\mathrm{lon}/2 - 1` and :math:`n_\mathrm{lat} - 1` for lat-lon grids; at least 1
    (:mod:`~deepsphere_pyg.graphs.equivariance` docstring).
    """
    if _is_healpix(graph):
        return 3 * int(graph.nside) - 1
    num_nodes = int(graph.num_nodes)
    lmax = int(math.floor(math.sqrt(num_nodes / 1.5))) - 1
    if getattr(graph, "sampling", None) == "equiangular" and "nlon" in graph:
        lmax = min(lmax, int(graph.nlon) // 2 - 1, int(graph.nlat) - 1)
    return max(lmax, 1)


def _check_ells(ells: int | Iterable[int], lmax: int) -> list[int]:
    values = [ells] if isinstance(ells, numbers.Integral) else list(ells)
    if not values:
        raise ValueError("ells must hold at least one spherical-harmonic degree")
    out: list[int] = []
    for ell in values:
        ell = check_int_in_range(
            ell, "ells", 1, lmax, " = [1, lmax] for this graph (degree 0 is constant, so "
            "L f = 0; higher degrees alias; HEALPix: lmax = 3 nside - 1)")
        if ell not in out:
            out.append(ell)
    return out


def _check_method(method: str) -> str:
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    return method


# ---------------------------------------------------------------------------- probe
class _Probe(abc.ABC):
    """Random fields, rotations and rotated fields, drawn once and reused.

    Everything that does not depend on the operator is precomputed, so evaluating many
    operators (as :func:`~deepsphere_pyg.graphs.equivariance.tune_kernel_width` does)
    reuses the same random numbers and costs, per operator, one analysis per signal and
    one rotation + synthesis per rotation. Subclasses provide the sampling's synthesis and analysis.
    """

    lmax: int
    rotate_through_analysis = False

    def _draw(self, ells: Sequence[int], num_signals: int, num_rotations: int,
              seed: int | np.random.Generator | None) -> None:
        self.ells = list(ells)
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
                signal = self._synthesis(alm, ell)
                band = ell
                if self.rotate_through_analysis:  # f rotated like L f ("paper")
                    alm, band = self._analysis(signal), self.lmax
                rotated.append(np.stack(
                    [self._synthesis(rotate_alm(alm, mat, band), band) for mat in mats],
                    axis=1))
                signals.append(signal)
                rotations.append(mats)
            self.signals.append(np.stack(signals))
            self.rotations.append(np.stack(rotations))
            self.rotated.append(np.stack(rotated))

    @abc.abstractmethod
    def _synthesis(self, alm: np.ndarray, lmax: int) -> np.ndarray:
        """Values at the nodes of coefficients ``alm`` (band limit ``lmax``)."""

    @abc.abstractmethod
    def _analysis(self, signal: np.ndarray) -> np.ndarray:
        """Coefficients up to ``self.lmax`` of a map ``[N]`` in node order."""

    def samples(self, operator: Operator, squared: bool) -> dict[int, np.ndarray]:
        """``{ell: [S, R]}`` errors of a batched operator (``[N, B] -> [N, B]``)."""
        out: dict[int, np.ndarray] = {}
        for ell, signals, rotations, rotated in zip(
                self.ells, self.signals, self.rotations, self.rotated, strict=True):
            errors = np.empty(rotations.shape[:2])
            filtered = operator(signals.T).T  # L f, [S, N]
            for s, (lf, mats) in enumerate(zip(filtered, rotations, strict=True)):
                norm = _checked_norm(lf, ell)
                alm = self._analysis(lf)
                rotate_then_filter = operator(rotated[s])  # L R(g) f, [N, R]
                for r, mat in enumerate(mats):
                    filter_then_rotate = self._synthesis(rotate_alm(alm, mat, self.lmax),
                                                         self.lmax)
                    diff = filter_then_rotate - rotate_then_filter[:, r]
                    errors[s, r] = float(np.linalg.norm(diff)) / norm
            out[ell] = errors**2 if squared else errors
        return out


class _HealpixProbe(_Probe):
    """Probe of a full-sky HEALPix graph, with healpy's transforms (``method``)."""

    def __init__(self, nside: int, nest: bool, ells: Sequence[int], num_signals: int,
                 num_rotations: int, seed: int | np.random.Generator | None,
                 method: str) -> None:
        self.nside, self.nest = nside, nest
        self.method = _check_method(method)
        self.lmax = 3 * nside - 1
        self.rotate_through_analysis = method == "paper"
        self._draw(ells, num_signals, num_rotations, seed)

    def _synthesis(self, alm: np.ndarray, lmax: int) -> np.ndarray:
        return _ring_to_graph(hp.alm2map(alm, self.nside, lmax=lmax, mmax=lmax), self.nest)

    def _analysis(self, signal: np.ndarray) -> np.ndarray:
        ring = _graph_to_ring(signal, self.nest)
        if self.method == "lsq":
            alm, _, _ = hp.map2alm_lsq(ring, lmax=self.lmax, mmax=self.lmax,
                                       tol=LSQ_TOL, maxiter=LSQ_MAXITER)
            return alm
        return hp.map2alm(ring, use_pixel_weights=False, lmax=self.lmax, mmax=self.lmax,
                          iter=MAP2ALM_ITER)


class _PointsProbe(_Probe):
    """Probe of any whole-sphere point set: fields evaluated exactly at the nodes from
    their coefficients, ``L f`` fitted up to ``lmax`` by
    :class:`~deepsphere_pyg.graphs.harmonics.LeastSquaresAnalysis`."""

    def __init__(self, pos: np.ndarray, lmax: int, ells: Sequence[int], num_signals: int,
                 num_rotations: int, seed: int | np.random.Generator | None) -> None:
        self.lmax = lmax
        self.fit = LeastSquaresAnalysis(pos, lmax)
        self._draw(ells, num_signals, num_rotations, seed)

    def _synthesis(self, alm: np.ndarray, lmax: int) -> np.ndarray:
        padded = hp.resize_alm(alm, lmax, lmax, self.lmax, self.lmax) if lmax < self.lmax else alm
        return self.fit.synthesis(alm_to_real(padded, self.lmax))

    def _analysis(self, signal: np.ndarray) -> np.ndarray:
        return real_to_alm(self.fit.fit(signal), self.lmax)


class _EigenspaceProbe:
    r"""Probe of ``method="eigenspace"``: how far the operator is from a scalar on each
    degree's fields, at the nodes, without rotating anything.

    By Schur's lemma a rotation-equivariant operator acts on the fields of degree
    :math:`\ell` as one scalar :math:`\lambda_\ell`. With the ``S`` fields
    :math:`\mathbf f_s` of degree :math:`\ell` evaluated exactly at the nodes, and
    :math:`\lambda_\ell = \sum_s \langle \mathbf f_s, \mathbf L \mathbf f_s \rangle /
    \sum_s \lVert \mathbf f_s \rVert^2` (one least-squares scalar per degree), the error of
    field :math:`s` is :math:`\lVert \mathbf L \mathbf f_s - \lambda_\ell \mathbf f_s \rVert /
    \lVert \mathbf L \mathbf f_s \rVert`. It is 0 exactly when every such field is an
    eigenvector of one eigenvalue, in which case :math:`\mathbf L` commutes with every
    rotation on those fields. No harmonic fit of :math:`\mathbf L \mathbf f` is needed, so
    it applies to clustered networks (stations, cities) whose nodes cannot resolve one.
    """

    def __init__(self, pos: np.ndarray, ells: Sequence[int], num_signals: int,
                 seed: int | np.random.Generator | None) -> None:
        rng = np.random.default_rng(seed)
        self.ells = list(ells)
        self.signals: list[np.ndarray] = []  # per degree [S, N]
        theta = np.arccos(np.clip(pos[:, 2], -1.0, 1.0))
        phi = np.arctan2(pos[:, 1], pos[:, 0])
        for ell in self.ells:
            orders = np.arange(ell + 1)
            # [ell + 1, N]: Y_lm at the nodes, m >= 0; f = sum_m c_m Re(a_lm Y_lm),
            # c_0 = 1, c_m = 2 (the real field of the coefficients).
            harmonics = scipy.special.sph_harm_y(ell, orders[:, None], theta, phi)
            weights = np.where(orders == 0, 1.0, 2.0)[:, None]
            index = hp.Alm.getidx(ell, ell, orders)
            alms = np.stack([pure_degree_alm(ell, rng)[index] for _ in range(num_signals)])
            self.signals.append(np.real(alms @ (weights * harmonics)))

    def samples(self, operator: Operator, squared: bool) -> dict[int, np.ndarray]:
        """``{ell: [S, 1]}`` errors of a batched operator (``[N, B] -> [N, B]``)."""
        out: dict[int, np.ndarray] = {}
        for ell, signals in zip(self.ells, self.signals, strict=True):
            filtered = operator(signals.T).T  # L f, [S, N]
            norms = np.array([_checked_norm(lf, ell) for lf in filtered])
            eigenvalue = float(np.sum(signals * filtered) / np.sum(signals * signals))
            errors = np.linalg.norm(filtered - eigenvalue * signals, axis=1) / norms
            out[ell] = (errors**2 if squared else errors)[:, None]
        return out


def _checked_norm(filtered: np.ndarray, ell: int) -> float:
    norm = float(np.linalg.norm(filtered))
    if not (np.isfinite(norm) and norm > 0):
        raise ValueError(
            f"operator maps a degree-{ell} test signal to a map of norm {norm}; "
            "||L f|| must be positive and finite for the normalised error"
        )
    return norm


def make_probe(graph: SphereGraph, ells: int | Iterable[int], num_signals: int,
               num_rotations: int, seed: int | np.random.Generator | None, method: str,
               lmax: int | None) -> _Probe | _EigenspaceProbe:
    """The probe suited to ``graph``'s sampling (healpy transforms for HEALPix).

    The arguments are those of :func:`~deepsphere_pyg.graphs.equivariance.equivariance_error`
    (checked here); ``probe.samples(operator, squared)`` then returns ``{ell: [S, R]}``
    errors of a batched operator (:data:`Operator`), on the same draws for every operator.
    """
    check_full_sphere(graph)
    num_signals = check_positive_int(num_signals, "num_signals")
    num_rotations = check_positive_int(num_rotations, "num_rotations")
    method = _check_method(method)
    if method == "eigenspace":
        lmax = default_lmax(graph) if lmax is None else check_positive_int(lmax, "lmax")
        pos = graph.pos.detach().cpu().double().numpy()
        return _EigenspaceProbe(pos, _check_ells(ells, lmax), num_signals, seed)
    if _is_healpix(graph) and lmax is None:
        nside, nest = _check_graph(graph)
        ells = _check_ells(ells, 3 * nside - 1)
        return _HealpixProbe(nside, nest, ells, num_signals, num_rotations, seed, method)
    if method != "lsq":
        raise ValueError(
            f"method={method!r} uses HEALPix transforms; graphs of other samplings (or with "
            "an explicit lmax) are analysed by least squares: use method='lsq'")
    lmax = default_lmax(graph) if lmax is None else check_positive_int(lmax, "lmax")
    ells = _check_ells(ells, lmax)
    pos = graph.pos.detach().cpu().double().numpy()
    return _PointsProbe(pos, lmax, ells, num_signals, num_rotations, seed)

