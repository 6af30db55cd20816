"""DeepSphere: every sampling, batch consistency, disjoint batches, invariance, arguments."""

import healpy as hp
import numpy as np
import pytest
import torch
from torch_geometric.data import Batch

from deepsphere_pyg.graphs import SphereHierarchy
from deepsphere_pyg.graphs.hierarchy_data import HierarchyData
from deepsphere_pyg.models import DeepSphere, node_statistic
from deepsphere_pyg.nn import SphericalChebConv

NORMS = ("batch", "layer", "none")


def model_for(hierarchy, seed=0, **kwargs):
    torch.manual_seed(seed)
    kwargs.setdefault("channels", (8, 16, 16))
    kwargs.setdefault("K", 3)
    return DeepSphere(hierarchy, 2, 3, **kwargs)


# ------------------------------------------------------------------------- shapes
@pytest.mark.parametrize("head", ["statistic", "fc"])
def test_forward_backward_on_every_sampling(hierarchies, sampling, head):
    hierarchy = hierarchies[sampling]
    model = model_for(hierarchy, head=head, statistic="meanvar")
    x = torch.randn(4, hierarchy.num_nodes[0], 2)
    out = model(x)
    assert out.shape == (4, 3)
    out.square().sum().backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().sum() > 0, name
    # One sample as [N, F] is a batch of one.
    model.eval()
    torch.testing.assert_close(model(x[1]), model(x[1:2]))


def test_batch_equals_each_sample(hierarchies, sampling, train_briefly):
    hierarchy = hierarchies[sampling]
    x = torch.randn(3, hierarchy.num_nodes[0], 2)
    for head in ("statistic", "fc"):
        model = train_briefly(model_for(hierarchy, head=head, statistic="var"), x)
        with torch.no_grad():
            out = model(x)
            alone = torch.cat([model(x[i : i + 1]) for i in range(3)])
        torch.testing.assert_close(out, alone, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("norm", NORMS)
def test_every_norm_trains_and_evaluates_sample_by_sample(hierarchies, train_briefly, norm):
    """Shapes and gradients in training; in evaluation the output is deterministic and a
    sample's output does not depend on its batch, for both heads."""
    hierarchy = hierarchies["healpix-partial"]
    x = torch.randn(3, hierarchy.num_nodes[0], 2)
    for head in ("statistic", "fc"):
        model = model_for(hierarchy, head=head, statistic="meanvar", norm=norm)
        assert model.norm == norm
        assert all(block.norm_name == norm for block in model.blocks)
        out = model(x)
        assert out.shape == (3, 3)
        out.square().sum().backward()
        for name, parameter in model.named_parameters():
            assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
        model = train_briefly(model, x)
        state = {k: v.clone() for k, v in model.state_dict().items()}
        with torch.no_grad():
            first, second = model(x), model(x)
            alone = torch.cat([model(x[i : i + 1]) for i in range(3)])
        torch.testing.assert_close(first, second, rtol=0, atol=0)
        torch.testing.assert_close(first, alone, rtol=1e-5, atol=1e-6)
        # Evaluation changes no state (no running statistics updated).
        for key, value in model.state_dict().items():
            assert torch.equal(value, state[key]), key


def test_only_batch_norm_mixes_the_samples_of_a_training_batch(hierarchies):
    """In training mode batch normalisation pools statistics over the batch; the
    per-sample layer norm and no normalisation keep each sample to itself."""
    hierarchy = hierarchies["points"]
    x = torch.randn(4, hierarchy.num_nodes[0], 2)
    for norm in NORMS:
        model = model_for(hierarchy, norm=norm).train()
        with torch.no_grad():
            together, alone = model(x)[:1], model(x[:1])
        if norm == "batch":
            assert not torch.allclose(together, alone, rtol=1e-3, atol=1e-4)
        else:
            torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-6)


def test_sphere_signal_batches_from_a_pyg_loader(hierarchies):
    from torch_geometric.loader import DataLoader

    from deepsphere_pyg.data import SphereSignal

    hierarchy = hierarchies["equiangular"]
    samples = [SphereSignal(x=torch.randn(hierarchy.num_nodes[0], 2), y=torch.tensor(i % 3))
               for i in range(5)]
    batch = next(iter(DataLoader(samples, batch_size=5)))
    model = model_for(hierarchy).eval()
    out = model(batch)
    assert out.shape == (5, 3)
    torch.testing.assert_close(out, model(torch.stack([s.x for s in samples])))


