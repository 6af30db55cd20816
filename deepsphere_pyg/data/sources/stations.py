r"""Station tables (CSV, Parquet) as samples on the points graph of their stations.

**Files.** ``.csv`` / ``.csv.gz`` and ``.parquet`` / ``.pq`` tables, read with pandas (the
optional extra ``pip install "deepsphere-pyg[files]"``; Parquet also needs pyarrow).
Several files are concatenated (e.g. one per year or per network); every file must hold
the key columns.

**Key columns.** ``columns`` maps the keys ``station``, ``lon``, ``lat`` and ``time`` to
the table's column names. A key not given is looked up among its usual names, case
insensitively: ``station`` / ``station_id`` / ``id``; ``lon`` / ``longitude``; ``lat`` /
``latitude``; ``time`` / ``date`` / ``datetime``. Longitudes and latitudes are degrees
(east, north). In a CSV file the station ids are read as text (``"06260"`` keeps its
zero); in Parquet they keep their type (integers stay integers).

**Layouts.**

* ``"long"``: one row per (station, time), with the key columns and one column per
  variable (the "tidy" form of most station archives: ISD, GHCN, Meteostat, ...). Each
  distinct time is a sample; times are parsed with :func:`pandas.to_datetime` (strings
  with a UTC offset are converted to UTC, naive ones are taken as they are). A time
  column holding numbers is refused (write the times as ISO strings or datetimes).
* ``"wide"``: one row per station with ``station``, ``lon``, ``lat`` and the variable
  columns, and no time column: a single sample (a climatology, a survey, a map of
  labels). Tables with one column per station (rows = times) are not read: turn them
  into the long form with :meth:`pandas.DataFrame.melt` and add the coordinates.
* ``"auto"`` (default): ``"long"`` when the (first) file has the time column, else
  ``"wide"``.

**Variables.** Every numeric (or boolean) column other than the key columns, in the
files' order; other columns (names, flags as text) are ignored. Empty cells and NaN are
missing values.

**Stations and nodes.** The stations are the union of the station ids of all rows,
sorted by id (integers, and texts made of digits, numerically; other texts
lexicographically). A station's lon/lat must be the same on every row (to 1e-6 degree).
Stations closer than ``merge_distance`` (great-circle degrees; default and minimum
:data:`~deepsphere_pyg.graphs.points.DUPLICATE_DISTANCE_DEG`, about 0.2 arcsec) cannot be
separate nodes; ``duplicates`` is the policy of
:func:`~deepsphere_pyg.graphs.points_graph`:

* ``"raise"`` (default): a ValueError names the station ids of each close pair;
* ``"merge"``: each group of close stations (single linkage) becomes one node, ordered by
  its first station and placed at the mean direction (as in ``points_graph``). A merged
  node's value at a time is the mean over its stations that have a value then (NaN if
  none has). :meth:`StationSource.write` writes one row per original station, with its
  node's prediction.

Without merging the nodes are the stations in station order. A station that has no row
at a time (the station set may change over time) has NaN for all its variables in that
sample; the data set turns NaN into ``node_mask``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from scipy.spatial import cKDTree

from ...graphs import SphereHierarchy, points_hierarchy
from ...graphs.lonlat import check_lonlat, lonlat_to_vec
from ...graphs.points import check_merge_distance, merge_points
from ...io import atomic_path
from .base import FileSource

#: Usual names of the key columns, matched case-insensitively, in order of preference.
DEFAULT_COLUMNS: dict[str, tuple[str, ...]] = {
    "station": ("station", "station_id", "id"),
    "lon": ("lon", "longitude"),
    "lat": ("lat", "latitude"),
    "time": ("time", "date", "datetime"),
}
_CSV = (".csv", ".csv.gz")
_PARQUET = (".parquet", ".pq")
_LAYOUTS = ("auto", "long", "wide")
#: Largest lon/lat difference (degrees) between the rows of one station.
_COORD_TOLERANCE = 1e-6


def import_pandas() -> Any:
    """The ``pandas`` module, or an ImportError that says how to install it."""
    try:
        import pandas
    except ImportError as error:
        raise ImportError('station tables need pandas: pip install "deepsphere-pyg[files]"'
                          ) from error
    return pandas


class StationSource(FileSource):
    r"""Station tables as samples on the points graph of the stations (module doc).

    Args:
        paths: the tables (``.csv``, ``.csv.gz``, ``.parquet``, ``.pq``), concatenated.
        columns: ``{key: column}`` for some of ``station``, ``lon``, ``lat``, ``time``
            (the others take their usual names).
        layout: ``"auto"``, ``"long"`` (rows per station and time) or ``"wide"`` (rows
            per station, one sample).
        duplicates: ``"raise"`` or ``"merge"`` stations closer than ``merge_distance``.
        merge_distance: great-circle angle in degrees, or ``None`` for the default.

    Attributes:
        station_ids: ``[P]`` station ids in station order (int64 or str objects).
        station_lon, station_lat: ``[P]`` float64 station coordinates in degrees.
        node_of_station: ``[P]`` int64 node of each station (``arange(P)`` unless merged).
        layout: the resolved layout, ``"long"`` or ``"wide"``.
        column_names: ``{key: name}`` of the key columns in the (first) file (no
            ``time`` in the wide layout); :meth:`write` uses these names.

    Raises:
        ValueError: a bad option, an unknown file type, a missing key column (naming the
            file and its columns), a missing or unreadable station id / time, a station
            whose lon/lat change, a (station, time) on two rows, stations at one position
            with ``duplicates="raise"``.
        ImportError: pandas (or, for Parquet, pyarrow) is not installed.
    """

    name: ClassVar[str] = "stations"
    options: ClassVar[Mapping[str, Any]] = {"columns": None, "layout": "auto",
                                             "duplicates": "raise", "merge_distance": None}

    def __init__(self, paths: Sequence[Path], *, columns: Mapping[str, str] | None = None,
                 layout: str = "auto", duplicates: str = "raise",
                 merge_distance: float | None = None) -> None:
        self.paths = [Path(path) for path in paths]
        if not self.paths:
            raise ValueError("StationSource needs at least one table (data.path)")
        if layout not in _LAYOUTS:
            raise ValueError(f"data.layout must be one of {list(_LAYOUTS)}, got {layout!r}")
        if duplicates not in ("raise", "merge"):
            raise ValueError(f"data.duplicates must be 'raise' or 'merge', got {duplicates!r}")
        self.duplicates = duplicates
        self.merge_distance = merge_distance
        self._merge_deg = check_merge_distance(merge_distance, "data.merge_distance")
        columns = dict(columns or {})
        unknown = sorted(set(columns) - set(DEFAULT_COLUMNS))
        if unknown:
            raise ValueError(f"data.columns has unknown key(s) {unknown}; the keys are "
                             f"{list(DEFAULT_COLUMNS)}")
        kinds = [_kind(path) for path in self.paths]
        self._parquet = all(kind == "parquet" for kind in kinds)

        pd = import_pandas()
        self.layout = layout
        tables = []
        for path, kind in zip(self.paths, kinds, strict=True):
            tables.append(self._read_table(pd, path, kind, columns))
        frames = [table.pop("variables") for table in tables]
        frame = pd.concat(frames, ignore_index=True, sort=False)
        self.variables = tuple(
            str(name) for name in frame.columns
            if pd.api.types.is_numeric_dtype(frame[name])
            and not pd.api.types.is_complex_dtype(frame[name]))
        data = frame[list(self.variables)].to_numpy(dtype=np.float32, na_value=np.nan)
        if data.ndim != 2:  # no variable: keep [R, 0]
            data = data.reshape(len(frame), 0)

        ids = _join_ids([table["station"] for table in tables])
        if ids.size == 0:
            raise ValueError(f"the station tables {[str(path) for path in self.paths]} "
                             "have no rows")
        lon = np.concatenate([table["lon"] for table in tables])
        lat = np.concatenate([table["lat"] for table in tables])
        station_of_row = self._stations(ids, lon, lat)
        if self.layout == "long":
            times = np.concatenate([table["time"] for table in tables])
            self._keys, time_of_row = np.unique(times, return_inverse=True)
        else:
            self._keys = np.arange(1)
            time_of_row = np.zeros(ids.size, dtype=np.int64)
        self._check_unique_rows(station_of_row, time_of_row.reshape(-1))
        self._nodes()

        order = np.lexsort((station_of_row, time_of_row))
        self._data = data[order]
        self._node_of_row = self.node_of_station[station_of_row[order]]
        self._starts = np.searchsorted(time_of_row[order], np.arange(self._keys.size + 1))

    # ---------------------------------------------------------------- reading tables
    def _read_table(self, pd: Any, path: Path, kind: str,
                    columns: Mapping[str, str]) -> dict[str, Any]:
        """Key arrays and the frame of the other columns of one file."""
        if kind == "csv":
            header = [str(name) for name in pd.read_csv(path, nrows=0).columns]
        else:
            header = [str(name) for name in _read_parquet(pd, path).columns]
        keys = ["station", "lon", "lat"]
        if self.layout == "auto":
            self.layout = "long" if _find(header, "time", columns) is not None else "wide"
        if self.layout == "long":
            keys.append("time")
        names = {}
        for key in keys:
            found = _find(header, key, columns)
            if found is None:
                wanted = (repr(columns[key]) if key in columns
                          else " / ".join(DEFAULT_COLUMNS[key]))
                raise ValueError(
                    f"{path}: no {key} column ({wanted}) in a {self.layout}-layout station "
                    f"table; its columns are {header}. Name it with data.columns (e.g. "
                    f"data.columns: {{{key}: <column>}})"
                    + ("" if key != "time" else " or use data.layout: wide for a table "
                       "without times"))
            names[key] = found
        if not hasattr(self, "column_names"):
            self.column_names = names
        if kind == "csv":
            table = pd.read_csv(path, dtype={names["station"]: str})
        else:
            table = _read_parquet(pd, path)
        table.columns = [str(name) for name in table.columns]
        out: dict[str, Any] = {"station": _station_ids(pd, table[names["station"]], path)}
        for key in ("lon", "lat"):
            values = pd.to_numeric(table[names[key]], errors="coerce")
            out[key] = values.to_numpy(dtype=np.float64, na_value=np.nan)
        if "time" in names:
            out["time"] = _times(pd, table[names["time"]], path)
        out["variables"] = table.drop(columns=list(names.values()))
        return out

    def _stations(self, ids: np.ndarray, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """Set the stations from the rows' ids and coordinates; the station of each row."""
        unique, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
        inverse = inverse.reshape(-1)
        if unique.dtype == object and all(str(item).isdigit() for item in unique):
            rank = np.empty(unique.size, dtype=np.int64)
            rank[sorted(range(unique.size), key=lambda i: (int(unique[i]), unique[i]))] = (
                np.arange(unique.size))
            first[rank] = first.copy()
            unique[rank] = unique.copy()
            inverse = rank[inverse]
        self.station_ids = unique
        self.station_lon, self.station_lat = lon[first], lat[first]
        dlon = np.abs((lon - self.station_lon[inverse] + 180.0) % 360.0 - 180.0)
        dlat = np.abs(lat - self.station_lat[inverse])
        bad = ~(np.isfinite(lon) & np.isfinite(lat))
        if bad.any():
            station = ids[np.flatnonzero(bad)[0]]
            raise ValueError(f"station {station!r} has a missing lon/lat on "
                             f"{int(bad.sum())} row(s) in total; every row needs both")
        moved = (dlon > _COORD_TOLERANCE) | (dlat > _COORD_TOLERANCE)
        if moved.any():
            row = np.flatnonzero(moved)[0]
            station = inverse[row]
            raise ValueError(
                f"station {ids[row]!r} changes position: lon/lat "
                f"({self.station_lon[station]:g}, {self.station_lat[station]:g}) and "
                f"({lon[row]:g}, {lat[row]:g}) on different rows; a station must keep its "
                "coordinates (give a moved station a new id)")
        try:
            check_lonlat(self.station_lon, self.station_lat)
        except ValueError as error:
            raise ValueError(f"station coordinates: {error}") from error
        return inverse

    def _check_unique_rows(self, station: np.ndarray, time: np.ndarray) -> None:
        """ValueError on a (station, time) that has two rows."""
        pairs = time.astype(np.int64) * self.station_ids.size + station
        unique, counts = np.unique(pairs, return_counts=True)
        if (counts > 1).any():
            pair = int(unique[counts > 1][0])
            station_id = self.station_ids[pair % self.station_ids.size]
            number = int((counts > 1).sum())
            if self.layout == "long":
                when = self.names[pair // self.station_ids.size]
                raise ValueError(f"station {station_id!r} has several rows at time {when} "
                                 f"({number} such (station, time) pairs); keep one row per "
                                 "station and time")
            raise ValueError(f"station {station_id!r} has several rows ({number} such "
                             "stations) in a wide-layout table (one row per station); use "
                             "a time column (data.layout: long) for several samples")

    def _nodes(self) -> None:
        """``node_of_station`` by the duplicate policy of ``points_graph``."""
        pos = lonlat_to_vec(self.station_lon, self.station_lat)
        radius = 2.0 * math.sin(math.radians(self._merge_deg) / 2.0)
        if self.duplicates == "merge":
            self.node_of_station, _ = merge_points(pos, radius)
            self._merged = bool(np.bincount(self.node_of_station).max() > 1)
            return
        pairs = cKDTree(pos).query_pairs(radius, output_type="ndarray")
        if pairs.shape[0]:
            pairs = pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]
            shown = ", ".join(
                f"{self.station_ids[i]!r} and {self.station_ids[j]!r} at "
                f"({self.station_lon[i]:g}, {self.station_lat[i]:g})" for i, j in pairs[:5])
            raise ValueError(
                f"{pairs.shape[0]} pair(s) of stations closer than merge_distance="
                f"{self._merge_deg:.3g} degrees: {shown}{' ...' if len(pairs) > 5 else ''}; "
                "remove them, or set data.duplicates: merge to average them into one node")
        self.node_of_station = np.arange(self.station_ids.size, dtype=np.int64)
        self._merged = False

    # ------------------------------------------------------------------- interface
    @property
    def num_samples(self) -> int:
        """Number of samples ``M``: distinct times (long layout) or 1 (wide)."""
        return int(self._keys.size)

    @property
    def keys(self) -> np.ndarray:
        """``[M]`` increasing ``datetime64[ns]`` times, or ``arange(1)`` (wide layout)."""
        return self._keys

    @property
    def names(self) -> list[str]:
        """ISO times (``2020-01-01``, ``2020-01-01T06:00``: the coarsest exact unit of
        all times), or the first file's stem (wide layout)."""
        if self.layout == "wide":
            return [_stem(self.paths[0])]
        for unit in ("D", "m", "s", "ms", "us", "ns"):
            if (self._keys.astype(f"datetime64[{unit}]") == self._keys).all():
                return [str(name) for name in np.datetime_as_string(self._keys, unit=unit)]
        return [str(name) for name in np.datetime_as_string(self._keys)]  # pragma: no cover

    @property
    def num_nodes(self) -> int:
        """Nodes ``N``: the stations, less those merged into another one."""
        return int(self.node_of_station.max()) + 1

    def read(self, index: int, variables: Sequence[str]) -> np.ndarray:
        """``[N, C]`` float32 values of ``variables`` at sample ``index`` in node order;
        NaN for stations without a row (or a value) at that time; merged nodes get the
        mean of their stations' values."""
        chosen = self.check_variables(variables, "variables")
        index = self.check_index(index)
        cols = [self.variables.index(name) for name in chosen]
        rows = slice(self._starts[index], self._starts[index + 1])
        values = self._data[rows][:, cols]
        nodes = self._node_of_row[rows]
        out = np.full((self.num_nodes, len(cols)), np.nan, dtype=np.float32)
        if not self._merged:
            out[nodes] = values
            return out
        known = np.isfinite(values)
        sums = np.zeros(out.shape, dtype=np.float64)
        counts = np.zeros(out.shape, dtype=np.int64)
        np.add.at(sums, nodes, np.where(known, values, 0.0))
        np.add.at(counts, nodes, known)
        np.divide(sums, counts, out=out, where=counts > 0, casting="unsafe")
        return out

    def hierarchy(self, levels: int, *, k: int | Sequence[int] = 8,
                  edges: str | None = None, kernel: str | float | None = None
                  ) -> SphereHierarchy:
        """:func:`~deepsphere_pyg.graphs.points_hierarchy` of the stations (``levels``
        graphs; ``k`` one int or one per level); level 0's nodes are :meth:`read`'s."""
        extra: dict[str, Any] = {}
        if edges is not None:
            extra["edges"] = edges
        if kernel is not None:
            extra["kernel"] = kernel
        hierarchy = points_hierarchy(self.station_lon, self.station_lat, levels, k=k,
                                     duplicates=self.duplicates,
                                     merge_distance=self.merge_distance, **extra)
        point_index = hierarchy.graphs[0].point_index.numpy()
        if not np.array_equal(point_index, self.node_of_station):  # pragma: no cover
            raise RuntimeError("the points graph's nodes differ from the station nodes")
        return hierarchy

    def write(self, values: np.ndarray, indices: Sequence[int], channels: Sequence[str],
              folder: Path) -> list[Path]:
        """Write ``predictions.csv`` (``predictions.parquet`` when every input is Parquet)
        in long form: the input's station, lon, lat (the station's own) and time (the
        samples' times; none in the wide layout) columns, then one column per channel;
        one row per original station and predicted sample (by sample, then station).

        Args:
            values: ``[S, N, C]`` predictions in node order.
            indices: ``S`` sample indices.
            channels: ``C`` column names.
            folder: the output folder.

        Returns:
            ``[path]`` of the file written (atomically).
        """
        pd = import_pandas()
        values = np.asarray(values)
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        channels = [str(channel) for channel in channels]
        shape = (indices.size, self.num_nodes, len(channels))
        if values.shape != shape:
            raise ValueError(f"values must have shape [S, N, C] = {list(shape)}, got "
                             f"{list(values.shape)}")
        if len(set(channels)) != len(channels):
            raise ValueError(f"channel names must be unique, got {channels}")
        clash = set(channels) & set(self.column_names.values())
        if clash:
            raise ValueError(f"channel name(s) {sorted(clash)} clash with the key columns "
                             f"{list(self.column_names.values())}")
        if ((indices < 0) | (indices >= self.num_samples)).any():
            raise IndexError(f"indices must lie in [0, {self.num_samples}), got {indices}")
        stations = self.station_ids.size
        names = self.column_names
        frame = pd.DataFrame({
            names["station"]: np.tile(self.station_ids, indices.size),
            names["lon"]: np.tile(self.station_lon, indices.size),
            names["lat"]: np.tile(self.station_lat, indices.size)})
        if "time" in names:
            frame[names["time"]] = np.repeat(self._keys[indices], stations)
        per_station = values[:, self.node_of_station, :].reshape(-1, len(channels))
        for column, channel in enumerate(channels):
            frame[channel] = per_station[:, column]
        suffix = ".parquet" if self._parquet else ".csv"
        path = Path(folder) / f"predictions{suffix}"
        with atomic_path(path, suffix) as tmp:
            if self._parquet:
                _pyarrow()
                frame.to_parquet(tmp, index=False)
            else:
                frame.to_csv(tmp, index=False)
        return [path]


