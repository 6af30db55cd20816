"""SphericalScattering (shapes, paths metadata, configuration, errors) and its PyG transform."""

import copy
import json
import math

import healpy as hp
import numpy as np
import pytest
import torch
from torch_geometric.data import Data, InMemoryDataset

from deepsphere_pyg.graphs import SphereHierarchy, equiangular_hierarchy
from deepsphere_pyg.scattering import ScatteringTransform, SphericalScattering
from deepsphere_pyg.scattering.module import default_band_limit, hierarchy_fingerprint
from deepsphere_pyg.scattering.resolution import effective_nside

NSIDE = 16

pytestmark = pytest.mark.usefixtures("one_openmp_thread")


@pytest.fixture(scope="module")
def hierarchy():
    """Full-sky NEST hierarchy, nside 16 -> 2."""
    return SphereHierarchy.healpix(NSIDE, 4)


@pytest.fixture(scope="module")
def harmonic(hierarchy):
    return SphericalScattering(hierarchy, J0=2, backend="harmonic")


@pytest.mark.parametrize("backend", ["harmonic", "graph"])
def test_shapes_and_channel_layout(hierarchy, backend):
    scattering = SphericalScattering(hierarchy, J0=2, depth=2, backend=backend)
    n = scattering.J - scattering.J0 + 1
    assert scattering.L == 3 * NSIDE and scattering.J == math.ceil(math.log2(3 * NSIDE))
    assert scattering.num_paths == 1 + n + n * (n - 1) // 2
    assert scattering.output_level == 2  # nside 4 = 2^J0
    torch.manual_seed(0)
    x = torch.randn(2, hp.nside2npix(NSIDE), 3)
    out = scattering(x)
    n_out, channels = scattering.out_shape(3)
    assert out.shape == (2, n_out, channels) == (2, hp.nside2npix(4), 3 * scattering.num_paths)
    assert out.dtype == x.dtype
    # Channel c * P + p is path p of input channel c; [N, C] input gives [N_out, C * P].
    P = scattering.num_paths
    for c in range(3):
        single = scattering(x[1, :, c : c + 1])
        assert single.shape == (n_out, P)
        torch.testing.assert_close(out[1, :, c * P : (c + 1) * P], single, rtol=1e-5,
                                   atol=1e-5)
    assert list(scattering.parameters()) == [] and scattering.state_dict() == {}


def test_meta(harmonic):
    meta = harmonic.meta(in_channels=2)
    P = harmonic.num_paths
    assert len(meta) == 2 * P
    assert [m["channel"] for m in meta] == list(range(2 * P))
    for m in meta:
        path = harmonic.paths[m["path"]]
        assert m["channel"] == m["in_channel"] * P + m["path"]
        assert m["order"] == path.order == len(m["scales"])
        j1, j2 = (list(path.scales) + [None, None])[:2]
        assert (m["j1"], m["j2"]) == (j1, j2)
        if m["j2"] is not None:
            assert m["j2"] < m["j1"]
    assert meta[0] == {"channel": 0, "in_channel": 0, "path": 0, "order": 0, "scales": (),
                       "j1": None, "j2": None}
    assert meta[1]["j1"] == harmonic.J0 and meta[P]["in_channel"] == 1
    orders = [m["order"] for m in meta[:P]]
    n = harmonic.J - harmonic.J0 + 1
    assert orders.count(1) == n and orders.count(2) == n * (n - 1) // 2


def test_meta_depth3_has_j3(hierarchy):
    scattering = SphericalScattering(hierarchy, J0=3, depth=3, backend="harmonic")
    meta = scattering.meta()
    assert all("j3" in m for m in meta)
    third = [m for m in meta if m["order"] == 3]
    assert third and all(m["j1"] > m["j2"] > m["j3"] for m in third)


def test_config(hierarchy, harmonic):
    config = harmonic.config()
    assert json.loads(json.dumps(config)) == config  # JSON-serialisable as it is
    for key in ("backend", "L", "J0", "J", "lam", "depth", "output_level", "hierarchy"):
        assert key in config
    assert config["hierarchy"]["num_nodes"] == hierarchy.num_nodes
    assert config["hierarchy"]["sampling"] == "healpix"
    assert len(config["hierarchy"]["level0_sha256"]) == 64
    again = SphericalScattering(hierarchy, J0=2, backend="harmonic")
    assert again.config() == config
    assert SphericalScattering(hierarchy, J0=3, backend="harmonic").config() != config
    assert SphericalScattering(hierarchy, J0=2, depth=1, backend="harmonic").config() != config
    other_weights = SphereHierarchy.healpix(NSIDE, 4, k=20)
    changed = SphericalScattering(other_weights, J0=2, backend="harmonic").config()
    assert changed["hierarchy"]["level0_sha256"] != config["hierarchy"]["level0_sha256"]
    edited = copy.deepcopy(hierarchy)
    edited.graphs[0].edge_weight = edited.graphs[0].edge_weight * 1.0001
    assert hierarchy_fingerprint(edited)["level0_sha256"] != \
        config["hierarchy"]["level0_sha256"]
    edited.pool_index[0] = edited.pool_index[0].flip(0)
    assert hierarchy_fingerprint(edited)["pool_index_sha256"] != \
        config["hierarchy"]["pool_index_sha256"]


