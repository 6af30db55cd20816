"""The ``files`` experiment end to end: a user's files -> train one epoch -> predict ->
the predictions read back in the input's format."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from deepsphere_pyg.cli import main
from deepsphere_pyg.training import resolve_config

pd = pytest.importorskip("pandas")

ONE_EPOCH = {"epochs": 1, "progress": False, "batch_size": 4}


def _write_config(path, data, graph=None, model=None):
    content = {"experiment": "files", "data": data, "graph": graph or {"levels": 2},
               "train": ONE_EPOCH}
    if model:
        content["model"] = model
    path.write_text(yaml.safe_dump(content))
    return path


def _stations_table(path, stations=150, steps=48, seed=0):
    rng = np.random.default_rng(seed)
    lon = rng.uniform(-180, 180, stations)
    lat = np.degrees(np.arcsin(rng.uniform(-1, 1, stations)))
    times = pd.date_range("2021-01-01", periods=steps, freq="6h")
    rows = []
    for step, time in enumerate(times):
        for station in range(stations):
            if rng.random() < 0.05:  # a station that did not report
                continue
            value = np.sin(np.radians(lon[station]) + 0.3 * step) * np.cos(
                np.radians(lat[station]))
            rows.append({"station": f"S{station:03d}", "lon": lon[station],
                         "lat": lat[station], "time": time.isoformat(), "t2m": value,
                         "pressure": 2 * value + 1})
    pd.DataFrame(rows).to_csv(path, index=False)
    return pd.DataFrame(rows)


def test_station_forecast_trains_and_predicts_a_table(tmp_path):
    table = _stations_table(tmp_path / "stations.csv")
    config = _write_config(tmp_path / "stations.yaml", {
        "source": "stations", "path": str(tmp_path / "stations.csv"),
        "inputs": ["t2m", "pressure"], "target": "t2m", "lead": 1, "history": 2})
    resolved = resolve_config(config_files=[str(config)])
    assert resolved["model"]["name"] == "unet"
    run = tmp_path / "run"
    assert main(["train", "--config", str(config), "--output", str(run),
                 "--no-figures"]) == 0
    stored = yaml.safe_load((run / "config.yaml").read_text())
    assert stored["data"]["inputs"] == ["t2m", "pressure"]
    assert len(stored["data"]["normalization"]["mean"]) == 4  # 2 variables x 2 steps
    assert main(["predict", str(run), str(tmp_path / "stations.csv"), "--output",
                 str(tmp_path / "out")]) == 0
    written = pd.read_csv(tmp_path / "out" / "predictions.csv")
    assert set(written.columns) == {"station", "lon", "lat", "time", "t2m_prediction"}
    # Every station, at every time with one step of history before it.
    times = sorted(table["time"].unique())[1:]
    assert len(written) == table["station"].nunique() * len(times)
    assert sorted(pd.to_datetime(written["time"]).unique()) == list(pd.to_datetime(times))
    first = written.drop_duplicates("station").set_index("station")
    stations = table.drop_duplicates("station").set_index("station")
    np.testing.assert_allclose(first.loc[stations.index, "lon"], stations["lon"])
    assert np.isfinite(written["t2m_prediction"]).mean() > 0.8


def test_station_labels_train_a_classifier(tmp_path):
    _stations_table(tmp_path / "stations.csv", steps=20)
    labels = np.arange(20) % 2
    np.savetxt(tmp_path / "labels.txt", labels, fmt="%d")
    config = _write_config(tmp_path / "classes.yaml", {
        "source": "stations", "path": str(tmp_path / "stations.csv"),
        "labels": str(tmp_path / "labels.txt"), "class_names": ["calm", "storm"]},
        model={"channels": [4, 8]})
    resolved = resolve_config(config_files=[str(config)])
    assert resolved["model"]["name"] == "deepsphere"  # the classification default
    run = tmp_path / "run"
    assert main(["train", "--config", str(config), "--output", str(run),
                 "--no-figures"]) == 0
    assert yaml.safe_load((run / "config.yaml").read_text())["data"]["num_classes"] == 2
    assert main(["predict", str(run), str(tmp_path / "stations.csv"), "--output",
                 str(tmp_path / "out")]) == 0
    rows = pd.read_csv(tmp_path / "out" / "predictions.csv")
    assert len(rows) == 20 and set(rows["name"]) <= {"calm", "storm"}


def test_configuration_errors_name_the_key(tmp_path, capsys):
    _stations_table(tmp_path / "stations.csv", steps=6)
    config = _write_config(tmp_path / "bad.yaml", {
        "source": "stations", "path": str(tmp_path / "stations.csv"), "target": "t3m"})
    assert main(["train", "--config", str(config), "--output", str(tmp_path / "run")]) != 0
    assert "data.target: 't3m' is not in the files" in capsys.readouterr().err
    assert not (tmp_path / "run" / "checkpoints").exists()


def _grid_file(path, steps=16):
    xr = pytest.importorskip("xarray")
    # A 16 x 32 lat-lon grid without poles (cell centres), latitudes south to north and
    # longitudes -180..180, as many reanalysis files are.
    lat = -90 + 180 * (np.arange(16) + 0.5) / 16
    lon = -180 + 360 * np.arange(32) / 32
    time = pd.date_range("2020-01-01", periods=steps, freq="D")
    phase = np.arange(steps)[:, None, None]
    t2m = (np.cos(np.radians(lat))[None, :, None] * np.sin(np.radians(lon)[None, None, :]
                                                              + 0.4 * phase)).astype("f4")
    t2m[3, 2, 5] = np.nan  # a missing value
    land = (np.sin(np.radians(lon))[None, :] > 0).astype("f4") * np.ones((16, 1), "f4")
    dataset = xr.Dataset({"t2m": (("time", "lat", "lon"), t2m, {"units": "K"}),
                          "land": (("lat", "lon"), land)},
                         coords={"time": time, "lat": lat, "lon": lon},
                         attrs={"title": "test field"})
    dataset.to_netcdf(path)
    return dataset


def test_grid_forecast_trains_and_predicts_a_netcdf_dataset(tmp_path):
    xr = pytest.importorskip("xarray")
    source = _grid_file(tmp_path / "field.nc")
    config = _write_config(tmp_path / "grid.yaml", {
        "source": "grid", "path": str(tmp_path / "field.nc"), "inputs": ["t2m"],
        "lead": 1, "splits": {"train": [None, "2020-01-11"], "val": ["2020-01-11",
                                                                     "2020-01-13"],
                              "test": ["2020-01-13", None]}},
        model={"channels": [4, 8]})
    run = tmp_path / "run"
    assert main(["train", "--config", str(config), "--output", str(run),
                 "--no-figures"]) == 0
    assert main(["predict", str(run), str(tmp_path / "field.nc"), "--output",
                 str(tmp_path / "out")]) == 0
    written = xr.open_dataset(tmp_path / "out" / "predictions.nc")
    np.testing.assert_array_equal(written["lat"].values, source["lat"].values)
    np.testing.assert_array_equal(written["lon"].values, source["lon"].values)
    np.testing.assert_array_equal(written["time"].values, source["time"].values)
    prediction = written["t2m_prediction"].values
    assert prediction.shape == (16, 16, 32)
    assert np.isnan(prediction[3, 2, 5]) and np.isfinite(prediction).mean() > 0.99
    assert written["t2m_prediction"].attrs.get("units") == "K"
    assert written.attrs.get("title") == "test field"


def test_grid_segmentation_on_a_masked_region(tmp_path):
    xr = pytest.importorskip("xarray")
    _grid_file(tmp_path / "field.nc")
    config = _write_config(tmp_path / "grid.yaml", {
        "source": "grid", "path": str(tmp_path / "field.nc"), "inputs": ["t2m"],
        "target": "land", "num_classes": 2, "region": [-100, 100, -60, 60]},
        graph={"levels": 1}, model={"channels": [4]})
    run = tmp_path / "run"
    assert main(["train", "--config", str(config), "--output", str(run),
                 "--no-figures"]) == 0
    assert main(["predict", str(run), str(tmp_path / "field.nc"), "--output",
                 str(tmp_path / "out")]) == 0
    written = xr.open_dataset(tmp_path / "out" / "predictions.nc")["class"].values
    lat = -90 + 180 * (np.arange(16) + 0.5) / 16
    lon = -180 + 360 * np.arange(32) / 32
    inside = (np.abs(lat)[:, None] <= 60) & (np.abs(lon)[None, :] <= 100)
    assert np.isnan(written[:, ~inside]).all()
    assert set(np.unique(written[:, inside & ~np.isnan(written[0])])) <= {0.0, 1.0}


def test_healpix_fits_maps_with_labels_and_a_mask(tmp_path, capsys):
    hp = pytest.importorskip("healpy")
    nside, maps = 16, 12
    rng = np.random.default_rng(3)
    npix = hp.nside2npix(nside)
    theta, _ = hp.pix2ang(nside, np.arange(npix))  # RING order, healpy's default
    footprint = (np.abs(90 - np.degrees(theta)) > 20).astype(np.float64)
    hp.write_map(str(tmp_path / "footprint.fits"), footprint, dtype=np.float64)
    labels = np.arange(maps) % 2
    for index in range(maps):
        signal = rng.normal(size=npix) * (1 + labels[index])
        hp.write_map(str(tmp_path / f"map_{index:02d}.fits"), [signal, signal**2],
                     column_names=["TEMPERATURE", "POWER"], dtype=np.float64)
    (tmp_path / "labels.csv").write_text("label\n" + "\n".join(map(str, labels)) + "\n")
    config = _write_config(tmp_path / "healpix.yaml", {
        "source": "healpix", "path": str(tmp_path / "map_*.fits"), "inputs": ["TEMPERATURE"],
        "labels": str(tmp_path / "labels.csv"), "mask": str(tmp_path / "footprint.fits"),
        "splits": {"train": 0.5, "val": 0.25, "test": 0.25}}, model={"channels": [4, 8]})
    run = tmp_path / "run"
    assert main(["train", "--config", str(config), "--output", str(run),
                 "--no-figures"]) == 0
    (tmp_path / "footprint.fits").rename(tmp_path / "moved.fits")
    maps_in = sorted(map(str, tmp_path.glob("map_*.fits")))
    assert main(["predict", str(run), *maps_in, "--output", str(tmp_path / "out")]) == 2
    assert "predict --set data.mask" in capsys.readouterr().err
    assert main(["predict", str(run), *maps_in, "--output", str(tmp_path / "out"),
                 "--set", f"data.mask={tmp_path / 'moved.fits'}"]) == 0
    assert main(["predict", str(run), *maps_in, "--set", "data.inputs=[POWER]"]) == 2
    assert "only data keys that say how to read" in capsys.readouterr().err
    rows = pd.read_csv(tmp_path / "out" / "predictions.csv")
    assert rows["input"].tolist() == [f"map_{index:02d}" for index in range(maps)]
    assert set(rows["class"]) <= {0, 1}


def test_healsparse_partial_sky_regression_writes_healsparse_maps(tmp_path):
    healsparse = pytest.importorskip("healsparse")
    hp = pytest.importorskip("healpy")
    nside, maps = 32, 8
    rng = np.random.default_rng(4)
    pixels = hp.query_disc(nside, hp.ang2vec(40.0, 20.0, lonlat=True), np.radians(25),
                           nest=True)
    for index in range(maps):
        record = np.zeros(pixels.size, dtype=[("g1", "f4"), ("kappa", "f4")])
        record["g1"] = rng.normal(size=pixels.size)
        record["kappa"] = 0.5 * record["g1"] + 0.1 * rng.normal(size=pixels.size)
        sparse = healsparse.HealSparseMap.make_empty(8, nside, dtype=record.dtype,
                                                     primary="g1")
        sparse[pixels] = record
        sparse.write(str(tmp_path / f"tile_{index}.hsp"))
    config = _write_config(tmp_path / "hs.yaml", {
        "source": "healpix", "path": str(tmp_path / "tile_*.hsp"), "inputs": ["g1"],
        "target": "kappa", "splits": {"train": 0.5, "val": 0.25, "test": 0.25}},
        model={"channels": [4, 8]})
    run = tmp_path / "run"
    assert main(["train", "--config", str(config), "--output", str(run),
                 "--no-figures"]) == 0
    assert main(["predict", str(run), str(tmp_path / "tile_0.hsp"), "--output",
                 str(tmp_path / "out")]) == 0
    written = healsparse.HealSparseMap.read(str(tmp_path / "out" / "tile_0_prediction.hsp"))
    np.testing.assert_array_equal(np.sort(written.valid_pixels), np.sort(pixels))
    assert np.isfinite(written[np.sort(pixels)]).all()


def test_paths_are_stored_absolute_and_resume_accepts_the_same_config(tmp_path,
                                                                      monkeypatch):
    _stations_table(tmp_path / "stations.csv", steps=20)
    monkeypatch.chdir(tmp_path)
    _write_config(tmp_path / "st.yaml", {
        "source": "stations", "path": "stat*.csv", "inputs": ["pressure"],
        "target": "t2m"})
    resolved = resolve_config(config_files=["st.yaml"])
    assert resolved["data"]["path"] == [str(tmp_path / "stations.csv")]
    assert main(["train", "--config", "st.yaml", "--output", "run", "--no-figures"]) == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["train", "--output", str(tmp_path / "run"), "--resume", "--set",
                 "train.epochs=2", "--no-figures"]) == 0
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--config", "st.yaml", "--output", "run", "--resume", "--set",
                 "train.epochs=3", "--no-figures"]) == 0
