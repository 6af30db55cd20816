r"""The HEALPix face grids: NEST bit interleaving and the grid continued across faces.

NEST pixel :math:`p = f n^2 + \mathrm{interleave}(x, y)` (``n`` = ``nside``) sits at
column ``x`` and row ``y`` of base face ``f``; the bits of ``x`` are the even bits of
:math:`p - f n^2`, those of ``y`` the odd ones. Across each edge the grid of a face
continues on the neighbouring face by a fixed rotation or reflection of the grid, read
off :func:`healpy.get_all_neighbours` (:func:`face_geometry`), except beyond the 8
vertices where only three faces meet. :func:`halo_ids` gives the pixels of a square of
grid points around a tile, used by :mod:`deepsphere_pyg.graphs.healpix_knn`.
"""

from __future__ import annotations

from functools import lru_cache

import healpy as hp
import numpy as np

_MASKS = (0x0000FFFF0000FFFF, 0x00FF00FF00FF00FF, 0x0F0F0F0F0F0F0F0F,
          0x3333333333333333, 0x5555555555555555)
#: Face edges ``x < 0``, ``x >= n``, ``y < 0``, ``y >= n``: outward step, step along it.
EDGES = (((-1, 0), (0, 1)), ((1, 0), (0, 1)), ((0, -1), (1, 0)), ((0, 1), (1, 0)))


def spread_bits(v: np.ndarray) -> np.ndarray:
    """Bits of ``v`` (``0 <= v < 2^32``) moved to the even positions."""
    v = np.asarray(v, dtype=np.int64)
    for shift, mask in zip((16, 8, 4, 2, 1), _MASKS, strict=True):
        v = (v | (v << shift)) & mask
    return v


def compact_bits(v: np.ndarray) -> np.ndarray:
    """Inverse of :func:`spread_bits`: the even bits of ``v`` packed together."""
    v = np.asarray(v, dtype=np.int64) & _MASKS[-1]
    for shift, mask in zip((1, 2, 4, 8, 16), _MASKS[-2::-1] + (0xFFFFFFFF,), strict=True):
        v = (v | (v >> shift)) & mask
    return v


@lru_cache(maxsize=16)
def face_geometry(nside: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """How the face grids continue across the face edges, read off healpy.

    Returns ``(target, matrix, shift, corner3)``: for face ``f`` and edge ``e`` (of
    :data:`EDGES`), point ``(x, y)`` beyond the edge is point ``matrix[f, e] @ (x, y) +
    shift[f, e]`` of face ``target[f, e]``; ``corner3[f, c]`` marks the corners ``c = 2
    [x > 0] + [y > 0]`` where only three faces meet (the grid does not continue there).
    """
    n, probe_nside = nside, max(nside, 4)
    probe = hp.get_all_neighbours(probe_nside, hp.xyf2pix(probe_nside, 1, 1, 0, nest=True),
                                  nest=True)
    ox, oy, _ = hp.pix2xyf(probe_nside, probe, nest=True)
    direction = {(int(a) - 1, int(b) - 1): d for d, (a, b) in enumerate(zip(ox, oy,
                                                                            strict=True))}
    step = {d: np.array(offset) for offset, d in direction.items()}
    target = np.zeros((12, 4), dtype=np.int64)
    matrix = np.zeros((12, 4, 2, 2), dtype=np.int64)
    shift = np.zeros((12, 4, 2), dtype=np.int64)
    corner3 = np.zeros((12, 4), dtype=bool)
    t = (n - 1) // 2
    for f in range(12):
        for e, (u, v) in enumerate(EDGES):
            fixed = 0 if max(u) == 0 else n - 1
            edge = np.array((fixed, t) if u[0] else (t, fixed))
            p0, p1 = (hp.xyf2pix(n, *(edge + np.array(v) * i), f, nest=True) for i in (0, 1))
            q0, q1 = (hp.get_all_neighbours(n, p, nest=True)[direction[u]] for p in (p0, p1))
            back = int(np.flatnonzero(hp.get_all_neighbours(n, q0, nest=True) == p0)[0])
            x0, y0, f0 = (int(c) for c in hp.pix2xyf(n, q0, nest=True))
            x1, y1, _ = (int(c) for c in hp.pix2xyf(n, q1, nest=True))
            axis = 0 if u[0] else 1  # images of the unit steps: A u = -(step q0 -> p0)
            matrix[f, e][:, axis] = -step[back] * u[axis]
            matrix[f, e][:, 1 - axis] = np.array([x1 - x0, y1 - y0]) * v[1 - axis]
            shift[f, e] = np.array([x0, y0]) - matrix[f, e] @ (edge + np.array(u))
            target[f, e] = f0
        for c, corner in enumerate(((0, 0), (0, n - 1), (n - 1, 0), (n - 1, n - 1))):
            pixel = hp.xyf2pix(n, *corner, f, nest=True)
            corner3[f, c] = bool((hp.get_all_neighbours(n, pixel, nest=True) < 0).any())
    return target, matrix, shift, corner3


def halo_ids(nside: int, face: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """NEST ids ``[nb, W, W]`` of the grid points ``(xs[t, a], ys[t, b])`` of faces
    ``face[t]`` (``xs``, ``ys``: ``[nb, W]`` integers, possibly outside ``[0, nside)``),
    continued across face edges. Points beyond a three-face corner, where there is no
    pixel, are clipped into the face: callers must not use them."""
    n = nside
    inside_x, inside_y = (xs >= 0) & (xs < n), (ys >= 0) & (ys < n)
    ids = (face[:, None, None] * (n * n) + spread_bits(np.clip(xs, 0, n - 1))[:, :, None]
           + (spread_bits(np.clip(ys, 0, n - 1)) << 1)[:, None, :])
    if inside_x.all() and inside_y.all():
        return ids
    target, matrix, shift, corner3 = face_geometry(n)
    tile, a, b = np.nonzero(~(inside_x[:, :, None] & inside_y[:, None, :]))
    x, y, f = xs[tile, a], ys[tile, b], face[tile]
    keep = ~(~inside_x[tile, a] & ~inside_y[tile, b] & corner3[f, 2 * (x > 0) + (y > 0)])
    tile, a, b, x, y, f = tile[keep], a[keep], b[keep], x[keep], y[keep], f[keep]
    for _ in range(2):  # a corner point crosses two edges
        for e in range(4):
            beyond = (x < 0, x >= n, y < 0, y >= n)[e]
            fb = f[beyond]
            mat, sh, xb, yb = matrix[fb, e], shift[fb, e], x[beyond], y[beyond]
            x[beyond] = mat[:, 0, 0] * xb + mat[:, 0, 1] * yb + sh[:, 0]
            y[beyond] = mat[:, 1, 0] * xb + mat[:, 1, 1] * yb + sh[:, 1]
            f[beyond] = target[fb, e]
    ids[tile, a, b] = f * (n * n) + spread_bits(x) + (spread_bits(y) << 1)
    return ids
