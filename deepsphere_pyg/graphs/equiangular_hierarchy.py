r"""Pooling hierarchies of equiangular grids: 2x2 (rows x longitudes) blocks per level."""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np
import torch

from .checks import check_positive_int
from .equiangular import check_edges_kernel, equiangular_graph
from .equiangular_layout import (
    GridLayout,
    check_grid,
    check_grid_sizes,
    grid_layout,
    kept_grid_nodes,
    node_areas,
)
from .hierarchy import SphereHierarchy
from .sphere_graph import SphereGraph


def halvable(nlat: int, nlon: int, grid: str) -> bool:
    """Whether an ``nlat x nlon`` grid of family ``grid`` has a coarser 2x2-pooled grid."""
    if nlon % 2 or nlon // 2 < 2:
        return False
    if grid == "clenshaw-curtis":
        return nlat % 2 == 1 and nlat >= 3
    return nlat % 2 == 0 and nlat // 2 >= 2


def halved(nlat: int, nlon: int, grid: str) -> tuple[int, int]:
    """``(nlat, nlon)`` of the grid one 2x2 pooling coarser (Clenshaw-Curtis keeps its
    poles)."""
    if grid == "clenshaw-curtis":
        return (nlat - 1) // 2 + 1, nlon // 2
    return nlat // 2, nlon // 2


def _level_sizes(nlat: int, nlon: int, grid: str, levels: int) -> list[tuple[int, int]]:
    sizes = [(nlat, nlon)]
    while len(sizes) < levels:
        if not halvable(*sizes[-1], grid):
            rows = "nlat - 1" if grid == "clenshaw-curtis" else "nlat"
            raise ValueError(
                f"a {grid} grid of nlat={nlat} x nlon={nlon} cannot be pooled into {levels} "
                f"levels: level {len(sizes) - 1} ({sizes[-1][0]} x {sizes[-1][1]}) cannot be "
                f"halved ({rows} and nlon must be even, and the halved sizes >= 2); use "
                f"levels <= {len(sizes)}, or {rows} and nlon divisible by 2^{levels - 1} = "
                f"{2 ** (levels - 1)}")
        sizes.append(halved(*sizes[-1], grid))
    return sizes


