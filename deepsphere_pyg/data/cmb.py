r"""Gaussian vs non-Gaussian CMB temperature maps with the same power spectrum.

The task of the spherical scattering paper (McEwen et al., ICLR 2022): tell Gaussian CMB
maps (label 0) from maps with local-type non-Gaussianity (label 1) when both classes have
the same power spectrum, so that only higher-order statistics separate them.

**Maps.** At resolution ``nside`` (band limit :math:`L = 3 n_\mathrm{side} - 1`) the
target spectrum is :math:`\hat C_\ell = C^{TT}_\ell b_\ell^2` (:math:`\mu K^2`, Planck
2018 LCDM from :mod:`deepsphere_pyg.data.spectra`, :math:`b_\ell` the smoothing at the
pixel scale of :func:`~deepsphere_pyg.data.spectra.pixel_window`), with standard deviation
:math:`\sigma^2 = \sum_{\ell \le L} (2\ell+1) \hat C_\ell / 4\pi`. A map :math:`g` of a
Gaussian field with that spectrum is drawn (:func:`healpy.alm2map`).

* Label 0: :math:`T = g`.
* Label 1: the local form applied pixel by pixel,

  .. math:: T_\mathrm{NG} = g + \frac{f_\mathrm{NL}}{\sigma}\,(g^2 - \sigma^2),

  i.e. ``f_nl`` is dimensionless: the quadratic term's amplitude relative to the map's
  standard deviation (the usual :math:`f_\mathrm{NL}` with the map in units of
  :math:`\sigma`). Its one-point skewness is about :math:`6 f_\mathrm{NL}`.
  The quadratic term adds power: by Wick's theorem the expected spectrum of
  :math:`T_\mathrm{NG}` is :math:`\hat C_\ell + (f_\mathrm{NL}/\sigma)^2 C^{(2)}_\ell`,
  :math:`C^{(2)}` the spectrum of :math:`g^2 - \sigma^2` (Legendre transform of
  :math:`2\xi^2`, :func:`~deepsphere_pyg.data.spectra.squared_field_cl`). The map is
  therefore filtered by the fixed transfer function

  .. math:: h_\ell = \sqrt{\hat C_\ell / (\hat C_\ell + (f_\mathrm{NL}/\sigma)^2
            C^{(2)}_\ell)} \qquad (\ell \le L),

  so that the *expected* spectrum of label 1 equals :math:`\hat C_\ell` while each map
  keeps its own cosmic variance, as the Gaussian maps do (filtering each map to its own
  measured spectrum would remove that variance and give the label away). The filter is
  applied as a correction, :math:`T = T_\mathrm{NG} - \mathcal{A}^{-1}[(1 - h_\ell)\,
  \mathcal{A} T_\mathrm{NG}]` (:math:`\mathcal A` = :func:`healpy.map2alm` without
  iterations, :math:`\mathcal{A}^{-1}` = :func:`healpy.alm2map`), so the errors of the
  HEALPix analysis are scaled by :math:`1 - h_\ell` (below 1 % for
  :math:`f_\mathrm{NL} \le 0.1`). Power of the quadratic term above :math:`L`
  (a fraction :math:`\sim 10^{-4} (f_\mathrm{NL} / 0.05)^2` of the variance at nside 32,
  less at higher resolution) is not filtered.

Measured (class means of the spectrum binned at :math:`\ell \in [2, n/4), [n/4, n),
[n, 2n), [2n, 3n)`, :math:`n = n_\mathrm{side}`; ``tests/data/test_cmb.py`` checks the
same at nside 16, ``f_nl=0.1``):

=========  ======  ================  ===========================  ====================
nside      f_nl    maps per label    label 1 / label 0 - 1 (z)    skewness 0 / 1 (sd)
=========  ======  ================  ===========================  ====================
32         0.05    400               +1.3, +0.3, -0.2, +0.0 %     0.00 / 0.29 (0.08)
                                     (z <= 0.9)
64         0.02    200               -0.1, -0.4, -0.1, +0.1 %     0.00 / 0.12 (0.05)
                                     (z <= 1.0)
64         0.1     200               0.0, -0.4, -0.1, +0.3 %      0.00 / 0.59 (0.05)
                                     (z = 2.6 in the last bin)
=========  ======  ================  ===========================  ====================

So the spectra agree within the sampling error except, for strong non-Gaussianity, the
last bin (power of the quadratic term above :math:`L`, aliased by the HEALPix analysis).
At the default ``f_nl=0.02`` and nside 64, a threshold on the one-point skewness
separates the labels of 89 % of the maps; the excess kurtosis barely differs (0.01).

**Noise.** ``noise`` is relative: white Gaussian noise of standard deviation
``noise * pixel_std`` (:math:`\sigma`, the same for both labels) is added per pixel.

**Samples.** Sample :math:`i` has label :math:`i \bmod 2` (balanced) and is drawn from the
sample's random stream (:meth:`SyntheticSphereDataset.rng`): the Gaussian map, then the
noise, so the noiseless part does not depend on ``noise``. Each sample is a
:class:`SphereSignal` with ``x`` ``[12 nside^2, 1]`` float32 in :math:`\mu K`, NEST order.

Generation time per map (one core of a busy machine), label 0 / label 1: 3 / 6 ms at
nside 64, 0.11 / 0.29 s at nside 256, 3 / 11 s at nside 1024 (label 1 adds one analysis
and one synthesis).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import healpy as hp
import numpy as np
import torch

from ..graphs import SphereHierarchy
from ..openmp import single_threaded_openmp
from .base import RelativeNoiseMixin, SyntheticSphereDataset
from .signal import SphereSignal
from .spectra import (
    _check_noise,
    _check_nside,
    _target_cl,
    correlation_from_cl,
    gaussian_map,
    load_spectra,
    squared_field_cl,
)

__all__ = ["CMBMaps", "cmb_cl"]

#: Default strength of the local non-Gaussianity (dimensionless; module docstring).
DEFAULT_F_NL = 0.02


def cmb_cl(nside: int) -> np.ndarray:
    r"""Target spectrum of the maps at ``nside``: ``[3 nside]``, :math:`C^{TT}_\ell b_\ell^2`.

    In :math:`\mu K^2`, :math:`\ell = 0 \dots 3 n_\mathrm{side} - 1`.
    """
    return _target_cl(load_spectra().cmb_tt, nside)


@functools.lru_cache(maxsize=16)
def _non_gaussian_filter(nside: int, f_nl: float) -> np.ndarray:
    r"""Transfer function :math:`1 - h_\ell` of label-1 maps (module docstring)."""
    target = cmb_cl(nside)
    variance = correlation_from_cl(target, 1.0)
    extra = f_nl**2 / variance * squared_field_cl(target)
    ratio = np.divide(target, target + extra, out=np.ones_like(target), where=target > 0)
    correction = 1.0 - np.sqrt(ratio)
    correction[target <= 0] = 1.0  # remove what the quadratic term puts at ell = 0, 1
    correction.flags.writeable = False
    return correction


def _check_f_nl(f_nl: object) -> float:
    if isinstance(f_nl, bool) or not isinstance(f_nl, (int, float, np.integer, np.floating)):
        raise TypeError(f"f_nl must be a number, got {f_nl!r}")
    value = float(f_nl)
    if not math.isfinite(value):
        raise ValueError(f"f_nl must be finite, got {f_nl!r}")
    return value


class CMBMaps(RelativeNoiseMixin, SyntheticSphereDataset):
    r"""Gaussian (label 0) vs local non-Gaussian (label 1) CMB maps (module docstring).

    Args:
        split: ``"train"``, ``"val"`` or ``"test"``.
        num_samples: size of the split (default 400 / 100 / 100).
        seed: seed of the whole data set.
        nside: HEALPix resolution, a power of two <= 1024.
        f_nl: dimensionless strength of the non-Gaussianity of label 1 (default 0.02:
            skewness 0.12 against a scatter of 0.05 between maps at nside 64; 0 makes the
            labels identical in distribution).
        noise: relative white-noise level (standard deviation ``noise * pixel_std``).
        transform: optional callable applied to each sample when read.
        cache: keep generated samples in memory.

    Raises:
        ValueError: nside not a power of two or > 1024, ``noise < 0``, non-finite
            ``f_nl``, an unknown split.

    Example:
        >>> data = CMBMaps(num_samples=2, nside=8, f_nl=0.1)
        >>> [tuple(s.x.shape) for s in data], [int(s.y) for s in data]
        ([(768, 1), (768, 1)], [0, 1])
    """

    default_sizes = {"train": 400, "val": 100, "test": 100}

    def __init__(
        self,
        split: str = "train",
        num_samples: int | None = None,
        seed: int = 0,
        *,
        nside: int = 64,
        f_nl: float = DEFAULT_F_NL,
        noise: float = 0.0,
        transform: Callable[[SphereSignal], SphereSignal] | None = None,
        cache: bool = False,
    ) -> None:
        super().__init__(split, num_samples, seed, transform, cache)
        self.nside = _check_nside(nside)
        self.f_nl = _check_f_nl(f_nl)
        self.noise = _check_noise(noise)
        self.lmax = 3 * self.nside - 1
        self.npix = hp.nside2npix(self.nside)

    @property
    def cl(self) -> np.ndarray:
        r"""``[L + 1]`` target spectrum of the noiseless maps of both labels (:math:`\mu K^2`)."""
        return cmb_cl(self.nside)

    @property
    def pixel_std(self) -> float:
        r"""Standard deviation :math:`\sigma` of the noiseless maps (:math:`\mu K`)."""
        return float(math.sqrt(correlation_from_cl(self.cl, 1.0)))

    def noiseless_map(self, label: int, rng: np.random.Generator) -> np.ndarray:
        """Noiseless RING map ``[12 nside^2]`` (float64) of ``label``, drawn with ``rng``."""
        field = gaussian_map(self.cl, self.nside, rng)
        if label == 0 or self.f_nl == 0.0:
            return field
        sigma = self.pixel_std
        field += self.f_nl / sigma * (field**2 - sigma**2)
        with single_threaded_openmp():
            alm = hp.map2alm(field, lmax=self.lmax, mmax=self.lmax, iter=0,
                             use_pixel_weights=False)
            hp.almxfl(alm, _non_gaussian_filter(self.nside, self.f_nl), inplace=True)
            field -= hp.alm2map(alm, self.nside, lmax=self.lmax, mmax=self.lmax)
        return field

    def generate(self, index: int, rng: np.random.Generator) -> SphereSignal:
        label = index % 2
        values = hp.reorder(self.noiseless_map(label, rng), r2n=True)
        if self.noise > 0:
            values += self.noise_std * rng.standard_normal(values.size)
        return SphereSignal(x=torch.from_numpy(values.astype(np.float32))[:, None],
                            y=torch.tensor(label, dtype=torch.long))

    def hierarchy(self, levels: int, *, k: int | list[int] = 8,
                  **kwargs: Any) -> SphereHierarchy:
        """Full-sky HEALPix hierarchy (:meth:`SphereHierarchy.healpix`) at ``nside``.

        Args:
            levels: number of graphs (nside halves at each level).
            k: neighbours per pixel (one value or one per level).
            **kwargs: passed on (``kernel``, ``dtype``).
        """
        return SphereHierarchy.healpix(self.nside, levels, k=k, **kwargs)

    def extra_repr(self) -> str:
        return f"nside={self.nside}, f_nl={self.f_nl}, noise={self.noise}"
