"""SphereSignal: a sample of signals on one graph shared by the whole data set."""

from __future__ import annotations

from typing import Any

from torch_geometric.data import Data

#: Attributes stacked into a new batch dimension (``[N, ...] -> [B, N, ...]``).
NODE_KEYS = ("x", "y_node", "node_mask")


class SphereSignal(Data):
    r"""One sample of maps on a graph shared by every sample (one sampling, one mask).

    The graph itself is not stored on the sample: models hold it (a
    :class:`~deepsphere_pyg.graphs.SphereHierarchy`) once. The standard
    :class:`torch_geometric.loader.DataLoader` *stacks* the node-level tensors of a batch
    instead of concatenating them, so a batch arrives as ``[B, N, F]``, the fast path of
    :class:`~deepsphere_pyg.nn.SphericalChebConv`.

    Attributes:
        x: ``[N, F]`` input maps (node order of the shared graph).
        y: graph-level target (class index, regression targets ``[T]``): batched as usual,
            ``[B]`` or ``[B, T]``.
        y_node: ``[N]`` or ``[N, T]`` per-node target (segmentation labels, dense
            regression), stacked to ``[B, N(, T)]``.
        node_mask: ``[N]`` boolean, per-node validity (e.g. observed pixels), stacked.

    Other attributes follow PyG's rules. For samples whose graphs differ (stations that
    change per sample, per-sample masks) use ordinary ``Data`` /
    :class:`~deepsphere_pyg.graphs.HierarchyData` objects, batched disjointly.

    Example:
        >>> import torch
        >>> from torch_geometric.loader import DataLoader
        >>> samples = [SphereSignal(x=torch.randn(48, 2), y=torch.tensor(i % 2))
        ...            for i in range(4)]
        >>> batch = next(iter(DataLoader(samples, batch_size=4)))
        >>> tuple(batch.x.shape), tuple(batch.y.shape)
        ((4, 48, 2), (4,))
    """

    def __init__(self, x: Any = None, **kwargs: Any) -> None:
        # The node count is stored: PyG cannot infer it from a stacked (cat_dim None) x.
        if x is not None and kwargs.get("num_nodes") is None:
            kwargs["num_nodes"] = int(x.shape[0])
        super().__init__(x=x, **kwargs)

    def __cat_dim__(self, key: str, value: Any, *args: Any, **kwargs: Any) -> Any:
        if key in NODE_KEYS:
            return None
        return super().__cat_dim__(key, value, *args, **kwargs)
