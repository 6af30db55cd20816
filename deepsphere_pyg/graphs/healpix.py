"""HEALPix graphs, full sky or restricted to a partial-sky mask, and their hierarchies."""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Sequence

import healpy as hp
import numpy as np
import torch

from .checks import check_bool, check_k, check_nside, check_positive_int, pixels_from_mask
from .hierarchy import SphereHierarchy
from .kernels import healpix_kernel_width, heat_kernel
from .knn import (
    index_dtype_for,
    knn_chord,
    missing_reverse_entries,
    neighbour_squared_distance,
    union_symmetric_weighted,
)
from .operator import numpy_float
from .sphere_graph import SphereGraph


def healpix_graph(
    nside: int,
    *,
    k: int = 8,
    nest: bool = True,
    mask: np.ndarray | torch.Tensor | None = None,
    kernel: str | float = "v2",
    isolated: str = "raise",
    check_ordering: bool = True,
    dtype: torch.dtype = torch.float32,
) -> SphereGraph:
    r"""Graph of the HEALPix sampling at ``nside`` (``12 nside^2`` pixels).

    Edges and weights follow one of three recipes:

    * ``kernel="v2"`` (DeepSphere v2): each pixel is joined to its ``k`` nearest pixels by
      chord distance; the directed k-NN graph is symmetrised as the union of both
      directions; weights are :math:`w_{ij} = \exp(-d_{ij}^2 / (4t))` with the tuned
      width :math:`t` of :func:`~deepsphere_pyg.graphs.kernels.healpix_kernel_width`
      (published value, extrapolated outside the published table).
    * ``kernel="v1"`` (DeepSphere v1): the 8 HEALPix neighbours (7 for the 24 pixels
      around the 8 points where only three pixels meet) from
      :func:`healpy.get_all_neighbours`, weights :math:`\exp(-d^2 / (2 \overline{d^2}))`,
      i.e. :math:`t = \overline{d^2} / 2`, the mean taken over the graph's edges. ``k`` must be 8.
    * ``kernel=t`` (a float): k-NN as for ``"v2"`` with a user-given width :math:`t`.

    **Partial sky.** With ``mask`` the graph holds only the observed pixels: it is the
    subgraph of the full-sky graph induced by them (no edge leaves the mask; pixels on
    the border of the mask keep fewer neighbours). A kept pixel left without any
    neighbour is reported: ``isolated="raise"`` (default) raises a ``ValueError``,
    ``isolated="drop"`` removes such pixels with a warning.

    Args:
        nside: HEALPix resolution, a power of two.
        k: neighbours per pixel before symmetrisation (``kernel="v1"``: 8).
        nest: node and mask ordering, NEST (``True``) or RING (``False``).
        mask: ``None`` (full sky), a map of length ``12 nside^2`` with values in {0, 1}
            (``True``/1 = observed) in the ``nest`` ordering, or an array of pixel ids.
        kernel: ``"v2"``, ``"v1"`` or a positive float :math:`t`.
        isolated: what to do with kept pixels without neighbours: ``"raise"``/``"drop"``.
        check_ordering: detect masks given in the other ordering (RING vs NEST) and raise.
        dtype: floating dtype of ``pos`` and ``edge_weight``.

    Returns:
        A :class:`SphereGraph` with ``sampling="healpix"``, ``nside``, ``nest``, ``k``,
        ``kernel`` (recipe name), ``kernel_width`` (:math:`t`) and ``pixels`` (``[N]``
        pixel ids of the nodes, ``None`` on the full sky, where node ``i`` is pixel ``i``).

    Example:
        >>> g = healpix_graph(16, k=8)
        >>> g.num_nodes, g.edge_index.shape[0]
        (3072, 2)
    """
    nside = check_nside(nside)
    check_bool(nest, "nest", " (True: NEST ordering, False: RING)")
    if isolated not in ("raise", "drop"):
        raise ValueError(f"isolated must be 'raise' or 'drop', got {isolated!r}")
    recipe, t = _resolve_kernel(kernel, k, nside)
    npix = hp.nside2npix(nside)

    if isinstance(mask, torch.Tensor):
        mask = mask.detach().cpu().numpy()
    pixels = None if mask is None else pixels_from_mask(mask, nside, nest, check_ordering)
    num_kept = npix if pixels is None else pixels.size
    if recipe != "v1":
        check_k(k, num_kept if pixels is None else npix)

    # The graph is built on the NEST-ordered pixels whatever the ordering asked for, then
    # relabelled: the RING graph is exactly the NEST graph relabelled (same positions, same
    # tree, so the same neighbours even where distances tie).
    nest_pos = _pixel_positions(nside)
    if nest:
        node_pixels = pixels  # NEST ids of the nodes (None: all pixels, in order)
    else:
        node_pixels = hp.ring2nest(nside, np.arange(npix) if pixels is None else pixels)
    neighbours, knn_dist2 = _neighbour_pixels(nside, k, recipe, nest_pos, node_pixels)
    if node_pixels is not None:
        neighbours = _to_kept_nodes(neighbours, node_pixels, npix)

    isolated_nodes = _isolated_nodes(neighbours)
    if isolated_nodes.size:
        ids = isolated_nodes if pixels is None else pixels[isolated_nodes]
        if isolated == "raise":
            raise ValueError(
                f"mask leaves {ids.size} observed pixel(s) without any neighbour "
                f"(first pixel ids: {ids[:10].tolist()}); remove them from the mask, "
                "dilate the mask, or pass isolated='drop'"
            )
        warnings.warn(f"dropping {ids.size} isolated pixel(s) from the mask", stacklevel=2)
        keep = np.setdiff1d(pixels, ids)
        return healpix_graph(nside, k=k, nest=nest, mask=keep, kernel=kernel,
                             isolated="raise", check_ordering=False, dtype=dtype)

    pos = nest_pos if node_pixels is None else nest_pos[node_pixels]
    del nest_pos
    # Squared distances of the listed neighbours: those of the k-NN search itself, or
    # computed for the HEALPix neighbours (v1).
    entry_dist2 = knn_dist2 if recipe != "v1" else neighbour_squared_distance(pos, neighbours)
    del knn_dist2
    node_pos = torch.from_numpy(pos).to(dtype)
    del pos
    missing = missing_reverse_entries(neighbours, None if recipe == "v1" else entry_dist2)
    if recipe == "v1":  # t from the mean squared distance over the (symmetrised) edges
        t = _mean_over_edges(entry_dist2, neighbours, missing) / 2.0
    assert t is not None  # given (v2, custom) or just computed (v1)
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
        k=8 if recipe == "v1" else int(k),
        kernel=recipe,
        kernel_width=float(t),
        pixels=None if pixels is None else torch.from_numpy(pixels),
    )