def test_repr(harmonic):
    assert repr(harmonic) == (
        "SphericalScattering(backend='harmonic', J0=2, J=6, depth=2, L=48, lam=2.0, "
        "num_paths=16, output_level=2)"
    )


def test_default_band_limit(hierarchy):
    assert default_band_limit(hierarchy) == 48
    grid = equiangular_hierarchy(16, 2)
    assert default_band_limit(grid) == round(3 * effective_nside(grid[0]))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"J0": 6}, ValueError, "J0 must be smaller than J"),
        ({"J0": 4, "J": 4}, ValueError, "J0 must be smaller than J"),
        ({"J0": 2, "depth": 0}, ValueError, "depth"),
        ({"J0": 2, "depth": 4}, ValueError, "depth"),
        ({"J0": 2, "depth": 1.5}, TypeError, "depth"),
        ({"J0": 2, "backend": "fourier"}, ValueError, "backend must be one of"),
        ({"J0": 2, "backend": None}, TypeError, "backend"),
        ({"J0": 2, "lam": 1.0}, ValueError, "lam"),
        ({"J0": 2, "L": 49}, ValueError, "3 \\* nside"),
        ({"J0": 2, "backend_options": [1]}, TypeError, "backend_options"),
    ],
)
def test_bad_configuration(hierarchy, kwargs, error, match):
    kwargs.setdefault("backend", "harmonic")
    with pytest.raises(error, match=match):
        SphericalScattering(hierarchy, **kwargs)


def test_bad_hierarchy():
    with pytest.raises(TypeError, match="SphereHierarchy"):
        SphericalScattering("healpix", J0=2, backend="harmonic")


def test_bad_input(harmonic):
    n = hp.nside2npix(NSIDE)
    with pytest.raises(ValueError, match=f"has 100 nodes but level 0 of the hierarchy has {n}"):
        harmonic(torch.zeros(1, 100, 1))
    with pytest.raises(ValueError, match="\\[B, N, C\\] or \\[N, C\\]"):
        harmonic(torch.zeros(n))
    with pytest.raises(ValueError, match="\\[B, N, C\\] or \\[N, C\\]"):
        harmonic(torch.zeros(1, 1, n, 1))
    with pytest.raises(TypeError, match="floating"):
        harmonic(torch.zeros(1, n, 1, dtype=torch.long))
    with pytest.raises(TypeError, match="torch.Tensor"):
        harmonic(np.zeros((n, 1)))
    for bad in (float("nan"), float("inf")):
        x = torch.zeros(2, n, 1)
        x[1, 7, 0] = bad
        with pytest.raises(ValueError, match="1 NaN or infinite"):
            harmonic(x)


def test_transform(hierarchy, harmonic):
    transform = ScatteringTransform(harmonic)
    fingerprint = harmonic.hierarchy_hash
    assert len(fingerprint) == 12
    assert repr(transform) == (
        "ScatteringTransform(backend='harmonic', J0=2, J=6, depth=2, L=48, lam=2.0, "
        f"hierarchy={fingerprint}, input_iter=3, modulus_iter=0)"
    )
    other = SphericalScattering(SphereHierarchy.healpix(NSIDE, 4, k=20), J0=2,
                                backend="harmonic")
    assert repr(ScatteringTransform(other)) != repr(transform)  # hierarchy hash differs
    assert "J0=3" in repr(ScatteringTransform(SphericalScattering(hierarchy, J0=3,
                                                                  backend="harmonic")))
    torch.manual_seed(1)
    x = torch.randn(hp.nside2npix(NSIDE), 2, requires_grad=True)
    data = Data(x=x, y=torch.tensor([1]))
    out = transform(data)  # as a data set's pre_transform calls it
    assert out.x.shape == harmonic.out_shape(2) and not out.x.requires_grad
    torch.testing.assert_close(out.x, harmonic(x.detach()))
    assert data.x is x and torch.equal(out.y, data.y)  # the input Data is left unchanged
    single = transform(Data(x=x.detach()[:, 0]))
    torch.testing.assert_close(single.x, out.x[:, : harmonic.num_paths])
    with pytest.raises(TypeError, match="SphericalScattering"):
        ScatteringTransform(torch.nn.Identity())
    with pytest.raises(ValueError, match="data.x"):
        transform(Data(pos=torch.zeros(3, 3)))


class _RandomMaps(InMemoryDataset):
    """Two random maps at nside 16, processed once with ``pre_transform``."""

    def __init__(self, root, pre_transform):
        super().__init__(root, pre_transform=pre_transform)
        self.load(self.processed_paths[0])

    @property
    def raw_file_names(self):
        return []

    @property
    def processed_file_names(self):
        return ["maps.pt"]

    def download(self):
        pass

    def process(self):
        generator = torch.Generator().manual_seed(2)
        maps = [Data(x=torch.randn(hp.nside2npix(NSIDE), 1, generator=generator))
                for _ in range(2)]
        self.save([self.pre_transform(data) for data in maps], self.processed_paths[0])


def test_transform_as_pre_transform(tmp_path, hierarchy, harmonic):
    dataset = _RandomMaps(tmp_path, ScatteringTransform(harmonic))
    assert len(dataset) == 2 and dataset[0].x.shape == harmonic.out_shape(1)
    other = ScatteringTransform(SphericalScattering(hierarchy, J0=3, backend="harmonic"))
    with pytest.warns(UserWarning, match="pre_transform"):  # PyG sees the stale cache
        _RandomMaps(tmp_path, other)
