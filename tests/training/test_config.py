"""Configuration files, dotted overrides, checks and fingerprints."""

from __future__ import annotations

import warnings

import pytest

from deepsphere_pyg.training import EXPERIMENTS, resolve_config
from deepsphere_pyg.training import config as cfg


def test_override_values_are_read_as_yaml() -> None:
    assert cfg.parse_override("model.K=5") == ("model.K", 5)
    assert cfg.parse_override("train.lr=1e-3") == ("train.lr", 1e-3)
    assert cfg.parse_override("model.channels=[8, 16]") == ("model.channels", [8, 16])
    assert cfg.parse_override("data.rotate=z") == ("data.rotate", "z")
    assert cfg.parse_override("train.patience=null") == ("train.patience", None)
    assert cfg.parse_override("data.rotate=true") == ("data.rotate", True)


@pytest.mark.parametrize("text", ["model.K", "=3", "model..K=3", "model.K=[1,"])
def test_bad_override_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="--set"):
        cfg.parse_override(text)


def test_unknown_key_names_the_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown key 'model\.kk'.*valid keys here: K,"):
        resolve_config("digits", overrides=["model.kk=3"])
    with pytest.raises(ValueError, match="unknown key 'trian'"):
        resolve_config("digits", overrides=["trian.epochs=3"])


def test_section_cannot_be_replaced_by_a_value() -> None:
    with pytest.raises(ValueError, match="'train' is a section"):
        resolve_config("digits", overrides=["train=3"])


def test_files_then_overrides(tmp_path) -> None:
    first = tmp_path / "a.yaml"
    first.write_text("model:\n  K: 4\ntrain:\n  epochs: 2\n")
    second = tmp_path / "b.yaml"
    second.write_text("model:\n  K: 6\n")
    config = resolve_config(None, [str(first), str(second)], ["train.epochs=7"])
    assert config["experiment"] == "digits"
    assert config["model"]["K"] == 6 and config["train"]["epochs"] == 7


def test_file_selects_its_experiment(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("experiment: segmentation\nmodel:\n  K: 2\n")
    config = resolve_config(None, [str(path)])
    assert config["experiment"] == "segmentation" and config["model"]["name"] == "unet"
    with pytest.raises(ValueError, match="names experiment 'segmentation'"):
        resolve_config("digits", [str(path)])


def test_bad_files(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="--config"):
        resolve_config(None, [str(tmp_path / "missing.yaml")])
    broken = tmp_path / "broken.yaml"
    broken.write_text("model: [1, 2\n")
    with pytest.raises(ValueError, match="not valid YAML"):
        resolve_config(None, [str(broken)])
    listing = tmp_path / "list.yaml"
    listing.write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match="must hold a mapping"):
        resolve_config(None, [str(listing)])


@pytest.mark.parametrize("override, message", [
    ("train.epochs=0", "train.epochs must be an integer >= 1"),
    ("train.lr=-1", "train.lr must be a number > 0"),
    ("train.batch_size=2.5", "train.batch_size"),
    ("train.monitor=val_r2", "train.monitor must be one of"),
    ("train.accelerator=tpu", "train.accelerator"),
    ("graph.levels=0", "graph.levels must be an integer >= 1"),
    ("graph.k=[8,0]", "graph.k\\[1\\] must be an integer >= 1"),
    ("seed=-1", "seed must be an integer >= 0"),
])
def test_bad_values(override: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        resolve_config("digits", overrides=[override])


def test_yaml_round_trip(tmp_path) -> None:
    config = resolve_config("cosmology", overrides=["model.channels=[8,16,32]"])
    path = tmp_path / "config.yaml"
    cfg.save_yaml(config, path)
    assert cfg.load_yaml(path) == config
    assert resolve_config(None, [str(path)]) == config


def test_fingerprint_ignores_only_the_resume_mutable_keys() -> None:
    base = resolve_config("digits")
    longer = resolve_config("digits", overrides=["train.epochs=50", "train.num_workers=2"])
    other = resolve_config("digits", overrides=["model.K=2"])
    assert cfg.fingerprint(base) == cfg.fingerprint(longer)
    assert cfg.fingerprint(base) != cfg.fingerprint(other)
    assert cfg.differences(base, other) == ["model.K: 5 != 2"]


def test_graph_settings_have_their_own_section() -> None:
    config = resolve_config("cosmology")
    assert config["graph"] == {"levels": 5, "k": 8, "edges": None, "kernel": None}
    assert "hierarchy_levels" not in config["model"] and "k" not in config["model"]
    config = resolve_config("digits", overrides=["graph.k=[20,8,8]", "graph.edges=neighbours"])
    assert config["graph"] == {"levels": 3, "k": [20, 8, 8], "edges": "neighbours",
                               "kernel": None}


def test_moved_graph_keys_still_read_with_a_warning(tmp_path) -> None:
    with pytest.warns(FutureWarning, match="'model.hierarchy_levels' is now 'graph.levels'"):
        config = resolve_config("digits", overrides=["model.hierarchy_levels=2"])
    assert config["graph"]["levels"] == 2
    path = tmp_path / "old.yaml"
    path.write_text("model:\n  k: 20\n  K: 3\n")
    with pytest.warns(FutureWarning, match="'model.k' is now 'graph.k'"):
        config = resolve_config("digits", config_files=[str(path)])
    assert config["graph"]["k"] == 20 and config["model"]["K"] == 3
    with pytest.raises(ValueError, match="keep only 'graph.levels'"):
        cfg.migrate({"model": {"hierarchy_levels": 2}, "graph": {"levels": 3}}, source="test")


# ------------------------------------------- checks before the data set and model imports
@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_outline_is_part_of_the_defaults(name: str) -> None:
    experiment = EXPERIMENTS[name]
    outline, defaults = cfg.flatten(experiment.outline()), cfg.flatten(experiment.defaults())
    assert outline.items() <= defaults.items()
    assert {key for key in defaults if not key.startswith(("data.", "model."))} <= set(outline)


@pytest.mark.parametrize("overrides, message", [
    # The first error is the one of the full resolution, also after a key that only the
    # data set's or model's signature can check.
    (["model.kk=3", "train.epochs=abc"], r"unknown key 'model\.kk'"),
    (["data.nosuch=1", "nosuch.x=1"], r"unknown key 'data\.nosuch'"),
    (["nosuch.x=1", "model.kk=3"], r"unknown key 'nosuch'"),
    (["model.K=3", "train.epochs=abc"], "train.epochs must be an integer"),
    (["train.epochs=abc", "model.kk=3"], r"unknown key 'model\.kk'"),
])
def test_early_checks_report_the_first_error(overrides: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        resolve_config("digits", overrides=overrides)


def test_early_checks_follow_the_files(tmp_path) -> None:
    first = tmp_path / "a.yaml"
    first.write_text("model:\n  kk: 4\ntrain:\n  epochs: 0\n")
    with pytest.raises(ValueError, match=r"unknown key 'model\.kk'"):
        resolve_config("digits", [str(first)])
    first.write_text("model:\n  K: 4\ntrain:\n  epochs: 0\n")
    with pytest.raises(ValueError, match="train.epochs must be an integer >= 1"):
        resolve_config("digits", [str(first)])


def test_moved_keys_warn_once() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        resolve_config("digits", overrides=["model.hierarchy_levels=2"])
    assert [str(warning.message).count("is now 'graph.levels'") for warning in caught] == [1]
