r"""Weak-lensing convergence maps of two cosmologies (the DeepSphere v1 classification task).

DeepSphere v1 (Perraudin et al. 2019) classifies convergence maps of two LCDM models
chosen "for the maps to have the same spherical harmonic power spectrum",
:math:`(\Omega_m, \sigma_8) = (0.31, 0.82)` (label 0) and :math:`(0.26, 0.91)` (label 1),
sources at :math:`z_s = 0.8`, maps smoothed by a 3-arcmin Gaussian, mean subtracted, cut
into patches of :math:`1/(12 o^2)` of the sky. :class:`CosmologyMaps` generates such maps
from the shipped spectra (:mod:`deepsphere_pyg.data.spectra`: single source plane at
:math:`z_s = 0.8`, non-linear matter power, Limber) instead of N-body simulations.

**Classes.** ``classes="paper"`` uses the published pair; their Limber spectra differ by
0.3-3.4 % over :math:`100 \le \ell \le 1500` and by up to 39 % below :math:`\ell = 100`
(the degenerate pair: up to 37 % below :math:`\ell = 100`, which the patches barely see).
``classes="degenerate"`` (default) keeps label 0 and gives label 1
:math:`(\Omega_m, \sigma_8) = (0.26, \sigma_8^*)`, :math:`\sigma_8^* = 0.9038` tuned by
``scripts/make_spectra.py`` so that the two target spectra agree within 1.3 % over
:math:`100 \le \ell \le 1500` (the band the default patches resolve), so that the power
spectrum alone carries little of the label and the non-Gaussian (lognormal) structure,
which depends on the shift of each cosmology, carries the rest.

**Defaults** (DeepSphere v1's regime at half its resolution): nside 512 (band limit
:math:`L = 1535`), ``order=4`` (patches of :math:`512^2/16 = 16384` pixels, about
:math:`15^\circ` across, so :math:`\ell \gtrsim 100`), 3-arcmin smoothing, per-sample
mean subtraction. The paper's full size is ``nside=1024, order=4`` (65536 pixels).

**Maps.** At resolution ``nside`` a map of label :math:`c` has the target spectrum

.. math:: \hat C^{(c)}_\ell = C^{\kappa, (c)}_\ell\, b_\ell^2, \qquad \ell \le L,

with :math:`b_\ell` the Gaussian beam of ``smoothing`` arcmin FWHM
(:func:`~deepsphere_pyg.data.spectra.beam_window`; ``smoothing=None``: the pixel-scale
window :func:`~deepsphere_pyg.data.spectra.pixel_window`) (:attr:`CosmologyMaps.cl`).

* ``lognormal=False``: a Gaussian field, :math:`a_{\ell m}` drawn with variance
  :math:`\hat C_\ell`, synthesised with :func:`healpy.alm2map`.
* ``lognormal=True`` (default): a shifted lognormal field
  :math:`\kappa = \lambda\,(e^{g - \sigma_g^2/2} - 1)`, :math:`\lambda` the shift of the model
  (``kappa_shift``; :math:`\kappa \ge -\lambda`): the ray-tracing calibration of Hilbert,
  Hartlap & Schneider (2011, A&A 536, A85, fit to the Millennium Simulation,
  :math:`\Omega_m = 0.25`), :math:`\kappa_0(z_s) = 0.008 z_s + 0.029 z_s^2 - 0.0079 z_s^3
  + 0.00065 z_s^4` (0.0212 at :math:`z_s = 0.8`), scaled to each cosmology by the ratio
  of its empty-beam convergence to the Millennium one, :math:`\lambda = \kappa_0(z_s)\,
  \kappa_\mathrm{empty}(\Omega_m, z_s) / \kappa_\mathrm{empty}^\mathrm{Mill}(z_s)`
  (0.0246 for :math:`\Omega_m = 0.31`, 0.0218 for 0.26), :math:`g` a Gaussian field whose spectrum
  :math:`C^g_\ell` makes the
  spectrum of :math:`\kappa` equal to :math:`\hat C_\ell`: it follows from the correlation
  functions, :math:`\xi_g = \ln(1 + \hat\xi / \lambda^2)`
  (:func:`~deepsphere_pyg.data.spectra.lognormal_gaussian_cl`, Legendre sums on
  Gauss-Legendre nodes), and :math:`\sigma_g^2 = \sum_\ell (2\ell+1) C^g_\ell / 4\pi`.
  :math:`g` is band-limited to :math:`L` and evaluated at the pixel centres, and the
  exponential is taken pixel by pixel. The non-Gaussianity is mild: the ratio
  :math:`\sigma_\kappa / \lambda` is 0.06 at nside 64, 0.11 at nside 256 and 0.18 at
  nside 1024 (one-point skewness about three times that).

**Accuracy** (mean spectrum of the maps over the target, ``healpy.anafast`` with three
iterations; 200 maps per label at nside 64, 20 at nside 256): within the sampling error
(standard errors 0.1-0.7 %) for :math:`2 \le \ell \le 2 n_\mathrm{side}`, lognormal and
Gaussian maps alike; for :math:`\ell > 2 n_\mathrm{side}` the estimator reads 2.5-2.8 %
low for both, a bias of the HEALPix analysis, not of the maps. With a strongly
non-Gaussian field (:math:`\sigma / \lambda = 0.5`, nside 32) the transformed spectrum
still matches to 1 % for :math:`\ell \le 2 n_\mathrm{side}`, where using
:math:`\hat C_\ell / \lambda^2` as the Gaussian spectrum is 5-10 % off (both checked in
``tests/data/test_cosmology.py``).

**Noise.** ``noise`` is the relative level of DeepSphere v1: white Gaussian noise of
standard deviation ``noise * pixel_std`` is added to each pixel, ``pixel_std`` being the
standard deviation of the noiseless maps, :math:`\sqrt{\tfrac12 \sum_c \sum_{\ell \le L}
(2\ell + 1) \hat C^{(c)}_\ell / 4\pi}` (the same for both labels, so the noise level
carries no information about the label). The noiseless part of a sample does not depend
on ``noise``.

**Partial sky.** With ``order`` :math:`o` every full-sky map is cut into its
:math:`12 o^2` patches, the NEST pixels of one HEALPix pixel at nside :math:`o`
(patch :math:`p` = NEST pixels :math:`p\, n \dots (p + 1)\, n - 1`,
:math:`n = (n_\mathrm{side} / o)^2`), as DeepSphere v1 did; each patch is a sample,
holding the patch's pixels in NEST order. ``patches`` restricts the data set to some
patches (e.g. ``patches=0``: one patch per map, the exact pixels of :meth:`hierarchy`).
Within a patch the NEST order follows the same square grid in every patch, so one graph
(:meth:`hierarchy` of the first patch) serves all patches, as in DeepSphere v1. With the
HEALPix-neighbour graph (``edges="neighbours"``) every patch has exactly the same edges in its
local order (only the weights differ); k-NN graphs (``kernel="v2"``, the default) follow
the pixel shapes, and at nside 64 the first patch's edges differ from another patch's own
graph by 5 % on average (up to 10-22 % at orders 2-4). Use ``patches`` with a single
patch where the graph must match exactly.

**Samples.** Sample :math:`i` has label :math:`c = i \bmod 2` (balanced) and is patch
:math:`j \bmod P` of map :math:`\lfloor j / P \rfloor` of label :math:`c`,
:math:`j = \lfloor i / 2 \rfloor`, :math:`P` the number of patches used (1 on the full
sky). A map is drawn from its own random stream (``seed``, split, label, map index);
the noise of a sample from the sample's stream (:meth:`SyntheticSphereDataset.rng`).
The two most recent full-sky maps are kept in memory so that reading patches in order
costs one map per :math:`P` samples; with ``cache=True`` every patch of a generated map is
cached at once.

Generating a full-sky map (lognormal or Gaussian) is dominated at nside 1024 by
:func:`healpy.alm2map`; the lognormal spectra are computed once (generation times per
nside: ``BENCHMARKS.md``, "Costs behind the library's defaults").
"""

