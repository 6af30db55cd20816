r"""Exact k-nearest-neighbour search on HEALPix pixels from the HEALPix grid structure.

The ``k`` nearest pixels of a pixel lie within a few *rings* of it (ring 1: its 8 or 7
neighbours of :func:`healpy.get_all_neighbours`; ring ``j + 1``: the neighbours of ring
``j`` not in an earlier ring). :func:`healpix_knn` takes the pixels within ``R`` =
:func:`ring_count` rings as candidates and keeps the ``k`` nearest by chord distance. No
tree over the sky is built: the cost grows with the number of query pixels only.

**Grid.** NEST pixel :math:`f n^2 + \mathrm{interleave}(x, y)` sits at column ``x``, row
``y`` of base face ``f``; its rings are the squares :math:`\max(|\Delta x|, |\Delta y|) =
j` of the face grid, continued across face edges (by a rotation or reflection per edge,
read off healpy: :mod:`~deepsphere_pyg.graphs.healpix_grid`). Pixels within ``R`` rows
and columns of the 8 vertices where only three faces meet take their rings from
:func:`healpy.get_all_neighbours`; the others are searched in NEST tiles of
:data:`_TILE_SIDE` pixels with a halo of ``R``, flattened, so that the candidate at offset
:math:`\delta` is one array shifted by :math:`\delta_x W + \delta_y` (``W``: halo width)
and each pair is computed once, for :math:`\pm\delta`.

**Distances** :math:`s = d_x^2 + d_y^2 + d_z^2` (:math:`d = u - v`, summed in that order as
:class:`scipy.spatial.cKDTree` does); ``np.sqrt(s) ** 2`` is returned, as
:func:`~deepsphere_pyg.graphs.knn.knn_chord` returns it from the tree: bitwise equal
distances, the same from either end of a pair.

**Tie rule.** Neighbours are sorted by :math:`s`, equal :math:`s` by increasing NEST id, so
of pixels at exactly the ``k``-th distance the lower ids are kept. HEALPix has such ties
(mirror-symmetric pixels, a few rows per map); the tree breaks them in its traversal
order, so both searches agree except in those rows, where they pick equally near pixels.

**Selection.** A *pattern* (from a sample of rows) is a core of candidates plus the ``a``
nearest of a few extra ones; a row matches when its largest chosen distance is strictly
below its smallest other one (:math:`(2R+1)^2` array operations, no per-row partition).
Chosen candidates are sorted on exact integer keys (bits of :math:`s` less a base, shifted,
plus the candidate) by a sorting network of vectorised minima and maxima; unmatched rows
are sorted row by row, and equal distances then put in id order.

**Rings.** :func:`ring_count` is the smallest ``R`` with :math:`k \le \lfloor 9 (2R+1)^2 /
25 \rfloor`. On full-sky maps at ``nside`` 16 to 128, under this rule the nearest pixel
outside ``R`` rings is at least 1.1 times as far as the ``k``-th nearest for every pixel
and ``k <= 43`` (the ratio tends slowly to a limit with ``nside``), and lies in ring
``R + 1``. ``verify=True`` checks it: rows whose ``k``-th distance is not strictly below
that of every pixel of ring ``R + 1`` are searched again with one more ring.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

import healpy as hp
import numpy as np

from .healpix_grid import compact_bits, face_geometry, halo_ids

#: Smallest ``nside`` whose graphs use the ring search (:func:`uses_rings`): smaller maps
#: (under 2e5 pixels, well under a second) keep the tree, and their graphs, ties included.
RING_MIN_NSIDE = 128
#: Most rings graphs search; side of the NEST tiles; pixels and pair-distance bytes per
#: block; least fraction of a tile's pixels queried to search it as a tile.
_MAX_RINGS, _TILE_SIDE, _BLOCK_PIXELS, _BLOCK_BYTES, _SPARSE_TILE = 6, 64, 1 << 16, 1 << 26, 1 / 16
#: Patterns: rows sampled, most uncertain candidates, least fraction of the remaining
#: rows matched to go on, rows left for the exact sort; rows per pixel-wise ring search.
_SAMPLE, _MAX_EXTRA, _MIN_MATCH, _FEW_ROWS, _RING_BLOCK = 32, 12, 1 / 32, 64, 1 << 14


def ring_count(k: int) -> int:
    r"""Rings of neighbours searched for ``k`` neighbours: the smallest ``R >= 1`` with
    :math:`k \le \lfloor 9 (2R+1)^2 / 25 \rfloor` (see the module docstring)."""
    radius = 1
    while 9 * (2 * radius + 1) ** 2 // 25 < k:
        radius += 1
    return radius


def uses_rings(nside: int, k: int) -> bool:
    """Whether graphs search with :func:`healpix_knn` rather than a tree over all pixels:
    ``nside >= RING_MIN_NSIDE``, ``R`` = :func:`ring_count` at most :data:`_MAX_RINGS`
    (``k <= 60``), and ``2R + 1`` pixels fit in a base face (the rings are a small part
    of the sky)."""
    radius = ring_count(k)
    return nside >= RING_MIN_NSIDE and radius <= _MAX_RINGS and 2 * radius + 1 <= nside


def healpix_knn(
    nside: int,
    k: int,
    pixels: np.ndarray | None = None,
    *,
    rings: int | None = None,
    verify: bool = False,
    index_dtype: type[np.signedinteger] = np.int64,
    positions: np.ndarray | None = None,
    workers: int = -1,
) -> tuple[np.ndarray, np.ndarray]:
    r"""The ``k`` nearest HEALPix pixels (self excluded, over the full sky) of NEST pixels.

    Args:
        nside: HEALPix resolution (a power of two).
        k: neighbours per pixel.
        pixels: ``[M]`` NEST ids of the query pixels, any order, no repeats (``None``: all
            ``12 nside^2`` pixels, in order).
        rings: candidate rings ``R`` (default :func:`ring_count` of ``k``); ``2R + 1`` must
            not exceed ``nside``.
        verify: check every row against ring ``R + 1`` and search the rows that fail
            again with more rings (see the module docstring).
        index_dtype: integer dtype of the returned ids.
        positions: optional ``[M, 3]`` float64 array, filled with the unit vectors of the
            query pixels (those of :func:`healpy.pix2vec`, which the search computes).
        workers: threads searching blocks of tiles at once (``-1``: all cores).

    Returns:
        ``(index, dist2)``: ``[M, k]`` NEST ids of the neighbours sorted by increasing
        distance (equal distances by increasing id), and their ``[M, k]`` float64 squared
        chord distances (computed as :func:`~deepsphere_pyg.graphs.knn.knn_chord` does).
    """
    npix = 12 * nside * nside
    if not 1 <= k < npix:
        raise ValueError(f"k must satisfy 1 <= k < {npix}, got k={k}")
    radius = ring_count(k) if rings is None else int(rings)
    if radius < 1 or 2 * radius + 1 > nside:
        raise ValueError(f"{radius} rings do not fit in a base face at nside={nside}; "
                         "search a tree instead (knn_chord)")
    order = None
    if pixels is None:
        query = np.arange(npix, dtype=np.int64)
    else:
        query = np.asarray(pixels, dtype=np.int64).ravel()
        if not np.all(query[1:] > query[:-1]):
            order = np.argsort(query, kind="stable")
            query = query[order]
            if np.any(query[1:] == query[:-1]):
                raise ValueError("pixels must not repeat")
        if query.size and (query[0] < 0 or query[-1] >= npix):
            raise ValueError(f"pixels must lie in [0, {npix - 1}]")
    if positions is not None and positions.shape != (query.size, 3):
        raise ValueError(f"positions must have shape {(query.size, 3)}, got "
                         f"{positions.shape}")
    out = _Output(query.size, k, index_dtype, order, positions)
    search = _TileSearch(nside, k, radius, verify, query, pixels is None, out)
    left = search.run((os.cpu_count() or 1) if workers == -1 else max(1, workers))
    for start in range(0, left.size, _RING_BLOCK):
        rows = left[start:start + _RING_BLOCK]
        vectors = None if positions is None else np.stack(hp.pix2vec(nside, query[rows],
                                                                     nest=True))
        out.rows(rows, *_ring_search(nside, k, radius, query[rows], verify), vectors)
    return out.index, out.dist2


class _Output:
    """The results, written by rows (positions in the sorted query, or a slice)."""

    def __init__(self, size: int, k: int, index_dtype: type[np.signedinteger],
                 order: np.ndarray | None, positions: np.ndarray | None) -> None:
        self.index = np.empty((size, k), dtype=index_dtype)
        self.dist2 = np.empty((size, k), dtype=np.float64)
        self.order, self.positions = order, positions

    def rows(self, rows: np.ndarray | slice, ids: np.ndarray, values: np.ndarray,
             vectors: np.ndarray | None = None) -> None:
        """Rows ``rows`` get ``ids`` ``[k, n]``, ``np.sqrt(s) ** 2`` of the raw values
        ``s`` ``[k, n]`` (overwritten) and, if kept, the unit vectors ``[3, n]``."""
        np.sqrt(values, out=values)
        np.square(values, out=values)
        if not isinstance(rows, slice) and self.order is not None:
            rows = self.order[rows]
        self.index[rows], self.dist2[rows] = ids.T, values.T
        if vectors is not None and self.positions is not None:
            self.positions[rows] = vectors.T


# -------------------------------------------------------------------------- helpers
def _offsets(radius: int, first: int = 1) -> np.ndarray:
    """``[m, 2]`` grid offsets ``(dx, dy)`` of rings ``first .. radius``, ring by ring."""
    steps = np.arange(-radius, radius + 1)
    dx, dy = (a.ravel() for a in np.meshgrid(steps, steps, indexing="ij"))
    ring = np.maximum(np.abs(dx), np.abs(dy))
    keep = np.flatnonzero(ring >= first)
    keep = keep[np.argsort(ring[keep], kind="stable")]
    return np.stack([dx[keep], dy[keep]], axis=1)


def _squared(ax: np.ndarray, ay: np.ndarray, az: np.ndarray, bx: np.ndarray,
             by: np.ndarray, bz: np.ndarray, out: np.ndarray | None = None,
             tmp: np.ndarray | None = None) -> np.ndarray:
    """:math:`(a_x-b_x)^2 + (a_y-b_y)^2 + (a_z-b_z)^2`, summed in that order."""
    out = np.subtract(ax, bx, out=out)
    np.multiply(out, out, out=out)
    for a, b in ((ay, by), (az, bz)):
        tmp = np.subtract(a, b, out=tmp)
        np.multiply(tmp, tmp, out=tmp)
        out += tmp
    return out


def _wrap(value: int) -> int:
    """``value`` modulo 2^64, as a signed 64-bit integer."""
    return (value + (1 << 63)) % (1 << 64) - (1 << 63)


@lru_cache(maxsize=64)
def _network(n: int) -> tuple[tuple[int, int], ...]:
    """Batcher's odd-even merge sorting network on ``n`` wires (comparators ``(a, b)``,
    ``a < b``: after each, wire ``a`` holds the smaller value)."""
    pairs, p = [], 1
    while p < n:
        step = p
        while step >= 1:
            for j in range(step % p, n - step, 2 * step):
                for i in range(min(step, n - j - step)):
                    if (i + j) // (2 * p) == (i + j + step) // (2 * p):
                        pairs.append((i + j, i + j + step))
            step //= 2
        p *= 2
    return tuple(pairs)


class _Workspace:
    """Buffers reused from block to block (one set per thread): blocks that allocated
    and freed large arrays would hand the memory back to the system and page-fault it in
    again each time."""

    def __init__(self) -> None:
        self._arrays: dict[tuple[str, np.dtype], np.ndarray] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype: type) -> np.ndarray:
        """The buffer ``name`` as an (uninitialised) array of ``shape``."""
        size, key = int(np.prod(shape)), (name, np.dtype(dtype))
        array = self._arrays.get(key)
        if array is None or array.size < size:
            array = self._arrays[key] = np.empty(max(size, 1), dtype=dtype)
        return array[:size].reshape(shape)


# ---------------------------------------------------------------------- tile search
class _TileSearch:
    """The search of the query pixels on the face grid, block of tiles by block."""

    def __init__(self, nside: int, k: int, radius: int, verify: bool, query: np.ndarray,
                 full_sky: bool, out: _Output) -> None:
        self.nside, self.k, self.radius, self.query, self.full_sky, self.out = (
            nside, k, radius, query, full_sky, out)
        self.halo = halo = radius + 1 if verify else radius
        self.side = side = min(_TILE_SIDE, nside)
        self.area = area = side * side
        self.width = width = side + 2 * halo
        self.tiles_per_face = (nside // side) ** 2
        if full_sky:
            tiles = np.arange(12 * self.tiles_per_face, dtype=np.int64)
            counts = np.full(tiles.size, area)
        else:  # runs of the sorted query in the same tile
            tile_of = query // area
            starts = np.flatnonzero(np.r_[tile_of[:1] >= 0, tile_of[1:] != tile_of[:-1]])
            tiles, counts = tile_of[starts], np.diff(np.r_[starts, query.size])
        dense = counts >= _SPARSE_TILE * area
        self.sparse = np.flatnonzero(np.repeat(~dense, counts))  # positions in query
        self.tiles = tiles[dense]
        offsets = _offsets(radius)
        self.m = offsets.shape[0]
        self.flat_offset = offsets[:, 0] * width + offsets[:, 1]
        self.column = {(int(dx), int(dy)): c for c, (dx, dy) in enumerate(offsets)}
        self.pairs = [(int(dx), int(dy)) for dx, dy in _offsets(halo)
                      if dx > 0 or (dx == 0 and dy > 0)]
        self.corner3 = face_geometry(nside)[3]
        self.per_block = max(1, min(_BLOCK_PIXELS // area,
                                    _BLOCK_BYTES // (8 * width * width * len(self.pairs))))
        self.interior = np.zeros((width, width), dtype=bool)
        self.interior[halo:halo + side, halo:halo + side] = True
        own = np.arange(area)  # halo-flat cell of each pixel of a block, in NEST order
        self.nest_cells = ((np.arange(self.per_block) * width * width)[:, None]
                           + (compact_bits(own) + halo) * width + compact_bits(own >> 1) + halo
                           ).reshape(-1)
        self.local = np.zeros((width, width), dtype=np.int64)
        self.local.reshape(-1)[self.nest_cells[:area]] = own
        self._threads = threading.local()

    def run(self, workers: int) -> np.ndarray:
        """Search every block; the positions (in ``query``) of the pixels left over."""
        firsts = range(0, self.tiles.size, self.per_block)
        if workers > 1 and len(firsts) > 1:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                left = list(pool.map(self.block, firsts))
        else:
            left = [self.block(first) for first in firsts]
        return np.concatenate([self.sparse] + left).astype(np.int64)

    def block(self, first: int) -> np.ndarray:
        """Search the tiles ``tiles[first:first + per_block]``; return the positions of
        the query pixels left to the ring search."""
        nside, halo, side, area, width = self.nside, self.halo, self.side, self.area, self.width
        ws = self._threads.__dict__.setdefault("workspace", _Workspace())
        block = self.tiles[first:first + self.per_block]
        nb, cells, start = block.size, block.size * width * width, int(block[0]) * area
        face, local = block // self.tiles_per_face, block % self.tiles_per_face
        span = np.arange(-halo, side + halo)
        xs = compact_bits(local)[:, None] * side + span
        ys = compact_bits(local >> 1)[:, None] * side + span
        ids = halo_ids(nside, face, xs, ys).reshape(-1)
        vx, vy, vz = hp.pix2vec(nside, ids, nest=True)
        ids = ids.astype(self.out.index.dtype)

        # Rows: the tiles' own pixels that are queried, away from three-face corners.
        valid = np.broadcast_to(self.interior, (nb, width, width)).copy()
        for c in range(4):
            hit = self.corner3[face, c]
            if hit.any():
                near_x = (xs < halo) if c < 2 else (xs >= nside - halo)
                near_y = (ys < halo) if c % 2 == 0 else (ys >= nside - halo)
                valid &= ~(hit[:, None, None] & near_x[:, :, None] & near_y[:, None, :])
        valid = valid.reshape(-1)
        if self.full_sky:
            out_rows = self.nest_cells[:nb * area]
            where: np.ndarray | slice = slice(start, start + nb * area)
            left = [start + np.flatnonzero(~valid[out_rows])]
        else:
            nest = ((block * area)[:, None, None] + self.local).reshape(-1)
            position = np.minimum(np.searchsorted(self.query, nest), self.query.size - 1)
            queried = np.tile(self.interior.reshape(-1), nb) & (self.query[position] == nest)
            valid &= queried
            left = [position[queried & ~valid]]
            out_rows = np.flatnonzero(valid)
            where = position[out_rows]
        if out_rows.size == 0 or not valid.any():
            return np.concatenate(left)

        # Squared distances of the pairs (p, p + delta): one buffer per pair, read at
        # +delta by p and at -delta by p + delta.
        pad = halo * width + halo
        buffers = ws.get("pairs", (len(self.pairs), cells + pad), np.float64)
        tmp = ws.get("tmp", (cells,), np.float64)
        views, guard = [vx] * self.m, None
        for buf, (dx, dy) in zip(buffers, self.pairs, strict=True):
            delta = dx * width + dy
            buf[:pad], buf[pad + cells - delta:] = 0.0, 0.0  # read only outside the tiles
            _squared(vx[:cells - delta], vy[:cells - delta], vz[:cells - delta], vx[delta:],
                     vy[delta:], vz[delta:], buf[pad:pad + cells - delta], tmp[delta:])
            plus, minus = buf[pad:pad + cells], buf[pad - delta:pad - delta + cells]
            if max(abs(dx), abs(dy)) <= self.radius:
                views[self.column[(dx, dy)]], views[self.column[(-dx, -dy)]] = plus, minus
            elif guard is None:  # ring R + 1, to verify
                guard = np.minimum(plus, minus, out=ws.get("guard", (cells,), np.float64))
            else:
                np.minimum(guard, plus, out=guard)
                np.minimum(guard, minus, out=guard)
        flat_offset = self.flat_offset

        def id_of(r: np.ndarray, c: np.ndarray) -> np.ndarray:
            return ids[r + flat_offset[c]]

        labels, values = _select(views, self.k, np.flatnonzero(valid), valid, id_of,
                                 out_rows, ws)
        if guard is not None:  # rows that fail are written now and searched again after
            failed = np.flatnonzero(valid[out_rows] & ~(values[-1] < guard[out_rows]))
            left.append(start + failed if isinstance(where, slice) else where[failed])
        # (mode="clip" only avoids the buffering of ``out``: the indices are in range.)
        cell = np.take(flat_offset, labels, out=ws.get("cell", labels.shape, np.int64),
                       mode="clip")
        cell += out_rows
        vectors = None
        if self.out.positions is not None:
            vectors = ws.get("vectors", (3, out_rows.size), np.float64)
            for axis, component in enumerate((vx, vy, vz)):
                np.take(component, out_rows, out=vectors[axis], mode="clip")
        self.out.rows(where, np.take(ids, cell, out=ws.get("ids", labels.shape, ids.dtype),
                                     mode="clip"), values, vectors)
        return np.concatenate(left)


def _select(
    views: list[np.ndarray], k: int, rows: np.ndarray, valid: np.ndarray,
    id_of: Callable[[np.ndarray, np.ndarray], np.ndarray], out_rows: np.ndarray,
    ws: _Workspace,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` smallest candidates of the rows ``rows`` (``valid``: their mask), where
    candidate ``c`` of row ``r`` is ``views[c][r]``, sorted by value then candidate id
    (``id_of(rows, candidates)``). Returns ``(candidates [k, n], raw values [k, n])`` of
    the rows ``out_rows`` (meaningless where not ``valid``), in buffers of ``ws``."""
    m, length = len(views), views[0].size
    bits = max(1, (m - 1).bit_length())
    limit = 1 << (62 - bits)  # |bits(s) - base| below it: the keys do not overflow
    keys = base = rest = None  # rest: (rows, candidates, values) sorted row by row
    rem, current = rows, None  # current: [m, rem] once the rows are compressed
    while rem.size > _FEW_ROWS:
        n = length if current is None else rem.size
        sample = rem[np.linspace(0, rem.size - 1, _SAMPLE).astype(np.int64)]
        if current is None:
            source, sampled = views, np.stack([v[sample] for v in views])
        else:
            source, sampled = list(current), current[:, np.searchsorted(rem, sample)]
        core, extra, a = _pattern(sampled, k)
        members = np.concatenate([core, extra])
        top = _fold(np.maximum, source, core, ws.get("top", (n,), np.float64))
        low = _fold(np.minimum, source, np.setdiff1d(np.arange(m), members),
                    ws.get("low", (n,), np.float64))
        lowest = _fold(np.minimum, source, members, ws.get("lowest", (n,), np.float64))
        highest = _fold(np.maximum, source, extra, ws.get("highest", (n,), np.float64), top)
        seen = valid if current is None else True
        lowest = int(np.float64(np.min(lowest, where=seen, initial=np.inf)).view(np.int64))
        highest = int(np.float64(np.max(highest, where=seen, initial=0.0)).view(np.int64))
        base = lowest if base is None else base
        if not (abs(lowest - base) < limit and abs(highest - base) < limit):
            break  # too wide a range of distances for keys: sorted row by row below
        # key = ((bits(s) - base) << bits) + c, computed modulo 2^64.
        buffer = ws.get("keys", (members.size + 1, n), np.int64)
        for row, c in zip(buffer, members, strict=False):
            np.left_shift(source[c].view(np.int64), bits, out=row)
            row += np.int64(_wrap(int(c) - (base << bits)))
        chosen, spare = list(buffer[:core.size]), buffer[members.size]
        if a:  # the a smallest of the extra candidates complete the set
            extra_keys, spare = _sort_keys(list(buffer[core.size:members.size]), spare)
            chosen += extra_keys[:a]
            bounds = []
            for bound, key, fold in ((top, extra_keys[a - 1], np.maximum),
                                     (low, extra_keys[a], np.minimum)):
                value = np.right_shift(key, bits, out=spare)
                value += base
                value = value.view(np.float64)
                bounds.append(value.copy() if bound is None else fold(bound, value, out=bound))
            top, low = bounds
        ok = np.less(top, low, out=ws.get("ok", (n,), bool))
        if current is None:
            ok &= valid
        if np.count_nonzero(ok) < _MIN_MATCH * rem.size:
            break
        sorted_keys, _ = _sort_keys(chosen, spare)
        if current is None:  # the first pass: rows outside ``ok`` get garbage, replaced
            keys = ws.get("block keys", (k, length), np.int64)
            for row, key in zip(keys, sorted_keys, strict=True):
                row[:] = key
            rem = rem[~ok[rem]]
            current = _gather(views, rem, ws.get("current", (m, rem.size), np.float64))
        else:
            at, hit = rem[ok], np.flatnonzero(ok)
            for row, key in zip(keys, sorted_keys, strict=True):
                row[at] = key[hit]
            rem, current = rem[~ok], np.compress(~ok, current, axis=1)
    if rem.size:
        if current is None:
            current = _gather(views, rem, ws.get("current", (m, rem.size), np.float64))
        tags = np.broadcast_to(np.arange(m)[:, None], current.shape)
        rest = (rem, *_exact(current, tags, k,
                             lambda sub, tags, cols=rem: id_of(cols[None, sub], tags)))
    picked = ws.get("picked", (k, out_rows.size), np.int64)
    labels = ws.get("labels", (k, out_rows.size), np.int64)
    if keys is None:
        labels[:], picked[:] = 0, 0
    else:
        np.take(keys, out_rows, axis=1, out=picked, mode="clip")
        np.bitwise_and(picked, (1 << bits) - 1, out=labels)
        picked >>= bits
        picked += base
    values = picked.view(np.float64)
    if rest is not None:
        spot = np.full(length, -1, dtype=np.int64)
        spot[out_rows] = np.arange(out_rows.size)
        labels[:, spot[rest[0]]], values[:, spot[rest[0]]] = rest[1], rest[2]
    # Equal distances within a row: order them by id.
    tied = values[0] == values[1]
    for j in range(1, k - 1):
        tied |= values[j] == values[j + 1]
    tied = np.flatnonzero(tied & valid[out_rows])
    if tied.size:
        cols = out_rows[tied]
        labels[:, tied], values[:, tied] = _exact(
            values[:, tied], labels[:, tied], k,
            lambda sub, tags, cols=cols: id_of(cols[None, sub], tags))
    return labels, values


