"""Multi-resolution hierarchies of sphere graphs with child -> parent pooling indices.

:class:`SphereHierarchy` is the container and :func:`coarsen` the one coarsening routine:
each sampling's hierarchy builder (next to its sampling) gives the child -> parent map of
its layout and calls it, so this module imports no sampling.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, NamedTuple

import numpy as np
import torch

from .sphere_graph import SphereGraph


class SphereHierarchy:
    r"""Graphs of one sampling at decreasing resolution, finest first, with pooling maps.

    ``pool_index[l]`` is a LongTensor ``[N_l]`` giving, for every node of level ``l``, its
    parent node at level ``l + 1``. Every parent has at least one child, so pooling
    (max/average over children) and unpooling (copy to children) are well defined for
    any sampling that provides the map.

    ``coverage[l]`` (``[N_l]``, in ``(0, 1]``) is the fraction of each node's area that
    is observed at the finest level: 1 everywhere on the full sky, lower for coarse nodes
    on the border of a partial-sky mask.

    Args:
        graphs: the levels, finest first.
        pool_index: ``len(graphs) - 1`` child -> parent index tensors.
        coverage: optional per-level observed fractions (default: all ones).
    """

    def __init__(
        self,
        graphs: Sequence[SphereGraph],
        pool_index: Sequence[torch.Tensor],
        coverage: Sequence[torch.Tensor] | None = None,
    ) -> None:
        graphs = list(graphs)
        pool_index = [torch.as_tensor(p, dtype=torch.long) for p in pool_index]
        if not graphs:
            raise ValueError("graphs must hold at least one level")
        if len(pool_index) != len(graphs) - 1:
            raise ValueError(
                f"pool_index needs one map per pair of levels ({len(graphs) - 1}), "
                f"got {len(pool_index)}"
            )
        for level, index in enumerate(pool_index):
            n_child, n_parent = graphs[level].num_nodes, graphs[level + 1].num_nodes
            if index.shape != (n_child,):
                raise ValueError(
                    f"pool_index[{level}] must have shape [{n_child}] (one parent per node "
                    f"of level {level}), got {tuple(index.shape)}"
                )
            if n_child and (int(index.min()) < 0 or int(index.max()) >= n_parent):
                raise ValueError(
                    f"pool_index[{level}] must hold node ids of level {level + 1} "
                    f"in [0, {n_parent - 1}]"
                )
            if torch.unique(index).numel() != n_parent:
                raise ValueError(
                    f"every node of level {level + 1} needs at least one child in "
                    f"pool_index[{level}]; drop childless parents from that level"
                )
        if coverage is None:
            coverage = [torch.ones(int(g.num_nodes)) for g in graphs]
        self.graphs = graphs
        self.pool_index = pool_index
        self.coverage = [torch.as_tensor(c, dtype=torch.float32) for c in coverage]

    # ---------------------------------------------------------------- builders
    #: Hierarchy builder of each sampling, filled by the sampling modules
    #: (:meth:`register_builder`); the container itself knows no sampling.
    _builders: ClassVar[dict[str, Callable[..., SphereHierarchy]]] = {}

    @classmethod
    def register_builder(
        cls, sampling: str
    ) -> Callable[[Callable[..., SphereHierarchy]], Callable[..., SphereHierarchy]]:
        """Decorator that makes ``builder`` the hierarchy builder of ``sampling``, reached
        as ``SphereHierarchy.<sampling>(...)``."""

        def register(builder: Callable[..., SphereHierarchy]) -> Callable[..., SphereHierarchy]:
            cls._builders[sampling] = builder
            return builder

        return register

    @classmethod
    def _build(cls, sampling: str, *args: Any, **kwargs: Any) -> SphereHierarchy:
        if sampling not in cls._builders:  # only when deepsphere_pyg.graphs is not imported
            raise RuntimeError(f"no hierarchy builder registered for {sampling!r}; import "
                               "deepsphere_pyg.graphs")
        return cls._builders[sampling](*args, **kwargs)

    @classmethod
    def healpix(cls, nside: int, levels: int, **kwargs: Any) -> SphereHierarchy:
        """HEALPix graphs at ``nside, nside/2, ...``, NEST parent ``p // 4``:
        :func:`~deepsphere_pyg.graphs.healpix.healpix_hierarchy`."""
        return cls._build("healpix", nside, levels, **kwargs)

    @classmethod
    def equiangular(cls, nlat: int, levels: int, **kwargs: Any) -> SphereHierarchy:
        """Lat-lon grid pooled by 2x2 (lat x lon) blocks:
        :func:`~deepsphere_pyg.graphs.equiangular_hierarchy.equiangular_hierarchy`."""
        return cls._build("equiangular", nlat, levels, **kwargs)

    @classmethod
    def points(cls, lon: object, lat: object, levels: int, **kwargs: Any) -> SphereHierarchy:
        """Irregular point set (stations) pooled into occupied HEALPix cells:
        :func:`~deepsphere_pyg.graphs.points_hierarchy.points_hierarchy`."""
        return cls._build("points", lon, lat, levels, **kwargs)

    @classmethod
    def icosahedral(cls, level: int, levels: int, **kwargs: Any) -> SphereHierarchy:
        """Subdivided icosahedron, cells of neighbouring vertices pooled:
        :func:`~deepsphere_pyg.graphs.icosahedral.icosahedral_hierarchy`."""
        return cls._build("icosahedral", level, levels, **kwargs)

    @classmethod
    def from_parents(
        cls,
        parents: Callable[[int, np.ndarray | None], np.ndarray],
        levels: int,
        build_level: Callable[[int, np.ndarray | None], SphereGraph],
        *,
        kept: np.ndarray | None = None,
        area: np.ndarray | None = None,
        level_name: Callable[[int], str] = lambda level: f"level {level}",
    ) -> SphereHierarchy:
        """Coarsen with :func:`coarsen` and build each level's graph on its kept nodes.

        ``build_level(level, ids)`` returns the graph of ``level`` restricted to the node
        ids ``ids`` of its full layout (``None``: all of them); a ``ValueError`` it raises
        is re-raised prefixed by ``level_name(level)``. When the finest graph has node
        masses (``node_weight``), every coarse level gets the sums of its children's
        (:func:`coarse_node_weights`).
        """
        coarsening = coarsen(parents, levels, kept=kept, area=area)
        graphs = []
        for level, ids in enumerate(coarsening.kept):
            try:
                graphs.append(build_level(level, ids))
            except ValueError as error:
                raise ValueError(f"{level_name(level)}: {error}") from error
        coarse_node_weights(graphs, coarsening.pool_index)
        return cls(graphs, coarsening.pool_index, coarsening.coverage)

    # ------------------------------------------------------------------- access
    def __len__(self) -> int:
        return len(self.graphs)

    def __getitem__(self, level: int) -> SphereGraph:
        return self.graphs[level]

    @property
    def num_nodes(self) -> list[int]:
        """Node count per level, finest first."""
        return [int(g.num_nodes) for g in self.graphs]

    def to(self, device: torch.device | str) -> SphereHierarchy:
        """A copy with every tensor on ``device``."""
        return SphereHierarchy(
            [copy.copy(g).to(device) for g in self.graphs],
            [p.to(device) for p in self.pool_index],
            [c.to(device) for c in self.coverage],
        )

    def __repr__(self) -> str:
        sampling = self.graphs[0].sampling if "sampling" in self.graphs[0] else "sphere"
        return (f"{self.__class__.__name__}(sampling={sampling!r}, levels={len(self)}, "
                f"num_nodes={self.num_nodes})")


def coarse_node_weights(graphs: Sequence[SphereGraph], pool_index: Sequence[torch.Tensor]
                        ) -> None:
    r"""Set the masses of every coarse level to the sums of its children's, in place:
    :math:`m^{(l+1)}_p = \sum_{i:\, \mathrm{pool}_l(i) = p} m^{(l)}_i`, starting from the
    finest graph's ``node_weight`` (nothing is done when it has none).

    The total mass is kept from level to level (:math:`4\pi` on the full sphere, the
    observed area of a masked hierarchy: a border parent holds only its kept children's
    area), and the mass of a coarse node is the area its pooled value stands for.
    """
    if "node_weight" not in graphs[0] or graphs[0].node_weight is None:
        return
    dtype = graphs[0].node_weight.dtype
    weight = graphs[0].node_weight.double()  # sums in float64, stored in the graphs' dtype
    for graph, index in zip(graphs[1:], pool_index, strict=True):
        weight = torch.zeros(int(graph.num_nodes), dtype=weight.dtype,
                             device=weight.device).index_add_(0, index.to(weight.device),
                                                              weight)
        graph.node_weight = weight.to(dtype)


class Coarsening(NamedTuple):
    """Kept nodes, pooling maps and coverage of every level (see :func:`coarsen`)."""

    kept: list[np.ndarray | None]
    pool_index: list[torch.Tensor]
    coverage: list[torch.Tensor]


def coarsen(
    parents: Callable[[int, np.ndarray | None], np.ndarray],
    levels: int,
    *,
    kept: np.ndarray | None = None,
    area: np.ndarray | None = None,
) -> Coarsening:
    r"""Kept nodes, child -> parent maps and observed fractions of ``levels`` levels.

    Every level has a full layout (all HEALPix pixels, all grid nodes, ...) and the
    hierarchy keeps a subset of it. ``parents(level, ids)`` gives the parent (id in the
    full layout of ``level + 1``) of the nodes ``ids`` of ``level``'s full layout, or of
    every node of it when ``ids`` is ``None``.

    * **Kept nodes.** With ``kept=None`` (full layout at the finest level) every level
      is full and ``pool_index[l] = parents(l, None)``. Otherwise a coarse node is kept
      when any of its children is: :math:`K_{l+1} = \mathrm{unique}(p_l(K_l))`, sorted,
      and ``pool_index[l]`` maps each kept child to the position of its parent in
      :math:`K_{l+1}`, so every kept parent has a child.
    * **Coverage.** With ``area`` (``[N_0]`` area of each finest full-layout node),
      ``coverage[l]`` is the observed fraction of each kept node's area,
      :math:`c = \sum_{\text{kept finest descendants}} a / \sum_{\text{all}} a`;
      ``area=None`` gives 1 everywhere (point sets, where an area is not defined).

    Args:
        parents: child -> parent map of the full layouts, ``[len(ids)]`` (or ``[N_l]``)
            integer ids of level ``l + 1``.
        levels: number of levels, finest first.
        kept: sorted ids ``[K_0]`` of the kept finest nodes, or ``None``.
        area: ``[N_0]`` node areas of the finest full layout, or ``None``.

    Returns:
        :class:`Coarsening` with ``kept`` (``levels`` id arrays, ``None`` for full levels),
        ``pool_index`` (``levels - 1`` LongTensors ``[K_l]``) and ``coverage``
        (``levels`` float tensors ``[K_l]``).
    """
    if area is None and kept is None:
        raise ValueError("coarsen needs the finest node areas (area=) or the kept node ids "
                         "(kept=): without either the level sizes are unknown")
    total = observed = None
    if area is not None:
        total = np.asarray(area, dtype=np.float64)
        observed = total
        if kept is not None:
            observed = np.zeros_like(total)
            observed[kept] = total[kept]
    kept_ids, pool_index, coverage = [kept], [], []
    for level in range(levels):
        if level:
            full_parent = parents(level - 1, None) if kept is None or area is not None else None
            if kept is None:
                pool_index.append(torch.from_numpy(np.asarray(full_parent, dtype=np.int64)))
            else:
                kept, child_to_parent = np.unique(parents(level - 1, kept),
                                                  return_inverse=True)
                pool_index.append(torch.from_numpy(
                    child_to_parent.reshape(-1).astype(np.int64)))
            kept_ids.append(kept)
            if area is not None:
                total = np.bincount(full_parent, weights=total)
                observed = np.bincount(full_parent, weights=observed)
        if area is None:
            coverage.append(torch.ones(len(kept)))
        else:
            fraction = observed / total
            coverage.append(torch.from_numpy(fraction if kept is None else fraction[kept])
                            .float())
    return Coarsening(kept_ids, pool_index, coverage)