from __future__ import annotations

import dataclasses
import functools
import numbers
from collections.abc import Sequence
from typing import Any

import healpy as hp
import numpy as np
import torch

from ..graphs import SphereHierarchy
from ..graphs.checks import check_bool, check_nside
from .base import SPLITS, RelativeNoiseMixin, SyntheticSphereDataset
from .signal import SphereSignal
from .spectra import (
    check_noise,
    check_spectra_nside,
    correlation_from_cl,
    gaussian_map,
    load_spectra,
    lognormal_gaussian_cl,
    target_cl,
)
from .transforms.checks import check_nonnegative

__all__ = ["CosmologyMaps", "convergence_cl"]

#: Number of cosmological models (labels).
NUM_CLASSES = 2


#: Rows of the shipped spectra used by each class choice (label 0, label 1).
CLASS_CHOICES = {"degenerate": (0, 2), "paper": (0, 1)}

#: Default smoothing (Gaussian FWHM in arcmin), DeepSphere v1.
DEFAULT_SMOOTHING = 3.0


def _check_classes(classes: object) -> str:
    if classes not in CLASS_CHOICES:
        raise ValueError(f"classes must be one of {sorted(CLASS_CHOICES)}, got {classes!r}")
    return str(classes)


def _check_beam_fwhm(smoothing: object) -> float | None:
    """``None`` (pixel window) or a finite Gaussian beam FWHM >= 0 in arcmin."""
    return None if smoothing is None else check_nonnegative(smoothing, "smoothing (FWHM, arcmin)")


