"""Station tables (CSV / Parquet) as samples on a points graph: StationSource."""

import sys

import numpy as np
import pandas as pd
import pytest

from deepsphere_pyg.data.sources.stations import StationSource
from deepsphere_pyg.graphs.lonlat import lonlat_to_vec

TIMES = pd.date_range("2021-03-01", periods=4, freq="6h")


def network(n=40, seed=0):
    """Station ids (text, unsorted, one with a leading zero) and their coordinates."""
    rng = np.random.default_rng(seed)
    ids = [f"{i:05d}" if i == 7 else f"S{i:03d}" for i in rng.permutation(n)]
    lon = rng.uniform(-180.0, 180.0, n)
    lat = np.degrees(np.arcsin(rng.uniform(-0.95, 0.95, n)))
    return ids, lon, lat


def long_table(n=40, seed=0, drop=0.2):
    """Long table: rows per (station, time), some (station, time) rows left out, some
    empty cells; columns station, lon, lat, time, t2m, wind, name (text)."""
    rng = np.random.default_rng(seed + 1)
    ids, lon, lat = network(n, seed)
    rows = []
    for time in TIMES:
        for i in range(n):
            if rng.random() < drop:
                continue
            rows.append({"station": ids[i], "lon": lon[i], "lat": lat[i],
                         "time": time.isoformat(), "t2m": rng.normal(280, 5),
                         "wind": rng.normal(5, 2) if rng.random() > 0.1 else np.nan,
                         "name": f"town {i}"})
    return pd.DataFrame(rows)


def expected(source, frame, variables, station="station", time="time"):
    """[M, N, C] values of ``frame`` in the source's sample and node order."""
    out = np.full((source.num_samples, source.num_nodes, len(variables)), np.nan)
    node = {sid: source.node_of_station[i] for i, sid in enumerate(source.station_ids)}
    keys = list(source.keys)
    for _, row in frame.iterrows():
        m = keys.index(np.datetime64(pd.Timestamp(row[time]), "ns")) if time else 0
        out[m, node[str(row[station])]] = row[list(variables)].to_numpy(float)
    return out


def check_read(source, frame, variables=("t2m", "wind"), **names):
    want = expected(source, frame, variables, **names)
    for m in range(source.num_samples):
        got = source.read(m, list(variables))
        assert got.dtype == np.float32 and got.shape == (source.num_nodes, len(variables))
        np.testing.assert_allclose(got, want[m], rtol=1e-6)


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz", ".parquet"])
def test_long_table(tmp_path, suffix):
    frame = long_table()
    path = tmp_path / f"obs{suffix}"
    if suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)
    source = StationSource([path])
    assert source.layout == "long"
    assert source.variables == ("t2m", "wind")  # the text column is ignored
    assert source.num_samples == 4 and source.num_nodes == 40
    np.testing.assert_array_equal(source.keys, TIMES.to_numpy().astype("datetime64[ns]"))
    assert source.names == ["2021-03-01T00:00", "2021-03-01T06:00", "2021-03-01T12:00",
                            "2021-03-01T18:00"]
    # Stations sorted by id; the leading zero of a CSV id is kept.
    assert list(source.station_ids) == sorted(set(frame.station))
    assert "00007" in list(source.station_ids)
    # Stations missing at a time (and empty cells) are NaN; values at the right nodes.
    assert np.isnan(source.read(0, ["t2m"])).any()
    check_read(source, frame)
    with pytest.raises(ValueError, match="not in the files"):
        source.read(0, ["name"])


