r"""Segmentation maps: per-pixel classification of the extreme regions of a noisy random field.

A dense task for :class:`~deepsphere_pyg.models.SphericalUNet`-like models, on HEALPix or
on an equiangular (lat-lon) grid.

**Field.** A Gaussian random field band-limited to :math:`\ell_\max = 2 n_\mathrm{side} - 1`,

.. math::

    f(x) = \sum_{\ell=1}^{\ell_\max} \sum_{m=-\ell}^{\ell} a_{\ell m} Y_{\ell m}(x),
    \qquad \langle |a_{\ell m}|^2 \rangle = C_\ell \propto e^{-(\ell / \ell_c)^2},
    \quad \ell_c = n_\mathrm{side} / 2

(:func:`field_spectrum`, :func:`~deepsphere_pyg.data.spectra.gaussian_alm`): blobs of
about :math:`180° / \ell_c` (11° at ``nside=32``, six HEALPix pixels), evaluated exactly
at the nodes. On HEALPix with :func:`healpy.alm2map` (RING, then reordered to NEST); on
an equiangular grid by the ring-wise synthesis
:math:`f(\vartheta_j, \varphi_k) = A_0(\vartheta_j) + 2\,
\mathrm{Re} \sum_{m \ge 1} A_m(\vartheta_j) e^{i m \varphi_k}` with
:math:`A_m(\vartheta) = \sum_\ell a_{\ell m} \lambda_{\ell m}(\vartheta)` (normalised
associated Legendre functions) and an inverse real FFT along each ring. The same sample
index gives the same coefficients on both samplings. Each map is then standardised over
its nodes: :math:`\tilde f = (f - \mathrm{mean}) / \mathrm{std}`.

**Labels.** With the quantile levels :math:`q_1 < \dots < q_{C-1}` (``quantiles``) and
:math:`t_j` the empirical :math:`q_j`-quantile of :math:`\tilde f` over the map's nodes
(:func:`numpy.quantile`), the label of a node is the number of thresholds its clean
value exceeds, :math:`y = \sum_j [\tilde f > t_j]`. The default for three classes is
"extreme regions": class 0 below the 10 % quantile, 2 above the 90 % quantile, 1 between
(10 / 80 / 10 % of the nodes of every map); other class counts default to equal-count
bins :math:`q_j = j / C`. Quantiles count nodes (not areas).

**Input.** ``x`` is the standardised field plus white noise,
:math:`\tilde f + \sigma \epsilon` with :math:`\epsilon \sim \mathcal N(0, 1)` per node
and :math:`\sigma` = ``noise`` (default 0.5): a per-node threshold of ``x`` mislabels
many nodes near the boundaries, a model that averages neighbours does better.
"""

from __future__ import annotations

import dataclasses
import functools
import numbers
from collections.abc import Sequence
from typing import Any

import healpy as hp
import numpy as np
import scipy.special
import torch

from ..graphs import SphereHierarchy, equiangular_grid
from ..graphs.checks import check_nside, check_positive_int
from ..graphs.equiangular_layout import check_grid
from ..openmp import single_threaded_openmp
from .base import SyntheticSphereDataset
from .signal import SphereSignal
from .spectra import gaussian_alm

#: Samplings of :class:`SegmentationMaps`.
SAMPLINGS = ("healpix", "equiangular")

#: Quantile levels of the three-class "extreme regions" labels.
EXTREME_QUANTILES = (0.1, 0.9)


def field_spectrum(lmax: int, ell_scale: float | None = None) -> np.ndarray:
    r"""Angular power spectrum ``[lmax + 1]``: :math:`C_0 = 0`,
    :math:`C_\ell \propto e^{-(\ell / \ell_c)^2}` (:math:`\ell_c` = ``ell_scale``, default
    :math:`\ell_\max / 2`), normalised to unit pointwise variance
    :math:`\sum_\ell (2\ell + 1) C_\ell / 4\pi = 1`.

    Raises:
        ValueError: ``lmax < 1`` or ``ell_scale <= 0``.
    """
    lmax = check_positive_int(lmax, "lmax")
    scale = lmax / 2.0 if ell_scale is None else float(ell_scale)
    if not scale > 0:
        raise ValueError(f"ell_scale must be > 0, got {ell_scale!r}")
    ell = np.arange(lmax + 1, dtype=np.float64)
    cl = np.exp(-((ell / scale) ** 2))
    cl[0] = 0.0
    return cl * 4.0 * np.pi / np.sum((2.0 * ell + 1.0) * cl)


