"""HEALPix graph construction: edges, weights, recipes, orderings, masks."""

import healpy as hp
import numpy as np
import pytest
import torch

from deepsphere_pyg.graphs import (
    V2_KERNEL_WIDTHS,
    healpix_graph,
    healpix_kernel_sigma,
    healpix_kernel_width,
)


def edge_set(graph, pixels=None):
    """Set of (pixel_i, pixel_j) edges, mapping node ids through ``pixels`` if given."""
    row, col = graph.edge_index.numpy()
    if pixels is not None:
        row, col = pixels[row], pixels[col]
    return set(zip(row.tolist(), col.tolist(), strict=True))


def brute_force_knn(pos, k):
    dist2 = ((pos[:, None, :] - pos[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(dist2, np.inf)
    return np.sort(dist2, axis=1)[:, :k], dist2


@pytest.mark.parametrize("nest", [True, False])
def test_positions_follow_the_pixel_order(nest):
    graph = healpix_graph(4, k=8, nest=nest)
    expected = np.stack(hp.pix2vec(4, np.arange(192), nest=nest), axis=1)
    assert graph.num_nodes == 192
    np.testing.assert_allclose(graph.pos.numpy(), expected, atol=1e-6)
    assert graph.sampling == "healpix" and graph.nside == 4 and graph.nest is nest
    assert graph.pixels is None


def test_edges_are_symmetric_without_self_loops_and_grouped_by_source(graph_nside8):
    row, col = graph_nside8.edge_index
    assert not torch.any(row == col)
    assert torch.all(row[1:] >= row[:-1])
    adjacency = graph_nside8.to_scipy()
    assert abs(adjacency - adjacency.T).max() == 0
    assert len(edge_set(graph_nside8)) == row.numel()  # no repeated edge


@pytest.mark.parametrize("k", [8, 20, 40])
def test_knn_edges_and_weights_match_a_direct_computation(k):
    nside = 8
    graph = healpix_graph(nside, k=k)
    pos = np.stack(hp.pix2vec(nside, np.arange(12 * nside**2), nest=True), axis=1)
    kth, dist2 = brute_force_knn(pos, k)
    threshold = kth[:, -1:] * (1 + 1e-9)
    directed = dist2 <= threshold  # the k nearest (ties at the k-th distance included)
    union = directed | directed.T
    row, col = graph.edge_index.numpy()
    # Every edge is among the k nearest of one of its ends, and every node reaches its
    # k nearest up to ties at the k-th distance.
    assert union[row, col].all()
    strict = dist2 < kth[:, -1:] * (1 - 1e-9)
    present = np.zeros_like(strict)
    present[row, col] = True
    assert present[strict].all()
    counts = np.bincount(row, minlength=pos.shape[0])
    assert counts.min() >= k
    t = healpix_kernel_width(nside, k)
    expected = np.exp(-dist2[row, col] / (4 * t))
    np.testing.assert_allclose(graph.edge_weight.numpy(), expected, rtol=1e-5)
    assert graph.kernel == "v2" and graph.kernel_width == pytest.approx(t)


def test_v2_widths_come_from_the_published_table():
    for k, row in V2_KERNEL_WIDTHS.items():
        for nside, sigma in row.items():
            assert healpix_kernel_sigma(nside, k) == pytest.approx(sigma)
            assert healpix_kernel_width(nside, k) == pytest.approx(sigma**2 / (4 * np.log(2)))
    assert healpix_graph(32, k=20).kernel_width == pytest.approx(0.03185**2 / (4 * np.log(2)))


def test_widths_are_extrapolated_outside_the_table():
    # sigma is proportional to 1/nside along the table's trend, and monotone in k.
    assert healpix_kernel_sigma(16, 8) == pytest.approx(2 * 0.025)
    assert healpix_kernel_sigma(2048, 20) == pytest.approx(0.00098 / 2)
    assert healpix_kernel_width(2048, 20) == pytest.approx(healpix_kernel_width(1024, 20) / 4)
    sigmas = [healpix_kernel_sigma(32, k) for k in (4, 8, 12, 20, 30, 40, 60, 80)]
    assert all(a < b for a, b in zip(sigmas, sigmas[1:], strict=False))
    assert V2_KERNEL_WIDTHS[8][32] < healpix_kernel_sigma(32, 12) < V2_KERNEL_WIDTHS[20][32]


def test_v1_width_is_about_3_6_times_the_v2_k8_width():
    """The published remark that ties the table's units: t_v1 ~ 3.6 t_opt at nside 32."""
    ratio = healpix_graph(32, edges="neighbours").kernel_width / healpix_kernel_width(32, 8)
    assert ratio == pytest.approx(3.6, abs=0.1)


def test_v1_graph_uses_the_healpix_neighbours():
    nside = 8
    graph = healpix_graph(nside, edges="neighbours")
    neighbours = hp.get_all_neighbours(nside, np.arange(12 * nside**2), nest=True)
    expected = {(p, int(q)) for p in range(12 * nside**2) for q in neighbours[:, p] if q >= 0}
    assert edge_set(graph) == expected
    counts = np.bincount(graph.edge_index[0].numpy())
    # 7 neighbours for the 3 pixels around each of the 8 points where 3 base faces meet.
    assert (counts == 7).sum() == 24 and (counts == 8).sum() == 12 * nside**2 - 24
    row, col = graph.edge_index
    dist2 = ((graph.pos[row].double() - graph.pos[col].double()) ** 2).sum(1)
    assert graph.kernel_width == pytest.approx(float(dist2.mean()) / 2, rel=1e-5)
    np.testing.assert_allclose(graph.edge_weight.numpy(),
                               np.exp(-dist2.numpy() / (2 * dist2.mean().item())), rtol=1e-5)


def test_user_given_width():
    graph = healpix_graph(4, k=8, kernel=0.1)
    row, col = graph.edge_index
    dist2 = ((graph.pos[row] - graph.pos[col]) ** 2).sum(1)
    torch.testing.assert_close(graph.edge_weight, torch.exp(-dist2 / 0.4))
    assert graph.kernel == "custom" and graph.kernel_width == 0.1


def test_ring_graph_is_the_nest_graph_relabelled():
    nside = 8
    nest_graph = healpix_graph(nside, k=8, nest=True)
    ring_graph = healpix_graph(nside, k=8, nest=False)
    ring_of_nest = hp.nest2ring(nside, np.arange(12 * nside**2))
    assert edge_set(nest_graph, ring_of_nest) == edge_set(ring_graph)


def test_dtype_argument():
    graph = healpix_graph(4, k=8, dtype=torch.float64)
    assert graph.pos.dtype == torch.float64 and graph.edge_weight.dtype == torch.float64
    assert graph.edge_index.dtype == torch.long


# ---------------------------------------------------------------------------- masks
def polar_cap_mask(nside, nest=True, radius=0.6):
    pixels = hp.query_disc(nside, [0.0, 0.0, 1.0], radius, nest=nest)
    mask = np.zeros(12 * nside**2, dtype=bool)
    mask[pixels] = True
    return mask


def test_masked_graph_is_the_induced_subgraph():
    nside = 16
    mask = polar_cap_mask(nside)
    full = healpix_graph(nside, k=8)
    part = healpix_graph(nside, k=8, mask=mask)
    pixels = np.flatnonzero(mask)
    assert part.num_nodes == pixels.size
    np.testing.assert_array_equal(part.pixels.numpy(), pixels)
    kept = set(pixels.tolist())
    induced = {(i, j) for i, j in edge_set(full) if i in kept and j in kept}
    assert edge_set(part, pixels) == induced
    np.testing.assert_allclose(part.pos.numpy(), full.pos.numpy()[pixels])
    # Pixels on the border of the cap lose neighbours; interior ones keep them all.
    counts = np.bincount(part.edge_index[0].numpy(), minlength=part.num_nodes)
    assert counts.min() < 8 <= counts.max()


@pytest.mark.parametrize(
    "as_input",
    [
        lambda m: m,
        lambda m: m.astype(np.float64),
        lambda m: m.astype(np.int32),
        lambda m: np.flatnonzero(m),
        lambda m: torch.from_numpy(m),
    ],
    ids=["bool", "float", "int01", "pixel-ids", "tensor"],
)
def test_mask_formats_give_the_same_graph(as_input):
    mask = polar_cap_mask(16)
    reference = healpix_graph(16, k=8, mask=mask)
    graph = healpix_graph(16, k=8, mask=as_input(mask))
    assert torch.equal(graph.edge_index, reference.edge_index)
    assert torch.equal(graph.pixels, reference.pixels)


def test_isolated_pixels_are_reported_or_dropped():
    nside = 16
    mask = polar_cap_mask(nside)
    lonely = hp.ang2pix(nside, np.pi / 2, np.pi, nest=True)  # far from the cap
    assert not mask[lonely]
    mask[lonely] = True
    with pytest.raises(ValueError, match=rf"without any neighbour.*{lonely}"):
        healpix_graph(nside, k=8, mask=mask)
    with pytest.warns(UserWarning, match="isolated"):
        graph = healpix_graph(nside, k=8, mask=mask, isolated="drop")
    assert lonely not in graph.pixels.tolist()
    assert graph.num_nodes == mask.sum() - 1


@pytest.mark.parametrize("radius", [0.3, 1.0])
def test_ring_mask_given_to_a_nest_graph_is_detected(radius):
    nside = 16
    ring_mask = np.zeros(12 * nside**2, dtype=bool)
    ring_mask[hp.query_disc(nside, [1.0, 1.0, 0.3], radius, nest=False)] = True
    with pytest.raises(ValueError, match="RING-ordered map given to a NEST graph"):
        healpix_graph(nside, k=8, mask=ring_mask, nest=True)
    graph = healpix_graph(nside, k=8, mask=ring_mask, nest=False)  # the right ordering
    assert graph.num_nodes == ring_mask.sum()
    nest_mask = hp.reorder(ring_mask.astype(np.int8), r2n=True).astype(bool)
    with pytest.raises(ValueError, match="NEST-ordered map given to a RING graph"):
        healpix_graph(nside, k=8, mask=nest_mask, nest=False)
    assert healpix_graph(nside, k=8, mask=nest_mask, nest=True).num_nodes == ring_mask.sum()
    # The check can be switched off for masks that are really scattered.
    with pytest.warns(UserWarning, match="dropping"):
        graph = healpix_graph(nside, k=8, mask=ring_mask, check_ordering=False,
                              isolated="drop")
    assert graph.num_nodes <= ring_mask.sum()
