"""Training runs: configuration -> data, model, Lightning trainer -> run folder.

:func:`train` is what ``deepsphere-pyg train`` calls. A run folder holds::

    config.yaml             resolved configuration (every value the run used)
    checkpoints/last.ckpt   end of the latest epoch (resume from it)
    checkpoints/best.ckpt   best validation epoch (train.monitor), used for the test
    metrics.csv             one row per epoch (losses, scores, learning rate, time)
    history.json            the same rows as JSON
    metrics.json            final test metrics, best epoch, timings, the history
    *.png                   example inputs, learning curves, confusion matrix or
                            prediction map

The same function runs unchanged under ``torchrun``: it reads ``WORLD_SIZE``,
``LOCAL_WORLD_SIZE`` and ``RANK`` and asks Lightning for DDP over all processes (gloo on
CPU, NCCL on GPUs); each process trains on its share of the samples (a
:class:`~torch.utils.data.DistributedSampler` seeded by ``seed + epoch``), metrics are
reduced over all processes, and only the global rank 0 writes files.
"""

from __future__ import annotations

import json
import logging
import os
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DistributedSampler
from torch_geometric.loader import DataLoader

from ..data.base import SyntheticSphereDataset
from ..data.transforms import Normalize
from ..io import write_text_atomic
from ..precompute.sharding import ProcessLayout, read_environment
from . import config as configuration
from .callbacks import BatchNormRecalibration, EpochRecord, RandomState
from .experiments import (
    DEFAULT_EXPERIMENT,
    GRAPH_DEFAULTS,
    TASKS,
    Experiment,
    build_hierarchy,
    build_model,
    dataset_arguments,
    get_experiment,
)
from .task import SphereTask

#: Samples of the training split used to fit the input normalisation.
NORMALIZATION_SAMPLES = 256


@dataclass
class RunResult:
    """What a finished run returns (also written to ``metrics.json``)."""

    folder: Path
    config: dict[str, Any]
    metrics: dict[str, Any]


def resolve_config(experiment: str | None = None, config_files: Sequence[str] = (),
                   overrides: Sequence[str] = ()) -> dict[str, Any]:
    """The configuration of a run: the experiment's defaults, then the YAML files, then
    the ``KEY=VALUE`` overrides.

    The experiment is ``experiment`` if given, else the ``experiment`` key of the last
    file naming one, else :data:`DEFAULT_EXPERIMENT`.

    Raises:
        ValueError: unknown experiment, unknown keys, bad values (see
            :func:`check_config`); a file or override that names another experiment.
        FileNotFoundError: a missing ``--config`` file.
    """
    files = [configuration.load_yaml(path) for path in config_files]
    named = [content["experiment"] for content in files if "experiment" in content]
    name = experiment or (named[-1] if named else DEFAULT_EXPERIMENT)
    resolved = configuration.resolve(get_experiment(name).defaults(), files, overrides)
    if resolved["experiment"] != name:
        raise ValueError(f"the configuration names experiment {resolved['experiment']!r} "
                         f"but the run is {name!r}: choose it with --experiment")
    check_config(resolved)
    return resolved


