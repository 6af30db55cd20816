r"""The Lightning module that trains any of the library's models on sphere signals.

Losses (per batch, ``B`` samples on ``N`` nodes):

- classification: :math:`\frac1B \sum_b -\log \mathrm{softmax}(z_b)_{y_b}` on logits
  ``z [B, C]``;
- segmentation: the same per node, averaged over the nodes where ``node_mask`` holds
  (logits ``[B, N, C]``, labels ``y_node [B, N]``);
- regression: mean squared error over valid nodes and targets (``[B, N, T]``).

Metrics are :mod:`torchmetrics` objects, so they are exact over a whole epoch and over
all processes of a distributed run (their states are summed across processes before
``compute``). Logged names: ``{split}_loss``, ``{split}_accuracy`` (classification,
segmentation), ``{split}_mse`` and ``{split}_r2`` (regression), ``lr``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import lightning.pytorch as pl
import torch
import torchmetrics
from torch import Tensor, nn
from torch.nn import functional

from ..graphs.hierarchy_data import HierarchyData
from .config import fingerprint
from .experiments import TASKS

SPLIT_NAMES = ("train", "val", "test")

#: Factor of the ``"step"`` schedule, applied every ``max(epochs // 3, 1)`` epochs.
STEP_GAMMA = 0.1


def scheduled_lr(train: Mapping[str, Any], epoch: int, base: float | None = None
                 ) -> float | None:
    """The learning rate that epoch ``epoch`` (0-based) trains with under the schedule of
    ``train`` (``scheduler``, ``epochs``, ``lr``; ``base`` replaces ``lr``).

    ``"cosine"`` falls from ``lr`` to 0 over ``epochs`` epochs, ``"step"`` multiplies it
    by :data:`STEP_GAMMA` every ``max(epochs // 3, 1)`` epochs, ``"none"`` keeps it.
    ``None`` for ``"plateau"``, whose rate depends on the validation losses.
    """
    lr = float(train.get("lr", 1e-3) if base is None else base)
    schedule = train.get("scheduler", "cosine")
    epochs = max(int(train.get("epochs", 1)), 1)
    if schedule in (None, "none", "constant"):
        return lr
    if schedule == "cosine":
        return lr * (1 + math.cos(math.pi * epoch / epochs)) / 2
    if schedule == "step":
        return lr * STEP_GAMMA ** (epoch // max(epochs // 3, 1))
    return None


def fit_schedule(scheduler: Any, train: Mapping[str, Any]) -> bool:
    """Make a restored epoch schedule follow ``train["epochs"]``.

    A checkpoint's cosine (or step) schedule was built for the number of epochs the run
    had planned. When a resumed run asks for another number, the schedule is rebuilt
    over the new total: the rate of every following epoch is the one a run planned for
    that many epochs from the start would use (:func:`scheduled_lr`; a finished cosine
    run extended from 2 to 3 epochs trains epoch 2 at a quarter of ``lr``, not at 0).
    Other schedulers are left as they are.

    Returns:
        whether the schedule was changed.
    """
    epochs = max(int(train.get("epochs", 1)), 1)
    if isinstance(scheduler, torch.optim.lr_scheduler.CosineAnnealingLR):
        if scheduler.T_max == epochs:
            return False
        scheduler.T_max = epochs
        rates = [scheduler.eta_min + (base - scheduler.eta_min)
                 * (1 + math.cos(math.pi * scheduler.last_epoch / epochs)) / 2
                 for base in scheduler.base_lrs]
    elif isinstance(scheduler, torch.optim.lr_scheduler.StepLR):
        step = max(epochs // 3, 1)
        if scheduler.step_size == step:
            return False
        scheduler.step_size = step
        rates = [base * scheduler.gamma ** (scheduler.last_epoch // step)
                 for base in scheduler.base_lrs]
    else:
        return False
    # The schedulers update the rate from the current one: set it where the new schedule
    # stands, and the following steps continue it.
    for group, rate in zip(scheduler.optimizer.param_groups, rates, strict=True):
        group["lr"] = rate
    return True


class SphereTask(pl.LightningModule):
    """Training, validation and test steps, optimiser and schedule for one model.

    Args:
        model: a module mapping ``x [B, N, F]`` to ``[B, C]`` (classification) or
            ``[B, N, C]`` (per-node tasks); a :class:`~deepsphere_pyg.graphs.HierarchyData`
            batch (per-sample graphs) is handed to it whole, as the library's models take
            it (outputs ``[num_graphs, C]`` or ``[sum N, C]``).
        task: ``"classification"``, ``"segmentation"`` or ``"regression"``.
        num_classes: classes (classification, segmentation); ignored for regression.
        train: the ``train`` section of the configuration (``optimizer``, ``lr``,
            ``weight_decay``, ``scheduler``, ``epochs``).
        config: the resolved configuration, stored in every checkpoint (key
            ``"deepsphere_pyg"``) so a checkpoint knows how to rebuild its model.
    """

    def __init__(self, model: nn.Module, task: str, num_classes: int | None,
                 train: Mapping[str, Any], config: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        if task not in TASKS:
            raise ValueError(f"task must be one of {sorted(TASKS)}, got {task!r}")
        self.model = model
        self.task = task
        self.num_classes = num_classes
        self.train_config = dict(train)
        self.config = dict(config or {})
        ignored = getattr(model, "_ddp_params_and_buffers_to_ignore", ())
        # DDP wraps this module: the model's graph buffers keep their prefix.
        self._ddp_params_and_buffers_to_ignore = [f"model.{name}" for name in ignored]
        # Keyed "<split>_split": a key "train" would shadow nn.Module.train.
        self.losses = nn.ModuleDict({f"{split}_split": torchmetrics.MeanMetric()
                                     for split in SPLIT_NAMES})
        self.scores = nn.ModuleDict({f"{split}_split": self._make_scores()
                                     for split in SPLIT_NAMES})
        self.confusion = (torchmetrics.ConfusionMatrix(task="multiclass",
                                                       num_classes=num_classes)
                          if task != "regression" else None)

    def _make_scores(self) -> torchmetrics.MetricCollection:
        if self.task == "regression":
            return torchmetrics.MetricCollection({
                "mse": torchmetrics.MeanSquaredError(),
                "r2": torchmetrics.R2Score(),
            })
        return torchmetrics.MetricCollection({
            "accuracy": torchmetrics.Accuracy(task="multiclass",
                                              num_classes=self.num_classes),
        })

    def forward(self, x: Tensor | HierarchyData) -> Tensor:
        """Model outputs for ``x [B, N, F]`` or a HierarchyData batch."""
        return self.model(x)

    @staticmethod
    def model_input(batch: Any) -> Tensor | HierarchyData:
        """What the model is given for ``batch``: a HierarchyData batch itself (its graphs
        travel with it), else the stacked signals ``batch.x [B, N, F]``."""
        return batch if isinstance(batch, HierarchyData) else batch.x

    def outputs_and_targets(self, batch: Any) -> tuple[Tensor, Tensor]:
        """Flat predictions and targets of the valid entries of ``batch``.

        Returns ``([M, C], [M])`` for the class tasks (``M = B`` for classification,
        the valid nodes for segmentation) and ``([M], [M])`` for regression (every valid
        node and target).
        """
        output = self(self.model_input(batch))
        if self.task == "classification":
            return output, batch.y.reshape(-1)
        target = batch.y_node
        mask = getattr(batch, "node_mask", None)
        if self.task == "segmentation":
            logits, labels = output.reshape(-1, output.shape[-1]), target.reshape(-1)
            if mask is not None:
                keep = mask.reshape(-1)
                logits, labels = logits[keep], labels[keep]
            return logits, labels
        if target.dim() == output.dim() - 1:
            target = target.unsqueeze(-1)
        if mask is not None:
            output, target = output[mask], target[mask]
        return output.reshape(-1), target.reshape(-1).to(output.dtype)

    def _loss(self, output: Tensor, target: Tensor) -> Tensor:
        if self.task == "regression":
            return functional.mse_loss(output, target)
        return functional.cross_entropy(output, target)

    def _step(self, batch: Any, split: str) -> Tensor:
        output, target = self.outputs_and_targets(batch)
        loss = self._loss(output, target)
        size = int(batch.num_graphs if isinstance(batch, HierarchyData) else batch.x.shape[0])
        self.losses[f"{split}_split"].update(loss.detach(), weight=target.numel())
        self.log(f"{split}_loss", self.losses[f"{split}_split"], on_step=False, on_epoch=True,
                 batch_size=size, prog_bar=split != "test")
        scores = self.scores[f"{split}_split"]
        scores.update(output.detach(), target)
        self.log_dict({f"{split}_{name}": metric for name, metric in scores.items()},
                      on_step=False, on_epoch=True, batch_size=size, prog_bar=True)
        if split == "test" and self.confusion is not None:
            self.confusion.update(output.detach().argmax(-1), target)
        return loss

    def training_step(self, batch: Any, batch_index: int) -> Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: Any, batch_index: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: Any, batch_index: int) -> None:
        self._step(batch, "test")

    def on_test_epoch_start(self) -> None:
        if self.confusion is not None:
            self.confusion.reset()

    def test_confusion_matrix(self) -> Tensor | None:
        """``[C, C]`` counts of the last test run (rows true, columns predicted), summed
        over all processes; ``None`` for regression."""
        return None if self.confusion is None else self.confusion.compute()

    def predict_step(self, batch: Any, batch_index: int) -> Tensor:
        return self(batch.x)

    def configure_optimizers(self) -> Any:
        settings = self.train_config
        name = settings.get("optimizer", "adam")
        lr, decay = float(settings.get("lr", 1e-3)), float(settings.get("weight_decay", 0.0))
        if name == "adam":
            optimizer = torch.optim.Adam(self.parameters(), lr=lr, weight_decay=decay)
        elif name == "adamw":
            optimizer = torch.optim.AdamW(self.parameters(), lr=lr, weight_decay=decay)
        elif name == "sgd":
            optimizer = torch.optim.SGD(self.parameters(), lr=lr, weight_decay=decay,
                                        momentum=0.9, nesterov=True)
        else:
            raise ValueError(f"train.optimizer must be 'adam', 'adamw' or 'sgd', got {name!r}")
        schedule = settings.get("scheduler", "cosine")
        epochs = int(settings.get("epochs", 1))
        if schedule in (None, "none", "constant"):
            return optimizer
        if schedule == "cosine":
            scheduler: Any = torch.optim.lr_scheduler.CosineAnnealingLR(
                optimizer, T_max=max(epochs, 1))
        elif schedule == "step":
            scheduler = torch.optim.lr_scheduler.StepLR(optimizer,
                                                        step_size=max(epochs // 3, 1),
                                                        gamma=STEP_GAMMA)
        elif schedule == "plateau":
            scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5,
                                                                   patience=2)
            return {"optimizer": optimizer,
                    "lr_scheduler": {"scheduler": scheduler, "monitor": "val_loss"}}
        else:
            raise ValueError(f"train.scheduler must be 'cosine', 'step', 'plateau' or "
                             f"'none', got {schedule!r}")
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler,
                                                         "interval": "epoch"}}

    def on_train_start(self) -> None:
        """After a resume (schedulers restored from the checkpoint): rebuild the schedule
        over ``train.epochs`` when the run now asks for another number of epochs
        (:func:`fit_schedule`)."""
        schedulers = self.lr_schedulers()
        for scheduler in schedulers if isinstance(schedulers, list) else [schedulers]:
            if scheduler is not None:
                fit_schedule(scheduler, self.train_config)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["deepsphere_pyg"] = {"config": self.config,
                                        "fingerprint": fingerprint(self.config),
                                        "task": self.task, "num_classes": self.num_classes,
                                        "in_channels": int(self.model.in_channels),
                                        "out_channels": int(self.model.out_channels)}
