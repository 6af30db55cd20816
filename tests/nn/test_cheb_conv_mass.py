"""SphericalChebConv(normalization="mass"): dense reference M^-1/2 g(S) M^1/2 x, every
path, gradchecks in float64, bad node weights."""

import pytest
import torch
from torch_geometric.data import Batch

from deepsphere_pyg.graphs import icosahedral_graph, laplacian
from deepsphere_pyg.graphs.laplacian import mass_scale
from deepsphere_pyg.graphs.operator import csr_parts
from deepsphere_pyg.nn import SphericalChebConv, chebyshev_operator
from deepsphere_pyg.nn.fused_chebyshev import CSRParts


@pytest.fixture(scope="module")
def graph():
    """Icosahedral mesh (162 nodes) with strongly unequal masses."""
    g = icosahedral_graph(2, dtype=torch.float64)
    g.node_weight = g.node_weight * torch.linspace(0.3, 3.0, g.num_nodes, dtype=torch.float64)
    return g


def layer(K=4, in_channels=3, out_channels=2, seed=0):
    torch.manual_seed(seed)
    conv = SphericalChebConv(in_channels, out_channels, K=K, normalization="mass").double()
    torch.nn.init.normal_(conv.bias)
    return conv


def dense_reference(conv, graph, x, lambda_max=None):
    r""":math:`M^{-1/2} \sum_k T_k(2S/\lambda - I) M^{1/2} x W_k^\top + b` from the dense
    symmetric form (``laplacian(graph, "mass")`` is S / c, the layer's S has c = 1)."""
    n = int(graph.num_nodes)
    symmetric = laplacian(graph, "mass").to_dense() * mass_scale(graph)
    mass = graph.node_weight
    if lambda_max is None:  # 2 max_i sum_j m_j w_ij, the diagonal of S
        lambda_max = 2.0 * float(symmetric.diagonal().max())
    scaled = 2.0 * symmetric / lambda_max - torch.eye(n, dtype=torch.float64)
    root = mass.sqrt().unsqueeze(-1)
    terms = [root * x, scaled @ (root * x)]
    while len(terms) < conv.K:
        terms.append(2.0 * scaled @ terms[-1] - terms[-2])
    out = sum(term @ lin.weight.t() for term, lin in zip(terms, conv.lins, strict=False))
    return out / root + conv.bias


@pytest.mark.parametrize("lambda_max", [None, 40.0])
def test_equals_the_dense_reference(graph, lambda_max):
    conv = layer()
    x = torch.randn(graph.num_nodes, 3, dtype=torch.float64)
    got = conv(x, graph.edge_index, graph.edge_weight, lambda_max=lambda_max,
               node_weight=graph.node_weight)
    torch.testing.assert_close(got, dense_reference(conv, graph, x, lambda_max))


def test_is_g_of_m_inverse_l_on_node_values(graph):
    """K = 2 with weights (a, b): a x + b (2 A / lambda - I) x with A = M^-1 L_m."""
    conv = layer(K=2, in_channels=1, out_channels=1)
    with torch.no_grad():
        conv.lins[0].weight.fill_(0.0)
        conv.lins[1].weight.fill_(1.0)
        conv.bias.zero_()
    x = torch.randn(graph.num_nodes, 1, dtype=torch.float64)
    mass = graph.node_weight
    n = int(graph.num_nodes)
    weights = torch.zeros(n, n, dtype=torch.float64)
    weights[graph.edge_index[0], graph.edge_index[1]] = graph.edge_weight
    weighted = mass[:, None] * weights * mass[None, :]
    operator = (torch.diag(weighted.sum(1)) - weighted) / mass[:, None]  # M^-1 L_m
    lambda_max = 10.0
    expected = 2.0 * operator @ x / lambda_max - x
    got = conv(x, graph.edge_index, graph.edge_weight, lambda_max=lambda_max,
               node_weight=mass)
    torch.testing.assert_close(got, expected)


def test_every_path_agrees(graph):
    conv = layer()
    edge_index, edge_weight, mass = graph.edge_index, graph.edge_weight, graph.node_weight
    x = torch.randn(4, graph.num_nodes, 3, dtype=torch.float64)
    fused = conv(x, edge_index, edge_weight, node_weight=mass)
    for b in range(4):  # [B, N, F] = each sample
        torch.testing.assert_close(fused[b], conv(x[b], edge_index, edge_weight,
                                                  node_weight=mass))
    learnable = edge_weight.clone().requires_grad_()  # messages (propagate)
    torch.testing.assert_close(conv(x, edge_index, learnable, node_weight=mass), fused)
    operator = chebyshev_operator(edge_index, edge_weight, graph.num_nodes, "mass", None,
                                  None, torch.float64, cache=False, node_weight=mass)
    for built in (operator, operator.matrix, CSRParts(*csr_parts(operator.matrix))):
        torch.testing.assert_close(conv.apply_operator(x, built, node_weight=mass), fused)
    hooked = conv.register_message_forward_hook(lambda *args: None)
    try:
        got = conv.apply_operator(x, CSRParts(*csr_parts(operator.matrix)), node_weight=mass)
    finally:
        hooked.remove()
    torch.testing.assert_close(got, fused)


