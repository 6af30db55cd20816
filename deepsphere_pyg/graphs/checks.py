"""Argument checks shared by the graph builders: clear errors naming the argument and fix."""

from __future__ import annotations

import numbers
import warnings

import healpy as hp
import numpy as np
import torch


def check_nside(nside: object, name: str = "nside") -> int:
    """Return ``nside`` as an int, or raise if it is not a power of two >= 1."""
    if isinstance(nside, bool) or not isinstance(nside, numbers.Integral):
        raise TypeError(f"{name} must be an integer power of two (1, 2, 4, ...), got {nside!r}")
    nside = int(nside)
    if nside < 1 or nside & (nside - 1):
        raise ValueError(
            f"{name} must be a power of two >= 1 (1, 2, 4, ..., 1024, ...), got {nside}; "
            "HEALPix NEST hierarchies need powers of two"
        )
    return nside


#: Edge recipes, one name for every sampling: ``"knn"`` joins each node to its ``k``
#: nearest nodes by chord distance (union-symmetrised); ``"neighbours"`` uses the
#: sampling's own neighbours (the 8 HEALPix neighbours, the 4-neighbour grid of a lat-lon
#: grid, the edges of the icosahedral triangulation).
EDGES = ("knn", "neighbours")


def check_edges(
    edges: object,
    *,
    default: str,
    allowed: tuple[str, ...] = EDGES,
    old_name: str | None = None,
    old_value: object = None,
    old_names: dict[str, str] | None = None,
    stacklevel: int = 3,
) -> str:
    """The edge recipe ``edges`` (``None``: ``default``), one of ``allowed``.

    A builder that used to take the recipe under another keyword passes it as
    ``old_name=old_value`` with the translation ``old_names`` (old value -> recipe): it
    is still read, with a ``DeprecationWarning`` naming the new spelling.

    Raises:
        ValueError: an unknown recipe, or both ``edges`` and the old keyword given.
    """
    if old_value is not None and old_names is not None:
        if edges is not None:
            raise ValueError(f"give the edge recipe once: edges={edges!r} and "
                             f"{old_name}={old_value!r} ({old_name}= is its old name)")
        if not isinstance(old_value, str) or old_value not in old_names:
            raise ValueError(f"{old_name} must be one of {tuple(old_names)}, got "
                             f"{old_value!r}; it is deprecated: pass edges= (one of "
                             f"{allowed})")
        edges = old_names[old_value]
        warnings.warn(f"{old_name}={old_value!r} is deprecated: pass edges={edges!r}",
                      DeprecationWarning, stacklevel=stacklevel)
    if edges is None:
        return default
    if edges not in allowed:
        raise ValueError(f"edges must be one of {allowed}, got {edges!r}")
    return str(edges)


def check_bool(value: object, name: str, meaning: str = "") -> bool:
    """``value`` if it is ``True`` or ``False`` (not a truthy object), else a TypeError
    naming ``name`` (and what each value means, ``meaning``)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False{meaning}, got {value!r}")
    return value


def check_int_in_range(value: object, name: str, low: int, high: int, hint: str = "") -> int:
    """``value`` as an int in ``[low, high]``: a TypeError for a non-integer (bools
    included), a ValueError naming the range (and ``hint``, what the bounds mean)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{name} must lie in [{low}, {high}]{hint}, got {int(value)}")
    return int(value)


def check_float_dtype(dtype: object, name: str = "dtype") -> torch.dtype:
    """Return ``dtype`` if it is a floating torch dtype, else raise ``TypeError``."""
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"{name} must be a floating torch dtype (torch.float32, "
                        f"torch.float64), got {dtype!r}")
    return dtype


