"""Training runs: configuration -> data, model, Lightning trainer -> run folder.

:func:`train` is what ``deepsphere-pyg train`` calls. A run folder holds::

    config.yaml             resolved configuration (every value the run used)
    checkpoints/last.ckpt   end of the latest epoch (resume from it)
    checkpoints/best.ckpt   best validation epoch (train.monitor), used for the test
    metrics.csv             one row per epoch (losses, scores, learning rate, time)
    history.json            the same rows as JSON
    metrics.json            final test metrics, best epoch, timings, the history (every
                            epoch of the run, also those after the best one)
    *.png                   example inputs, learning curves, confusion matrix or
                            prediction map

Resuming (:func:`resume_config`, ``train(..., resume=True)``) continues from
``last.ckpt`` with the folder's own ``config.yaml``; only the keys of
:data:`~deepsphere_pyg.training.config.RESUME_MUTABLE` may change. A larger
``train.epochs`` extends the run, its learning-rate schedule rebuilt over the new total
(:func:`~deepsphere_pyg.training.task.fit_schedule`). A run stopped before its first
epoch ended (no checkpoint yet) starts again at epoch 0; a finished run is reported as
complete and left unchanged.

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
from collections.abc import Iterable, Mapping
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
from ..data.transforms.normalize import channel_statistics
from ..io import write_text_atomic
from ..precompute.sharding import ProcessLayout, read_environment
from . import config as configuration
from .callbacks import (
    BatchNormRecalibration,
    EpochRecord,
    RandomState,
    ResumeHint,
    resume_command,
)
from .checkpoints import checkpoint_epoch, read_checkpoint_config
from .experiments import (
    TASKS,
    Experiment,
    build_hierarchy,
    build_model,
    dataset_arguments,
    get_experiment,
)
from .resolution import check_config, resolve_config, resume_config
from .task import SphereTask, scheduled_lr

#: Samples of the training split used to fit the input normalisation.
NORMALIZATION_SAMPLES = 256


@dataclass
class RunResult:
    """What a finished run returns (also written to ``metrics.json``).

    ``already_complete`` is true when ``train(..., resume=True)`` found the run finished
    (nothing trained or written; ``metrics`` are those of its ``metrics.json``).
    """

    folder: Path
    config: dict[str, Any]
    metrics: dict[str, Any]
    already_complete: bool = False


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
    samples of ``dataset`` (valid nodes only), or over the ``limit`` samples that its
    ``normalization_positions(limit)`` names (spread over a time series)."""
    chosen = getattr(dataset, "normalization_positions", None)
    positions = chosen(limit) if chosen is not None else range(min(limit, len(dataset)))
    return channel_statistics(
        (_valid_inputs(dataset[int(index)]) for index in positions),
        "data.normalize: no node of the training samples read has every input channel "
        "finite (an input variable missing everywhere?); check data.inputs")


def _valid_inputs(sample: Any) -> np.ndarray:
    """``[N_valid, C]`` float64 inputs of a sample at its valid nodes (``node_mask``)."""
    x = sample.x.double().reshape(sample.x.shape[0], -1)
    mask = getattr(sample, "node_mask", None)
    return (x if mask is None else x[mask]).numpy()


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
    settled = getattr(datasets["train"], "settled", None)
    if settled is not None:  # keys the user's files decide (the classes of their labels)
        data.update(settled())
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
    if experiment.task_for(config["data"]) == "regression":
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
    kind = experiment.task_for(config["data"])
    classes = None if kind == "regression" else out_channels
    return SphereTask(model, kind, classes, config["train"], config)


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
        ResumeHint(folder),
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


def check_resume(folder: Path, config: Mapping[str, Any]
                 ) -> tuple[Path | None, dict[str, Any]]:
    """The checkpoint to resume and the configuration it was trained with.

    The run's stored configuration (``checkpoints/last.ckpt``'s, or the folder's
    ``config.yaml`` when the run stopped before its first epoch ended) is the base;
    settings changed since (other than
    :data:`~deepsphere_pyg.training.config.RESUME_MUTABLE`) are refused.

    Returns:
        ``(last.ckpt, config)``, or ``(None, config)`` for a run without a checkpoint
        (it starts again at epoch 0).

    Raises:
        FileNotFoundError: neither ``checkpoints/last.ckpt`` nor ``config.yaml`` in
            ``folder``.
        ValueError: the run was trained with another configuration (the differing keys
            are listed).
    """
    last = folder / "checkpoints" / "last.ckpt"
    saved = folder / "config.yaml"
    if last.is_file():
        stored, source = read_checkpoint_config(last), f"{last} was trained"
    elif saved.is_file():
        stored = configuration.migrate(configuration.load_yaml(saved), source=str(saved))
        source = f"{saved} (a run stopped before its first epoch ended) was written"
    else:
        raise FileNotFoundError(f"--resume: no checkpoint {str(last)!r} (nor config.yaml); "
                                "start the run without --resume")
    mine = dict(config)
    if not mine["data"].get("normalization") and stored["data"].get("normalization"):
        mine = {**mine, "data": {**mine["data"],
                                 "normalization": stored["data"]["normalization"]}}
    changed = configuration.differences(stored, mine)
    if changed:
        raise ValueError(f"--resume: {source} with another configuration; differences "
                         f"(run != now): {'; '.join(changed)}")
    return (last if last.is_file() else None), mine


