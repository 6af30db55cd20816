r"""Longitude/latitude coordinates (degrees): checks, unit vectors, bounding regions.

Conventions: longitude :math:`\phi` in degrees east, accepted in ``[-180, 360]``;
latitude :math:`\theta` in degrees north, in ``[-90, 90]``. The unit vector is
:math:`(\cos\theta \cos\phi,\ \cos\theta \sin\phi,\ \sin\theta)` (healpy's ``lonlat=True``
convention: colatitude :math:`90° - \theta`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch


def check_lonlat(lon: object, lat: object) -> tuple[np.ndarray, np.ndarray]:
    """``(lon, lat)`` as float64 1-D arrays of equal length, or a clear error."""
    arrays = []
    for name, values in (("lon", lon), ("lat", lat)):
        if isinstance(values, torch.Tensor):
            values = values.detach().cpu().numpy()
        array = np.asarray(values, dtype=np.float64)
        if array.ndim != 1:
            raise ValueError(f"{name} must be 1-D (degrees, one per point), got shape "
                             f"{array.shape}")
        bad = ~np.isfinite(array)
        if bad.any():
            raise ValueError(f"{name} has {int(bad.sum())} non-finite value(s) (first at index "
                             f"{int(np.flatnonzero(bad)[0])}); remove or repair those points")
        arrays.append(array)
    lon_a, lat_a = arrays
    if lon_a.shape != lat_a.shape:
        raise ValueError(f"lon and lat must have the same length, got {lon_a.size} and "
                         f"{lat_a.size}")
    if lat_a.size and (lat_a.min() < -90 or lat_a.max() > 90):
        raise ValueError(f"lat must lie in [-90, 90] degrees, got range [{lat_a.min():g}, "
                         f"{lat_a.max():g}]; are lon and lat swapped, or given in radians?")
    if lon_a.size and (lon_a.min() < -180 or lon_a.max() > 360):
        raise ValueError(f"lon must lie in [-180, 360] degrees, got range [{lon_a.min():g}, "
                         f"{lon_a.max():g}]")
    return lon_a, lat_a


def lonlat_to_vec(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Unit vectors ``[N, 3]`` (float64) of points given in degrees."""
    lon_r, lat_r = np.radians(lon), np.radians(lat)
    cos_lat = np.cos(lat_r)
    return np.stack([cos_lat * np.cos(lon_r), cos_lat * np.sin(lon_r), np.sin(lat_r)], axis=1)


def vec_to_lonlat(pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(lon in [0, 360), lat in [-90, 90])`` degrees of unit vectors ``[N, 3]``."""
    pos = np.asarray(pos, dtype=np.float64)
    lon = np.degrees(np.arctan2(pos[:, 1], pos[:, 0])) % 360.0
    lat = np.degrees(np.arcsin(np.clip(pos[:, 2], -1.0, 1.0)))
    return lon, lat


def check_region(region: object) -> tuple[float, float, float, float]:
    """``region`` as ``(lon_min, lon_max, lat_min, lat_max)`` floats (degrees), or a clear
    error: four finite numbers, longitudes in ``[-180, 360]``, latitudes in ``[-90, 90]``
    with ``lat_min <= lat_max``."""
    values = [] if isinstance(region, str) else list(np.asarray(region, dtype=object).ravel())
    try:
        values = [float(v) for v in values]
    except (TypeError, ValueError):
        values = []
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise ValueError(f"region must be (lon_min, lon_max, lat_min, lat_max) in degrees, "
                         f"got {region!r}")
    lon_min, lon_max, lat_min, lat_max = values
    for name, value in (("lon_min", lon_min), ("lon_max", lon_max)):
        if not -180.0 <= value <= 360.0:
            raise ValueError(f"region {name}={value:g} must lie in [-180, 360] degrees east; "
                             "is the region given as (lon_min, lon_max, lat_min, lat_max)?")
    for name, value in (("lat_min", lat_min), ("lat_max", lat_max)):
        if not -90.0 <= value <= 90.0:
            raise ValueError(f"region {name}={value:g} must lie in [-90, 90] degrees north; "
                             "is the region given as (lon_min, lon_max, lat_min, lat_max)?")
    if lat_min > lat_max:
        raise ValueError(f"region latitudes must satisfy -90 <= lat_min <= lat_max <= 90, "
                         f"got lat_min={lat_min:g}, lat_max={lat_max:g}")
    return lon_min, lon_max, lat_min, lat_max


def region_mask(lon: np.ndarray, lat: np.ndarray, region: Sequence[float]) -> np.ndarray:
    """Boolean mask of the points inside a lon/lat box ``(lon_min, lon_max, lat_min, lat_max)``.

    Bounds are inclusive, in degrees. Longitudes are compared modulo 360, and a box with
    ``lon_min > lon_max`` crosses the antimeridian: ``(170, -170, -10, 10)`` is 20° wide.
    ``lon_max - lon_min = 360`` (e.g. ``(0, 360, ...)`` or ``(-180, 180, ...)``) keeps every
    longitude.
    """
    lon_min, lon_max, lat_min, lat_max = check_region(region)
    inside_lat = (lat >= lat_min) & (lat <= lat_max)
    if lon_max - lon_min >= 360:
        return inside_lat
    width = (lon_max - lon_min) % 360.0
    offset = (np.asarray(lon) - lon_min) % 360.0
    return inside_lat & (offset <= width)
