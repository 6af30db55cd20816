"""GridSource: lat-lon fields of netCDF / zarr files as samples on equiangular / points graphs."""

import pickle
import sys
import warnings

import numpy as np
import pytest
import xarray as xr

from deepsphere_pyg.data.sources.grid import GridSource
from deepsphere_pyg.graphs import equiangular_graph, equiangular_grid
from deepsphere_pyg.graphs.lonlat import lonlat_to_vec

TIMES = np.array(["2020-01-01T00", "2020-01-01T06", "2020-01-01T12"], dtype="datetime64[ns]")
SIZES = {"clenshaw-curtis": (9, 16), "driscoll-healy": (8, 16), "soft": (8, 16),
         "gauss-legendre": (8, 16)}


def f_pos(pos):
    """A smooth field without symmetry, as a function of unit vectors [..., 3]."""
    x, y, z = pos[..., 0], pos[..., 1], pos[..., 2]
    return 2.0 * z + 0.7 * x + 0.3 * y + x * y - 0.5 * y * z


def field(lat, lon):
    """[nlat, nlon] f at the cells of 1-D coordinates (degrees)."""
    lat_grid, lon_grid = np.meshgrid(lat, lon, indexing="ij")
    pos = lonlat_to_vec(lon_grid.ravel(), lat_grid.ravel()).reshape(*lat_grid.shape, 3)
    return f_pos(pos)


def dataset(lat, lon, times=TIMES, dims=("time", "lat", "lon"), lat_name="lat",
            lon_name="lon", attrs=None):
    """t2m = f + sample number (+ 0.25 x time step), u10 = -f; in dims order ``dims``."""
    base = field(lat, lon)
    coords = {lat_name: lat, lon_name: lon}
    if times is None:
        data = {"t2m": ((lat_name, lon_name), base), "u10": ((lat_name, lon_name), -base)}
    else:
        steps = np.arange(len(times))[:, None, None]
        coords["time"] = times
        data = {"t2m": (("time", lat_name, lon_name), base + steps, {"units": "K"}),
                "u10": (("time", lat_name, lon_name), -base + 0 * steps)}
    ds = xr.Dataset(data, coords=coords, attrs=attrs or {"title": "test grid"})
    if times is not None:
        ds = ds.transpose(*[{"lat": lat_name, "lon": lon_name}.get(d, d) for d in dims])
    return ds


def save(ds, path):
    if str(path).endswith(".zarr"):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Consolidated metadata")
            ds.to_zarr(path)
    else:
        ds.to_netcdf(path)
    return path


def graph_values(graph):
    return f_pos(graph.pos.double().numpy())


def convention(lat, lon, name):
    if name in ("south_to_north", "all"):
        lat = lat[::-1].copy()
    if name in ("lon_-180_180", "all"):
        lon = np.sort((lon + 180.0) % 360.0 - 180.0)
    if name == "lon_rotated":
        lon = np.roll(lon, 5)
    if name == "lon_descending":
        lon = lon[::-1].copy()
    return lat, lon


# ------------------------------------------------------------------ equiangular grids
@pytest.mark.parametrize("name", ["plain", "south_to_north", "lon_-180_180", "lon_rotated",
                                  "lon_descending", "all"])
@pytest.mark.parametrize("family", list(SIZES))
def test_families_recognised_and_read_in_graph_order(tmp_path, family, name):
    nlat, nlon = SIZES[family]
    lat, lon = convention(*equiangular_grid(nlat, nlon, grid=family), name)
    dims = ("lon", "lat", "time") if name == "all" else ("time", "lat", "lon")
    source = GridSource([save(dataset(lat, lon, dims=dims), tmp_path / "a.nc")])
    assert source.grid == family and source.shape == (nlat, nlon)
    expected = equiangular_graph(nlat, nlon, grid=family)
    hierarchy = source.hierarchy(2)
    graph = hierarchy[0]
    assert source.num_nodes == graph.num_nodes == expected.num_nodes
    np.testing.assert_allclose(graph.pos.numpy(), expected.pos.numpy())
    values = source.read(2, ["t2m", "u10"])
    assert values.shape == (graph.num_nodes, 2) and values.dtype == np.float32
    np.testing.assert_allclose(values[:, 0], graph_values(graph) + 2, atol=1e-5)
    np.testing.assert_allclose(values[:, 1], -graph_values(graph), atol=1e-5)


