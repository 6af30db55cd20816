"""The run record, resuming from the run folder, extending a run, Ctrl-C."""

from __future__ import annotations

import json
import math
import signal

import lightning.pytorch as pl
import pytest
import torch
import yaml
from torch.utils.data import DataLoader, TensorDataset

from deepsphere_pyg.cli import main
from deepsphere_pyg.training import train
from deepsphere_pyg.training.callbacks import EpochRecord, resume_command
from deepsphere_pyg.training.config import save_yaml
from deepsphere_pyg.training.engine import checkpoint_epoch, finished_metrics
from deepsphere_pyg.training.resolution import resume_config
from deepsphere_pyg.training.task import fit_schedule, scheduled_lr


def weights(path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def tiny_yaml(tmp_path, overrides: list[str], epochs: int) -> str:
    """The tiny overrides as a --config file (a run whose settings are not the
    experiment's defaults)."""
    content: dict = {}
    for text in overrides:
        key, _, value = text.partition("=")
        section, name = key.split(".")
        content.setdefault(section, {})[name] = yaml.safe_load(value)
    content["train"]["epochs"] = epochs
    path = tmp_path / "my.yaml"
    path.write_text(yaml.safe_dump(content))
    return str(path)


# ----------------------------------------------------------------- the run record
class Linear(pl.LightningModule):
    """A linear regression logging train and validation losses."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)

    def training_step(self, batch, index):
        loss = torch.nn.functional.mse_loss(self.layer(batch[0]), batch[1])
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch, index):
        self.log("val_loss", torch.nn.functional.mse_loss(self.layer(batch[0]), batch[1]))

    def test_step(self, batch, index):
        self.log("test_loss", torch.nn.functional.mse_loss(self.layer(batch[0]), batch[1]))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


@pytest.mark.filterwarnings("ignore:Be aware that when using `ckpt_path`")
@pytest.mark.filterwarnings("ignore:.*LeafSpec")
def test_testing_an_earlier_checkpoint_keeps_the_whole_record(tmp_path) -> None:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(32, 2, generator=generator)
    loader = DataLoader(TensorDataset(x, x.sum(1, keepdim=True)), batch_size=8)
    record = EpochRecord(tmp_path)
    every_epoch = pl.callbacks.ModelCheckpoint(dirpath=tmp_path / "checkpoints",
                                               filename="{epoch}", save_top_k=-1)
    trainer = pl.Trainer(max_epochs=3, callbacks=[every_epoch, record], logger=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         num_sanity_val_steps=0)
    trainer.fit(Linear(), loader, loader)
    assert [row["epoch"] for row in record.rows] == [0, 1, 2]
    first = tmp_path / "checkpoints" / "epoch=0.ckpt"
    trainer.test(Linear(), loader, ckpt_path=str(first), weights_only=True, verbose=False)
    assert [row["epoch"] for row in record.rows] == [0, 1, 2]
    assert len(json.loads((tmp_path / "history.json").read_text())) == 3
    # Fitting from a checkpoint still restores its record.
    resumed = EpochRecord(tmp_path / "resumed")
    trainer = pl.Trainer(max_epochs=2, callbacks=[resumed], logger=False,
                         enable_checkpointing=False, default_root_dir=tmp_path,
                         enable_progress_bar=False, enable_model_summary=False,
                         num_sanity_val_steps=0)
    trainer.fit(Linear(), loader, loader, ckpt_path=str(first), weights_only=True)
    assert [row["epoch"] for row in resumed.rows] == [0, 1]


class SpoilAfterFirstEpoch(pl.Callback):
    """From epoch 1 on, the model's logits favour class 0 by a wide margin: every later
    validation loss is far above epoch 0's, so the best epoch is 0."""

    def on_train_epoch_start(self, trainer, module) -> None:
        if trainer.current_epoch == 1:
            def push(layer, inputs, output):
                offset = torch.zeros(output.shape[-1], dtype=output.dtype)
                offset[0] = 100.0
                return output + offset.to(output.device)

            module.model.register_forward_hook(push)


def test_metrics_and_figures_describe_every_epoch_when_the_best_is_early(
        tiny_overrides, tmp_path, capsys, monkeypatch) -> None:
    pytest.importorskip("matplotlib")
    from deepsphere_pyg import plots

    drawn = {}
    original = plots.plot_learning_curves

    def capture(history, path, **options):
        drawn.update(history=history, **options)
        original(history, path, **options)

    monkeypatch.setattr(plots, "plot_learning_curves", capture)
    from deepsphere_pyg.training import resolve_config

    config = resolve_config("digits", overrides=tiny_overrides)
    result = train(config, tmp_path / "run", callbacks=[SpoilAfterFirstEpoch()])
    folder = tmp_path / "run"
    metrics = json.loads((folder / "metrics.json").read_text())
    history = json.loads((folder / "history.json").read_text())
    assert metrics["epochs_run"] == 3 and len(metrics["history"]) == 3 and len(history) == 3
    assert [row["epoch"] for row in metrics["history"]] == [0, 1, 2]
    assert metrics["best_epoch"] == 0 == checkpoint_epoch(folder / "checkpoints" / "best.ckpt")
    assert metrics["best_score"] == pytest.approx(history[0]["val_loss"])
    assert min(row["val_loss"] for row in history[1:]) > history[0]["val_loss"]
    assert metrics["stopped_early"] is False and metrics["resumed_at_epoch"] is None
    assert [row["epoch"] for row in drawn["history"]] == [0, 1, 2]
    assert drawn["best_epoch"] == 0
    from deepsphere_pyg.training.command import summary

    text = summary(folder, result.metrics)
    assert "3 epochs in" in text and "best epoch 0 (val_loss" in text


# --------------------------------------------------------------------- resuming
def test_resume_reads_the_run_config_extends_and_reports_a_finished_run(
        tiny_overrides, tmp_path, capsys) -> None:
    folder = tmp_path / "mine"
    my_yaml = tiny_yaml(tmp_path, tiny_overrides, epochs=2)
    assert main(["train", "--config", my_yaml, "--output", str(folder), "--no-figures"]) == 0
    capsys.readouterr()
    record = (folder / "metrics.json").read_bytes()

    # A finished run: reported as such, nothing rewritten.
    assert main(["train", "--output", str(folder), "--resume", "--no-figures"]) == 0
    out = capsys.readouterr().out
    assert "already complete: 2 epochs" in out
    assert f"{resume_command(folder)} --set train.epochs=N (N > 2)" in out
    assert (folder / "metrics.json").read_bytes() == record

    # The model and the data are the run's: changing them is refused, naming the key.
    assert main(["train", "--output", str(folder), "--resume", "--set", "model.K=3"]) == 2
    err = capsys.readouterr().err
    assert "model.K cannot change when resuming" in err and "the run has 2, asked 3" in err
    assert main(["train", "--output", str(folder), "--resume", "--set", "data.nside=16"]) == 2
    assert "data.nside cannot change" in capsys.readouterr().err
    assert (folder / "metrics.json").read_bytes() == record

    # Extended: the cosine schedule is rebuilt over 3 epochs (not stuck at 0).
    assert main(["train", "--output", str(folder), "--resume", "--set", "train.epochs=3",
                 "--no-figures"]) == 0
    out = capsys.readouterr().out
    assert "rebuilt over 3 epochs: epoch 2 trains at lr 0.00075" in out
    assert "3 epochs (resumed at epoch 2: 1 trained in" in out
    metrics = json.loads((folder / "metrics.json").read_text())
    lrs = [row["lr"] for row in metrics["history"]]
    assert lrs[:2] == pytest.approx([3e-3, 1.5e-3])
    assert lrs[2] == pytest.approx(scheduled_lr({"lr": 3e-3, "epochs": 3}, 2)) == \
        pytest.approx(0.75e-3)
    assert metrics["epochs_run"] == 3 and metrics["resumed_at_epoch"] == 2
    assert yaml.safe_load((folder / "config.yaml").read_text())["train"]["epochs"] == 3

    # Finished again at 3 epochs.
    record = (folder / "metrics.json").read_bytes()
    assert main(["train", "--output", str(folder), "--resume", "--no-figures"]) == 0
    assert "already complete: 3 epochs" in capsys.readouterr().out
    assert (folder / "metrics.json").read_bytes() == record


def test_resume_arguments_are_checked(tiny_digits, tmp_path, capsys) -> None:
    assert main(["train", "--resume"]) == 2
    assert "--resume needs --output DIR" in capsys.readouterr().err
    assert main(["train", "--resume", "--output", str(tmp_path / "none")]) == 2
    assert "holds no run" in capsys.readouterr().err
    folder = tmp_path / "run"
    save_yaml(tiny_digits, folder / "config.yaml")
    assert resume_config(folder, "digits", overrides=["train.epochs=5"]) == {
        **tiny_digits, "train": {**tiny_digits["train"], "epochs": 5}}
    with pytest.raises(ValueError, match="run in .* is of experiment 'digits'; leave "
                                         "--experiment out"):
        resume_config(folder, "cmb")
    with pytest.raises(ValueError, match="unknown key 'train.epoch'"):
        resume_config(folder, overrides=["train.epoch=3"])


def test_finished_metrics_needs_a_test_after_the_latest_epoch(tmp_path) -> None:
    assert finished_metrics(tmp_path, 2, 2) is None  # no metrics.json
    (tmp_path / "metrics.json").write_text(json.dumps({"epochs_run": 2}))
    assert finished_metrics(tmp_path, 2, 2) == {"epochs_run": 2}
    assert finished_metrics(tmp_path, 2, 3) is None  # more epochs asked
    assert finished_metrics(tmp_path, 3, 3) is None  # trained since the test
    (tmp_path / "metrics.json").write_text(json.dumps(
        {"epochs_run": 4, "stopped_early": True, "epochs_planned": 10}))
    assert finished_metrics(tmp_path, 4, 10) is not None
    assert finished_metrics(tmp_path, 4, 12) is None


@pytest.mark.parametrize("name", ["cosine", "step"])
def test_a_rebuilt_schedule_follows_the_longer_plan(name) -> None:
    def scheduler(epochs: int):
        optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
        if name == "cosine":
            return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=max(epochs // 3, 1),
                                               gamma=0.1)

    def rates(schedule, steps: int) -> list[float]:
        values = []
        for _ in range(steps):
            values.append(schedule.optimizer.param_groups[0]["lr"])
            schedule.optimizer.step()
            schedule.step()
        return values

    train = {"lr": 0.1, "scheduler": name, "epochs": 6}
    planned = rates(scheduler(6), 6)
    assert planned == pytest.approx([scheduled_lr(train, epoch) for epoch in range(6)])
    short = scheduler(3)
    rates(short, 3)  # a finished 3-epoch run
    assert not fit_schedule(short, {**train, "epochs": 3})
    assert fit_schedule(short, train)
    assert rates(short, 3) == pytest.approx(planned[3:])
    assert all(not math.isclose(rate, 0.0) for rate in planned)


# ------------------------------------------------------------------------ Ctrl-C
class KeyboardInterruptAt(pl.Callback):
    """Raises KeyboardInterrupt in the middle of an epoch, as Ctrl-C does."""

    def __init__(self, epoch: int, batch: int) -> None:
        self.epoch, self.batch = epoch, batch

    def on_train_batch_start(self, trainer, module, batch, index) -> None:
        if trainer.current_epoch == self.epoch and index == self.batch:
            raise KeyboardInterrupt


def interrupted(config, folder, epoch: int) -> int:
    """Train until the interrupt; Lightning exits, ignoring further Ctrl-C: the handler
    is put back afterwards."""
    handler = signal.getsignal(signal.SIGINT)
    try:
        with pytest.raises(SystemExit) as stop:
            train(config, folder, callbacks=[KeyboardInterruptAt(epoch, 1)], figures=False)
    finally:
        signal.signal(signal.SIGINT, handler)
    return stop.value.code


def test_ctrl_c_in_epoch_0_prints_the_resume_command_and_resumes(tiny_digits, tmp_path,
                                                                  capsys) -> None:
    folder = tmp_path / "cut"
    assert interrupted(tiny_digits, folder, epoch=0) == 1
    err = capsys.readouterr().err
    assert "no epoch had finished" in err
    assert f"continue it with: {resume_command(folder)}" in err
    assert not (folder / "checkpoints" / "last.ckpt").exists()
    assert main(["train", "--output", str(folder), "--resume", "--no-figures"]) == 0
    assert "starting again at epoch 0" in capsys.readouterr().out
    whole = train(tiny_digits, tmp_path / "whole", figures=False)
    first = weights(tmp_path / "whole" / "checkpoints" / "last.ckpt")
    second = weights(folder / "checkpoints" / "last.ckpt")
    for key in first:
        assert torch.equal(first[key], second[key]), key
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["test_accuracy"] == whole.metrics["test_accuracy"]
    assert metrics["epochs_run"] == 3


def test_ctrl_c_later_names_the_finished_epochs(tiny_digits, tmp_path, capsys) -> None:
    folder = tmp_path / "cut"
    assert interrupted(tiny_digits, folder, epoch=2) == 1
    err = capsys.readouterr().err
    assert f"{folder / 'checkpoints' / 'last.ckpt'} holds 2 finished epoch(s)" in err
    assert resume_command(folder) in err
    assert checkpoint_epoch(folder / "checkpoints" / "last.ckpt") == 1