def test_several_files_and_custom_columns(tmp_path):
    frame = long_table().rename(columns={"station": "WMO", "lon": "X", "lat": "Y",
                                         "time": "valid"})
    first, second = frame.iloc[: len(frame) // 2], frame.iloc[len(frame) // 2:]
    first.to_csv(tmp_path / "a.csv", index=False)
    second.to_parquet(tmp_path / "b.parquet", index=False)
    columns = {"station": "wmo", "lon": "X", "lat": "Y", "time": "valid"}
    source = StationSource([tmp_path / "a.csv", tmp_path / "b.parquet"], columns=columns)
    assert source.column_names == {"station": "WMO", "lon": "X", "lat": "Y", "time": "valid"}
    assert source.num_samples == 4 and source.num_nodes == 40
    check_read(source, frame, station="WMO", time="valid")


def test_default_names_any_case_and_numeric_ids(tmp_path):
    ids, lon, lat = network(12)
    frame = pd.DataFrame({"ID": np.arange(12)[::-1] * 5, "Longitude": lon, "LATITUDE": lat,
                          "Date": "2020-05-01", "rain": np.arange(12.0)})
    frame.to_parquet(tmp_path / "t.pq", index=False)
    source = StationSource([tmp_path / "t.pq"])
    assert source.station_ids.dtype == np.int64
    np.testing.assert_array_equal(source.station_ids, np.arange(12) * 5)
    np.testing.assert_allclose(source.read(0, ["rain"])[:, 0], np.arange(12.0)[::-1])
    assert source.names == ["2020-05-01"]


def test_wide_layout(tmp_path):
    ids, lon, lat = network(15)
    frame = pd.DataFrame({"station": ids, "lon": lon, "lat": lat, "t2m": np.arange(15.0),
                          "wind": np.nan})
    frame.to_csv(tmp_path / "climatology.csv", index=False)
    source = StationSource([tmp_path / "climatology.csv"])
    assert source.layout == "wide" and source.num_samples == 1
    np.testing.assert_array_equal(source.keys, [0])
    assert source.names == ["climatology"]
    check_read(source, frame, time=None)
    with pytest.raises(ValueError, match="no time column.*data.columns"):
        StationSource([tmp_path / "climatology.csv"], layout="long")


def test_missing_column(tmp_path):
    frame = long_table().drop(columns="lat")
    frame.to_csv(tmp_path / "obs.csv", index=False)
    with pytest.raises(ValueError, match=r"obs\.csv: no lat column.*'lon', 'time'.*"
                                         r"data\.columns"):
        StationSource([tmp_path / "obs.csv"])
    with pytest.raises(ValueError, match="no station column \\('code'\\)"):
        StationSource([tmp_path / "obs.csv"], columns={"station": "code"})
    with pytest.raises(ValueError, match="unknown key"):
        StationSource([tmp_path / "obs.csv"], columns={"height": "z"})


def test_changing_position(tmp_path):
    frame = long_table(drop=0.0)
    row = frame.index[frame.station == frame.station[3]][2]
    frame.loc[row, "lat"] += 0.5
    frame.to_csv(tmp_path / "obs.csv", index=False)
    with pytest.raises(ValueError, match=f"station '{frame.station[3]}' changes position"):
        StationSource([tmp_path / "obs.csv"])


def test_duplicated_station_time(tmp_path):
    frame = long_table(drop=0.0)
    frame = pd.concat([frame, frame.iloc[[5]]], ignore_index=True)
    frame.to_csv(tmp_path / "obs.csv", index=False)
    time = pd.Timestamp(frame.time[5]).strftime("%Y-%m-%dT%H:%M")
    with pytest.raises(ValueError, match=f"'{frame.station[5]}' has several rows at time "
                                         f"{time}"):
        StationSource([tmp_path / "obs.csv"])


def duplicated_network(tmp_path, offset=1e-5):
    """12 stations in long form; ``B`` is ``offset`` degrees from ``A``."""
    ids, lon, lat = network(12)
    ids = ["A", "B"] + ids[2:]
    lon[1], lat[1] = lon[0], lat[0] + offset
    rows = []
    for m, time in enumerate(TIMES[:2]):
        for i in range(12):
            rows.append({"station": ids[i], "lon": lon[i], "lat": lat[i], "time": time,
                         "t2m": float(10 * m + i)})
    frame = pd.DataFrame(rows)
    frame = frame[~((frame.station == "A") & (frame.time == TIMES[1]))]  # A absent at 1
    frame.to_parquet(tmp_path / "obs.parquet", index=False)
    return tmp_path / "obs.parquet", frame


def test_duplicated_position_raise(tmp_path):
    path, _ = duplicated_network(tmp_path)
    with pytest.raises(ValueError, match="'A' and 'B' at .*data.duplicates: merge"):
        StationSource([path])
    # 0.001 degree apart: separate by default, duplicates for merge_distance=0.01.
    path, _ = duplicated_network(tmp_path, offset=1e-3)
    assert StationSource([path]).num_nodes == 12
    with pytest.raises(ValueError, match="merge_distance=0.01 degrees: 'A' and 'B' at"):
        StationSource([path], merge_distance=0.01)
    assert StationSource([path], duplicates="merge", merge_distance=0.01).num_nodes == 11


def test_duplicated_position_merge(tmp_path):
    path, frame = duplicated_network(tmp_path)
    source = StationSource([path], duplicates="merge")
    assert source.num_nodes == 11 and source.station_ids.size == 12
    ids = list(source.station_ids)
    a, b = ids.index("A"), ids.index("B")
    node = source.node_of_station[a]
    assert source.node_of_station[b] == node
    others = [i for i in range(12) if i not in (a, b)]
    assert len(set(source.node_of_station[others])) == 10
    t2m = [source.read(m, ["t2m"])[:, 0] for m in range(2)]
    assert t2m[0][node] == pytest.approx(0.5)  # mean of A (0) and B (1)
    assert t2m[1][node] == pytest.approx(11.0)  # only B at time 1
    want = frame[frame.time == TIMES[1]].set_index("station").t2m
    for i in others:
        assert t2m[1][source.node_of_station[i]] == want[ids[i]]
    hierarchy = source.hierarchy(2, k=4)
    assert hierarchy.graphs[0].num_nodes == 11
    # One row per original station with its merged node's prediction.
    written = source.write(np.stack(t2m)[:, :, None], [0, 1], ["pred"], tmp_path)
    back = pd.read_parquet(written[0])
    assert len(back) == 24 and list(back.station[:12]) == list(source.station_ids)
    np.testing.assert_allclose(back.pred[[a, b]], [0.5, 0.5])
    np.testing.assert_allclose(back.lat[[a, b]], source.station_lat[[a, b]])


def test_hierarchy_nodes_are_the_stations(tmp_path):
    ids, lon, lat = network(200)
    frame = pd.DataFrame({"station": ids, "lon": lon, "lat": lat, "t2m": lat})
    frame.to_csv(tmp_path / "stations.csv", index=False)
    source = StationSource([tmp_path / "stations.csv"])
    hierarchy = source.hierarchy(3, k=[6, 4, 3], kernel="global")
    assert len(hierarchy.graphs) == 3
    finest = hierarchy.graphs[0]
    assert finest.num_nodes == source.num_nodes == 200
    table = frame.set_index("station")
    order = list(source.station_ids)
    vec = lonlat_to_vec(table.lon[order].to_numpy(), table.lat[order].to_numpy())
    np.testing.assert_allclose(finest.pos.numpy(), vec, atol=1e-6)
    # read's node order is the graph's: t2m (= lat) matches the graph's latitudes.
    np.testing.assert_allclose(source.read(0, ["t2m"])[:, 0], finest.lat.numpy(), atol=1e-4)
    assert source.hierarchy(1).graphs[0].num_nodes == 200


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_write_round_trip(tmp_path, suffix):
    frame = long_table()
    path = tmp_path / f"obs{suffix}"
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path)
    source = StationSource([path])
    indices = [1, 3]
    values = np.stack([source.read(m, ["t2m"]) for m in indices])
    out = tmp_path / "out"
    out.mkdir()
    written = source.write(values, indices, ["t2m_prediction"], out)
    assert written == [out / f"predictions{suffix}"]
    assert sorted(p.name for p in out.iterdir()) == [f"predictions{suffix}"]
    back = (pd.read_csv(written[0], dtype={"station": str}) if suffix == ".csv"
            else pd.read_parquet(written[0]))
    assert list(back.columns) == ["station", "lon", "lat", "time", "t2m_prediction"]
    assert len(back) == 2 * 40  # every station at every predicted time
    back["time"] = pd.to_datetime(back.time)
    observed = frame.assign(time=pd.to_datetime(frame.time))
    merged = back.merge(observed, on=["station", "time"], how="left")
    assert set(back.time) == {TIMES[1], TIMES[3]}
    assert set(back.station) == set(frame.station)
    coords = frame.drop_duplicates("station").set_index("station")
    np.testing.assert_allclose(back.lon, coords.lon[back.station].to_numpy())
    np.testing.assert_allclose(back.lat, coords.lat[back.station].to_numpy())
    # Predictions equal to the input: the observed value, NaN where nothing was observed.
    np.testing.assert_allclose(merged.t2m_prediction, merged.t2m, rtol=1e-6)
    with pytest.raises(ValueError, match="shape"):
        source.write(values[:1], indices, ["t2m_prediction"], out)
    with pytest.raises(ValueError, match="clash"):
        source.write(values, indices, ["time"], out)