def finished_metrics(folder: Path, epochs_done: int, epochs: int) -> dict[str, Any] | None:
    """The ``metrics.json`` of a run that needs no more training, else ``None``.

    A run is finished when ``metrics.json`` describes the ``epochs_done`` epochs of its
    last checkpoint (the test ran after the latest epoch) and ``epochs`` asks for no more
    (or the run stopped early and ``epochs`` is not above the number it had planned).
    """
    path = folder / "metrics.json"
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(metrics, dict) or metrics.get("epochs_run") != epochs_done:
        return None
    if epochs <= epochs_done or (metrics.get("stopped_early")
                                 and epochs <= int(metrics.get("epochs_planned") or 0)):
        return metrics
    return None


def resume_note(folder: Path, epochs_done: int, before: Mapping[str, Any] | None,
                train: Mapping[str, Any]) -> str:
    """What a resumed run does: where it continues and, when ``train.epochs`` changed
    since the checkpoint (``before``: its ``train`` section), the schedule it follows."""
    epochs = int(train["epochs"])
    if before is None:
        return (f"resume: no epoch of {folder} had finished (no checkpoint); starting again "
                f"at epoch 0 with its config.yaml")
    if epochs_done >= epochs:
        return (f"resume: {folder} has trained its {epochs_done} epochs; testing "
                "checkpoints/best.ckpt")
    note = f"resume: continuing {folder} at epoch {epochs_done} of {epochs}"
    old = int(before["epochs"])
    if old == epochs:
        return note
    schedule = train.get("scheduler", "cosine")
    rate = scheduled_lr(train, epochs_done)
    if schedule in ("cosine", "step"):
        how = (f"the {schedule} learning-rate schedule is rebuilt over {epochs} epochs: "
               f"epoch {epochs_done} trains at lr {rate:.3g}, as in a run planned for "
               f"{epochs} epochs")
    elif schedule == "plateau":
        how = "the plateau schedule continues from the checkpoint's learning rate"
    else:
        how = f"the learning rate stays {rate:.3g}"
    return f"{note} (train.epochs {old} -> {epochs}; {how})"


def train(config: dict[str, Any], folder: str | os.PathLike | None = None, *,
          resume: bool = False, callbacks: Iterable[pl.Callback] = (),
          figures: bool = True) -> RunResult:
    """Train, validate and test one configuration; write the run folder.

    Args:
        config: a resolved configuration (:func:`resolve_config`, or
            :func:`resume_config` to resume).
        folder: run folder (default :func:`default_folder`). It must not hold a run
            unless ``resume``.
        resume: continue from ``folder/checkpoints/last.ckpt`` (same configuration but
            for :data:`~deepsphere_pyg.training.config.RESUME_MUTABLE`); start again at
            epoch 0 when the run stopped before its first checkpoint; return the stored
            metrics (``already_complete``) when the run is finished.
        callbacks: extra Lightning callbacks.
        figures: write the PNG figures (needs matplotlib).

    Returns:
        the folder, the configuration (with the fitted normalisation) and the final
        metrics.

    Raises:
        ValueError / FileNotFoundError: bad configuration, an occupied folder without
            ``resume``, a checkpoint of another configuration, fewer ``train.epochs``
            than a resumed run has trained.
    """
    layout = read_environment()
    folder = Path(folder) if folder is not None else default_folder(config["experiment"])
    checkpoint_path = None
    epochs_done = 0
    if resume:
        checkpoint_path, config = check_resume(folder, config)
        epochs = int(config["train"]["epochs"])
        if checkpoint_path is not None:
            epochs_done = checkpoint_epoch(checkpoint_path) + 1
        finished = finished_metrics(folder, epochs_done, epochs)
        if finished is not None:
            return RunResult(folder, config, finished, already_complete=True)
        if epochs < epochs_done:
            raise ValueError(f"--resume: the run in {str(folder)!r} has trained "
                             f"{epochs_done} epochs; train.epochs={epochs} is fewer: set "
                             f"train.epochs >= {epochs_done} (or leave it out)")
        before = (read_checkpoint_config(checkpoint_path)["train"]
                  if checkpoint_path is not None else None)
        if layout.rank == 0:
            print(resume_note(folder, epochs_done, before, config["train"]), flush=True)
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
        if resume:  # the run's own checkpoints, replaced as it continues
            warnings.filterwarnings("ignore", message=".*exists and is not empty.*")
        trainer.fit(task, loaders["train"], loaders["val"], ckpt_path=checkpoint_path,
                    weights_only=True)
        train_seconds = time.perf_counter() - start
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback \
            else ""
        tested = trainer.test(task, loaders["test"], ckpt_path=best or None,
                              weights_only=True, verbose=False)
    metrics = {key: float(value) for key, value in (tested[0] if tested else {}).items()}
    confusion = task.test_confusion_matrix()
    history = [dict(row) for row in record.rows]
    result = {
        "experiment": config["experiment"],
        "task": experiment.task_for(config["data"]),
        **metrics,
        "best_checkpoint": os.path.relpath(best, folder) if best else None,
        "best_epoch": checkpoint_epoch(best) if best else None,
        "monitor": config["train"]["monitor"],
        "best_score": _best_score(trainer),
        "epochs_run": len(history),
        "epochs_planned": int(config["train"]["epochs"]),
        "stopped_early": len(history) < int(config["train"]["epochs"]),
        "resumed_at_epoch": epochs_done if resume else None,
        "train_seconds": round(train_seconds, 2),
        "world_size": layout.world_size,
        "parameters": int(sum(p.numel() for p in task.model.parameters())),
        "confusion_matrix": None if confusion is None else confusion.cpu().tolist(),
        "history": history,
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


__all__ = ["RunResult", "TASKS", "check_config", "resolve_config", "resume_command",
           "resume_config", "train"]
