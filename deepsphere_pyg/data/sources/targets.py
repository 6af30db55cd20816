"""What a ``files`` configuration asks the model for: its task, read from the data section
(no file is opened, nothing heavy is imported: the configuration checks use it)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def task_of(labels: object, target: object, lead: object, num_classes: object) -> str:
    """The task of a ``files`` configuration: ``"classification"`` with ``labels``,
    ``"segmentation"`` with a per-node ``target`` and ``num_classes``, ``"regression"``
    otherwise.

    Raises:
        ValueError: ``labels`` together with ``target`` / ``lead``, or none of them.
    """
    if labels is not None and (target is not None or lead is not None):
        raise ValueError("data.labels (one class per sample) cannot be combined with "
                         "data.target / data.lead (per-node targets): give one of them")
    if labels is None and target is None and lead is None:
        raise ValueError("data: give the targets: data.labels (a class per sample), "
                         "data.target (per-node target variables) or data.lead (forecast "
                         "the inputs lead samples later)")
    if labels is not None:
        return "classification"
    if num_classes is not None and lead is None:
        return "segmentation"
    return "regression"


def task_of_data(data: Mapping[str, Any]) -> str:
    """:func:`task_of` of a ``data`` configuration section.

    Raises:
        ValueError: no ``data.source`` (saying what the section needs), or the faults of
            :func:`task_of`.
    """
    if data.get("source") is None:
        raise ValueError("data.source is not set: the files experiment trains on your own "
                         "files; set data.source (healpix, grid or stations), data.path and "
                         "the targets (data.labels, data.target or data.lead); deepsphere-pyg "
                         "train --help shows a YAML file for each source")
    return task_of(data.get("labels"), data.get("target"), data.get("lead"),
                   data.get("num_classes"))
