r"""White Gaussian noise added to the maps: :class:`AddNoise`."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch_geometric.transforms import BaseTransform

from .checks import RandomStream, check_finite, check_nonnegative, node_mask, node_values

__all__ = ["AddNoise"]


class AddNoise(BaseTransform):
    r"""Add white Gaussian noise to ``data.x``: :math:`x_i \leftarrow x_i + \sigma\, n_i`.

    :math:`n_i \sim \mathcal N(0, 1)` independently per node and channel. With
    ``relative=False`` :math:`\sigma` is ``std``; with ``relative=True`` it is ``std``
    times the standard deviation of each channel of this sample (the relative noise level
    of DeepSphere v1, computed per sample). Nodes where ``data.node_mask`` is ``False``
    are left unchanged and do not enter the standard deviation.

    Args:
        std: noise level (absolute, or relative to the sample's standard deviation).
        relative: see above.
        seed: seed of the noise: with a seed, a fresh transform repeats the same sequence
            of draws; ``None`` draws from torch's global generator.

    Shapes:
        - **input:** ``data.x`` ``[N]`` or ``[N, F]``.
        - **output:** same shape and dtype.

    Raises:
        ValueError: ``std < 0``; NaN or infinite values in ``data.x`` (unmasked nodes).
    """

    def __init__(self, std: float, relative: bool = False, seed: int | None = None) -> None:
        self.std = check_nonnegative(std, "std")
        self.relative = bool(relative)
        self._stream = RandomStream(seed)
        self.seed = self._stream.seed

    def forward(self, data: Any) -> Any:
        owner = type(self).__name__
        x = node_values(data, owner)
        mask = node_mask(data, x.shape[0], owner)
        check_finite(x, owner, mask)
        rng = self._stream.next()
        values = x.detach().cpu().double().numpy()
        columns = values.reshape(values.shape[0], -1)
        keep = np.ones(columns.shape[0], dtype=bool) if mask is None else mask.cpu().numpy()
        scale = np.full(columns.shape[1], self.std)
        if self.relative:
            scale = scale * columns[keep].std(axis=0)
        noise = rng.standard_normal(columns.shape) * scale
        noise[~keep] = 0.0
        out = (columns + noise).reshape(values.shape)
        data.x = torch.from_numpy(out).to(dtype=x.dtype, device=x.device)
        return data

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(std={self.std}, relative={self.relative}, "
                f"seed={self.seed})")
