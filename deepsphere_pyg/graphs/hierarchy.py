"""Multi-resolution hierarchies of sphere graphs with child -> parent pooling indices."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import healpy as hp
import numpy as np
import torch

from .checks import check_nside, check_positive_int, pixels_from_mask
from .healpix import healpix_graph
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
    @classmethod
    def healpix(
        cls,
        nside: int,
        levels: int,
        *,
        k: int | Sequence[int] = 8,
        mask: np.ndarray | torch.Tensor | None = None,
        kernel: str | float = "v2",
        dtype: torch.dtype = torch.float32,
    ) -> SphereHierarchy:
        r"""HEALPix graphs at ``nside, nside/2, ..., nside/2^(levels-1)``, NEST ordered.

        In NEST ordering the parent of pixel ``p`` at ``nside/2`` is ``p // 4``; with a mask
        the ids are re-indexed to the kept nodes of each level.

        **Partial sky.** ``mask`` (NEST, at the finest ``nside``) selects the observed
        pixels; a coarser pixel is kept when *any* of its children is kept, so every
        observed pixel has a parent and the coarse levels cover the observed region.
        Such partial parents pool only their observed children; ``coverage`` records
        the observed fraction of each node's area, so users can weight or drop them.

        Args:
            nside: finest resolution (power of two).
            levels: number of graphs (``>= 1``, ``nside / 2^(levels-1) >= 1``).
            k: neighbours per pixel, one value or one per level (finest first).
            mask: finest-level mask (see :func:`healpix_graph`), NEST ordering.
            kernel: edge-weight recipe, as in :func:`healpix_graph`.
            dtype: floating dtype of the graphs.
        """
        nside = check_nside(nside)
        levels = check_positive_int(levels, "levels")
        if nside >> (levels - 1) < 1:
            raise ValueError(
                f"levels={levels} halves nside={nside} below 1; use at most "
                f"{nside.bit_length()} levels"
            )
        ks = [k] * levels if isinstance(k, int) else list(k)
        if len(ks) != levels:
            raise ValueError(f"k must be an int or a list of {levels} ints, got {k!r}")

        npix = hp.nside2npix(nside)
        if isinstance(mask, torch.Tensor):
            mask = mask.detach().cpu().numpy()
        pixels = None if mask is None else pixels_from_mask(mask, nside, True, True)
        observed = np.ones(npix if pixels is None else pixels.size)

        graphs, pool_index, coverage = [], [], []
        for level in range(levels):
            level_nside = nside >> level
            if level:
                parents = (np.arange(hp.nside2npix(level_nside * 2)) if pixels is None
                           else pixels) // 4
                if pixels is None:
                    pool_index.append(torch.from_numpy(parents))
                    observed = np.bincount(parents, weights=observed)
                else:
                    pixels, child_to_parent = np.unique(parents, return_inverse=True)
                    pool_index.append(torch.from_numpy(child_to_parent.astype(np.int64)))
                    observed = np.bincount(child_to_parent, weights=observed)
            try:
                graph = healpix_graph(level_nside, k=ks[level], nest=True, mask=pixels,
                                      kernel=kernel, check_ordering=False, dtype=dtype)
            except ValueError as error:
                raise ValueError(f"level {level} (nside={level_nside}): {error}") from error
            graphs.append(graph)
            coverage.append(torch.from_numpy(observed / 4.0**level).float())
        return cls(graphs, pool_index, coverage)

    @classmethod
    def equiangular(cls, nlat: int, levels: int, **kwargs: Any) -> SphereHierarchy:
        """Lat-lon grid pooled by 2x2 (lat x lon) blocks:
        :func:`~deepsphere_pyg.graphs.equiangular.equiangular_hierarchy`."""
        from .equiangular import equiangular_hierarchy

        return equiangular_hierarchy(nlat, levels, **kwargs)

    @classmethod
    def points(cls, lon: object, lat: object, levels: int, **kwargs: Any) -> SphereHierarchy:
        """Irregular point set (stations) pooled into occupied HEALPix cells:
        :func:`~deepsphere_pyg.graphs.points.points_hierarchy`."""
        from .points import points_hierarchy

        return points_hierarchy(lon, lat, levels, **kwargs)

    @classmethod
    def icosahedral(cls, level: int, levels: int, **kwargs: Any) -> SphereHierarchy:
        """Subdivided icosahedron, cells of neighbouring vertices pooled:
        :func:`~deepsphere_pyg.graphs.icosahedral.icosahedral_hierarchy`."""
        from .icosahedral import icosahedral_hierarchy

        return icosahedral_hierarchy(level, levels, **kwargs)

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
