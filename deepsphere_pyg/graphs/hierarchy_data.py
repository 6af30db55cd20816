"""HierarchyData: a PyG ``Data`` sample carrying a whole SphereHierarchy, for disjoint batches."""

from __future__ import annotations

import re
from typing import Any, NamedTuple

import torch
from torch import Tensor
from torch_geometric.data import Data

from .hierarchy import SphereHierarchy

_LEVEL_KEY = re.compile(r"^(edge_index|pool_index|batch)_(\d+)$")
_PER_LEVEL = ("edge_index", "edge_weight", "pos", "num_nodes", "batch", "coverage",
              "node_weight")


class HierarchyLevel(NamedTuple):
    """The tensors of one level of a :class:`HierarchyData` (or of a batch of them)."""

    edge_index: Tensor
    edge_weight: Tensor | None
    pos: Tensor | None
    batch: Tensor
    num_nodes: int
    pool_index: Tensor | None  # to the next coarser level; None at the coarsest
    coverage: Tensor | None
    #: The level's convolution operator (sparse CSR ``[N, N]``) when its owner built it
    #: beforehand (a model on its own hierarchy); ``None``: built from the edges.
    operator: Tensor | None = None
    #: ``[N]`` node masses (areas) of the level, for ``SphericalChebConv(normalization=
    #: "mass")``; ``None`` when the graphs have none.
    node_weight: Tensor | None = None