@dataclasses.dataclass(eq=False, repr=False, kw_only=True)
class SegmentationMaps(SyntheticSphereDataset):
    r"""Noisy random fields labelled by their (hidden) clean values' quantiles (module doc).

    **Samples.** ``x``: ``[N, 1]`` float32 noisy standardised field; ``y_node``: ``[N]``
    LongTensor labels in ``[0, num_classes)``. Node order: NEST for HEALPix
    (``N = 12 nside^2``), the equiangular graph's order (rows north to south, a pole row
    is one node) for ``sampling="equiangular"``.

    Args:
        split: ``"train"``, ``"val"`` or ``"test"``.
        num_samples: size of the split (default 800 / 100 / 100).
        seed: seed of the whole data set.
        nside: resolution; sets the field's band limit (:math:`\ell_\max = 2 n_\mathrm{side}
            - 1`, :math:`\ell_c = n_\mathrm{side} / 2`) on both samplings, and the HEALPix
            maps (power of two).
        num_classes: number of classes :math:`C \ge 2`.
        sampling: ``"healpix"`` or ``"equiangular"``.
        quantiles: ``C - 1`` increasing quantile levels in ``(0, 1)`` (default: (0.1, 0.9)
            for three classes, :math:`j / C` otherwise).
        noise: standard deviation :math:`\sigma \ge 0` of the input noise.
        nlat: equiangular rings (default ``4 nside``, ``4 nside + 1`` for Clenshaw-Curtis
            so that the grid can be pooled); the grid's default ``nlon``
            (:func:`~deepsphere_pyg.graphs.equiangular_grid`) must exceed
            :math:`2 \ell_\max`.
        grid: equiangular grid family (default Driscoll-Healy).
        transform: optional callable applied to each sample when read.
        cache: keep generated samples in memory.

    Raises:
        ValueError: unknown ``sampling``, ``nside`` not a power of two, ``num_classes < 2``,
            bad ``quantiles`` or ``noise``, a grid too coarse for the band limit.
    """

    nside: int = 32
    num_classes: int = 3
    sampling: str = "healpix"
    quantiles: Sequence[float] | None = None
    noise: float = 0.5
    nlat: int | None = None
    grid: str = "driscoll-healy"

    def __post_init__(self) -> None:
        super().__post_init__()
        sampling, num_classes, noise = self.sampling, self.num_classes, self.noise
        if sampling not in SAMPLINGS:
            raise ValueError(f"sampling must be one of {SAMPLINGS}, got {sampling!r}")
        self.nside = check_nside(self.nside)
        if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) \
                or num_classes < 2:
            raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
        self.num_classes = int(num_classes)
        self.quantiles = _check_quantiles(self.quantiles, self.num_classes)
        if isinstance(noise, bool) or not isinstance(noise, numbers.Real) or not noise >= 0:
            raise ValueError(f"noise must be a standard deviation >= 0, got {noise!r}")
        self.noise = float(noise)
        self.lmax = 2 * self.nside - 1
        self.cl = field_spectrum(self.lmax, ell_scale=self.nside / 2.0)
        if sampling == "equiangular":
            self.grid = check_grid(self.grid)
            default = 4 * self.nside + (self.grid == "clenshaw-curtis")
            self.nlat = check_positive_int(default if self.nlat is None else self.nlat, "nlat")
            lat, lon = equiangular_grid(self.nlat, grid=self.grid)
            self.nlon = int(lon.size)
            if self.lmax >= self.nlon / 2:
                raise ValueError(
                    f"an equiangular grid of nlon={self.nlon} longitudes cannot represent the "
                    f"field's band limit lmax={self.lmax} (needs nlon > {2 * self.lmax}); "
                    f"use a larger nlat (default 4 nside = {4 * self.nside})")
            self._synthesis = _RingSynthesis(lat, self.nlon, self.lmax)
        else:
            self.nlat = self.nlon = None
            self.grid = None

    @property
    def num_nodes(self) -> int:
        """Number of nodes of the sampling."""
        if self.sampling == "healpix":
            return hp.nside2npix(self.nside)
        return self._synthesis.num_nodes

    @property
    def pos(self) -> np.ndarray:
        """``[N, 3]`` float64 unit vectors of the nodes, in the samples' order."""
        if self.sampling == "healpix":
            return np.stack(hp.pix2vec(self.nside, np.arange(self.num_nodes), nest=True),
                            axis=1)
        return self._synthesis.pos

    def coefficients(self, index: int) -> np.ndarray:
        """Harmonic coefficients (healpy layout, ``lmax = 2 nside - 1``) of sample
        ``index``'s field, before standardisation."""
        return gaussian_alm(self.cl, self.rng(index))

    def clean_field(self, index: int) -> np.ndarray:
        r"""``[N]`` float64 standardised clean field :math:`\tilde f` of sample ``index``
        (the labels' source)."""
        return self._clean(self.coefficients(index))

    def labels(self, clean: np.ndarray) -> np.ndarray:
        """``[N]`` int64 labels of a standardised field (module doc)."""
        thresholds = np.quantile(clean, self.quantiles)
        return np.searchsorted(thresholds, clean, side="left").astype(np.int64)

    def generate(self, index: int, rng: np.random.Generator) -> SphereSignal:
        clean = self._clean(gaussian_alm(self.cl, rng))
        noisy = clean + self.noise * rng.standard_normal(clean.size)
        return SphereSignal(x=torch.from_numpy(noisy.astype(np.float32)[:, None]),
                            y_node=torch.from_numpy(self.labels(clean)))

    def hierarchy(self, levels: int, *, k: int = 8, **kwargs: Any) -> SphereHierarchy:
        """The sampling's hierarchy: :meth:`SphereHierarchy.healpix` (NEST) or
        :meth:`SphereHierarchy.equiangular` of the data set's grid; ``kwargs`` go to it."""
        if self.sampling == "healpix":
            return SphereHierarchy.healpix(self.nside, levels, k=k, **kwargs)
        return SphereHierarchy.equiangular(self.nlat, levels, nlon=self.nlon, grid=self.grid,
                                           k=k, **kwargs)

    def _clean(self, alm: np.ndarray) -> np.ndarray:
        if self.sampling == "healpix":
            with single_threaded_openmp():
                ring = hp.alm2map(alm, self.nside, lmax=self.lmax, mmax=self.lmax,
                                  pixwin=False)
            values = hp.reorder(ring, r2n=True)
        else:
            values = self._synthesis(alm)
        values = values - values.mean()
        return values / values.std()

    def extra_repr(self) -> str:
        grid = (f", nlat={self.nlat}, nlon={self.nlon}, grid={self.grid!r}"
                if self.sampling == "equiangular" else "")
        return (f"nside={self.nside}, num_classes={self.num_classes}, "
                f"sampling={self.sampling!r}{grid}, quantiles={self.quantiles}, "
                f"noise={self.noise:g}")


