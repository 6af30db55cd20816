"""Transforms of sphere maps: rotations, noise, masks, normalisation."""

import healpy as hp
import numpy as np
import pytest
import torch
from torch_geometric.loader import DataLoader
from torch_geometric.transforms import Compose

from deepsphere_pyg.data.cosmology import CosmologyMaps
from deepsphere_pyg.data.signal import SphereSignal
from deepsphere_pyg.data.spectra import gaussian_alm
from deepsphere_pyg.data.transforms import (
    GRID_ROTATIONS,
    AddNoise,
    ApplyMask,
    Normalize,
    RandomRotation,
    Standardize,
    rotate_healpix,
)
from deepsphere_pyg.data.transforms.random_rotation import grid_rotation_permutation
from deepsphere_pyg.graphs.equivariance import rotate_alm
from deepsphere_pyg.openmp import single_threaded_openmp

NSIDE = 16
NPIX = 12 * NSIDE**2


def _pixel_vectors(nside: int, nest: bool = True) -> np.ndarray:
    return np.stack(hp.pix2vec(nside, np.arange(12 * nside**2), nest=nest))  # [3, N]


def _polynomial_field(rng: np.random.Generator, degree: int, count: int = 5):
    """f(x) = sum_j c_j (n_j . x)^degree (band-limited to ``degree``) and its rotation."""
    normals = rng.standard_normal((count, 3))
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    weights = rng.standard_normal(count)

    def evaluate(vectors: np.ndarray, matrix: np.ndarray | None = None) -> np.ndarray:
        # (R f)(x) = f(M^{-1} x) = sum_j c_j ((M n_j) . x)^degree
        matrix = np.eye(3) if matrix is None else matrix
        return (weights[:, None] * ((normals @ matrix.T) @ vectors) ** degree).sum(axis=0)

    return evaluate


def _signal(values: np.ndarray, **kwargs) -> SphereSignal:
    x = torch.as_tensor(values, dtype=torch.float64)
    return SphereSignal(x=x[:, None] if x.dim() == 1 else x, **kwargs)


