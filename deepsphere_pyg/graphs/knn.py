"""k-nearest-neighbour search on the sphere and union symmetrisation of neighbour lists.

These are the array-level building blocks of the k-NN graphs. They are written for
graphs of 10^7 nodes and 10^8 edges (HEALPix ``nside=1024``): every ``[N, k]`` or ``[E]``
temporary is processed in row blocks of about :data:`_CHUNK_ENTRIES` entries, neighbour
lists are kept in ``int32`` where the node count allows, and no step sorts all edges.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

#: Entries (rows x columns) processed at once by the chunked loops; bounds each
#: temporary to ~8 MB (below the allocator's mmap threshold, so blocks reuse memory).
_CHUNK_ENTRIES = 1 << 20


def _block_rows(width: int) -> int:
    """Rows per block for arrays of ``width`` columns."""
    return max(1, _CHUNK_ENTRIES // max(1, width))


def index_dtype_for(num_nodes: int) -> type[np.signedinteger]:
    """The smallest index dtype (``int32`` or ``int64``) that holds ``-1 .. num_nodes``."""
    return np.int32 if num_nodes < np.iinfo(np.int32).max else np.int64


def knn_chord(
    points: np.ndarray,
    k: int,
    query_index: np.ndarray | None = None,
    workers: int = -1,
    *,
    index_dtype: type[np.signedinteger] = np.int64,
) -> tuple[np.ndarray, np.ndarray]:
    r"""The ``k`` nearest neighbours (self excluded) of points of a set, by chord distance.

    Chord (Euclidean) distance :math:`d_{ij} = \|x_i - x_j\|_2` between unit vectors is a
    monotone function of the great-circle distance, so the neighbour sets are the same.
    The search is exact: :class:`scipy.spatial.cKDTree` with its default build, queried
    in blocks of rows over ``workers`` threads. Points at exactly the same distance are
    ordered (and cut at the ``k``-th place) as that tree orders them, so the result is the
    one of a plain ``cKDTree(points).query(points, k + 1)`` with the point itself removed.

    The distance of a pair is computed by the same floating-point operations whichever
    of its ends is queried, so ``dist2`` of ``i -> j`` and of ``j -> i`` are bitwise equal
    (:func:`missing_reverse_entries` relies on it).

    Args:
        points: ``[N, 3]`` unit vectors searched.
        k: number of neighbours per query point, itself excluded (``k < N``).
        query_index: ``[M]`` indices of the points whose neighbours are wanted
            (``None``: all of them).
        workers: threads used by the query (``-1``: all cores).
        index_dtype: integer dtype of the returned indices (``np.int32`` halves the
            memory of the lists when ``N < 2^31``).

    Returns:
        ``(index, dist2)``: ``[M, k]`` neighbour indices into ``points`` sorted by
        increasing distance, and ``[M, k]`` float64 squared chord distances.
    """
    points = np.ascontiguousarray(points, dtype=np.float64)
    num_points = points.shape[0]
    if not 1 <= k < num_points:
        raise ValueError(f"k must satisfy 1 <= k < N={num_points}, got k={k}")
    if query_index is not None:
        query_index = np.asarray(query_index, dtype=np.int64)
    num_queries = num_points if query_index is None else query_index.shape[0]

    tree = cKDTree(points)
    index = np.empty((num_queries, k), dtype=index_dtype)
    dist2 = np.empty((num_queries, k), dtype=np.float64)
    step = _block_rows(k + 1)
    for start in range(0, num_queries, step):
        stop = min(start + step, num_queries)
        if query_index is None:
            own, queries = np.arange(start, stop), points[start:stop]
        else:
            own = query_index[start:stop]
            queries = points[own]
        dist, nbr = tree.query(queries, k=k + 1, workers=workers)
        if np.array_equal(nbr[:, 0], own):  # usual case: each point is its own nearest
            nbr, dist = nbr[:, 1:], dist[:, 1:]
        else:
            nbr, dist = _drop_self(nbr, dist, own)
        index[start:stop] = nbr
        np.square(dist, out=dist2[start:stop])
    return index, dist2


def _drop_self(
    index: np.ndarray, dist: np.ndarray, own: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Remove each row's own index ``own[i]`` from a ``k + 1`` neighbour list.

    Rows that do not contain their own index (exact duplicate points) lose their farthest
    entry instead.
    """
    is_self = index == own[:, None]
    # Rows where the point itself was not returned (exact duplicates): drop the farthest.
    is_self[~is_self.any(axis=1), -1] = True
    keep = ~is_self
    k = index.shape[1] - 1
    return index[keep].reshape(-1, k), dist[keep].reshape(-1, k)