def check_positive_int(value: object, name: str) -> int:
    """Return ``value`` as an int, or raise if it is not an integer >= 1."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def check_k(k: object, num_nodes: int, name: str = "k") -> int:
    """Return the neighbour count ``k``, or raise unless ``1 <= k < num_nodes``."""
    k = check_positive_int(k, name)
    if k >= num_nodes:
        raise ValueError(
            f"{name}={k} neighbours need more than {k} nodes, but the graph has {num_nodes}; "
            f"choose {name} <= {num_nodes - 1} or a finer sampling"
        )
    return k


def check_unit_vectors(pos: np.ndarray, name: str = "pos") -> np.ndarray:
    """Return ``pos`` as a float64 ``[N, 3]`` array of finite unit vectors, or raise."""
    pos = np.asarray(pos, dtype=np.float64)
    if pos.ndim != 2 or pos.shape[1] != 3:
        raise ValueError(f"{name} must have shape [N, 3], got {tuple(pos.shape)}")
    finite = np.isfinite(pos).all(axis=1)
    if not finite.all():
        bad = np.nonzero(~finite)[0]
        raise ValueError(
            f"{name} has {bad.size} non-finite rows (first: {bad[:5].tolist()}); "
            "remove or repair those points"
        )
    norms = np.linalg.norm(pos, axis=1)
    if np.any(np.abs(norms - 1.0) > 1e-6):
        raise ValueError(f"{name} must hold unit vectors; normalise with pos / |pos|")
    return pos


def ordering_roughness(
    values: np.ndarray, nside: int, nest: bool, *, usable: np.ndarray | None = None,
    samples: int = 20000,
) -> tuple[float, float, int]:
    r"""Mean squared difference of neighbouring pixels read in each HEALPix ordering.

    Sky maps are spatially coherent, so :math:`D = \langle (f_p - f_q)^2 \rangle` over
    neighbouring pixels :math:`p, q` is small in a map's own ordering; read in the other
    ordering (RING data as NEST or the reverse) the "neighbours" are unrelated pixels and
    :math:`D` approaches its white-noise value. The pixels are a fixed random sample (seed 0)
    of at most ``samples`` usable pixels and their 8 neighbours.

    Args:
        values: ``[12 nside^2]`` or ``[12 nside^2, F]`` map in its stored ordering.
        nside: its resolution.
        nest: the declared ordering.
        usable: optional boolean ``[12 nside^2]``: pixels (and neighbours) to use.
        samples: number of sampled pixels.

    Returns:
        ``(D declared, D other ordering, number of pixel pairs used)``.
    """
    columns = np.asarray(values, dtype=np.float64).reshape(hp.nside2npix(nside), -1)
    candidates = np.arange(columns.shape[0]) if usable is None else np.flatnonzero(usable)
    if candidates.size < 2:
        return 0.0, 0.0, 0
    sample = np.random.default_rng(0).choice(candidates, size=min(samples, candidates.size),
                                             replace=False)
    result = []
    for read_as_nest in (nest, not nest):
        neighbours = hp.get_all_neighbours(nside, sample, nest=read_as_nest)  # [8, S]
        valid = neighbours >= 0
        if usable is not None:
            valid[valid] = usable[neighbours[valid]]
        centre = np.broadcast_to(columns[sample][None], (*neighbours.shape, columns.shape[1]))
        diff2 = (columns[neighbours[valid]] - centre[valid]) ** 2
        result.append((float(diff2.mean()) if diff2.size else 0.0, int(diff2.shape[0])))
    (given, count), (swapped, _) = result
    return given, swapped, count


#: What a builder does with kept nodes left without a neighbour by a mask.
ISOLATED = ("raise", "drop")


def check_isolated(isolated: object) -> str:
    """Return ``isolated`` if it is one of :data:`ISOLATED`, else raise ``ValueError``."""
    if not (isinstance(isolated, str) and isolated in ISOLATED):
        raise ValueError(f"isolated must be 'raise' or 'drop', got {isolated!r}")
    return isolated


def report_isolated(lonely: np.ndarray, isolated: str, stacklevel: int = 3,
                    what: str = "kept node(s)") -> None:
    """Raise (``isolated="raise"``) or warn (``"drop"``) about kept nodes without neighbours.

    ``lonely`` holds their ids in the full sampling (``what`` names them in the message);
    the caller drops them on ``"drop"``.
    """
    if isolated == "raise":
        raise ValueError(
            f"mask leaves {lonely.size} {what} without any neighbour (first ids: "
            f"{lonely[:10].tolist()}); remove them from the mask, enlarge (dilate) the "
            "mask, or pass isolated='drop'")
    warnings.warn(f"dropping {lonely.size} isolated {what} from the mask",
                  stacklevel=stacklevel + 1)


def induced_pairs(
    pairs: np.ndarray, kept: np.ndarray, num_points: int, isolated: str, stacklevel: int = 3
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The subgraph of an undirected edge list induced by the kept nodes.

    Args:
        pairs: ``[2, M]`` node pairs in the full sampling's ids.
        kept: sorted ids ``[K]`` of the kept nodes.
        num_points: nodes of the full sampling.
        isolated: what to do with kept nodes left without an edge
            (:func:`report_isolated`: ``"raise"`` or ``"drop"``).

    Returns:
        ``(kept, local_pairs, inside)``: the kept ids (isolated ones dropped), the pairs
        with both ends kept renumbered ``0 .. len(kept) - 1``, and the boolean ``[M]`` mask
        of those pairs in ``pairs`` (to select their lengths or weights).
    """
    node_of = np.full(num_points, -1, dtype=np.int64)
    node_of[kept] = np.arange(kept.size)
    inside = (node_of[pairs] >= 0).all(axis=0)
    has_edge = np.zeros(num_points, dtype=bool)
    has_edge[pairs[:, inside].ravel()] = True
    lonely = kept[~has_edge[kept]]
    if lonely.size:
        report_isolated(lonely, isolated, stacklevel=stacklevel + 1)
        kept = np.setdiff1d(kept, lonely)
        node_of[:] = -1
        node_of[kept] = np.arange(kept.size)
    return kept, node_of[pairs[:, inside]], inside