# --------------------------------------------------------------------------- helpers
class _RingSynthesis:
    """Exact evaluation of band-limited coefficients on the nodes of an equiangular grid.

    Nodes follow :func:`~deepsphere_pyg.graphs.equiangular_graph`: rows north to south,
    row-major, a pole row (latitude exactly +-90) as a single node.
    """

    def __init__(self, lat: np.ndarray, nlon: int, lmax: int) -> None:
        self.nlon, self.lmax = nlon, lmax
        theta = np.radians(90.0 - lat)
        ell, m = hp.Alm.getlm(lmax)
        legendre = _legendre(tuple(theta.tolist()), lmax)  # [lmax + 1, 2 lmax + 1, nlat]
        self._table = legendre[ell, m].T  # [nlat, num_alm]
        self._starts = hp.Alm.getidx(lmax, np.arange(lmax + 1), np.arange(lmax + 1))
        pole = np.abs(lat) == 90.0
        cells = [np.array([row * nlon]) if pole[row] else row * nlon + np.arange(nlon)
                 for row in range(lat.size)]
        self.cells = np.concatenate(cells)
        rows, cols = np.divmod(self.cells, nlon)
        lon = np.radians(360.0 * cols / nlon)
        lat_r = np.radians(lat[rows])
        self.pos = np.stack([np.cos(lat_r) * np.cos(lon), np.cos(lat_r) * np.sin(lon),
                             np.sin(lat_r)], axis=1)
        self.pos[pole[rows]] = [0.0, 0.0, 1.0]
        self.pos[pole[rows] & (lat[rows] < 0)] = [0.0, 0.0, -1.0]

    @property
    def num_nodes(self) -> int:
        return int(self.cells.size)

    def __call__(self, alm: np.ndarray) -> np.ndarray:
        terms = self._table * alm[None, :]  # [nlat, num_alm]
        a_m = np.add.reduceat(terms, self._starts, axis=1)  # [nlat, lmax + 1]
        spectrum = np.zeros((a_m.shape[0], self.nlon // 2 + 1), dtype=np.complex128)
        spectrum[:, :self.lmax + 1] = self.nlon * a_m
        grid = np.fft.irfft(spectrum, n=self.nlon, axis=1)  # [nlat, nlon]
        return grid.reshape(-1)[self.cells]


@functools.lru_cache(maxsize=4)
def _legendre(theta: tuple[float, ...], lmax: int) -> np.ndarray:
    return scipy.special.sph_legendre_p_all(lmax, lmax, np.asarray(theta))[0]


def _check_quantiles(quantiles: object, num_classes: int) -> tuple[float, ...]:
    if quantiles is None:
        if num_classes == 3:
            return EXTREME_QUANTILES
        return tuple(j / num_classes for j in range(1, num_classes))
    values = (tuple(float(q) for q in quantiles)  # type: ignore[union-attr]
              if isinstance(quantiles, Sequence) and not isinstance(quantiles, str) else ())
    if (len(values) != num_classes - 1 or not all(0.0 < q < 1.0 for q in values)
            or any(np.diff(values) <= 0)):
        raise ValueError(f"quantiles must be {num_classes - 1} increasing levels in (0, 1) "
                         f"(one per class boundary, num_classes={num_classes}), got "
                         f"{quantiles!r}")
    return values
