r"""Masking unobserved nodes: :class:`ApplyMask`."""

from __future__ import annotations

from typing import Any

import healpy as hp
import numpy as np
import torch
from torch_geometric.transforms import BaseTransform

from ...graphs.checks import pixels_from_mask
from .checks import NODE_KEYS, array_digest, check_finite, node_mask, node_values

__all__ = ["ApplyMask"]


def _as_boolean(mask: object) -> np.ndarray:
    array = mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(
            f"mask must be a non-empty 1-D boolean or 0/1 array (one flag per node), got "
            f"shape {array.shape}")
    if array.dtype != bool:
        if not np.issubdtype(array.dtype, np.number) or not np.all((array == 0) | (array == 1)):
            raise ValueError("mask must be boolean or hold only 0 and 1 (1 = observed)")
        array = array.astype(bool)
    if not array.any():
        raise ValueError("mask keeps no node; at least one node must be observed")
    return array


class ApplyMask(BaseTransform):
    r"""Mask the unobserved nodes of every sample with one fixed mask.

    ``mask`` flags the observed nodes (``True``/1) in the node order of ``data.x``.

    * ``drop=False`` (default): the nodes keep their place (the graph stays the full
      one); ``data.x`` is set to ``fill`` at unobserved nodes and ``data.node_mask``
      (``[N]`` bool) becomes ``mask`` (AND an existing ``node_mask``). Later transforms of
      this package leave unobserved nodes unchanged, and losses and pooling can weight by
      ``node_mask``. NaN at unobserved nodes are allowed (they are replaced).
    * ``drop=True``: unobserved nodes are removed from ``x``, ``y_node`` and
      ``node_mask``; use it with a graph built on the same mask
      (``SphereHierarchy.healpix(nside, levels, mask=mask)``), whose node order is the
      increasing order of the kept nodes, as here.

    Args:
        mask: ``[N]`` boolean or 0/1 array or tensor.
        drop: remove (``True``) or zero-fill (``False``) unobserved nodes.
        fill: value of unobserved nodes when ``drop=False``.
        nest: optional; when given, ``mask`` is a full-sky HEALPix map in that ordering
            (NEST if ``True``) and is checked for the other ordering (see
            :func:`~deepsphere_pyg.graphs.healpix_graph`'s ``check_ordering``).

    Shapes:
        - **input:** ``data.x`` ``[N]`` or ``[N, F]``.
        - **output:** ``[N(, F)]``, or ``[N_kept(, F)]`` with ``drop=True``.

    Raises:
        ValueError: a mask that keeps nothing or is not 0/1; a sample whose node count
            differs from the mask's; NaN at observed nodes; with ``nest``, a mask of a
            length that is not ``12 nside^2`` or that looks like the other ordering.
    """

    def __init__(self, mask: object, *, drop: bool = False, fill: float = 0.0,
                 nest: bool | None = None) -> None:
        self.mask = _as_boolean(mask)
        if nest is not None:
            if not isinstance(nest, bool):
                raise TypeError(f"nest must be True, False or None, got {nest!r}")
            try:
                nside = hp.npix2nside(self.mask.size)
            except ValueError as error:
                raise ValueError(
                    f"mask has {self.mask.size} entries, not 12 nside^2 for any nside; a "
                    "HEALPix mask (nest given) must cover the full sky") from error
            pixels_from_mask(self.mask, nside, nest, check_ordering=True)
        self.nest = nest
        self.drop = bool(drop)
        self.fill = float(fill)
        self._keep = torch.from_numpy(self.mask)

    def forward(self, data: Any) -> Any:
        owner = type(self).__name__
        x = node_values(data, owner)
        if x.shape[0] != self.mask.size:
            raise ValueError(
                f"{owner}: data.x has {x.shape[0]} nodes but the mask has {self.mask.size} "
                "entries; build the mask in the node order of the samples")
        keep = self._keep.to(x.device)
        previous = node_mask(data, x.shape[0], owner)
        check_finite(x, owner, keep if previous is None else keep & previous.to(x.device))
        if self.drop:
            for key in NODE_KEYS:
                value = getattr(data, key, None)
                if isinstance(value, torch.Tensor):
                    setattr(data, key, value[keep.to(value.device)])
            data.num_nodes = int(self.mask.sum())
            return data
        shape = (-1,) + (1,) * (x.dim() - 1)
        data.x = torch.where(keep.view(shape), x, torch.full_like(x, self.fill))
        data.node_mask = keep.clone() if previous is None else keep & previous.to(x.device)
        return data

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(mask=<{int(self.mask.sum())} of {self.mask.size} "
                f"nodes, {array_digest(np.packbits(self.mask))}>, drop={self.drop}, "
                f"fill={self.fill})")