def test_bad_input(tmp_path):
    (tmp_path / "obs.txt").write_text("station,lon,lat\n")
    with pytest.raises(ValueError, match="not a station table"):
        StationSource([tmp_path / "obs.txt"])
    frame = long_table(n=10).assign(time=lambda f: np.arange(len(f)))
    frame.to_csv(tmp_path / "obs.csv", index=False)
    with pytest.raises(ValueError, match="holds numbers"):
        StationSource([tmp_path / "obs.csv"])
    with pytest.raises(ValueError, match="layout"):
        StationSource([tmp_path / "obs.csv"], layout="tall")
    with pytest.raises(ValueError, match="duplicates"):
        StationSource([tmp_path / "obs.csv"], duplicates="drop")


def test_times_with_offsets_and_mixed_id_types(tmp_path):
    ids, lon, lat = network(10)
    first = pd.DataFrame({"station": np.arange(10), "lon": lon, "lat": lat,
                          "time": "2020-01-01T01:00+01:00", "v": 1.0})
    second = first.assign(station=first.station.astype(str), time="2020-01-01T06:00Z",
                          v=2.0)
    first.to_parquet(tmp_path / "a.parquet")
    second.to_csv(tmp_path / "b.csv", index=False)
    source = StationSource([tmp_path / "a.parquet", tmp_path / "b.csv"])
    assert source.names == ["2020-01-01T00:00", "2020-01-01T06:00"]  # UTC
    assert list(source.station_ids) == [str(i) for i in range(10)]  # numeric order
    np.testing.assert_array_equal(source.read(1, ["v"]), 2.0)


def test_pandas_missing(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match=r'pip install "deepsphere-pyg\[files\]"'):
        StationSource([tmp_path / "obs.csv"])
