"""SphericalChebConv against torch_geometric.nn.ChebConv, gradients, fast path, cache."""

import copy

import pytest
import torch
from torch_geometric.data import Batch
from torch_geometric.nn import ChebConv, Sequential

from deepsphere_pyg.graphs import healpix_graph
from deepsphere_pyg.nn import SphericalChebConv, chebyshev_operator


@pytest.fixture(scope="module")
def graph():
    return healpix_graph(4, k=8)


@pytest.fixture(scope="module")
def two_graphs():
    """A disjoint PyG batch of two different graphs (192 + 48 nodes)."""
    return Batch.from_data_list([healpix_graph(4, k=8), healpix_graph(2, k=8, edges="neighbours")])


def pair(normalization, K=4, in_channels=5, out_channels=7, bias=True, seed=0):
    torch.manual_seed(seed)
    reference = ChebConv(in_channels, out_channels, K=K, normalization=normalization,
                         bias=bias)
    if bias:
        torch.nn.init.normal_(reference.bias)
    ours = SphericalChebConv(in_channels, out_channels, K=K, normalization=normalization,
                             bias=bias)
    ours.load_state_dict(reference.state_dict())
    return reference, ours


NORMALIZATIONS = [None, "sym", "rw"]


@pytest.mark.parametrize("normalization", NORMALIZATIONS)
@pytest.mark.parametrize("lambda_max", [None, 3.0, "tensor"])
def test_same_outputs_as_chebconv(graph, normalization, lambda_max):
    reference, ours = pair(normalization)
    if lambda_max == "tensor":
        lambda_max = torch.tensor(2.5)
    x = torch.randn(192, 5)
    expected = reference(x, graph.edge_index, graph.edge_weight, lambda_max=lambda_max)
    got = ours(x, graph.edge_index, graph.edge_weight, lambda_max=lambda_max)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("normalization", NORMALIZATIONS)
def test_same_outputs_on_a_disjoint_batch_with_one_lambda_max_per_graph(
    two_graphs, normalization
):
    reference, ours = pair(normalization)
    x = torch.randn(two_graphs.num_nodes, 5)
    for lambda_max in (None, torch.tensor([2.0, 3.5])):
        args = (x, two_graphs.edge_index, two_graphs.edge_weight, two_graphs.batch, lambda_max)
        torch.testing.assert_close(ours(*args), reference(*args), rtol=1e-5, atol=1e-5)


def test_unweighted_graph_and_no_bias(graph):
    reference, ours = pair("sym", bias=False)
    x = torch.randn(192, 5)
    torch.testing.assert_close(ours(x, graph.edge_index), reference(x, graph.edge_index))
    assert ours.bias is None


def test_state_dict_round_trip():
    reference, ours = pair("sym", K=3)
    assert list(ours.state_dict()) == list(reference.state_dict())
    back = ChebConv(5, 7, K=3)
    back.load_state_dict(ours.state_dict())
    for key, value in back.state_dict().items():
        assert torch.equal(value, reference.state_dict()[key])


@pytest.mark.parametrize("normalization", NORMALIZATIONS)
def test_shared_graph_batch_equals_each_sample(graph, normalization):
    reference, ours = pair(normalization)
    x = torch.randn(3, 192, 5)
    got = ours(x, graph.edge_index, graph.edge_weight)
    assert got.shape == (3, 192, 7)
    expected = torch.stack([reference(sample, graph.edge_index, graph.edge_weight)
                            for sample in x])
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    # Chained layers keep working on the transposed memory layout of the output.
    second = SphericalChebConv(7, 2, K=3, normalization=normalization)
    chained = second(got, graph.edge_index, graph.edge_weight)
    per_sample = torch.stack([second(s, graph.edge_index, graph.edge_weight) for s in got])
    torch.testing.assert_close(chained, per_sample, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("normalization", NORMALIZATIONS)
@pytest.mark.parametrize("shape", [(48, 2), (2, 48, 2)])
def test_gradcheck_float64(normalization, shape):
    small = healpix_graph(2, k=8, dtype=torch.float64)
    conv = SphericalChebConv(2, 3, K=3, normalization=normalization).double()
    x = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda x, *weights: conv(x, small.edge_index, small.edge_weight),
        (x, *conv.parameters()),
    )


