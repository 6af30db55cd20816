"""The models under torch.compile (inductor, CPU): same outputs and gradients as eager.

DeepSphere and SphericalUNet compile as one graph (``fullgraph=True``): their convolutions
run PyG's message passing on the operators they own, and pooling takes its general
scatter path. ScatteringDeepSphere compiles with graph breaks around its fixed scattering
front-end (sparse products and input checks that read the data).
"""

import pytest
import torch

from deepsphere_pyg.graphs import SphereHierarchy
from deepsphere_pyg.models import DeepSphere, ScatteringDeepSphere, SphericalUNet
from deepsphere_pyg.nn import SphericalChebConv, fused_chebyshev
from deepsphere_pyg.scattering import SphericalScattering

pytestmark = pytest.mark.slow


def _build(name):
    torch.manual_seed(0)
    if name == "scattering":
        hierarchy = SphereHierarchy.healpix(16, 4)
        scattering = SphericalScattering(hierarchy, J0=2, backend="graph")
        channels = scattering.out_shape(1)[1]
        return ScatteringDeepSphere(hierarchy, channels, 3, scattering=scattering), 3072
    hierarchy = SphereHierarchy.healpix(8, 3)
    model_class = DeepSphere if name == "deepsphere" else SphericalUNet
    return model_class(hierarchy, 2, 3, channels=(8, 16), K=3), 768


@pytest.mark.parametrize("name", ["deepsphere", "unet", "scattering"])
def test_compiled_model_matches_eager_outputs_and_gradients(name, monkeypatch):
    torch._dynamo.reset()
    model, num_nodes = _build(name)
    calls = []
    original = fused_chebyshev.fused_forward

    def counted(*args):
        calls.append(torch.compiler.is_compiling())
        return original(*args)

    monkeypatch.setattr(fused_chebyshev, "fused_forward", counted)
    model.train()  # batch norm in training mode: the statistics of the batch
    x = torch.randn(3, num_nodes, 1 if name == "scattering" else 2)
    compiled = torch.compile(model, fullgraph=name != "scattering")
    parameters = [p for p in model.parameters() if p.requires_grad]

    out = compiled(x)
    grads = torch.autograd.grad(out.square().mean(), parameters)
    expected = model(x)
    expected_grads = torch.autograd.grad(expected.square().mean(), parameters)

    # The convolutions ran the fused sparse product (the custom operator) when compiled:
    # the model's forward calls it once per convolution, eagerly, beside the eager run.
    convolutions = sum(isinstance(m, SphericalChebConv) for m in model.modules())
    assert len(calls) >= 2 * convolutions
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-5)
    for got, want in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-3, atol=1e-5)
    model.eval()
    torch.testing.assert_close(compiled(x), model(x), rtol=1e-4, atol=1e-5)
