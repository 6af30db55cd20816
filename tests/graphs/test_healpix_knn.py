"""The HEALPix ring search (healpix_knn) against the tree search (cKDTree / knn_chord)."""

import functools

import healpy as hp
import numpy as np
import pytest
import torch
from scipy.spatial import cKDTree

import deepsphere_pyg.graphs.healpix as healpix_module
import deepsphere_pyg.graphs.healpix_knn as ring_module
from deepsphere_pyg.graphs import healpix_graph
from deepsphere_pyg.graphs.healpix_knn import healpix_knn, ring_count, uses_rings
from deepsphere_pyg.graphs.knn import index_dtype_for, knn_chord

RING_MIN = ring_module.RING_MIN_NSIDE

#: (nside, k) searched with rings in the tests (2 R + 1 <= nside).
CASES = [(8, 8), (8, 12), (16, 8), (16, 12), (16, 20), (16, 40), (32, 8), (32, 12),
         (32, 20), (32, 40)]


def nest_positions(nside):
    return np.stack(hp.pix2vec(nside, np.arange(hp.nside2npix(nside)), nest=True), axis=1)


def squared(a, b):
    """Squared distance summed as cKDTree sums it: (dx^2 + dy^2) + dz^2."""
    d = a - b
    return d[..., 0] * d[..., 0] + d[..., 1] * d[..., 1] + d[..., 2] * d[..., 2]


@functools.lru_cache(maxsize=8)
def tree(nside):
    pos = nest_positions(nside)
    return pos, cKDTree(pos)


def tree_lists(nside, k, query=None, extra=24):
    """Tree search for k + extra neighbours of the NEST pixels ``query`` (default all),
    with the exact squared distances s, sorted by (s, NEST id): the documented tie rule."""
    if query is None:
        return _all_tree_lists(nside, k, extra)
    pos, search = tree(nside)
    _, index = search.query(pos[query], k=k + 1 + extra)
    assert np.array_equal(index[:, 0], query)  # self first
    index = index[:, 1:]
    s = squared(pos[query][:, None, :], pos[index])
    order = np.lexsort((index, s), axis=1)
    index, s = np.take_along_axis(index, order, 1), np.take_along_axis(s, order, 1)
    assert np.all(s[:, k - 1] < s[:, -1])  # enough extra neighbours to see every tie
    return index, s


@functools.lru_cache(maxsize=32)
def _all_tree_lists(nside, k, extra):
    return tree_lists(nside, k, np.arange(hp.nside2npix(nside)), extra)


def canonical(nside, k, query=None):
    """The exact k-NN under the tie rule: ``[N, k]`` ids and ``np.sqrt(s) ** 2``."""
    index, s = tree_lists(nside, k, query)
    return index[:, :k], np.square(np.sqrt(s[:, :k]))


def cut_ties(nside, k):
    """Pixels whose k-th distance is shared by a pixel not among the k (a tie at the cut),
    and the set of tied pairs (i, j) in both directions."""
    index, s = tree_lists(nside, k)
    rows = np.flatnonzero(s[:, k - 1] == s[:, k])
    pairs = set()
    for i in rows:
        for j in index[i][s[i] == s[i, k - 1]]:
            pairs |= {(int(i), int(j)), (int(j), int(i))}
    return rows, pairs


# ------------------------------------------------------------------------ the search
@pytest.mark.parametrize(("nside", "k"), CASES)
def test_search_is_the_exact_knn_with_the_tie_rule(nside, k):
    index, dist2 = healpix_knn(nside, k)
    expected_index, expected_dist2 = canonical(nside, k)
    np.testing.assert_array_equal(index, expected_index)
    np.testing.assert_array_equal(dist2, expected_dist2)  # bitwise


@pytest.mark.parametrize(("nside", "k"), CASES)
def test_search_matches_the_tree_search_except_at_tied_cuts(nside, k):
    index, dist2 = healpix_knn(nside, k)
    tree_index, tree_dist2 = knn_chord(nest_positions(nside), k)
    np.testing.assert_array_equal(dist2, tree_dist2)  # same distances in every row
    tied, _ = cut_ties(nside, k)
    same = np.ones(index.shape[0], dtype=bool)
    same[tied] = False
    np.testing.assert_array_equal(np.sort(index[same], axis=1),
                                  np.sort(tree_index[same], axis=1))


def test_healpix_has_ties_at_the_cut_and_keeps_the_lower_ids():
    nside, k = 16, 8
    tied, _ = cut_ties(nside, k)
    assert tied.size > 0  # exact ties occur, so the rule matters
    index, _ = healpix_knn(nside, k)
    all_index, s = tree_lists(nside, k)
    for i in tied:
        at_cut = all_index[i][s[i] == s[i, k - 1]]
        kept = index[i][s[i, :k] == s[i, k - 1]]
        np.testing.assert_array_equal(np.sort(kept), np.sort(at_cut)[:kept.size])