#: Pixel orderings a mask may be declared in (``mask_ordering``).
MASK_ORDERINGS = ("nest", "ring")

#: Neighbour disagreement of a mask, as a fraction of that of a scattered mask with the
#: same observed fraction, below which the mask reads as a compact footprint. Measured at
#: nside 64 (``tests/graphs/test_mask_ordering.py``): galactic and ecliptic cuts, disks,
#: survey boxes and masks with holes give 0.02-0.05 in their own ordering and 0.24-0.45 in
#: the other one, except masks bounded by parallels made in RING order (a galactic cut in
#: galactic coordinates, a polar cap), which stay compact read as NEST (0.03-0.04).
COMPACT_ROUGHNESS = 0.1

#: How much rougher (larger :math:`D`) a mask or a map must read in its declared ordering
#: than in the other one to be taken for one of the other ordering.
ORDERING_RATIO = 2.5


def pixels_from_mask(mask: object, nside: int, nest: bool, check_ordering: bool,
                     mask_ordering: str | None = None) -> np.ndarray:
    """Sorted, unique pixel ids (in the graph's ordering ``nest``) kept by a HEALPix ``mask``.

    ``mask`` is either a map of length ``12 * nside**2`` with values in {0, 1} (bool, int or
    float, ``True``/1 = observed) or an array of pixel ids. ``mask_ordering`` (``"nest"``
    or ``"ring"``) states the mask's ordering, converted to the graph's; ``None``: the
    graph's ordering, and a boolean map is checked (``check_ordering``,
    :func:`check_mask_ordering`).
    """
    npix = hp.nside2npix(nside)
    order = "NEST" if nest else "RING"
    if mask_ordering is not None and mask_ordering not in MASK_ORDERINGS:
        raise ValueError(f"mask_ordering must be one of {MASK_ORDERINGS} or None (the "
                         f"graph's ordering), got {mask_ordering!r}")
    array = np.asarray(mask)
    if array.ndim != 1:
        raise ValueError(f"mask must be 1-D (a HEALPix map or pixel ids), got shape {array.shape}")
    if array.dtype == bool or (array.size == npix and _is_binary(array)):
        if array.size != npix:
            raise ValueError(
                f"mask has {array.size} entries but a {order} map at nside={nside} has {npix}; "
                "give a map at the graph's nside (healpy.ud_grade) or an array of pixel ids"
            )
        observed = array.astype(bool)
        if mask_ordering is None and check_ordering:
            check_mask_ordering(observed, nside, nest)
        pixels = np.flatnonzero(observed)
    else:
        if not np.issubdtype(array.dtype, np.integer):
            raise TypeError(
                f"mask must be a boolean/0-1 map of length {npix} or integer pixel ids, "
                f"got dtype {array.dtype}"
            )
        if array.size and (array.min() < 0 or array.max() >= npix):
            raise ValueError(
                f"mask pixel ids must lie in [0, {npix - 1}] for nside={nside}, "
                f"got range [{array.min()}, {array.max()}]"
            )
        ids = array.astype(np.int64)
        # Ids given sorted and unique (healpy.query_disc, a footprint's valid pixels) are
        # taken as they are: sorting millions of ids costs more than the graph search.
        increasing = ids.size < 2 or bool(np.all(ids[1:] > ids[:-1]))
        pixels = ids if increasing else np.unique(ids)
        if pixels.size != array.size:
            raise ValueError("mask pixel ids contain duplicates; pass each pixel once")
    if mask_ordering is not None and (mask_ordering == "nest") != nest:
        convert = hp.nest2ring if mask_ordering == "nest" else hp.ring2nest
        pixels = np.sort(convert(nside, pixels)).astype(np.int64)
    if pixels.size == 0:
        raise ValueError("mask keeps no pixel; at least one pixel must be observed")
    return pixels.astype(np.int64)