# ---------------------------------------------------------------- disjoint batches
@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("kind", ["healpix", "points"])
def test_disjoint_batch_equals_each_graph_alone(kind, norm, masked_healpix, points_hierarchy,
                                                train_briefly):
    if kind == "healpix":
        first = masked_healpix([1.0, 0.0, 0.0], 0.8)
        second = masked_healpix([0.0, 0.3, 1.0], 1.2)
    else:
        first = points_hierarchy(250, 1)
        second = points_hierarchy(180, 2)
    assert first.num_nodes != second.num_nodes
    xs = [torch.randn(h.num_nodes[0], 2) for h in (first, second)]
    reference = train_briefly(model_for(first, statistic="meanvar", norm=norm), xs[0][None])
    # The same weights on the second graph, through the shared-graph path.
    other = model_for(second, statistic="meanvar", norm=norm).eval()
    other.load_state_dict(reference.state_dict())
    with torch.no_grad():
        expected = torch.cat([reference(xs[0][None]), other(xs[1][None])])
        samples = [HierarchyData.from_hierarchy(h, x=x) for h, x in zip((first, second), xs,
                                                                       strict=True)]
        batch = Batch.from_data_list(samples)
        out = reference(batch.x, batch)
        torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(reference(batch), out)  # model(batch) form
        # One HierarchyData alone.
        torch.testing.assert_close(reference(samples[1].x, samples[1]), expected[1:])
        # Per-level lists are no input: the graphs come only as a HierarchyData batch.
        levels = [batch.level(level) for level in range(3)]
        with pytest.raises(TypeError, match="edge_index"):
            reference(batch.x, edge_index=[v.edge_index for v in levels],
                      pool_index=[v.pool_index for v in levels[:2]])
        with pytest.raises(TypeError, match="HierarchyData.*got list"):
            reference(batch.x, [v.edge_index for v in levels])


def test_coverage_weighted_statistics_match_the_definition(masked_healpix):
    hierarchy = masked_healpix([0.3, 1.0, 0.0], 0.9)
    weight = hierarchy.coverage[2].double()
    assert weight.min() < 1  # partial parents at the border of the mask
    x = torch.randn(2, hierarchy.num_nodes[2], 3, dtype=torch.float64)
    w = weight.numpy()[None, :, None]
    mean = (x.numpy() * w).sum(1) / w.sum()
    var = (((x.numpy() - mean[:, None]) ** 2) * w).sum(1) / w.sum()
    got = node_statistic(x, "meanvar", weight=weight)
    np.testing.assert_allclose(got.numpy(), np.concatenate([mean, var], 1), rtol=1e-12)
    np.testing.assert_allclose(node_statistic(x, "max").numpy(), x.numpy().max(1))
    # Disjoint form: the two samples as one [2N, C] batch.
    batch = torch.arange(2).repeat_interleave(x.shape[1])
    for statistic in ("mean", "max", "var", "meanvar"):
        disjoint = node_statistic(x.reshape(-1, 3), statistic, batch=batch,
                                  weight=weight.repeat(2))
        torch.testing.assert_close(disjoint, node_statistic(x, statistic, weight=weight))


# -------------------------------------------------------------- rotation invariance
def z_rotation(nside):
    """NEST pixel that each NEST pixel moves to under a 90 degree rotation about z."""
    theta, phi = hp.pix2ang(nside, np.arange(12 * nside**2), nest=True)
    return torch.from_numpy(hp.ang2pix(nside, theta, phi + np.pi / 2, nest=True))


