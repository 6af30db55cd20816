"""Figures of training runs: learning curves and confusion matrices, written as PNG files
through :func:`~deepsphere_pyg.plots.figure.save_figure`."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from .figure import float_array, new_figure, save_figure

__all__ = ["plot_confusion_matrix", "plot_learning_curves"]

#: Metric prefixes of :func:`plot_learning_curves`, in drawing order.
_SPLITS = ("train", "val", "test")


# ------------------------------------------------------------------- training runs
def _learning_curve_panels(history: Sequence[Mapping[str, float]]
                           ) -> tuple[list[str], bool]:
    """Metric names (``train_loss`` -> ``loss``; losses first) and whether ``lr`` is logged."""
    if isinstance(history, Mapping) or not isinstance(history, Sequence):
        raise TypeError("history must be a list of per-epoch dicts such as {'epoch': 0, "
                        f"'train_loss': 0.7, 'val_loss': 0.8}}, got {type(history).__name__}")
    if not history:
        raise ValueError("history is empty; log at least one epoch")
    metrics: list[str] = []
    has_lr = False
    for index, entry in enumerate(history):
        if not isinstance(entry, Mapping):
            raise TypeError(f"history[{index}] must be a dict of numbers, got "
                            f"{type(entry).__name__}")
        for key in entry:
            split, _, name = str(key).partition("_")
            if split in _SPLITS and name and name not in metrics:
                metrics.append(name)
            has_lr = has_lr or key == "lr"
    metrics.sort(key=lambda name: 0 if "loss" in name else 1)  # stable: losses first
    if not metrics and not has_lr:
        raise ValueError("history has no metric to plot: expected keys such as 'train_loss', "
                         "'val_accuracy' (prefixes train_, val_, test_) or 'lr'")
    return metrics, has_lr


def _curve(history: Sequence[Mapping[str, float]], key: str) -> tuple[np.ndarray, np.ndarray]:
    """Epochs and finite values of ``key`` (entries without it are skipped)."""
    epochs, values = [], []
    for index, entry in enumerate(history):
        value = entry.get(key)
        if value is None:
            continue
        value = float(value)
        if math.isfinite(value):
            epochs.append(float(entry.get("epoch", index)))
            values.append(value)
    return np.asarray(epochs), np.asarray(values)


def plot_learning_curves(history: Sequence[Mapping[str, float]],
                         path: str | os.PathLike, *, best_epoch: int | None = None) -> None:
    """Training curves: one panel per metric (train/val/test curves), learning rate apart.

    Metric families are found from the key prefixes ``train_``, ``val_`` and ``test_``:
    ``train_loss`` and ``val_loss`` share the panel ``loss``. The x axis is the entry's
    ``epoch`` (its index in ``history`` when absent). Keys may be missing from any entry,
    and ``None`` or non-finite values are skipped. ``lr`` gets its own panel, on a log
    scale when every value is positive. Other keys (timings, ...) are ignored.

    Args:
        history: per-epoch dicts, e.g. ``{"epoch": 0, "train_loss": 0.7, "val_loss": 0.8,
            "train_accuracy": 0.6, "val_accuracy": 0.55, "lr": 1e-3}``.
        path: PNG file to write (atomically).
        best_epoch: marked by a dashed vertical line in every panel (e.g. the epoch of
            the checkpoint that was tested); ``None``: no mark.

    Raises:
        TypeError: ``history`` not a list of dicts.
        ValueError: empty history, or no ``train_*``/``val_*``/``test_*`` key nor ``lr``.
    """
    metrics, has_lr = _learning_curve_panels(history)
    panels = [*metrics, *(["lr"] if has_lr else [])]
    columns = min(3, len(panels))
    rows = math.ceil(len(panels) / columns)
    figure = new_figure(4.0 * columns, 3.0 * rows)
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for ax, panel in zip(axes, panels, strict=False):
        keys = ["lr"] if panel == "lr" else [f"{split}_{panel}" for split in _SPLITS]
        drawn = 0
        for key in keys:
            epochs, values = _curve(history, key)
            if values.size == 0:
                continue
            label = key.partition("_")[0] if panel != "lr" else "lr"
            ax.plot(epochs, values, marker="o" if values.size <= 30 else None, markersize=3,
                    label=label)
            drawn += 1
            if panel == "lr" and (values > 0).all():
                ax.set_yscale("log")
        if best_epoch is not None and drawn:
            ax.axvline(float(best_epoch), color="0.4", linestyle="--", linewidth=1,
                       label=f"best epoch ({best_epoch})")
        ax.set_title("learning rate" if panel == "lr" else panel.replace("_", " "))
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if drawn and panel != "lr":
            ax.legend(fontsize=8)
        elif drawn == 0:
            ax.text(0.5, 0.5, "no finite values", ha="center", va="center",
                    transform=ax.transAxes)
    for ax in axes[len(panels):]:
        ax.set_axis_off()
    figure.tight_layout()
    save_figure(figure, path)


def plot_confusion_matrix(
    matrix: np.ndarray | torch.Tensor,
    path: str | os.PathLike,
    *,
    class_names: Sequence[str] | None = None,
    title: str = "Confusion matrix",
) -> None:
    r"""A confusion matrix: counts in the cells, colour by row-normalised frequency.

    Cell :math:`(i, j)` counts the samples of true class :math:`i` predicted as
    :math:`j`; its colour is :math:`C_{ij} / \sum_{j'} C_{ij'}` (the recall of class
    :math:`i` on the diagonal; 0 for a class without samples). The title adds the
    accuracy :math:`\sum_i C_{ii} / \sum_{ij} C_{ij}`. Counts are written in the cells
    for up to 30 classes.

    Args:
        matrix: ``[C, C]`` non-negative counts, rows = true class, columns = predicted.
        path: PNG file to write (atomically).
        class_names: ``C`` names for the axes (default ``0 .. C-1``).
        title: figure title.

    Raises:
        ValueError: a matrix that is not square, has negative or non-finite entries, or
            ``class_names`` of another length.
    """
    counts = float_array(matrix, "matrix")
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1] or counts.shape[0] == 0:
        raise ValueError(f"matrix must be a square [C, C] array of counts (rows = true class, "
                         f"columns = predicted), got shape {list(counts.shape)}")
    if not np.isfinite(counts).all() or (counts < 0).any():
        raise ValueError("matrix must hold finite non-negative counts")
    num_classes = counts.shape[0]
    names = [str(index) for index in range(num_classes)] if class_names is None \
        else [str(name) for name in class_names]
    if len(names) != num_classes:
        raise ValueError(f"class_names has {len(names)} names for {num_classes} classes")
    totals = counts.sum(axis=1, keepdims=True)
    rates = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    total = counts.sum()
    accuracy = float(np.trace(counts) / total) if total > 0 else float("nan")

    side = float(np.clip(0.45 * num_classes + 2.5, 4.0, 16.0))
    figure = new_figure(side + 1.0, side)
    ax = figure.subplots()
    image = ax.imshow(rates, cmap="Blues", vmin=0.0, vmax=1.0)
    figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    if num_classes <= 30:
        integral = np.allclose(counts, np.round(counts))
        fontsize = 9 if num_classes <= 12 else 6
        for i in range(num_classes):
            for j in range(num_classes):
                text = f"{counts[i, j]:.0f}" if integral else f"{counts[i, j]:.3g}"
                ax.text(j, i, text, ha="center", va="center", fontsize=fontsize,
                        color="white" if rates[i, j] > 0.5 else "black")
    ax.set_xticks(np.arange(num_classes), labels=names, rotation=45 if num_classes > 6 else 0,
                  ha="right" if num_classes > 6 else "center")
    ax.set_yticks(np.arange(num_classes), labels=names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(f"{title}\naccuracy {accuracy:.3f} ({total:.0f} samples)")
    figure.tight_layout()
    save_figure(figure, path)
