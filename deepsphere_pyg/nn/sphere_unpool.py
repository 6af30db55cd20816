"""SphereUnpool: copy parent values to their children, or place them at the max indices."""

from __future__ import annotations

import torch
from torch import Tensor

from .sphere_pool import (
    ModeLayer,
    check_mode,
    check_pool_index,
    infer_num_parents,
    is_regular_pool_index,
)

UNPOOL_MODES = ("nearest", "max-indices")


def sphere_unpool(
    x: Tensor,
    pool_index: Tensor | None,
    mode: str = "nearest",
    indices: Tensor | None = None,
    num_children: int | None = None,
) -> Tensor:
    """Functional form of :class:`SphereUnpool` (same arguments and results)."""
    check_mode(mode, UNPOOL_MODES)
    if not isinstance(x, Tensor) or x.dim() not in (2, 3):
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"x must be [N_parent, F] or [B, N_parent, F], got {shape}")
    node_dim = x.dim() - 2
    num_parents = x.shape[node_dim]
    if num_children is not None:
        num_children = int(num_children)
    if pool_index is not None:
        pool_index = check_pool_index(pool_index, num_children)
        if pool_index.device != x.device:
            raise ValueError(
                f"pool_index is on {pool_index.device} but x is on {x.device}; "
                "move it with .to()"
            )
        num_children = pool_index.numel()

    if mode == "max-indices":
        if indices is None:
            raise ValueError(
                "mode='max-indices' needs indices: call SpherePool(mode='max') with "
                "return_indices=True and pass the indices it returns"
            )
        if num_children is None:
            raise ValueError("mode='max-indices' needs pool_index or num_children")
        if not isinstance(indices, Tensor) or indices.shape != x.shape:
            shape = tuple(indices.shape) if isinstance(indices, Tensor) else indices
            raise ValueError(
                f"indices must have the shape of x {tuple(x.shape)} (as returned by the "
                f"pooling of this signal), got {shape}"
            )
        if indices.dtype != torch.long:
            raise TypeError(f"indices must be a LongTensor, got dtype {indices.dtype}")
        out_shape = list(x.shape)
        out_shape[node_dim] = num_children
        return x.new_zeros(out_shape).scatter(node_dim, indices, x)

    if pool_index is None:
        raise ValueError("mode='nearest' needs pool_index (the parent of every child)")
    if indices is not None:
        raise ValueError("indices are only used by mode='max-indices'; drop them or switch mode")
    if is_regular_pool_index(pool_index):
        if num_parents != num_children // 4:
            raise ValueError(
                f"x has {num_parents} parent nodes but pool_index maps {num_children} "
                f"children to {num_children // 4} parents"
            )
        return x.repeat_interleave(4, dim=node_dim)
    needed = 0 if torch.compiler.is_compiling() else infer_num_parents(pool_index)
    if needed > num_parents:
        raise ValueError(
            f"pool_index refers to parent {needed - 1} but x has only {num_parents} parent "
            "nodes; pass the signal of the next coarser level"
        )
    return x.index_select(node_dim, pool_index)


class SphereUnpool(ModeLayer):
    r"""Unpooling of sphere signals from one level of a hierarchy to the next, finer one.

    With ``pool_index`` :math:`\pi` mapping each child :math:`i` to its parent:

    .. math::
        \mathbf{x}'_i = \mathbf{x}_{\pi(i)} \quad (\text{"nearest"}), \qquad
        \mathbf{x}'_{i,c} = \begin{cases} \mathbf{x}_{\pi(i),c} & i = a_{\pi(i),c} \\
        0 & \text{otherwise} \end{cases} \quad (\text{"max-indices"}),

    where :math:`a_{p,c}` is the child that held the maximum of parent :math:`p` in channel
    :math:`c`, as returned by :class:`SpherePool` ``(mode="max", return_indices=True)``.
    ``"nearest"`` is a gather (a ``repeat_interleave`` for the regular NEST map
    ``arange(N) // 4``); ``"max-indices"`` a scatter. On a masked hierarchy only the
    observed children listed in ``pool_index`` receive values.

    Args:
        mode (str, optional): ``"nearest"`` (default) or ``"max-indices"``.

    Shapes:
        - **input:** ``x`` :math:`(N', F)` (one graph, or a disjoint PyG batch with an
          offset ``pool_index``) or :math:`(B, N', F)` (shared graph), ``pool_index``
          :math:`(N)` *(optional for "max-indices" when* ``num_children`` *is given)*,
          ``indices`` the shape of ``x`` *("max-indices" only)*, ``num_children`` an int
          *(optional; default* ``len(pool_index)`` *)*.
        - **output:** :math:`(N, F)` or :math:`(B, N, F)`.
    """

    modes = UNPOOL_MODES
    default_mode = "nearest"

    def forward(
        self,
        x: Tensor,
        pool_index: Tensor | None,
        indices: Tensor | None = None,
        num_children: int | None = None,
    ) -> Tensor:
        return sphere_unpool(x, pool_index, self.mode, indices, num_children)
