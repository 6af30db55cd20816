"""Every registered experiment builds, trains one tiny epoch and writes its run folder."""

from __future__ import annotations

import inspect
import json

import healpy as hp
import numpy as np
import pytest

from deepsphere_pyg.cli import main
from deepsphere_pyg.training import EXPERIMENTS, resolve_config, train
from deepsphere_pyg.training.engine import build_datasets
from deepsphere_pyg.training.experiments import MODELS

TINY = ["data.train_samples=12", "data.val_samples=6", "data.test_samples=6",
        "train.epochs=1", "train.progress=false", "train.batch_size=6",
        "graph.levels=2", "model.channels=[4,8]"]


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_defaults_hold_every_argument(name: str) -> None:
    experiment = EXPERIMENTS[name]
    config = experiment.defaults()
    model_class = MODELS[config["model"]["name"]]
    for cls, section in ((experiment.dataset, "data"), (model_class, "model")):
        for argument, parameter in inspect.signature(cls.__init__).parameters.items():
            if parameter.kind is parameter.KEYWORD_ONLY and argument not in (
                    "transform", "cache", "scattering"):
                assert argument in config[section], (section, argument)


@pytest.mark.parametrize("name", sorted(name for name, experiment in EXPERIMENTS.items()
                                         if not experiment.user_data))
def test_tiny_run(name: str, tmp_path) -> None:
    config = resolve_config(name, overrides=TINY)
    per_node = EXPERIMENTS[name].task != "classification"
    result = train(config, tmp_path / name, figures=per_node)
    metrics = json.loads((tmp_path / name / "metrics.json").read_text())
    assert metrics["epochs_run"] == 1 and metrics == json.loads(json.dumps(result.metrics))
    if EXPERIMENTS[name].task == "regression":
        assert np.isfinite(metrics["test_mse"]) and metrics["test_loss"] > 0
    else:
        assert 0.0 <= metrics["test_accuracy"] <= 1.0
    if per_node:
        for figure in ("examples.png", "learning_curves.png", "prediction.png"):
            assert (tmp_path / name / figure).stat().st_size > 1000, figure
    if config["data"]["normalize"]:
        stats = result.config["data"]["normalization"]
        assert len(stats["mean"]) == len(stats["std"]) >= 1
        assert all(s > 0 for s in stats["std"])


def test_segmentation_predictions_are_healpix_maps(tmp_path) -> None:
    config = resolve_config("segmentation", overrides=TINY)
    train(config, tmp_path / "run", figures=False)
    test_set = build_datasets(config)["test"]
    maps = np.stack([hp.reorder(test_set[i].x[:, 0].numpy(), n2r=True) for i in range(2)])
    np.save(tmp_path / "maps.npy", maps)
    assert main(["predict", str(tmp_path / "run"), str(tmp_path / "maps.npy"),
                 "--ordering", "ring", "--output", str(tmp_path / "out")]) == 0
    written = sorted((tmp_path / "out").glob("*_prediction.fits"))
    assert len(written) == 2
    values, header = hp.read_map(written[0], nest=None, h=True)
    assert dict(header)["ORDERING"] == "NESTED"
    assert values.size == hp.nside2npix(config["data"]["nside"])
    assert set(np.unique(values)) <= {0.0, 1.0, 2.0}


def test_predict_refuses_maps_of_another_resolution(tmp_path, capsys) -> None:
    config = resolve_config("segmentation", overrides=TINY)
    train(config, tmp_path / "run", figures=False)
    np.save(tmp_path / "maps.npy", np.zeros((1, hp.nside2npix(8)), dtype=np.float32))
    assert main(["predict", str(tmp_path / "run"), str(tmp_path / "maps.npy"),
                 "--ordering", "ring"]) == 2
    assert "nside 8" in capsys.readouterr().err


def test_graph_kernel_reaches_the_hierarchy() -> None:
    from deepsphere_pyg.data import SphericalDigits
    from deepsphere_pyg.training.experiments import build_hierarchy

    dataset = SphericalDigits("train", 2, nside=8)
    default = build_hierarchy(dataset, {"levels": 2, "k": 8, "edges": None, "kernel": None})
    v1 = build_hierarchy(dataset, {"levels": 2, "k": 8, "edges": "neighbours", "kernel": None})
    width = build_hierarchy(dataset, {"levels": 2, "k": 8, "edges": None, "kernel": 0.01})
    assert default[0].kernel == "v2" and v1[0].kernel == "v1" and v1[0].edges == "neighbours"
    assert width[0].kernel_width == 0.01
    assert default.num_nodes == v1.num_nodes == [768, 192]


def test_data_sets_and_models_by_reference() -> None:
    from deepsphere_pyg.data import SphericalDigits
    from deepsphere_pyg.models import DeepSphere
    from deepsphere_pyg.training.experiments import ClassRegistry, Experiment

    by_name = Experiment("by-name", "a test", "deepsphere_pyg.data:SphericalDigits",
                         "classification", data={}, model={"name": "deepsphere"})
    by_class = Experiment("by-class", "a test", SphericalDigits, "classification",
                          data={}, model={"name": "deepsphere"})
    assert by_name.dataset_name == by_class.dataset_name == "SphericalDigits"
    assert by_name.dataset is by_class.dataset is SphericalDigits
    assert by_name.defaults()["data"] == by_class.defaults()["data"]
    with pytest.raises(ValueError, match="package.module:Class"):
        Experiment("bad", "a test", "deepsphere_pyg.data.SphericalDigits", "classification",
                   data={}, model={"name": "deepsphere"})
    with pytest.raises(TypeError, match="expected a class"):
        Experiment("bad", "a test", 3, "classification", data={}, model={"name": "deepsphere"})
    missing = Experiment("missing", "a test", "deepsphere_pyg.data:Nothing", "classification",
                         data={}, model={"name": "deepsphere"})
    assert missing.dataset_name == "Nothing"
    with pytest.raises(ImportError, match="no class 'Nothing'"):
        missing.defaults()

    registry = ClassRegistry({"a": "deepsphere_pyg.models:DeepSphere"})
    assert "a" in registry and "b" not in registry and list(registry) == ["a"]
    assert registry.name_of("a") == "DeepSphere" and registry["a"] is DeepSphere
    registry["b"] = DeepSphere
    assert registry.name_of("b") == "DeepSphere" and len(registry) == 2
    assert sorted(MODELS) == ["deepsphere", "unet"] and MODELS["deepsphere"] is DeepSphere
