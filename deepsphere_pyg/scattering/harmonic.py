r"""Exact spherical-harmonic scattering of full-sky HEALPix maps (healpy transforms).

Every convolution is a product in harmonic space: analyse, multiply each degree by the
kernel (:func:`healpy.almxfl`), synthesise. For a map :math:`f` on level 0
(:math:`n_\mathrm{side}`, RING order inside, the graph's node order outside):

.. math::

    a = \mathrm{map2alm}(f), \qquad
    U[p + (j,)] f = \bigl|\mathrm{alm2map}\bigl(\kappa_j \cdot a^{U[p]},
                                                n_\mathrm{side}\bigr)\bigr|, \qquad
    S[p] f = \mathrm{alm2map}\bigl(\Phi \cdot a^{U[p]},\ n_\mathrm{side}^\mathrm{out}\bigr),

with :math:`a^{U[p]}` the analysis of :math:`U[p] f`. The modulus is taken at the full
resolution of level 0. :math:`S[p] f` is band-limited to :math:`\ell < \lambda^{J_0}`, and
the output holds its point samples at the pixels of the output level (not pixel averages),
so it can be rotated exactly in harmonic space.

**Cost.** Each :math:`U[p]` is analysed once and its coefficients serve every next
wavelet and :math:`\Phi`; each transform stops at the highest degree its kernels need:
the input is analysed up to :math:`L - 1`, :math:`U[p]` up to the largest degree where
:math:`\Phi` or a next wavelet :math:`\kappa_{j'}` (:math:`j' < j_m`) is non-zero (below
:math:`\lambda^{j_m}`), a wavelet map is synthesised up to the top of its band
(below :math:`\lambda^{j+1}`), the output up to the top of :math:`\Phi`. A map with
:math:`n` wavelet scales costs, at depth 2, :math:`1 + n + n(n-1)/2` syntheses and as many
analyses at level 0, most of them at low degree (dominated by the ring FFTs). Run times
measured at nside 64, 256 and 1024 (where the ``iter=3`` analysis of the input is a large
share): ``BENCHMARKS.md``, "Costs behind the library's defaults".

**Analysis accuracy** (measured on white-spectrum maps; relative error of the coefficients
in the band of each kernel). HEALPix has no exact quadrature, so ``map2alm`` with Jacobi
iterations is an approximation near :math:`\ell_\max = 3 n_\mathrm{side} - 1`:

* the input: ``map2alm(iter=3)`` (:data:`INPUT_ITER`), as :func:`healpy.smoothing`.
  In the band of :math:`\Phi` and the low wavelets the error is :math:`\sim 5 \times
  10^{-4}` at nside 32 and 64 and :math:`6 \times 10^{-5}` at nside 128 (``iter=0``:
  :math:`\sim 5 \times 10^{-3}`); in the two top wavelet bands
  (:math:`\ell > 1.5\, n_\mathrm{side}`) it is 12-22 % for any method, an intrinsic
  limit of the sampling. :func:`healpy.map2alm_lsq` reaches :math:`10^{-5}` at low
  degree (and 4-12 % at the top) but needs 30-50 iterations of a synthesis and an
  analysis, far more time than ``iter=3`` (``BENCHMARKS.md``, "Costs behind the
  library's defaults"): prohibitive at nside 1024, so it is not used.
* :math:`U[p]`: plain quadrature ``map2alm(iter=0)`` (:data:`MODULUS_ITER`). The modulus
  is not band-limited, so its samples at level 0 determine its low-degree coefficients
  only up to the aliasing of its high-degree tail: measured against the modulus sampled
  at eight times the resolution, the error at nside 64 is :math:`10^{-4}` (:math:`j = 3`),
  :math:`4 \times 10^{-3}` (:math:`j = 5`) and 0.2 (:math:`j = 7`, analysed up to
  :math:`\ell = 127`; :math:`4 \times 10^{-3}` for the degrees :math:`\ell < 4` of
  :math:`\Phi`); ``iter=3`` (7 transforms instead of 1) or least squares change these
  errors by at most 15 %.

The transforms run on CPU (numpy, float64); inputs on another device are copied to the
CPU and the result is returned on the input's device, in its dtype. The output does not
carry gradients (healpy is not differentiable); use the graph backend for gradients.

**Threads.** healpy's transforms use OpenMP. :attr:`HarmonicBackend.num_threads` sets
the number of OpenMP threads while the backend runs (restored afterwards); ``None`` leaves
OpenMP as configured (``OMP_NUM_THREADS``). The default is one thread: the front-end runs
over whole data sets, where running maps in parallel processes
(:func:`deepsphere_pyg.precompute.precompute` with ``num_workers``) uses the cores
better than threads inside each transform, and on a loaded machine OpenMP threads waiting
for busy cores cost far more than they save, for single transforms as for whole
scattering transforms (``BENCHMARKS.md``, "Costs behind the library's defaults"). For one
large map on an idle many-core machine, set ``num_threads`` to the number of cores.
"""