def _is_binary(array: np.ndarray) -> bool:
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        return False
    return bool(np.all((array == 0) | (array == 1)))


def check_mask_ordering(observed: np.ndarray, nside: int, nest: bool,
                        samples: int = 20000) -> None:
    r"""Raise unless a boolean map reads as a compact footprint in its declared ordering
    only.

    A sky mask is made of contiguous regions, so few pairs of neighbouring pixels
    disagree. With :math:`D` the rate of disagreeing neighbour pairs
    (:func:`ordering_roughness` on a random sample of pixels) and :math:`p` the observed
    fraction, :math:`r = D / (2p(1 - p))` is 1 for a scattered mask and small for a
    compact one (:data:`COMPACT_ROUGHNESS`). Read in each ordering:

    * :math:`D` more than :data:`ORDERING_RATIO` times larger in the declared ordering
      than in the other: the mask was made in the other ordering (RING data given as
      NEST or the reverse): raise;
    * compact in both: masks bounded by parallels made in RING order (a galactic cut in
      galactic coordinates, an ecliptic band in ecliptic coordinates, a polar cap) read
      as NEST are unions of whole base pixels, compact too, so the ordering cannot be
      told from the mask: raise and ask for it (``mask_ordering=``);
    * otherwise (compact in the declared ordering only, or a scattered selection):
      accept.

    Maps below ``nside = 4``, and masks with fewer than 100 disagreeing pairs in the
    sample (almost empty or almost full), are accepted.
    """
    if nside < 4 or observed.all() or not observed.any():
        return
    # The mean squared difference of a 0/1 map is the rate of disagreeing neighbours.
    given, swapped, pairs = ordering_roughness(observed.astype(np.float64), nside, nest,
                                               samples=samples)
    if max(given, swapped) * pairs < 100:
        return
    fraction = float(observed.mean())
    scattered = 2.0 * fraction * (1.0 - fraction)
    rough_given, rough_other = given / scattered, swapped / scattered
    this, that = ("NEST", "RING") if nest else ("RING", "NEST")
    measured = (f"neighbouring pixels disagree at {rough_given:.2f} of the rate of a "
                f"scattered mask read as {this}, {rough_other:.2f} read as {that}")
    if given > ORDERING_RATIO * swapped:
        raise ValueError(
            f"mask looks like a {that}-ordered map given to a {this} graph ({measured}); "
            f"convert it with healpy.reorder(mask, {'r2n' if nest else 'n2r'}=True), pass "
            f"mask_ordering={that.lower()!r}, or check_ordering=False if the mask is "
            "really as given")
    if rough_given > COMPACT_ROUGHNESS or rough_other > COMPACT_ROUGHNESS:
        return
    raise ValueError(
        f"mask is compact in both HEALPix orderings ({measured}), so its ordering cannot "
        "be told from it: masks bounded by parallels (a galactic cut in galactic "
        "coordinates, a latitude band, a polar cap) made in RING order, healpy's default, "
        "read as NEST as unions of whole base pixels. Say which ordering it is in: "
        "mask_ordering='ring' or 'nest'")
