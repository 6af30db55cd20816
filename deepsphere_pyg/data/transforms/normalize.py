r"""Fixed affine normalisation of the maps: :class:`Normalize`."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
from torch_geometric.transforms import BaseTransform

from .checks import check_finite, node_mask, node_values

__all__ = ["Normalize", "channel_statistics"]


def channel_statistics(blocks: Iterable[np.ndarray], empty: str) -> dict[str, list[float]]:
    r"""Per-channel mean :math:`\mu` and standard deviation :math:`\sigma` over the rows of
    ``blocks`` (each ``[N_b, C]``, the valid nodes of one sample), accumulated in float64:
    the statistics of :class:`Normalize`. A channel without spread gets :math:`\sigma = 1`.

    Raises:
        ValueError: ``empty`` (the caller's message), when the blocks hold no row.
    """
    total = squares = None
    count = 0
    for block in blocks:
        block = np.asarray(block, dtype=np.float64).reshape(block.shape[0], -1)
        if total is None:
            total, squares = np.zeros(block.shape[1]), np.zeros(block.shape[1])
        total += block.sum(axis=0)
        squares += (block**2).sum(axis=0)
        count += block.shape[0]
    if count == 0:
        raise ValueError(empty)
    mean = total / count
    std = np.sqrt(np.maximum(squares / count - mean**2, 0.0))
    std[std == 0] = 1.0
    return {"mean": mean.tolist(), "std": std.tolist()}


def _per_channel(value: float | Sequence[float], name: str) -> np.ndarray:
    array = np.atleast_1d(np.asarray(value, dtype=np.float64))
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{name} must be a number or a 1-D sequence (one per channel)")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return array


class Normalize(BaseTransform):
    r"""Normalise ``data.x`` with fixed statistics: :math:`x \leftarrow (x - \mu) / \sigma`.

    ``mean`` and ``std`` are one number for all channels or one per channel (e.g.
    statistics of the training set). Nodes where ``data.node_mask`` is ``False`` are left
    unchanged (they hold the fill value of :class:`ApplyMask`).

    Args:
        mean: :math:`\mu`, a number or ``[F]``.
        std: :math:`\sigma > 0`, a number or ``[F]``.

    Shapes:
        - **input:** ``data.x`` ``[N]`` or ``[N, F]``.
        - **output:** same shape and dtype.

    Raises:
        ValueError: ``std <= 0``; lengths that do not match the channels of ``data.x``;
            NaN or infinite values at unmasked nodes.
    """

    def __init__(self, mean: float | Sequence[float], std: float | Sequence[float]) -> None:
        self.mean = _per_channel(mean, "mean")
        self.std = _per_channel(std, "std")
        if np.any(self.std <= 0):
            raise ValueError(f"std must be > 0, got {std!r}")

    def forward(self, data: Any) -> Any:
        owner = type(self).__name__
        x = node_values(data, owner)
        mask = node_mask(data, x.shape[0], owner)
        check_finite(x, owner, mask)
        channels = 1 if x.dim() == 1 else x.shape[1]
        for name, value in (("mean", self.mean), ("std", self.std)):
            if value.size not in (1, channels):
                raise ValueError(
                    f"{owner}: {name} has {value.size} values but data.x has {channels} "
                    "channels; give one value or one per channel")
        mean = torch.as_tensor(self.mean, dtype=x.dtype, device=x.device)
        std = torch.as_tensor(self.std, dtype=x.dtype, device=x.device)
        if x.dim() == 1:
            mean, std = mean[0], std[0]
        out = (x - mean) / std
        if mask is not None:
            shape = (-1,) + (1,) * (x.dim() - 1)
            out = torch.where(mask.to(x.device).view(shape), out, x)
        data.x = out
        return data

    def __repr__(self) -> str:
        def fmt(array: np.ndarray) -> str:
            return repr(float(array[0])) if array.size == 1 else repr(array.tolist())

        return f"{type(self).__name__}(mean={fmt(self.mean)}, std={fmt(self.std)})"
