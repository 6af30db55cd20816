"""The figures of a run folder: example inputs, learning curves, confusion matrix or
prediction map."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from .experiments import Experiment
from .task import SphereTask

#: Test samples shown in ``examples.png``.
NUM_EXAMPLES = 4


def write_run_figures(folder: Path, config: Mapping[str, Any], experiment: Experiment,
                      test_set: Any, task: SphereTask, result: Mapping[str, Any],
                      graph: Any) -> list[Path]:
    """Write ``examples.png``, ``learning_curves.png`` and ``confusion_matrix.png``
    (class tasks) or ``prediction.png`` (per-node tasks) into ``folder``; ``graph`` is
    the input level's :class:`~deepsphere_pyg.graphs.SphereGraph`. Returns the paths."""
    from .. import plots

    names = experiment.names_of_classes(config["data"])
    samples = [test_set[index] for index in range(min(NUM_EXAMPLES, len(test_set)))]
    written = []

    inputs, titles = [], []
    for sample in samples:
        inputs.append(sample.x.reshape(sample.x.shape[0], -1)[:, -1].cpu())
        titles.append(_label(sample, experiment, names))
    if graph is not None and inputs:
        path = folder / "examples.png"
        plots.plot_maps(inputs, graph, path, titles=titles)
        written.append(path)

    path = folder / "learning_curves.png"
    plots.plot_learning_curves(result["history"], path)
    written.append(path)

    if result.get("confusion_matrix") is not None and experiment.task == "classification":
        path = folder / "confusion_matrix.png"
        plots.plot_confusion_matrix(torch.tensor(result["confusion_matrix"]).numpy(), path,
                                    class_names=names or None,
                                    title=f"test set, accuracy "
                                          f"{100 * result.get('test_accuracy', 0):.1f} %")
        written.append(path)
    elif graph is not None and samples:
        path = folder / "prediction.png"
        sample = samples[0]
        task.eval()
        with torch.no_grad():
            output = task(sample.x.unsqueeze(0).to(task.device))[0].cpu()
        if experiment.task == "segmentation":
            truth, predicted = sample.y_node.float(), output.argmax(-1).float()
        else:
            truth = sample.y_node.reshape(sample.y_node.shape[0], -1)[:, 0]
            predicted = output.reshape(output.shape[0], -1)[:, 0]
        plots.plot_maps([sample.x.reshape(sample.x.shape[0], -1)[:, -1], truth, predicted],
                        graph, path, titles=["input (last channel)", "target", "prediction"])
        written.append(path)
        if result.get("confusion_matrix") is not None:
            path = folder / "confusion_matrix.png"
            plots.plot_confusion_matrix(torch.tensor(result["confusion_matrix"]).numpy(),
                                        path, class_names=names or None,
                                        title="test set, per node")
            written.append(path)
    return written


def _label(sample: Any, experiment: Experiment, names: tuple[str, ...]) -> str:
    if experiment.task == "classification":
        label = int(sample.y.reshape(-1)[0])
        return f"class {names[label] if names else label}"
    return "input"
