"""Apply a trained checkpoint to maps on disk and write the predictions.

The checkpoint carries its configuration, so the model (and its input normalisation) is
rebuilt exactly as trained; only the weights are read, with ``weights_only=True``.

Outputs, in the output folder:

- classification: ``predictions.csv`` (one row per map: source, predicted class, name,
  class probabilities) and ``predictions.json``;
- per-node tasks on HEALPix: one FITS map per input (``<name>_prediction.fits``, NEST,
  ``UNSEEN`` outside the model's pixels; the predicted class, or the first regression
  target), written atomically;
- per-node tasks on other samplings: ``predictions.npy`` ``[M, N, C]``.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import healpy as hp
import numpy as np
import torch

from ..data.files import HealpixFileDataset
from ..data.signal import SphereSignal
from ..io import atomic_path, write_text_atomic
from . import config as configuration
from .engine import input_transform, read_checkpoint_config
from .experiments import build_hierarchy, build_model, dataset_arguments, get_experiment


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """A checkpoint file, or a run folder's ``checkpoints/best.ckpt`` (else ``last.ckpt``).

    Raises:
        FileNotFoundError: neither exists.
    """
    path = Path(path)
    if path.is_dir():
        for name in ("best.ckpt", "last.ckpt"):
            candidate = path / "checkpoints" / name
            if candidate.is_file():
                return candidate
        raise FileNotFoundError(f"{str(path)!r} is a folder without checkpoints/best.ckpt or "
                                "checkpoints/last.ckpt: give a run folder or a .ckpt file")
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    return path


def load_trained_model(checkpoint: str | os.PathLike
                       ) -> tuple[torch.nn.Module, dict[str, Any], Any]:
    """Rebuild the model of a checkpoint and load its weights.

    Returns:
        ``(model in eval mode, configuration, hierarchy)``.

    Raises:
        FileNotFoundError: no checkpoint.
        ValueError: not an engine checkpoint; weights that do not fit the model rebuilt
            from the stored configuration.
    """
    path = resolve_checkpoint(checkpoint)
    config = read_checkpoint_config(path)
    experiment = get_experiment(config["experiment"])
    dataset = experiment.dataset("test", 1, int(config["seed"]),
                                 **dataset_arguments(config["data"], "test"))
    hierarchy = build_hierarchy(dataset, config["graph"])
    return _load_weights(path, config, hierarchy), config, hierarchy


def read_inputs(paths: Sequence[str], ordering: str | None, hierarchy: Any
                ) -> tuple[list[torch.Tensor], list[str], int | None]:
    """Input maps as ``[N, F]`` tensors in the model's node order.

    HEALPix models read FITS / ``.npy`` through :class:`HealpixFileDataset` (NEST; on a
    partial-sky model the model's pixels are taken from full-sky maps); other samplings
    read a ``.npy`` array ``[M, N]`` or ``[M, N, F]`` in the graph's node order.

    Returns ``(maps, names, nside or None)``.
    """
    graph = hierarchy[0]
    nodes = int(graph.num_nodes)
    if str(getattr(graph, "sampling", "")) == "healpix":
        maps = HealpixFileDataset(paths, ordering=ordering)
        nside = int(graph.nside)
        if maps.nside != nside:
            raise ValueError(f"the maps have nside {maps.nside}; the checkpoint's model "
                             f"takes nside {nside} (data.nside of its configuration)")
        pixels = getattr(graph, "pixels", None)
        tensors = []
        for index in range(len(maps)):
            x = maps[index].x
            tensors.append(x[pixels] if pixels is not None else x)
        names = ([f"{Path(maps.paths[0]).stem}_{index}" for index in range(len(maps))]
                 if maps.is_npy else [Path(path).stem for path in maps.paths])
        return tensors, names, nside
    if len(paths) != 1 or not str(paths[0]).endswith(".npy"):
        raise ValueError(f"the model is on a {graph.sampling} graph: give one .npy file "
                         f"[M, {nodes}] or [M, {nodes}, F] in the graph's node order")
    path = Path(paths[0])
    if not path.is_file():
        raise FileNotFoundError(f"input {str(path)!r} does not exist")
    array = np.load(path, mmap_mode="r")
    if array.ndim not in (2, 3) or array.shape[1] != nodes:
        raise ValueError(f"{path}: expected shape [M, {nodes}] or [M, {nodes}, F], got "
                         f"{list(array.shape)}")
    tensors = [torch.from_numpy(np.asarray(array[m], dtype=np.float32)).reshape(nodes, -1)
               for m in range(array.shape[0])]
    return tensors, [f"{path.stem}_{m}" for m in range(len(tensors))], None


def predict(checkpoint: str | os.PathLike, inputs: Sequence[str], output: str | os.PathLike,
            *, ordering: str | None = None, batch_size: int = 16,
            overrides: Sequence[str] = ()) -> list[Path]:
    """Predict every input map with a checkpoint; returns the files written.

    A model trained on the user's files (the ``files`` experiment) reads ``inputs`` as
    files of its ``data.source`` with the run's options, changed by ``overrides``
    (``"data.KEY=VALUE"``, e.g. a mask file that moved), and writes its predictions in
    their format (:func:`predict_files`).

    Raises:
        ValueError: ``overrides`` for a run of a generated experiment, or naming a key
            outside ``data`` or a key that changes the model (``data.inputs``, the
            targets, the normalisations).
    """
    config = read_checkpoint_config(resolve_checkpoint(checkpoint))
    if get_experiment(config["experiment"]).user_data:
        if ordering is not None:
            config["data"]["ordering"] = ordering
        for text in overrides:
            key, value = configuration.parse_override(text)
            section, _, name = key.partition(".")
            if section != "data" or name in FIXED_AT_PREDICT:
                raise ValueError(f"predict --set {text!r}: only data keys that say how to "
                                 "read the inputs may change (not "
                                 f"{', '.join(FIXED_AT_PREDICT)})")
            config = configuration.merge(config, configuration.nest_override(key, value),
                                         source=f"predict --set {text!r}")
        return predict_files(checkpoint, inputs, output, batch_size=batch_size,
                             config=config)
    if overrides:
        raise ValueError("predict --set applies to runs of the files experiment; this run "
                         f"is of {config['experiment']!r}")
    model, config, hierarchy = load_trained_model(checkpoint)
    experiment = get_experiment(config["experiment"])
    maps, names, nside = read_inputs(inputs, ordering, hierarchy)
    normalize = input_transform(config["data"])
    expected = model.in_channels
    outputs = []
    with torch.no_grad():
        for start in range(0, len(maps), batch_size):
            chunk = []
            for x in maps[start:start + batch_size]:
                if x.shape[-1] != expected:
                    raise ValueError(f"the maps have {x.shape[-1]} channel(s); the model "
                                     f"takes {expected}")
                if normalize is not None:
                    x = _apply(normalize, x)
                chunk.append(x)
            outputs.append(model(torch.stack(chunk)))
    result = torch.cat(outputs)
    folder = Path(output)
    folder.mkdir(parents=True, exist_ok=True)
    kind = experiment.task_for(config["data"])
    if kind == "classification":
        return _write_classes(result, names, experiment.names_of_classes(config["data"]),
                              folder)
    return _write_node_maps(result, names, kind, hierarchy[0], nside, folder)


def _apply(normalize: Any, x: torch.Tensor) -> torch.Tensor:
    from ..data.signal import SphereSignal

    return normalize(SphereSignal(x=x.clone())).x


def _write_classes(logits: torch.Tensor, names: list[str], classes: tuple[str, ...],
                   folder: Path) -> list[Path]:
    probabilities = torch.softmax(logits, dim=-1)
    predicted = probabilities.argmax(-1)
    rows = []
    for name, label, probs in zip(names, predicted.tolist(), probabilities.tolist(),
                                  strict=True):
        rows.append({"input": name, "class": label,
                     "name": classes[label] if classes else str(label),
                     **{f"p_{c}": round(p, 6) for c, p in enumerate(probs)}})
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(folder / "predictions.csv", buffer.getvalue())
    write_text_atomic(folder / "predictions.json", json.dumps(rows, indent=1) + "\n")
    return [folder / "predictions.csv", folder / "predictions.json"]


def _write_node_maps(result: torch.Tensor, names: list[str], task: str, graph: Any,
                     nside: int | None, folder: Path) -> list[Path]:
    values = result.argmax(-1).float() if task == "segmentation" else result[..., 0]
    if nside is None:
        path = folder / "predictions.npy"
        _save_npy_atomic(path, result.numpy())
        return [path]
    pixels = getattr(graph, "pixels", None)
    written = []
    for name, node_values in zip(names, values.numpy(), strict=True):
        full = np.full(hp.nside2npix(nside), hp.UNSEEN, dtype=np.float64)
        full[np.arange(full.size) if pixels is None else pixels.numpy()] = node_values
        path = folder / f"{name}_prediction.fits"
        _write_fits_atomic(path, full)
        written.append(path)
    return written


def _write_fits_atomic(path: Path, values: np.ndarray) -> None:
    with atomic_path(path, ".fits") as tmp:
        hp.write_map(str(tmp), values, nest=True, overwrite=True, dtype=np.float64)


def _save_npy_atomic(path: Path, array: np.ndarray) -> None:
    with atomic_path(path, ".npy") as tmp:
        np.save(tmp, array)


#: ``data`` keys of a files run that ``predict --set`` may not change (they define the
#: model's inputs and outputs).
FIXED_AT_PREDICT = ("source", "inputs", "labels", "target", "lead", "history",
                    "num_classes", "class_names", "normalize", "normalization",
                    "normalize_target", "target_normalization")


def predict_files(checkpoint: str | os.PathLike, inputs: Sequence[str],
                  output: str | os.PathLike, *, batch_size: int = 16,
                  config: dict[str, Any] | None = None) -> list[Path]:
    """Predict the user's files ``inputs`` with a checkpoint of the ``files`` experiment.

    The files are read as the run's ``data.source`` with its options (variables, mask,
    region, columns); the graphs are built on them with the run's ``graph`` section, so
    that the nodes may differ from the training files' (a fully convolutional model, such
    as the U-Net, applies to another region or station set). Every sample with enough
    history is predicted; nodes whose inputs are missing get NaN.

    Outputs: classification, ``predictions.csv`` / ``.json`` (one row per sample, named as
    the source names them); per-node tasks, the source's own format
    (:meth:`~deepsphere_pyg.data.sources.base.FileSource.write`: FITS / HealSparse maps,
    a netCDF / zarr Dataset on the input's coordinates, a CSV / Parquet table) with one
    channel ``class`` (segmentation) or ``<target>_prediction`` per target (regression;
    a forecast is written at the time of its last input, ``data.lead`` samples before
    the time it predicts).

    Raises:
        ValueError: inputs without the run's variables, or a model that does not fit them.
    """
    from ..data.sources import open_source

    path = resolve_checkpoint(checkpoint)
    config = read_checkpoint_config(path) if config is None else config
    arguments = dataset_arguments(config["data"], "test")
    kind = get_experiment(config["experiment"]).task_for(config["data"])
    # HEALPix maps without data.mask take their nodes from the maps' valid pixels: each
    # file is predicted on its own, whatever else is listed.
    groups = ([[item] for item in inputs] if arguments.get("source") == "healpix"
              and arguments.get("mask") is None else [list(inputs)])
    stored = torch.load(path, map_location="cpu", weights_only=True)  # once for all inputs
    folder = Path(output)
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    logits, names = [], []
    for group in groups:
        try:
            source = open_source(arguments.get("source"), group, arguments)
        except FileNotFoundError as error:
            raise FileNotFoundError(f"{error} (data.path is the inputs given to predict; "
                                    "data.mask and data.labels are the run's: change them "
                                    "with predict --set data.mask=...)") from error
        result, positions, valid = _predict_source(source, config, arguments, path,
                                                   stored, batch_size)
        if kind == "classification":
            logits.append(result)
            names += [source.names[position] for position in positions]
            continue
        if kind == "segmentation":
            values, channels = result.argmax(-1, keepdim=True).float().numpy(), ["class"]
        else:
            values = result.reshape(result.shape[0], result.shape[1], -1).numpy()
            stats = config["data"].get("target_normalization") or {}
            if stats:  # the model predicts standardised targets (data.normalize_target)
                values = values * np.asarray(stats["std"]) + np.asarray(stats["mean"])
            targets = config["data"].get("target") or _run_inputs(config)
            targets = [targets] if isinstance(targets, str) else list(targets)
            channels = [f"{name}_prediction" for name in targets][:values.shape[-1]]
        values = values.astype(np.float32)
        values[~valid] = np.nan
        written += source.write(values, positions, channels, folder)
    if kind == "classification":
        classes = get_experiment(config["experiment"]).names_of_classes(config["data"])
        return _write_classes(torch.cat(logits), names, classes, folder)
    return written


def _predict_source(source: Any, config: Mapping[str, Any], arguments: Mapping[str, Any],
                    path: Path, stored: Mapping[str, Any], batch_size: int
                    ) -> tuple[torch.Tensor, list[int], np.ndarray]:
    """The model's outputs ``[S, ...]`` on every sample of ``source`` with enough history,
    their positions, and the valid nodes ``[S, N]`` (every input finite); ``stored``: the
    checkpoint read from ``path``."""
    from ..data.sources.dataset import forecast_inputs

    hierarchy = build_hierarchy(source, config["graph"])
    model = _load_weights(path, config, hierarchy, stored)
    variables = source.check_variables(_run_inputs(config), "the run's data.inputs")
    history = int(arguments.get("history") or 1)
    positions = list(range(history - 1, source.num_samples))
    if not positions:
        raise ValueError(f"the inputs hold {source.num_samples} samples; the model needs "
                         f"{history} (data.history)")
    normalize = input_transform(config["data"])
    outputs, valid_nodes = [], []
    with torch.no_grad():
        for start in range(0, len(positions), batch_size):
            chunk = []
            for position in positions[start:start + batch_size]:
                x = forecast_inputs(source, position, variables, history)
                valid = np.isfinite(x).all(axis=1)
                sample = SphereSignal(x=torch.from_numpy(
                    np.where(valid[:, None], x, 0.0).astype(np.float32)),
                    node_mask=torch.from_numpy(valid))
                if normalize is not None:
                    sample = normalize(sample)
                chunk.append(sample.x)
                valid_nodes.append(valid)
            outputs.append(model(torch.stack(chunk)))
    return torch.cat(outputs), positions, np.stack(valid_nodes)


def _run_inputs(config: Mapping[str, Any]) -> list[str]:
    """The input variables of a run (stored by the engine in ``data.inputs``)."""
    inputs = config["data"].get("inputs")
    if not inputs:
        raise ValueError("the run's configuration names no data.inputs")
    return [inputs] if isinstance(inputs, str) else list(inputs)


def _load_weights(path: Path, config: Mapping[str, Any], hierarchy: Any,
                  stored: Mapping[str, Any] | None = None) -> torch.nn.Module:
    """The model of ``config`` on ``hierarchy`` with the checkpoint's weights (``stored``:
    the checkpoint already read from ``path``, else it is read)."""
    if stored is None:
        stored = torch.load(path, map_location="cpu", weights_only=True)
    weights = {key.removeprefix("model."): value for key, value in stored["state_dict"].items()
               if key.startswith("model.")}
    info = stored["deepsphere_pyg"]
    model = build_model(config["model"], hierarchy, int(info["in_channels"]),
                        int(info["out_channels"]))
    try:
        model.load_state_dict(weights)
    except RuntimeError as error:
        raise ValueError(f"{path}: the weights do not fit the model of its configuration "
                         f"on these inputs ({error})") from error
    return model.eval()
