"""Longitude/latitude helpers: conversions, bounding regions, checks."""

import healpy as hp
import numpy as np
import pytest
import torch

from deepsphere_pyg.graphs.lonlat import check_lonlat, lonlat_to_vec, region_mask, vec_to_lonlat


def test_unit_vectors_follow_healpy_lonlat_convention():
    rng = np.random.default_rng(0)
    lon, lat = rng.uniform(-180, 360, 200), rng.uniform(-90, 90, 200)
    np.testing.assert_allclose(lonlat_to_vec(lon, lat),
                               np.array(hp.ang2vec(lon, lat, lonlat=True)), atol=1e-14)


def test_round_trip_to_lon_in_0_360():
    rng = np.random.default_rng(1)
    lon, lat = rng.uniform(-180, 180, 100), rng.uniform(-89, 89, 100)
    back_lon, back_lat = vec_to_lonlat(lonlat_to_vec(lon, lat))
    np.testing.assert_allclose(back_lon, lon % 360, atol=1e-9)
    np.testing.assert_allclose(back_lat, lat, atol=1e-9)


def test_region_crossing_the_antimeridian():
    lon = np.array([165.0, 175.0, 179.0, -179.0, 185.0, -170.0, -165.0, 0.0])
    lat = np.zeros(lon.size)
    inside = region_mask(lon, lat, (170, -170, -10, 10))
    assert inside.tolist() == [False, True, True, True, True, True, False, False]
    assert region_mask(lon, lat + 20, (170, -170, -10, 10)).sum() == 0
    assert region_mask(lon, lat, (-180, 180, -90, 90)).all()


def test_region_bounds_are_inclusive():
    assert region_mask(np.array([10.0, 20.0]), np.array([-5.0, 5.0]), (10, 20, -5, 5)).all()


@pytest.mark.parametrize(
    ("lon", "lat", "match"),
    [
        ([0.0, np.nan], [0.0, 1.0], "lon has 1 non-finite"),
        ([0.0, 1.0], [0.0, 91.0], "lat must lie in"),
        ([0.0, 400.0], [0.0, 1.0], "lon must lie in"),
        ([0.0, 1.0], [0.0], "same length"),
        ([[0.0]], [[0.0]], "1-D"),
    ],
)
def test_bad_coordinates(lon, lat, match):
    with pytest.raises(ValueError, match=match):
        check_lonlat(lon, lat)


def test_tensors_are_accepted():
    lon, lat = check_lonlat(torch.tensor([1.0, 2.0]), torch.tensor([3.0, 4.0]))
    assert lon.dtype == np.float64 and lat.tolist() == [3.0, 4.0]


@pytest.mark.parametrize("region", [(0, 10, 20, 10), (0, 10, -100, 0), (0, 10, 0), "box"])
def test_bad_regions(region):
    with pytest.raises(ValueError, match="region"):
        region_mask(np.zeros(2), np.zeros(2), region)