@pytest.mark.parametrize("normalization", NORMALIZATIONS)
def test_gradients_reach_learnable_edge_weights(graph, normalization):
    reference, ours = pair(normalization, K=3)
    x = torch.randn(192, 5)
    weights = []
    for layer in (reference, ours):
        weight = graph.edge_weight.clone().requires_grad_()
        layer(x, graph.edge_index, weight).square().sum().backward()
        weights.append(weight.grad)
    torch.testing.assert_close(weights[1], weights[0], rtol=1e-4, atol=1e-5)


def test_gradcheck_in_edge_weights():
    small = healpix_graph(2, k=8, dtype=torch.float64)
    conv = SphericalChebConv(2, 2, K=3).double()
    x = torch.randn(48, 2, dtype=torch.float64)
    weight = small.edge_weight.clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda w: conv(x, small.edge_index, w), (weight,))


def test_inside_pyg_sequential(graph):
    model = Sequential("x, edge_index, edge_weight", [
        (SphericalChebConv(5, 8, K=3), "x, edge_index, edge_weight -> x"),
        torch.nn.ReLU(),
        (SphericalChebConv(8, 2, K=3), "x, edge_index, edge_weight -> x"),
    ])
    out = model(torch.randn(192, 5), graph.edge_index, graph.edge_weight)
    assert out.shape == (192, 2)


def test_operator_is_cached_per_graph_and_kept_out_of_checkpoints(graph):
    first = chebyshev_operator(graph.edge_index, graph.edge_weight, 192, "sym", None, None,
                               torch.float32)
    again = chebyshev_operator(graph.edge_index, graph.edge_weight, 192, "sym", None, None,
                               torch.float32)
    assert again is first
    other = chebyshev_operator(graph.edge_index, graph.edge_weight, 192, None, None, None,
                               torch.float32)
    assert other is not first
    weight = graph.edge_weight.clone()
    before = chebyshev_operator(graph.edge_index, weight, 192, "sym", None, None,
                                torch.float32)
    weight.mul_(3.0)  # an in-place edit must not be served a stale operator
    after = chebyshev_operator(graph.edge_index, weight, 192, "sym", 4.0, None,
                               torch.float32)
    assert after is not before
    conv = SphericalChebConv(5, 7, K=3)
    conv(torch.randn(192, 5), graph.edge_index, graph.edge_weight)
    assert set(conv.state_dict()) == {"lins.0.weight", "lins.1.weight", "lins.2.weight",
                                      "bias"}


def test_repr_and_reset():
    conv = SphericalChebConv(16, 32, K=5, normalization="sym")
    assert repr(conv) == "SphericalChebConv(16, 32, K=5, normalization=sym)"
    assert repr(conv) == repr(ChebConv(16, 32, K=5)).replace("ChebConv", "SphericalChebConv")
    torch.nn.init.ones_(conv.bias)
    conv.reset_parameters()
    assert torch.all(conv.bias == 0)
    assert conv.K == 5


def test_bad_arguments(graph):
    with pytest.raises(ValueError, match="K must be an integer >= 1"):
        SphericalChebConv(2, 2, K=0)
    with pytest.raises(ValueError, match="normalization must be None, 'sym' or 'rw'"):
        SphericalChebConv(2, 2, K=2, normalization="random-walk")
    conv = SphericalChebConv(5, 2, K=2)
    with pytest.raises(ValueError, match=r"x must be \[N, F_in\] or \[B, N, F_in\]"):
        conv(torch.randn(1, 1, 192, 5), graph.edge_index)
    with pytest.raises(ValueError, match="in_channels=5"):
        conv(torch.randn(192, 4), graph.edge_index)
    with pytest.raises(ValueError, match="batch must be None when x is"):
        conv(torch.randn(2, 192, 5), graph.edge_index, batch=torch.zeros(192, dtype=torch.long))


