r"""Hierarchies of irregular point sets: the points, then the occupied HEALPix cells of
decreasing resolution (every coarse node has children, for any station network)."""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import healpy as hp
import numpy as np
import torch

from .checks import check_edges, check_nside, check_positive_int
from .hierarchy import SphereHierarchy, coarse_node_weights, coarsen
from .knn_graph import knn_graph
from .lonlat import check_lonlat
from .points import check_point_kernel, group_sum, node_lonlat, points_level

#: Largest HEALPix nside (order 29) considered by :func:`default_cells_nside`.
_MAX_NSIDE = 1 << 29


@SphereHierarchy.register_builder("points")
def points_hierarchy(
    lon: object,
    lat: object,
    levels: int,
    *,
    k: int | Sequence[int] = 8,
    kernel: str | float | Sequence[str | float] = "auto",
    nside: int | None = None,
    mask: object = None,
    region: Sequence[float] | None = None,
    duplicates: str = "raise",
    merge_distance: float | None = None,
    isolated: str = "raise",
    dtype: torch.dtype = torch.float32,
    edges: str | None = None,
) -> SphereHierarchy:
    r"""Points graph and the graphs of the HEALPix cells that hold the points (k-NN graphs
    at every level: ``edges`` is ``"knn"`` or ``None``).

    Level 0 is :func:`points_graph`. Level ``l >= 1`` has one node per HEALPix cell at
    :math:`n_\mathrm{side}^{(l)} = n_\mathrm{side} / 2^{l-1}` (NEST) that holds at least
    one level-0 node; empty cells are dropped, so every coarse node has children and
    pooling (average or max over children) is defined for any station network. A level-0
    node belongs to the cell :func:`healpy.ang2pix` gives for its (lon, lat); a cell at
    level ``l + 1`` is the NEST parent (``cell // 4``) of its level-``l`` cells.

    **Node positions.** A cell's node sits at the normalised mean of the unit vectors of
    the (kept) input points it holds (a merged node counts once per point), not at the
    cell centre: the coarse graph follows where the data is (a cell with one station in a
    corner is represented at that station), and a k-NN graph of such nodes keeps the
    network's geometry at every level.

    **Default nside.** The largest power of two for which the number of occupied cells is
    at most :math:`N / 4` (``N`` level-0 nodes): about four nodes per coarse node on
    average, as in HEALPix's 4-to-1 pooling (nside 1 if even that has more cells).

    **Coarse graphs.** :func:`~deepsphere_pyg.graphs.knn_graph.knn_graph` of the cell nodes
    with :math:`k_l = \min(k, N_l - 1)` and the same kernel rule (``"auto"`` =
    ``"adaptive"``). They carry ``sampling="point_cells"``, ``nside``, ``nest=True``,
    ``pixels`` (NEST ids of the cells), ``lon``, ``lat``, ``num_points`` and
    ``node_weight`` (the sum of the Voronoi areas of the level-0 nodes under each cell).

    **Coverage.** An area fraction is not defined for points: ``coverage`` is 1 for every
    node; ``num_points`` (number of input points under each node) on each graph gives the
    sampling density instead.

    Args:
        lon, lat: ``[P]`` coordinates in degrees (see :func:`points_graph`).
        levels: number of graphs (``>= 1``), finest first.
        k: neighbours per node, one value or one per level.
        kernel: one rule for every level or one per level (:func:`points_graph`). A single
            float :math:`t` is used at every level; give a list to scale it per level.
        nside: resolution of the level-1 cells (power of two; default above). Needs
            ``nside >= 2^(levels - 2)``.
        mask, region, duplicates, merge_distance, isolated, dtype: as in
            :func:`points_graph` (they act on level 0).

    Returns:
        A :class:`SphereHierarchy` whose ``pool_index[l]`` maps each level-``l`` node to
        its level-``l + 1`` cell.

    Raises:
        ValueError: as :func:`points_graph`; ``levels`` needing an nside below 1; a level
            with fewer than 2 occupied cells (use fewer ``levels``).
    """
    levels = check_positive_int(levels, "levels")
    check_edges(edges, default="knn", allowed=("knn",))
    ks = [k] * levels if not isinstance(k, Sequence) else list(k)
    kernels = ([kernel] * levels if isinstance(kernel, (str, numbers.Real))
               else list(kernel))
    if len(ks) != levels:
        raise ValueError(f"k must be an int or a list of {levels} ints (levels={levels}), "
                         f"got {k!r}")
    if len(kernels) != levels:
        raise ValueError(f"kernel must be one rule or a list of {levels} rules "
                         f"(levels={levels}), got {kernel!r}")
    kernels = [check_point_kernel(rule) for rule in kernels]
    for level in range(1, levels):
        check_positive_int(ks[level], f"k[{level}]")

    graph, nodes = points_level(lon, lat, k=ks[0], kernel=kernels[0], mask=mask,
                                 region=region, duplicates=duplicates,
                                 merge_distance=merge_distance, isolated=isolated,
                                 dtype=dtype)
    node_pos, node_lon, node_lat, counts, negative_lon = nodes
    if nside is None:
        nside = default_cells_nside(node_lon, node_lat)
    else:
        nside = check_nside(nside)
    if levels > 1 and nside >> (levels - 2) < 1:
        raise ValueError(f"levels={levels} halves nside={nside} below 1 (level l >= 1 uses "
                         f"nside / 2^(l-1)); use at most {nside.bit_length() + 1} levels or a "
                         "larger nside")

    cells = hp.ang2pix(nside, node_lon, node_lat, nest=True, lonlat=True).astype(np.int64)

    def parents(level: int, ids: np.ndarray | None) -> np.ndarray:
        # Level 0 -> the cells at nside; then NEST parents of the cells.
        return cells[ids] if level == 0 else ids // 4

    coarsening = coarsen(parents, levels, kept=np.arange(cells.size))
    graphs = [graph]
    # Sum of the unit vectors of the input points under each node of the current level.
    sums = node_pos * counts[:, None]
    for level in range(1, levels):
        level_nside = nside >> (level - 1)
        pixels, parent = coarsening.kept[level], coarsening.pool_index[level - 1].numpy()
        num_cells = pixels.size
        if num_cells < 2:
            raise ValueError(
                f"level {level} (nside={level_nside}) holds only {num_cells} occupied cell; "
                f"a graph needs at least 2 nodes: use levels <= {level} (got levels="
                f"{levels}) or a larger nside")
        sums = group_sum(sums, parent, num_cells)
        counts = np.bincount(parent, weights=counts, minlength=num_cells).astype(np.int64)
        pos = _normalise_rows(sums, pixels, level_nside)
        cell_lon, cell_lat = node_lonlat(pos, negative_lon)
        try:
            coarse = knn_graph(pos, k=min(ks[level], num_cells - 1), kernel=kernels[level],
                               isolated="raise", sampling="point_cells", dtype=dtype,
                               nside=int(level_nside), nest=True)
        except ValueError as error:
            raise ValueError(f"level {level} (nside={level_nside}): {error}") from error
        coarse.pixels = torch.from_numpy(pixels)
        coarse.lon = torch.from_numpy(cell_lon).to(dtype)
        coarse.lat = torch.from_numpy(cell_lat).to(dtype)
        coarse.num_points = torch.from_numpy(counts)
        graphs.append(coarse)
    coarse_node_weights(graphs, coarsening.pool_index)
    return SphereHierarchy(graphs, coarsening.pool_index, coarsening.coverage)


