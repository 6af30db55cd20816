"""The :class:`SphereGraph` container: a PyG ``Data`` object for a sampled sphere."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse
import torch
from torch_geometric.data import Data


class SphereGraph(Data):
    r"""A weighted graph whose nodes are points on the unit sphere.

    A :class:`torch_geometric.data.Data` subclass, so it batches, moves between devices
    and converts (``torch_geometric.utils.to_networkx``) like any PyG graph.

    Attributes:
        pos (Tensor): ``[N, 3]`` unit vectors of the nodes.
        edge_index (LongTensor): ``[2, E]`` edges, both directions present, no self loops,
            grouped by source node (CSR order).
        edge_weight (Tensor): ``[E]`` positive weights :math:`w_{ij} = w_{ji}`.
        num_nodes (int): :math:`N`.
        sampling (str): name of the sampling (``"healpix"``, ...).
        node_weight (Tensor, optional): ``[N]`` node masses, the area each node stands for
            (:mod:`~deepsphere_pyg.graphs.node_weight`; read them with
            :func:`~deepsphere_pyg.graphs.node_weight.node_weight`, which also derives
            them from the metadata where a builder did not store them).

    Sampling-specific metadata is stored as further attributes, for HEALPix: ``nside``,
    ``nest`` (node order), ``pixels`` (``[N]`` pixel ids of the kept nodes for partial
    masks, ``None`` on the full sky), ``k`` and ``kernel_width`` (the heat-kernel
    :math:`t`).

    Maps from a sampling's own layout to the nodes (``grid_index`` of lat-lon grids,
    ``point_index`` of merged point sets: ``-1`` for cells or points without a node) index
    the graph's own nodes and are not shifted when graphs are batched; convert data to
    node signals per sample, before batching.

    Derived sparse operators (Laplacians) are computed on demand by
    :mod:`deepsphere_pyg.graphs.laplacian` and cached on the instance (see
    :meth:`cached`); the cache is keyed by the identity and version of ``edge_index``
    and ``edge_weight``, so it never serves an operator of a modified graph.
    """

    def __init__(
        self,
        pos: torch.Tensor | None = None,
        edge_index: torch.Tensor | None = None,
        edge_weight: torch.Tensor | None = None,
        num_nodes: int | None = None,
        sampling: str | None = None,
        **metadata: Any,
    ) -> None:
        super().__init__(
            pos=pos,
            edge_index=edge_index,
            edge_weight=edge_weight,
            num_nodes=num_nodes,
            sampling=sampling,
            **metadata,
        )
        self.__dict__["_operator_cache"] = {}

    #: Attributes holding node ids of this graph alone (never offset by PyG batching).
    LAYOUT_MAPS = ("grid_index", "point_index")

    def __inc__(self, key: str, value: Any, *args: Any, **kwargs: Any) -> Any:
        if key in self.LAYOUT_MAPS:
            return 0
        return super().__inc__(key, value, *args, **kwargs)

    # ----------------------------------------------------------------- metadata
    @property
    def pixels(self) -> torch.Tensor | None:
        """``[N]`` pixel ids of the nodes on a partial sphere, ``None`` on the full sphere."""
        return self._store["pixels"] if "pixels" in self._store else None

    @pixels.setter
    def pixels(self, value: torch.Tensor | None) -> None:
        if value is None:
            self._store.pop("pixels", None)
        else:
            self._store["pixels"] = value

    # ------------------------------------------------------------------ caching
    def cached(self, name: str, args: tuple, compute) -> Any:
        """Return ``compute()`` cached under ``(name, args)`` for the current edges.

        The key includes the storage pointer and in-place version counter of
        ``edge_index`` and ``edge_weight`` so that editing the graph invalidates it.
        """
        cache = self.__dict__.setdefault("_operator_cache", {})
        key = (name, args, *tensor_fingerprint(self.edge_index),
               *tensor_fingerprint(self.edge_weight))
        if key not in cache:
            # Keep only operators of the current edges: drop stale entries.
            stale = [k for k in cache if k[2:] != key[2:]]
            for k in stale:
                del cache[k]
            cache[key] = compute()
        return cache[key]

    def __copy__(self):
        out = super().__copy__()
        out.__dict__["_operator_cache"] = {}
        return out

    def __deepcopy__(self, memo):
        cache = self.__dict__.pop("_operator_cache", None)
        try:
            out = super().__deepcopy__(memo)
        finally:
            if cache is not None:
                self.__dict__["_operator_cache"] = cache
        out.__dict__["_operator_cache"] = {}
        return out

    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())
        state.pop("_operator_cache", None)
        return state

    def __setstate__(self, mapping: dict[str, Any]) -> None:
        super().__setstate__(mapping)
        self.__dict__["_operator_cache"] = {}

    # -------------------------------------------------------------- conversions
    def to_scipy(self, format: str = "csr") -> scipy.sparse.sparray:
        """Weighted adjacency matrix :math:`W` as a scipy sparse array ``[N, N]``."""
        row, col = self.edge_index.cpu().numpy()
        weight = self.edge_weight.detach().cpu().numpy()
        n = int(self.num_nodes)
        adjacency = scipy.sparse.coo_array((weight, (row, col)), shape=(n, n))
        return adjacency.asformat(format)

    def to_pygsp(self, lap_type: str = "combinatorial"):
        """The same graph as a :class:`pygsp.graphs.Graph` (needs the ``pygsp`` extra)."""
        try:
            from pygsp import graphs as pygsp_graphs
        except ImportError as error:  # pragma: no cover - depends on the environment
            raise ImportError(
                "SphereGraph.to_pygsp needs pygsp: pip install 'deepsphere_pyg[pygsp]'"
            ) from error
        coords = self.pos.detach().cpu().numpy().astype(np.float64)
        return pygsp_graphs.Graph(
            scipy.sparse.csr_matrix(self.to_scipy("csr")), lap_type=lap_type, coords=coords
        )

    # ------------------------------------------------------------------ summary
    @property
    def degree(self) -> torch.Tensor:
        """Weighted degree :math:`d_i = \\sum_j w_{ij}`, shape ``[N]``."""
        out = torch.zeros(int(self.num_nodes), dtype=self.edge_weight.dtype,
                          device=self.edge_weight.device)
        return out.index_add_(0, self.edge_index[0], self.edge_weight)

    def statistics(self) -> dict[str, float]:
        """Node count, edge count and degree statistics, for reports."""
        counts = torch.bincount(self.edge_index[0], minlength=int(self.num_nodes))
        degree = self.degree
        return {
            "num_nodes": int(self.num_nodes),
            "num_edges": int(self.edge_index.shape[1]),
            "neighbours_min": int(counts.min()),
            "neighbours_mean": float(counts.float().mean()),
            "neighbours_max": int(counts.max()),
            "degree_min": float(degree.min()),
            "degree_mean": float(degree.mean()),
            "degree_max": float(degree.max()),
        }


def tensor_fingerprint(tensor: torch.Tensor | None) -> tuple:
    """``(data pointer, version counter, device)`` of a tensor: a cache key part that
    changes when the tensor is replaced or edited in place."""
    if tensor is None:
        return (None, None, None)
    return (tensor.data_ptr(), tensor._version, tensor.device)
