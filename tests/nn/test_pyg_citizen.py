"""SphericalChebConv as a PyG layer: MessagePassing, static graphs, explainers, hooks,
sparse adjacencies, torch.compile and TorchScript (the behaviours PyG checks of ChebConv)."""

import pytest
import torch
from torch_geometric.data import Batch, Data
from torch_geometric.explain import Explainer, GNNExplainer
from torch_geometric.nn import ChebConv, MessagePassing

from deepsphere_pyg.graphs import healpix_graph
from deepsphere_pyg.nn import SphericalChebConv, fused_chebyshev


@pytest.fixture(scope="module")
def graph():
    return healpix_graph(2, k=8)  # 48 nodes


def pair(K=3, in_channels=4, out_channels=6, seed=0):
    """ChebConv and SphericalChebConv with the same weights (and a non-zero bias)."""
    torch.manual_seed(seed)
    reference = ChebConv(in_channels, out_channels, K=K)
    torch.nn.init.normal_(reference.bias)
    ours = SphericalChebConv(in_channels, out_channels, K=K)
    ours.load_state_dict(reference.state_dict())
    return reference, ours


def test_is_a_message_passing_layer_with_chebconvs_repr_and_keys():
    reference, ours = pair()
    assert isinstance(ours, MessagePassing)
    assert repr(ours) == repr(reference).replace("ChebConv", "SphericalChebConv")
    assert repr(ours) == "SphericalChebConv(4, 6, K=3, normalization=sym)"
    assert ours.state_dict().keys() == reference.state_dict().keys()


def test_static_graph_output_is_contiguous_and_matches_the_disjoint_batch(graph):
    reference, ours = pair()
    x = torch.randn(3, graph.num_nodes, 4)
    out = ours(x, graph.edge_index, graph.edge_weight)
    assert out.shape == (3, graph.num_nodes, 6) and out.is_contiguous()
    batch = Batch.from_data_list([Data(x=sample, edge_index=graph.edge_index,
                                       edge_weight=graph.edge_weight) for sample in x])
    expected = reference(batch.x, batch.edge_index, batch.edge_weight)
    torch.testing.assert_close(out.view(-1, 6), expected, rtol=1e-5, atol=1e-5)
    # PyG's own static-graph convention: the layer itself on [B, N, F].
    torch.testing.assert_close(out, reference(x, graph.edge_index, graph.edge_weight),
                               rtol=1e-5, atol=1e-5)
    # The model path (an operator built beforehand) returns contiguous outputs too.
    assert ours.apply_operator(x, _operator(graph)).is_contiguous()


def _operator(graph):
    from deepsphere_pyg.nn import chebyshev_operator
    return chebyshev_operator(graph.edge_index, graph.edge_weight, graph.num_nodes, "sym",
                              None, None, torch.float32, cache=False)


