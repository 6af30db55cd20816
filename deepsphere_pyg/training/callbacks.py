"""Lightning callbacks of the engine: random-state checkpointing, the per-epoch record and
the resume hint of an interrupted run."""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import random
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.trainer.states import TrainerFn

from ..io import write_text_atomic


class BatchNormRecalibration(pl.Callback):
    r"""Recompute the batch-norm running statistics before every validation.

    The running averages of batch norm lag the weights while the learning rate is large,
    and on the cosmology maps the lag is as large as the class signal: evaluated with them
    the network sits at chance in many epochs (BENCHMARKS.md, "Normalisation in the models"
    and "DeepSphere v1 table"). Before each validation this callback resets them and
    averages the statistics of ``batches`` training batches under the current weights
    (:func:`torch.optim.swa_utils.update_bn`, cumulative averages), leaving torch's random
    state as it was (so dropout masks and random transforms are unchanged).

    Args:
        batches: training batches averaged (``>= 1``).
    """

    def __init__(self, batches: int) -> None:
        self.batches = int(batches)

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule
                                  ) -> None:
        from torch.optim.swa_utils import update_bn

        model = pl_module.model
        if trainer.sanity_checking or not any(
                isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules()):
            return
        state = torch.get_rng_state()
        try:
            with torch.no_grad():
                update_bn(itertools.islice(trainer.train_dataloader, self.batches), model,
                          device=pl_module.device)
        finally:
            torch.set_rng_state(state)
            model.eval()


class RandomState(pl.Callback):
    """Saves the random generators in every checkpoint and restores them on resume.

    The state is taken when a checkpoint is written (after an epoch's validation) and put
    back when training starts after a resume, before the next epoch's data iterator is
    created (creating one draws a base seed from the global generator): the resumed run
    continues from the state of the uninterrupted one, so dropout masks and random
    transforms of the resumed epochs are the same. (Shuffling does not depend on it: the
    training sampler is seeded by ``seed + epoch``.) The states are stored as
    tensors and plain numbers, so checkpoints load with ``weights_only=True``.
    """

    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        kind, keys, position, has_gauss, gauss = np.random.get_state()  # noqa: NPY002 - the global state is saved
        version, python_state, python_gauss = random.getstate()
        state: dict[str, Any] = {
            "torch": torch.get_rng_state(),
            "numpy": {"kind": str(kind), "keys": torch.from_numpy(np.asarray(keys).astype(
                np.int64)), "position": int(position), "has_gauss": int(has_gauss),
                "gauss": float(gauss)},
            "python": {"version": int(version), "state": list(python_state),
                       "gauss": python_gauss},
        }
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending = state_dict

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._pending is None:
            return
        state, self._pending = self._pending, None
        torch.set_rng_state(state["torch"])
        numpy_state = state["numpy"]
        np.random.set_state((numpy_state["kind"],  # noqa: NPY002 - restored as saved
                             numpy_state["keys"].numpy().astype(np.uint32),
                             numpy_state["position"], numpy_state["has_gauss"],
                             numpy_state["gauss"]))
        python_state = state["python"]
        random.setstate((python_state["version"], tuple(python_state["state"]),
                         python_state["gauss"]))
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])


class EpochRecord(pl.Callback):
    """Keeps one row of metrics per epoch and writes ``metrics.csv`` and
    ``history.json`` in the run folder after every epoch (on the global rank 0).

    A row holds ``epoch``, ``lr`` (first parameter group), ``epoch_time_s`` and every
    epoch-level metric logged by the module (``train_loss``, ``val_accuracy``...). The
    rows are part of the checkpoint, so a resumed run continues the same record. Only
    ``Trainer.fit`` restores them: testing (or validating) on an earlier checkpoint, such
    as ``best.ckpt``, keeps the record of the whole run.
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.rows: list[dict[str, float]] = []
        self._epoch_start = 0.0
        self._epoch_lr: float | None = None
        self._restore_rows = True

    def state_dict(self) -> dict[str, Any]:
        return {"rows": [dict(row) for row in self.rows]}

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        # Lightning calls this just before load_state_dict, with the trainer's stage set.
        self._restore_rows = trainer.state.fn == TrainerFn.FITTING

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if self._restore_rows:
            self.rows = [dict(row) for row in state_dict.get("rows", [])]
        self._restore_rows = True

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule
                             ) -> None:
        self._epoch_start = time.perf_counter()
        # The rate the epoch trains with (epoch schedules step before on_train_epoch_end).
        self._epoch_lr = (float(trainer.optimizers[0].param_groups[0]["lr"])
                          if trainer.optimizers else None)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule
                           ) -> None:
        if trainer.sanity_checking:
            return
        row: dict[str, float] = {"epoch": int(trainer.current_epoch)}
        if self._epoch_lr is not None:
            row["lr"] = self._epoch_lr
        row["epoch_time_s"] = round(time.perf_counter() - self._epoch_start, 3)
        for name, value in sorted(trainer.callback_metrics.items()):
            if name.startswith(("train_", "val_")):
                row[name] = float(value)
        self.rows = [r for r in self.rows if r["epoch"] != row["epoch"]] + [row]
        if trainer.is_global_zero:
            self.write()

    def write(self) -> None:
        """Write ``metrics.csv`` and ``history.json`` atomically."""
        keys: list[str] = []
        for row in self.rows:
            keys.extend(key for key in row if key not in keys)
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=keys, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        write_text_atomic(self.folder / "metrics.csv", buffer.getvalue())
        write_text_atomic(self.folder / "history.json",
                          json.dumps(_finite(self.rows), indent=1) + "\n")


def resume_command(folder: str | Path) -> str:
    """The command line that continues the run in ``folder``."""
    return f"deepsphere-pyg train --output {shlex.quote(str(folder))} --resume"


class ResumeHint(pl.Callback):
    """Tells how to continue a run stopped by Ctrl-C (``KeyboardInterrupt``).

    Lightning catches the interrupt, prints "Detected KeyboardInterrupt, attempting
    graceful shutdown" and exits with status 1; before that it calls ``on_exception``,
    where this callback prints (on the global rank 0, to standard error) what the run
    folder holds and the exact ``--resume`` command. A run stopped before its first
    epoch ended has no checkpoint: resuming it starts again at epoch 0 with the
    folder's ``config.yaml``.

    Args:
        folder: the run folder (``checkpoints/last.ckpt`` is looked for there).
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def message(self, trainer: pl.Trainer) -> str:
        """The lines printed after an interrupt."""
        last = self.folder / "checkpoints" / "last.ckpt"
        if last.is_file():
            record = next((c for c in trainer.callbacks if isinstance(c, EpochRecord)), None)
            epochs = f"{len(record.rows)} finished epoch(s)" if record is not None \
                else "the last finished epoch"
            state = f"{last} holds {epochs}; resuming continues from there"
        else:
            state = ("no epoch had finished (no checkpoint yet); resuming starts again at "
                     f"epoch 0 with {self.folder / 'config.yaml'}")
        return (f"run interrupted: {state}.\n"
                f"continue it with: {resume_command(self.folder)}")

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                     exception: BaseException) -> None:
        if isinstance(exception, KeyboardInterrupt) and trainer.is_global_zero:
            print(self.message(trainer), file=sys.stderr, flush=True)


def _finite(value: Any) -> Any:
    """NaN / inf become ``None`` so the JSON is standard."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value