def _positive_int(value: Any, key: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{key} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_config(config: Mapping[str, Any]) -> None:
    """Check the engine's own keys (the data set and model check theirs when built).

    Raises:
        ValueError: naming the key, the bad value and what is expected.
    """
    train = config["train"]
    _positive_int(config["seed"], "seed", 0)
    for key in ("epochs", "batch_size", "eval_batch_size"):
        _positive_int(train[key], f"train.{key}")
    _positive_int(train["num_workers"], "train.num_workers", 0)
    _positive_int(train["recalibrate_bn"], "train.recalibrate_bn", 0)
    for key in ("lr", "weight_decay"):
        value = train[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or (
                key == "lr" and value == 0):
            raise ValueError(f"train.{key} must be a number {'> 0' if key == 'lr' else '>= 0'}"
                             f", got {value!r}")
    if train["patience"] is not None:
        _positive_int(train["patience"], "train.patience")
    if train["threads"] is not None:
        _positive_int(train["threads"], "train.threads")
    if train["gradient_clip"] is not None and (
            not isinstance(train["gradient_clip"], (int, float)) or train["gradient_clip"] <= 0):
        raise ValueError(f"train.gradient_clip must be null or a number > 0, got "
                         f"{train['gradient_clip']!r}")
    if train["accelerator"] not in ("auto", "cpu", "gpu", "cuda"):
        raise ValueError(f"train.accelerator must be 'auto', 'cpu' or 'gpu', got "
                         f"{train['accelerator']!r}")
    task = get_experiment(config["experiment"]).task
    metrics = ["val_loss"] + (["val_mse", "val_r2"] if task == "regression"
                              else ["val_accuracy"])
    if train["monitor"] not in metrics:
        raise ValueError(f"train.monitor must be one of {metrics} for a {task} task, got "
                         f"{train['monitor']!r}")
    data = config["data"]
    for key in ("train_samples", "val_samples", "test_samples"):
        if data[key] is not None:
            _positive_int(data[key], f"data.{key}")
    if not isinstance(data["normalization"], Mapping):
        raise ValueError("data.normalization must be a mapping {mean: [...], std: [...]} "
                         f"or empty, got {data['normalization']!r}")
    graph = config["graph"]
    _positive_int(graph["levels"], "graph.levels")
    ks = graph["k"] if isinstance(graph["k"], list) else [graph["k"]]
    for index, k in enumerate(ks):
        _positive_int(k, "graph.k" if len(ks) == 1 else f"graph.k[{index}]")


def build_datasets(config: Mapping[str, Any], transform: Any = None
                   ) -> dict[str, SyntheticSphereDataset]:
    """The train, val and test data sets of a configuration.

    Raises:
        ValueError: a data set argument the class rejects (named with its ``data.``
            key when the class names it).
    """
    experiment = get_experiment(config["experiment"])
    data, seed = config["data"], int(config["seed"])
    datasets = {}
    for split in ("train", "val", "test"):
        try:
            datasets[split] = experiment.dataset(
                split, data[f"{split}_samples"], seed, transform=transform,
                cache=bool(data["cache"]), **dataset_arguments(data, split))
        except TypeError as error:
            raise ValueError(f"data: {error} (check the data.* keys of the configuration)"
                             ) from error
        except ValueError as error:
            raise ValueError(f"data: {error}") from error
    return datasets


def fit_normalization(dataset: SyntheticSphereDataset, limit: int = NORMALIZATION_SAMPLES
                      ) -> dict[str, list[float]]:
    """Per-channel mean and standard deviation of the inputs over the first ``limit``
    samples of ``dataset`` (valid nodes only)."""
    total = np.zeros(0)
    squares = np.zeros(0)
    count = 0
    for index in range(min(limit, len(dataset))):
        sample = dataset[index]
        x = sample.x.double().reshape(sample.x.shape[0], -1)
        mask = getattr(sample, "node_mask", None)
        if mask is not None:
            x = x[mask]
        if total.size == 0:
            total, squares = np.zeros(x.shape[1]), np.zeros(x.shape[1])
        total += x.sum(0).numpy()
        squares += x.pow(2).sum(0).numpy()
        count += x.shape[0]
    mean = total / count
    std = np.sqrt(np.maximum(squares / count - mean**2, 0.0))
    std[std == 0] = 1.0
    return {"mean": mean.tolist(), "std": std.tolist()}


def input_transform(data: Mapping[str, Any]) -> Normalize | None:
    """The input normalisation of a configuration (``None`` when off)."""
    stats = data.get("normalization") or {}
    if not data.get("normalize") and not stats:
        return None
    if "mean" not in stats or "std" not in stats:
        raise ValueError("data.normalization must hold 'mean' and 'std' (fitted by the "
                         "engine when data.normalize is true)")
    return Normalize(stats["mean"], stats["std"])


def prepare(config: dict[str, Any]) -> tuple[dict[str, SyntheticSphereDataset], Any]:
    """Build the data sets, fit the input normalisation if asked (stored into ``config``)
    and attach it to every split. Returns ``(datasets, hierarchy)``."""
    datasets = build_datasets(config)
    data = config["data"]
    if data["normalize"] and not data["normalization"]:
        data["normalization"] = fit_normalization(datasets["train"])
    transform = input_transform(data)
    for dataset in datasets.values():
        # Applied when a sample is read: cached samples stay unnormalised, read once.
        dataset.transform = transform
    try:
        hierarchy = build_hierarchy(datasets["train"], config["graph"])
    except (TypeError, ValueError) as error:
        raise ValueError(f"graph (levels / k / edges / kernel): {error}") from error
    return datasets, hierarchy


def output_size(experiment: Experiment, config: Mapping[str, Any], sample: Any) -> int:
    """Model outputs: classes, or targets per node for regression."""
    if experiment.task == "regression":
        target = sample.y_node
        return 1 if target.dim() == 1 else int(target.shape[-1])
    names = experiment.names_of_classes(config["data"])
    if names:
        return len(names)
    return int(config["data"]["num_classes"])


def make_task(config: dict[str, Any], datasets: Mapping[str, Any], hierarchy: Any
              ) -> SphereTask:
    """The Lightning module of a configuration (model built on ``hierarchy``)."""
    experiment = get_experiment(config["experiment"])
    sample = datasets["train"][0]
    in_channels = 1 if sample.x.dim() == 1 else int(sample.x.shape[-1])
    out_channels = output_size(experiment, config, sample)
    try:
        model = build_model(config["model"], hierarchy, in_channels, out_channels)
    except TypeError as error:
        raise ValueError(f"model: {error} (check the model.* keys of the configuration)"
                         ) from error
    except ValueError as error:
        raise ValueError(f"model: {error}") from error
    classes = None if experiment.task == "regression" else out_channels
    return SphereTask(model, experiment.task, classes, config["train"], config)


def make_loaders(datasets: Mapping[str, Any], train: Mapping[str, Any], seed: int,
                 layout: ProcessLayout) -> dict[str, DataLoader]:
    """PyG loaders: the training split shuffled by a sampler seeded with ``seed + epoch``
    (split over processes), the evaluation splits in order, each process a disjoint
    share (no sample repeated, so metrics are exact)."""
    workers = int(train["num_workers"])
    common = {"num_workers": workers, "persistent_workers": workers > 0}

    def generator(offset: int) -> torch.Generator:
        # A loader's own generator: creating its iterator draws a worker base seed, which
        # must not shift the global stream that dropout and random transforms use.
        return torch.Generator().manual_seed(seed + offset)

    sampler = DistributedSampler(datasets["train"], num_replicas=layout.world_size,
                                 rank=layout.rank, shuffle=True, seed=seed)
    loaders = {"train": DataLoader(datasets["train"], batch_size=int(train["batch_size"]),
                                   sampler=sampler, generator=generator(0), **common)}
    for offset, split in enumerate(("val", "test"), start=1):
        eval_sampler = (UnrepeatedDistributedSampler(
            datasets[split], num_replicas=layout.world_size, rank=layout.rank,
            shuffle=False) if layout.distributed else None)
        loaders[split] = DataLoader(datasets[split],
                                    batch_size=int(train["eval_batch_size"]),
                                    shuffle=False, sampler=eval_sampler,
                                    generator=generator(offset), **common)
    return loaders


class _DropAdvertising(logging.Filter):
    """Drops Lightning's advertisement for a hosted logger from the run's output."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "litlogger" not in record.getMessage()


def make_trainer(config: Mapping[str, Any], folder: Path, layout: ProcessLayout,
                 batches_per_epoch: int,
                 callbacks: Iterable[pl.Callback] = ()) -> tuple[pl.Trainer, EpochRecord]:
    """The Lightning trainer: checkpoints, early stopping, progress, the epoch record."""
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint, TQDMProgressBar

    logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if not any(isinstance(f, _DropAdvertising) for f in logger.filters):
        logger.addFilter(_DropAdvertising())
    train = config["train"]
    mode = "min" if train["monitor"] in ("val_loss", "val_mse") else "max"
    record = EpochRecord(folder)
    every = [
        ModelCheckpoint(dirpath=folder / "checkpoints", filename="best",
                        monitor=train["monitor"], mode=mode, save_top_k=1, save_last=True,
                        enable_version_counter=False),
        RandomState(),
        record,
    ]
    if train["patience"] is not None:
        every.append(EarlyStopping(monitor=train["monitor"], mode=mode,
                                   patience=int(train["patience"])))
    if train["recalibrate_bn"]:
        every.append(BatchNormRecalibration(int(train["recalibrate_bn"])))
    if train["progress"]:
        every.append(TQDMProgressBar(refresh_rate=max(1, batches_per_epoch // 20)))
    every.extend(callbacks)
    accelerator = "gpu" if train["accelerator"] == "cuda" else train["accelerator"]
    settings: dict[str, Any] = {}
    if layout.distributed:
        settings = {"strategy": "ddp", "devices": layout.local_world_size,
                    "num_nodes": layout.world_size // layout.local_world_size}
    else:
        settings = {"devices": 1}
    trainer = pl.Trainer(
        accelerator=accelerator, max_epochs=int(train["epochs"]), callbacks=every,
        logger=False, default_root_dir=str(folder), num_sanity_val_steps=0,
        enable_progress_bar=bool(train["progress"]), enable_model_summary=False,
        gradient_clip_val=train["gradient_clip"], use_distributed_sampler=False,
        log_every_n_steps=1, **settings)
    return trainer, record


def default_folder(experiment: str) -> Path:
    """``runs/<experiment>-<date>-<time>`` (under torchrun: the rendezvous id, which all
    processes share)."""
    run_id = os.environ.get("TORCHELASTIC_RUN_ID")
    stamp = run_id if run_id and run_id != "none" else time.strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{experiment}-{stamp}"


def check_resume(folder: Path, config: Mapping[str, Any]) -> tuple[Path, dict[str, Any]]:
    """The checkpoint to resume and the configuration it was trained with.

    The run folder's ``config.yaml`` is the base; settings changed since (other than
    :data:`~deepsphere_pyg.training.config.RESUME_MUTABLE`) are refused.

    Raises:
        FileNotFoundError: no ``checkpoints/last.ckpt`` in ``folder``.
        ValueError: the checkpoint was trained with another configuration (the differing
            keys are listed).
    """
    last = folder / "checkpoints" / "last.ckpt"
    if not last.is_file():
        raise FileNotFoundError(f"--resume: no checkpoint {str(last)!r}; start the run "
                                f"without --resume")
    stored = read_checkpoint_config(last)
    mine = dict(config)
    if not mine["data"].get("normalization") and stored["data"].get("normalization"):
        mine = {**mine, "data": {**mine["data"],
                                 "normalization": stored["data"]["normalization"]}}
    changed = configuration.differences(stored, mine)
    if changed:
        raise ValueError(f"--resume: {last} was trained with another configuration; "
                         f"differences (checkpoint != now): {'; '.join(changed)}")
    return last, mine


def read_checkpoint_config(path: str | os.PathLike) -> dict[str, Any]:
    """The configuration stored in a checkpoint written by the engine.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a checkpoint of this library (or not loadable with
            ``weights_only=True``).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - unpickling errors have many types
        raise ValueError(f"{path} is not a loadable checkpoint ({error})") from error
    if not isinstance(checkpoint, dict) or "deepsphere_pyg" not in checkpoint:
        raise ValueError(f"{path} is not a deepsphere_pyg training checkpoint (no "
                         "'deepsphere_pyg' entry)")
    config = dict(checkpoint["deepsphere_pyg"]["config"])
    if "graph" not in config:  # written before the graph settings had their own section
        config = configuration.migrate(config, source=f"checkpoint {path}")
        config["graph"] = {**GRAPH_DEFAULTS, **config.get("graph", {})}
    return config


def train(config: dict[str, Any], folder: str | os.PathLike | None = None, *,
          resume: bool = False, callbacks: Iterable[pl.Callback] = (),
          figures: bool = True) -> RunResult:
    """Train, validate and test one configuration; write the run folder.

    Args:
        config: a resolved configuration (:func:`resolve_config`).
        folder: run folder (default :func:`default_folder`). It must not hold a run
            unless ``resume``.
        resume: continue from ``folder/checkpoints/last.ckpt`` (same configuration).
        callbacks: extra Lightning callbacks.
        figures: write the PNG figures (needs matplotlib).

    Returns:
        the folder, the configuration (with the fitted normalisation) and the final
        metrics.

    Raises:
        ValueError / FileNotFoundError: bad configuration, an occupied folder without
            ``resume``, a checkpoint of another configuration.
    """
    layout = read_environment()
    folder = Path(folder) if folder is not None else default_folder(config["experiment"])
    checkpoint_path = None
    if resume:
        checkpoint_path, config = check_resume(folder, config)
    elif (folder / "checkpoints" / "last.ckpt").exists() or (folder / "metrics.json").exists():
        raise ValueError(f"--output {str(folder)!r} already holds a run: pass --resume to "
                         "continue it, or choose another --output")
    experiment = get_experiment(config["experiment"])
    if config["train"]["threads"] is not None:
        torch.set_num_threads(int(config["train"]["threads"]))
    pl.seed_everything(int(config["seed"]), workers=True, verbose=False)
    datasets, hierarchy = prepare(config)
    task = make_task(config, datasets, hierarchy)
    torch.manual_seed(int(config["seed"]) + 1000 * layout.rank)
    if layout.rank == 0:
        configuration.save_yaml(config, folder / "config.yaml")
    loaders = make_loaders(datasets, config["train"], int(config["seed"]), layout)
    trainer, record = make_trainer(config, folder, layout, len(loaders["train"]), callbacks)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*treespec, LeafSpec.*")
        trainer.fit(task, loaders["train"], loaders["val"], ckpt_path=checkpoint_path,
                    weights_only=True)
        train_seconds = time.perf_counter() - start
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback \
            else ""
        tested = trainer.test(task, loaders["test"], ckpt_path=best or None,
                              weights_only=True, verbose=False)
    metrics = {key: float(value) for key, value in (tested[0] if tested else {}).items()}
    confusion = task.test_confusion_matrix()
    result = {
        "experiment": config["experiment"],
        "task": experiment.task,
        **metrics,
        "best_checkpoint": os.path.relpath(best, folder) if best else None,
        "best_score": _best_score(trainer),
        "epochs_run": len(record.rows),
        "train_seconds": round(train_seconds, 2),
        "world_size": layout.world_size,
        "parameters": int(sum(p.numel() for p in task.model.parameters())),
        "confusion_matrix": None if confusion is None else confusion.cpu().tolist(),
        "history": record.rows,
    }
    if layout.rank == 0:
        write_text_atomic(folder / "metrics.json", json.dumps(result, indent=1) + "\n")
        if figures:
            from .figures import write_run_figures

            try:
                write_run_figures(folder, config, experiment, datasets["test"], task,
                                  result, hierarchy[0])
            except ImportError as error:  # matplotlib missing: the run itself is complete
                warnings.warn(f"figures skipped: {error}", stacklevel=2)
    _close_process_group()
    return RunResult(folder, config, result)


def _close_process_group() -> None:
    """Wait for rank 0's files, then shut the process group down, so that no process
    exits while the communication threads still run (which aborts it)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def _best_score(trainer: pl.Trainer) -> float | None:
    callback = trainer.checkpoint_callback
    score = getattr(callback, "best_model_score", None)
    return None if score is None else float(score)


__all__ = ["RunResult", "TASKS", "check_config", "resolve_config", "train"]
