"""Reading the checkpoints the training engine writes (``weights_only=True``, CPU)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from . import config as configuration
from .experiments import GRAPH_DEFAULTS

__all__ = ["checkpoint_epoch", "read_checkpoint_config"]


def _load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """A checkpoint's content (``weights_only=True``, on the CPU).

    Raises:
        FileNotFoundError: no such file.
        ValueError: not loadable with ``weights_only=True``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - unpickling errors have many types
        raise ValueError(f"{path} is not a loadable checkpoint ({error})") from error
    if not isinstance(checkpoint, dict):
        raise ValueError(f"{path} is not a training checkpoint (a {type(checkpoint).__name__})")
    return checkpoint


def read_checkpoint_config(path: str | os.PathLike) -> dict[str, Any]:
    """The configuration stored in a checkpoint written by the engine.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a checkpoint of this library (or not loadable with
            ``weights_only=True``).
    """
    checkpoint = _load_checkpoint(path)
    if "deepsphere_pyg" not in checkpoint:
        raise ValueError(f"{path} is not a deepsphere_pyg training checkpoint (no "
                         "'deepsphere_pyg' entry)")
    config = dict(checkpoint["deepsphere_pyg"]["config"])
    if "graph" not in config:  # written before the graph settings had their own section
        config = configuration.migrate(config, source=f"checkpoint {path}")
        config["graph"] = {**GRAPH_DEFAULTS, **config.get("graph", {})}
    return config


def checkpoint_epoch(path: str | os.PathLike) -> int:
    """The epoch (0-based) at whose end a checkpoint of the engine was written: the best
    epoch for ``best.ckpt``; ``last.ckpt`` holds ``checkpoint_epoch + 1`` finished epochs.

    Raises:
        FileNotFoundError / ValueError: as :func:`read_checkpoint_config`.
    """
    checkpoint = _load_checkpoint(path)
    if "epoch" not in checkpoint:
        raise ValueError(f"{path} is not a Lightning training checkpoint (no 'epoch')")
    return int(checkpoint["epoch"])
