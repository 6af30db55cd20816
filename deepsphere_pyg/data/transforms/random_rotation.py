r"""Random rotations of full-sky HEALPix maps: :class:`RandomRotation`, :func:`rotate_healpix`."""

from __future__ import annotations

import functools
from typing import Any

import healpy as hp
import numpy as np
import torch
from torch_geometric.transforms import BaseTransform

from ...graphs.checks import check_bool, check_nside
from ...graphs.equivariance import random_rotations, rotate_alm
from ...openmp import single_threaded_openmp
from .checks import (
    RandomStream,
    check_finite,
    check_healpix_length,
    check_healpix_ordering,
    node_values,
)

__all__ = ["GRID_ROTATIONS", "RandomRotation", "grid_rotation_permutation", "rotate_healpix"]

#: Jacobi iterations of the harmonic analysis (:func:`healpy.map2alm`).
MAP2ALM_ITER = 3


def _grid_rotations() -> np.ndarray:
    r"""The 8 rotations that map the HEALPix grid onto itself, ``[8, 3, 3]``.

    Quarter turns about the polar axis, :math:`R_z(k\pi/2)`, optionally followed by the
    half turn about the x axis, :math:`(x, y, z) \mapsto (x, -y, -z)`, which swaps the
    hemispheres (the grid is symmetric under :math:`\phi \to -\phi` and
    :math:`z \to -z`).
    """
    out = []
    flip = np.diag([1.0, -1.0, -1.0])
    for turn in (np.eye(3), flip):
        for k in range(4):
            c, s = [(1, 0), (0, 1), (-1, 0), (0, -1)][k]
            out.append(turn @ np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]], dtype=np.float64))
    return np.stack(out)


#: ``[8, 3, 3]`` rotation matrices that permute HEALPix pixels (:func:`_grid_rotations`).
GRID_ROTATIONS = _grid_rotations()
GRID_ROTATIONS.flags.writeable = False


def _permutation(nside: int, nest: bool, index: int) -> np.ndarray:
    pixels = np.arange(hp.nside2npix(nside))
    vectors = np.stack(hp.pix2vec(nside, pixels, nest=nest))  # [3, N]
    source = GRID_ROTATIONS[index].T @ vectors  # M^{-1} x_p
    return hp.vec2pix(nside, *source, nest=nest)


_cached_permutation = functools.lru_cache(maxsize=16)(_permutation)


def grid_rotation_permutation(nside: int, nest: bool, index: int) -> np.ndarray:
    r"""Pixel permutation of the grid rotation ``GRID_ROTATIONS[index]``, ``[12 nside^2]``.

    ``rotated = map[perm]`` is the actively rotated map, :math:`f(M^{-1} x_p)` at every
    pixel :math:`p`, exactly (no interpolation). Cached up to nside 256.
    """
    nside = check_nside(nside)
    if not 0 <= int(index) < len(GRID_ROTATIONS):
        raise ValueError(f"index must lie in [0, {len(GRID_ROTATIONS) - 1}], got {index!r}")
    if nside <= 256:
        return _cached_permutation(nside, bool(nest), int(index))
    return _permutation(nside, bool(nest), int(index))


def rotate_healpix(maps: np.ndarray, matrix: np.ndarray, nside: int, nest: bool = True
                   ) -> np.ndarray:
    r"""Actively rotated full-sky maps, :math:`f(M^{-1} x)`, by a harmonic rotation.

    Each map is analysed with :func:`healpy.map2alm` (:math:`L = 3 n_\mathrm{side} - 1`,
    three Jacobi iterations, no pixel weights), its coefficients are rotated with
    :func:`~deepsphere_pyg.graphs.equivariance.rotate_alm` and synthesised again. The
    result is band-limited to :math:`L`; content above :math:`L` is lost.

    **Accuracy.** HEALPix analysis is inexact near the band limit, so the error grows with
    the map's content near :math:`L`. Relative L2 error against the exactly rotated map
    (``tests/data/test_transforms.py`` checks maps band-limited to :math:`n_\mathrm{side}`
    and :math:`2 n_\mathrm{side}`), for Gaussian maps with a
    flat spectrum up to :math:`\ell_b`: :math:`\sim 10^{-3}` for
    :math:`\ell_b = n_\mathrm{side}`, :math:`\sim 10^{-2}` for
    :math:`\ell_b = 2 n_\mathrm{side}`, :math:`\sim 0.1` for :math:`\ell_b = L`; for
    the maps of :class:`~deepsphere_pyg.data.CosmologyMaps` and
    :class:`~deepsphere_pyg.data.CMBMaps` (nside 64) 6 % and 5 %, nearly all of it at
    :math:`\ell > 2 n_\mathrm{side}`: restricted to :math:`\ell \le 2 n_\mathrm{side}`
    the error is 0.6 %. Use ``RandomRotation(..., exact=True)`` where exactness matters.

    Args:
        maps: ``[N]`` or ``[N, F]`` float maps, ``N = 12 nside^2``.
        matrix: ``[3, 3]`` rotation matrix :math:`M`.
        nside: resolution of the maps.
        nest: pixel ordering of ``maps`` (NEST if ``True``).

    Returns:
        float64 array of the shape of ``maps``.
    """
    maps = np.asarray(maps, dtype=np.float64)
    columns = maps.reshape(maps.shape[0], -1)
    lmax = 3 * nside - 1
    out = np.empty_like(columns)
    with single_threaded_openmp():
        for channel in range(columns.shape[1]):
            ring = columns[:, channel]
            if nest:
                ring = hp.reorder(ring, n2r=True)
            alm = hp.map2alm(ring, lmax=lmax, mmax=lmax, iter=MAP2ALM_ITER,
                             use_pixel_weights=False)
            rotated = hp.alm2map(rotate_alm(alm, matrix, lmax), nside, lmax=lmax, mmax=lmax)
            out[:, channel] = hp.reorder(rotated, r2n=True) if nest else rotated
    return out.reshape(maps.shape)


