"""FileData on a small in-memory source: targets, forecasts, missing values, splits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from deepsphere_pyg.data.sources import dataset as dataset_module
from deepsphere_pyg.data.sources.base import FileSource
from deepsphere_pyg.data.sources.splits import split_indices
from deepsphere_pyg.graphs import SphereHierarchy

NODES, SAMPLES = 64, 20


class TableSource(FileSource):
    """Samples of a ``.npy`` file ``[M, N, V]`` on random points: variable ``v`` of sample
    ``m`` at node ``n`` is ``values[m, n, v]``."""

    name = "table"
    options: dict = {}

    def __init__(self, paths: list[Path]) -> None:
        self.values = np.load(paths[0])
        self.variables = tuple(f"v{index}" for index in range(self.values.shape[2]))
        self.dates = "daily" in paths[0].name  # one sample per day from 2020-01-01

    @property
    def num_samples(self) -> int:
        return self.values.shape[0]

    @property
    def keys(self) -> np.ndarray:
        if self.dates:
            return np.datetime64("2020-01-01") + np.arange(self.num_samples).astype(
                "timedelta64[D]")
        return np.arange(self.num_samples)

    @property
    def names(self) -> list[str]:
        return [f"sample_{index}" for index in range(self.num_samples)]

    @property
    def num_nodes(self) -> int:
        return self.values.shape[1]

    def read(self, index: int, variables) -> np.ndarray:
        columns = [self.variables.index(name) for name in variables]
        return self.values[index][:, columns].astype(np.float32)

    def hierarchy(self, levels, *, k=8, edges=None, kernel=None) -> SphereHierarchy:
        rng = np.random.default_rng(0)
        lon, lat = rng.uniform(0, 360, NODES), np.degrees(np.arcsin(rng.uniform(-1, 1, NODES)))
        return SphereHierarchy.points(lon, lat, levels, k=k)

    def write(self, values, indices, channels, folder):
        path = folder / "out.npy"
        np.save(path, values)
        return [path]


@pytest.fixture
def table(tmp_path, monkeypatch):
    monkeypatch.setitem(dataset_module.SOURCE_OPTIONS, "table", TableSource.options)
    real = dataset_module.source_class
    monkeypatch.setattr(dataset_module, "source_class",
                        lambda name: TableSource if name == "table" else real(name))
    values = np.random.default_rng(1).normal(size=(SAMPLES, NODES, 3)).astype(np.float32)
    values[3, 5, 0] = np.nan
    path = tmp_path / "values.npy"
    np.save(path, values)
    return path, values


def test_labels_give_classification_with_every_sample_once(table, tmp_path):
    path, values = table
    labels = np.arange(SAMPLES) % 3
    np.savetxt(tmp_path / "labels.txt", labels, fmt="%d")
    sets = {split: dataset_module.FileData(split, source="table", path=path,
                                           inputs=["v0", "v1"],
                                           labels=str(tmp_path / "labels.txt"))
            for split in ("train", "val", "test")}
    assert sets["train"].task == "classification" and sets["train"].num_classes == 3
    everything = np.concatenate([s.indices for s in sets.values()])
    assert sorted(everything.tolist()) == list(range(SAMPLES))
    assert [len(s) for s in sets.values()] == [16, 2, 2]
    for split in sets.values():
        for i, position in enumerate(split.indices):
            sample = split[i]
            assert int(sample.y) == labels[position]
            expected = values[position][:, :2].copy()
            expected[~np.isfinite(expected).all(axis=1)] = 0.0  # a missing value: the node
            np.testing.assert_array_equal(sample.x.numpy(), expected)
            assert sample.node_mask.sum() == NODES - (position == 3)
    assert sets["train"].settled() == {"inputs": ["v0", "v1"], "num_classes": 3}


def test_target_variables_and_missing_values(table):
    path, values = table
    data = dataset_module.FileData("train", source="table", path=path, target="v0",
                                   splits={"train": [0, 10], "val": [10, 15],
                                           "test": [15, None]})
    assert data.task == "regression" and data.inputs == ["v1", "v2"]
    assert data.indices.tolist() == list(range(10))
    sample = data[3]
    assert not sample.node_mask[5] and sample.node_mask.sum() == NODES - 1
    # Targets standardised with the training split's statistics (valid nodes only).
    train = values[:10, :, 0]
    mean, std = np.nanmean(train), np.nanstd(train)
    np.testing.assert_allclose(data.target_mean, [mean], rtol=1e-6)
    np.testing.assert_allclose(data.target_std, [std], rtol=1e-5)
    expected = np.where(np.isfinite(values[3][:, 0]), (values[3][:, 0] - mean) / std, 0.0)
    np.testing.assert_allclose(sample.y_node.numpy(), expected, rtol=1e-5, atol=1e-6)
    assert data.settled()["target_normalization"]["mean"] == data.target_mean.tolist()
    raw = dataset_module.FileData("val", source="table", path=path, target="v0",
                                  normalize_target=False)
    position = int(raw.indices[0])
    np.testing.assert_array_equal(raw[0].y_node.numpy(), values[position][:, 0])
    with pytest.raises(ValueError, match="also in data.inputs"):
        dataset_module.FileData("train", source="table", path=path, target="v0",
                                inputs=["v0", "v1"])


def test_forecast_stacks_history_and_targets_lead_steps_later(table):
    path, values = table
    sets = {split: dataset_module.FileData(split, source="table", path=path, inputs=["v2"],
                                           lead=1, history=2, normalize_target=False,
                                           splits={"train": 0.6, "val": 0.2, "test": 0.2})
            for split in ("train", "val", "test")}
    # Usable positions 1 .. 18, cut in time order into 1..11, 12..14, 15..18; a sample
    # stays only if its inputs (p-1, p) and its target (p+1) are in no other split.
    assert sets["train"].indices.tolist() == list(range(1, 11))
    assert sets["val"].indices.tolist() == [13]
    assert sets["test"].indices.tolist() == [16, 17, 18]
    sample = sets["test"][2]
    np.testing.assert_array_equal(sample.x.numpy(), values[17:19, :, 2].T)
    np.testing.assert_array_equal(sample.y_node.numpy(), values[19, :, 2])
    with pytest.raises(ValueError, match="val split holds no forecast sample"):
        dataset_module.FileData("train", source="table", path=path, inputs=["v2"], lead=2,
                                history=3, splits={"train": 0.6, "val": 0.2, "test": 0.2})


def test_forecasts_skip_windows_across_time_gaps(table, tmp_path):
    _, values = table
    path = tmp_path / "daily.npy"
    np.save(path, values)
    real = TableSource.keys.fget

    def with_gap(self):  # day 10 onwards one year later: a gap in the time axis
        keys = real(self).copy()
        keys[10:] += np.timedelta64(365, "D")
        return keys

    TableSource.keys = property(with_gap)
    try:
        with pytest.warns(UserWarning, match="2 of 18 forecast samples skipped"):
            data = dataset_module.FileData(
                "train", source="table", path=path, inputs=["v2"], lead=1, history=2,
                splits={"train": [None, "2020-06-01"], "val": ["2021-01-01", "2021-01-15"],
                        "test": ["2021-01-15", None]})
    finally:
        TableSource.keys = property(real)
    # Days 0..9 of 2020, then ten days of 2021: no sample pairs the two years.
    assert data.indices.tolist() == list(range(1, 9))


def test_segmentation_targets_are_checked(table, tmp_path):
    path, values = table
    classes = values.copy()
    classes[..., 1] = np.arange(NODES) % 4
    np.save(tmp_path / "classes.npy", classes)
    data = dataset_module.FileData("train", source="table", path=tmp_path / "classes.npy",
                                   inputs=["v0"], target="v1", num_classes=4)
    assert data.task == "segmentation" and data[0].y_node.dtype == torch.long
    bad = dataset_module.FileData("train", source="table", path=tmp_path / "classes.npy",
                                  inputs=["v0"], target="v1", num_classes=3)
    with pytest.raises(ValueError, match="classes 0 .. 2"):
        bad[0]


def test_time_ranges(table, tmp_path):
    path, values = table
    path = tmp_path / "daily.npy"
    np.save(path, values)
    data = dataset_module.FileData("val", source="table", path=path, target="v0",
                                   splits={"train": [None, "2020-01-11"],
                                                       "val": ["2020-01-11", "2020-01-15"],
                                                       "test": ["2020-01-15", None]})
    assert data.indices.tolist() == [10, 11, 12, 13]
    with pytest.raises(ValueError, match="not a time"):
        dataset_module.FileData("val", source="table", path=path, target="v0",
                                splits={"train": [None, "soon"], "val": [0, 1],
                                        "test": [1, 2]})
    with pytest.raises(ValueError, match="0 is not a time"):
        dataset_module.FileData("val", source="table", path=path, target="v0",
                                splits={"train": [0, 10], "val": [10, 15],
                                        "test": [15, None]})


@pytest.mark.parametrize("arguments, match", [
    ({"inputs": ["v9"], "target": "v0"}, r"data.inputs: 'v9' is not in the files"),
    ({"target": "v0", "labels": [0] * SAMPLES}, "cannot be combined"),
    ({}, "give the targets"),
    ({"labels": [0, 1]}, "2 labels for 20 samples"),
    ({"labels": [0.5] * SAMPLES}, "integers >= 0"),
    ({"target": "v0", "history": 2}, "needs data.lead"),
    ({"target": ["v0", "v1"], "inputs": ["v2"], "num_classes": 2}, "takes one target"),
    ({"lead": 30}, "too few"),
    ({"target": "v0", "region": [0, 10, 0, 10]}, r"data.region \(a grid option\)"),
    ({"target": "v0", "splits": {"train": 0.9, "val": 0.2, "test": 0.1}}, "sum to 1.2"),
    ({"target": "v0", "splits": {"train": [0, 12], "val": [10, 15], "test": [15, 20]}},
     "share 2 sample"),
    ({"target": "v0", "splits": {"train": 0.5, "val": [0, 1], "test": 0.5}}, "not a mix"),
    ({"target": "v0", "splits": {"train": 0.98, "val": 0.01, "test": 0.01}},
     "val split holds no sample"),
])
def test_bad_configurations_name_the_key(table, arguments, match):
    path, _ = table
    with pytest.raises(ValueError, match=match):
        dataset_module.FileData("train", source="table", path=path, **arguments)


def test_unknown_source_and_missing_files(tmp_path):
    with pytest.raises(ValueError, match="data.source must be one of"):
        dataset_module.FileData("train", source="netcdf", path=tmp_path, target="a")
    with pytest.raises(FileNotFoundError, match="matches no file"):
        dataset_module.FileData("train", source="grid", path=str(tmp_path / "*.nc"),
                                target="a")


def test_fraction_split_is_seeded_and_disjoint():
    keys = np.arange(50)
    first = split_indices(keys, keys, None, seed=3, ordered=False)
    again = split_indices(keys, keys, None, seed=3, ordered=False)
    other = split_indices(keys, keys, None, seed=4, ordered=False)
    assert all(np.array_equal(first[s], again[s]) for s in first)
    assert not np.array_equal(first["test"], other["test"])
    assert sum(len(v) for v in first.values()) == 50
    assert len(np.unique(np.concatenate(list(first.values())))) == 50


def test_labels_csv_rows_are_matched_to_the_samples_by_name(table, tmp_path):
    path, _ = table
    labels = np.arange(SAMPLES) % 2
    rows = [f"sample_{index}.fits,{labels[index]}" for index in reversed(range(SAMPLES))]
    (tmp_path / "labels.csv").write_text("file,label\n" + "\n".join(rows) + "\n")
    data = dataset_module.FileData("train", source="table", path=path,
                                   labels=str(tmp_path / "labels.csv"))
    np.testing.assert_array_equal(data.labels, labels)
    (tmp_path / "short.csv").write_text("file,label\n" + "\n".join(rows[1:]) + "\n")
    with pytest.raises(ValueError, match="no label for 1 sample"):
        dataset_module.FileData("train", source="table", path=path,
                                labels=str(tmp_path / "short.csv"))
