r"""Lat-lon fields of netCDF / zarr files (xarray) as samples on a sphere graph.

``data.source: grid``. Every data variable with a latitude and a longitude dimension is a
variable of the source (:attr:`GridSource.variables`); a time dimension gives the samples
(without one, a file is one sample; several files are joined along time, sorted by time).

**Coordinates.** ``lat``/``lon`` or ``latitude``/``longitude`` (any case; else the
``standard_name`` attribute; else ``lat_name=``/``lon_name=``), 1-D, in any order of the
variables' dimensions, latitudes in either direction, longitudes in ``0..360`` or
``-180..180`` starting anywhere. The time is ``time`` or ``valid_time`` (or
``time_name=``): a dimension (one sample per step) or a scalar coordinate (the file's one
sample).

**Sampling** (:mod:`.grid_layout`). A grid whose latitudes are those of one of the
library's equiangular families (Clenshaw-Curtis, Driscoll-Healy, SOFT, Gauss-Legendre)
and whose longitudes are the ``nlon`` multiples of ``360/nlon`` is that equiangular grid
(:func:`~deepsphere_pyg.graphs.equiangular_hierarchy`): nodes in the library's order
(north to south, longitudes from 0, a pole row one node, the mean of its cells). Any
other grid (regional, irregular) is a points graph
(:func:`~deepsphere_pyg.graphs.points_hierarchy`) of its cells' (lon, lat), nodes the
kept cells row-major in the file's ``[lat, lon]`` array (a pole row again one node).

**Selection.** ``region=[lon_min, lon_max, lat_min, lat_max]`` (degrees) keeps the cells
inside; ``mask_variable`` keeps the cells where that variable (its first time step) is
finite and nonzero; both: the cells kept by both. Other cells are no nodes; NaN values on
nodes stay NaN in :meth:`GridSource.read`.

**Output.** :meth:`GridSource.write` writes ``predictions.nc`` (``predictions.zarr`` for
zarr input) on the input's coordinates (same values, order and direction), NaN on the
cells that are no nodes.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ...graphs import SphereHierarchy, equiangular_hierarchy, points_hierarchy
from ...graphs.lonlat import check_region
from ...io import atomic_path
from .base import FileSource
from .grid_layout import (
    CellNodes,
    check_latitudes,
    check_longitudes,
    equiangular_nodes,
    max_levels,
    points_nodes,
    recognise_grid,
)

_LAT_NAMES = ("lat", "latitude")
_LON_NAMES = ("lon", "longitude")
_TIME_NAMES = ("time", "valid_time")


def _xarray() -> Any:
    try:
        import xarray
    except ImportError as error:
        raise ImportError('data.source "grid" reads netCDF / zarr files with xarray: pip '
                          'install "deepsphere-pyg[files]"') from error
    return xarray


def _is_zarr(path: Path) -> bool:
    return path.suffix == ".zarr" or (path.is_dir() and path.suffix != ".nc")


class GridSource(FileSource):
    r"""Lat-lon fields of netCDF / zarr files as samples (module doc).

    Args:
        paths: the files (``.nc`` and other netCDF files; ``.zarr`` directories), joined
            along time.
        region: ``[lon_min, lon_max, lat_min, lat_max]`` degrees (inclusive;
            ``lon_min > lon_max`` crosses the antimeridian): the kept cells.
        mask_variable: a variable (``[lat, lon]``, or with time: its first step) whose
            finite nonzero values mark the kept cells.
        lat_name, lon_name: the latitude / longitude coordinates (default: found by name).
        time_name: the time dimension or scalar coordinate (default ``time`` or
            ``valid_time`` when present).

    Attributes:
        grid: the equiangular family (``"soft"``, ...) or ``"points"``.
        shape: ``(nlat, nlon)`` of the files' grid.
        format: ``"netcdf"`` or ``"zarr"`` (that of the first file; the output's).

    Raises:
        FileNotFoundError: a missing file.
        ValueError: missing or bad coordinates, a non-monotonic or duplicated time axis,
            files on different grids, a bad ``region`` or ``mask_variable`` (all named).
    """

    name: ClassVar[str] = "grid"
    options: ClassVar[dict[str, Any]] = {"region": None, "mask_variable": None,
                                         "lat_name": None, "lon_name": None,
                                         "time_name": None}

    def __init__(self, paths: Sequence[Path], *, region: Sequence[float] | None = None,
                 mask_variable: str | None = None, lat_name: str | None = None,
                 lon_name: str | None = None, time_name: str | None = None) -> None:
        xr = _xarray()
        self.paths = [Path(path) for path in paths]
        if not self.paths:
            raise ValueError("data.path names no file")
        for path in self.paths:
            if not path.exists():
                raise FileNotFoundError(f"data.path: {str(path)!r} does not exist")
        self.format = "zarr" if _is_zarr(self.paths[0]) else "netcdf"
        self.region = None if region is None else check_region(region)
        self._xr = xr
        self._handles: dict[int, Any] = {}
        self._pid = os.getpid()
        first = self._dataset(0)
        self.lat_name = _find_coordinate(first, lat_name, _LAT_NAMES, "latitude",
                                         "lat_name", self.paths[0])
        self.lon_name = _find_coordinate(first, lon_name, _LON_NAMES, "longitude",
                                         "lon_name", self.paths[0])
        self._lat_dim = first[self.lat_name].dims[0]
        self._lon_dim = first[self.lon_name].dims[0]
        self.lat = check_latitudes(first[self.lat_name].values, self.lat_name)
        self.lon = check_longitudes(first[self.lon_name].values, self.lon_name)
        self.shape = (self.lat.size, self.lon.size)
        self.time_name = time_name if time_name is not None else next(
            (n for n in _TIME_NAMES if n in first.dims or n in first.coords), None)
        self._time_dim: str | None = None
        variables: list[str] | None = None
        times, counts = [], []
        for number in range(len(self.paths)):
            ds = self._dataset(number)
            if number:
                self._check_same_grid(ds, number)
            file_times, count = self._file_times(ds, number, explicit=time_name is not None)
            times.append(file_times)
            counts.append(count)
            names = [n for n, v in ds.data_vars.items()
                     if self._lat_dim in v.dims and self._lon_dim in v.dims]
            variables = names if variables is None else [n for n in variables if n in names]
        self.variables = tuple(variables or ())
        if not self.variables:
            raise ValueError(f"{self.paths[0]} has no variable with the dimensions "
                             f"{self._lat_dim!r} and {self._lon_dim!r} (in every file); its "
                             f"variables: {list(first.data_vars)}")
        self._index_samples(times, counts)
        keep = None if mask_variable is None else self._mask(str(mask_variable))
        self.mask_variable = mask_variable
        self._match = recognise_grid(self.lat, self.lon)
        if self._match is not None:
            self.grid = self._match.family
            self._nodes, self._kept = equiangular_nodes(self._match, keep, self.region)
        else:
            self.grid = "points"
            self._nodes, self._node_lon, self._node_lat = points_nodes(
                self.lat, self.lon, keep, self.region)

    # -------------------------------------------------------------------- files
    def _dataset(self, number: int) -> Any:
        """The opened file ``number`` (reopened in a new process, e.g. a loader worker)."""
        if os.getpid() != self._pid:
            self._handles, self._pid = {}, os.getpid()
        if number not in self._handles:
            path = self.paths[number]
            kwargs: dict[str, Any] = {"engine": "zarr"} if _is_zarr(path) else {}
            try:
                self._handles[number] = self._xr.open_dataset(
                    path, decode_timedelta=False, **kwargs)
            except (OSError, ValueError) as error:
                raise ValueError(f"cannot open {path} as a netCDF / zarr data set: "
                                 f"{error}") from error
        return self._handles[number]

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_handles"], state["_xr"] = {}, None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._xr = _xarray()

    def close(self) -> None:
        """Close the opened files (they are reopened when read again)."""
        for ds in self._handles.values():
            ds.close()
        self._handles = {}

    def _check_same_grid(self, ds: Any, number: int) -> None:
        path = self.paths[number]
        for name, reference in ((self.lat_name, self.lat), (self.lon_name, self.lon)):
            if name not in ds.variables:
                raise ValueError(f"{path} has no coordinate {name!r} (the first file, "
                                 f"{self.paths[0]}, has); all files must share one grid")
            values = np.asarray(ds[name].values, dtype=np.float64)
            if values.shape != reference.shape or not np.allclose(values, reference,
                                                                  rtol=0, atol=1e-9):
                raise ValueError(f"the {name!r} coordinate of {path} differs from that of "
                                 f"{self.paths[0]}; all files must share one grid")

    def _file_times(self, ds: Any, number: int, explicit: bool
                    ) -> tuple[np.ndarray | None, int]:
        """``(times or None, count)`` of file ``number``'s samples."""
        path, name = self.paths[number], self.time_name
        if name is None:
            return None, 1
        if name in ds.dims:
            dim = name
        elif name in ds.coords and ds[name].ndim == 1:
            dim = ds[name].dims[0]
        elif name in ds.coords and ds[name].ndim == 0:
            return _as_times(ds[name].values.reshape(1), name, path), 1
        elif explicit:
            raise ValueError(f"time_name={name!r} is neither a dimension nor a coordinate of "
                             f"{path} (dimensions {list(ds.dims)}, coordinates "
                             f"{list(ds.coords)})")
        else:
            return None, 1
        if self._time_dim not in (None, dim):
            raise ValueError(f"the time of {path} is along {dim!r}, that of "
                             f"{self.paths[0]} along {self._time_dim!r}")
        self._time_dim = dim
        count = int(ds.sizes[dim])
        if name not in ds.variables:
            return None, count
        times = _as_times(ds[name].values, name, path)
        steps = np.diff(times)
        if (steps == np.timedelta64(0)).any():
            raise ValueError(f"the time axis {name!r} of {path} has duplicated times "
                             f"({times[1:][steps == np.timedelta64(0)][0]}); drop them, e.g. "
                             f"ds.drop_duplicates({name!r})")
        if (steps < np.timedelta64(0)).any():
            raise ValueError(f"the time axis {name!r} of {path} is not increasing; sort it, "
                             f"e.g. ds.sortby({name!r})")
        return times, count

    def _index_samples(self, times: list[np.ndarray | None], counts: list[int]) -> None:
        """Sample order (by time across files) -> (file, position in the file)."""
        files = np.repeat(np.arange(len(counts)), counts)
        local = np.concatenate([np.arange(count) for count in counts])
        dated = [t is not None for t in times]
        if any(dated) and not all(dated):
            raise ValueError(f"{self.paths[dated.index(False)]} has no time while "
                             f"{self.paths[dated.index(True)]} has; give files of one kind")
        if all(dated):
            keys = np.concatenate(times)
            order = np.argsort(keys, kind="stable")
            keys, files, local = keys[order], files[order], local[order]
            same = np.flatnonzero(keys[1:] == keys[:-1])
            if same.size:
                at = int(same[0])
                raise ValueError(f"the time {keys[at]} is in {self.paths[files[at]]} and in "
                                 f"{self.paths[files[at + 1]]}; drop the duplicate, e.g. "
                                 "ds.drop_duplicates('time')")
            self._keys = keys
            self._names = _iso_names(keys)
        else:
            self._keys = np.arange(files.size)
            self._names = [f"sample_{i}" for i in range(files.size)]
        self._where = list(zip(files.tolist(), local.tolist(), strict=True))

    def _mask(self, name: str) -> np.ndarray:
        """Boolean ``[nlat, nlon]`` (file orientation): cells kept by ``mask_variable``."""
        self.check_variables([name], "mask_variable")
        values = self._values(self._dataset(0), name, 0, first_step=True)
        keep = np.isfinite(values) & (values != 0)
        if not keep.any():
            raise ValueError(f"mask_variable={name!r} keeps no cell (no finite nonzero value)")
        return keep

    def _values(self, ds: Any, name: str, position: int, first_step: bool = False
                ) -> np.ndarray:
        """Float64 ``[nlat, nlon]`` (file orientation) of variable ``name`` at ``position``
        of the file's time axis (reads that step only)."""
        array = ds[name]
        select: dict[str, int] = {}
        for dim in array.dims:
            if dim == self._time_dim:
                select[dim] = 0 if first_step else position
            elif dim not in (self._lat_dim, self._lon_dim):
                select[dim] = 0  # size 1 (checked)
        array = array.isel(select).transpose(self._lat_dim, self._lon_dim)
        return np.asarray(array.values, dtype=np.float64)

    def check_variables(self, variables: Sequence[str], key: str) -> list[str]:
        """:meth:`FileSource.check_variables`, and each variable has no dimension beyond
        latitude, longitude and time (other than of size 1).

        Raises:
            ValueError: an unknown variable, or one with an extra dimension (named, with
                the fix: select one value with ``.sel``).
        """
        chosen = super().check_variables(variables, key)
        ds = self._dataset(0)
        for name in chosen:
            for dim in ds[name].dims:
                size = int(ds.sizes[dim])
                if dim not in (self._lat_dim, self._lon_dim, self._time_dim) and size > 1:
                    raise ValueError(
                        f"{key}: the variable {name!r} of {self.paths[0]} has the dimension "
                        f"{dim!r} (size {size}) besides latitude, longitude and time; select "
                        f"one value and save that, e.g. ds.sel({dim}=...) or "
                        f"ds.isel({dim}=0)")
        return chosen

    # -------------------------------------------------------------------- samples
    @property
    def num_samples(self) -> int:
        return len(self._where)

    @property
    def keys(self) -> np.ndarray:
        """``[M]`` ``datetime64[ns]`` times, increasing, or ``0 .. M-1`` without time."""
        return self._keys

    @property
    def names(self) -> list[str]:
        """ISO times (``2020-01-01T00``, to the hour or finer when needed to be unique), or
        ``sample_0``, ``sample_1``, ... without time."""
        return list(self._names)

    @property
    def num_nodes(self) -> int:
        return self._nodes.num_nodes

    @property
    def nodes(self) -> CellNodes:
        """The file cells of the nodes (:class:`~.grid_layout.CellNodes`)."""
        return self._nodes

    def read(self, index: int, variables: Sequence[str]) -> np.ndarray:
        """``[N, len(variables)]`` float32 values of sample ``index`` in node order (NaN
        where the file has NaN / fill values); reads one time step of one file."""
        chosen = self.check_variables(variables, "variables")
        number, position = self._where[self.check_index(index)]
        ds = self._dataset(number)
        out = np.empty((self.num_nodes, len(chosen)), dtype=np.float32)
        for column, name in enumerate(chosen):
            out[:, column] = self._nodes.to_nodes(self._values(ds, name, position))
        return out

    # -------------------------------------------------------------------- graphs
    def hierarchy(self, levels: int, *, k: int | Sequence[int] = 8,
                  edges: str | None = None, kernel: str | float | None = None
                  ) -> SphereHierarchy:
        """``levels`` graphs, finest first: the equiangular hierarchy of a recognised grid
        (masked to the kept nodes), else the points hierarchy of the kept cells.

        Raises:
            ValueError: more levels than the grid can be pooled into (with the largest
                possible number), and the builders' errors, prefixed with the grid.
        """
        options: dict[str, Any] = {"k": k}
        if edges is not None:
            options["edges"] = edges
        if kernel is not None:
            options["kernel"] = kernel
        nlat, nlon = self.shape
        where = f"the {nlat} x {nlon} {self.grid} grid of {self.paths[0]}"
        if self._match is not None:
            most = max_levels(self._match)
            if isinstance(levels, int) and levels > most:
                rows = "nlat - 1" if self.grid == "clenshaw-curtis" else "nlat"
                raise ValueError(
                    f"{where} cannot be pooled into {levels} levels: at most {most} (each "
                    f"level halves {rows} and nlon, which must be even); use levels <= "
                    f"{most}, or regrid to {rows} and nlon divisible by 2^{levels - 1}")
            try:
                return equiangular_hierarchy(nlat, levels, nlon, grid=self.grid,
                                             mask=self._kept, **options)
            except ValueError as error:
                raise ValueError(f"{where} ({self.num_nodes} nodes): {error}") from error
        try:
            return points_hierarchy(self._node_lon, self._node_lat, levels, **options)
        except ValueError as error:
            raise ValueError(f"{where} ({self.num_nodes} nodes): {error}") from error

    # -------------------------------------------------------------------- output
    def write(self, values: np.ndarray, indices: Sequence[int], channels: Sequence[str],
              folder: Path) -> list[Path]:
        """Write ``predictions.nc`` (``predictions.zarr`` for zarr input) into ``folder``.

        One variable per channel, dims ``(time, lat, lon)`` (``sample`` instead of time
        without time), on the input's latitude / longitude coordinates (values, order,
        direction, attributes), the times of the samples ``indices``, NaN on cells that are
        no nodes. A channel named ``<var>`` or ``<var>_prediction`` gets the attributes of
        input variable ``<var>``; the global attributes are the first file's.

        Args:
            values: ``[S, N, C]`` predictions in node order.
            indices: ``S`` sample indices.
            channels: ``C`` names.
            folder: an existing folder.

        Returns:
            ``[path]`` of the file written (atomically).
        """
        values = np.asarray(values)
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        channels = [str(channel) for channel in channels]
        if values.ndim != 3 or values.shape != (indices.size, self.num_nodes, len(channels)):
            raise ValueError(f"values must have shape [S, N, C] = [{indices.size}, "
                             f"{self.num_nodes}, {len(channels)}], got {list(values.shape)}")
        if indices.size and (indices.min() < 0 or indices.max() >= self.num_samples):
            raise ValueError(f"indices must lie in 0 .. {self.num_samples - 1}")
        if len(set(channels)) != len(channels):
            raise ValueError(f"channels must be unique, got {channels}")
        sample_dim = self.time_name if self._keys.dtype.kind == "M" else "sample"
        clash = {self.lat_name, self.lon_name, sample_dim, self._lat_dim, self._lon_dim}
        if clash & set(channels):
            raise ValueError(f"channel names {sorted(clash & set(channels))} are coordinate "
                             "names; rename them")
        dataset = self._output(values, indices, channels, sample_dim)
        folder = Path(folder)
        if self.format == "netcdf":
            target = folder / "predictions.nc"
            with atomic_path(target, ".nc") as tmp:
                dataset.to_netcdf(tmp)
            return [target]
        target = folder / "predictions.zarr"
        _write_zarr_atomic(dataset, target)
        return [target]

    def _output(self, values: np.ndarray, indices: np.ndarray, channels: list[str],
                sample_dim: str) -> Any:
        xr = self._xr
        ds = self._dataset(0)
        grid = self._nodes.to_grid(values.astype(np.float32).transpose(0, 2, 1))
        dims = (sample_dim, self._lat_dim, self._lon_dim)
        data = {}
        for column, channel in enumerate(channels):
            source = channel.removesuffix("_prediction")
            attrs = dict(ds[source].attrs) if source in ds.data_vars else {}
            data[channel] = xr.Variable(dims, grid[:, column], attrs)
        coords = {}
        for name in (self.lat_name, self.lon_name):
            coordinate = ds[name].variable
            coords[name] = xr.Variable(coordinate.dims, coordinate.values,
                                       dict(coordinate.attrs))
        time_attrs = (dict(ds[self.time_name].attrs)
                      if sample_dim == self.time_name and self.time_name in ds.variables
                      else {})
        coords[sample_dim] = xr.Variable((sample_dim,), self._keys[indices], time_attrs)
        return xr.Dataset(data, coords=coords, attrs=dict(ds.attrs))


def _write_zarr_atomic(dataset: Any, target: Path) -> None:
    """``dataset`` to the zarr directory ``target``: written to a temporary directory next
    to it, then renamed over it (an older ``target`` is moved aside and removed)."""
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        with warnings.catch_warnings():  # zarr 3: consolidated metadata is an extension
            warnings.filterwarnings("ignore", message="Consolidated metadata")
            dataset.to_zarr(tmp, mode="w", consolidated=True)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o755 & ~umask)
        old = None
        if target.exists():
            old = target.parent / f".{target.name}.old-{uuid.uuid4().hex}"
            os.replace(target, old)
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _find_coordinate(ds: Any, explicit: str | None, candidates: tuple[str, ...],
                     standard_name: str, option: str, path: Path) -> str:
    """The name of the latitude / longitude coordinate of ``ds`` (1-D)."""
    found = f"coordinates {list(ds.coords)}, dimensions {list(ds.dims)}"
    if explicit is not None:
        if explicit not in ds.variables:
            raise ValueError(f"{option}={explicit!r} is not in {path} ({found})")
        name = explicit
    else:
        names = [n for n in ds.variables if str(n).lower() in candidates]
        names += [n for n in ds.variables
                  if ds[n].attrs.get("standard_name") == standard_name and n not in names]
        if not names:
            raise ValueError(f"{path} has no {standard_name} coordinate (looked for "
                             f"{' / '.join(candidates)}; found {found}); name it with "
                             f"{option}=")
        name = str(names[0])
    if ds[name].ndim != 1:
        raise ValueError(f"the {standard_name} coordinate {name!r} of {path} has dimensions "
                         f"{list(ds[name].dims)}; a 1-D coordinate is needed (curvilinear "
                         "grids are not supported)")
    return name


def _as_times(values: np.ndarray, name: str, path: Path) -> np.ndarray:
    """``datetime64[ns]`` of a decoded time coordinate (cftime dates converted)."""
    values = np.asarray(values)
    problem = ValueError(f"the time coordinate {name!r} of {path} holds {values.dtype} "
                         "values, not dates; give it CF units ('hours since 2000-01-01') or "
                         "set time_name")
    if values.dtype.kind == "O":  # cftime dates (non-standard calendars)
        try:
            values = np.array([np.datetime64(v.isoformat()) for v in values])
        except (AttributeError, ValueError, TypeError) as error:
            raise problem from error
    if values.dtype.kind != "M":
        raise problem
    values = values.astype("datetime64[ns]")
    if np.isnat(values).any():
        raise ValueError(f"the time coordinate {name!r} of {path} has missing times (NaT)")
    return values


def _iso_names(times: np.ndarray) -> list[str]:
    """ISO names of ``times``, to the hour or to the finest unit that makes them unique."""
    for unit in ("h", "m", "s", "ms", "us", "ns"):
        names = [str(name) for name in np.datetime_as_string(times, unit=unit)]
        if len(set(names)) == len(names):
            return names
    return [str(name) for name in np.datetime_as_string(times, unit="ns")]