def default_cells_nside(lon: object, lat: object) -> int:
    r"""Largest power of two ``nside`` whose occupied HEALPix cells number at most
    :math:`N / 4` for the ``N`` points ``(lon, lat)`` (degrees); 1 if none does.

    The occupied-cell count never decreases with ``nside`` (each cell has one parent), so
    the search doubles ``nside`` from 1 until the count exceeds :math:`N / 4`.
    """
    lon_a, lat_a = check_lonlat(lon, lat)
    limit = lon_a.size / 4.0
    nside = 1
    while nside < _MAX_NSIDE:
        finer = hp.ang2pix(2 * nside, lon_a, lat_a, nest=True, lonlat=True)
        if np.unique(finer).size > limit:
            break
        nside *= 2
    return nside


def _normalise_rows(sums: np.ndarray, pixels: np.ndarray, nside: int) -> np.ndarray:
    """Unit vectors of ``sums``; a (degenerate) zero sum falls back to the cell centre."""
    norms = np.linalg.norm(sums, axis=1)
    out = np.empty_like(sums)
    ok = norms > 0
    out[ok] = sums[ok] / norms[ok, None]
    if not ok.all():
        out[~ok] = np.stack(hp.pix2vec(nside, pixels[~ok], nest=True), axis=1)
    return out