class TwoLayers(torch.nn.Module):
    """The ChebConv-style model of an explainer test: two convolutions, node classes."""

    def __init__(self, conv: type, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.conv1 = conv(4, 8, K=3)
        self.conv2 = conv(8, 3, K=2)

    def forward(self, x, edge_index):
        return self.conv2(self.conv1(x, edge_index).relu(), edge_index).log_softmax(-1)


def _explain(model, x, edge_index):
    explainer = Explainer(
        model, algorithm=GNNExplainer(epochs=20), explanation_type="model",
        node_mask_type="attributes", edge_mask_type="object",
        model_config=dict(mode="multiclass_classification", task_level="node",
                          return_type="log_probs"))
    torch.manual_seed(1)
    return explainer(x, edge_index, index=3)


def test_gnn_explainer_gives_the_same_edge_masks_as_for_chebconv(graph):
    reference = TwoLayers(ChebConv)
    ours = TwoLayers(SphericalChebConv)
    ours.load_state_dict(reference.state_dict())
    x = torch.randn(graph.num_nodes, 4)
    expected = _explain(reference, x, graph.edge_index)
    explanation = _explain(ours, x, graph.edge_index)
    num_edges = graph.edge_index.shape[1]
    assert explanation.edge_mask.shape == (num_edges,)
    assert explanation.node_mask.shape == x.shape
    # The mask is learnt: edges near the explained node matter, the others do not.
    assert float(explanation.edge_mask.std()) > 0
    torch.testing.assert_close(explanation.edge_mask, expected.edge_mask, rtol=1e-4,
                               atol=1e-5)
    torch.testing.assert_close(explanation.node_mask, expected.node_mask, rtol=1e-4,
                               atol=1e-5)
    # The explainer leaves the layer as it found it: fused path again, same outputs.
    assert not ours.conv1.explain
    torch.testing.assert_close(ours(x, graph.edge_index), reference(x, graph.edge_index),
                               rtol=1e-5, atol=1e-6)


def test_message_hooks_see_every_message_and_change_nothing(graph):
    reference, ours = pair(K=3)
    x = torch.randn(2, graph.num_nodes, 4)
    fused = ours(x, graph.edge_index, graph.edge_weight)
    seen = []
    handle = ours.register_message_forward_hook(lambda module, inputs, out: seen.append(out))
    hooked = ours(x, graph.edge_index, graph.edge_weight)
    handle.remove()
    # K = 3: two propagations, each with one message per entry of the Laplacian
    # (the edges and one self loop per node).
    entries = graph.edge_index.shape[1] + graph.num_nodes
    assert [tuple(m.shape) for m in seen] == [(2, entries, 4)] * 2
    torch.testing.assert_close(hooked, fused, rtol=1e-5, atol=1e-6)
    assert hooked.is_contiguous()


def test_sparse_adjacencies_as_pyg_layers_take_them(graph):
    reference, ours = pair()
    x = torch.randn(graph.num_nodes, 4)
    expected = reference(x, graph.edge_index, graph.edge_weight)
    size = (graph.num_nodes, graph.num_nodes)
    # adj_t[target, source], PyG's convention for sparse adjacencies.
    adj_t = torch.sparse_coo_tensor(graph.edge_index.flip(0), graph.edge_weight, size)
    for adjacency in (adj_t, adj_t.coalesce(), adj_t.to_sparse_csr()):
        torch.testing.assert_close(ours(x, adjacency), expected, rtol=1e-5, atol=1e-6)
    assert not adj_t.is_coalesced()  # the caller's tensor is left as it was
    with pytest.raises(ValueError, match="edge_weight must be None"):
        ours(x, adj_t, graph.edge_weight)


def test_torch_sparse_adjacency(graph):
    torch_sparse = pytest.importorskip("torch_sparse")
    reference, ours = pair()
    x = torch.randn(graph.num_nodes, 4)
    adj_t = torch_sparse.SparseTensor(row=graph.edge_index[1], col=graph.edge_index[0],
                                      value=graph.edge_weight,
                                      sparse_sizes=(graph.num_nodes, graph.num_nodes))
    torch.testing.assert_close(ours(x, adj_t),
                               reference(x, graph.edge_index, graph.edge_weight),
                               rtol=1e-5, atol=1e-6)


def test_torchscript_is_refused_with_a_pointer_to_torch_compile():
    _, ours = pair()
    with pytest.raises(RuntimeError, match="torch.compile"):
        torch.jit.script(ours)


@pytest.mark.parametrize("batched", [False, True])
def test_compiles_with_fullgraph_keeping_the_fused_product(graph, batched, monkeypatch):
    torch._dynamo.reset()
    _, ours = pair()
    calls = []
    original = fused_chebyshev.fused_forward
    monkeypatch.setattr(fused_chebyshev, "fused_forward",
                        lambda *args: calls.append(1) or original(*args))
    shape = (2, graph.num_nodes, 4) if batched else (graph.num_nodes, 4)
    x = torch.randn(shape, requires_grad=True)
    compiled = torch.compile(ours, fullgraph=True)
    out = compiled(x, graph.edge_index, graph.edge_weight)
    assert calls, "the compiled layer did not run the fused product"
    eager = ours(x, graph.edge_index, graph.edge_weight)
    torch.testing.assert_close(out, eager, rtol=1e-5, atol=1e-6)
    assert out.is_contiguous()
    weight = ours.lins[1].weight
    grads = torch.autograd.grad(out.square().sum(), (x, weight))
    expected = torch.autograd.grad(eager.square().sum(), (x, weight))
    for got, want in zip(grads, expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_compiles_with_learnable_edge_weights_through_message_passing(graph):
    torch._dynamo.reset()
    _, ours = pair()
    x = torch.randn(graph.num_nodes, 4)
    weight = graph.edge_weight.clone().requires_grad_()
    compiled = torch.compile(ours, fullgraph=True)
    out = compiled(x, graph.edge_index, weight)
    (grad,) = torch.autograd.grad(out.square().sum(), weight)
    eager = ours(x, graph.edge_index, weight)
    (expected,) = torch.autograd.grad(eager.square().sum(), weight)
    torch.testing.assert_close(out, eager, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad, expected, rtol=1e-4, atol=1e-6)


def test_models_give_contiguous_outputs_and_the_internal_chain_skips_copies(graph):
    from deepsphere_pyg.graphs import SphereHierarchy
    from deepsphere_pyg.models import DeepSphere, SphericalUNet

    hierarchy = SphereHierarchy.healpix(4, 2)
    x = torch.randn(3, hierarchy.num_nodes[0], 2)
    for model in (DeepSphere(hierarchy, 2, 5, channels=(4, 8), K=3),
                  SphericalUNet(hierarchy, 2, 5, channels=(4, 8), K=3)):
        out = model(x)
        assert out.is_contiguous()
        out.view(-1, 5)
    _, ours = pair()
    x = torch.randn(3, graph.num_nodes, 4)
    operator = _operator(graph)
    chained = ours.apply_operator(x, operator, contiguous=False)
    assert not chained.is_contiguous()  # node-major memory, seen as [B, N, F]
    torch.testing.assert_close(chained, ours.apply_operator(x, operator))
