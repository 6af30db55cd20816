"""End-to-end runs of the engine on tiny configurations."""

from __future__ import annotations

import json

import lightning.pytorch as pl
import pytest
import torch

from deepsphere_pyg.cli import main
from deepsphere_pyg.training import resolve_config, train
from deepsphere_pyg.training.engine import read_checkpoint_config


class Interrupt(pl.Callback):
    """Raises in the middle of an epoch, like a killed job."""

    def __init__(self, epoch: int, batch: int) -> None:
        self.epoch, self.batch = epoch, batch

    def on_train_batch_start(self, trainer, module, batch, index) -> None:
        if trainer.current_epoch == self.epoch and index == self.batch:
            raise RuntimeError("interrupted")


def weights(path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def test_run_folder(tiny_digits, tmp_path) -> None:
    result = train(tiny_digits, tmp_path / "run", figures=False)
    folder = tmp_path / "run"
    for name in ("config.yaml", "metrics.json", "metrics.csv", "history.json",
                 "checkpoints/last.ckpt", "checkpoints/best.ckpt"):
        assert (folder / name).is_file(), name
    metrics = json.loads((folder / "metrics.json").read_text())
    assert 0.0 <= metrics["test_accuracy"] <= 1.0
    assert metrics["test_accuracy"] == pytest.approx(result.metrics["test_accuracy"])
    assert metrics["epochs_run"] == 3 and len(metrics["history"]) == 3
    matrix = torch.tensor(metrics["confusion_matrix"])
    assert matrix.shape == (10, 10) and int(matrix.sum()) == 24
    # The accuracy is the confusion matrix's diagonal share.
    assert metrics["test_accuracy"] == pytest.approx(float(matrix.diag().sum()) / 24)
    rows = (folder / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("epoch,lr,epoch_time_s") and len(rows) == 4
    assert "train_loss" in rows[0] and "val_accuracy" in rows[0]
    # Cosine schedule over 3 epochs, recorded per epoch.
    lrs = [row["lr"] for row in metrics["history"]]
    assert lrs[0] == pytest.approx(3e-3) and lrs[1] < lrs[0] and lrs[2] < lrs[1]
    assert read_checkpoint_config(folder / "checkpoints" / "last.ckpt") == result.config


def test_occupied_folder_needs_resume(tiny_overrides, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # a relative run folder
    config = resolve_config("digits", overrides=[*tiny_overrides, "train.epochs=1"])
    result = train(config, "run", figures=False)
    assert result.metrics["best_checkpoint"] == "checkpoints/best.ckpt"
    with pytest.raises(ValueError, match="already holds a run: pass --resume"):
        train(config, "run", figures=False)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        train(config, tmp_path / "other", resume=True, figures=False)


def test_resume_after_interruption_gives_the_same_weights(tiny_digits, tmp_path) -> None:
    whole = train(tiny_digits, tmp_path / "whole", figures=False)
    with pytest.raises(RuntimeError, match="interrupted"):
        train(tiny_digits, tmp_path / "cut", callbacks=[Interrupt(epoch=2, batch=1)],
              figures=False)
    assert (tmp_path / "cut" / "checkpoints" / "last.ckpt").is_file()
    assert not (tmp_path / "cut" / "metrics.json").exists()
    resumed = train(tiny_digits, tmp_path / "cut", resume=True, figures=False)
    first = weights(tmp_path / "whole" / "checkpoints" / "last.ckpt")
    second = weights(tmp_path / "cut" / "checkpoints" / "last.ckpt")
    assert first.keys() == second.keys()
    for key in first:
        assert torch.equal(first[key], second[key]), key
    assert resumed.metrics["test_accuracy"] == whole.metrics["test_accuracy"]
    assert [row["train_loss"] for row in resumed.metrics["history"]] == \
        [row["train_loss"] for row in whole.metrics["history"]]


def test_resume_with_another_configuration_is_refused(tiny_digits, tiny_overrides,
                                                       tmp_path) -> None:
    with pytest.raises(RuntimeError):
        train(tiny_digits, tmp_path / "run", callbacks=[Interrupt(epoch=1, batch=0)],
              figures=False)
    changed = resolve_config("digits", overrides=[*tiny_overrides, "model.K=3"])
    with pytest.raises(ValueError, match=r"another configuration.*model\.K: 2 != 3"):
        train(changed, tmp_path / "run", resume=True, figures=False)
    # More epochs are allowed.
    longer = resolve_config("digits", overrides=[*tiny_overrides, "train.epochs=4"])
    result = train(longer, tmp_path / "run", resume=True, figures=False)
    assert result.metrics["epochs_run"] == 4


def test_cli_end_to_end_with_figures_and_predict(tiny_overrides, tmp_path, capsys) -> None:
    pytest.importorskip("matplotlib")
    folder = tmp_path / "run"
    args = ["train", "--output", str(folder)]
    for override in tiny_overrides:
        args += ["--set", override]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "test accuracy" in out and str(folder) in out
    for name in ("examples.png", "learning_curves.png", "confusion_matrix.png"):
        assert (folder / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name

    # predict: the test maps written to .npy (RING) give the run's test accuracy.
    import healpy as hp
    import numpy as np

    from deepsphere_pyg.training.engine import build_datasets

    config = read_checkpoint_config(folder / "checkpoints" / "best.ckpt")
    test_set = build_datasets(config)["test"]
    maps = np.stack([hp.reorder(test_set[i].x[:, 0].numpy(), n2r=True)
                     for i in range(len(test_set))])
    np.save(tmp_path / "maps.npy", maps)
    assert main(["predict", str(folder), str(tmp_path / "maps.npy"), "--ordering", "ring",
                 "--output", str(tmp_path / "pred")]) == 0
    rows = json.loads((tmp_path / "pred" / "predictions.json").read_text())
    labels = [int(test_set[i].y) for i in range(len(test_set))]
    accuracy = np.mean([row["class"] == label for row, label in zip(rows, labels, strict=True)])
    metrics = json.loads((folder / "metrics.json").read_text())
    assert accuracy == pytest.approx(metrics["test_accuracy"], abs=1e-6)


def test_cli_errors(tmp_path, capsys) -> None:
    assert main(["train", "--experiment", "nope"]) == 2
    assert "unknown experiment 'nope'" in capsys.readouterr().err
    assert main(["train", "--set", "model.KK=3"]) == 2
    assert "unknown key 'model.KK'" in capsys.readouterr().err
    assert main(["train", "--config", str(tmp_path / "none.yaml")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["predict", str(tmp_path / "none.ckpt"), "x.npy"]) == 2
    assert "does not exist" in capsys.readouterr().err
    not_a_checkpoint = tmp_path / "bad.ckpt"
    not_a_checkpoint.write_bytes(b"nonsense")
    assert main(["predict", str(not_a_checkpoint), "x.npy"]) == 2
    assert "not a loadable checkpoint" in capsys.readouterr().err
    assert main(["train", "--set", "data.nside=5"]) == 2
    assert "data:" in capsys.readouterr().err


def test_experiments_listing(capsys) -> None:
    assert main(["experiments"]) == 0
    out = capsys.readouterr().out
    for name in ("digits", "cosmology", "cmb", "segmentation", "stations"):
        assert name in out
    assert main(["experiments", "--show", "cmb"]) == 0
    assert "experiment: cmb" in capsys.readouterr().out
