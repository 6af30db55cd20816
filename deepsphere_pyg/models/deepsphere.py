"""DeepSphere: graph-convolutional classifier / regressor of whole sphere maps."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..graphs.hierarchy import SphereHierarchy
from ..graphs.hierarchy_data import HierarchyLevel
from ..nn import SpherePool
from .base import HierarchyBuffers, SphereModel
from .blocks import (
    NORMALIZATION,
    STATISTICS,
    ConvBlock,
    check_channels,
    check_int,
    check_norm,
    check_normalization,
    check_pool,
    node_statistic,
)

__all__ = ["HEADS", "DeepSphere"]

HEADS = ("statistic", "fc")


def _check_levels(levels: Sequence[int] | None, num_blocks: int, num_levels: int,
                  channels: tuple[int, ...]) -> tuple[int, ...]:
    if levels is None:
        if num_blocks > num_levels:
            raise ValueError(
                f"channels={channels} asks for {num_blocks} convolution blocks, one per "
                f"hierarchy level, but the hierarchy has {num_levels} "
                f"level{'s' if num_levels != 1 else ''}; shorten "
                f"channels to at most {num_levels} entries or build a deeper hierarchy "
                "(or pass levels= to place several blocks on one level)"
            )
        return tuple(range(num_blocks))
    if isinstance(levels, int) or not isinstance(levels, Sequence):
        raise ValueError(f"levels must be a sequence of level ids (one per block), got "
                         f"{levels!r}")
    levels = tuple(check_int(level, "every entry of levels", 0) for level in levels)
    if len(levels) != num_blocks:
        raise ValueError(
            f"levels must give the hierarchy level of each of the {num_blocks} blocks of "
            f"channels={channels}, got {len(levels)} entries"
        )
    if any(b < a for a, b in zip(levels, levels[1:], strict=False)):
        raise ValueError(f"levels must be non-decreasing (finest first), got {levels}")
    if levels[-1] >= num_levels:
        raise ValueError(
            f"levels refers to level {levels[-1]} but the hierarchy has {num_levels} levels "
            f"(0 to {num_levels - 1})"
        )
    return levels


class DeepSphere(SphereModel):
    r"""DeepSphere classifier / regressor (Perraudin et al. 2019; Defferrard et al. 2020).

    Architecture, for ``channels = (c_1, ..., c_D)`` on hierarchy levels
    ``levels = (l_1, ..., l_D)`` (default ``(0, 1, ..., D - 1)``)::

        x [B, N_0, F] --pool--> ... level l_1: ChebConv(F -> c_1, K) -> Norm -> ReLU
                      --pool--> ... level l_2: ChebConv(c_1 -> c_2, K) -> Norm -> ReLU
                      ...
                                    level l_D: ChebConv(c_{D-1} -> c_D, K) -> Norm -> ReLU
        head "statistic": [mean | max | var | mean,var over nodes] -> dropout -> Linear
        head "fc":        flatten [N_{l_D} * c_D]                  -> dropout -> Linear

    Pooling (:class:`~deepsphere_pyg.nn.SpherePool` through ``pool_index``) runs between
    blocks whenever the level changes (several times if levels are skipped), so the
    number of convolution blocks is ``len(channels)`` and each block may sit on its own
    level (default) or several on one level. Convolutions are
    :class:`~deepsphere_pyg.nn.SphericalChebConv` with the symmetric normalised Laplacian
    and :math:`\lambda_\max = 2` (see :mod:`deepsphere_pyg.models.blocks` for why), without
    bias when a normalisation follows. ``Norm`` (``norm``) is batch normalisation, a
    per-sample layer normalisation or nothing (:class:`~deepsphere_pyg.models.ConvBlock`
    says when to use which; with batch normalisation, anneal the learning rate or
    recompute the statistics after training, and feed inputs of order one).

    The ``"statistic"`` head (DeepSphere's fully convolutional variant) is invariant to
    any node permutation that maps the graphs and pooling maps onto themselves (and
    preserves coverage), so rotation invariance
    is limited only by the equivariance of the graph convolutions; statistics are
    weighted by the hierarchy's ``coverage`` (observed fraction of every node) of the
    last level, which is 1 on a full sphere. The ``"fc"`` head (the "CNN" variant) feeds
    the flattened last level to a fully connected layer: not rotation invariant, and
    only defined for graphs with exactly the last level's node count.

    The model holds ``hierarchy`` as non-persistent buffers (moved by ``.to``, never in
    ``state_dict``); ``forward(x)`` uses them. For per-sample graphs, pass a
    :class:`~deepsphere_pyg.graphs.HierarchyData` batch instead (``model(batch)``): the
    same layers run on its graphs, and the model's hierarchy only fixes the ``"fc"``
    head's size. Both inputs go through
    :meth:`~deepsphere_pyg.models.SphereModel.resolve_input`.

    Args:
        hierarchy: the graphs, finest first; input signals live on level 0.
        in_channels: input features per node ``F``.
        out_channels: outputs per sample (classes, regression targets).
        channels: width of each convolution block (default ``(16, 32, 64)``).
        K: Chebyshev terms per convolution (default 5: filters of 4 hops).
        pool: ``"max"`` (default), ``"mean"`` / ``"average"`` (``"avg"``).
        head: ``"statistic"`` (default) or ``"fc"``.
        statistic: ``"mean"`` (default), ``"max"``, ``"var"`` or ``"meanvar"`` (mean and
            variance concatenated), for ``head="statistic"``.
        norm: normalisation after every convolution: ``"batch"`` (default), ``"layer"``
            (per sample, over nodes and channels), ``"none"`` or ``None``.
        dropout: dropout probability before the final linear layer (default 0).
        levels: hierarchy level of every block, non-decreasing (default one block per
            level from 0).
        normalization: Laplacian of every convolution: ``"sym"`` (default) or ``"mass"``
            (the mass Laplacian of each level's ``node_weight``;
            :mod:`deepsphere_pyg.models.blocks`).

    Raises:
        TypeError: ``hierarchy`` is not a SphereHierarchy.
        ValueError: more blocks than levels, bad ``levels``, ``K``, ``pool``, ``head``,
            ``statistic``, ``norm``, ``dropout``, ``normalization``; ``"mass"`` on a
            hierarchy without ``node_weight``.

    Shapes:
        - **input:** ``x [B, N_0, F]`` on the model's graph, or ``[N_0, F]`` (one sample);
          or a HierarchyData batch (``model(batch)``, features ``batch.x [sum N_0, F]``),
          or features ``x [sum N_0, F]`` with their HierarchyData batch
          (``model(x, batch)``).
        - **output:** ``[B, out_channels]`` (``[1, out_channels]`` for one ``[N_0, F]``
          sample; ``[num_graphs, out_channels]`` for a disjoint batch).
    """

    def __init__(
        self,
        hierarchy: SphereHierarchy,
        in_channels: int,
        out_channels: int,
        *,
        channels: Sequence[int] = (16, 32, 64),
        K: int = 5,
        pool: str = "max",
        head: str = "statistic",
        statistic: str = "mean",
        norm: str | None = "batch",
        dropout: float = 0.0,
        levels: Sequence[int] | None = None,
        normalization: str = NORMALIZATION,
    ) -> None:
        super().__init__(hierarchy, in_channels, out_channels)
        self.channels = check_channels(channels)
        self.normalization = check_normalization(normalization)
        self.K = check_int(K, "K")
        self.pool_mode = check_pool(pool)
        self.pool_name = pool
        if head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {head!r}")
        if statistic not in STATISTICS:
            raise ValueError(f"statistic must be one of {sorted(STATISTICS)}, got "
                             f"{statistic!r}")
        if not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be a probability in [0, 1), got {dropout!r}")
        self.head_kind = head
        self.statistic = statistic
        self.norm = check_norm(norm)
        self.levels = _check_levels(levels, len(self.channels), len(hierarchy), self.channels)

        self.graph = HierarchyBuffers(hierarchy, self.levels[-1] + 1, self.normalization)
        self.pool = SpherePool(self.pool_mode)
        widths = (self.in_channels, *self.channels)
        self.blocks = nn.ModuleList(
            ConvBlock(widths[i], widths[i + 1], self.K, self.norm, self.normalization)
            for i in range(len(self.channels))
        )
        self.last_nodes = self.graph.num_nodes[-1]
        if head == "statistic":
            features = self.channels[-1] * STATISTICS[statistic]
        else:
            features = self.channels[-1] * self.last_nodes
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(features, self.out_channels)

    # ---------------------------------------------------------------- interface
    @property
    def num_levels(self) -> int:
        """Number of hierarchy levels the model uses (``levels[-1] + 1``)."""
        return self.graph.num_levels

    def reset_parameters(self) -> None:
        """Re-initialise every convolution, normalisation and the head."""
        for block in self.blocks:
            block.reset_parameters()
        self.head.reset_parameters()

    def extra_repr(self) -> str:
        head = ({"head": "statistic", "statistic": self.statistic}
                if self.head_kind == "statistic" else {"head": "fc"})
        return self.describe(channels=self.channels, K=self.K, levels=self.levels,
                             num_nodes=list(self.graph.num_nodes), pool=self.pool_name,
                             **head, norm=self.norm, dropout=self.dropout.p,
                             **self.normalization_setting())

    # ------------------------------------------------------------------ forward
    def forward_levels(self, x: Tensor, levels: Sequence[HierarchyLevel],
                       num_graphs: int | None = None) -> Tensor:
        """Outputs ``[B, out_channels]`` on resolved levels (``levels[l]`` is hierarchy
        level ``l``), as in :meth:`~deepsphere_pyg.models.SphereModel.forward_levels`.

        Raises:
            ValueError: ``head="fc"`` on graphs of another size at the last level.
        """
        h = self.features(x, levels)
        return self.head(self.dropout(self._pooled(h, levels[self.levels[-1]], num_graphs)))

    def features(self, x: Tensor, levels: Sequence[HierarchyLevel]) -> Tensor:
        """Node features after the last block: ``[B, N_last, c_D]`` or ``[sum N_last, c_D]``."""
        h, current = x, 0
        for block, level in zip(self.blocks, self.levels, strict=True):
            while current < level:
                h = self.pool(h, levels[current].pool_index,
                              num_parents=levels[current + 1].num_nodes)
                current += 1
            view = levels[level]
            h = block(h, view.edge_index, view.edge_weight, view.batch, view.operator,
                      view.node_weight)
        return h

    def _pooled(self, h: Tensor, last: HierarchyLevel, num_graphs: int | None) -> Tensor:
        disjoint = last.batch is not None
        if self.head_kind == "statistic":
            return node_statistic(h, self.statistic, batch=last.batch if disjoint else None,
                                  num_graphs=num_graphs, weight=last.coverage)
        if not disjoint:
            return h.reshape(h.shape[0], -1)
        counts = torch.bincount(last.batch, minlength=num_graphs or 0)
        if bool((counts != self.last_nodes).any()):
            raise ValueError(
                f"head='fc' flattens exactly {self.last_nodes} nodes per graph at level "
                f"{self.levels[-1]}, but this batch has graphs of {sorted(set(counts.tolist()))}"
                " nodes there; use head='statistic' for graphs of different sizes"
            )
        return h.reshape(counts.numel(), -1)
