r"""Gaussian CMB maps vs maps whose small-scale power is modulated across the sky.

The task of the spherical scattering paper (McEwen et al., ICLR 2022): tell Gaussian CMB
maps (label 0) from non-Gaussian ones (label 1) when both classes have the same power
spectrum. Here the non-Gaussianity is spatial, a coupling between scales, and the pixel
values' one-point statistics (skewness, kurtosis) carry almost none of it: the
statistically anisotropic "power modulation" of the CMB (Gordon, Hu, Huterer & Crawford
2005, Phys. Rev. D 72, 103002; Hanson & Lewis 2009, Phys. Rev. D 80, 063004), with an
independent, isotropic modulating field so that the ensemble stays isotropic.

**Maps.** At resolution ``nside`` (band limit :math:`L = 3 n_\mathrm{side} - 1`) the
target spectrum is :math:`\hat C_\ell = C^{TT}_\ell b_\ell^2` (:math:`\mu K^2`, Planck
2018 LCDM from :mod:`deepsphere_pyg.data.spectra`, :math:`b_\ell` the pixel-scale
smoothing of :func:`~deepsphere_pyg.data.spectra.pixel_window`).

* Label 0: a Gaussian field :math:`T = g` with spectrum :math:`\hat C_\ell`.
* Label 1: :math:`T = g_L + g_S\, M`, where :math:`g_L` and :math:`g_S` are independent
  Gaussian fields split by a smooth high-pass window :math:`w_\ell` (:math:`w_\ell = 0`
  for :math:`\ell \le L/4`, 1 for :math:`\ell \ge L/2`, a :math:`\sin^2` taper between),
  :math:`C^{L}_\ell = \hat C_\ell (1 - w_\ell^2)`, and :math:`M` modulates the small scales:

  .. math:: M(\hat n) = \frac{1 + A\, m(\hat n)}{\sqrt{1 + A^2}},

  :math:`m` an independent unit-variance Gaussian field with a flat spectrum on
  :math:`1 \le \ell \le \ell_m = \max(2, n_\mathrm{side}/8)`, :math:`A` = ``strength``.
  :math:`\langle M^2 \rangle = 1` (variance preserving). Since :math:`g_S` and :math:`M`
  are independent, the correlation function of :math:`g_S M` is :math:`\xi_S \xi_M`
  (:func:`~deepsphere_pyg.data.spectra.product_field_cl`); the spectrum of :math:`g_S` is
  solved for (multiplicative fixed-point iterations) so that the expected spectrum of
  :math:`g_S M` is :math:`\hat C_\ell w_\ell^2` for :math:`\ell \le L`, hence the expected
  spectrum of label 1 is :math:`\hat C_\ell`.

Per pixel, label 1 is a Gaussian scale mixture: odd moments vanish and the excess
kurtosis is :math:`3 f_S^2 (4A^2 + 2A^4)/(1 + A^2)^2`, :math:`f_S` the fraction of the
variance in the small-scale band (about 0.1 at the band split used), comparable to the
scatter of one map's kurtosis. What separates the classes is the four-point / scale
coupling structure: the local small-scale power varies on the scale of :math:`\ell_m`,
which depth-2 scattering (:math:`|f \star \Psi_{j_1}| \star \Psi_{j_2}`) measures.

**Noise.** ``noise`` is relative: white Gaussian noise of standard deviation
``noise * pixel_std`` (:math:`\sigma`, the same for both labels) is added per pixel.

**Samples.** Sample :math:`i` has label :math:`i \bmod 2` (balanced) and is drawn from the
sample's random stream (:meth:`SyntheticSphereDataset.rng`): the fields, then the noise,
so the noiseless part does not depend on ``noise``. Each sample is a
:class:`SphereSignal` with ``x`` ``[12 nside^2, 1]`` float32 in :math:`\mu K`, NEST order.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import healpy as hp
import numpy as np
import torch

from ..graphs import SphereHierarchy
from .base import RelativeNoiseMixin, SyntheticSphereDataset
from .signal import SphereSignal
from .spectra import (
    check_noise,
    check_spectra_nside,
    correlation_from_cl,
    gaussian_map,
    load_spectra,
    product_field_cl,
    target_cl,
)

__all__ = ["CMBMaps", "cmb_cl", "modulation_cl", "modulation_lmax", "small_scale_window"]

#: Default amplitude of the small-scale power modulation (module docstring).
DEFAULT_STRENGTH = 0.15


def cmb_cl(nside: int) -> np.ndarray:
    r"""Target spectrum of the maps at ``nside``: ``[3 nside]``, :math:`C^{TT}_\ell b_\ell^2`.

    In :math:`\mu K^2`, :math:`\ell = 0 \dots 3 n_\mathrm{side} - 1`.
    """
    return target_cl(load_spectra().cmb_tt, nside)


def small_scale_window(lmax: int) -> np.ndarray:
    r"""High-pass window :math:`w_\ell` ``[lmax + 1]``: 0 up to ``lmax/4``, 1 from ``lmax/2``."""
    ell = np.arange(int(lmax) + 1, dtype=np.float64)
    low, high = lmax / 4, lmax / 2
    t = np.clip((ell - low) / (high - low), 0.0, 1.0)
    return np.sin(0.5 * np.pi * t)


def modulation_lmax(nside: int) -> int:
    r"""Largest multipole :math:`\ell_m = \max(2, n_\mathrm{side} / 8)` of the modulation."""
    return max(2, int(nside) // 8)


def modulation_cl(nside: int) -> np.ndarray:
    """Flat unit-variance spectrum of the modulating field on ``1 <= l <= l_m``."""
    lmax = modulation_lmax(nside)
    cl = np.zeros(lmax + 1)
    ell = np.arange(1, lmax + 1)
    cl[1:] = 4 * np.pi / np.sum(2 * ell + 1)
    return cl


@functools.lru_cache(maxsize=16)
def _modulated_spectra(nside: int, strength: float) -> tuple[np.ndarray, np.ndarray]:
    r"""``(C^L, C^S_in)``: spectra of :math:`g_L` and :math:`g_S` (module docstring)."""
    target = cmb_cl(nside)
    lmax = target.size - 1
    window = small_scale_window(lmax) ** 2
    large, small = target * (1 - window), target * window
    envelope = strength**2 * modulation_cl(nside)
    envelope[0] += 4 * np.pi
    envelope /= 1 + strength**2
    gaussian = small.copy()
    keep = small > 0
    for _ in range(40):
        out = product_field_cl(gaussian, envelope, lmax)
        gaussian[keep] *= small[keep] / out[keep]
    for array in (large, gaussian):
        array.flags.writeable = False
    return large, gaussian


def _check_strength(strength: object) -> float:
    if isinstance(strength, bool) or not isinstance(
            strength, (int, float, np.integer, np.floating)):
        raise TypeError(f"strength must be a number >= 0, got {strength!r}")
    value = float(strength)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"strength must be a finite number >= 0, got {strength!r}")
    return value


@dataclasses.dataclass(eq=False, repr=False, kw_only=True)
class CMBMaps(RelativeNoiseMixin, SyntheticSphereDataset):
    r"""Gaussian (label 0) vs power-modulated (label 1) CMB maps (module docstring).

    Args:
        split: ``"train"``, ``"val"`` or ``"test"``.
        num_samples: size of the split (default 400 / 100 / 100).
        seed: seed of the whole data set.
        nside: HEALPix resolution, a power of two <= 1024.
        strength: amplitude :math:`A` of the modulation of label 1 (default 0.15; 0 makes
            the labels identical in distribution).
        noise: relative white-noise level (standard deviation ``noise * pixel_std``).
        transform: optional callable applied to each sample when read.
        cache: keep generated samples in memory.

    Raises:
        ValueError: nside not a power of two or > 1024, ``noise < 0``, negative or
            non-finite ``strength``, an unknown split.

    Example:
        >>> data = CMBMaps(num_samples=2, nside=8)
        >>> [tuple(s.x.shape) for s in data], [int(s.y) for s in data]
        ([(768, 1), (768, 1)], [0, 1])
    """

    default_sizes = {"train": 400, "val": 100, "test": 100}

    nside: int = 64
    strength: float = DEFAULT_STRENGTH
    noise: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        self.nside = check_spectra_nside(self.nside)
        self.strength = _check_strength(self.strength)
        self.noise = check_noise(self.noise)
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
        if label == 0 or self.strength == 0.0:
            return gaussian_map(self.cl, self.nside, rng)
        large, small = _modulated_spectra(self.nside, self.strength)
        field = gaussian_map(large, self.nside, rng)
        modulation = gaussian_map(modulation_cl(self.nside), self.nside, rng)
        envelope = (1.0 + self.strength * modulation) / math.sqrt(1.0 + self.strength**2)
        field += gaussian_map(small, self.nside, rng) * envelope
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
        return f"nside={self.nside}, strength={self.strength}, noise={self.noise}"
