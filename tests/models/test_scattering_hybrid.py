"""ScatteringDeepSphere: coefficients on a coarse level, normalisation, raw maps, errors."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset
from torch_geometric.data import Batch

from deepsphere_pyg.graphs import SphereHierarchy
from deepsphere_pyg.graphs.hierarchy_data import HierarchyData
from deepsphere_pyg.models import DeepSphere, ScatteringDeepSphere, sub_hierarchy
from deepsphere_pyg.openmp import single_threaded_openmp
from deepsphere_pyg.scattering import SphericalScattering


@pytest.fixture(autouse=True)
def _one_openmp_thread():
    """healpy on one thread (shared machines)."""
    with single_threaded_openmp():
        yield


@pytest.fixture(scope="module")
def healpix16():
    return SphereHierarchy.healpix(16, 4)


@pytest.fixture(scope="module")
def harmonic(healpix16):
    """Harmonic scattering, nside 16 -> coefficients on level 2 (nside 4), P = 16 paths."""
    return SphericalScattering(healpix16, J0=2, backend="harmonic")


def signed_log(s, eps):
    return np.sign(s) * np.log1p(np.abs(s) / eps)


# ------------------------------------------------------------------------- shapes
def test_coefficients_on_a_coarse_level_of_every_sampling(hierarchies, sampling):
    hierarchy = hierarchies[sampling]
    torch.manual_seed(0)
    model = ScatteringDeepSphere(hierarchy, 6, 2, input_level=1, channels=(8, 8), K=3)
    assert model.input_nodes == hierarchy.num_nodes[1]
    assert model.backbone.graph.num_nodes == tuple(hierarchy.num_nodes[1:3])
    s = torch.rand(3, hierarchy.num_nodes[1], 6)
    out = model(s)
    assert out.shape == (3, 2)
    out.square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    # Equal to a DeepSphere on levels 1.. fed with the log-normalised coefficients.
    reference = DeepSphere(sub_hierarchy(hierarchy, 1), 6, 2, channels=(8, 8), K=3)
    reference.load_state_dict(model.backbone.state_dict())
    model.eval()
    reference.eval()
    logged = torch.from_numpy(signed_log(s.numpy(), 1e-3))
    torch.testing.assert_close(model(s), reference(logged), rtol=1e-5, atol=1e-6)
    # Batch == each sample alone in evaluation mode.
    torch.testing.assert_close(torch.cat([model(s[i]) for i in range(3)]), model(s),
                               rtol=1e-5, atol=1e-6)


def test_raw_maps_through_the_scattering_module(healpix16, harmonic):
    torch.manual_seed(1)
    model = ScatteringDeepSphere(healpix16, 2 * harmonic.num_paths, 3, scattering=harmonic,
                                 channels=(8, 8), K=3).eval()
    assert model.input_level == harmonic.output_level == 2
    maps = torch.randn(2, healpix16.num_nodes[0], 2, requires_grad=True)
    coefficients = harmonic(maps.detach())
    assert coefficients.shape == (2, healpix16.num_nodes[2], 2 * harmonic.num_paths)
    out = model(maps)
    torch.testing.assert_close(out, model(coefficients))
    out.sum().backward()
    assert maps.grad is None  # the front-end runs without gradient
    assert model.scattering is harmonic
    # The front-end adds no parameters and no checkpoint entries.
    assert model.num_parameters == model.backbone.num_parameters
    assert not any(key.startswith("scattering.") for key in model.state_dict())


def test_graph_backend_on_the_icosahedron(hierarchies):
    hierarchy = hierarchies["icosahedral"]
    scattering = SphericalScattering(hierarchy, J0=1, backend="graph")
    model = ScatteringDeepSphere(hierarchy, scattering.num_paths, 2, scattering=scattering,
                                 channels=(4, 4), K=2).eval()
    maps = torch.randn(2, hierarchy.num_nodes[0], 1)
    torch.testing.assert_close(model(maps), model(scattering(maps)))


# -------------------------------------------------------------------- normalisation
def test_standardisation_is_fitted_per_channel(hierarchies):
    hierarchy = hierarchies["healpix"]
    torch.manual_seed(2)
    s = torch.rand(10, hierarchy.num_nodes[1], 4) * torch.tensor([1.0, 10.0, 0.01, 3.0])
    s[..., 3] = 2.5  # a constant channel: its standard deviation is replaced by 1
    for normalize, transform in [("standard", lambda v: v),
                                 ("log-standard", lambda v: signed_log(v, 0.1))]:
        model = ScatteringDeepSphere(hierarchy, 4, 2, input_level=1, channels=(4,), K=2,
                                     normalize=normalize, eps=0.1)
        with pytest.raises(RuntimeError, match="fit_normalization"):
            model(s)
        assert model.fit_normalization(s) is model
        values = transform(s.double().numpy()).reshape(-1, 4)
        mean, std = values.mean(0), values.std(0)
        std[3] = 1.0
        np.testing.assert_allclose(model.norm_mean.numpy(), mean, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(model.norm_std.numpy(), std, rtol=1e-5)
        normalised = model.normalize_coefficients(s).double().numpy().reshape(-1, 4)
        np.testing.assert_allclose(normalised.mean(0), 0, atol=1e-5)
        np.testing.assert_allclose(normalised[:, :3].std(0), 1, rtol=1e-4)
        # Batches of a loader (Chan's merge of partial statistics) give the same fit.
        other = ScatteringDeepSphere(hierarchy, 4, 2, input_level=1, channels=(4,), K=2,
                                     normalize=normalize, eps=0.1)
        other.fit_normalization(DataLoader(TensorDataset(s, torch.zeros(10)), batch_size=3))
        torch.testing.assert_close(other.norm_mean, model.norm_mean)
        torch.testing.assert_close(other.norm_std, model.norm_std)
        # The statistics are model state: they travel with the checkpoint.
        fresh = ScatteringDeepSphere(hierarchy, 4, 2, input_level=1, channels=(4,), K=2,
                                     normalize=normalize, eps=0.1)
        fresh.load_state_dict(model.state_dict())
        assert bool(fresh.norm_fitted)
        torch.testing.assert_close(fresh.normalize_coefficients(s),
                                   model.normalize_coefficients(s))


def test_log_and_identity_normalisation(hierarchies):
    hierarchy = hierarchies["healpix"]
    s = torch.randn(2, hierarchy.num_nodes[1], 3)  # order-0 coefficients can be negative
    model = ScatteringDeepSphere(hierarchy, 3, 2, input_level=1, eps=0.05, channels=(4,))
    np.testing.assert_allclose(model.normalize_coefficients(s).numpy(),
                               signed_log(s.numpy(), 0.05), rtol=1e-6, atol=1e-7)
    identity = ScatteringDeepSphere(hierarchy, 3, 2, input_level=1, normalize=None,
                                    channels=(4,))
    assert torch.equal(identity.normalize_coefficients(s), s)
    with pytest.raises(ValueError, match="no fitted statistics"):
        model.fit_normalization(s)
    standard = ScatteringDeepSphere(hierarchy, 3, 2, input_level=1, normalize="standard",
                                    channels=(4,))
    bad = s.clone()
    bad[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        standard.fit_normalization(bad)
    with pytest.raises(ValueError, match="no data"):
        standard.fit_normalization([])


# ---------------------------------------------------------------- disjoint batches
def test_disjoint_batch_of_full_hierarchies(masked_healpix):
    first = masked_healpix([1.0, 0.0, 0.0], 0.9)
    second = masked_healpix([0.0, 0.0, 1.0], 1.3)
    coefficients = [torch.rand(h.num_nodes[1], 5) for h in (first, second)]
    torch.manual_seed(3)
    model = ScatteringDeepSphere(first, 5, 2, input_level=1, channels=(6, 6), K=3).eval()
    other = ScatteringDeepSphere(second, 5, 2, input_level=1, channels=(6, 6), K=3).eval()
    other.load_state_dict(model.state_dict())
    with torch.no_grad():
        expected = torch.cat([model(coefficients[0]), other(coefficients[1])])
        # The samples carry the full hierarchies; the model starts at its input level.
        batch = Batch.from_data_list([HierarchyData.from_hierarchy(h) for h in (first, second)])
        out = model(torch.cat(coefficients), batch)
        torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)
        # Per-level lists are no input: the graphs come only as a HierarchyData batch.
        levels = [batch.level(level) for level in (1, 2)]
        with pytest.raises(TypeError, match="edge_index"):
            model(torch.cat(coefficients), edge_index=[v.edge_index for v in levels],
                  pool_index=[levels[0].pool_index], batch=[v.batch for v in levels],
                  coverage=[v.coverage for v in levels])
        with pytest.raises(ValueError, match="level 1"):
            model(torch.randn(first.num_nodes[0] + second.num_nodes[0], 5), batch)


# --------------------------------------------------------------- arguments, errors
def test_parameters_repr_and_state_dict(healpix16, harmonic):
    model = ScatteringDeepSphere(healpix16, 16, 2, scattering=harmonic, channels=(4, 5), K=3,
                                 normalize="log-standard")
    # Same count as the DeepSphere by hand: convs K*F_in*F_out, batch norms, head.
    assert model.num_parameters == 3 * 16 * 4 + 3 * 4 * 5 + 2 * (4 + 5) + 5 * 2 + 2
    # Default configuration (channels (32, 64), K=5) on the coefficients of one map.
    default = ScatteringDeepSphere(healpix16, 16, 2, scattering=harmonic)
    assert default.num_parameters == 5 * (16 * 32 + 32 * 64) + 2 * (32 + 64) + 64 * 2 + 2
    text = repr(model)
    assert text.startswith("ScatteringDeepSphere(\n  16, 2, input_level=2, "
                           "normalize='log-standard', eps=0.001, num_parameters=")
    assert "SphericalScattering(backend='harmonic'" in text and "(backbone): DeepSphere(" in text
    state = set(model.state_dict())
    assert {"norm_mean", "norm_std", "norm_fitted"} <= state
    assert not any("edge_index" in k or "pool_index" in k or "coverage" in k for k in state)
    ignored = set(model._ddp_params_and_buffers_to_ignore)
    assert "backbone.graph.edge_index_0" in ignored and not ignored & state
    model.reset_parameters()
    # norm goes to the backbone; "none" puts a bias on each convolution instead.
    plain = ScatteringDeepSphere(healpix16, 16, 2, scattering=harmonic, channels=(4, 5), K=3,
                                 norm="none")
    assert plain.backbone.norm == "none" and "norm='none'" in repr(plain)
    assert plain.num_parameters == model.num_parameters - 2 * (4 + 5) + (4 + 5)
    layer = ScatteringDeepSphere(healpix16, 16, 2, input_level=2, channels=(4, 5), K=3,
                                 norm="layer")
    assert all(block.norm_name == "layer" for block in layer.backbone.blocks)


def test_bad_arguments_and_input(healpix16, harmonic, hierarchies):
    with pytest.raises(ValueError, match="input_level"):
        ScatteringDeepSphere(healpix16, 16, 2)
    with pytest.raises(ValueError, match="contradicts"):
        ScatteringDeepSphere(healpix16, 16, 2, scattering=harmonic, input_level=1)
    with pytest.raises(ValueError, match="multiple"):
        ScatteringDeepSphere(healpix16, 17, 2, scattering=harmonic)
    with pytest.raises(ValueError, match="another hierarchy"):
        ScatteringDeepSphere(hierarchies["healpix"], 16, 2, scattering=harmonic)
    with pytest.raises(TypeError, match="SphericalScattering"):
        ScatteringDeepSphere(healpix16, 16, 2, scattering=torch.nn.Identity())
    with pytest.raises(ValueError, match="normalize"):
        ScatteringDeepSphere(healpix16, 16, 2, input_level=2, normalize="sqrt")
    with pytest.raises(ValueError, match="eps"):
        ScatteringDeepSphere(healpix16, 16, 2, input_level=2, eps=0.0)
    with pytest.raises(ValueError, match=r"norm must be one of \['batch', 'layer', 'none'\]"):
        ScatteringDeepSphere(healpix16, 16, 2, input_level=2, norm="batchnorm")
    with pytest.raises(ValueError, match="input_level must be in"):
        ScatteringDeepSphere(healpix16, 16, 2, input_level=4)
    # Levels 2 and 3 left: three blocks do not fit.
    with pytest.raises(ValueError, match="hierarchy has 2 levels"):
        ScatteringDeepSphere(healpix16, 16, 2, scattering=harmonic, channels=(4, 4, 4))
    model = ScatteringDeepSphere(healpix16, 32, 2, scattering=harmonic, channels=(4,))
    message = r"expected coefficients \[B, 192, 32\] \(level 2\) or maps \[B, 3072, 2\]"
    with pytest.raises(ValueError, match=message):
        model(torch.randn(1, 192, 16))
    with pytest.raises(ValueError, match=message):
        model(torch.randn(1, 3072, 3))
    plain = ScatteringDeepSphere(healpix16, 32, 2, input_level=2, channels=(4,))
    with pytest.raises(ValueError, match=r"expected coefficients \[B, 192, 32\] \(level 2\)$"):
        plain(torch.randn(1, 3072, 2))