def test_a_pole_row_is_one_node_with_the_mean_and_is_written_back_whole(tmp_path):
    lat, lon = equiangular_grid(8, 16, grid="driscoll-healy")
    ds = dataset(lat[::-1].copy(), lon)
    ds["t2m"][0, -1] = np.arange(16.0)  # the north pole row (last: south to north)
    source = GridSource([save(ds, tmp_path / "a.nc")])
    values = source.read(0, ["t2m"])
    assert values[0, 0] == pytest.approx(7.5)  # node 0: the north pole
    (path,) = source.write(values[None], [0], ["t2m"], tmp_path)
    with xr.open_dataset(path) as result:
        np.testing.assert_array_equal(result.t2m.values[0, -1], np.full(16, 7.5))


def test_float32_coordinates_are_recognised(tmp_path):
    lat, lon = equiangular_grid(8, 16, grid="gauss-legendre")
    ds = dataset(lat.astype(np.float32), lon.astype(np.float32))
    assert GridSource([save(ds, tmp_path / "a.nc")]).grid == "gauss-legendre"


def test_hierarchy_passes_edges_and_kernel(tmp_path):
    lat, lon = equiangular_grid(8, 16, grid="soft")
    source = GridSource([save(dataset(lat, lon), tmp_path / "a.nc")])
    hierarchy = source.hierarchy(3, k=[8, 6, 4], edges="neighbours")
    assert hierarchy.num_nodes == [128, 32, 8] and hierarchy[0].edges == "neighbours"
    assert source.hierarchy(1, kernel="global")[0].kernel == "global"


# ------------------------------------------------------------------ other grids: points
def test_regional_grid_is_a_points_graph_in_row_major_order(tmp_path):
    lat, lon = np.arange(60.0, 29.0, -5.0), np.arange(-10.0, 21.0, 5.0)
    source = GridSource([save(dataset(lat, lon), tmp_path / "a.nc")])
    assert source.grid == "points" and source.num_nodes == lat.size * lon.size
    graph = source.hierarchy(2)[0]
    lat_grid, lon_grid = np.meshgrid(lat, lon, indexing="ij")
    np.testing.assert_allclose(graph.pos.double().numpy(),
                               lonlat_to_vec(lon_grid.ravel(), lat_grid.ravel()), atol=1e-6)
    np.testing.assert_allclose(source.read(1, ["t2m"])[:, 0], graph_values(graph) + 1,
                               atol=1e-5)


@pytest.mark.parametrize("kind", ["irregular_lat", "offset_lon"])
def test_global_grids_off_the_families_are_points(tmp_path, kind):
    lat, lon = equiangular_grid(8, 16, grid="soft")
    if kind == "irregular_lat":
        lat = lat + np.linspace(0.0, 1.0, lat.size)
    else:
        lon = lon + 11.25  # half a step
    source = GridSource([save(dataset(lat, lon), tmp_path / "a.nc")])
    assert source.grid == "points" and source.num_nodes == 128
    graph = source.hierarchy(1)[0]
    np.testing.assert_allclose(source.read(0, ["t2m"])[:, 0], graph_values(graph), atol=1e-5)


def test_points_grid_with_a_pole_row_makes_one_pole_node(tmp_path):
    lat, lon = np.array([90.0, 80.0, 70.0, 60.0]), np.arange(0.0, 90.0, 10.0)
    source = GridSource([save(dataset(lat, lon), tmp_path / "a.nc")])
    assert source.grid == "points" and source.num_nodes == 1 + 3 * 9
    graph = source.hierarchy(1)[0]
    np.testing.assert_allclose(source.read(0, ["t2m"])[:, 0], graph_values(graph), atol=1e-5)


# ------------------------------------------------------------------ region, mask, NaN
def test_region_keeps_the_cells_inside(tmp_path):
    lat, lon = convention(*equiangular_grid(8, 16, grid="driscoll-healy"), "all")
    region = [-30.0, 100.0, -20.0, 90.0]
    source = GridSource([save(dataset(lat, lon), tmp_path / "a.nc")], region=region)
    expected = equiangular_graph(8, 16, grid="driscoll-healy", region=region)
    graph = source.hierarchy(2)[0]
    assert source.num_nodes == graph.num_nodes == expected.num_nodes < 113
    np.testing.assert_allclose(graph.pos.numpy(), expected.pos.numpy())
    np.testing.assert_allclose(source.read(0, ["t2m"])[:, 0], graph_values(graph), atol=1e-5)