from __future__ import annotations

import contextlib
import numbers
from collections.abc import Sequence
from typing import Any

import healpy as hp
import numpy as np
import torch
from torch import nn

from ..graphs.hierarchy import SphereHierarchy
from ..graphs.sphere_graph import SphereGraph
from ..openmp import openmp_threads
from .backend import check_backend_arguments, check_maps, raise_not_finite
from .filters import FilterBank, ScatteringPath

__all__ = ["DEFAULT_NUM_THREADS", "INPUT_ITER", "MODULUS_ITER", "HarmonicBackend"]

#: Jacobi iterations of ``map2alm`` for the input maps (module docstring).
INPUT_ITER = 3
#: Jacobi iterations of ``map2alm`` for the modulus maps :math:`U[p] f`.
MODULUS_ITER = 0
#: Default OpenMP threads of the transforms (module docstring); ``None``: OpenMP's own.
DEFAULT_NUM_THREADS: int | None = 1


def _full_sky_healpix(graph: SphereGraph, where: str) -> tuple[int, bool]:
    """``(nside, nest)`` of a full-sky HEALPix graph, else a ValueError naming ``where``."""
    sampling = getattr(graph, "sampling", None)
    if sampling != "healpix" or "nside" not in graph:
        raise ValueError(
            f"the harmonic backend needs full-sky HEALPix graphs, but {where} has "
            f"sampling={sampling!r}; use backend='graph' for other samplings"
        )
    nside = int(graph.nside)
    npix = hp.nside2npix(nside)
    if getattr(graph, "pixels", None) is not None or int(graph.num_nodes) != npix:
        raise ValueError(
            f"the harmonic backend needs full-sky HEALPix graphs, but {where} is a partial "
            f"sky ({int(graph.num_nodes)} of {npix} pixels at nside={nside}); spherical-"
            "harmonic transforms of a masked map mix in the mask, so use backend='graph' "
            "for partial-sky hierarchies"
        )
    return nside, bool(getattr(graph, "nest", True))


def _top_degree(kernel: np.ndarray) -> int:
    """Largest degree where ``kernel`` (indexed by degree) is non-zero (0 if none)."""
    nonzero = np.flatnonzero(kernel)
    return int(nonzero[-1]) if nonzero.size else 0


def _children(paths: Sequence[ScatteringPath]) -> dict[tuple[int, ...], list[int]]:
    """For each path's scales, the scales ``j`` of the paths that extend it by ``(j,)``."""
    children: dict[tuple[int, ...], list[int]] = {p.scales: [] for p in paths}
    for path in paths:
        if path.scales:
            children[path.scales[:-1]].append(path.scales[-1])
    return children