@pytest.mark.parametrize(("nside", "k"), [(16, 8), (32, 12), (32, 20), (32, 40)])
def test_verified_search_gives_the_same_result(nside, k):
    index, dist2 = healpix_knn(nside, k)
    v_index, v_dist2 = healpix_knn(nside, k, verify=True)
    np.testing.assert_array_equal(index, v_index)
    np.testing.assert_array_equal(dist2, v_dist2)


def test_more_rings_give_the_same_result():
    index, dist2 = healpix_knn(32, 8)
    np.testing.assert_array_equal(healpix_knn(32, 8, rings=4)[0], index)
    np.testing.assert_array_equal(healpix_knn(32, 8, rings=4)[1], dist2)


@pytest.mark.parametrize("k", [8, 20])
def test_query_pixels_in_any_order_get_their_full_sky_rows(k):
    nside = 64
    index, dist2 = healpix_knn(nside, k)
    rng = np.random.default_rng(1)
    disc = hp.query_disc(nside, hp.ang2vec(np.pi / 3, np.pi / 4), np.radians(25), nest=True)
    scattered = rng.choice(hp.nside2npix(nside), size=300, replace=False)
    query = rng.permutation(np.union1d(disc, scattered))
    positions = np.empty((query.size, 3))
    q_index, q_dist2 = healpix_knn(nside, k, query, index_dtype=np.int32,
                                   positions=positions, workers=2)
    assert q_index.dtype == np.int32
    np.testing.assert_array_equal(q_index, index[query])
    np.testing.assert_array_equal(q_dist2, dist2[query])
    np.testing.assert_array_equal(positions, nest_positions(nside)[query])


def test_positions_and_workers_on_the_full_sky():
    nside = 32
    positions = np.empty((hp.nside2npix(nside), 3))
    index, dist2 = healpix_knn(nside, 8, positions=positions, workers=1)
    np.testing.assert_array_equal(positions, nest_positions(nside))
    threaded = healpix_knn(nside, 8, workers=3)
    np.testing.assert_array_equal(threaded[0], index)
    np.testing.assert_array_equal(threaded[1], dist2)


def test_ring_count_and_where_rings_are_used():
    assert [ring_count(k) for k in (1, 3, 4, 8, 9, 10, 12, 17, 18, 20, 29, 30, 40, 43, 44)] \
        == [1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 5, 5, 5, 6]
    assert uses_rings(128, 8) and uses_rings(1024, 40)
    assert not uses_rings(64, 8)  # small maps keep the tree search
    assert not uses_rings(128, 61)  # more than 6 rings: the tree search
    assert not uses_rings(8, 8) and not uses_rings(RING_MIN, 12 * RING_MIN)
    with pytest.raises(ValueError, match="rings do not fit"):
        healpix_knn(8, 20)
    with pytest.raises(ValueError, match="repeat"):
        healpix_knn(16, 8, np.array([5, 3, 5]))
    with pytest.raises(ValueError, match="lie in"):
        healpix_knn(16, 8, np.array([3, 12 * 16**2]))
    index, dist2 = healpix_knn(16, 8, np.array([], dtype=np.int64))
    assert index.shape == dist2.shape == (0, 8)


# ---------------------------------------------------------------------- the graphs
def graph_with(monkeypatch, search, nside, k, **kwargs):
    """healpix_graph with the ring search (``"rings"``), the tree (``"tree"``) or the
    exact lists of the tie rule computed from the tree (``"canonical"``)."""
    if search == "canonical":
        def neighbour_pixels(nside_, k_, knn, nest_pixels, pos):
            pos[:] = nest_positions(nside_) if nest_pixels is None else (
                nest_positions(nside_)[nest_pixels])
            index, dist2 = canonical(nside_, k_, nest_pixels)
            return index.astype(index_dtype_for(hp.nside2npix(nside_))), dist2
        monkeypatch.setattr(healpix_module, "_neighbour_pixels", neighbour_pixels)
    else:
        monkeypatch.setattr(ring_module, "RING_MIN_NSIDE", 1 if search == "rings" else 1 << 30)
    graph = healpix_graph(nside, k=k, **kwargs)
    monkeypatch.undo()
    return graph


def nest_edges(graph, nside):
    """Edges as a set of NEST pixel pairs and their weights."""
    npix = hp.nside2npix(nside)
    pixels = np.arange(npix) if graph.pixels is None else graph.pixels.numpy()
    if not graph.nest:
        pixels = hp.ring2nest(nside, pixels)
    row, col = graph.edge_index.numpy()
    return dict(zip(zip(pixels[row].tolist(), pixels[col].tolist(), strict=True),
                    graph.edge_weight.numpy().tolist(), strict=True))


MASKS = {
    "full sky": lambda nside: None,
    "disc": lambda nside: hp.query_disc(nside, hp.ang2vec(np.radians(70), np.radians(10)),
                                        np.radians(40), nest=True),
}


