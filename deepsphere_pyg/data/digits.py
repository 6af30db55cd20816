r"""Spherical digits: the 8x8 handwritten digits of scikit-learn projected onto the sphere.

A small, fast stand-in for the spherical-MNIST benchmarks of s2cnn and DeepSphere: each
sample is one image of :func:`sklearn.datasets.load_digits` (1797 images, 10 classes,
8 x 8 pixels, values 0..16 scaled to ``[0, 1]``) drawn on a HEALPix map, unrotated, rotated
about the polar axis, or rotated by a Haar-random rotation.

**Projection.** The image lies in the plane tangent to the sphere at the north pole and is
carried onto the sphere by the stereographic projection from the south pole: the unit
vector :math:`p = (x, y, z)` (colatitude :math:`\vartheta`) has plane coordinates

.. math::

    (u, v) = \frac{2\,(x, y)}{1 + z}, \qquad \lVert (u, v) \rVert = 2 \tan(\vartheta / 2).

The projection is conformal (strokes keep their shape, only their scale grows away from
the pole). The image is a square of half-width :math:`w = 2 \tan(\epsilon / 4)` centred on
the pole, where :math:`\epsilon` (``extent``, default 90°) is the angular width of the
image along its axes: the image spans colatitudes up to :math:`\epsilon / 2` along the
:math:`x` and :math:`y` axes. With the pixel size :math:`h = 2w / 8`, pixel
``(row, col)`` of the image is centred at :math:`u = (\mathrm{col} - 3.5)\, h`,
:math:`v = (3.5 - \mathrm{row})\, h`: columns run along :math:`+x` (longitude 0°), rows from
:math:`+y` (longitude 90°, the top of the image) to :math:`-y`, so the digit reads
unmirrored seen from outside the sphere above the north pole.

**Interpolation.** The value at :math:`(u, v)` is the bilinear interpolation of the image
padded by zeros (:func:`scipy.ndimage.map_coordinates`, ``order=1``,
``mode="grid-constant"``): a continuous function that is zero outside the square
:math:`|u|, |v| < 4.5\, h` (half a pixel beyond the image border). For
:math:`\epsilon = 90°` this square lies within colatitude 66.8° of the north pole (its
corners): an unrotated digit lives in the northern cap.

**Rotations.** A sample rotated by :math:`R \in SO(3)` takes at pixel :math:`x` the value
of the unrotated digit at :math:`R^{-1} x = R^\top x`: the rotation acts exactly on the
projection geometry (no harmonic band limit, no resampling of a rotated map).
``rotate=True`` draws :math:`R` from the Haar measure
(:func:`~deepsphere_pyg.graphs.equivariance.random_rotations`), ``rotate="z"`` a rotation
about the polar axis by an angle uniform in :math:`[0, 2\pi)`.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import healpy as hp
import numpy as np
import torch
from scipy import ndimage

from ..graphs import SphereHierarchy
from ..graphs.checks import check_nside
from ..graphs.equivariance import random_rotations
from .base import SPLITS, SyntheticSphereDataset
from .signal import SphereSignal

#: Fractions of every class's images in the train, val and test splits.
SPLIT_FRACTIONS = {"train": 0.7, "val": 0.1, "test": 0.2}

#: Seed of the fixed permutation that assigns images to splits (independent of ``seed``).
SPLIT_SEED = 20_190_101

#: Accepted values of ``rotate``.
ROTATIONS = (False, "z", True)

#: Side of the digit images, in pixels.
IMAGE_SIZE = 8

#: Largest value of the raw digit images (they are divided by it).
IMAGE_MAX = 16.0


def stereographic(pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r"""Plane coordinates :math:`(u, v) = 2 (x, y) / (1 + z)` of unit vectors ``[P, 3]``.

    The south pole (:math:`z = -1`) maps to infinity; it gets ``inf`` coordinates.

    Returns:
        ``(u, v)``, float64 arrays ``[P]``.
    """
    pos = np.asarray(pos, dtype=np.float64)
    denominator = 1.0 + pos[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(denominator > 1e-12, 2.0 / denominator, np.inf)
    u = np.where(np.isfinite(scale), pos[:, 0] * scale, np.inf)
    v = np.where(np.isfinite(scale), pos[:, 1] * scale, np.inf)
    return u, v


def digit_on_sphere(
    image: np.ndarray,
    pos: np.ndarray,
    *,
    extent: float = 90.0,
    rotation: np.ndarray | None = None,
) -> np.ndarray:
    r"""Values at unit vectors ``pos`` of an image projected on the sphere (module doc).

    Args:
        image: ``[H, W]`` image (any square or rectangular size; the pixel size is set by
            the width ``W``: :math:`h = 2w / W`), row 0 at the top.
        pos: ``[P, 3]`` unit vectors.
        extent: angular width :math:`\epsilon` of the image along its axes, degrees in
            ``(0, 360)``.
        rotation: ``[3, 3]`` rotation matrix :math:`R`; the result at :math:`x` is the
            unrotated projection at :math:`R^\top x`. ``None``: no rotation.

    Returns:
        ``[P]`` float64 values (zero outside the image's support).

    Raises:
        ValueError: ``image`` not 2-D, ``pos`` not ``[P, 3]``, ``extent`` out of range,
            ``rotation`` not a ``[3, 3]`` rotation matrix.
    """
    image = np.asarray(image, dtype=np.float64)
    if image.ndim != 2:
        raise ValueError(f"image must be 2-D [H, W], got shape {image.shape}")
    pos = np.asarray(pos, dtype=np.float64)
    if pos.ndim != 2 or pos.shape[1] != 3:
        raise ValueError(f"pos must have shape [P, 3] (unit vectors), got {pos.shape}")
    half_width = _half_width(extent)
    if rotation is not None:
        rotation = _check_rotation(rotation)
        pos = pos @ rotation  # rows R^T x
    u, v = stereographic(pos)
    height, width = image.shape
    pixel = 2.0 * half_width / width
    col = u / pixel + (width - 1) / 2.0
    row = (height - 1) / 2.0 - v / pixel
    # Far-away points (and the south pole) are clipped well outside the zero padding.
    limit = 2.0 * max(height, width) + 2.0
    coords = np.stack([np.clip(row, -limit, limit), np.clip(col, -limit, limit)])
    return ndimage.map_coordinates(image, coords, order=1, mode="grid-constant", cval=0.0)


@dataclasses.dataclass(eq=False, repr=False, kw_only=True)
class SphericalDigits(SyntheticSphereDataset):
    r"""Digits of :func:`sklearn.datasets.load_digits` on a HEALPix sphere (module doc).

    **Splits.** The 1797 images are divided, class by class, by a fixed permutation
    (:data:`SPLIT_SEED`, the same for every ``seed``) into disjoint train / val / test
    subsets of 70 / 10 / 20 % (1259 / 179 / 359 images). Sample ``i`` of a split shows image
    ``i mod n_images`` of that split, so a split of ``num_samples`` larger than its image
    count shows every image repeatedly, each time with its own rotation (``rotate`` not
    ``False``). By default a split has one sample per image.

    **Samples.** ``x``: ``[12 nside^2, 1]`` float32, NEST pixel order, the projected image
    (values in ``[0, 1]``); ``y``: LongTensor scalar, the digit (0..9).

    Args:
        split: ``"train"``, ``"val"`` or ``"test"``.
        num_samples: size of the split (default: its number of images).
        seed: seed of the rotations (``rotate`` not ``False``).
        nside: HEALPix resolution of the maps (power of two).
        rotate: ``False`` (no rotation), ``"z"`` (about the polar axis) or ``True``
            (Haar-random rotation on :math:`SO(3)`), one per sample.
        extent: angular width of the image along its axes, degrees (default 90°).
        transform: optional callable applied to each sample when read.
        cache: keep generated samples in memory.

    Raises:
        ValueError: unknown ``split`` or ``rotate``, ``nside`` not a power of two,
            ``extent`` out of ``(0, 360)``, bad ``num_samples`` or ``seed``.

    Example:
        >>> ds = SphericalDigits("train", nside=8, rotate=True)
        >>> sample = ds[0]
        >>> tuple(sample.x.shape), int(sample.y) in range(10)
        ((768, 1), True)
    """

    nside: int = 16
    rotate: bool | str = False
    extent: float = 90.0

    def __post_init__(self) -> None:
        super().__post_init__()
        rotate = self.rotate
        if not any(rotate is r or (isinstance(r, str) and rotate == r) for r in ROTATIONS):
            raise ValueError(f"rotate must be False, 'z' or True, got {rotate!r}")
        self.nside = check_nside(self.nside)
        self.extent = float(self.extent)
        _half_width(self.extent)
        self.image_ids = split_image_ids()[self.split]
        images, labels = _load_digits()
        #: ``[n_images, 8, 8]`` float64 images of this split, scaled to ``[0, 1]``.
        self.images = images[self.image_ids]
        #: ``[n_images]`` int64 labels of this split.
        self.labels = labels[self.image_ids]

    def default_size(self, split: str) -> int:
        """Samples of ``split`` when ``num_samples`` is not given: its number of images."""
        return int(_split_ids()[split].size)

    @property
    def pos(self) -> np.ndarray:
        """``[12 nside^2, 3]`` float64 unit vectors of the HEALPix pixels, NEST order."""
        return _healpix_pos(self.nside)

    def image_index(self, index: int) -> int:
        """Index into :attr:`images` of the image shown by sample ``index``."""
        return int(index) % int(self.image_ids.size)

    def rotation(self, index: int) -> np.ndarray:
        """``[3, 3]`` rotation of sample ``index`` (the identity when ``rotate=False``)."""
        return self._draw_rotation(self.rng(index))

    def render(self, image_index: int, rotation: np.ndarray | None = None) -> np.ndarray:
        """``[12 nside^2]`` float64 map (NEST) of image ``image_index`` rotated by
        ``rotation`` (:func:`digit_on_sphere`)."""
        return digit_on_sphere(self.images[image_index], self.pos, extent=self.extent,
                               rotation=rotation)

    def generate(self, index: int, rng: np.random.Generator) -> SphereSignal:
        rotation = self._draw_rotation(rng)
        image = self.image_index(index)
        values = self.render(image, None if self.rotate is False else rotation)
        return SphereSignal(x=torch.from_numpy(values.astype(np.float32)[:, None]),
                            y=torch.tensor(int(self.labels[image]), dtype=torch.long))

    def hierarchy(self, levels: int, *, k: int = 8, **kwargs: Any) -> SphereHierarchy:
        """:meth:`SphereHierarchy.healpix` at the data set's ``nside`` (NEST, full sky);
        ``kwargs`` go to it (``kernel``, ``dtype``)."""
        return SphereHierarchy.healpix(self.nside, levels, k=k, **kwargs)

    def _draw_rotation(self, rng: np.random.Generator) -> np.ndarray:
        if self.rotate is True:
            return random_rotations(1, rng)[0]
        if self.rotate == "z":
            angle = rng.uniform(0.0, 2.0 * np.pi)
            c, s = np.cos(angle), np.sin(angle)
            return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        return np.eye(3)

    def extra_repr(self) -> str:
        return f"nside={self.nside}, rotate={self.rotate!r}, extent={self.extent:g}"


def split_image_ids() -> dict[str, np.ndarray]:
    """Sorted ids (rows of :func:`sklearn.datasets.load_digits`) of each split's images.

    Each class's images are permuted with :data:`SPLIT_SEED`; the first
    ``round(0.2 n)`` go to test, the next ``round(0.1 n)`` to val, the rest to train.
    """
    return {name: ids.copy() for name, ids in _split_ids().items()}


# --------------------------------------------------------------------------- helpers
@functools.lru_cache(maxsize=1)
def _load_digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.asarray(digits.images, dtype=np.float64) / IMAGE_MAX
    images.setflags(write=False)
    labels = np.asarray(digits.target, dtype=np.int64)
    labels.setflags(write=False)
    return images, labels


@functools.lru_cache(maxsize=1)
def _split_ids() -> dict[str, np.ndarray]:
    _, labels = _load_digits()
    rng = np.random.default_rng(SPLIT_SEED)
    parts: dict[str, list[np.ndarray]] = {name: [] for name in SPLITS}
    for label in np.unique(labels):
        ids = rng.permutation(np.flatnonzero(labels == label))
        num_test = round(SPLIT_FRACTIONS["test"] * ids.size)
        num_val = round(SPLIT_FRACTIONS["val"] * ids.size)
        parts["test"].append(ids[:num_test])
        parts["val"].append(ids[num_test:num_test + num_val])
        parts["train"].append(ids[num_test + num_val:])
    out = {}
    for name, chunks in parts.items():
        ids = np.sort(np.concatenate(chunks))
        ids.setflags(write=False)
        out[name] = ids
    return out


@functools.lru_cache(maxsize=8)
def _healpix_pos(nside: int) -> np.ndarray:
    npix = hp.nside2npix(nside)
    pos = np.stack(hp.pix2vec(nside, np.arange(npix), nest=True), axis=1)
    pos.setflags(write=False)
    return pos


def _half_width(extent: object) -> float:
    """Plane half-width :math:`2 \\tan(\\epsilon / 4)` of an image of angular width
    ``extent`` (degrees)."""
    try:
        value = float(extent)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        value = float("nan")
    if isinstance(extent, bool) or not (0.0 < value < 360.0):
        raise ValueError(f"extent must be the image's angular width in degrees, in (0, 360), "
                         f"got {extent!r}")
    return 2.0 * np.tan(np.radians(value) / 4.0)


def _check_rotation(rotation: object) -> np.ndarray:
    matrix = np.asarray(rotation, dtype=np.float64)
    if matrix.shape != (3, 3):
        raise ValueError(f"rotation must be a [3, 3] rotation matrix, got shape {matrix.shape}")
    if (not np.allclose(matrix @ matrix.T, np.eye(3), atol=1e-6)
            or np.linalg.det(matrix) < 0):
        raise ValueError("rotation must be a rotation matrix (orthogonal, determinant +1)")
    return matrix
