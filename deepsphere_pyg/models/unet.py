"""SphericalUNet: encoder-decoder with skip connections for dense per-node outputs."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..graphs.hierarchy import SphereHierarchy
from ..graphs.hierarchy_data import HierarchyLevel
from ..nn import SpherePool, SphereUnpool
from .base import HierarchyBuffers, SphereModel
from .blocks import (
    NORMALIZATION,
    ConvBlock,
    check_channels,
    check_int,
    check_norm,
    check_normalization,
    check_pool,
)

__all__ = ["SphericalUNet"]


class SphericalUNet(SphereModel):
    r"""U-Net on the sphere: per-node outputs (segmentation logits, dense regression).

    With depth ``D`` and widths ``c_0, ..., c_{D-1}`` (the first ``D`` entries of
    ``channels``), every block being ``ChebConv(K) -> Norm -> ReLU`` on one level::

        encoder  e_0 = Block(F -> c_0)(x)                                   level 0
                 e_l = Block(c_{l-1} -> c_l)(pool(e_{l-1}))                 level l, l < D
        decoder  d_{D-1} = e_{D-1}
                 d_l = Block(c_{l+1} + c_l -> c_l)(cat[unpool(d_{l+1}), e_l])  level l
        output   y = Linear(c_0 -> out_channels)(d_0)                       level 0

    Pooling is :class:`~deepsphere_pyg.nn.SpherePool` through the hierarchy's
    ``pool_index``; unpooling is :class:`~deepsphere_pyg.nn.SphereUnpool` ``("nearest")``,
    which copies each parent to its children, and the skip connection concatenates the
    encoder features of the same level (unpooled first, then skip). The network has
    ``2D - 1`` convolution blocks and one per-node linear layer. Convolutions use the
    symmetric normalised Laplacian with :math:`\lambda_\max = 2`, or with
    ``normalization="mass"`` the mass Laplacian of each level's node masses
    (:mod:`deepsphere_pyg.models.blocks`). On a masked hierarchy every level holds only
    observed nodes, so outputs exist exactly on the observed nodes of level 0.

    The graphs are non-persistent buffers (moved by ``.to``, never in ``state_dict``).
    Per-sample graphs come as a :class:`~deepsphere_pyg.graphs.HierarchyData` batch
    (:meth:`~deepsphere_pyg.models.SphereModel.resolve_input`).

    Args:
        hierarchy: the graphs, finest first; input and output live on level 0.
        in_channels: input features per node.
        out_channels: outputs per node (classes, regression targets).
        channels: width per level (default ``(16, 32, 64)``).
        K: Chebyshev terms per convolution (default 3).
        depth: number of levels used, ``1 <= depth <= min(len(hierarchy), len(channels))``;
            default ``None``: that minimum.
        norm: normalisation after every convolution: ``"batch"`` (default), ``"layer"``
            (per sample, over nodes and channels), ``"none"`` or ``None``
            (:class:`~deepsphere_pyg.models.ConvBlock`).
        pool: ``"max"`` (default) or ``"mean"`` / ``"average"``.
        normalization: Laplacian of every convolution: ``"sym"`` (default) or ``"mass"``
            (every used level needs ``node_weight``, as the builders set; a disjoint
            batch's graphs too).

    Raises:
        TypeError: ``hierarchy`` is not a SphereHierarchy.
        ValueError: ``depth`` larger than the hierarchy or than ``len(channels)``, bad
            ``K``, ``channels``, ``norm``, ``pool`` or ``normalization``; ``"mass"`` on a
            hierarchy without ``node_weight``.

    Shapes:
        - **input:** ``x [B, N_0, F]`` on the model's graph (``[N_0, F]``: one sample), or
          a HierarchyData batch (``model(batch)``; or ``model(x, batch)`` with features
          ``x [sum N_0, F]``).
        - **output:** ``[B, N_0, out_channels]`` (``[N_0, out_channels]``; for a disjoint
          batch ``[sum N_0, out_channels]``).
    """

    per_node_output = True

    def __init__(
        self,
        hierarchy: SphereHierarchy,
        in_channels: int,
        out_channels: int,
        *,
        channels: Sequence[int] = (16, 32, 64),
        K: int = 3,
        depth: int | None = None,
        norm: str | None = "batch",
        pool: str = "max",
        normalization: str = NORMALIZATION,
    ) -> None:
        super().__init__(hierarchy, in_channels, out_channels)
        channels = check_channels(channels)
        self.normalization = check_normalization(normalization)
        self.K = check_int(K, "K")
        self.pool_name = pool
        self.norm = check_norm(norm)
        limit = min(len(hierarchy), len(channels))
        if depth is None:
            depth = limit
        depth = check_int(depth, "depth")
        if depth > len(hierarchy):
            raise ValueError(
                f"depth={depth} needs {depth} levels but the hierarchy has {len(hierarchy)}; "
                "lower depth or build a deeper hierarchy"
            )
        if depth > len(channels):
            raise ValueError(
                f"depth={depth} needs one width per level but channels={channels} has "
                f"{len(channels)}; give more channels or lower depth"
            )
        self.depth = depth
        self.channels = channels[:depth]

        self.graph = HierarchyBuffers(hierarchy, depth, self.normalization)
        self.pool = SpherePool(check_pool(pool))
        self.unpool = SphereUnpool("nearest")
        widths = (self.in_channels, *self.channels)
        self.encoder = nn.ModuleList(
            ConvBlock(widths[level], widths[level + 1], self.K, self.norm,
                      self.normalization)
            for level in range(depth)
        )
        # decoder[l] runs on level l (l = 0 .. depth - 2).
        self.decoder = nn.ModuleList(
            ConvBlock(self.channels[level + 1] + self.channels[level], self.channels[level],
                      self.K, self.norm, self.normalization)
            for level in range(depth - 1)
        )
        self.output = nn.Linear(self.channels[0], self.out_channels)

    def reset_parameters(self) -> None:
        """Re-initialise every convolution, normalisation and the output layer."""
        for block in (*self.encoder, *self.decoder):
            block.reset_parameters()
        self.output.reset_parameters()

    def extra_repr(self) -> str:
        return self.describe(channels=self.channels, K=self.K, depth=self.depth,
                             num_nodes=list(self.graph.num_nodes), pool=self.pool_name,
                             norm=self.norm, **self.normalization_setting())

    def forward_levels(self, x: Tensor, levels: Sequence[HierarchyLevel],
                       num_graphs: int | None = None) -> Tensor:
        """Per-node outputs ``[B, N_0, out_channels]`` (``[sum N_0, out_channels]`` on a
        disjoint batch) on resolved levels (``levels[l]`` is hierarchy level ``l``), as in
        :meth:`~deepsphere_pyg.models.SphereModel.forward_levels`."""
        skips = []
        h = x
        for level, block in enumerate(self.encoder):
            if level:
                h = self.pool(h, levels[level - 1].pool_index,
                              num_parents=levels[level].num_nodes)
            view = levels[level]
            h = block(h, view.edge_index, view.edge_weight, view.batch, view.operator,
                      view.node_weight)
            skips.append(h)
        for level in range(self.depth - 2, -1, -1):
            up = self.unpool(h, levels[level].pool_index)
            h = _concatenate(up, skips[level])
            view = levels[level]
            h = self.decoder[level](h, view.edge_index, view.edge_weight, view.batch,
                                    view.operator, view.node_weight)
        return self.output(h)


def _concatenate(up: Tensor, skip: Tensor) -> Tensor:
    """``cat([up, skip], -1)``; ``[B, N, F]`` inputs are joined in node-first memory
    order, the layout the next convolution reads without a copy."""
    if up.dim() == 3:
        return torch.cat([up.transpose(0, 1), skip.transpose(0, 1)], dim=-1).transpose(0, 1)
    return torch.cat([up, skip], dim=-1)
