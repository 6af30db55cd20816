"""SphereGraph: conversions, batching, copies, pickling."""

import copy
import pickle

import numpy as np
import pytest
import torch
from torch_geometric.data import Batch
from torch_geometric.utils import to_networkx

from deepsphere_pyg.graphs import SphereGraph, healpix_graph, rescaled_laplacian


def test_to_scipy_is_the_weighted_adjacency(graph_nside8):
    adjacency = graph_nside8.to_scipy()
    assert adjacency.shape == (768, 768) and adjacency.nnz == graph_nside8.edge_index.shape[1]
    row, col = graph_nside8.edge_index.numpy()
    np.testing.assert_allclose(adjacency[row, col], graph_nside8.edge_weight.numpy())
    np.testing.assert_allclose(adjacency.sum(axis=1), graph_nside8.degree.numpy(), rtol=1e-5)


def test_to_pygsp_keeps_weights_and_coordinates(graph_nside8):
    pygsp = pytest.importorskip("pygsp")
    graph = graph_nside8.to_pygsp()
    assert isinstance(graph, pygsp.graphs.Graph)
    assert graph.N == 768 and graph.is_directed() is False
    np.testing.assert_allclose(graph.W.toarray(), graph_nside8.to_scipy().toarray())
    np.testing.assert_allclose(graph.coords, graph_nside8.pos.numpy(), rtol=1e-6)


def test_to_networkx_from_pyg(graph_nside8):
    nx_graph = to_networkx(graph_nside8, edge_attrs=["edge_weight"], to_undirected=True)
    assert nx_graph.number_of_nodes() == 768
    assert 2 * nx_graph.number_of_edges() == graph_nside8.edge_index.shape[1]


def test_pyg_batching_offsets_edges():
    a, b = healpix_graph(2, k=8), healpix_graph(1, k=8)
    batch = Batch.from_data_list([a, b])
    assert batch.num_nodes == 60
    assert torch.equal(batch.edge_index[:, a.edge_index.shape[1]:], b.edge_index + 48)
    assert batch.nside.tolist() == [2, 1]
    restored = batch.get_example(1)
    assert isinstance(restored, SphereGraph)
    assert torch.equal(restored.edge_index, b.edge_index)


def test_copies_and_pickles_drop_the_operator_cache():
    graph = healpix_graph(4, k=8)
    rescaled_laplacian(graph, "sym")
    assert graph.__dict__["_operator_cache"]
    for clone in (copy.copy(graph), copy.deepcopy(graph), pickle.loads(pickle.dumps(graph))):
        assert clone.__dict__["_operator_cache"] == {}
        assert torch.equal(clone.edge_index, graph.edge_index)
        assert clone.pixels is None and clone.nside == 4


def test_statistics(graph_nside8):
    stats = graph_nside8.statistics()
    assert stats["num_nodes"] == 768
    assert stats["num_edges"] == graph_nside8.edge_index.shape[1]
    assert stats["neighbours_min"] >= 8
    assert stats["degree_min"] <= stats["degree_mean"] <= stats["degree_max"]


def test_pixels_attribute_is_optional():
    graph = SphereGraph(pos=torch.zeros(2, 3), num_nodes=2, sampling="custom")
    assert graph.pixels is None
    graph.pixels = torch.tensor([3, 5])
    assert graph.pixels.tolist() == [3, 5] and "pixels" in graph
    graph.pixels = None
    assert "pixels" not in graph


def test_layout_maps_are_not_offset_when_batching():
    from deepsphere_pyg.graphs import equiangular_graph

    mask = np.zeros((8, 8), dtype=bool)
    mask[2:6, :] = True
    graph = equiangular_graph(8, grid="soft", k=4, mask=mask)
    batch = Batch.from_data_list([graph, graph])
    assert torch.equal(batch.grid_index, torch.cat([graph.grid_index, graph.grid_index]))
    assert int(batch.grid_index.min()) == -1
    assert torch.equal(batch.edge_index[:, graph.num_edges:],
                       graph.edge_index + graph.num_nodes)
