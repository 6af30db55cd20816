r"""Scattering with Chebyshev filters of the graph Laplacians, level by level.

**Filters.** The kernels :math:`\Phi_{J_0}(\ell)` and :math:`\kappa_j(\ell)` of a
:class:`~deepsphere_pyg.scattering.filters.FilterBank` are functions of the degree; a graph
applies them as functions of its Laplacian, :math:`\kappa(\ell(L))`, with the map
:math:`\ell(\mu)` calibrated on that graph (:mod:`~deepsphere_pyg.scattering.calibration`),
through a Chebyshev expansion on :math:`[0, \lambda_\max]` (:func:`kernel_coefficients`:
interpolation at the Chebyshev-Lobatto points, exact at :math:`\mu = 0`, so a constant
map is filtered exactly) evaluated with the three-term recurrence: ``K - 1`` sparse
products for ``K`` terms, no eigendecomposition. :math:`\lambda_\max` is Gershgorin's
bound of the assembled Laplacian (:func:`chebyshev_operator`; an underestimate would make
the recurrence diverge, and Lanczos is far slower on large graphs: ``BENCHMARKS.md``,
"Costs behind the library's defaults"); ``lambda_max="lanczos"`` estimates it instead.

**Multiresolution.** A filter whose band ends at a fixed fraction of a level's resolution
needs the same number of terms on every level, so each filter runs on the coarsest level
that resolves it (:func:`~deepsphere_pyg.scattering.resolution.level_for_band_limit`):

* wavelet :math:`\kappa_j` (support :math:`\ell < \lambda^{j+1}`) on the coarsest level
  with effective nside :math:`\ge \lambda^{j+1}` (:data:`WAVELET_MARGIN` = 1); the
  modulus is taken there;
* :math:`\Phi` on the coarsest level with effective nside :math:`\ge 2 \lambda^{J_0}`
  (:data:`SCALING_MARGIN`), one level finer than the output level chosen by the default
  margin 1, and moved to the output level by local quadratic interpolation
  (:func:`~deepsphere_pyg.scattering.resolution.interpolation_matrix`). Measured at nside
  32 (k = 20, :math:`J_0 = 2`, white spectrum up to :math:`\ell = 32`): order-0
  rotation-equivariance error 4.9e-2 with :math:`\Phi` on the nside-4 output level,
  1.7e-2 on nside 8 then interpolated (2.1e-2 with the mean of the children instead);
* a signal moves from level :math:`l` to :math:`l + 1` by a low-pass on level :math:`l`,
  then the mean over the children of each parent
  (:func:`~deepsphere_pyg.nn.sphere_pool.sphere_pool`, ``"avg"``; on a partial sky the
  mean of the *observed* children, as :class:`~deepsphere_pyg.nn.SpherePool` does, so
  ``SphereHierarchy.coverage`` does not enter the values: it tells which output nodes
  lie on the mask border, where the coefficients differ most from the full-sky ones).
  The low-pass of a signal is

  .. math::

      h(\ell) = \frac{k_{C/B}(\ell / C)}{\gamma_l(\ell)}, \qquad
      C = \max(n_l, \lambda B),

  with :math:`B` the highest degree that signal still needs below level :math:`l`
  (:math:`\lambda^{j+1}` of its later wavelets, :math:`\lambda^{J_0}` of :math:`\Phi`),
  :math:`n_l` the level's effective nside, :math:`k_{C/B}` the smooth step of the filter
  bank (exactly 1 up to :math:`B`, 0 from :math:`C` on) and :math:`\gamma_l` the
  calibrated attenuation of the averaging
  (:func:`~deepsphere_pyg.scattering.calibration.pooling_gain`). In exact arithmetic it
  leaves every later filter unchanged, and it removes what the coarse level cannot hold
  before the averaging aliases it. On the level just finer than the one of :math:`\Phi`,
  a signal that still has wavelets to come is sent down twice: once for them, once
  low-passed for :math:`\Phi` alone; and every map that only :math:`\Phi` still needs is
  cut there at half the resolution (:data:`SCALING_CUTOFF`). :math:`\Phi` then acts on
  its coarse graph without degrees above half that graph's resolution, where the graph is
  least isotropic (order-0 equivariance error at nside 32, :math:`J_0 = 2`: 1.65e-2 ->
  1.3e-2; the cost is that of one level above a coarse one).

A path :math:`(j_1, j_2)` is thus: the input moves down to the level of :math:`j_1`,
:math:`U_1 = |f \star \psi_{j_1}|` there, :math:`U_1` moves down to the level of
:math:`j_2`, :math:`U_2 = |U_1 \star \psi_{j_2}|` there, :math:`U_2` moves down to the
level of :math:`\Phi`, :math:`S = U_2 \star \Phi` is interpolated to the output level.
The signals filtered together on a level (those arriving from the finer level; then the
moduli just computed there; ...) share Chebyshev recurrences: one per group of signals
needing the same number of terms, whose terms are combined with the coefficients of every
filter each signal needs, so a level costs ``K - 1`` products per signal and pass
whatever the number of filters.

**Terms.** ``order`` (30) for a filter whose band ends at or above the level's resolution;
``order`` times resolution / band edge (at most 4 times) for narrower ones (:math:`\Phi`
on its level: 60); a low-pass with a transition wider than the octave from half the
resolution to the resolution gets proportionally fewer (at least half): the low-pass of a
map that only :math:`\Phi` still needs (the order-2 moduli) runs with about 16 terms.

**Normalisation.** The combinatorial Laplacian :math:`D - W` (``normalization=None``,
default) keeps the constant map in its null space on any graph: a constant map gives
:math:`S_0` equal to the constant and zero wavelet coefficients to rounding, also on a
partial sky; with the symmetric normalisation, whose null vector is :math:`D^{1/2}
\mathbf 1`, the same map is off by up to 47 % at a mask border (nside 16, k = 20), and
its order-0 equivariance error on full-sky HEALPix is 2.2e-2 instead of 1.7e-2.
``"rw"`` (:math:`I - D^{-1} W`, also constant-preserving) is offered; it is as accurate
as the combinatorial one on partial HEALPix skies and less on irregular point sets.
``"mass"`` uses the graphs' node masses :math:`m` (``graph.node_weight``): the mass
Laplacian :math:`\frac1c M^{-1} L_m` (:mod:`~deepsphere_pyg.graphs.operator`), applied to
node values as :math:`M^{-1/2} g(S) M^{1/2} x` with :math:`S = \frac1c M^{-1/2} L_m
M^{-1/2}`; its calibration :math:`\ell(\mu)` is the quadrature Rayleigh quotient
(:func:`~deepsphere_pyg.scattering.calibration.expected_rayleigh_quotients`, about
:math:`\ell(\ell+1)` at low degrees), and the move between levels is the mass-weighted
mean of the children, :math:`\bar x_p = \sum_{i \in \mathcal C(p)} m_i x_i /
\sum_{i \in \mathcal C(p)} m_i` (a quadrature average; the pooling gain is calibrated
for it). On a grid whose cells shrink towards the poles the node-count operators weight
the dense polar rings too much; the mass operator does not (order-0 errors against the
harmonic definition, measured by ``scripts/scattering_latlon.py``: ``BENCHMARKS.md``,
"Lat-lon grids: graph backend on the mass Laplacian vs the harmonic reference").
The constant map keeps :math:`S_0` equal to the constant (the null vector of :math:`S`
is :math:`M^{1/2} \mathbf 1`).

**Accuracy** (nside 32, 20-NN HEALPix graphs, band-limited white maps; see
``tests/scattering/test_graph_backend.py``): rotation-equivariance error 1.5-1.7e-2 /
0.6-0.8e-2 / 1.4-1.9e-2 at orders 0 / 1 / 2 (the harmonic backend: 1e-4 / 2e-3 /
9e-3; an exact spectral low-pass on the same graphs: 1.3e-2, the floor of the graph);
relative difference to exact harmonic filtering 1.6-1.9e-2 (order 0), 0.9e-2 (order 1).
The accuracy follows the graph's: with 8 neighbours the errors are 2-3 times larger; on
point sets whose density varies at the scale of the nodes (HEALPix centres jittered by
0.1 pixel: 4.6e-2 at order 0) or strongly (equiangular k-NN graphs, where the poles are
40 times denser) a k-NN graph Laplacian is a poor approximation of the spherical one,
and so are these filters.

**Sparse products.** Operators are CSR buffers with int32 indices. On CPU, one column
goes through scipy, more through torch's kernel (see ``SparseOperator``); on CUDA, torch; with
autograd (``x.requires_grad``), torch on either.

**Cost** (``scripts/bench_scattering.py``; run times and memory in ``BENCHMARKS.md``,
"Scattering front-end: graph backend vs healpy"): at nside 1024 the graph transform is
faster than the harmonic backend, and most of its memory is the graphs and operators; at
nside 256 it is slower than the harmonic one. With 8 neighbours on level 0 and 20 on the
coarser levels instead of 8 on every level it is slightly slower and needs more memory,
and it is 3 times closer to the harmonic coefficients at order 0 (6e-3 instead of 2.3e-2
relative difference). The setup (graphs, then calibration and operators) is paid once per
hierarchy.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import torch
from torch import nn

from ..graphs.hierarchy import SphereHierarchy
from ..graphs.operator import (
    SparseOperator,
    chebyshev_basis,
    check_normalization,
    scipy_to_torch_csr,
)
from ..nn.sphere_pool import sphere_pool
from .backend import check_backend_arguments, check_maps
from .calibration import degree_calibration, pooling_gain
from .degree_filter import (
    DEFAULT_ORDER,
    LAMBDA_MAX_METHODS,
    chebyshev_operator,
    check_order,
    degree_filter,
    kernel_coefficients,
    mass_roots,
)
from .filters import FilterBank, k_lambda
from .resolution import effective_nside, interpolation_matrix, level_for_band_limit

__all__ = [
    "DEFAULT_ORDER",
    "LAMBDA_MAX_METHODS",
    "SCALING_CUTOFF",
    "SCALING_MARGIN",
    "WAVELET_MARGIN",
    "GraphBackend",
    "LevelPlan",
    "chebyshev_operator",
    "degree_filter",
    "kernel_coefficients",
]

#: Resolution margin of the wavelet placement: wavelet :math:`j` goes to the coarsest
#: level with effective nside :math:`\ge` ``WAVELET_MARGIN`` :math:`\lambda^{j+1}`.
WAVELET_MARGIN = 1.0

#: Resolution margin of the scaling function: :math:`\Phi` is applied on the coarsest
#: level with effective nside :math:`\ge` ``SCALING_MARGIN`` :math:`\lambda^{J_0}` (no
#: coarser than the output level) and interpolated to the output level (module
#: docstring).
SCALING_MARGIN = 2.0

#: Bounds of the factor applied to ``order`` for a wavelet or :math:`\Phi` whose band ends
#: below (more terms) or above (``order``) its level's resolution.
MIN_ORDER_FACTOR, MAX_ORDER_FACTOR = 1.0, 4.0

#: Smallest factor applied to ``order`` for a low-pass with a transition wider than an
#: octave (such as the low-pass of a map that only :math:`\Phi` still needs).
DOWN_MIN_ORDER_FACTOR = 0.5

#: On the level just finer than the one of :math:`\Phi`, the low-pass of a map that only
#: :math:`\Phi` still needs cuts at this fraction of the level's resolution (module
#: docstring).
SCALING_CUTOFF = 0.5


@dataclass
class LevelPlan:
    r"""What happens on one level: the wavelets placed there and the filters' coefficients.

    Attributes:
        level: index in the hierarchy.
        scales: wavelet scales ``j`` computed on this level.
        resolution: effective nside of the level.
        lambda_max: upper end of the Chebyshev interval.
        coefficients: ``{name: [terms] float64}`` for ``"psi<j>"`` (wavelet ``j``),
            ``"down<B>"`` (the low-pass keeping degrees up to ``B`` before moving to the
            next level) and ``"phi"`` (on the level of :math:`\Phi` only).
    """

    level: int
    scales: list[int]
    resolution: float
    lambda_max: float
    coefficients: dict[str, np.ndarray] = field(default_factory=dict)


def _check_margin(margin: Any) -> float:
    if isinstance(margin, bool) or not isinstance(margin, numbers.Real) \
            or not (math.isfinite(margin) and margin > 0):
        raise ValueError(f"margin must be a positive number, got {margin!r}")
    return float(margin)


class GraphBackend(nn.Module):
    r"""Scattering with Chebyshev filters of the graph Laplacians on a hierarchy.

    Implements the :class:`~deepsphere_pyg.scattering.backend.ScatteringBackend` protocol
    for any :class:`~deepsphere_pyg.graphs.SphereHierarchy` (HEALPix full or partial sky,
    other samplings, irregular point sets); the method is in the module docstring.

    Args:
        hierarchy: the levels, finest first; maps live on level 0.
        bank: filter bank (kernels as functions of the degree).
        depth: highest scattering order, ``1 <= depth <= 3``.
        output_level: level receiving the coefficients.
        order: Chebyshev terms of a filter whose band ends at its level's resolution
            (default :data:`DEFAULT_ORDER` = 30; other filters in proportion, module
            docstring).
        margin: resolution margin of the wavelet placement (default
            :data:`WAVELET_MARGIN` = 1;
            :func:`~deepsphere_pyg.scattering.resolution.level_for_band_limit`).
        normalization: Laplacian, ``None`` (combinatorial, default), ``"sym"``, ``"rw"``
            or ``"mass"`` (the mass Laplacian with the graphs' ``node_weight``, mass-
            weighted moves between levels; module docstring).
        lambda_max: ``"bound"`` (default) or ``"lanczos"`` (:func:`chebyshev_operator`).

    Attributes:
        band_level (dict[int, int]): level of each wavelet scale.
        scaling_level (int): level where :math:`\Phi` is applied (at most
            ``output_level``).
        plans (list[LevelPlan]): levels ``0 .. scaling_level``.
        operator_<l>: buffers, the rescaled Laplacians :math:`2L/\lambda_\max - I` (CSR,
            int32 indices), shared with the graphs' caches.
        pool_index_<l>: buffers, child -> parent maps from level ``l`` to ``l + 1``.
        mass_root_<l>: buffers ``[N_l, 1]``, :math:`\sqrt{m}` of level ``l``
            (``"mass"`` only, else ``None``).
        pool_weight_<l>: buffers ``[N_l, 1]``, :math:`m_i / \sum_{\mathcal C(p)} m` of
            the children of level ``l`` (``"mass"`` only, else ``None``).
        interpolation: buffer, ``[N_out, N_s]`` CSR interpolation from the level of
            :math:`\Phi` to the output level (``None`` when they coincide).

    Raises:
        TypeError, ValueError: bad arguments (see
            :func:`~deepsphere_pyg.scattering.backend.check_backend_arguments`).

    Shapes:
        - **input:** ``[B, N0, C]``, ``N0`` = nodes of level 0.
        - **output:** ``[B, N_out, C, P]``, ``N_out`` = nodes of ``output_level``,
          ``P = len(bank.paths(depth))``.
    """

    def __init__(
        self,
        hierarchy: SphereHierarchy,
        bank: FilterBank,
        depth: int,
        output_level: int,
        *,
        order: int = DEFAULT_ORDER,
        margin: float = WAVELET_MARGIN,
        normalization: str | None = None,
        lambda_max: str = "bound",
    ) -> None:
        super().__init__()
        depth, output_level = check_backend_arguments(hierarchy, bank, depth, output_level)
        check_normalization(normalization, mass=True)
        if lambda_max not in LAMBDA_MAX_METHODS:
            raise ValueError(f"lambda_max must be one of {LAMBDA_MAX_METHODS}, "
                             f"got {lambda_max!r}")
        self.bank = bank
        self.depth = depth
        self.output_level = output_level
        self.order = check_order(order)
        self.margin = _check_margin(margin)
        self.normalization = normalization
        self.lambda_max_method = lambda_max
        self.paths = bank.paths(depth)
        self.num_nodes = hierarchy.num_nodes[: output_level + 1]

        lam = bank.lam
        self.scaling_level = min(
            level_for_band_limit(hierarchy, bank.scaling_band_limit, SCALING_MARGIN),
            output_level)
        self.band_level = {
            j: min(level_for_band_limit(hierarchy, lam ** (j + 1), self.margin),
                   self.scaling_level)
            for j in bank.scales
        }
        self.resolution = [effective_nside(hierarchy[level])
                           for level in range(self.scaling_level + 1)]
        # The filters each level needs: follow every path from the level it is created on.
        needed: list[set[str]] = [set() for _ in range(self.scaling_level + 1)]
        pending = [((), "both")]
        for level in range(self.scaling_level + 1):
            moved = []
            while pending:
                created = []
                for key in pending:
                    names, moves = self._requests(key, level)
                    needed[level].update(names)
                    if key[1] != "phi":
                        created += [((*key[0], j), "both")
                                    for j in self._children(key[0], level)]
                    moved += [(key[0], role) for _, role in moves]
                pending = created
            pending = moved
        self.plans: list[LevelPlan] = []
        for level in range(self.scaling_level + 1):
            self.plans.append(self._plan(hierarchy, level, sorted(needed[level])))
            graph = hierarchy[level]
            operator, _ = chebyshev_operator(graph, normalization, lambda_max)
            self.register_buffer(f"operator_{level}", operator, persistent=False)
            root = mass_roots(graph) if normalization == "mass" else None
            self.register_buffer(f"mass_root_{level}", root, persistent=False)
        for level in range(self.scaling_level):
            index = hierarchy.pool_index[level]
            self.register_buffer(f"pool_index_{level}", index, persistent=False)
            share = None
            if normalization == "mass":
                mass = getattr(self, f"mass_root_{level}") ** 2
                totals = torch.zeros(self.num_nodes[level + 1], 1, dtype=mass.dtype,
                                     device=mass.device).index_add_(0, index.to(mass.device),
                                                                    mass)
                share = mass / totals[index]
            self.register_buffer(f"pool_weight_{level}", share, persistent=False)
        final = None
        if self.scaling_level < output_level:
            final = scipy_to_torch_csr(
                interpolation_matrix(hierarchy[self.scaling_level].pos,
                                     hierarchy[output_level].pos),
                hierarchy[output_level].pos.dtype)
        self.register_buffer("interpolation", final, persistent=False)

    # ------------------------------------------------------------------ schedule
    def _children(self, path: tuple[int, ...], level: int) -> list[int]:
        """Scales extending ``path`` whose wavelet is computed on ``level``."""
        if len(path) >= self.depth:
            return []
        return [j for j in self.bank.scales
                if self.band_level[j] == level and (not path or j < path[-1])]

    def _later_bands(self, path: tuple[int, ...], level: int) -> list[int]:
        """Scales extending ``path`` whose wavelet is computed below ``level``."""
        if len(path) >= self.depth:
            return []
        return [j for j in self.bank.scales
                if self.band_level[j] > level and (not path or j < path[-1])]

    def _requests(self, key: tuple[tuple[int, ...], str], level: int
                  ) -> tuple[list[str], list[tuple[str, str]]]:
        r"""Filters applied to the signal ``key = (path, role)`` on ``level``, and the
        ``(filter, role)`` of the copy moved to the next level (none on the last level).

        Roles: ``"both"`` (wavelets extending the path may follow, and :math:`\Phi`),
        ``"phi"`` (only :math:`\Phi` is left), ``"bands"`` (only wavelets: on the level
        just finer than the one of :math:`\Phi` a ``"both"`` signal is sent down twice,
        as ``"bands"`` and as ``"phi"``). The low-pass before a move keeps the highest
        degree still needed (:math:`\lambda^{j+1}` of the later wavelets,
        :math:`\lambda^{J_0}`).
        """
        path, role = key
        names = [] if role == "phi" else [f"psi{j}" for j in self._children(path, level)]
        if level == self.scaling_level:
            return ([*names, "phi"] if role != "bands" else names), []
        later = [] if role == "phi" else self._later_bands(path, level)
        scaling = f"down{self.bank.scaling_band_limit:g}"
        if later and role == "both" and level == self.scaling_level - 1:
            passband = max(self.bank.lam ** (j + 1) for j in later)
            moves = [(f"down{passband:g}", "bands"), (scaling, "phi")]
        elif later:
            passband = max([self.bank.scaling_band_limit]
                           + [self.bank.lam ** (j + 1) for j in later])
            moves = [(f"down{passband:g}", role)]
        else:
            moves = [(scaling, "phi")] if role != "bands" else []
        for name, _ in moves:
            if name not in names:
                names.append(name)
        return names, moves

    # ------------------------------------------------------------- construction
    def _plan(self, hierarchy: SphereHierarchy, level: int, names: list[str]) -> LevelPlan:
        """Chebyshev coefficients of the filters ``names`` on ``level``."""
        graph = hierarchy[level]
        bank, lam = self.bank, self.bank.lam
        _, top = chebyshev_operator(graph, self.normalization, self.lambda_max_method)
        plan = LevelPlan(level, [j for j in bank.scales if self.band_level[j] == level],
                         self.resolution[level], top)
        degree_map = degree_calibration(graph, self.normalization)
        cutoffs = {}
        for name in names:
            if name.startswith("down"):
                passband = float(name[4:])
                cutoff = plan.resolution
                if passband == bank.scaling_band_limit and level == self.scaling_level - 1:
                    cutoff *= SCALING_CUTOFF
                cutoffs[name] = max(cutoff, lam * passband)
        gain = None
        if cutoffs:
            top_degree = int(math.ceil(max(cutoffs.values()))) + 1
            gain = pooling_gain(hierarchy[level], hierarchy[level + 1],
                                hierarchy.pool_index[level], top_degree,
                                weighted=self.normalization == "mass")
        for name in names:
            if name == "phi":
                response, edge = bank.scaling, bank.scaling_band_limit
            elif name.startswith("psi"):
                j = int(name[3:])
                response, edge = partial(bank.wavelet, j=j), lam ** (j + 1)
            else:
                edge = cutoffs[name]
                passband = float(name[4:])
                response = self._downsampling_response(gain, passband, edge)
            ratio = max(plan.resolution / edge, MIN_ORDER_FACTOR)
            if name.startswith("down"):
                # A low-pass whose transition is wider than the usual octave (resolution/2
                # to resolution) needs fewer terms (module docstring).
                ratio = min(1.0, 0.5 * plan.resolution / (edge - passband))
                ratio = max(ratio, DOWN_MIN_ORDER_FACTOR)
            terms = self._terms(ratio)
            plan.coefficients[name] = kernel_coefficients(response, degree_map, terms, top)
        return plan

    def _terms(self, ratio: float) -> int:
        """``order`` times ``ratio``, clipped to [DOWN_MIN_ORDER_FACTOR, MAX_ORDER_FACTOR]."""
        factor = min(max(ratio, DOWN_MIN_ORDER_FACTOR), MAX_ORDER_FACTOR)
        return max(2, int(math.ceil(self.order * factor)))

    @staticmethod
    def _downsampling_response(gain: np.ndarray, passband: float, cutoff: float):
        r""":math:`h(\ell)`: 1 up to ``passband``, 0 from ``cutoff`` on, divided by the
        pooling gain ``gain`` (per integer degree; module docstring)."""
        # Where averaging nearly cancels a degree (far above every resolved band) the
        # gain is not divided out.
        gain = np.where(gain > 0.05, gain, 1.0)
        degrees = np.arange(gain.size, dtype=np.float64)
        ratio = cutoff / passband

        def response(ell: np.ndarray) -> np.ndarray:
            step = k_lambda(np.asarray(ell) / cutoff, ratio)
            return step / np.interp(ell, degrees, gain)

        return response

    def config(self) -> dict[str, Any]:
        """Settings beyond the constructor arguments that change the output."""
        return {"order": self.order, "margin": self.margin,
                "normalization": self.normalization, "lambda_max": self.lambda_max_method,
                "band_level": {str(j): b for j, b in self.band_level.items()},
                "scaling_level": self.scaling_level,
                "terms": {str(p.level): {name: len(c) for name, c in p.coefficients.items()}
                          for p in self.plans}}

    # ------------------------------------------------------------------ forward
    def _filter(self, level: int, signals: list[torch.Tensor],
                requests: list[list[str]]) -> list[dict[str, torch.Tensor]]:
        """Apply the filters ``requests[i]`` of ``level`` to ``signals[i]`` ``[N, F_i]``,
        sharing one Chebyshev recurrence; returns ``{name: [N, F_i]}`` per signal."""
        plan = self.plans[level]
        widths = [s.shape[1] for s in signals]
        starts = np.concatenate([[0], np.cumsum(widths)]).tolist()
        x = torch.cat(signals, dim=1) if len(signals) > 1 else signals[0]
        operator = SparseOperator.for_signals(getattr(self, f"operator_{level}"), x.dtype)
        root = getattr(self, f"mass_root_{level}")
        if root is not None:
            # M^-1/2 g(S) M^1/2 x: the recurrence runs on M^1/2 x (module docstring).
            root = root.to(x.dtype)
            x = x * root
        # Per filter: contiguous column runs of the signals requesting it.
        runs: dict[str, list[tuple[int, int]]] = {}
        for i, names in enumerate(requests):
            for name in names:
                spans = runs.setdefault(name, [])
                if spans and spans[-1][1] == starts[i]:
                    spans[-1] = (spans[-1][0], starts[i + 1])
                else:
                    spans.append((starts[i], starts[i + 1]))
        coefficients = {name: plan.coefficients[name].tolist() for name in runs}
        out = {(name, span): x[:, span[0]:span[1]] * coefficients[name][0]
               for name, spans in runs.items() for span in spans}
        terms = max(len(c) for c in coefficients.values())
        basis = chebyshev_basis(x, operator, terms)
        next(basis)  # T_0 x: already in out
        for k, current in enumerate(basis, start=1):
            for (name, span), value in out.items():
                c = coefficients[name][k] if k < len(coefficients[name]) else 0.0
                if c != 0.0:
                    value.add_(current[:, span[0]:span[1]], alpha=c)
        if root is not None:
            out = {key: value / root for key, value in out.items()}
        results: list[dict[str, torch.Tensor]] = [{} for _ in signals]
        for (name, span), value in out.items():
            for i in range(len(signals)):
                if span[0] <= starts[i] < span[1]:
                    results[i][name] = value[:, starts[i] - span[0]:starts[i + 1] - span[0]]
        return results

    def _filter_groups(self, level: int, signals: list[torch.Tensor],
                       requests: list[list[str]]
                       ) -> list[dict[str, torch.Tensor]]:
        """:meth:`_filter` on groups of signals needing the same number of terms (a
        product costs about the same per column, so short expansions run apart)."""
        coefficients = self.plans[level].coefficients
        terms = [max(len(coefficients[name]) for name in names) for names in requests]
        results: list[dict[str, torch.Tensor]] = [{} for _ in signals]
        for length in sorted(set(terms)):
            members = [i for i, t in enumerate(terms) if t == length]
            group = self._filter(level, [signals[i] for i in members],
                                 [requests[i] for i in members])
            for i, result in zip(members, group, strict=True):
                results[i] = result
        return results

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scattering coefficients ``[B, N_out, C, P]`` of maps ``x`` ``[B, N0, C]``."""
        x = check_maps(x, self.num_nodes[0], finite=False)
        batch, num_nodes, channels = x.shape
        autograd = torch.is_grad_enabled() and x.requires_grad
        arriving = {(): x.permute(1, 0, 2).reshape(num_nodes, batch * channels)}
        if not autograd:
            arriving[()] = arriving[()].contiguous()
        outputs: dict[tuple[int, ...], torch.Tensor] = {}
        arriving = {((), "both"): arriving[()]}
        for level in range(self.scaling_level + 1):
            moving: dict[tuple[tuple[int, ...], str], torch.Tensor] = {}
            pending = arriving
            while pending:
                keys = [key for key in pending if self._requests(key, level)[0]]
                plans = [self._requests(key, level) for key in keys]
                results = self._filter_groups(level, [pending[key] for key in keys],
                                              [names for names, _ in plans])
                pending = {}
                for (path, role), (_, moves), result in zip(keys, plans, results, strict=True):
                    if role != "phi":
                        for j in self._children(path, level):
                            pending[((*path, j), "both")] = result[f"psi{j}"].abs()
                    if "phi" in result:
                        outputs[path] = result["phi"]
                    for name, new_role in moves:
                        moving[(path, new_role)] = result[name]
            if level < self.scaling_level:
                arriving = self._move_down(level, moving)
        stacked = torch.cat([outputs[p.scales] for p in self.paths], dim=1)
        if self.interpolation is not None:
            stacked = SparseOperator.for_signals(self.interpolation, stacked.dtype)(stacked)
        n_out = stacked.shape[0]
        stacked = stacked.reshape(n_out, len(self.paths), batch, channels)
        return stacked.permute(2, 0, 3, 1)

    def _move_down(self, level: int, signals: dict[Any, torch.Tensor]
                   ) -> dict[Any, torch.Tensor]:
        """Mean over the children of each parent of every signal (one pooling call;
        ``"mass"``: the mass-weighted mean)."""
        paths = list(signals)
        widths = [signals[p].shape[1] for p in paths]
        x = torch.cat([signals[p] for p in paths], dim=1)
        index = getattr(self, f"pool_index_{level}")
        share = getattr(self, f"pool_weight_{level}")
        if share is None:
            pooled = sphere_pool(x, index, "avg", num_parents=self.num_nodes[level + 1])
        else:
            pooled = torch.zeros(self.num_nodes[level + 1], x.shape[1], dtype=x.dtype,
                                 device=x.device).index_add_(0, index, x * share.to(x.dtype))
        parts = torch.split(pooled, widths, dim=1)
        return {p: part.contiguous() for p, part in zip(paths, parts, strict=True)}

    def extra_repr(self) -> str:
        levels = {j: b for j, b in sorted(self.band_level.items())}
        return (f"J0={self.bank.J0}, J={self.bank.J}, L={self.bank.L}, depth={self.depth}, "
                f"output_level={self.output_level}, order={self.order}, "
                f"margin={self.margin:g}, normalization={self.normalization!r}, "
                f"band_level={levels}")

