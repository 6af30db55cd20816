r"""Nodes of equiangular (latitude-longitude) grids: ring colatitudes, the cell -> node
layout (pole rows are one node), masks and regions, node areas.

The grid families and the node order are described in
:mod:`deepsphere_pyg.graphs.equiangular`.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np
import torch

from .knn_graph import keep_index
from .lonlat import check_region, lonlat_to_vec, region_mask

__all__ = ["GRIDS", "GridLayout", "equiangular_grid", "grid_layout", "node_areas"]

#: Grid families accepted by the builders of this module.
GRIDS = ("driscoll-healy", "soft", "clenshaw-curtis", "gauss-legendre")

_GRID_ALIASES = {"dh": "driscoll-healy", "cc": "clenshaw-curtis", "gl": "gauss-legendre"}


# ------------------------------------------------------------------------------ grids
def check_grid(grid: object) -> str:
    if not isinstance(grid, str):
        raise TypeError(f"grid must be one of {GRIDS}, got {grid!r}")
    name = _GRID_ALIASES.get(grid.lower(), grid.lower())
    if name not in GRIDS:
        raise ValueError(f"grid must be one of {GRIDS} (or 'dh', 'cc', 'gl'), got {grid!r}")
    return name


def _check_size(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= 2, got {value!r}")
    if value < 2:
        raise ValueError(f"{name} must be >= 2 (a grid needs two rings and two longitudes), "
                         f"got {value}")
    return int(value)


def _default_nlon(nlat: int, grid: str) -> int:
    if grid == "clenshaw-curtis":
        return 2 * (nlat - 1)
    if grid == "gauss-legendre":
        return 2 * nlat
    return nlat


def check_grid_sizes(nlat: object, nlon: object, grid: str) -> tuple[int, int]:
    nlat = _check_size(nlat, "nlat")
    nlon = _default_nlon(nlat, grid) if nlon is None else _check_size(nlon, "nlon")
    return nlat, nlon


def colatitudes(nlat: int, grid: str) -> np.ndarray:
    """Colatitudes ``[nlat]`` (radians, increasing: north to south) of the rows."""
    j = np.arange(nlat, dtype=np.float64)
    if grid == "driscoll-healy":
        return np.pi * j / nlat
    if grid == "soft":
        return np.pi * (2.0 * j + 1.0) / (2.0 * nlat)
    if grid == "clenshaw-curtis":
        return np.pi * j / (nlat - 1)
    nodes, _ = np.polynomial.legendre.leggauss(nlat)  # ascending cos(theta)
    return np.arccos(nodes[::-1])


def pole_rows(nlat: int, grid: str) -> tuple[int, ...]:
    if grid == "driscoll-healy":
        return (0,)
    if grid == "clenshaw-curtis":
        return (0, nlat - 1)
    return ()


def equiangular_grid(
    nlat: int, nlon: int | None = None, *, grid: str = "driscoll-healy"
) -> tuple[np.ndarray, np.ndarray]:
    r"""Latitudes and longitudes (degrees) of an equiangular grid.

    With colatitude :math:`\vartheta_j` (row ``j``, north to south) and longitude
    :math:`\varphi_k = 2\pi k / n_\mathrm{lon}`, :math:`k = 0, \dots, n_\mathrm{lon} - 1`:

    * ``"driscoll-healy"`` (Driscoll & Healy 1994), :math:`n_\mathrm{lat} = 2b`:
      :math:`\vartheta_j = \pi j / (2b)`; contains the north pole (:math:`j = 0`), not the
      south pole.
    * ``"soft"`` (Kostelec & Rockmore's SOFT, used by s2cnn), :math:`n_\mathrm{lat} = 2b`:
      :math:`\vartheta_j = \pi (2j + 1) / (4b)`; no pole (the cell-centred grid of climate
      data sets, e.g. 180 x 360 rows at 89.5°, 88.5°, ...).
    * ``"clenshaw-curtis"``: :math:`\vartheta_j = \pi j / (n_\mathrm{lat} - 1)`; both poles.
    * ``"gauss-legendre"``: :math:`\cos\vartheta_j` are the ``nlat`` Gauss-Legendre nodes
      (:func:`numpy.polynomial.legendre.leggauss`) in descending order; no pole.

    For Driscoll-Healy and SOFT an odd ``nlat`` follows the same formulas with
    :math:`b = n_\mathrm{lat} / 2`.

    Args:
        nlat: number of rings (``>= 2``).
        nlon: number of longitudes (``>= 2``); default ``nlat`` (Driscoll-Healy, SOFT),
            ``2 (nlat - 1)`` (Clenshaw-Curtis) or ``2 nlat`` (Gauss-Legendre, even so that
            the grid can be pooled).
        grid: ``"driscoll-healy"``, ``"soft"``, ``"clenshaw-curtis"`` or
            ``"gauss-legendre"`` (also ``"dh"``, ``"cc"``, ``"gl"``).

    Returns:
        ``(lat, lon)``: float64 arrays ``[nlat]`` of latitudes
        :math:`90° - \vartheta_j` (degrees north, decreasing) and ``[nlon]`` of longitudes
        :math:`\varphi_k` in degrees east, in ``[0, 360)``.

    Raises:
        ValueError: unknown ``grid``, ``nlat < 2`` or ``nlon < 2``.
    """
    grid = check_grid(grid)
    nlat, nlon = check_grid_sizes(nlat, nlon, grid)
    lat = 90.0 - np.degrees(colatitudes(nlat, grid))
    for row in pole_rows(nlat, grid):  # exact poles
        lat[row] = 90.0 if row == 0 else -90.0
    lon = 360.0 * np.arange(nlon, dtype=np.float64) / nlon
    return lat, lon


# ------------------------------------------------------------------------------ nodes
@dataclass(frozen=True)
class GridLayout:
    """Nodes of a full grid: cell -> node map and node coordinates."""

    grid: str
    nlat: int
    nlon: int
    grid_index: np.ndarray  # [nlat * nlon] node of each cell (row-major), non-decreasing
    lat: np.ndarray  # [N] degrees
    lon: np.ndarray  # [N] degrees
    is_pole: np.ndarray  # [N] bool

    @property
    def num_nodes(self) -> int:
        return int(self.lat.size)


def grid_layout(nlat: int, nlon: int, grid: str) -> GridLayout:
    lat, lon = equiangular_grid(nlat, nlon, grid=grid)
    poles = pole_rows(nlat, grid)
    # Row r starts at node row_start[r]; a pole row holds one node.
    row_size = np.full(nlat, nlon, dtype=np.int64)
    row_size[list(poles)] = 1
    row_start = np.concatenate([[0], np.cumsum(row_size)[:-1]])
    cols = np.arange(nlon, dtype=np.int64)
    index = row_start[:, None] + np.where(row_size[:, None] == 1, 0, cols[None, :])
    first_cell = np.concatenate([[0], np.flatnonzero(np.diff(index.ravel())) + 1])
    rows, columns = np.divmod(first_cell, nlon)
    return GridLayout(
        grid=grid, nlat=nlat, nlon=nlon, grid_index=index.ravel(), lat=lat[rows],
        lon=lon[columns], is_pole=np.isin(rows, poles) if poles else np.zeros(rows.size, bool),
    )


def layout_positions(layout: GridLayout) -> np.ndarray:
    pos = lonlat_to_vec(layout.lon, layout.lat)
    pos[layout.is_pole] = 0.0  # exactly (0, 0, +-1)
    pos[layout.is_pole, 2] = np.sign(layout.lat[layout.is_pole])
    return pos


def kept_grid_nodes(mask: object, region: object, layout: GridLayout) -> np.ndarray | None:
    """Sorted node ids kept by ``mask`` and ``region`` (intersection); ``None``: all."""
    num_nodes = layout.num_nodes
    keep = np.ones(num_nodes, dtype=bool)
    if mask is not None:
        if isinstance(mask, torch.Tensor):
            mask = mask.detach().cpu().numpy()
        array = np.asarray(mask)
        if array.ndim == 2:
            if array.shape != (layout.nlat, layout.nlon):
                raise ValueError(f"a grid mask must have shape [nlat, nlon] = "
                                 f"[{layout.nlat}, {layout.nlon}], got {list(array.shape)}")
            if array.dtype != bool:
                raise TypeError(f"a grid mask [nlat, nlon] must be boolean, got dtype "
                                f"{array.dtype}; use mask != 0 or np.isfinite(data)")
            # A pole node is kept when any cell of its row is.
            keep &= np.bincount(layout.grid_index, weights=array.ravel(),
                                minlength=num_nodes) > 0
        else:
            if array.ndim == 1 and array.dtype == bool and array.size != num_nodes \
                    and array.size == layout.nlat * layout.nlon:
                raise ValueError(
                    f"mask has {array.size} = nlat * nlon entries but the graph has "
                    f"{num_nodes} nodes (pole rows are one node); pass the grid mask with "
                    f"shape [{layout.nlat}, {layout.nlon}] or one boolean per node")
            ids = keep_index(array, num_nodes, "mask")
            if ids is not None:
                keep &= np.isin(np.arange(num_nodes), ids)
    if region is not None:
        lon_min, lon_max, lat_min, lat_max = check_region(region)
        inside = region_mask(layout.lon, layout.lat, (lon_min, lon_max, lat_min, lat_max))
        # The box touches a pole at every longitude: the pole is inside when its latitude is.
        inside |= layout.is_pole & (layout.lat >= lat_min) & (layout.lat <= lat_max)
        keep &= inside
    if not keep.any():
        what = " and ".join(n for n, v in (("mask", mask), ("region", region)) if v is not None)
        raise ValueError(f"{what} keep(s) no node of the {layout.nlat} x {layout.nlon} "
                         f"{layout.grid} grid; enlarge the mask or region")
    return None if keep.all() else np.flatnonzero(keep).astype(np.int64)


def node_areas(layout: GridLayout) -> np.ndarray:
    """Area ``[N]`` (steradians) of each node's cells, bounded by the parallels halfway
    between rows (the pole rows at the poles); sums to 4 pi."""
    theta = colatitudes(layout.nlat, layout.grid)
    edges = np.concatenate([[0.0], (theta[:-1] + theta[1:]) / 2.0, [np.pi]])
    row_area = (np.cos(edges[:-1]) - np.cos(edges[1:])) * 2.0 * np.pi / layout.nlon
    cell_area = np.repeat(row_area, layout.nlon)
    return np.bincount(layout.grid_index, weights=cell_area, minlength=layout.num_nodes)