def union_symmetric_edges(
    neighbours: np.ndarray, dist2: np.ndarray | None = None
) -> np.ndarray:
    r"""Edge list of the union-symmetrised directed neighbour graph, in CSR order.

    The directed graph has an edge :math:`i \to j` for every ``j`` in ``neighbours[i]``;
    the result has the edge :math:`\{i, j\}` in both directions whenever either direction
    was present (:math:`A \lor A^\top`). Entries ``< 0`` mark missing neighbours.

    Args:
        neighbours: ``[N, k]`` integer neighbour lists, ``-1`` for none; no self loops
            and no repeated entry within a row.
        dist2: optional ``[N, k]`` squared distances of exact k-NN lists, as returned by
            :func:`knn_chord`; makes the search for missing reverse edges linear in ``k``
            instead of quadratic (see :func:`missing_reverse_entries`).

    Returns:
        ``edge_index``: int64 ``[2, E]`` (``row, col = edge_index``), grouped by ``row``
        (ascending). Within a row the node's own neighbours come first, in their given
        order, then the nodes that list it, by increasing id.
    """
    edge_index, _ = _union_symmetric(neighbours, None, missing_reverse_entries(neighbours, dist2))
    return edge_index


def union_symmetric_weighted(
    neighbours: np.ndarray,
    values: np.ndarray,
    dist2: np.ndarray | None = None,
    *,
    missing: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    r"""Union-symmetrised neighbour graph with a value per edge, in CSR order.

    As :func:`union_symmetric_edges`; each edge also carries the value of the entry it
    comes from: an edge :math:`i \to j` listed in ``neighbours[i]`` keeps
    ``values[i, m]``, an added reverse edge :math:`j \to i` takes the value of its
    forward entry. For symmetric values (:math:`v_{ij} = v_{ji}` whenever both are
    listed, as for distances or heat-kernel weights) the result is the adjacency
    ``A.maximum(A.T)`` of the directed matrix ``A`` (positive values) in COO form.

    Only the few edges whose reverse is missing are sorted, so the cost is linear in the
    number of edges (no global sort), which matters at 10^8 edges; apart from the output,
    temporaries are bounded by the block size.

    Args:
        neighbours: ``[N, k]`` integer neighbour lists, ``-1`` for none; no self loops
            and no repeated entry within a row.
        values: ``[N, k]`` value of each entry (any dtype; ignored where ``-1``).
        dist2: optional ``[N, k]`` squared k-NN distances, passed to
            :func:`missing_reverse_entries`.
        missing: the result of :func:`missing_reverse_entries` if already computed
            (then ``dist2`` is not used); lets a caller free ``dist2`` before the output
            is allocated.

    Returns:
        ``(edge_index, edge_values)``: int64 ``[2, E]`` edges grouped by source node
        (ascending), own neighbours first in their given order, then added reverse edges
        by increasing target; and ``[E]`` values of ``values.dtype``.
    """
    values = np.asarray(values)
    if values.shape != np.shape(neighbours):
        raise ValueError(
            f"values must have the shape of neighbours {np.shape(neighbours)}, "
            f"got {values.shape}"
        )
    if missing is None:
        missing = missing_reverse_entries(neighbours, dist2)
    edge_index, edge_values = _union_symmetric(neighbours, values, missing)
    assert edge_values is not None
    return edge_index, edge_values


def missing_reverse_entries(
    neighbours: np.ndarray, dist2: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    r"""Entries :math:`i \to j` (``j = neighbours[i, m]``) whose reverse is not listed.

    The reverse is listed iff ``i`` is in ``neighbours[j]``. Without ``dist2`` the list of
    ``j`` is scanned (:math:`O(Nk^2)`). With ``dist2`` the k-NN property decides by one
    comparison (:math:`O(Nk)`): ``i`` is in ``j``'s list if :math:`d_{ij}^2` is below the
    ``k``-th distance of ``j`` (``dist2[j, -1]``), and is not if above; only exact ties
    are scanned. This needs ``dist2`` rows sorted ascending, exact lists (every point
    closer than the ``k``-th neighbour listed), and :math:`d_{ij}^2` bitwise equal in rows
    ``i`` and ``j``, all of which :func:`knn_chord` guarantees. Entries set to ``-1``
    after the search must be points that are not nodes of the graph (a mask).

    Args:
        neighbours: ``[N, k]`` integer neighbour lists, ``-1`` for none.
        dist2: optional ``[N, k]`` squared k-NN distances (see above).

    Returns:
        ``(rows, slots)``: int64 ``[A]`` positions ``neighbours[rows, slots]`` of those
        entries, in row-major order (``-1`` entries are never included).
    """
    neighbours = np.asarray(neighbours)
    if neighbours.ndim != 2:
        raise ValueError(f"neighbours must have shape [N, k], got {neighbours.shape}")
    if dist2 is not None and np.shape(dist2) != neighbours.shape:
        raise ValueError(f"dist2 must have shape {neighbours.shape}, got {np.shape(dist2)}")
    n, k = neighbours.shape
    nbr = neighbours.astype(index_dtype_for(n), copy=False)
    radius2 = None if dist2 is None else np.ascontiguousarray(dist2[:, -1])
    found = []  # flat indices (i * k + m) of the entries whose reverse is not listed
    step = _block_rows(k)
    for start in range(0, n, step):
        stop = min(start + step, n)
        block = nbr[start:stop]
        # Candidates: flat positions in the block. Indexing by -1 reads the last row;
        # such entries are discarded below.
        if radius2 is None:
            listed = np.zeros(block.shape, dtype=bool)
            own = np.arange(start, stop, dtype=nbr.dtype)[:, None]
            for slot in range(k):  # is i the slot-th neighbour of j?
                listed |= nbr[block, slot] == own
            candidates = np.flatnonzero(~listed)
        else:
            block_dist2 = dist2[start:stop]
            block_radius2 = radius2[block]
            # d_ij < r_j: listed. d_ij > r_j: not listed. Equal: scan j's list below.
            candidates = np.flatnonzero(block_dist2 >= block_radius2)
            tie = block_dist2.ravel()[candidates] == block_radius2.ravel()[candidates]
        j = block.ravel()[candidates]
        i = start + candidates // k
        keep = j >= 0
        if radius2 is not None and tie.any():
            keep[tie] &= ~(nbr[j[tie]] == i[tie, None]).any(axis=1)
        found.append(candidates[keep] + start * k)
    flat = np.concatenate(found) if found else np.empty(0, dtype=np.int64)
    flat = flat.astype(np.int64, copy=False)
    return flat // k, flat % k


def _union_symmetric(
    neighbours: np.ndarray, values: np.ndarray | None, missing: tuple[np.ndarray, np.ndarray]
) -> tuple[np.ndarray, np.ndarray | None]:
    """CSR assembly of :func:`union_symmetric_weighted` (``values=None``: edges only)."""
    neighbours = np.asarray(neighbours)
    if neighbours.ndim != 2:
        raise ValueError(f"neighbours must have shape [N, k], got {neighbours.shape}")
    n, k = neighbours.shape
    nbr = neighbours.astype(index_dtype_for(n), copy=False)
    all_valid = n == 0 or k == 0 or int(nbr.min()) >= 0

    # Entry i -> j (i = src, j = nbr[i, m]) without reverse: add j -> i, sorted by j.
    src, slot = missing
    added_row = nbr[src, slot].astype(np.int64)
    order = np.argsort(added_row, kind="stable")  # few edges: cheap
    added_row, src, slot = added_row[order], src[order], slot[order]
    added_col = src.astype(np.int64)
    added_values = None if values is None else values[src, slot]

    # Edges per row: own valid entries + added ones. [N] arrays are 100 MB at N = 10^7:
    # only indptr is kept.
    counts = np.bincount(added_row, minlength=n)
    own_counts = None if all_valid else (nbr >= 0).sum(axis=1)
    counts += k if own_counts is None else own_counts
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    del counts
    # Added edges go after the row's own neighbours, in their sorted order.
    group_start = np.searchsorted(added_row, added_row, side="left")
    added_own = k if own_counts is None else own_counts[added_row]
    added_pos = indptr[added_row] + added_own + np.arange(added_row.size) - group_start
    del own_counts

    num_edges = int(indptr[-1])
    edge_index = np.empty((2, num_edges), dtype=np.int64)
    edge_values = None if values is None else np.empty(num_edges, dtype=values.dtype)
    step = _block_rows(k)
    for start in range(0, n, step):
        stop = min(start + step, n)
        lo, hi = indptr[start], indptr[stop]
        a_lo, a_hi = np.searchsorted(added_row, [start, stop])
        edge_index[0, lo:hi] = np.repeat(np.arange(start, stop), np.diff(indptr[start:stop + 1]))
        own_valid = None if all_valid else nbr[start:stop] >= 0
        at = added_pos[a_lo:a_hi] - lo
        _merge_block(edge_index[1, lo:hi], nbr[start:stop], own_valid, at,
                     added_col[a_lo:a_hi])
        if values is not None:
            _merge_block(edge_values[lo:hi], values[start:stop], own_valid, at,
                         added_values[a_lo:a_hi])
    return edge_index, edge_values


def _merge_block(
    out: np.ndarray,
    own: np.ndarray,
    own_valid: np.ndarray | None,
    added_at: np.ndarray,
    added: np.ndarray,
) -> None:
    """Fill a block of CSR entries: ``added`` at positions ``added_at`` and, in the other
    places in order, the entries of ``own`` (row-major; only where ``own_valid``, if given)."""
    own = own.ravel() if own_valid is None else own[own_valid]
    if added_at.size == 0:
        out[:] = own
        return
    is_own = np.ones(out.shape[0], dtype=bool)
    is_own[added_at] = False
    out[added_at] = added
    out[is_own] = own


def to_kept_nodes(neighbours: np.ndarray, kept: np.ndarray, num_points: int) -> np.ndarray:
    """Neighbour lists ``[K, k]`` of the kept nodes (row ``i`` is point ``kept[i]``) with
    point ids replaced by node ids; neighbours outside ``kept`` (and -1) become -1."""
    node_of_point = np.full(num_points, -1, dtype=index_dtype_for(num_points))
    node_of_point[kept] = np.arange(kept.size)
    return np.where(neighbours >= 0, node_of_point[np.maximum(neighbours, 0)], -1)


def isolated_rows(neighbours: np.ndarray) -> np.ndarray:
    """Rows of ``[N, k]`` node-id neighbour lists that neither list a neighbour nor are
    listed by one: the nodes without an edge after the union symmetrisation."""
    has_edge = (neighbours >= 0).any(axis=1)
    if has_edge.all():
        return np.empty(0, dtype=np.int64)
    has_edge[neighbours[neighbours >= 0]] = True
    return np.flatnonzero(~has_edge)


def squared_chord_distance(pos: np.ndarray, row: np.ndarray, col: np.ndarray) -> np.ndarray:
    """``||pos[row] - pos[col]||^2`` for every edge, computed in chunks (float64 ``[E]``)."""
    out = np.empty(row.shape[0], dtype=np.float64)
    step = _block_rows(3)
    for start in range(0, row.shape[0], step):
        stop = min(start + step, row.shape[0])
        diff = pos[row[start:stop]] - pos[col[start:stop]]
        out[start:stop] = np.einsum("ij,ij->i", diff, diff)
    return out


def neighbour_squared_distance(pos: np.ndarray, neighbours: np.ndarray) -> np.ndarray:
    """``||pos[i] - pos[neighbours[i, m]]||^2`` as float64 ``[N, k]`` (``nan`` where ``-1``).

    Computed as :func:`squared_chord_distance` computes it for the edge ``(i, j)``.
    """
    n, k = neighbours.shape
    out = np.empty((n, k), dtype=np.float64)
    step = _block_rows(3 * k)
    for start in range(0, n, step):
        stop = min(start + step, n)
        block = neighbours[start:stop]
        diff = pos[start:stop, None, :] - pos[np.maximum(block, 0)]
        out[start:stop] = np.where(block >= 0, np.einsum("ijc,ijc->ij", diff, diff), np.nan)
    return out