def test_statistic_head_is_nearly_rotation_invariant(hierarchies, nside, train_briefly):
    hierarchy = hierarchies["healpix"]
    perms = [z_rotation(nside >> level) for level in range(3)]
    for level in range(3):
        assert torch.equal(torch.sort(perms[level]).values, torch.arange(perms[level].numel()))
    # The rotation maps the pooling tree onto itself ...
    for level in range(2):
        parents = hierarchy.pool_index[level]
        assert torch.equal(perms[level] // 4, perms[level + 1][parents])
    # ... and the k-NN graphs almost: only a few tied weakest edges differ.
    torch.manual_seed(0)
    x = torch.randn(6, hierarchy.num_nodes[0], 2)
    rotated = torch.empty_like(x)
    rotated[:, perms[0]] = x
    changes = {}
    for head in ("statistic", "fc"):
        model = train_briefly(model_for(hierarchy, head=head, K=4), x)
        with torch.no_grad():
            out, out_rotated = model(x), model(rotated)
        change = (out_rotated - out).norm(dim=1)
        between_inputs = (out - out.roll(1, 0)).norm(dim=1)
        changes[head] = float(change.mean() / between_inputs.mean())
    # Measured: statistic 0.009 (the asymmetric ties of the k-NN graph), fc 0.74.
    assert changes["statistic"] < 0.05, changes
    assert changes["fc"] > 0.3, changes


# ------------------------------------------------------------------- arguments
def test_arguments_change_the_architecture(hierarchies):
    hierarchy = hierarchies["healpix"]
    for channels in [(4,), (4, 8), (4, 8, 16)]:
        for K in (1, 2, 5):
            model = DeepSphere(hierarchy, 2, 3, channels=channels, K=K)
            convs = [m for m in model.modules() if isinstance(m, SphericalChebConv)]
            assert len(convs) == len(channels) == len(model.blocks)
            assert [c.K for c in convs] == [K] * len(channels)
            assert [c.out_channels for c in convs] == list(channels)
            assert model.levels == tuple(range(len(channels)))
            assert model.graph.num_nodes == tuple(hierarchy.num_nodes[: len(channels)])
    # Several blocks per level; pooling only when the level changes.
    model = DeepSphere(hierarchy, 2, 3, channels=(4, 4, 8), levels=(0, 0, 2), head="fc")
    assert model.levels == (0, 0, 2) and model.last_nodes == hierarchy.num_nodes[2]
    assert model.head.in_features == hierarchy.num_nodes[2] * 8
    assert model(torch.randn(2, hierarchy.num_nodes[0], 2)).shape == (2, 3)
    # The pooling mode changes the output; "mean" and "average" are the same mode.
    x = torch.randn(2, hierarchy.num_nodes[0], 2)
    outs = {}
    for pool in ("max", "mean", "average"):
        outs[pool] = model_for(hierarchy, pool=pool).eval()(x)
    torch.testing.assert_close(outs["mean"], outs["average"])
    assert not torch.allclose(outs["max"], outs["mean"])


def test_parameter_counts_by_hand(hierarchies):
    hierarchy = hierarchies["healpix"]
    n2 = hierarchy.num_nodes[1]
    # Chebyshev weights K * F_in * F_out (no conv bias before a normalisation), batch or
    # layer norm 2 * F (scale and shift per channel), head Linear(features, out) + bias.
    conv = 3 * 2 * 4 + 3 * 4 * 5
    cases = [
        (dict(), conv + 2 * (4 + 5) + 5 * 3 + 3),
        (dict(statistic="meanvar"), conv + 2 * (4 + 5) + 10 * 3 + 3),
        (dict(norm="layer"), conv + 2 * (4 + 5) + 5 * 3 + 3),
        (dict(norm="none"), conv + (4 + 5) + 5 * 3 + 3),  # a conv bias per channel
        (dict(norm=None), conv + (4 + 5) + 5 * 3 + 3),
        (dict(head="fc"), conv + 2 * (4 + 5) + n2 * 5 * 3 + 3),
    ]
    for kwargs, expected in cases:
        model = DeepSphere(hierarchy, 2, 3, channels=(4, 5), K=3, **kwargs)
        assert model.num_parameters == expected, kwargs
    # Default configuration on HEALPix nside 32 / 4 levels, 1 input, 2 outputs.
    default = 5 * (1 * 16 + 16 * 32 + 32 * 64) + 2 * (16 + 32 + 64) + 64 * 2 + 2
    assert default == 13234
    assert DeepSphere(hierarchy, 1, 2, channels=(16, 32, 64)).num_parameters == default


def test_repr_reset_and_state_dict(hierarchies):
    hierarchy = hierarchies["healpix-partial"]
    model = DeepSphere(hierarchy, 2, 3, channels=(4, 5), K=3, pool="mean", head="fc",
                       dropout=0.25)
    text = repr(model)
    assert text.startswith("DeepSphere(\n  2, 3, channels=(4, 5), K=3, levels=(0, 1), ")
    for part in ("pool='mean'", "head='fc'", "dropout=0.25", "norm='batch'",
                 f"num_parameters={model.num_parameters}",
                 f"num_nodes={hierarchy.num_nodes[:2]}", "HierarchyBuffers(sampling='healpix'"):
        assert part in text, part
    # No graph tensor in the checkpoint: parameters and batch-norm statistics only.
    state = model.state_dict()
    parameters = dict(model.named_parameters())
    for key in state:
        assert key in parameters or key.split(".")[-1] in (
            "running_mean", "running_var", "num_batches_tracked"), key
    graph_names = set(model._ddp_params_and_buffers_to_ignore)
    assert {"graph.edge_index_0", "graph.edge_weight_1", "graph.pool_index_0",
            "graph.coverage_1"} <= graph_names
    assert not graph_names & set(state)
    # The buffers follow .to() and the model still runs in float64.
    double = model.double()
    assert double.graph.edge_weight_0.dtype == torch.float64
    assert double(torch.randn(2, hierarchy.num_nodes[0], 2, dtype=torch.float64)).dtype == \
        torch.float64
    before = [p.detach().clone() for p in model.parameters()]
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(0.5)
    model.reset_parameters()
    after = list(model.parameters())
    assert all(a.shape == b.shape for a, b in zip(before, after, strict=True))
    assert not any(torch.all(a == 0.5) for a in after if a.numel() > 8)
    norm = model.blocks[0].norm
    assert torch.all(norm.weight == 1) and torch.all(norm.bias == 0)


# ------------------------------------------------------------------- bad input
def test_bad_input(hierarchies, masked_healpix, nside):
    hierarchy = hierarchies["healpix"]
    model = model_for(hierarchy)
    with pytest.raises(ValueError, match=f"N={hierarchy.num_nodes[0]}"):
        model(torch.randn(2, 100, 2))
    with pytest.raises(ValueError, match="in_channels=2"):
        model(torch.randn(2, hierarchy.num_nodes[0], 5))
    with pytest.raises(ValueError, match="shape"):
        model(torch.randn(hierarchy.num_nodes[0]))
    with pytest.raises(TypeError, match="torch.Tensor"):
        model(np.zeros((1, hierarchy.num_nodes[0], 2)))
    with pytest.raises(ValueError, match="hierarchy has 3 levels"):
        DeepSphere(hierarchy, 2, 3, channels=(4, 4, 4, 4))
    with pytest.raises(ValueError, match="levels"):
        DeepSphere(hierarchy, 2, 3, channels=(4, 4), levels=(1, 0))
    with pytest.raises(ValueError, match="levels refers to level 3"):
        DeepSphere(hierarchy, 2, 3, channels=(4, 4), levels=(0, 3))
    with pytest.raises(ValueError, match="2 blocks"):
        DeepSphere(hierarchy, 2, 3, channels=(4, 4), levels=(0,))
    for kwargs, message in [(dict(head="cnn"), "head"), (dict(statistic="median"), "statistic"),
                            (dict(pool="sum"), "pool"), (dict(K=0), "K"),
                            (dict(channels=()), "channels"), (dict(channels=4), "channels"),
                            (dict(dropout=1.0), "dropout"),
                            (dict(norm="group"), r"norm must be one of \['batch', 'layer', "
                                                 r"'none'\] or None, got 'group'"),
                            (dict(norm=False), r"norm=None")]:
        with pytest.raises(ValueError, match=message):
            DeepSphere(hierarchy, 2, 3, **kwargs)
    with pytest.raises(TypeError, match="SphereHierarchy"):
        DeepSphere(hierarchy[0], 2, 3)

    # head="fc" on a disjoint batch whose graphs have another size at the last level.
    masked = masked_healpix([1.0, 0.0, 0.0], 0.8)
    fc = model_for(hierarchy, head="fc")
    samples = [HierarchyData.from_hierarchy(h, x=torch.randn(h.num_nodes[0], 2))
               for h in (hierarchy, masked)]
    batch = Batch.from_data_list(samples)
    with pytest.raises(ValueError, match=f"exactly {hierarchy.num_nodes[2]} nodes per graph"):
        fc(batch)
    fc(Batch.from_data_list([samples[0], samples[0]]))  # same size: fine
    # Disjoint batches: too few levels, x of the wrong size, mixed arguments.
    shallow = HierarchyData.from_hierarchy(SphereHierarchy.healpix(nside, 2),
                                           x=torch.randn(12 * nside**2, 2))
    with pytest.raises(ValueError, match="needs 3 levels"):
        model(shallow)
    with pytest.raises(ValueError, match="nodes"):
        model(torch.randn(10, 2), batch)
    with pytest.raises(ValueError, match="once"):
        model(batch, batch)
    with pytest.raises(TypeError, match="edge_index"):
        model(batch.x, batch, edge_index=[batch.edge_index])
    with pytest.raises(TypeError, match="pool_index"):
        model(torch.randn(2, hierarchy.num_nodes[0], 2), pool_index=[batch.pool_index_0])
    with pytest.raises(ValueError, match=r"\[sum N, F\]"):
        model(torch.randn(2, hierarchy.num_nodes[0], 2), batch)
    from torch_geometric.data import Data
    with pytest.raises(TypeError, match="HierarchyData"):
        model(Data(x=batch.x, edge_index=batch.edge_index))


def test_nan_is_not_checked_and_stays_in_its_sample(hierarchies, train_briefly):
    """NaN inputs are not searched for (a check would cost a device sync per step): in
    evaluation mode they propagate to the output of their own sample only."""
    hierarchy = hierarchies["healpix"]
    x = torch.randn(2, hierarchy.num_nodes[0], 2)
    model = train_briefly(model_for(hierarchy), x)
    clean = model(x[1:])
    x[0, 5, 1] = float("nan")
    out = model(x)
    assert torch.isnan(out[0]).all()
    torch.testing.assert_close(out[1:], clean)