def convergence_cl(nside: int, classes: str = "degenerate",
                   smoothing: float | None = DEFAULT_SMOOTHING) -> np.ndarray:
    r"""Target spectra of the maps at ``nside``: ``[2, 3 nside]``, :math:`C^\kappa_\ell b_\ell^2`.

    Row :math:`c` is label :math:`c` of the class choice ``classes``,
    :math:`\ell = 0 \dots 3 n_\mathrm{side} - 1`, smoothed by a Gaussian beam of
    ``smoothing`` arcmin FWHM (``None``: :func:`~deepsphere_pyg.data.spectra.pixel_window`).
    """
    rows = list(CLASS_CHOICES[_check_classes(classes)])
    return target_cl(load_spectra().kappa_cl[rows], nside, _check_beam_fwhm(smoothing))


@functools.lru_cache(maxsize=16)
def _field_spectrum(nside: int, label: int, lognormal: bool, classes: str,
                    smoothing: float | None) -> tuple[np.ndarray, float, float]:
    """``(spectrum of the Gaussian draw, sigma_g^2, shift)`` of one label (module docstring)."""
    target = convergence_cl(nside, classes, smoothing)[label]
    if not lognormal:
        return target, 0.0, 0.0
    shift = float(load_spectra().kappa_shift[CLASS_CHOICES[classes][label]])
    gaussian, _ = lognormal_gaussian_cl(target, shift)
    gaussian.flags.writeable = False
    variance = float(correlation_from_cl(gaussian, 1.0))
    return gaussian, variance, shift


def _check_order(order: object, nside: int) -> int | None:
    if order is None:
        return None
    order = check_nside(order, "order")
    if order > nside:
        raise ValueError(
            f"order={order} must be <= nside={nside}: a patch is one HEALPix pixel at "
            f"nside=order, so it holds (nside / order)^2 pixels; use order=None for the "
            "full sky")
    return order


def _check_patches(patches: object, order: int | None) -> tuple[int, ...]:
    if order is None:
        if patches is not None:
            raise ValueError("patches needs order (the partial-sky patch size); "
                             "leave patches=None for full-sky maps")
        return (0,)
    count = 12 * order**2
    if patches is None:
        return tuple(range(count))
    values = [patches] if isinstance(patches, numbers.Integral) else list(patches)
    if not values:
        raise ValueError("patches must name at least one patch")
    out = []
    for value in values:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(f"patches must be integers, got {value!r}")
        if not 0 <= value < count:
            raise ValueError(
                f"patches must lie in [0, {count - 1}] (12 order^2 patches at order={order}), "
                f"got {int(value)}")
        out.append(int(value))
    if len(set(out)) != len(out):
        raise ValueError(f"patches must not repeat, got {out}")
    return tuple(out)


