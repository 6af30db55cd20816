"""ConvBlock normalisations: the layer norm against torch's GroupNorm, disjoint batches,
argument checks, and recomputing batch-norm statistics after training."""

import pytest
import torch
from torch.optim.swa_utils import update_bn
from torch_geometric.loader import DataLoader

from deepsphere_pyg.data import SphereSignal
from deepsphere_pyg.models import DeepSphere
from deepsphere_pyg.models.blocks import NORMS, ConvBlock, SampleLayerNorm, check_norm


def test_norm_names():
    assert NORMS == ("batch", "layer", "none")
    assert [check_norm(n) for n in (*NORMS, None)] == ["batch", "layer", "none", "none"]
    with pytest.raises(ValueError, match=r"one of \['batch', 'layer', 'none'\] or None, got "
                                         r"'Batch'"):
        check_norm("Batch")
    with pytest.raises(ValueError, match=r"former batch_norm=True is norm='batch'"):
        check_norm(True)
    with pytest.raises(ValueError, match=r"former batch_norm=False is norm=None"):
        ConvBlock(2, 3, 2, False)


def test_conv_bias_and_norm_module_per_choice(hierarchies):
    for norm, module, bias in (("batch", torch.nn.BatchNorm1d, False),
                               ("layer", SampleLayerNorm, False), ("none", None, True),
                               (None, None, True)):
        block = ConvBlock(2, 3, 2, norm)
        assert (block.conv.bias is not None) == bias, norm
        assert block.norm is None if module is None else isinstance(block.norm, module)
        assert block.norm_name == check_norm(norm)
    assert repr(SampleLayerNorm(4)) == "SampleLayerNorm(4, eps=1e-05)"


def test_layer_norm_is_group_norm_with_one_group_per_sample():
    torch.manual_seed(0)
    norm = SampleLayerNorm(5)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 2.0)
        norm.bias.normal_()
    h = 3.0 + 0.01 * torch.randn(4, 50, 5, dtype=torch.float64)  # offset, small scale
    norm = norm.double()
    # torch's GroupNorm takes [B, C, N]; one group = statistics over nodes and channels.
    reference = torch.nn.functional.group_norm(h.transpose(1, 2), 1, norm.weight, norm.bias,
                                               norm.eps).transpose(1, 2)
    torch.testing.assert_close(norm(h), reference)
    torch.testing.assert_close(norm(h[2]), reference[2])  # [N, C]: one graph
    # Disjoint batch of graphs of different sizes: statistics per graph.
    sizes = (50, 20, 35)
    parts = [h[0], h[1, :20], h[3, :35]]
    batch = torch.repeat_interleave(torch.arange(3), torch.tensor(sizes))
    joined = norm(torch.cat(parts), batch)
    torch.testing.assert_close(joined, torch.cat([norm(p) for p in parts]))
    torch.testing.assert_close(norm(torch.cat(parts), batch, num_graphs=3), joined)
    # Normalised output: zero mean, unit variance per sample before the affine map
    # (variance above eps = 1e-5).
    plain = SampleLayerNorm(5).double()
    out = plain(3.0 + 2.0 * torch.randn(4, 50, 5, dtype=torch.float64))
    torch.testing.assert_close(out.mean(dim=(1, 2)), torch.zeros(4, dtype=torch.float64),
                               atol=1e-10, rtol=0)
    torch.testing.assert_close(out.var(dim=(1, 2), unbiased=False),
                               torch.ones(4, dtype=torch.float64), atol=1e-3, rtol=0)


def test_layer_norm_block_gradcheck(hierarchies):
    hierarchy = hierarchies["points"]
    graph = hierarchy[2]
    torch.manual_seed(0)
    block = ConvBlock(2, 3, 3, "layer").double()
    x = torch.randn(2, graph.num_nodes, 2, dtype=torch.float64, requires_grad=True)
    weight = graph.edge_weight.double()
    assert torch.autograd.gradcheck(lambda t: block(t, graph.edge_index, weight), (x,))


def test_update_bn_recomputes_the_statistics_from_a_pyg_loader(hierarchies):
    """After training steps the running averages lag the weights; one pass of
    ``torch.optim.swa_utils.update_bn`` over a loader of SphereSignal samples replaces
    them by the statistics of the final weights (unbiased variance over the pass)."""
    hierarchy = hierarchies["healpix"]
    torch.manual_seed(0)
    model = DeepSphere(hierarchy, 1, 2, channels=(4, 8), K=3)
    x = 0.01 * torch.randn(12, hierarchy.num_nodes[0], 1)
    y = torch.arange(12) % 2
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(5):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    level = model.graph.level(0)
    first = model.blocks[0]
    with torch.no_grad():
        h = first.conv(x, level.edge_index, level.edge_weight, lambda_max=2.0).reshape(-1, 4)
    mean, var = h.mean(0), h.var(0)
    # Initial running variance 1, conv output variance ~1e-4: 5 steps leave it far off.
    assert (first.norm.running_var / var).min() > 10
    loader = DataLoader([SphereSignal(x=x[i], y=y[i]) for i in range(12)], batch_size=12)
    model.eval()
    update_bn(loader, model)
    assert not model.training  # the mode it found
    torch.testing.assert_close(first.norm.running_mean, mean, rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(first.norm.running_var, var, rtol=1e-4, atol=1e-9)