@pytest.mark.parametrize("normalization", NORMALIZATIONS)
def test_cpu_kernels_agree(graph, normalization):
    from deepsphere_pyg.nn.chebyshev_operator import get_cpu_kernel, set_cpu_kernel

    conv = SphericalChebConv(5, 3, K=4, normalization=normalization)
    x = torch.randn(2, 192, 5, requires_grad=True)
    results = []
    default = get_cpu_kernel()
    try:
        for kernel in ("scipy", "torch"):
            set_cpu_kernel(kernel)
            x.grad = None
            out = conv(x, graph.edge_index, graph.edge_weight)
            out.square().sum().backward()
            results.append((out.detach(), x.grad.clone()))
    finally:
        set_cpu_kernel(default)
    torch.testing.assert_close(results[0][0], results[1][0])
    torch.testing.assert_close(results[0][1], results[1][1])
    with pytest.raises(ValueError, match="CPU kernel must be one of"):
        set_cpu_kernel("mkl")


@pytest.mark.parametrize("normalization", [None, "sym"])
def test_dense_chebyshev_reference(normalization):
    """Against sum_k T_k(L_hat) X W_k^T built from the dense Laplacian."""
    from deepsphere_pyg.graphs import estimate_lambda_max, laplacian

    small = healpix_graph(2, k=8, dtype=torch.float64)
    lam = estimate_lambda_max(small, normalization)
    dense = laplacian(small, normalization).to_dense()
    scaled = 2.0 * dense / lam - torch.eye(48, dtype=torch.float64)
    conv = SphericalChebConv(3, 4, K=5, normalization=normalization).double()
    torch.nn.init.normal_(conv.bias)
    x = torch.randn(48, 3, dtype=torch.float64)
    polynomials = [torch.eye(48, dtype=torch.float64), scaled]
    while len(polynomials) < 5:
        polynomials.append(2 * scaled @ polynomials[-1] - polynomials[-2])
    expected = sum(p @ x @ lin.weight.t() for p, lin in zip(polynomials, conv.lins,
                                                             strict=True)) + conv.bias
    got = conv(x, small.edge_index, small.edge_weight, lambda_max=lam)
    torch.testing.assert_close(got, expected)


def test_wrong_node_count(graph):
    conv = SphericalChebConv(5, 2, K=2)
    with pytest.raises(ValueError, match="x has 100 nodes but edge_index refers to node 191"):
        conv(torch.randn(100, 5), graph.edge_index, graph.edge_weight)
    with pytest.raises(ValueError, match="x has 100 nodes"):
        conv(torch.randn(2, 100, 5), graph.edge_index, graph.edge_weight)


def test_backward_twice_through_a_retained_graph(graph):
    conv = SphericalChebConv(5, 3, K=4)
    x = torch.randn(2, 192, 5, requires_grad=True)
    loss = conv(x, graph.edge_index, graph.edge_weight).square().sum()
    first = torch.autograd.grad(loss, [x, conv.lins[2].weight], retain_graph=True)
    second = torch.autograd.grad(loss, [x, conv.lins[2].weight])
    for a, b in zip(first, second, strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("normalization", NORMALIZATIONS)
def test_cuda_matches_cpu_and_gradchecks(normalization):
    small = healpix_graph(2, k=8, dtype=torch.float64)
    conv = SphericalChebConv(2, 3, K=4, normalization=normalization).double()
    x = torch.randn(3, 48, 2, dtype=torch.float64, requires_grad=True)
    expected = conv(x, small.edge_index, small.edge_weight)
    expected.square().sum().backward()
    cuda_conv = copy.deepcopy(conv).cuda()
    x_cuda = x.detach().cuda().requires_grad_()
    edge_index, edge_weight = small.edge_index.cuda(), small.edge_weight.cuda()
    got = cuda_conv(x_cuda, edge_index, edge_weight)
    got.square().sum().backward()
    torch.testing.assert_close(got.cpu(), expected)
    torch.testing.assert_close(x_cuda.grad.cpu(), x.grad)
    assert torch.autograd.gradcheck(
        lambda x, *weights: cuda_conv(x, edge_index, edge_weight),
        (x_cuda.detach().requires_grad_(), *cuda_conv.parameters()),
    )
