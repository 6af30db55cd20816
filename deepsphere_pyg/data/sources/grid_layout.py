r"""Lat-lon grids of a file as sphere nodes: coordinate checks, grid families, cell -> node.

Pure NumPy (no xarray): :class:`~deepsphere_pyg.data.sources.grid.GridSource` uses it on
the 1-D latitude and longitude coordinates of a file.

**Grid families.** A grid is one of the library's equiangular grids
(:func:`~deepsphere_pyg.graphs.equiangular_grid`) when, with its rows ordered north to
south, its ``nlat`` latitudes are those of a family (within :data:`TOLERANCE_DEG`):

* ``"clenshaw-curtis"``: :math:`\vartheta_j = \pi j / (n_\mathrm{lat} - 1)`, both poles;
* ``"driscoll-healy"``: :math:`\vartheta_j = \pi j / n_\mathrm{lat}`, the north pole only;
* ``"soft"``: :math:`\vartheta_j = \pi (2j + 1) / (2 n_\mathrm{lat})`, no pole (cell
  centres, e.g. 89.5, 88.5, ... -89.5);
* ``"gauss-legendre"``: :math:`\cos\vartheta_j` the Gauss-Legendre nodes, no pole;

and its ``nlon`` longitudes are the multiples of :math:`360° / n_\mathrm{lon}` (any
``nlon >= 2``), in any rotation (0..360, -180..180, starting anywhere) and either
direction. Any other grid (regional, irregular latitudes, longitudes offset from 0) is a
set of points (:func:`points_nodes`).

**Nodes.** Grid cells are addressed by their flat index in the file's ``[nlat, nlon]``
array (rows: the file's latitudes in file order; columns: its longitudes in file order).
:class:`CellNodes` holds the cell of each node and the cells of the pole nodes: a row on
a pole is one node whose value is the mean of the row's cells.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...graphs.equiangular_hierarchy import halvable, halved
from ...graphs.equiangular_layout import equiangular_grid, grid_layout, kept_grid_nodes
from ...graphs.lonlat import region_mask

#: Largest difference (degrees) between a file's coordinate and a family's for the grid to
#: be recognised: 1e-6 of 180 degrees (float32 coordinates pass).
TOLERANCE_DEG = 180e-6

#: Families tried in this order (the first match wins).
FAMILIES = ("clenshaw-curtis", "driscoll-healy", "soft", "gauss-legendre")


# ------------------------------------------------------------------------- coordinates
def _as_1d(values: object, name: str, what: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"the {what} coordinate {name!r} must be 1-D and non-empty, got "
                         f"shape {list(array.shape)}; curvilinear (2-D) coordinates are not "
                         "supported")
    if not np.isfinite(array).all():
        raise ValueError(f"the {what} coordinate {name!r} has non-finite values")
    return array


def check_latitudes(values: object, name: str) -> np.ndarray:
    """``[nlat]`` float64 latitudes: in ``[-90, 90]``, strictly increasing or decreasing.

    Raises:
        ValueError: naming the coordinate ``name`` (duplicated or non-monotonic values).
    """
    lat = _as_1d(values, name, "latitude")
    if lat.min() < -90.0 - TOLERANCE_DEG or lat.max() > 90.0 + TOLERANCE_DEG:
        raise ValueError(f"the latitude coordinate {name!r} leaves [-90, 90] degrees (range "
                         f"[{lat.min():g}, {lat.max():g}]); is it in degrees north?")
    lat = np.clip(lat, -90.0, 90.0)
    step = np.diff(lat)
    if (step == 0).any():
        at = int(np.flatnonzero(step == 0)[0])
        raise ValueError(f"the latitude coordinate {name!r} has duplicated values ({lat[at]:g} "
                         f"at positions {at} and {at + 1}); drop them, e.g. "
                         f"ds.drop_duplicates({name!r})")
    if not ((step > 0).all() or (step < 0).all()):
        raise ValueError(f"the latitude coordinate {name!r} is not monotonic; sort it, e.g. "
                         f"ds.sortby({name!r})")
    return lat


def check_longitudes(values: object, name: str) -> np.ndarray:
    """``[nlon]`` float64 longitudes in ``[-180, 360]``, strictly monotonic modulo 360°
    (a rotated start such as 180..359, 0..179 is monotonic), covering less than a turn.

    Raises:
        ValueError: naming the coordinate ``name`` (duplicated, e.g. both 0 and 360, or
            non-monotonic values).
    """
    lon = _as_1d(values, name, "longitude")
    if lon.min() < -180.0 or lon.max() > 360.0:
        raise ValueError(f"the longitude coordinate {name!r} leaves [-180, 360] degrees "
                         f"(range [{lon.min():g}, {lon.max():g}]); is it in degrees east?")
    if lon.size == 1:
        return lon
    step = np.diff(lon) % 360.0
    close = np.minimum(step, 360.0 - step) <= 1e-9
    if close.any():
        at = int(np.flatnonzero(close)[0])
        raise ValueError(f"the longitude coordinate {name!r} has duplicated values "
                         f"({lon[at]:g} and {lon[at + 1]:g} at positions {at} and {at + 1}); "
                         f"drop them, e.g. ds.drop_duplicates({name!r})")
    for steps in (step, (-np.diff(lon)) % 360.0):
        if steps.sum() < 360.0 - 1e-9:
            return lon
    if np.unique(np.round(lon % 360.0, 9)).size < lon.size:
        raise ValueError(f"the longitude coordinate {name!r} has duplicated values (the same "
                         f"longitude twice, e.g. 0 and 360); drop one, e.g. "
                         f"ds.isel({name}=slice(0, -1))")
    raise ValueError(f"the longitude coordinate {name!r} is not monotonic; sort it, e.g. "
                     f"ds.sortby({name!r})")


# ------------------------------------------------------------------------- families
@dataclass(frozen=True)
class GridMatch:
    """A file grid recognised as an equiangular grid of the library.

    Attributes:
        family: the grid family (:data:`FAMILIES`).
        nlat, nlon: the grid's sizes.
        row_order: ``[nlat]`` the file row of each library row (north to south).
        col_order: ``[nlon]`` the file column of each library column (longitude
            ``360 k / nlon``, ``k = 0 .. nlon-1``).
    """

    family: str
    nlat: int
    nlon: int
    row_order: np.ndarray
    col_order: np.ndarray


def recognise_grid(lat: np.ndarray, lon: np.ndarray) -> GridMatch | None:
    """The equiangular family of checked coordinates ``lat [nlat]``, ``lon [nlon]``
    (module doc), or ``None`` for any other grid."""
    nlat, nlon = lat.size, lon.size
    if nlat < 2 or nlon < 2:
        return None
    step = 360.0 / nlon
    position = (lon % 360.0) / step
    column = np.round(position)
    if np.abs(position - column).max() * step > TOLERANCE_DEG:
        return None
    column = column.astype(np.int64) % nlon
    if np.unique(column).size != nlon:
        return None
    row_order = np.arange(nlat) if lat[0] > lat[-1] else np.arange(nlat)[::-1].copy()
    north_to_south = lat[row_order]
    for family in FAMILIES:
        expected, _ = equiangular_grid(nlat, 2, grid=family)
        if np.abs(north_to_south - expected).max() <= TOLERANCE_DEG:
            return GridMatch(family, nlat, nlon, row_order, np.argsort(column))
    return None


def max_levels(match: GridMatch) -> int:
    """The most levels :func:`~deepsphere_pyg.graphs.equiangular_hierarchy` can build
    for the grid (each level halves both sizes)."""
    nlat, nlon, levels = match.nlat, match.nlon, 1
    while halvable(nlat, nlon, match.family):
        nlat, nlon = halved(nlat, nlon, match.family)
        levels += 1
    return levels


# ------------------------------------------------------------------------- nodes
@dataclass(frozen=True)
class CellNodes:
    """The nodes of a file grid: which cells of the file's ``[nlat, nlon]`` array they are.

    Attributes:
        shape: ``(nlat, nlon)`` of the file's array (rows: latitudes in file order).
        cells: ``[N]`` flat cell (row-major in the file's array) of each node.
        pole_nodes: ``[P]`` the nodes that stand for a row on a pole.
        pole_cells: ``P`` arrays, the cells whose mean is each pole node's value.
    """

    shape: tuple[int, int]
    cells: np.ndarray
    pole_nodes: np.ndarray
    pole_cells: tuple[np.ndarray, ...]

    @property
    def num_nodes(self) -> int:
        return int(self.cells.size)

    def node_grid(self) -> np.ndarray:
        """Boolean ``[nlat, nlon]``: the cells that are (part of) a node."""
        grid = np.zeros(self.shape[0] * self.shape[1], dtype=bool)
        grid[self.cells] = True
        for cells in self.pole_cells:
            grid[cells] = True
        return grid.reshape(self.shape)

    def to_nodes(self, values: np.ndarray) -> np.ndarray:
        """File array ``[..., nlat, nlon]`` -> node values ``[..., N]`` (a pole node: the
        mean of its cells; NaN stays NaN)."""
        if tuple(values.shape[-2:]) != self.shape:
            raise ValueError(f"values must have shape [..., {self.shape[0]}, "
                             f"{self.shape[1]}], got {list(values.shape)}")
        flat = values.reshape(*values.shape[:-2], -1)
        out = flat[..., self.cells]
        for node, cells in zip(self.pole_nodes, self.pole_cells, strict=True):
            out[..., node] = flat[..., cells].mean(axis=-1)
        return out

    def to_grid(self, values: np.ndarray, fill: float = float("nan")) -> np.ndarray:
        """Node values ``[..., N]`` -> file array ``[..., nlat, nlon]``: each cell of a node
        gets the node's value (a pole node fills its cells), the other cells ``fill``."""
        if values.shape[-1] != self.num_nodes:
            raise ValueError(f"values must have {self.num_nodes} nodes along the last "
                             f"dimension, got shape {list(values.shape)}")
        out = np.full((*values.shape[:-1], self.shape[0] * self.shape[1]), fill,
                      dtype=np.result_type(values.dtype, np.float32))
        out[..., self.cells] = values
        for node, cells in zip(self.pole_nodes, self.pole_cells, strict=True):
            out[..., cells] = values[..., node, None]
        return out.reshape(*values.shape[:-1], *self.shape)


def equiangular_nodes(match: GridMatch, keep: np.ndarray | None,
                      region: tuple[float, float, float, float] | None
                      ) -> tuple[CellNodes, np.ndarray | None]:
    """Nodes of a recognised grid in the library's node order (north to south, longitudes
    from 0, a pole row one node), restricted to the kept ones.

    Args:
        match: the recognised grid.
        keep: ``None`` or boolean ``[nlat, nlon]`` kept cells in the file's orientation.
        region: ``(lon_min, lon_max, lat_min, lat_max)`` or ``None``
            (:func:`~deepsphere_pyg.graphs.equiangular_layout.kept_grid_nodes` rules: a
            pole node is inside when the latitudes include the pole; with ``keep``, a pole
            node is kept when any cell of its row is).

    Returns:
        ``(nodes, kept)``: the :class:`CellNodes` and the kept full-grid node ids (sorted;
        ``None`` when all are kept), the ``mask`` for the equiangular builders.
    """
    layout = grid_layout(match.nlat, match.nlon, match.family)
    mask = None if keep is None else keep[match.row_order][:, match.col_order]
    kept = kept_grid_nodes(mask, region, layout)
    # File cell of each library cell (library cells row-major, north to south).
    file_cell = (match.row_order[:, None] * match.nlon + match.col_order[None, :]).ravel()
    index = layout.grid_index
    first = np.concatenate([[0], np.flatnonzero(np.diff(index)) + 1])
    ids = np.arange(layout.num_nodes) if kept is None else kept
    poles = np.flatnonzero(layout.is_pole[ids])
    nodes = CellNodes(
        shape=(match.nlat, match.nlon), cells=file_cell[first[ids]], pole_nodes=poles,
        pole_cells=tuple(file_cell[index == ids[node]] for node in poles))
    return nodes, kept


def points_nodes(lat: np.ndarray, lon: np.ndarray, keep: np.ndarray | None,
                 region: tuple[float, float, float, float] | None
                 ) -> tuple[CellNodes, np.ndarray, np.ndarray]:
    """Nodes of any other grid: the kept cells, row-major in the file's array; the kept
    cells of a row on a pole (latitude +-90) are one node, in place of its first kept cell.

    Args:
        lat, lon: checked ``[nlat]``, ``[nlon]`` coordinates in file order.
        keep: ``None`` or boolean ``[nlat, nlon]`` kept cells.
        region: ``(lon_min, lon_max, lat_min, lat_max)`` or ``None``.

    Returns:
        ``(nodes, node_lon, node_lat)``: the :class:`CellNodes` and the ``[N]`` node
        coordinates (degrees, the file's values) for
        :func:`~deepsphere_pyg.graphs.points_graph`.

    Raises:
        ValueError: the selection keeps no cell.
    """
    lat_grid, lon_grid = np.meshgrid(lat, lon, indexing="ij")
    kept = np.ones(lat_grid.shape, dtype=bool) if keep is None else keep.copy()
    if region is not None:
        kept &= region_mask(lon_grid, lat_grid, region)
    if not kept.any():
        raise ValueError(f"the region and mask keep no cell of the {lat.size} x {lon.size} "
                         "grid; enlarge them")
    on_pole = np.abs(np.abs(lat) - 90.0) <= TOLERANCE_DEG
    cells = []
    poles: list[int] = []
    pole_cells = []
    for row in range(lat.size):
        row_cells = row * lon.size + np.flatnonzero(kept[row])
        if on_pole[row] and row_cells.size > 1:
            poles.append(sum(c.size for c in cells))
            pole_cells.append(row_cells)
            row_cells = row_cells[:1]
        cells.append(row_cells)
    flat = np.concatenate(cells)
    node_lat = lat_grid.ravel()[flat]
    node_lon = lon_grid.ravel()[flat]
    nodes = CellNodes(shape=(lat.size, lon.size), cells=flat,
                      pole_nodes=np.asarray(poles, dtype=np.int64),
                      pole_cells=tuple(pole_cells))
    return nodes, node_lon, node_lat