def test_disjoint_batch_equals_each_graph():
    graphs = [icosahedral_graph(1, dtype=torch.float64), icosahedral_graph(2, dtype=torch.float64)]
    batch = Batch.from_data_list(graphs)
    conv = layer()
    x = [torch.randn(g.num_nodes, 3, dtype=torch.float64) for g in graphs]
    tops = []
    for g in graphs:  # each graph's default lambda_max
        weighted = torch.zeros(g.num_nodes, dtype=torch.float64).index_add_(
            0, g.edge_index[0], g.node_weight[g.edge_index[1]] * g.edge_weight)
        tops.append(2.0 * float(weighted.max()))
    got = conv(torch.cat(x), batch.edge_index, batch.edge_weight, batch.batch,
               lambda_max=torch.tensor(tops, dtype=torch.float64),
               node_weight=batch.node_weight)
    expected = torch.cat([conv(xi, g.edge_index, g.edge_weight, node_weight=g.node_weight)
                          for xi, g in zip(x, graphs, strict=True)])
    torch.testing.assert_close(got, expected)


@pytest.fixture(scope="module")
def small():
    """Icosahedral mesh of 42 nodes with unequal masses (gradchecks)."""
    g = icosahedral_graph(1, dtype=torch.float64)
    g.node_weight = g.node_weight * torch.linspace(0.5, 2.0, g.num_nodes, dtype=torch.float64)
    return g


@pytest.mark.parametrize("shape", [(42, 2), (2, 42, 1)])
def test_gradcheck_float64(small, shape):
    conv = layer(K=3, in_channels=shape[-1])
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda x, *weights: conv(x, small.edge_index, small.edge_weight,
                                 node_weight=small.node_weight),
        (x, *conv.parameters()))


def test_gradcheck_in_node_and_edge_weights(small):
    conv = layer(K=3, in_channels=2)
    x = torch.randn(small.num_nodes, 2, dtype=torch.float64)
    mass = small.node_weight.clone().requires_grad_()
    weight = small.edge_weight.clone().requires_grad_()
    assert torch.autograd.gradcheck(
        lambda m, w: conv(x, small.edge_index, w, node_weight=m), (mass, weight))


def test_cached_operator_follows_the_masses(graph):
    conv = layer()
    x = torch.randn(graph.num_nodes, 3, dtype=torch.float64)
    first = conv(x, graph.edge_index, graph.edge_weight, node_weight=graph.node_weight)
    other = graph.node_weight.flip(0).clone()
    second = conv(x, graph.edge_index, graph.edge_weight, node_weight=other)
    assert not torch.allclose(first, second)
    torch.testing.assert_close(second, conv(x, graph.edge_index, graph.edge_weight,
                                            node_weight=other.clone()))


def test_bad_node_weights(graph):
    conv = layer()
    x = torch.randn(graph.num_nodes, 3, dtype=torch.float64)
    args = (x, graph.edge_index, graph.edge_weight)
    mass = graph.node_weight
    with pytest.raises(ValueError, match="needs node_weight.*graph.node_weight"):
        conv(*args)
    with pytest.raises(ValueError, match="needs node_weight"):
        conv.apply_operator(x, torch.eye(graph.num_nodes, dtype=torch.float64).to_sparse_csr())
    for bad in (-mass, mass * 0.0, mass.clone().fill_(float("inf")),
                mass.clone().fill_(float("nan"))):
        with pytest.raises(ValueError, match="node_weight must be positive and finite"):
            conv(*args, node_weight=bad)
    with pytest.raises(ValueError, match=r"node_weight must have shape \[N\] = \[162\]"):
        conv(*args, node_weight=mass[:10])
    with pytest.raises(ValueError, match="floating"):
        conv(*args, node_weight=torch.ones(graph.num_nodes, dtype=torch.long))
    sym = SphericalChebConv(3, 2, K=3).double()
    with pytest.raises(ValueError, match="node_weight applies to normalization='mass' only"):
        sym(*args, node_weight=mass)
    with pytest.raises(ValueError, match="normalization must be None, 'sym' or 'rw'.*or 'mass'"):
        SphericalChebConv(3, 2, K=3, normalization="area")


def test_repr():
    assert repr(SphericalChebConv(3, 2, K=4, normalization="mass")) == (
        "SphericalChebConv(3, 2, K=4, normalization=mass)")


def test_compiles_with_fullgraph_keeping_the_fused_product(small, monkeypatch):
    from deepsphere_pyg.nn import fused_chebyshev

    torch._dynamo.reset()
    conv = layer(K=3, in_channels=2)
    calls = []
    original = fused_chebyshev.fused_forward
    monkeypatch.setattr(fused_chebyshev, "fused_forward",
                        lambda *args: calls.append(1) or original(*args))
    x = torch.randn(2, small.num_nodes, 2, dtype=torch.float64, requires_grad=True)
    args = (small.edge_index, small.edge_weight)
    out = torch.compile(conv, fullgraph=True)(x, *args, node_weight=small.node_weight)
    assert calls, "the compiled layer did not run the fused product"
    eager = conv(x, *args, node_weight=small.node_weight)
    torch.testing.assert_close(out, eager)
    (grad,) = torch.autograd.grad(out.square().sum(), x)
    (expected,) = torch.autograd.grad(eager.square().sum(), x)
    torch.testing.assert_close(grad, expected)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu(small):
    conv = layer(K=3, in_channels=2)
    x = torch.randn(3, small.num_nodes, 2, dtype=torch.float64)
    expected = conv(x, small.edge_index, small.edge_weight, node_weight=small.node_weight)
    got = conv.cuda()(x.cuda(), small.edge_index.cuda(), small.edge_weight.cuda(),
                      node_weight=small.node_weight.cuda())
    torch.testing.assert_close(got.cpu(), expected)