class RandomRotation(BaseTransform):
    r"""Rotate a full-sky HEALPix map by a random rotation (data augmentation).

    ``exact=False`` (default): a rotation drawn uniformly (Haar measure) on
    :math:`SO(3)`, applied in harmonic space (:func:`rotate_healpix`): the rotated map is
    band-limited to :math:`3 n_\mathrm{side} - 1`; its accuracy is that of
    :func:`rotate_healpix` (about 0.6 % below :math:`\ell = 2 n_\mathrm{side}`, a few per
    cent above, for the generated cosmology and CMB maps). Only ``data.x`` can be
    rotated this way; samples with other node-level attributes (``y_node``, ``node_mask``)
    are refused.

    ``exact=True``: one of the 8 rotations that map pixels onto pixels
    (:data:`GRID_ROTATIONS`: quarter turns about the polar axis, with or without the
    half turn that swaps the hemispheres), drawn uniformly and applied as a permutation of
    the pixels: exact at every scale, and applied to ``x``, ``y_node`` and ``node_mask``
    alike.

    The matrix used by the latest call is kept in :attr:`last_rotation` (``[3, 3]``).

    Cost per channel: harmonic grows as :math:`n_\mathrm{side}^3` (eight
    spherical-harmonic transforms); exact is mostly the ordering check (permutations are
    cached up to nside 256). Measured times: ``BENCHMARKS.md``, "Costs behind the
    library's defaults".

    Args:
        nside: resolution of the maps (``data.x`` has ``12 nside^2`` rows).
        nest: pixel ordering of the maps (NEST if ``True``).
        seed: seed of the rotations: with a seed, a fresh transform repeats the same
            sequence of rotations (each data loader worker holds a copy, so workers repeat
            each other's sequence); ``None`` draws from torch's global generator.
        exact: restrict to the 8 pixel-permuting rotations (see above).
        check_ordering: raise when the map looks like it is in the other ordering
            (:func:`~deepsphere_pyg.data.transforms.checks.check_healpix_ordering`).

    Shapes:
        - **input:** ``data.x`` ``[12 nside^2]`` or ``[12 nside^2, F]``.
        - **output:** same shape and dtype.

    Raises:
        ValueError: a map of the wrong length (not ``12 nside^2``), NaN or infinite
            values, a map that looks like the other ordering, node-level attributes other
            than ``x`` with ``exact=False``.
    """

    def __init__(self, nside: int, nest: bool = True, seed: int | None = None, *,
                 exact: bool = False, check_ordering: bool = True) -> None:
        self.nside = check_nside(nside)
        self.nest = check_bool(nest, "nest", " (True: NEST ordering, False: RING)")
        self.exact = bool(exact)
        self.check_ordering = bool(check_ordering)
        self._stream = RandomStream(seed)
        self.seed = self._stream.seed
        self.last_rotation: np.ndarray | None = None

    def forward(self, data: Any) -> Any:
        owner = type(self).__name__
        x = node_values(data, owner)
        check_healpix_length(x, self.nside, owner)
        check_finite(x, owner)
        values = x.detach().cpu().double().numpy()
        if self.check_ordering:
            check_healpix_ordering(values, self.nside, self.nest, owner)
        rng = self._stream.next()
        if self.exact:
            index = int(rng.integers(len(GRID_ROTATIONS)))
            self.last_rotation = np.array(GRID_ROTATIONS[index])
            perm = torch.from_numpy(grid_rotation_permutation(self.nside, self.nest, index))
            for key in ("x", "y_node", "node_mask"):
                value = getattr(data, key, None)
                if isinstance(value, torch.Tensor):
                    setattr(data, key, value[perm.to(value.device)])
            return data
        for key in ("y_node", "node_mask"):
            if getattr(data, key, None) is not None:
                raise ValueError(
                    f"{owner}: data.{key} cannot be rotated in harmonic space (only maps "
                    "can); use exact=True (pixel permutations), or rotate before masking")
        matrix = random_rotations(1, rng)[0]
        self.last_rotation = matrix
        rotated = rotate_healpix(values, matrix, self.nside, self.nest)
        data.x = torch.from_numpy(rotated).to(dtype=x.dtype, device=x.device)
        return data

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(nside={self.nside}, nest={self.nest}, "
                f"seed={self.seed}, exact={self.exact})")
