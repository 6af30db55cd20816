"""k-nearest-neighbour search on the sphere and union symmetrisation of neighbour lists."""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

#: Rows processed at once by the chunked loops (bounds temporary memory to ~100 MB).
_CHUNK_ROWS = 1 << 20


def knn_chord(
    points: np.ndarray, k: int, query_index: np.ndarray | None = None, workers: int = -1
) -> tuple[np.ndarray, np.ndarray]:
    r"""The ``k`` nearest neighbours (self excluded) of points of a set, by chord distance.

    Chord (Euclidean) distance :math:`d_{ij} = \|x_i - x_j\|_2` between unit vectors is a
    monotone function of the great-circle distance, so the neighbour sets are the same.
    The search uses :class:`scipy.spatial.cKDTree`, in parallel over ``workers`` threads.

    Args:
        points: ``[N, 3]`` unit vectors searched.
        k: number of neighbours per query point, itself excluded (``k < N``).
        query_index: ``[M]`` indices of the points whose neighbours are wanted
            (``None``: all of them).
        workers: threads used by the query (``-1``: all cores).

    Returns:
        ``(index, dist2)``: ``[M, k]`` int64 neighbour indices into ``points`` sorted by
        increasing distance, and ``[M, k]`` float64 squared chord distances.
    """
    points = np.ascontiguousarray(points, dtype=np.float64)
    tree = cKDTree(points, balanced_tree=False, compact_nodes=False)
    if query_index is None:
        queries, own = points, np.arange(points.shape[0])
    else:
        own = np.asarray(query_index, dtype=np.int64)
        queries = points[own]
    dist, index = tree.query(queries, k=k + 1, workers=workers)
    index, dist = _drop_self(index, dist, own)
    return index.astype(np.int64, copy=False), dist**2


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


def union_symmetric_edges(neighbours: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r"""Edge list of the union-symmetrised directed neighbour graph, in CSR order.

    The directed graph has an edge :math:`i \to j` for every ``j`` in ``neighbours[i]``;
    the result has the edge :math:`\{i, j\}` in both directions whenever either direction
    was present (:math:`A \lor A^\top`). Entries ``< 0`` mark missing neighbours.

    Only the few edges whose reverse is missing are sorted, so the cost is linear in the
    number of edges (no global sort), which matters at 10^8 edges.

    Args:
        neighbours: ``[N, k]`` integer neighbour lists, ``-1`` for none; no self loops
            and no repeated entry within a row.

    Returns:
        ``(row, col)``: int64 arrays ``[E]`` grouped by ``row`` (ascending). Within a row
        the node's own neighbours come first, in their given order.
    """
    n, k = neighbours.shape
    index_dtype = np.int32 if n < 2**31 - 1 else np.int64
    nbr = neighbours.astype(index_dtype, copy=False)
    has_reverse = np.empty((n, k), dtype=bool)
    for start in range(0, n, _CHUNK_ROWS):
        stop = min(start + _CHUNK_ROWS, n)
        block = nbr[start:stop]
        valid = block >= 0
        reverse_lists = nbr[np.where(valid, block, 0)]  # [rows, k, k]
        own = np.arange(start, stop, dtype=index_dtype)[:, None, None]
        has_reverse[start:stop] = (reverse_lists == own).any(axis=2) | ~valid

    valid = nbr >= 0
    missing = ~has_reverse  # valid edges i -> j where i is not in j's list
    added_row = nbr[missing].astype(np.int64)
    added_col = np.nonzero(missing)[0].astype(np.int64)
    order = np.argsort(added_row, kind="stable")
    added_row, added_col = added_row[order], added_col[order]

    own_counts = valid.sum(axis=1)
    added_counts = np.bincount(added_row, minlength=n)
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(own_counts + added_counts, out=indptr[1:])

    col = np.empty(indptr[-1], dtype=np.int64)
    # Own neighbours: the valid entries of each row, packed at the start of its slot.
    rank_in_row = np.cumsum(valid, axis=1) - 1
    own_positions = (indptr[:-1, None] + rank_in_row)[valid]
    col[own_positions] = nbr[valid]
    # Added reverse edges: after the row's own neighbours.
    group_start = np.searchsorted(added_row, added_row, side="left")
    added_positions = (indptr[added_row] + own_counts[added_row]
                       + np.arange(added_row.size) - group_start)
    col[added_positions] = added_col

    row = np.repeat(np.arange(n, dtype=np.int64), np.diff(indptr))
    return row, col


def squared_chord_distance(pos: np.ndarray, row: np.ndarray, col: np.ndarray) -> np.ndarray:
    """``||pos[row] - pos[col]||^2`` for every edge, computed in chunks (float64 ``[E]``)."""
    out = np.empty(row.shape[0], dtype=np.float64)
    step = 4 * _CHUNK_ROWS
    for start in range(0, row.shape[0], step):
        stop = min(start + step, row.shape[0])
        diff = pos[row[start:stop]] - pos[col[start:stop]]
        out[start:stop] = np.einsum("ij,ij->i", diff, diff)
    return out
