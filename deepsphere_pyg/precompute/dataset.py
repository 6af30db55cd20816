"""A ``Dataset`` that serves the precomputed features of a store for training."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .store import CoefficientStore

__all__ = ["CachedCoefficients"]


class CachedCoefficients(torch.utils.data.Dataset):
    """Dataset of stored coefficients (and targets) for training.

    ``dataset[i]`` is ``store[i]`` (``[N_out, C_out]``), or ``(store[i], y_i)`` when
    ``targets`` is given, or ``data_cls(x=store[i], y=y_i)`` when ``data_cls`` is given
    (e.g. ``torch_geometric.data.Data``, or a Data subclass that stacks ``x`` into
    ``[B, N_out, C_out]`` batches). With tensors or tuples, torch's default collate stacks a
    batch into ``[B, N_out, C_out]``.

    The store is opened lazily in each process, so the dataset works with
    ``DataLoader(num_workers > 0)``.

    Args:
        path: Store directory.
        targets: Optional per-map targets (sequence, array or tensor of length num_maps);
            ``y_i = torch.as_tensor(targets[i])``.
        data_cls: Optional class called as ``data_cls(x=..., y=...)`` (``y`` only with
            targets).
        require_complete: Refuse a store with missing maps (default ``True``).

    Raises:
        ValueError: not a store, an incomplete store (with ``require_complete``), or
            targets of the wrong length.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        targets: Sequence[Any] | np.ndarray | torch.Tensor | None = None,
        *,
        data_cls: Callable[..., Any] | None = None,
        require_complete: bool = True,
    ):
        self.path = Path(path)
        store = CoefficientStore.open(self.path)
        self._num_maps = store.num_maps
        if require_complete:
            missing = int((~store.done_mask()).sum())
            if missing:
                raise ValueError(
                    f"the store {self.path} misses {missing} of {store.num_maps} maps; finish "
                    f"it with precompute(...) or pass require_complete=False"
                )
        if targets is not None and len(targets) != self._num_maps:
            raise ValueError(
                f"targets has length {len(targets)}, the store holds {self._num_maps} maps"
            )
        self.targets = targets
        self.data_cls = data_cls
        self._store: CoefficientStore | None = store

    @property
    def store(self) -> CoefficientStore:
        """The opened store (opened again after pickling)."""
        if self._store is None:
            self._store = CoefficientStore.open(self.path)
        return self._store

    def __len__(self) -> int:
        return self._num_maps

    def __getitem__(self, index: int) -> Any:
        x = self.store[index]
        if self.targets is None:
            return x if self.data_cls is None else self.data_cls(x=x)
        y = torch.as_tensor(self.targets[index])
        return (x, y) if self.data_cls is None else self.data_cls(x=x, y=y)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_store"] = None
        return state

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r}, num_maps={self._num_maps})"
