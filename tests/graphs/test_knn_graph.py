"""Generic k-NN heat-kernel graphs: width rule, adaptive widths, masks, bad input."""

import healpy as hp
import numpy as np
import pytest
import torch

from deepsphere_pyg.graphs import healpix_graph
from deepsphere_pyg.graphs.kernels import healpix_kernel_width
from deepsphere_pyg.graphs.knn_graph import knn_graph, knn_width_ratio


def healpix_positions(nside: int) -> np.ndarray:
    return np.array(hp.pix2vec(nside, np.arange(hp.nside2npix(nside)), nest=True)).T


def random_positions(num: int, seed: int = 0) -> np.ndarray:
    pos = np.random.default_rng(seed).standard_normal((num, 3))
    return pos / np.linalg.norm(pos, axis=1, keepdims=True)


@pytest.mark.parametrize("nside", [32, 64, 128])
@pytest.mark.parametrize("k", [8, 20, 40])
def test_global_rule_reproduces_the_published_healpix_widths(nside, k):
    graph = knn_graph(healpix_positions(nside), k=k)
    assert graph.kernel_width == pytest.approx(healpix_kernel_width(nside, k), rel=0.05)


def test_edges_are_those_of_the_healpix_builder():
    ours = knn_graph(healpix_positions(16), k=8, sampling="healpix")
    reference = healpix_graph(16, k=8)
    assert torch.equal(ours.edge_index, reference.edge_index)
    t = reference.kernel_width
    fixed = knn_graph(healpix_positions(16), k=8, kernel=t)
    torch.testing.assert_close(fixed.edge_weight, reference.edge_weight)


def brute_force_neighbours(pos: np.ndarray, k: int) -> list[set[int]]:
    d2 = ((pos[:, None, :] - pos[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d2, np.inf)
    return [set(np.argsort(row)[:k].tolist()) for row in d2]


@pytest.mark.parametrize("kernel", ["global", "adaptive", 0.01])
def test_weights_follow_the_formulas(kernel):
    pos = random_positions(300)
    k = 6
    graph = knn_graph(pos, k=k, kernel=kernel, dtype=torch.float64)
    lists = brute_force_neighbours(pos, k)
    d2 = ((pos[:, None, :] - pos[None, :, :]) ** 2).sum(-1)
    local = np.array([np.mean([d2[i, j] for j in lists[i]]) for i in range(len(pos))])
    ratio = knn_width_ratio(k)
    expected = {}
    for i, neighbours in enumerate(lists):
        for j in neighbours:
            if kernel == "global":
                t = ratio * local.mean()
            elif kernel == "adaptive":
                t = ratio * max(local[i], local[j])
            else:
                t = kernel
            expected[(i, j)] = expected[(j, i)] = np.exp(-d2[i, j] / (4 * t))
    row, col = graph.edge_index.numpy()
    assert len(row) == len(expected)
    got = {(int(i), int(j)): float(w) for i, j, w in zip(row, col, graph.edge_weight, strict=True)}
    assert got.keys() == expected.keys()
    np.testing.assert_allclose([got[key] for key in expected], list(expected.values()),
                               rtol=1e-10)


def test_ratio_is_interpolated_in_log_k_and_held_outside():
    assert knn_width_ratio(8) == pytest.approx(0.1368)
    assert knn_width_ratio(4) == knn_width_ratio(8)
    assert knn_width_ratio(100) == knn_width_ratio(40)
    assert knn_width_ratio(20) < knn_width_ratio(12) < knn_width_ratio(8)


def test_mask_keeps_the_induced_subgraph():
    pos = random_positions(500)
    full = knn_graph(pos, k=8)
    kept = np.flatnonzero(pos[:, 2] > 0)
    part = knn_graph(pos, k=8, mask=kept)
    assert torch.equal(part.pixels, torch.from_numpy(kept))
    assert part.kernel_width == full.kernel_width
    dense_full = full.to_scipy().toarray()[np.ix_(kept, kept)]
    np.testing.assert_allclose(part.to_scipy().toarray(), dense_full)
    boolean = knn_graph(pos, k=8, mask=pos[:, 2] > 0)
    assert torch.equal(boolean.edge_index, part.edge_index)


def test_isolated_kept_nodes_raise_or_are_dropped():
    pos = random_positions(400)
    kept = np.concatenate([np.flatnonzero(pos[:, 2] > 0.5), [int(np.argmin(pos[:, 2]))]])
    with pytest.raises(ValueError, match="without any neighbour"):
        knn_graph(pos, k=4, mask=kept)
    with pytest.warns(UserWarning, match="dropping 1 isolated"):
        graph = knn_graph(pos, k=4, mask=kept, isolated="drop")
    assert graph.num_nodes == kept.size - 1


def test_remote_point_keeps_positive_weights_with_adaptive_widths():
    pos = np.concatenate([random_positions(2000) * [0.05, 0.05, 1], [[1.0, 0.0, 0.0]]])
    pos[:-1, 2] = np.abs(pos[:-1, 2])
    pos /= np.linalg.norm(pos, axis=1, keepdims=True)
    with pytest.raises(ValueError, match="underflow"):
        knn_graph(pos, k=8, kernel="global")
    graph = knn_graph(pos, k=8, kernel="adaptive")
    assert bool((graph.edge_weight > 0).all())


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(kernel="auto"), ValueError, "kernel must be one of"),
        (dict(kernel=-1.0), ValueError, "positive"),
        (dict(kernel=True), TypeError, "kernel"),
        (dict(k=400), ValueError, "k=400"),
        (dict(isolated="keep"), ValueError, "isolated"),
        (dict(width_factor=0.0), ValueError, "width_factor"),
        (dict(mask=np.zeros(400, dtype=bool)), ValueError, "keeps no node"),
        (dict(mask=np.array([1, 1, 2])), ValueError, "duplicates"),
        (dict(mask=np.ones(10, dtype=bool)), ValueError, "400 nodes"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    kwargs = {"k": 8, **kwargs}
    with pytest.raises(error, match=match):
        knn_graph(random_positions(400), **kwargs)


def test_duplicate_points_are_reported():
    pos = random_positions(100)
    pos[7] = pos[3]
    with pytest.raises(ValueError, match="nodes 3 and 7|nodes 7 and 3"):
        knn_graph(pos, k=4)


def test_non_unit_or_nan_positions_are_rejected():
    pos = random_positions(100)
    with pytest.raises(ValueError, match="unit vectors"):
        knn_graph(2 * pos, k=4)
    pos[5, 0] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        knn_graph(pos, k=4)