def _pattern(sample: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, int]:
    """``(core, extra, a)`` for the rows sampled in the columns of ``sample`` ``[m, s]``:
    rows whose ``k`` smallest candidates are the ``core`` and the ``a`` smallest of the
    ``extra`` ones. Starts from the most common set of ``k`` smallest and merges the
    others while at most :data:`_MAX_EXTRA` candidates are uncertain."""
    nearest = np.argsort(sample, axis=0)[:k]
    sets = [frozenset(column) for column in nearest.T.tolist()]
    ranked = sorted(set(sets), key=lambda s: (-sets.count(s), sorted(s)))
    core, union = set(ranked[0]), set(ranked[0])
    for other in ranked[1:]:
        if len(union | other) - len(core & other) <= _MAX_EXTRA:
            core, union = core & other, union | other
    return (np.array(sorted(core), dtype=np.int64),
            np.array(sorted(union - core), dtype=np.int64), k - len(core))


def _fold(function: np.ufunc, source: list[np.ndarray], columns: np.ndarray,
          out: np.ndarray, start: np.ndarray | None = None) -> np.ndarray | None:
    """``function`` (``np.minimum``/``np.maximum``) of ``source[c]`` for ``c`` in
    ``columns`` (and ``start``), written to ``out``; ``None`` if there is nothing."""
    items = ([] if start is None else [start]) + [source[c] for c in columns]
    if not items:
        return None
    out[:] = items[0]
    for item in items[1:]:
        function(out, item, out=out)
    return out