def test_region_on_a_points_grid(tmp_path):
    lat, lon = np.arange(30.0, 61.0, 2.0), np.arange(-10.0, 21.0, 2.0)
    source = GridSource([save(dataset(lat, lon), tmp_path / "a.nc")],
                        region=(0.0, 10.0, 40.0, 50.0))
    assert source.num_nodes == 6 * 6
    graph = source.hierarchy(1)[0]
    np.testing.assert_allclose(source.read(0, ["t2m"])[:, 0], graph_values(graph), atol=1e-5)


def test_mask_variable_first_step_finite_nonzero_cells(tmp_path):
    lat, lon = equiangular_grid(8, 16, grid="soft")
    ds = dataset(lat, lon)
    land = np.zeros((3, 8, 16))
    land[0, 2:6, 3:12] = 1.0
    land[0, 3, 5] = np.nan  # not kept
    land[1:] = 1.0  # later steps ignored
    ds["lsm"] = (("time", "lat", "lon"), land)
    source = GridSource([save(ds, tmp_path / "a.nc")], mask_variable="lsm")
    assert source.num_nodes == 4 * 9 - 1
    graph = source.hierarchy(1)[0]
    np.testing.assert_allclose(source.read(0, ["t2m"])[:, 0], graph_values(graph), atol=1e-5)
    both = GridSource([tmp_path / "a.nc"], mask_variable="lsm", region=[0, 360, 0, 90])
    assert both.num_nodes == 2 * 9 - 1  # rows at 33.75 and 11.25 degrees north


def test_nan_values_on_nodes_stay_nan(tmp_path):
    lat, lon = equiangular_grid(8, 16, grid="driscoll-healy")
    ds = dataset(lat, lon)
    ds["t2m"][1] = ds["t2m"][1].where(ds.lat < 40.0)
    source = GridSource([save(ds, tmp_path / "a.nc")])
    graph = source.hierarchy(1)[0]
    north = graph.pos[:, 2].numpy() > np.sin(np.radians(40.0))
    values = source.read(1, ["t2m"])[:, 0]
    assert np.isnan(values[north]).all() and np.isfinite(values[~north]).all()
    assert np.isfinite(source.read(0, ["t2m"])).all()


# ------------------------------------------------------------------ samples and files
def test_several_files_joined_and_sorted_by_time(tmp_path):
    lat, lon = equiangular_grid(8, 16, grid="soft")
    late = save(dataset(lat, lon, times=TIMES + np.timedelta64(1, "D")), tmp_path / "b.nc")
    early = save(dataset(lat, lon, times=TIMES), tmp_path / "a.nc")
    source = GridSource([late, early])
    assert source.num_samples == 6
    np.testing.assert_array_equal(source.keys, np.concatenate([TIMES, TIMES + np.timedelta64(
        1, "D")]))
    assert source.names[:2] == ["2020-01-01T00", "2020-01-01T06"]
    assert source.names[3] == "2020-01-02T00"
    graph = source.hierarchy(1)[0]
    for index, step in enumerate([0, 1, 2, 0, 1, 2]):
        np.testing.assert_allclose(source.read(index, ["t2m"])[:, 0],
                                   graph_values(graph) + step, atol=1e-5)


def test_files_without_time_are_one_sample_each(tmp_path):
    lat, lon = equiangular_grid(8, 16, grid="soft")
    paths = [save(dataset(lat, lon, times=None), tmp_path / f"{i}.nc") for i in range(2)]
    source = GridSource(paths)
    assert source.num_samples == 2 and source.names == ["sample_0", "sample_1"]
    np.testing.assert_array_equal(source.keys, [0, 1])
    assert source.read(1, ["t2m"]).shape == (128, 1)


def test_time_name_and_latitude_longitude_names(tmp_path):
    lat, lon = equiangular_grid(8, 16, grid="soft")
    ds = dataset(lat, lon, lat_name="latitude", lon_name="longitude")
    ds = ds.rename(time="valid")
    source = GridSource([save(ds, tmp_path / "a.nc")], time_name="valid")
    assert source.num_samples == 3 and source.grid == "soft"
    assert source.lat_name == "latitude" and source.lon_name == "longitude"
    assert GridSource([tmp_path / "a.nc"]).num_samples == 1  # "valid" is not a default name