# ---------------------------------------------------------------- RandomRotation
@pytest.mark.parametrize("degree, tolerance", [(NSIDE, 2e-3), (2 * NSIDE, 1e-2)])
def test_rotation_matches_the_definition(degree, tolerance):
    rng = np.random.default_rng(degree)
    field = _polynomial_field(rng, degree)
    vectors = _pixel_vectors(NSIDE)
    transform = RandomRotation(NSIDE, seed=1)
    out = transform(_signal(field(vectors)))
    expected = field(vectors, transform.last_rotation)
    error = np.linalg.norm(out.x[:, 0].numpy() - expected) / np.linalg.norm(expected)
    assert error < tolerance
    matrix = transform.last_rotation
    np.testing.assert_allclose(matrix @ matrix.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(matrix) == pytest.approx(1.0)


def test_rotation_of_band_limited_random_maps_and_ring_order():
    rng = np.random.default_rng(0)
    lmax = 3 * NSIDE - 1
    cl = np.zeros(lmax + 1)
    cl[1:NSIDE + 1] = 1.0
    alm = gaussian_alm(cl, rng)
    matrix = np.linalg.qr(rng.standard_normal((3, 3)))[0]
    matrix *= np.linalg.det(matrix)
    with single_threaded_openmp():
        ring = hp.alm2map(alm, NSIDE, lmax=lmax, mmax=lmax)
        expected = hp.alm2map(rotate_alm(alm, matrix, lmax), NSIDE, lmax=lmax, mmax=lmax)
    out = rotate_healpix(ring, matrix, NSIDE, nest=False)
    assert np.linalg.norm(out - expected) / np.linalg.norm(expected) < 5e-3
    nest = rotate_healpix(np.stack([hp.reorder(ring, r2n=True)] * 2, axis=1), matrix, NSIDE)
    assert nest.shape == (NPIX, 2)
    np.testing.assert_allclose(nest[:, 1], hp.reorder(out, r2n=True), atol=1e-10)


@pytest.mark.parametrize("nest", [True, False])
def test_exact_rotations_permute_pixels(nest):
    rng = np.random.default_rng(3)
    field = _polynomial_field(rng, 40)  # far above the band limit: still exact
    vectors = _pixel_vectors(NSIDE, nest)
    values = field(vectors)
    y_node = torch.arange(NPIX)
    for index, matrix in enumerate(GRID_ROTATIONS):
        perm = grid_rotation_permutation(NSIDE, nest, index)
        assert np.array_equal(np.sort(perm), np.arange(NPIX))
        np.testing.assert_allclose(values[perm], field(vectors, matrix), rtol=1e-9,
                                   atol=1e-9 * np.abs(values).max())
    transform = RandomRotation(NSIDE, nest=nest, seed=0, exact=True)
    seen = set()
    for _ in range(6):
        out = transform(_signal(values, y_node=y_node, node_mask=y_node % 3 == 0))
        matrix = transform.last_rotation
        seen.add(int(np.argmin([np.abs(m - matrix).max() for m in GRID_ROTATIONS])))
        np.testing.assert_allclose(out.x[:, 0].numpy(), field(vectors, matrix), rtol=1e-9,
                                   atol=1e-9 * np.abs(values).max())
        assert torch.equal(torch.sort(out.y_node).values, y_node)
        assert torch.equal(out.node_mask, out.y_node % 3 == 0)
    assert len(seen) > 1
    for matrix in GRID_ROTATIONS:
        np.testing.assert_allclose(matrix @ matrix.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(matrix) == pytest.approx(1.0)


def test_exact_and_harmonic_rotations_agree_on_band_limited_maps():
    rng = np.random.default_rng(4)
    field = _polynomial_field(rng, NSIDE // 2)
    values = field(_pixel_vectors(NSIDE))
    exact = RandomRotation(NSIDE, seed=2, exact=True)
    permuted = exact(_signal(values)).x[:, 0].numpy()
    harmonic = rotate_healpix(values, exact.last_rotation, NSIDE)
    assert np.linalg.norm(permuted - harmonic) / np.linalg.norm(permuted) < 1e-3


def test_rotation_determinism():
    values = _polynomial_field(np.random.default_rng(5), 6)(_pixel_vectors(NSIDE))
    data = _signal(values)
    a, b = RandomRotation(NSIDE, seed=11), RandomRotation(NSIDE, seed=11)
    first = [a(data).x for _ in range(2)]
    second = [b(data).x for _ in range(2)]
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    assert not torch.equal(first[0], first[1])
    assert not torch.equal(RandomRotation(NSIDE, seed=12)(data).x, first[0])
    torch.manual_seed(0)
    unseeded = RandomRotation(NSIDE)(data).x
    torch.manual_seed(0)
    assert torch.equal(RandomRotation(NSIDE)(data).x, unseeded)
    assert data.x.dtype == torch.float64 and unseeded.dtype == torch.float64
    assert torch.equal(data.x[:, 0], torch.as_tensor(values))  # input left unchanged


def test_rotation_bad_input():
    rotation = RandomRotation(NSIDE, seed=0)
    with pytest.raises(ValueError, match=r"12 \* nside\^2 = 3072"):
        rotation(_signal(np.zeros(1000)))
    bad = np.ones(NPIX)
    bad[17] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        rotation(_signal(bad))
    with pytest.raises(ValueError, match="power of two"):
        RandomRotation(12)
    with pytest.raises(ValueError, match="y_node"):
        rotation(_signal(np.ones(NPIX), y_node=torch.zeros(NPIX)))
    # A convergence map in RING order given to a NEST transform (and the reverse).
    full_sky = CosmologyMaps(num_samples=1, nside=NSIDE, order=None, smoothing=None)
    nest_map = full_sky[0].x[:, 0].double().numpy()
    ring_map = hp.reorder(nest_map, n2r=True)
    with pytest.raises(ValueError, match="RING-ordered map given as NEST"):
        rotation(_signal(ring_map))
    with pytest.raises(ValueError, match="NEST-ordered map given as RING"):
        RandomRotation(NSIDE, nest=False)(_signal(nest_map))
    RandomRotation(NSIDE, nest=False, seed=0)(_signal(ring_map))  # right order: accepted
    RandomRotation(NSIDE, seed=0, check_ordering=False)(_signal(ring_map))
    noise = np.random.default_rng(0).standard_normal(NPIX)  # white noise: undetectable
    rotation(_signal(noise))
    RandomRotation(NSIDE, nest=False, seed=0)(_signal(noise))


# ---------------------------------------------------------------------- AddNoise
def test_add_noise_levels_and_determinism():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((NPIX, 2)) * np.array([1.0, 5.0]) + 3.0
    data = _signal(x)
    out = AddNoise(0.5, seed=1)(data).x.numpy() - x
    np.testing.assert_allclose(out.std(axis=0), [0.5, 0.5], rtol=0.05)
    relative = AddNoise(0.5, relative=True, seed=1)(data).x.numpy() - x
    np.testing.assert_allclose(relative.std(axis=0), 0.5 * x.std(axis=0), rtol=0.05)
    assert torch.equal(AddNoise(0.5, seed=3)(data).x, AddNoise(0.5, seed=3)(data).x)
    assert not torch.equal(AddNoise(0.5, seed=3)(data).x, AddNoise(0.5, seed=4)(data).x)
    noisy = AddNoise(0.1, seed=0)
    assert not torch.equal(noisy(data).x, noisy(data).x)  # a new draw per call
    assert torch.equal(AddNoise(0.0, seed=0)(data).x, data.x)
    as_float = AddNoise(0.5, seed=0)(SphereSignal(x=torch.zeros(10, 1)))
    assert as_float.x.dtype == torch.float32


def test_add_noise_respects_node_mask_and_rejects_bad_input():
    mask = torch.arange(NPIX) % 2 == 0
    x = np.ones(NPIX)
    x[1] = np.nan  # unobserved: allowed
    out = AddNoise(1.0, seed=0)(_signal(x, node_mask=mask)).x[:, 0]
    assert torch.isnan(out[1]) and torch.all(out[~mask][1:] == 1.0)
    assert float(out[mask].std()) == pytest.approx(1.0, rel=0.1)
    with pytest.raises(ValueError, match="NaN"):
        AddNoise(1.0)(_signal(x))
    with pytest.raises(ValueError, match="std"):
        AddNoise(-1.0)
    with pytest.raises(ValueError, match="seed"):
        AddNoise(1.0, seed=-3)
    with pytest.raises(ValueError, match="node_mask"):
        AddNoise(1.0)(_signal(np.ones(8), node_mask=torch.ones(5, dtype=torch.bool)))


# --------------------------------------------------------------------- ApplyMask
def test_apply_mask_fill_and_drop():
    x = np.arange(2.0 * NPIX).reshape(NPIX, 2)
    keep = np.zeros(NPIX, dtype=bool)
    keep[:100] = True
    x[150] = np.nan  # masked-out NaN is allowed
    y_node = torch.arange(NPIX)
    filled = ApplyMask(keep, fill=-1.0)(_signal(x, y_node=y_node))
    assert torch.equal(filled.node_mask, torch.from_numpy(keep))
    assert torch.all(filled.x[~torch.from_numpy(keep)] == -1.0)
    assert torch.equal(filled.x[:100], torch.as_tensor(x[:100]))
    previous = torch.arange(NPIX) % 2 == 0
    both = ApplyMask(keep)(_signal(x, node_mask=previous)).node_mask
    assert torch.equal(both, torch.from_numpy(keep) & previous)

    dropped = ApplyMask(keep, drop=True)(_signal(x, y_node=y_node))
    assert dropped.x.shape == (100, 2) and dropped.num_nodes == 100
    assert torch.equal(dropped.y_node, torch.arange(100))
    assert "node_mask" not in dropped


def test_apply_mask_bad_input_and_ordering():
    with pytest.raises(ValueError, match="keeps no node"):
        ApplyMask(np.zeros(10, dtype=bool))
    with pytest.raises(ValueError, match="0 and 1"):
        ApplyMask(np.array([0.0, 0.5, 1.0]))
    with pytest.raises(ValueError, match="has 768 nodes but the mask has 3072"):
        ApplyMask(np.ones(NPIX, dtype=bool))(_signal(np.zeros(768)))
    keep = np.ones(NPIX, dtype=bool)
    keep[:10] = False
    bad = np.zeros(NPIX)
    bad[20] = np.inf
    with pytest.raises(ValueError, match="NaN or infinite"):
        ApplyMask(keep)(_signal(bad))
    # A disc in RING order given as a NEST mask.
    disc = np.zeros(NPIX, dtype=bool)
    disc[hp.query_disc(NSIDE, hp.ang2vec(1.0, 0.5), 0.6, nest=False)] = True
    with pytest.raises(ValueError, match="RING-ordered map"):
        ApplyMask(disc, nest=True)
    ApplyMask(disc, nest=False)
    with pytest.raises(ValueError, match="12 nside"):
        ApplyMask(np.ones(100, dtype=bool), nest=True)


# ----------------------------------------------------------- Normalize, Standardize
def test_normalize_and_standardize():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((500, 2)) * np.array([2.0, 0.5]) + np.array([1.0, -3.0])
    out = Normalize([1.0, -3.0], [2.0, 0.5])(_signal(x)).x.numpy()
    np.testing.assert_allclose(out, (x - [1.0, -3.0]) / [2.0, 0.5])
    np.testing.assert_allclose(Normalize(1.0, 2.0)(_signal(x[:, 0])).x.numpy()[:, 0],
                               (x[:, 0] - 1) / 2)
    standard = Standardize()(_signal(x)).x.numpy()
    np.testing.assert_allclose(standard.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(standard.std(axis=0), 1, atol=1e-12)

    mask = torch.arange(500) < 300
    masked = Standardize()(_signal(x, node_mask=mask)).x.numpy()
    np.testing.assert_allclose(masked[:300].mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(masked[:300].std(axis=0), 1, atol=1e-12)
    np.testing.assert_array_equal(masked[300:], x[300:])
    kept = Normalize(1.0, 2.0)(_signal(x, node_mask=mask)).x.numpy()
    np.testing.assert_array_equal(kept[300:], x[300:])

    with pytest.raises(ValueError, match="std must be > 0"):
        Normalize(0.0, [1.0, 0.0])
    with pytest.raises(ValueError, match="3 values but data.x has 2 channels"):
        Normalize([0.0, 0.0, 0.0], 1.0)(_signal(x))
    with pytest.raises(ValueError, match="constant"):
        Standardize()(_signal(np.ones(10)))
    with pytest.raises(ValueError, match="NaN"):
        Standardize()(_signal(np.array([1.0, np.nan, 2.0])))
    with pytest.raises(TypeError, match="floating point"):
        Standardize()(SphereSignal(x=torch.ones(4, 1, dtype=torch.long)))


def test_reprs():
    keep = np.zeros(NPIX, dtype=bool)
    keep[:5] = True
    assert repr(RandomRotation(16, seed=3)) == (
        "RandomRotation(nside=16, nest=True, seed=3, exact=False)")
    assert repr(AddNoise(0.5, relative=True)) == "AddNoise(std=0.5, relative=True, seed=None)"
    assert repr(Normalize([1, 2], 3)) == "Normalize(mean=[1.0, 2.0], std=3.0)"
    assert repr(Standardize()) == "Standardize()"
    text = repr(ApplyMask(keep, drop=True))
    assert text.startswith("ApplyMask(mask=<5 of 3072 nodes, ") and "drop=True" in text
    other = keep.copy()
    other[:5], other[5:10] = False, True
    assert repr(ApplyMask(other, drop=True)) != text  # the mask's content is in the repr


def test_transforms_in_a_data_set_and_loader():
    transform = Compose([RandomRotation(NSIDE, seed=0, exact=True), AddNoise(0.1, seed=0),
                         Standardize()])
    data = CosmologyMaps(num_samples=4, nside=NSIDE, order=None, transform=transform)
    batch = next(iter(DataLoader(data, batch_size=4)))
    assert batch.x.shape == (4, NPIX, 1) and batch.x.dtype == torch.float32
    np.testing.assert_allclose(batch.x.double().std(dim=1, unbiased=False).numpy(), 1.0, atol=1e-5)
    assert not torch.equal(data[0].x, CosmologyMaps(num_samples=4, nside=NSIDE, order=None)[0].x)