class HarmonicBackend(nn.Module):
    r"""Scattering by exact spherical-harmonic filtering (healpy), full-sky HEALPix only.

    Implements the :class:`~deepsphere_pyg.scattering.backend.ScatteringBackend` protocol;
    the method and its accuracy are described in the module docstring.

    Args:
        hierarchy: full-sky HEALPix hierarchy (any node order; the builders use NEST).
        bank: filter bank; its band limit ``L`` may not exceed :math:`3 n_\mathrm{side}`
            of level 0.
        depth: highest scattering order, ``1 <= depth <= 3``.
        output_level: level whose pixels receive the coefficients.
        num_threads: OpenMP threads of the healpy transforms (default
            :data:`DEFAULT_NUM_THREADS` = 1; ``None``: as OpenMP is configured; module
            docstring). Does not change the output; also settable as an attribute.

    Attributes:
        phi, psi: buffers ``[L]`` and ``[n, L]`` (float64), :math:`\Phi(\ell)` and
            :math:`\kappa_j(\ell)` at the degrees ``0 .. L-1``.

    Raises:
        ValueError: a level used is not full-sky HEALPix (use the graph backend), or
            ``bank.L`` exceeds :math:`3 n_\mathrm{side}`.

    Shapes:
        - **input:** ``[B, N0, C]``, ``N0`` = pixels of level 0, in the graph's node order.
        - **output:** ``[B, N_out, C, P]``, ``N_out`` = pixels of ``output_level``,
          ``P = len(bank.paths(depth))``.
    """

    def __init__(
        self,
        hierarchy: SphereHierarchy,
        bank: FilterBank,
        depth: int,
        output_level: int,
        *,
        num_threads: int | None = DEFAULT_NUM_THREADS,
    ) -> None:
        super().__init__()
        depth, output_level = check_backend_arguments(hierarchy, bank, depth, output_level)
        nside_in, nest_in = _full_sky_healpix(hierarchy[0], "level 0")
        nside_out, nest_out = _full_sky_healpix(
            hierarchy[output_level], f"level {output_level} (the output level)")
        if bank.L > 3 * nside_in:
            raise ValueError(
                f"bank.L={bank.L} exceeds 3 * nside = {3 * nside_in} of level 0: HEALPix "
                f"maps at nside {nside_in} hold degrees below {3 * nside_in} only; use "
                f"L <= {3 * nside_in}"
            )
        self.bank = bank
        self.depth = depth
        self.output_level = output_level
        self.nside_in, self.nside_out = nside_in, nside_out
        self.num_threads = num_threads
        self.paths = bank.paths(depth)
        self._children = _children(self.paths)

        degrees = np.arange(bank.L, dtype=np.float64)
        phi, psi = bank.kernels(degrees)
        self.register_buffer("phi", torch.from_numpy(phi), persistent=False)
        self.register_buffer("psi", torch.from_numpy(psi), persistent=False)
        # Highest degree each kernel needs (capped at L - 1 by the degrees evaluated).
        self.phi_lmax = _top_degree(phi)
        self.psi_lmax = {j: _top_degree(row) for j, row in zip(bank.scales, psi, strict=True)}
        self.scale_index = {j: i for i, j in enumerate(bank.scales)}
        # Band limit of each analysis: the largest degree of Phi and of the next wavelets.
        self.analysis_lmax = {
            prefix: max([self.phi_lmax] + [self.psi_lmax[j] for j in nxt])
            for prefix, nxt in self._children.items()
        }
        # RING pixel r holds node ring_to_node[r] of level 0; output node i is RING pixel
        # node_to_ring[i] of the output level.
        ring = np.arange(hp.nside2npix(nside_in))
        ring_to_node = hp.ring2nest(nside_in, ring) if nest_in else ring
        out_nodes = np.arange(hp.nside2npix(nside_out))
        node_to_ring = hp.nest2ring(nside_out, out_nodes) if nest_out else out_nodes
        self.register_buffer("ring_to_node", torch.from_numpy(ring_to_node), persistent=False)
        self.register_buffer("node_to_ring", torch.from_numpy(node_to_ring), persistent=False)

    # ------------------------------------------------------------------ helpers
    def config(self) -> dict[str, Any]:
        """Settings beyond the constructor arguments that change the output."""
        return {"input_iter": INPUT_ITER, "modulus_iter": MODULUS_ITER}

    def _ring_maps(self, x: torch.Tensor) -> np.ndarray:
        """``[B, N0, C]`` tensor -> ``[B * C, N0]`` float64 RING maps (a copy)."""
        batch, num_nodes, channels = x.shape
        maps = x.detach().to(device="cpu", dtype=torch.float64)
        maps = maps.permute(0, 2, 1).reshape(batch * channels, num_nodes).numpy()
        maps = maps[:, self.ring_to_node.cpu().numpy()]
        finite = np.isfinite(maps)
        if not finite.all():
            raise_not_finite(int(finite.size - np.count_nonzero(finite)))
        return maps

    @staticmethod
    def _filtered(alm: np.ndarray, lmax: int, kernel: np.ndarray, top: int) -> np.ndarray:
        """``kernel * alm`` truncated to degrees ``<= top`` (``alm`` has band ``lmax``)."""
        if top < lmax:
            alm = hp.resize_alm(alm, lmax, lmax, top, top)
        return hp.almxfl(alm, kernel[: top + 1])

    def _analyse(self, m: np.ndarray, lmax: int, iters: int) -> np.ndarray:
        return hp.map2alm(m, lmax=lmax, mmax=lmax, iter=iters, pol=False,
                          use_pixel_weights=False)

    def _synthesise(self, alm: np.ndarray, nside: int, lmax: int) -> np.ndarray:
        return hp.alm2map(alm, nside, lmax=lmax, mmax=lmax, pol=False)

    def _wavelet_map(self, alm: np.ndarray, lmax: int, j: int, psi: np.ndarray) -> np.ndarray:
        """:math:`f \\star \\psi_j` on level 0 (RING) from the coefficients of ``f``."""
        top = self.psi_lmax[j]
        filtered = self._filtered(alm, lmax, psi[self.scale_index[j]], top)
        return self._synthesise(filtered, self.nside_in, top)

    def _scatter(self, m: np.ndarray, phi: np.ndarray, psi: np.ndarray) -> np.ndarray:
        """``[P, N_out]`` RING coefficients of one RING map ``m`` (depth-first)."""
        out: dict[tuple[int, ...], np.ndarray] = {}
        lmax = self.analysis_lmax[()]
        stack = [((), self._analyse(m, lmax, INPUT_ITER), lmax)]
        while stack:
            prefix, alm, lmax = stack.pop()
            lowpass = self._filtered(alm, lmax, phi, self.phi_lmax)
            out[prefix] = self._synthesise(lowpass, self.nside_out, self.phi_lmax)
            for j in self._children[prefix]:
                u = np.abs(self._wavelet_map(alm, lmax, j, psi))
                child = (*prefix, j)
                child_lmax = self.analysis_lmax[child]
                stack.append((child, self._analyse(u, child_lmax, MODULUS_ITER), child_lmax))
        return np.stack([out[p.scales] for p in self.paths])

    def _kernels(self) -> tuple[np.ndarray, np.ndarray]:
        return self.phi.cpu().numpy(), self.psi.cpu().numpy()

    @property
    def num_threads(self) -> int | None:
        """OpenMP threads of the transforms (``None``: as OpenMP is configured)."""
        return self._num_threads

    @num_threads.setter
    def num_threads(self, value: int | None) -> None:
        if value is not None and (isinstance(value, bool) or not isinstance(
                value, numbers.Integral) or value < 1):
            raise ValueError(f"num_threads must be a positive integer or None, got {value!r}")
        self._num_threads = None if value is None else int(value)

    def _threads(self) -> contextlib.AbstractContextManager:
        return openmp_threads(self._num_threads)

    # ------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scattering coefficients ``[B, N_out, C, P]`` of maps ``x`` ``[B, N0, C]``."""
        x = check_maps(x, len(self.ring_to_node), finite=False)
        batch, _, channels = x.shape
        phi, psi = self._kernels()
        maps = self._ring_maps(x)
        out = np.empty((maps.shape[0], len(self.paths), hp.nside2npix(self.nside_out)))
        with self._threads():
            for i, m in enumerate(maps):
                out[i] = self._scatter(m, phi, psi)
        out = out[..., self.node_to_ring.cpu().numpy()]
        result = torch.from_numpy(out).reshape(batch, channels, len(self.paths), -1)
        return result.permute(0, 3, 1, 2).contiguous().to(device=x.device, dtype=x.dtype)

    def wavelet_coefficients(self, x: torch.Tensor) -> torch.Tensor:
        r"""First-layer wavelet maps :math:`f \star \psi_j` on level 0 (before the modulus).

        Args:
            x: maps ``[B, N0, C]`` on level 0.

        Returns:
            ``[B, N0, C, n]`` with ``n = len(bank.scales)``, scale ``bank.scales[i]`` at
            index ``i``, in the node order of level 0, dtype and device of ``x``.
        """
        x = check_maps(x, len(self.ring_to_node), finite=False)
        batch, num_nodes, channels = x.shape
        _, psi = self._kernels()
        maps = self._ring_maps(x)
        lmax = max(self.psi_lmax.values())
        ring_to_node = self.ring_to_node.cpu().numpy()
        out = np.empty((maps.shape[0], len(self.bank.scales), num_nodes))
        with self._threads():
            for i, m in enumerate(maps):
                alm = self._analyse(m, lmax, INPUT_ITER)
                for k, j in enumerate(self.bank.scales):
                    out[i, k, ring_to_node] = self._wavelet_map(alm, lmax, j, psi)
        result = torch.from_numpy(out).reshape(batch, channels, len(self.bank.scales), -1)
        return result.permute(0, 3, 1, 2).contiguous().to(device=x.device, dtype=x.dtype)

    def extra_repr(self) -> str:
        return (f"nside_in={self.nside_in}, nside_out={self.nside_out}, L={self.bank.L}, "
                f"J0={self.bank.J0}, J={self.bank.J}, depth={self.depth}, "
                f"num_paths={len(self.paths)}")
