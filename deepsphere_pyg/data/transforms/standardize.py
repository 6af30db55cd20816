r"""Per-sample standardisation of the maps: :class:`Standardize`."""

from __future__ import annotations

from typing import Any

import torch
from torch_geometric.transforms import BaseTransform

from .checks import check_finite, node_mask, node_values

__all__ = ["Standardize"]


class Standardize(BaseTransform):
    r"""Standardise each channel of each sample: :math:`x \leftarrow (x - \bar x) / s`.

    :math:`\bar x` and :math:`s` (population standard deviation) are computed per sample
    and channel over the nodes where ``data.node_mask`` is ``True`` (all nodes without a
    mask); nodes outside the mask are left unchanged. Use :class:`Normalize` for fixed
    (training-set) statistics, which keep the relative amplitudes of the samples.

    Shapes:
        - **input:** ``data.x`` ``[N]`` or ``[N, F]``.
        - **output:** same shape and dtype.

    Raises:
        ValueError: NaN or infinite values at unmasked nodes; a constant channel
            (:math:`s = 0`).
    """

    def forward(self, data: Any) -> Any:
        owner = type(self).__name__
        x = node_values(data, owner)
        mask = node_mask(data, x.shape[0], owner)
        check_finite(x, owner, mask)
        columns = x.reshape(x.shape[0], -1)
        keep = (torch.ones(x.shape[0], dtype=torch.bool, device=x.device) if mask is None
                else mask.to(x.device))
        observed = columns[keep].double()
        mean = observed.mean(dim=0)
        std = observed.std(dim=0, unbiased=False)
        if bool((std == 0).any()):
            raise ValueError(
                f"{owner}: channel(s) {torch.nonzero(std == 0).flatten().tolist()} of data.x "
                "are constant and cannot be standardised")
        out = ((columns.double() - mean) / std).to(x.dtype)
        out = torch.where(keep[:, None], out, columns)
        data.x = out.reshape(x.shape)
        return data

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
