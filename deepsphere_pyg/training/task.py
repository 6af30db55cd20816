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
                                                        gamma=0.1)
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

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["deepsphere_pyg"] = {"config": self.config,
                                        "fingerprint": fingerprint(self.config),
                                        "task": self.task, "num_classes": self.num_classes,
                                        "in_channels": int(self.model.in_channels),
                                        "out_channels": int(self.model.out_channels)}