def _sort_keys(keys: list[np.ndarray], spare: np.ndarray
               ) -> tuple[list[np.ndarray], np.ndarray]:
    """The arrays ``keys`` sorted elementwise (``[0]`` the smallest) in place by
    :func:`_network`, using one ``spare`` array; returns them and the array left over."""
    keys = list(keys)
    for a, b in _network(len(keys)):
        np.minimum(keys[a], keys[b], out=spare)
        np.maximum(keys[a], keys[b], out=keys[b])
        keys[a], spare = spare, keys[a]
    return keys, spare


def _gather(views: list[np.ndarray], rows: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``out[c] = views[c][rows]``."""
    for c, view in enumerate(views):
        np.take(view, rows, out=out[c], mode="clip")  # in range; unbuffered
    return out


def _exact(
    values: np.ndarray, labels: np.ndarray, k: int,
    ids_of: Callable[[np.ndarray, np.ndarray], np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` smallest of each column of ``values`` ``[w, n]`` by (value, id), as
    ``(labels [k, n], values [k, n])``; ``ids_of(columns, labels [w, c])`` gives the ids
    of the candidates of some columns (called for the columns with tied values only)."""
    kept = np.argsort(values, axis=0)[:min(k + 1, values.shape[0])]
    sorted_values = np.take_along_axis(values, kept, axis=0)
    out_labels = np.take_along_axis(labels, kept[:k], axis=0)
    out_values = sorted_values[:k]
    tied = np.flatnonzero((sorted_values[1:] == sorted_values[:-1]).any(axis=0))
    if tied.size:
        sub_values, sub_labels = values[:, tied], labels[:, tied]
        exact = np.lexsort((ids_of(tied, sub_labels), sub_values), axis=0)[:k]
        out_labels[:, tied] = np.take_along_axis(sub_labels, exact, axis=0)
        out_values[:, tied] = np.take_along_axis(sub_values, exact, axis=0)
    return out_labels, out_values


# ---------------------------------------------------------------------- ring search
def _ring_search(nside: int, k: int, radius: int, query: np.ndarray, verify: bool
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Exact search for ``query`` pixels over their rings from
    :func:`healpy.get_all_neighbours`: ``[k, n]`` ids and raw squared distances ``s``."""
    rings = _bfs_rings(nside, query, radius + 1 if verify else radius)
    qx, qy, qz = hp.pix2vec(nside, query, nest=True)

    def squared(cand: np.ndarray) -> np.ndarray:
        s = _squared(qx, qy, qz, *hp.pix2vec(nside, np.maximum(cand, 0), nest=True))
        s[cand < 0] = np.inf
        return s

    cand = np.concatenate(rings[:radius], axis=0)
    chosen, values = _exact(squared(cand), cand, k, lambda _, labels: np.where(
        labels < 0, np.iinfo(np.int64).max, labels))
    redo = ~np.isfinite(values[-1])
    if verify:
        redo |= ~(values[-1] < squared(rings[radius]).min(axis=0))
    if redo.any():
        if 2 * (radius + 1) + 1 > nside:
            raise RuntimeError(f"the {k} nearest pixels of some pixels at nside={nside} are "
                               f"not within {radius} rings; search a tree instead")
        cols = np.flatnonzero(redo)
        chosen[:, cols], values[:, cols] = _ring_search(nside, k, radius + 1, query[cols],
                                                        verify)
    return chosen, values


def _bfs_rings(nside: int, query: np.ndarray, depth: int) -> list[np.ndarray]:
    """Rings ``1 .. depth`` of each query pixel: ``[w_j, n]`` NEST ids, ``-1`` padded."""
    n, big = query.size, np.iinfo(np.int64).max // 4
    seen = frontier = query[None, :]
    rings = []
    for _ in range(depth):
        valid = frontier >= 0
        nbr = np.full((8,) + frontier.shape, -1, dtype=np.int64)
        nbr[:, valid] = hp.get_all_neighbours(nside, frontier[valid], nest=True)
        # Tag 2 id (seen) or 2 id + 1 (reached now); after sorting each column a reached
        # id is new when the entry before it is another id (neither seen nor a repeat).
        tagged = np.concatenate([np.where(seen >= 0, 2 * seen, big),
                                 np.where(nbr >= 0, 2 * nbr + 1, big).reshape(-1, n)])
        tagged.sort(axis=0)
        previous = np.concatenate([np.full((1, n), -2), tagged[:-1] >> 1])
        new = (tagged & 1).astype(bool) & (tagged < big) & ((tagged >> 1) != previous)
        packed = np.where(new, tagged >> 1, big)
        packed.sort(axis=0)
        ring = packed[:int(new.sum(axis=0).max())]
        ring[ring == big] = -1
        rings.append(ring)
        seen, frontier = np.concatenate([seen, ring]), ring
    return rings