@dataclasses.dataclass(eq=False, repr=False, kw_only=True)
class CosmologyMaps(RelativeNoiseMixin, SyntheticSphereDataset):
    r"""Convergence maps of two cosmologies, label 0 or 1 (module docstring).

    Args:
        split: ``"train"``, ``"val"`` or ``"test"``.
        num_samples: size of the split (default 400 / 100 / 100).
        seed: seed of the whole data set.
        nside: HEALPix resolution, a power of two <= 1024 (default 512).
        order: ``None`` (full sky) or the patch order :math:`o` (a power of two
            :math:`\le` ``nside``): samples are patches of :math:`1/(12 o^2)` of the sky
            (default 4: :math:`512^2 / 16 = 16384` pixels per patch).
        patches: with ``order``, the patches used (an index or a sequence of indices in
            :math:`[0, 12 o^2)`); default all.
        noise: relative white-noise level (DeepSphere v1 used 0, 0.5, 1, 1.5, 2).
        lognormal: shifted lognormal (``True``) or Gaussian (``False``) fields.
        classes: ``"degenerate"`` (default; the two spectra agree within 3 % over
            :math:`100 \le \ell \le 1500`) or ``"paper"`` (the published pair).
        smoothing: Gaussian smoothing FWHM in arcmin (default 3, as DeepSphere v1);
            ``None`` smooths at the pixel scale instead.
        subtract_mean: subtract each sample's mean (of its noiseless pixels).
        fresh_noise: training split only: draw the noise anew at every read, so every epoch
            sees another realisation of it (DeepSphere v1 trained on noise drawn per
            batch); the other splits keep one draw per sample. The draws follow torch's
            random stream (reproducible under ``torch.manual_seed``, as the engine seeds
            it, and different in every DataLoader worker and epoch).
        transform: optional callable applied to each sample when read.
        cache: keep generated samples in memory.

    Each sample is a :class:`SphereSignal` with ``x`` ``[N, 1]`` float32 (NEST order of
    the full sky, or of the patch), ``y`` the label (long), and with ``order`` ``patch``
    (the patch index). ``N = 12 nside^2`` or ``12 nside^2 / (12 o^2)``.

    Raises:
        ValueError: nside or order not a power of two, ``order > nside``, nside > 1024,
            ``noise < 0``, an unknown split or class choice, patches out of range,
            negative smoothing.

    Example:
        >>> data = CosmologyMaps(num_samples=4, nside=16, order=2, noise=0.5)
        >>> sample = data[0]
        >>> tuple(sample.x.shape), int(sample.y), int(sample.patch)
        ((64, 1), 0, 0)
        >>> data.hierarchy(2).num_nodes
        [64, 16]
    """

    default_sizes = {"train": 400, "val": 100, "test": 100}

    nside: int = 512
    order: int | None = 4
    patches: int | Sequence[int] | None = None
    noise: float = 0.0
    lognormal: bool = True
    classes: str = "degenerate"
    smoothing: float | None = DEFAULT_SMOOTHING
    subtract_mean: bool = True
    fresh_noise: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        self.nside = check_spectra_nside(self.nside)
        self.order = _check_order(self.order, self.nside)
        self.patches = _check_patches(self.patches, self.order)
        self.noise = check_noise(self.noise)
        self.lognormal = check_bool(self.lognormal, "lognormal")
        self.classes = _check_classes(self.classes)
        self.smoothing = _check_beam_fwhm(self.smoothing)
        self.subtract_mean = check_bool(self.subtract_mean, "subtract_mean")
        self.fresh_noise = check_bool(self.fresh_noise, "fresh_noise")
        # Noise added at read time (train split, fresh_noise), not stored with the sample.
        self._noise_on_read = self.fresh_noise and self.split == "train" and self.noise > 0
        self.lmax = 3 * self.nside - 1
        self.npix = hp.nside2npix(self.nside)
        self.patch_size = self.npix if self.order is None else self.npix // (12 * self.order**2)
        self._memo: dict[tuple[int, int], np.ndarray] = {}

    # --------------------------------------------------------------- theory
    @property
    def cl(self) -> np.ndarray:
        r"""``[2, L + 1]`` target spectra of the noiseless maps, one row per label."""
        return convergence_cl(self.nside, self.classes, self.smoothing)

    @property
    def pixel_std(self) -> float:
        """Standard deviation of the noiseless maps (both labels pooled; module docstring)."""
        variances = [correlation_from_cl(cl, 1.0) for cl in self.cl]
        return float(np.sqrt(np.mean(variances)))

    # ------------------------------------------------------------- sampling
    def patch_pixels(self, patch: int | None = None) -> np.ndarray | None:
        """NEST pixel ids ``[N]`` of a patch (default the first used); ``None`` on the full sky."""
        if self.order is None:
            return None
        patch = self.patches[0] if patch is None else _check_patches(patch, self.order)[0]
        return np.arange(patch * self.patch_size, (patch + 1) * self.patch_size)

    def locate(self, index: int) -> tuple[int, int, int]:
        """``(label, map index within the label, patch)`` of sample ``index``."""
        label, within = index % NUM_CLASSES, index // NUM_CLASSES
        count = len(self.patches)
        return label, within // count, self.patches[within % count]

    def map_rng(self, label: int, map_index: int) -> np.random.Generator:
        """Random stream of one full-sky map (distinct from every sample's stream)."""
        sequence = np.random.SeedSequence(
            [self.seed, SPLITS.index(self.split), label, map_index], spawn_key=(1,))
        return np.random.default_rng(sequence)

    def full_map(self, label: int, map_index: int) -> np.ndarray:
        """Noiseless full-sky map ``[12 nside^2]`` (float64, NEST) of a label."""
        key = (label, map_index)
        if key in self._memo:
            return self._memo[key]
        spectrum, variance, shift = _field_spectrum(self.nside, label, self.lognormal,
                                                   self.classes, self.smoothing)
        field = gaussian_map(spectrum, self.nside, self.map_rng(label, map_index))
        if self.lognormal:
            field = shift * np.expm1(field - 0.5 * variance)
        field = hp.reorder(field, r2n=True)
        field.flags.writeable = False
        # Keep the latest map of each label only.
        self._memo = {k: v for k, v in self._memo.items() if k[0] != label}
        self._memo[key] = field
        return field

    def _sample(self, full: np.ndarray, label: int, patch: int,
                rng: np.random.Generator) -> SphereSignal:
        start = patch * self.patch_size if self.order is not None else 0
        values = np.array(full[start: start + self.patch_size], dtype=np.float64)
        if self.subtract_mean:
            values -= values.mean()
        if self.noise > 0 and not self._noise_on_read:
            values += self.noise_std * rng.standard_normal(values.size)
        attributes: dict[str, Any] = {"y": torch.tensor(label, dtype=torch.long)}
        if self.order is not None:
            attributes["patch"] = torch.tensor(patch, dtype=torch.long)
        return SphereSignal(x=torch.from_numpy(values.astype(np.float32))[:, None],
                            **attributes)

    def generate(self, index: int, rng: np.random.Generator) -> SphereSignal:
        label, map_index, patch = self.locate(index)
        full = self.full_map(label, map_index)
        if self._cache is not None and len(self.patches) > 1:
            # Cache every patch of this map now: each costs a full-sky map otherwise.
            first = NUM_CLASSES * map_index * len(self.patches) + label
            for offset, other in enumerate(self.patches):
                sibling = first + NUM_CLASSES * offset
                if sibling != index and sibling < self.num_samples \
                        and sibling not in self._cache:
                    self._cache[sibling] = self._sample(full, label, other, self.rng(sibling))
        return self._sample(full, label, patch, rng)

    def augment(self, sample: SphereSignal, index: int) -> SphereSignal:
        """With ``fresh_noise`` on the training split: the noiseless sample plus a new
        noise draw, seeded from torch's random stream."""
        if not self._noise_on_read:
            return sample
        draw = int(torch.randint(0, 2**62, ()))
        rng = np.random.default_rng([self.seed, SPLITS.index(self.split), index, draw])
        noisy = sample.clone()
        noise = self.noise_std * rng.standard_normal(tuple(sample.x.shape))
        noisy.x = (sample.x.double() + torch.from_numpy(noise)).to(sample.x.dtype)
        return noisy

    # ---------------------------------------------------------------- graphs
    def hierarchy(self, levels: int, *, k: int | Sequence[int] = 8,
                  patch: int | None = None, **kwargs: Any) -> SphereHierarchy:
        """HEALPix hierarchy of the samples' nodes, finest first.

        Full sky: :meth:`SphereHierarchy.healpix` at ``nside``. Partial sky: the same with
        ``mask`` = the pixels of ``patch`` (default: the first patch used); it serves every
        patch, exactly with ``edges="neighbours"``, approximately with k-NN graphs (module
        docstring).

        Args:
            levels: number of graphs (nside halves at each level).
            k: neighbours per pixel (one value or one per level).
            patch: patch whose pixels define the mask (partial sky only).
            **kwargs: passed on (``kernel``, ``dtype``).
        """
        if patch is not None and self.order is None:
            raise ValueError("patch applies to partial-sky data sets (order is None here)")
        return SphereHierarchy.healpix(self.nside, levels, k=k, mask=self.patch_pixels(patch),
                                       **kwargs)

    def extra_repr(self) -> str:
        patches = None if self.order is None or len(self.patches) == 12 * self.order**2 \
            else list(self.patches)
        fresh = ", fresh_noise=True" if self.fresh_noise else ""
        return (f"nside={self.nside}, order={self.order}, patches={patches}, "
                f"noise={self.noise}{fresh}, "
                f"lognormal={self.lognormal}, classes={self.classes!r}, "
                f"smoothing={self.smoothing}, subtract_mean={self.subtract_mean}")