@SphereHierarchy.register_builder("healpix")
def healpix_hierarchy(
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
    if isinstance(mask, torch.Tensor):
        mask = mask.detach().cpu().numpy()
    pixels = None if mask is None else pixels_from_mask(mask, nside, True, True)

    def parents(level: int, ids: np.ndarray | None) -> np.ndarray:
        return (np.arange(hp.nside2npix(nside >> level)) if ids is None else ids) // 4

    def build_level(level: int, ids: np.ndarray | None) -> SphereGraph:
        return healpix_graph(nside >> level, k=ks[level], nest=True, mask=ids,
                             kernel=kernel, check_ordering=False, dtype=dtype)

    return SphereHierarchy.from_parents(
        parents, levels, build_level, kept=pixels, area=np.ones(hp.nside2npix(nside)),
        level_name=lambda level: f"level {level} (nside={nside >> level})")

def _resolve_kernel(kernel: str | float, k: int, nside: int) -> tuple[str, float | None]:
    """Recipe name and width ``t`` (``None`` when computed from the edges, as for v1)."""
    if isinstance(kernel, str):
        if kernel == "v2":
            check_k(k, hp.nside2npix(nside))
            return "v2", healpix_kernel_width(nside, k)
        if kernel == "v1":
            if k != 8:
                raise ValueError(
                    f"kernel='v1' uses the 8 HEALPix neighbours, so k must be 8 (got k={k}); "
                    "use kernel='v2' for other neighbour counts"
                )
            return "v1", None
        raise ValueError(f"kernel must be 'v2', 'v1' or a positive float t, got {kernel!r}")
    if isinstance(kernel, bool) or not isinstance(kernel, numbers.Real):
        raise TypeError(f"kernel must be 'v2', 'v1' or a positive float t, got {kernel!r}")
    if not (np.isfinite(kernel) and kernel > 0):
        raise ValueError(f"kernel width t must be positive and finite, got {kernel!r}")
    return "custom", float(kernel)


def _pixel_positions(nside: int) -> np.ndarray:
    """Unit vectors ``[12 nside^2, 3]`` (float64) of all pixels in NEST order.

    Filled in blocks, so the temporaries of :func:`healpy.pix2vec` stay small.
    """
    npix = hp.nside2npix(nside)
    pos = np.empty((npix, 3), dtype=np.float64)
    step = 1 << 20
    for start in range(0, npix, step):
        stop = min(start + step, npix)
        for axis, values in enumerate(hp.pix2vec(nside, np.arange(start, stop), nest=True)):
            pos[start:stop, axis] = values
    return pos


def _neighbour_pixels(
    nside: int, k: int, recipe: str, nest_pos: np.ndarray, nest_pixels: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Neighbours of the node pixels ``nest_pixels`` (``None``: all) on the full sky.

    Returns NEST pixel ids ``[N, k]`` (-1: none) and, for k-NN recipes, the squared chord
    distances ``[N, k]`` of the search (``None`` for ``"v1"``).
    """
    if recipe == "v1":
        query = np.arange(nest_pos.shape[0]) if nest_pixels is None else nest_pixels
        neighbours = np.empty((query.size, 8), dtype=index_dtype_for(nest_pos.shape[0]))
        step = 1 << 20
        for start in range(0, query.size, step):
            block = hp.get_all_neighbours(nside, query[start:start + step], nest=True)
            neighbours[start:start + step] = block.T
        return neighbours, None
    return knn_chord(nest_pos, k, query_index=nest_pixels,
                     index_dtype=index_dtype_for(nest_pos.shape[0]))


def _isolated_nodes(neighbours: np.ndarray) -> np.ndarray:
    """Nodes that neither list a neighbour nor are listed by one (no edge after the union)."""
    has_edge = (neighbours >= 0).any(axis=1)
    if has_edge.all():
        return np.empty(0, dtype=np.int64)
    has_edge[neighbours[neighbours >= 0]] = True
    return np.flatnonzero(~has_edge)


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


def _to_kept_nodes(neighbours: np.ndarray, pixels: np.ndarray, npix: int) -> np.ndarray:
    """Replace pixel ids by node ids (node ``i`` is ``pixels[i]``); others and -1 -> -1."""
    node_of_pixel = np.full(npix, -1, dtype=index_dtype_for(npix))
    node_of_pixel[pixels] = np.arange(pixels.size)
    return np.where(neighbours >= 0, node_of_pixel[np.maximum(neighbours, 0)], -1)