# ---------------------------------------------------------------------------- helpers
def _kind(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(_CSV):
        return "csv"
    if name.endswith(_PARQUET):
        return "parquet"
    raise ValueError(f"{path}: not a station table; the station source reads "
                     f"{' '.join(_CSV + _PARQUET)} files")


def _stem(path: Path) -> str:
    name = path.name
    for suffix in _CSV + _PARQUET:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem  # pragma: no cover


def _pyarrow() -> None:
    try:
        import pyarrow  # noqa: F401
    except ImportError as error:
        raise ImportError('Parquet tables need pyarrow: pip install "deepsphere-pyg[files]"'
                          ) from error


def _read_parquet(pd: Any, path: Path) -> Any:
    _pyarrow()
    return pd.read_parquet(path)


def _find(header: Sequence[str], key: str, columns: Mapping[str, str]) -> str | None:
    """The column of ``key``: the name given in ``columns`` (exact, then any case) or the
    first usual name found (any case)."""
    wanted = (columns[key],) if key in columns else DEFAULT_COLUMNS[key]
    for name in wanted:
        if name in header:
            return name
        lowered = [column for column in header if column.lower() == str(name).lower()]
        if lowered:
            return lowered[0]
    return None


def _station_ids(pd: Any, series: Any, path: Path) -> np.ndarray:
    """``[R]`` ids of one file: int64 for integer columns, else str objects."""
    missing = series.isna()
    if missing.any():
        raise ValueError(f"{path}: column {series.name!r} has {int(missing.sum())} missing "
                         f"station id(s) (first on data row {int(np.flatnonzero(missing)[0])})")
    if pd.api.types.is_integer_dtype(series):
        return series.to_numpy(dtype=np.int64)
    return np.array([str(item) for item in series], dtype=object)


def _join_ids(parts: list[np.ndarray]) -> np.ndarray:
    """Concatenated ids; all text when the files disagree on the type."""
    if all(part.dtype == np.int64 for part in parts):
        return np.concatenate(parts)
    return np.concatenate([part.astype(str).astype(object) if part.dtype == np.int64
                           else part for part in parts])


def _times(pd: Any, series: Any, path: Path) -> np.ndarray:
    """``[R]`` ``datetime64[ns]`` times of one file (UTC for times with an offset)."""
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        raise ValueError(f"{path}: the time column {series.name!r} holds numbers; write the "
                         "times as ISO strings (2020-01-01T06:00) or datetimes")
    try:
        times = pd.to_datetime(series, utc=True).dt.tz_localize(None)
    except (ValueError, TypeError) as error:
        raise ValueError(f"{path}: cannot read the times of column {series.name!r}: {error}"
                         ) from error
    missing = times.isna()
    if missing.any():
        raise ValueError(f"{path}: column {series.name!r} has {int(missing.sum())} missing "
                         f"time(s) (first on data row {int(np.flatnonzero(missing)[0])})")
    return times.to_numpy().astype("datetime64[ns]")


