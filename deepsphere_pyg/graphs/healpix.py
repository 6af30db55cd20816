"""HEALPix graphs, full sky or restricted to a partial-sky mask, and their hierarchies."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import healpy as hp
import numpy as np
import torch

from .checks import (
    check_bool,
    check_edges,
    check_isolated,
    check_k,
    check_nside,
    check_positive_int,
    pixels_from_mask,
    report_isolated,
)
from .healpix_knn import healpix_knn, uses_rings
from .hierarchy import SphereHierarchy
from .kernels import check_kernel, healpix_kernel_width, heat_kernel
from .knn import (
    index_dtype_for,
    isolated_rows,
    knn_chord,
    missing_reverse_entries,
    neighbour_squared_distance,
    to_kept_nodes,
    union_symmetric_weighted,
)
from .node_weight import healpix_node_weight
from .operator import numpy_float
from .sphere_graph import SphereGraph


def healpix_graph(
    nside: int,
    *,
    k: int = 8,
    nest: bool = True,
    mask: np.ndarray | torch.Tensor | None = None,
    kernel: str | float = "auto",
    isolated: str = "raise",
    check_ordering: bool = True,
    dtype: torch.dtype = torch.float32,
    edges: str | None = None,
    mask_ordering: str | None = None,
) -> SphereGraph:
    r"""Graph of the HEALPix sampling at ``nside`` (``12 nside^2`` pixels).

    Edges follow ``edges`` and weights :math:`w_{ij} = \exp(-d_{ij}^2 / (4t))` (chord
    distance :math:`d_{ij}`) with the width ``kernel``:

    * ``edges="knn"`` (default; DeepSphere v2): each pixel is joined to its ``k`` nearest
      pixels by chord distance; the directed k-NN graph is symmetrised as the union of
      both directions. ``kernel="auto"`` (or ``"v2"``) is the tuned width :math:`t` of
      :func:`~deepsphere_pyg.graphs.kernels.healpix_kernel_width` (published value,
      extrapolated outside the published table); a float is :math:`t` itself.
    * ``edges="neighbours"`` (DeepSphere v1): the 8 HEALPix neighbours (7 for the 24
      pixels around the 8 points where only three pixels meet) from
      :func:`healpy.get_all_neighbours`; ``k`` must be 8. ``kernel="auto"`` (or ``"v1"``)
      is :math:`t = \overline{d^2} / 2`, the mean taken over the graph's edges, i.e.
      :math:`w = \exp(-d^2 / (2 \overline{d^2}))`; a float is :math:`t` itself.

    ``kernel="v1"`` without ``edges`` still means the v1 graph (deprecated: pass
    ``edges="neighbours"``).

    **k-NN search.** From ``nside`` 128 (``k <= 60``) the k nearest pixels are found,
    exactly, among a few rings of HEALPix neighbours of each node
    (:func:`~deepsphere_pyg.graphs.healpix_knn.healpix_knn`: no tree over the sky, cost in
    the node count only); of pixels at exactly the k-th distance the lower NEST ids are
    kept. Smaller maps search a tree over all pixels
    (:func:`~deepsphere_pyg.graphs.knn.knn_chord`), which orders such ties its own way
    (:func:`~deepsphere_pyg.graphs.healpix_knn.uses_rings`). Distances and weights are
    bitwise the same either way.

    **Partial sky.** With ``mask`` the graph holds only the observed pixels: it is the
    subgraph of the full-sky graph induced by them (no edge leaves the mask; pixels on
    the border of the mask keep fewer neighbours). A kept pixel left without any
    neighbour is reported: ``isolated="raise"`` (default) raises a ``ValueError``,
    ``isolated="drop"`` removes such pixels with a warning.

    Args:
        nside: HEALPix resolution, a power of two.
        k: neighbours per pixel before symmetrisation (``edges="neighbours"``: 8).
        nest: node and mask ordering, NEST (``True``) or RING (``False``).
        mask: ``None`` (full sky), a map of length ``12 nside^2`` with values in {0, 1}
            (``True``/1 = observed) in the ``nest`` ordering, or an array of pixel ids.
        kernel: ``"auto"``, ``"v2"`` (k-NN), ``"v1"`` (HEALPix neighbours) or a positive
            float :math:`t`.
        isolated: what to do with kept pixels without neighbours: ``"raise"``/``"drop"``.
        check_ordering: detect masks given in the other ordering (RING vs NEST) and raise,
            and raise when a mask reads as compact in both orderings, so that its ordering
            cannot be told (:func:`~deepsphere_pyg.graphs.checks.check_mask_ordering`).
        dtype: floating dtype of ``pos`` and ``edge_weight``.
        edges: ``"knn"`` or ``"neighbours"`` (:data:`~deepsphere_pyg.graphs.checks.EDGES`).
        mask_ordering: the ordering the mask is in, ``"nest"`` or ``"ring"`` (converted to
            ``nest``'s; no check); ``None`` (default): ``nest``'s, checked.

    Returns:
        A :class:`SphereGraph` with ``sampling="healpix"``, ``nside``, ``nest``, ``k``,
        ``edges``, ``kernel`` (``"v2"``, ``"v1"`` or ``"custom"`` for a float),
        ``kernel_width`` (:math:`t`) and ``pixels`` (``[N]`` pixel ids of the nodes,
        ``None`` on the full sky, where node ``i`` is pixel ``i``).

    Example:
        >>> g = healpix_graph(16, k=8)
        >>> g.num_nodes, g.edge_index.shape[0]
        (3072, 2)
    """
    nside = check_nside(nside)
    check_bool(nest, "nest", " (True: NEST ordering, False: RING)")
    check_isolated(isolated)
    edges = _edges_of(edges, kernel)
    recipe, t = _resolve_kernel(edges, kernel, k, nside)
    knn = edges == "knn"
    npix = hp.nside2npix(nside)

    if isinstance(mask, torch.Tensor):
        mask = mask.detach().cpu().numpy()
    pixels = None if mask is None else _mask_pixels(mask, nside, nest, check_ordering,
                                                    mask_ordering)
    num_kept = npix if pixels is None else pixels.size
    if knn:
        check_k(k, num_kept if pixels is None else npix)

    # The graph is built on the NEST-ordered pixels whatever the ordering asked for, then
    # relabelled: the RING graph is exactly the NEST graph relabelled (same positions, and
    # ties between equal distances are broken by NEST ids or by the same tree).
    if nest:
        node_pixels = pixels  # NEST ids of the nodes (None: all pixels, in order)
    else:
        node_pixels = hp.ring2nest(nside, np.arange(npix) if pixels is None else pixels)
    pos = np.empty((num_kept, 3), dtype=np.float64)  # filled by the search
    neighbours, knn_dist2 = _neighbour_pixels(nside, k, knn, node_pixels, pos)
    if node_pixels is not None:
        neighbours = to_kept_nodes(neighbours, node_pixels, npix)

    # On the full sky every pixel has neighbours; with a mask some may have none.
    isolated_nodes = np.empty(0, dtype=np.int64) if pixels is None else isolated_rows(
        neighbours)
    if isolated_nodes.size:
        ids = isolated_nodes if pixels is None else pixels[isolated_nodes]
        report_isolated(ids, isolated, stacklevel=2, what="observed pixel(s)")
        keep = np.setdiff1d(pixels, ids)
        return healpix_graph(nside, k=k, nest=nest, mask=keep, kernel=kernel,
                             isolated="raise", check_ordering=False, dtype=dtype,
                             edges=edges)

    # Squared distances of the listed neighbours: those of the k-NN search itself, or
    # computed for the HEALPix neighbours (v1).
    entry_dist2 = knn_dist2 if knn else neighbour_squared_distance(pos, neighbours)
    del knn_dist2
    node_pos = torch.from_numpy(pos).to(dtype)
    del pos
    missing = missing_reverse_entries(neighbours, entry_dist2 if knn else None)
    if t is None:  # v1: t from the mean squared distance over the (symmetrised) edges
        t = _mean_over_edges(entry_dist2, neighbours, missing) / 2.0
    # Weights of the entries; the symmetrisation carries them to the edges (w_ij = w_ji
    # bitwise). What is no longer needed is freed before the edges (the largest arrays)
    # are allocated.
    entry_weight = _heat_kernel_blocks(entry_dist2, t, numpy_float(dtype, storage=True))
    del entry_dist2
    edge_index, weight = union_symmetric_weighted(neighbours, entry_weight, missing=missing)
    del entry_weight, neighbours

    return SphereGraph(
        pos=node_pos,
        edge_index=torch.from_numpy(edge_index),
        edge_weight=torch.from_numpy(weight).to(dtype),
        num_nodes=int(num_kept),
        sampling="healpix",
        nside=nside,
        nest=nest,
        k=int(k) if knn else 8,
        edges=edges,
        kernel=recipe,
        kernel_width=float(t),
        pixels=None if pixels is None else torch.from_numpy(pixels),
        node_weight=healpix_node_weight(nside, int(num_kept), dtype),
    )



@SphereHierarchy.register_builder("healpix")
def healpix_hierarchy(
    nside: int,
    levels: int,
    *,
    k: int | Sequence[int] = 8,
    mask: np.ndarray | torch.Tensor | None = None,
    kernel: str | float = "auto",
    dtype: torch.dtype = torch.float32,
    edges: str | None = None,
    mask_ordering: str | None = None,
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
        kernel: width rule, as in :func:`healpix_graph`.
        dtype: floating dtype of the graphs.
        edges: edge recipe, as in :func:`healpix_graph`.
        mask_ordering: the mask's ordering, ``"nest"`` or ``"ring"`` (converted); ``None``
            (default): NEST, checked as in :func:`healpix_graph`.

    Returns:
        A :class:`~deepsphere_pyg.graphs.hierarchy.SphereHierarchy`, also reached as
        ``SphereHierarchy.healpix(nside, levels, ...)``.
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
    edges = _edges_of(edges, kernel)
    if isinstance(mask, torch.Tensor):
        mask = mask.detach().cpu().numpy()
    pixels = None if mask is None else _mask_pixels(mask, nside, True, True, mask_ordering)

    def parents(level: int, ids: np.ndarray | None) -> np.ndarray:
        return (np.arange(hp.nside2npix(nside >> level)) if ids is None else ids) // 4

    def build_level(level: int, ids: np.ndarray | None) -> SphereGraph:
        return healpix_graph(nside >> level, k=ks[level], nest=True, mask=ids,
                             kernel=kernel, check_ordering=False, dtype=dtype, edges=edges)

    return SphereHierarchy.from_parents(
        parents, levels, build_level, kept=pixels, area=np.ones(hp.nside2npix(nside)),
        level_name=lambda level: f"level {level} (nside={nside >> level})")

def _edges_of(edges: str | None, kernel: str | float) -> str:
    """The edge recipe; ``kernel="v1"`` without ``edges`` is the old spelling of the v1
    graph (``edges="neighbours"``), read with a ``DeprecationWarning``."""
    if edges is None and isinstance(kernel, str) and kernel == "v1":
        warnings.warn("kernel='v1' alone is deprecated: pass edges='neighbours' (the v1 "
                      "graph; its width rule is the default kernel='auto')",
                      DeprecationWarning, stacklevel=3)
        return "neighbours"
    return check_edges(edges, default="knn")


def _resolve_kernel(edges: str, kernel: str | float, k: int, nside: int
                    ) -> tuple[str, float | None]:
    """Width rule's name (``"v2"``, ``"v1"``, ``"custom"``) and width ``t`` (``None`` when
    computed from the edges, as for v1)."""
    if edges == "neighbours" and k != 8:
        raise ValueError(
            f"edges='neighbours' uses the 8 HEALPix neighbours, so k must be 8 (got "
            f"k={k}); use edges='knn' for other neighbour counts")
    kernel = check_kernel(kernel, "healpix", edges)
    if isinstance(kernel, float):
        return "custom", kernel
    if edges == "neighbours":
        return "v1", None
    check_k(k, hp.nside2npix(nside))
    return "v2", healpix_kernel_width(nside, k)


def _mask_pixels(mask: np.ndarray, nside: int, nest: bool, check_ordering: bool,
                 mask_ordering: str | None) -> np.ndarray:
    """:func:`~deepsphere_pyg.graphs.checks.pixels_from_mask`, returning pixel ids that are
    already sorted, unique and in range (as from :func:`healpy.query_disc`) as they are:
    its sort of 10^7 ids takes seconds."""
    array = np.asarray(mask)
    if (array.ndim == 1 and 0 < array.size < hp.nside2npix(nside)
            and np.issubdtype(array.dtype, np.integer)
            and (mask_ordering is None or (mask_ordering == "nest") == nest)
            and array[0] >= 0 and array[-1] < hp.nside2npix(nside)
            and bool(np.all(array[1:] > array[:-1]))):
        return array.astype(np.int64)
    return pixels_from_mask(mask, nside, nest, check_ordering, mask_ordering)


def _pixel_positions(nside: int, pixels: np.ndarray | None = None,
                     out: np.ndarray | None = None) -> np.ndarray:
    """Unit vectors ``[N, 3]`` (float64) of the NEST ``pixels`` (``None``: all, in order),
    written to ``out`` if given.

    Filled in blocks, so the temporaries of :func:`healpy.pix2vec` stay small.
    """
    size = hp.nside2npix(nside) if pixels is None else len(pixels)
    pos = np.empty((size, 3), dtype=np.float64) if out is None else out
    step = 1 << 20
    for start in range(0, size, step):
        stop = min(start + step, size)
        ids = np.arange(start, stop) if pixels is None else pixels[start:stop]
        for axis, values in enumerate(hp.pix2vec(nside, ids, nest=True)):
            pos[start:stop, axis] = values
    return pos


def _neighbour_pixels(
    nside: int, k: int, knn: bool, nest_pixels: np.ndarray | None, pos: np.ndarray
) -> tuple[np.ndarray, np.ndarray | None]:
    """Neighbours of the node pixels ``nest_pixels`` (``None``: all) on the full sky.

    Returns NEST pixel ids ``[N, k]`` (-1: none) and, for k-NN (``knn``), the squared
    chord distances ``[N, k]`` of the search (``None`` for the HEALPix neighbours). Fills
    ``pos`` ``[N, 3]`` with the unit vectors of the node pixels.

    The k-NN search is :func:`~deepsphere_pyg.graphs.healpix_knn.healpix_knn` (candidates
    from the rings of HEALPix neighbours, cost in the node count only) wherever
    :func:`~deepsphere_pyg.graphs.healpix_knn.uses_rings` allows, else a tree over all
    pixels (:func:`~deepsphere_pyg.graphs.knn.knn_chord`, small ``nside``).
    """
    npix = hp.nside2npix(nside)
    index_dtype = index_dtype_for(npix)
    if not knn:
        _pixel_positions(nside, nest_pixels, out=pos)
        query = np.arange(npix) if nest_pixels is None else nest_pixels
        neighbours = np.empty((query.size, 8), dtype=index_dtype)
        step = 1 << 20
        for start in range(0, query.size, step):
            block = hp.get_all_neighbours(nside, query[start:start + step], nest=True)
            neighbours[start:start + step] = block.T
        return neighbours, None
    if uses_rings(nside, k):
        return healpix_knn(nside, k, nest_pixels, index_dtype=index_dtype, positions=pos)
    nest_pos = _pixel_positions(nside)
    pos[:] = nest_pos if nest_pixels is None else nest_pos[nest_pixels]
    return knn_chord(nest_pos, k, query_index=nest_pixels, index_dtype=index_dtype)


def _mean_over_edges(
    entry_values: np.ndarray, neighbours: np.ndarray, missing: tuple[np.ndarray, np.ndarray]
) -> float:
    """Mean of per-entry values over the edges of the union graph: every listed entry, and
    once more every entry whose reverse edge is added (``missing``)."""
    valid = neighbours >= 0
    total = entry_values.sum(where=valid, dtype=np.float64) + entry_values[missing].sum()
    return float(total / (np.count_nonzero(valid) + missing[0].size))


def _heat_kernel_blocks(dist2: np.ndarray, t: float, out_dtype: type[np.floating]) -> np.ndarray:
    """:func:`heat_kernel` of ``dist2`` (computed in float64) stored as ``out_dtype``,
    in blocks of rows so that no float64 copy of the whole array is made."""
    out = np.empty(dist2.shape, dtype=out_dtype)
    step = max(1, (1 << 20) // max(1, dist2.shape[1]))
    for start in range(0, dist2.shape[0], step):
        out[start:start + step] = heat_kernel(dist2[start:start + step], t)
    return out