@pytest.mark.parametrize("nest", [True, False])
@pytest.mark.parametrize("footprint", sorted(MASKS))
@pytest.mark.parametrize(("nside", "k"), [(8, 8), (16, 12), (16, 20), (16, 40), (32, 8)])
def test_graph_is_the_tree_graph_up_to_edges_at_tied_cuts(monkeypatch, nside, k,
                                                          footprint, nest):
    mask = MASKS[footprint](nside)
    if mask is not None and not nest:
        mask = hp.nest2ring(nside, mask)
    kwargs = {"mask": mask, "nest": nest, "check_ordering": False}
    rings = graph_with(monkeypatch, "rings", nside, k, **kwargs)
    tree = graph_with(monkeypatch, "tree", nside, k, **kwargs)
    exact = graph_with(monkeypatch, "canonical", nside, k, **kwargs)
    # The ring graph is exactly the graph of the exact k-NN under the tie rule.
    np.testing.assert_array_equal(rings.edge_index.numpy(), exact.edge_index.numpy())
    np.testing.assert_array_equal(rings.edge_weight.numpy(), exact.edge_weight.numpy())
    np.testing.assert_array_equal(rings.pos.numpy(), tree.pos.numpy())
    # Against the tree: the same graph but for edges between pixels tied at a k-th
    # distance, and bitwise equal weights on every common edge.
    ring_edges, tree_edges = nest_edges(rings, nside), nest_edges(tree, nside)
    _, tied_pairs = cut_ties(nside, k)
    differ = set(ring_edges) ^ set(tree_edges)
    assert differ <= tied_pairs
    for edge in set(ring_edges) & set(tree_edges):
        assert ring_edges[edge] == tree_edges[edge]


@pytest.mark.parametrize("nest", [True, False])
@pytest.mark.parametrize(("nside", "k"), [(8, 12), (16, 8), (16, 40), (32, 12)])
def test_graph_is_the_tree_graph_where_no_cut_is_tied(monkeypatch, nside, k, nest):
    # The sky without the pixels tied at a k-th distance (and their tied partners).
    npix = hp.nside2npix(nside)
    tied, pairs = cut_ties(nside, k)
    assert tied.size > 0
    mask = np.setdiff1d(np.arange(npix), np.array(sorted({i for p in pairs for i in p})))
    if not nest:
        mask = hp.nest2ring(nside, mask)
    kwargs = {"mask": mask, "nest": nest, "check_ordering": False}
    rings = graph_with(monkeypatch, "rings", nside, k, **kwargs)
    tree = graph_with(monkeypatch, "tree", nside, k, **kwargs)
    order, tree_order = (np.lexsort(g.edge_index.numpy()[::-1]) for g in (rings, tree))
    np.testing.assert_array_equal(rings.edge_index.numpy()[:, order],
                                  tree.edge_index.numpy()[:, tree_order])
    np.testing.assert_array_equal(rings.edge_weight.numpy()[order],
                                  tree.edge_weight.numpy()[tree_order])
    np.testing.assert_array_equal(rings.pos.numpy(), tree.pos.numpy())


def test_default_graph_at_nside_128_is_the_exact_knn_graph(monkeypatch):
    nside = 128
    assert uses_rings(nside, 8)
    # Footprints across face edges and around a pole and a three-face vertex.
    for theta, phi, radius in ((100, 200, 20), (5, 0, 12), (48.19, 90, 8)):
        mask = hp.query_disc(nside, hp.ang2vec(np.radians(theta), np.radians(phi)),
                             np.radians(radius), nest=True)
        graph = healpix_graph(nside, k=8, mask=mask)
        exact = graph_with(monkeypatch, "canonical", nside, 8, mask=mask)
        np.testing.assert_array_equal(graph.edge_index.numpy(), exact.edge_index.numpy())
        np.testing.assert_array_equal(graph.edge_weight.numpy(), exact.edge_weight.numpy())
        np.testing.assert_array_equal(graph.pos.numpy(), exact.pos.numpy())


def test_footprint_formats_give_the_same_graph():
    nside = 128
    disc = hp.query_disc(nside, hp.ang2vec(np.radians(60), np.radians(30)), np.radians(10),
                         nest=True)  # sorted, unique ids: taken as they are
    reference = healpix_graph(nside, k=8, mask=disc)
    as_map = np.zeros(hp.nside2npix(nside), dtype=bool)
    as_map[disc] = True
    ring_ids = np.sort(hp.nest2ring(nside, disc))
    for mask, kwargs in ((np.random.default_rng(0).permutation(disc), {}), (as_map, {}),
                         (ring_ids, {"mask_ordering": "ring"})):
        graph = healpix_graph(nside, k=8, mask=mask, **kwargs)
        assert torch.equal(graph.pixels, reference.pixels)
        assert torch.equal(graph.edge_index, reference.edge_index)
        assert torch.equal(graph.edge_weight, reference.edge_weight)
    with pytest.raises(ValueError, match="lie in"):
        healpix_graph(nside, k=8, mask=np.r_[disc, hp.nside2npix(nside)])
