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
    kind = experiment.task_for(config["data"])
    samples = [test_set[index] for index in range(min(NUM_EXAMPLES, len(test_set)))]
    written = [folder / "examples.png", folder / "learning_curves.png"]
    plots.plot_maps([_last_channel(sample) for sample in samples], graph, written[0],
                    titles=[_label(sample, kind, names) for sample in samples])
    plots.plot_learning_curves(result["history"], written[1],
                               best_epoch=result.get("best_epoch"))

    if kind != "classification":
        sample = samples[0]
        task.eval()
        with torch.no_grad():
            output = task(sample.x.unsqueeze(0).to(task.device))[0].cpu()
        if kind == "segmentation":
            truth, predicted = sample.y_node.float(), output.argmax(-1).float()
        else:
            truth = sample.y_node.reshape(sample.y_node.shape[0], -1)[:, 0]
            predicted = output.reshape(output.shape[0], -1)[:, 0]
        written.append(folder / "prediction.png")
        plots.plot_maps([_last_channel(sample), truth, predicted], graph, written[-1],
                        titles=["input (last channel)", "target", "prediction"])

    if result.get("confusion_matrix") is not None:
        accuracy = 100 * result.get("test_accuracy", 0.0)
        scope = "per map" if kind == "classification" else "per node"
        written.append(folder / "confusion_matrix.png")
        plots.plot_confusion_matrix(torch.tensor(result["confusion_matrix"]).numpy(),
                                    written[-1], class_names=names or None,
                                    title=f"test set ({scope}), accuracy {accuracy:.1f} %")
    return written


def _last_channel(sample: Any) -> torch.Tensor:
    """``[N]``: the last input channel of a sample (the most recent map of a sequence)."""
    return sample.x.reshape(sample.x.shape[0], -1)[:, -1].cpu()


def _label(sample: Any, kind: str, names: tuple[str, ...]) -> str:
    if kind == "classification":
        label = int(sample.y.reshape(-1)[0])
        return f"class {names[label] if names else label}"
    return "input"