def _row_parents(nlat: int, grid: str) -> np.ndarray:
    """Coarse row of each fine row (module and :func:`equiangular_hierarchy` docs)."""
    rows = np.arange(nlat)
    if grid != "clenshaw-curtis":
        return rows // 2
    m = (nlat - 1) // 2  # coarse row j sits on fine row 2j; odd rows go to the pole side
    return np.where(rows % 2 == 0, rows // 2, np.where(rows > m, (rows + 1) // 2, rows // 2))


def _pool_full(fine: GridLayout, coarse: GridLayout) -> np.ndarray:
    """Parent node ``[N_fine]`` (coarse full-grid id) of every fine full-grid node."""
    row = _row_parents(fine.nlat, fine.grid)
    col = np.arange(fine.nlon) // 2
    parent_cell = (row[:, None] * coarse.nlon + col[None, :]).ravel()
    parent_of_cell = coarse.grid_index[parent_cell]
    parent = np.empty(fine.num_nodes, dtype=np.int64)
    parent[fine.grid_index] = parent_of_cell  # all cells of a pole node agree
    return parent


@SphereHierarchy.register_builder("equiangular")
def equiangular_hierarchy(
    nlat: int,
    levels: int,
    nlon: int | None = None,
    *,
    grid: str = "driscoll-healy",
    edges: str | None = None,
    k: int | Sequence[int] = 8,
    kernel: str | float = "auto",
    mask: object = None,
    region: Sequence[float] | None = None,
    dtype: torch.dtype = torch.float32,
    weights: str | None = None,
) -> SphereHierarchy:
    r"""Equiangular graphs at ``nlat x nlon``, ``nlat/2 x nlon/2``, ... with 2x2 pooling.

    Level ``l`` is a grid of the same family with ``nlon / 2^l`` longitudes and
    ``nlat / 2^l`` rings (Clenshaw-Curtis: :math:`(n_\mathrm{lat} - 1)/2^l + 1`, keeping
    both poles). Column ``k`` pools into coarse column ``k // 2``; the coarse point sits
    on the longitude of its western child, half a fine spacing from their mean. Rows:

    * Driscoll-Healy, SOFT, Gauss-Legendre: fine rows ``2j`` and ``2j + 1`` pool into
      coarse row ``j``. For SOFT the coarse colatitude is the mean of the two; for
      Driscoll-Healy it is that of row ``2j``; for Gauss-Legendre the coarse rings are the
      Gauss-Legendre nodes of the smaller size, close to (not exactly at) the children's
      centroid. The Driscoll-Healy north pole node has as children the fine pole node
      and the whole first fine ring.
    * Clenshaw-Curtis (:math:`n_\mathrm{lat} = 2m + 1 \to m + 1`): fine row ``2j`` pools
      into coarse row ``j`` (same colatitude); an odd row, halfway between two coarse
      rows, pools into the one nearer its own pole (the northern one at the equator). So
      each pole node's parent is the coarse pole node, which also takes the first fine
      ring, symmetrically at both poles; the coarse row just south of the equator
      (:math:`m` odd) or on it (:math:`m` even) has one fine row of children.

    So every parent has children, four (two rows x two columns) away from the poles.

    **Partial coverage.** ``mask``/``region`` (as in :func:`equiangular_graph`) select
    the finest nodes; a coarse node is kept when any of its children is kept, and ids are
    re-indexed to the kept nodes of each level. ``coverage[l]`` is the observed fraction
    of each node's area: the area of its observed finest descendants over that of all of
    them, cell areas bounded by the parallels halfway between rings.

    Args:
        nlat: finest number of rings.
        levels: number of graphs (``>= 1``).
        nlon: finest number of longitudes (default: the grid's usual value).
        grid, edges, kernel, mask, region, dtype, weights: as in :func:`equiangular_graph`
            (isolated kept nodes raise).
        k: neighbours per node, one value or one per level (finest first).

    Returns:
        A :class:`~deepsphere_pyg.graphs.hierarchy.SphereHierarchy`, also reached as
        ``SphereHierarchy.equiangular(nlat, levels, ...)``.

    Raises:
        ValueError: a level that cannot be halved (odd sizes; the message says how many
            levels would work), ``k`` too large for a coarse level, and the errors of
            :func:`equiangular_graph`.
    """
    grid = check_grid(grid)
    levels = check_positive_int(levels, "levels")
    nlat, nlon = check_grid_sizes(nlat, nlon, grid)
    edges, _ = check_edges_kernel(edges, kernel, weights)
    sizes = _level_sizes(nlat, nlon, grid, levels)
    if isinstance(k, numbers.Integral) and not isinstance(k, bool):
        ks = [int(k)] * levels
    else:
        ks = list(k) if isinstance(k, Sequence) and not isinstance(k, str) else []
        if len(ks) != levels:
            raise ValueError(f"k must be an int or a list of {levels} ints, got {k!r}")
    layouts = [grid_layout(a, b, grid) for a, b in sizes]
    full_parents = [_pool_full(fine, coarse) for fine, coarse in
                    zip(layouts[:-1], layouts[1:], strict=True)]

    def parents(level: int, ids: np.ndarray | None) -> np.ndarray:
        return full_parents[level] if ids is None else full_parents[level][ids]

    def build_level(level: int, ids: np.ndarray | None) -> SphereGraph:
        return equiangular_graph(*sizes[level], grid=grid, edges=edges, k=ks[level],
                                 kernel=kernel, mask=ids, dtype=dtype)

    return SphereHierarchy.from_parents(
        parents, levels, build_level, kept=kept_grid_nodes(mask, region, layouts[0]),
        area=node_areas(layouts[0]),
        level_name=lambda level: f"level {level} ({sizes[level][0]} x {sizes[level][1]})")