def test_zarr_input_and_output(tmp_path):
    lat, lon = convention(*equiangular_grid(8, 16, grid="soft"), "all")
    source = GridSource([save(dataset(lat, lon), tmp_path / "in.zarr")], region=[0, 90, -90, 0])
    assert source.format == "zarr"
    graph = source.hierarchy(1)[0]
    values = np.stack([source.read(i, ["t2m"]) for i in range(3)])
    np.testing.assert_allclose(values[0, :, 0], graph_values(graph), atol=1e-5)
    out = tmp_path / "out"
    out.mkdir()
    for _ in range(2):  # the second write replaces the first
        (path,) = source.write(values, [0, 1, 2], ["t2m_prediction"], out)
    assert path == out / "predictions.zarr" and sorted(p.name for p in out.iterdir()) == [
        "predictions.zarr"]
    result = xr.open_dataset(path, engine="zarr")
    np.testing.assert_array_equal(result.lat.values, lat)
    np.testing.assert_array_equal(result.lon.values, lon)
    assert result.t2m_prediction.attrs == {"units": "K"}
    back = result.t2m_prediction.values
    cells = source.nodes.node_grid()
    np.testing.assert_array_equal(np.isnan(back), np.broadcast_to(~cells, back.shape))


def test_write_round_trip_keeps_the_input_coordinates(tmp_path):
    lat, lon = convention(*equiangular_grid(9, 16, grid="clenshaw-curtis"), "all")
    ds = dataset(lat, lon, attrs={"title": "round trip", "institution": "here"})
    ds.lat.attrs["units"] = "degrees_north"
    path = save(ds, tmp_path / "a.nc")
    source = GridSource([path], region=[-100, 60, -90, 30])
    indices = [2, 0]
    values = np.stack([np.concatenate([source.read(i, ["t2m"]), np.full((source.num_nodes, 1),
                                       7.0, np.float32)], axis=1) for i in indices])
    (written,) = source.write(values, indices, ["t2m_prediction", "class"], tmp_path)
    assert written == tmp_path / "predictions.nc"
    with xr.open_dataset(path) as original, xr.open_dataset(written) as result:
        for name in ("lat", "lon"):
            np.testing.assert_array_equal(result[name].values, original[name].values)
            assert result[name].dtype == original[name].dtype
            assert result[name].attrs == original[name].attrs
        np.testing.assert_array_equal(result.time.values, TIMES[indices])
        assert result.t2m_prediction.dims == ("time", "lat", "lon")
        assert result.t2m_prediction.attrs == {"units": "K"}
        assert result["class"].attrs == {}
        assert result.attrs == {"title": "round trip", "institution": "here"}
        cells = source.nodes.node_grid()
        truth = original.t2m.transpose("time", "lat", "lon").values[indices]
        got = result.t2m_prediction.values
        np.testing.assert_allclose(got[:, cells], truth[:, cells], atol=1e-5)
        assert np.isnan(got[:, ~cells]).all()
        assert np.isnan(result["class"].values[:, ~cells]).all()
        assert (result["class"].values[:, cells] == 7.0).all()


def test_pickled_source_reads_the_same(tmp_path):
    lat, lon = equiangular_grid(8, 16, grid="soft")
    source = GridSource([save(dataset(lat, lon), tmp_path / "a.nc")])
    copy = pickle.loads(pickle.dumps(source))
    np.testing.assert_array_equal(copy.read(1, ["t2m"]), source.read(1, ["t2m"]))


def test_options_and_name():
    assert GridSource.name == "grid"
    assert GridSource.options == {"region": None, "mask_variable": None, "lat_name": None,
                                  "lon_name": None, "time_name": None}


# ------------------------------------------------------------------ errors
@pytest.fixture
def grid():
    return equiangular_grid(8, 16, grid="soft")


def test_extra_dimension_is_refused_with_sel_hint(tmp_path, grid):
    ds = dataset(*grid)
    ds["t"] = ds.t2m.expand_dims(level=[850, 500]).copy()
    ds["q"] = ds.t2m.expand_dims(member=[0]).copy()  # size 1: fine
    source = GridSource([save(ds, tmp_path / "a.nc")])
    with pytest.raises(ValueError, match=r"'t' .*dimension 'level' \(size 2\).*sel\(level="):
        source.read(0, ["t"])
    with pytest.raises(ValueError, match="data.inputs: the variable 't'"):
        source.check_variables(["t2m", "t"], "data.inputs")
    np.testing.assert_array_equal(source.read(0, ["q"]), source.read(0, ["t2m"]))


