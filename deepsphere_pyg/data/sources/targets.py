"""What a ``files`` configuration asks the model for: its task, read from the data section
(no file is opened, nothing heavy is imported: the configuration checks use it)."""

from __future__ import annotations

import glob
import os
from collections.abc import Mapping
from typing import Any

#: ``data`` keys holding file paths, made absolute when a configuration is resolved.
PATH_KEYS = ("path", "labels", "mask")


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


def glob_items(items: list[Any], expand: bool = True) -> list[tuple[str, bool]]:
    """``(path, matched)`` for each of ``items``: a glob pattern (``expand``) gives its
    matches, sorted, each with ``True``, or itself with ``False`` when it matches nothing;
    a plain path gives itself, with ``True``."""
    out: list[tuple[str, bool]] = []
    for item in items:
        text = os.fspath(item)
        matches = sorted(glob.glob(text)) if expand and glob.has_magic(text) else None
        if matches is None:
            out.append((text, True))
        else:
            out.extend([(match, True) for match in matches] or [(text, False)])
    return out


def absolute_paths(data: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a ``data`` section whose file paths (:data:`PATH_KEYS`) are absolute,
    relative ones taken from the current folder, glob patterns of ``path`` expanded
    (sorted): a run's configuration then names the same files from any folder (resume,
    predict) and compares equal to the same configuration given again. Paths that do not
    exist are kept (the data set reports them); lists in ``labels`` (inline labels) and
    arrays are left alone."""
    settled = dict(data)
    for key in PATH_KEYS:
        value = settled.get(key)
        if isinstance(value, (str, os.PathLike)):
            items, single = [value], key != "path"
        elif key == "path" and isinstance(value, (list, tuple)) and all(
                isinstance(item, (str, os.PathLike)) for item in value):
            items, single = list(value), False
        else:
            continue
        expanded = [os.path.abspath(text) for text, _ in
                    glob_items(items, expand=key == "path")]
        settled[key] = expanded[0] if single else expanded
    return settled
