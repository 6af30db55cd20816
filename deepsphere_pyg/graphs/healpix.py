"""HEALPix graphs, full sky or restricted to a partial-sky mask."""

from __future__ import annotations

import numbers
import warnings

import healpy as hp
import numpy as np
import torch

from .checks import check_k, check_nside, pixels_from_mask
from .kernels import healpix_kernel_width, heat_kernel
from .knn import knn_chord, squared_chord_distance, union_symmetric_edges
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
    if not isinstance(nest, bool):
        raise TypeError(f"nest must be True (NEST ordering) or False (RING), got {nest!r}")
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

    all_pos = np.stack(hp.pix2vec(nside, np.arange(npix), nest=nest), axis=1)
    neighbours = _neighbour_pixels(nside, k, nest, recipe, all_pos, pixels)
    if pixels is not None:
        neighbours = _to_kept_nodes(neighbours, pixels, npix)

    row, col = union_symmetric_edges(neighbours)
    isolated_nodes = np.flatnonzero(np.bincount(row, minlength=num_kept) == 0)
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

    pos = all_pos if pixels is None else all_pos[pixels]
    del all_pos
    dist2 = squared_chord_distance(pos, row, col)
    if recipe == "v1":
        t = float(dist2.mean() / 2.0)
    weight = heat_kernel(dist2, t)

    return SphereGraph(
        pos=torch.from_numpy(pos).to(dtype),
        edge_index=torch.from_numpy(np.stack([row, col])),
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


def _neighbour_pixels(
    nside: int, k: int, nest: bool, recipe: str, all_pos: np.ndarray, pixels: np.ndarray | None
) -> np.ndarray:
    """``[N_kept, k]`` neighbour pixel ids of the kept pixels on the full sky (-1: none)."""
    if recipe == "v1":
        query = np.arange(all_pos.shape[0]) if pixels is None else pixels
        return np.ascontiguousarray(hp.get_all_neighbours(nside, query, nest=nest).T)
    index, _ = knn_chord(all_pos, k, query_index=pixels)
    return index


def _to_kept_nodes(neighbours: np.ndarray, pixels: np.ndarray, npix: int) -> np.ndarray:
    """Replace pixel ids by node ids among ``pixels``; masked or missing neighbours -> -1."""
    node_of_pixel = np.full(npix, -1, dtype=np.int64)
    node_of_pixel[pixels] = np.arange(pixels.size)
    return np.where(neighbours >= 0, node_of_pixel[np.maximum(neighbours, 0)], -1)