class HierarchyData(Data):
    r"""A sample whose graph and coarser graphs travel with it through PyG batching.

    For per-sample graphs (stations that change per sample, per-sample masks) the whole
    :class:`SphereHierarchy` is stored on the sample. Level 0 uses PyG's standard fields,
    coarser levels ``l >= 1`` carry a suffix:

    ============================  =================================================
    level 0                       ``x``, ``pos``, ``edge_index``, ``edge_weight``,
                                  ``num_nodes``, ``coverage_0``, ``node_weight``
    level ``l >= 1``              ``pos_{l}``, ``edge_index_{l}``, ``edge_weight_{l}``,
                                  ``num_nodes_{l}``, ``batch_{l}``, ``coverage_{l}``,
                                  ``node_weight_{l}``
    pooling ``l -> l + 1``        ``pool_index_{l}``
    ============================  =================================================

    (``node_weight``: the node masses, stored where the graphs have them.) ``__inc__``
    offsets ``edge_index_{l}`` by the node count of level ``l`` and
    ``pool_index_{l}`` by that of level ``l + 1`` when
    :meth:`torch_geometric.data.Batch.from_data_list` (or
    :class:`torch_geometric.loader.DataLoader`) concatenates samples, so a batch pools with
    :class:`~deepsphere_pyg.nn.SpherePool` on ``[sum N_l, F]`` exactly as each sample
    alone. ``batch_{l}`` is the graph id of every level-``l`` node (level 0: PyG's
    ``batch``); :meth:`level` gathers the tensors of one level.

    Build one with :meth:`from_hierarchy` (or :func:`hierarchy_data`). For signals on one
    graph shared by all samples, batch ``[B, N, F]`` signals instead (no per-sample graphs).
    """

    @classmethod
    def from_hierarchy(
        cls,
        hierarchy: SphereHierarchy,
        *,
        pos: bool = True,
        coverage: bool = True,
        **fields: Any,
    ) -> HierarchyData:
        """A sample holding ``hierarchy`` (tensors shared, not copied) and ``fields``.

        Args:
            hierarchy: the graphs and pooling maps of this sample.
            pos: store node positions at every level (default ``True``).
            coverage: store the observed fraction ``coverage_{l}`` of every level
                (default ``True``), to weight partial parents on masked hierarchies.
            **fields: further attributes, e.g. ``x=[N_0, F]`` and ``y``; node-level
                tensors of level 0 batch like any PyG node feature.
        """
        if not isinstance(hierarchy, SphereHierarchy):
            raise TypeError(
                f"hierarchy must be a SphereHierarchy, got {type(hierarchy).__name__}"
            )
        reserved = [key for key in fields if _is_reserved(key)]
        if reserved:
            raise ValueError(
                f"fields {reserved} are reserved for the hierarchy's graphs; rename them"
            )
        num_nodes = hierarchy.num_nodes
        x = fields.get("x")
        if isinstance(x, Tensor) and (x.dim() == 0 or x.shape[0] != num_nodes[0]):
            raise ValueError(
                f"x must have the {num_nodes[0]} nodes of level 0 in its first dimension, "
                f"got shape {tuple(x.shape)}"
            )
        data = cls(**fields)
        for level, graph in enumerate(hierarchy.graphs):
            suffix = "" if level == 0 else f"_{level}"
            data[f"edge_index{suffix}"] = graph.edge_index
            data[f"edge_weight{suffix}"] = graph.edge_weight
            data[f"num_nodes{suffix}"] = num_nodes[level]
            if pos and graph.pos is not None:
                data[f"pos{suffix}"] = graph.pos
            if level:
                data[f"batch_{level}"] = torch.zeros(
                    num_nodes[level], dtype=torch.long, device=graph.edge_index.device)
            if coverage:
                data[f"coverage_{level}"] = hierarchy.coverage[level]
            if "node_weight" in graph and graph.node_weight is not None:
                data[f"node_weight{suffix}"] = graph.node_weight
        for level, index in enumerate(hierarchy.pool_index):
            data[f"pool_index_{level}"] = index
        return data

    # ------------------------------------------------------------------ batching
    def __inc__(self, key: str, value: Any, *args: Any, **kwargs: Any) -> Any:
        match = _LEVEL_KEY.match(key)
        if match is None:
            return super().__inc__(key, value, *args, **kwargs)
        kind, level = match.group(1), int(match.group(2))
        if kind == "edge_index":
            return self.level_num_nodes(level)
        if kind == "pool_index":
            return self.level_num_nodes(level + 1)
        # batch_{l}: graph ids, shifted by the number of graphs already in the batch.
        return int(value.max()) + 1 if isinstance(value, Tensor) and value.numel() else 1

    # -------------------------------------------------------------------- access
    @property
    def num_levels(self) -> int:
        """Number of levels stored (``1 +`` the number of ``edge_index_{l}`` fields)."""
        levels = [int(m.group(2)) for key in self.keys()
                  if (m := _LEVEL_KEY.match(key)) and m.group(1) == "edge_index"]
        return 1 + max(levels, default=0)

    def level_num_nodes(self, level: int) -> int:
        """Node count of ``level`` (summed over the graphs of a batch)."""
        if level == 0:
            return int(self.num_nodes)
        value = self[f"num_nodes_{level}"]
        return int(value.sum()) if isinstance(value, Tensor) else int(value)

    def _get(self, key: str) -> Any:
        return self[key] if key in self else None

    def level(self, level: int) -> HierarchyLevel:
        """The tensors of one level: edges, weights, positions, batch vector, node count,
        pooling map to the next level (``None`` at the coarsest), coverage and node
        masses."""
        num_levels = self.num_levels
        if not 0 <= level < num_levels:
            raise IndexError(f"level must be in [0, {num_levels - 1}], got {level}")
        suffix = "" if level == 0 else f"_{level}"
        num_nodes = self.level_num_nodes(level)
        batch = self._get("batch" if level == 0 else f"batch_{level}")
        if batch is None:
            device = self[f"edge_index{suffix}"].device
            batch = torch.zeros(num_nodes, dtype=torch.long, device=device)
        return HierarchyLevel(
            edge_index=self[f"edge_index{suffix}"],
            edge_weight=self._get(f"edge_weight{suffix}"),
            pos=self._get(f"pos{suffix}"),
            batch=batch,
            num_nodes=num_nodes,
            pool_index=self._get(f"pool_index_{level}"),
            coverage=self._get(f"coverage_{level}"),
            node_weight=self._get(f"node_weight{suffix}"),
        )


def hierarchy_data(hierarchy: SphereHierarchy, **fields: Any) -> HierarchyData:
    """``HierarchyData.from_hierarchy(hierarchy, **fields)``: a PyG sample of ``hierarchy``."""
    return HierarchyData.from_hierarchy(hierarchy, **fields)


def _is_reserved(key: str) -> bool:
    if key in ("edge_index", "edge_weight", "pos", "num_nodes", "batch", "ptr", "node_weight"):
        return True
    return any(re.fullmatch(rf"{name}_\d+", key) for name in (*_PER_LEVEL, "pool_index"))