def test_unknown_variable(tmp_path, grid):
    source = GridSource([save(dataset(*grid), tmp_path / "a.nc")])
    with pytest.raises(ValueError, match=r"'sst' is not in the files.*t2m"):
        source.read(0, ["sst"])


def test_missing_coordinates_list_what_was_found(tmp_path, grid):
    ds = dataset(*grid).rename(lat="y", lon="x")
    path = save(ds, tmp_path / "a.nc")
    with pytest.raises(ValueError, match=r"no latitude coordinate.*'y'.*lat_name="):
        GridSource([path])
    with pytest.raises(ValueError, match=r"no longitude coordinate.*'x'.*lon_name="):
        GridSource([path], lat_name="y")
    assert GridSource([path], lat_name="y", lon_name="x").grid == "soft"
    with pytest.raises(ValueError, match=r"lat_name='phi' is not in"):
        GridSource([path], lat_name="phi")


@pytest.mark.parametrize("coordinate, values, message", [
    ("lat", lambda lat: lat[[0, 2, 1, 3, 4, 5, 6, 7]], r"'lat' is not monotonic.*sortby"),
    ("lat", lambda lat: lat[[0, 1, 1, 3, 4, 5, 6, 7]], r"'lat' has duplicated"),
    ("lon", lambda lon: np.concatenate([lon[:15], [360.0]]), r"'lon' has duplicated"),
    ("lon", lambda lon: lon[[0, 2, 1] + list(range(3, 16))], r"'lon' is not monotonic"),
])
def test_bad_coordinates(tmp_path, grid, coordinate, values, message):
    lat, lon = grid
    if coordinate == "lat":
        lat = values(lat)
    else:
        lon = values(lon)
    with pytest.raises(ValueError, match=message):
        GridSource([save(dataset(lat, lon), tmp_path / "a.nc")])


@pytest.mark.parametrize("times, message", [
    (TIMES[[0, 2, 1]], r"a\.nc is not increasing.*sortby"),
    (TIMES[[0, 1, 1]], r"a\.nc has duplicated times.*drop_duplicates"),
])
def test_bad_time_axis(tmp_path, grid, times, message):
    with pytest.raises(ValueError, match=message):
        GridSource([save(dataset(*grid, times=times), tmp_path / "a.nc")])


def test_time_in_two_files(tmp_path, grid):
    first = save(dataset(*grid), tmp_path / "a.nc")
    second = save(dataset(*grid, times=TIMES[2:]), tmp_path / "b.nc")
    with pytest.raises(ValueError, match=r"a\.nc and in .*b\.nc.*drop_duplicates"):
        GridSource([first, second])


def test_files_on_different_grids(tmp_path, grid):
    first = save(dataset(*grid), tmp_path / "a.nc")
    second = save(dataset(*equiangular_grid(8, 16, grid="gauss-legendre")), tmp_path / "b.nc")
    with pytest.raises(ValueError, match=r"'lat' coordinate of .*b\.nc differs"):
        GridSource([first, second])


def test_too_many_levels_names_the_grid_and_the_limit(tmp_path, grid):
    source = GridSource([save(dataset(*grid), tmp_path / "a.nc")])
    with pytest.raises(ValueError, match=r"8 x 16 soft grid .* 4 levels: at most 3"):
        source.hierarchy(4)


def test_bad_mask_variable_and_region(tmp_path, grid):
    path = save(dataset(*grid), tmp_path / "a.nc")
    with pytest.raises(ValueError, match=r"mask_variable: 'lsm' is not in the files"):
        GridSource([path], mask_variable="lsm")
    with pytest.raises(ValueError, match="region"):
        GridSource([path], region=[0, 10, 50, 40])
    with pytest.raises(ValueError, match="keep"):
        GridSource([path], region=[0, 10, 89.9, 90])


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.nc"):
        GridSource([tmp_path / "missing.nc"])


def test_missing_xarray_asks_for_the_files_extra(tmp_path, grid, monkeypatch):
    path = save(dataset(*grid), tmp_path / "a.nc")
    monkeypatch.setitem(sys.modules, "xarray", None)
    with pytest.raises(ImportError, match=r'pip install "deepsphere-pyg\[files\]"'):
        GridSource([path])
