"""Spherical digits: splits, labels, projection geometry and exact rotations."""

import math

import healpy as hp
import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from torch_geometric.loader import DataLoader

from deepsphere_pyg.data.digits import SphericalDigits, digit_on_sphere, split_image_ids

NSIDE = 8


def rot_z(degrees):
    a = math.radians(degrees)
    return np.array([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0],
                     [0.0, 0.0, 1.0]])


def rot_x(degrees):
    a = math.radians(degrees)
    return np.array([[1.0, 0.0, 0.0], [0.0, math.cos(a), -math.sin(a)],
                     [0.0, math.sin(a), math.cos(a)]])


def nest_pos(nside):
    return np.stack(hp.pix2vec(nside, np.arange(hp.nside2npix(nside)), nest=True), axis=1)


def reference_projection(image, pos, extent_deg):
    """Independent reference: stereographic plane coordinates and a hand-written bilinear
    interpolation of the zero-padded image."""
    w = 2.0 * math.tan(math.radians(extent_deg) / 4.0)
    h = 2.0 * w / 8.0
    out = np.zeros(len(pos))
    padded = np.zeros((10, 10))
    padded[1:9, 1:9] = image
    for n, (x, y, z) in enumerate(pos):
        if z <= -1 + 1e-12:
            continue
        u, v = 2 * x / (1 + z), 2 * y / (1 + z)
        col, row = u / h + 3.5 + 1.0, 3.5 - v / h + 1.0  # +1: padding offset
        r0, c0 = math.floor(row), math.floor(col)
        if not (0 <= r0 < 9 and 0 <= c0 < 9):
            continue
        fr, fc = row - r0, col - c0
        out[n] = ((1 - fr) * (1 - fc) * padded[r0, c0] + (1 - fr) * fc * padded[r0, c0 + 1]
                  + fr * (1 - fc) * padded[r0 + 1, c0] + fr * fc * padded[r0 + 1, c0 + 1])
    return out


def test_splits_are_disjoint_stratified_and_cover_all_images():
    ids = split_image_ids()
    labels = load_digits().target
    sets = {name: set(v.tolist()) for name, v in ids.items()}
    assert not sets["train"] & sets["val"]
    assert not sets["train"] & sets["test"]
    assert not sets["val"] & sets["test"]
    assert set().union(*sets.values()) == set(range(1797))
    for name, fraction in (("train", 0.7), ("val", 0.1), ("test", 0.2)):
        counts = np.bincount(labels[ids[name]], minlength=10)
        totals = np.bincount(labels, minlength=10)
        assert np.all(np.abs(counts - fraction * totals) <= 1)
    # The splits do not depend on the data set's seed.
    a = SphericalDigits("test", seed=0, nside=NSIDE)
    b = SphericalDigits("test", seed=5, nside=NSIDE)
    np.testing.assert_array_equal(a.image_ids, b.image_ids)


def test_samples_shapes_labels_and_batching():
    ds = SphericalDigits("val", nside=NSIDE)
    assert len(ds) == split_image_ids()["val"].size
    digits = load_digits()
    for i in (0, 7, len(ds) - 1):
        sample = ds[i]
        assert sample.x.shape == (hp.nside2npix(NSIDE), 1)
        assert sample.x.dtype == torch.float32
        assert sample.y.dtype == torch.long
        assert int(sample.y) == digits.target[ds.image_ids[i]]
        assert 0.0 <= float(sample.x.min()) and float(sample.x.max()) <= 1.0
    batch = next(iter(DataLoader([ds[i] for i in range(4)], batch_size=4)))
    assert batch.x.shape == (4, hp.nside2npix(NSIDE), 1)
    assert batch.y.shape == (4,)
    hierarchy = ds.hierarchy(3, k=8)
    assert hierarchy.num_nodes == [768, 192, 48]


def test_projection_matches_independent_reference_and_lies_in_northern_cap():
    ds = SphericalDigits("train", nside=16)
    pos = nest_pos(16)
    for i in (0, 3):
        image = load_digits().images[ds.image_ids[i]] / 16.0
        expected = reference_projection(image, pos, 90.0)
        np.testing.assert_allclose(ds.render(i), expected, atol=1e-12)
        np.testing.assert_allclose(ds[i].x[:, 0].numpy(), expected, atol=1e-6)
        # Support: the square |u|, |v| < 4.5 h, whose corners are at 66.8 deg colatitude.
        w = 2.0 * math.tan(math.radians(90.0) / 4.0)
        corner = 2.0 * math.degrees(math.atan(4.5 * (w / 4.0) * math.sqrt(2.0) / 2.0))
        colat = np.degrees(np.arccos(pos[:, 2]))
        assert corner == pytest.approx(66.77, abs=0.01)
        assert np.all(colat[expected > 0] < corner)
        assert np.count_nonzero(expected) > 100


def test_extent_sets_the_angular_width():
    """Along the image's x axis (v = 0) an all-ones image is 1 up to the last pixel centre,
    |u| <= 3.5 h, and 0 from the padding's edge, |u| >= 4.5 h, with h = 2 tan(extent/4)/4."""
    image = np.ones((8, 8))
    for extent in (40.0, 90.0, 120.0):
        h = 2.0 * math.tan(math.radians(extent) / 4.0) / 4.0
        inner = 2.0 * math.degrees(math.atan(3.5 * h / 2.0))  # colatitude of u = 3.5 h
        outer = 2.0 * math.degrees(math.atan(4.5 * h / 2.0))
        colat = np.radians(np.array([0.0, 0.5 * inner, 0.99 * inner, 1.01 * outer, 170.0]))
        for lon in (0.0, 90.0, 180.0, 270.0):  # the four half-axes of the image
            phi = math.radians(lon)
            pos = np.stack([np.sin(colat) * math.cos(phi), np.sin(colat) * math.sin(phi),
                            np.cos(colat)], axis=1)
            values = digit_on_sphere(image, pos, extent=extent)
            np.testing.assert_allclose(values, [1, 1, 1, 0, 0], atol=1e-12)
    # Halfway between the last centre and the padding's edge: bilinear ramp to 0.5.
    h = 2.0 * math.tan(math.radians(90.0) / 4.0) / 4.0
    theta = 2.0 * math.atan(4.0 * h / 2.0)
    pos = np.array([[math.sin(theta), 0.0, math.cos(theta)]])
    assert digit_on_sphere(image, pos)[0] == pytest.approx(0.5)


@pytest.mark.parametrize("rotation", [rot_z(90.0), rot_x(180.0), rot_z(90.0) @ rot_x(180.0)])
def test_rotation_moves_the_pattern_exactly(rotation):
    """These rotations map HEALPix pixel centres onto pixel centres: the rotated map must be
    the unrotated one with its pixels permuted, value at x = unrotated value at R^T x."""
    ds = SphericalDigits("train", nside=NSIDE)
    pos = nest_pos(NSIDE)
    source = hp.vec2pix(NSIDE, *(pos @ rotation).T, nest=True)  # pixel of R^T x
    np.testing.assert_allclose(pos[source], pos @ rotation, atol=1e-12)
    plain = ds.render(2)
    rotated = ds.render(2, rotation)
    np.testing.assert_allclose(rotated, plain[source], atol=1e-12)
    if rotation[2, 2] < 0:  # flipped: the digit now lies in the southern cap
        assert np.all(pos[rotated > 0, 2] < 0)


def test_random_rotations_are_exact_and_deterministic():
    ds = SphericalDigits("train", nside=NSIDE, rotate=True, seed=3)
    pos = nest_pos(NSIDE)
    for i in (0, 1):
        rotation = ds.rotation(i)
        np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-12)
        image = load_digits().images[ds.image_ids[i]] / 16.0
        expected = reference_projection(image, pos @ rotation, 90.0)
        np.testing.assert_allclose(ds[i].x[:, 0].numpy(), expected, atol=1e-6)
    again = SphericalDigits("train", nside=NSIDE, rotate=True, seed=3)
    other = SphericalDigits("train", nside=NSIDE, rotate=True, seed=4)
    assert torch.equal(ds[5].x, again[5].x)
    assert not torch.equal(ds[5].x, other[5].x)
    # Haar rotations spread the digits over the sphere: centroids in both hemispheres.
    z = [float((ds[i].x[:, 0].numpy() @ pos[:, 2]) / ds[i].x.sum()) for i in range(40)]
    assert min(z) < -0.3 and max(z) > 0.3


def test_z_rotations_keep_the_polar_axis():
    ds = SphericalDigits("train", nside=NSIDE, rotate="z")
    plain = SphericalDigits("train", nside=NSIDE)
    pos = nest_pos(NSIDE)
    for i in range(5):
        rotation = ds.rotation(i)
        np.testing.assert_allclose(rotation[:, 2], [0, 0, 1], atol=1e-12)
        x = ds[i].x[:, 0].numpy()
        assert np.all(pos[x > 0, 2] > 0)
        # A rotation about z keeps the values on each ring up to resampling: same mass.
        assert x.sum() == pytest.approx(float(plain[i].x.sum()), rel=0.1)


def test_repeated_images_get_new_rotations():
    ds = SphericalDigits("val", num_samples=400, nside=NSIDE, rotate=True)
    n = ds.image_ids.size
    assert ds.image_index(n + 3) == 3
    assert int(ds[n + 3].y) == int(ds[3].y)
    assert not torch.equal(ds[n + 3].x, ds[3].x)
    unrotated = SphericalDigits("val", num_samples=400, nside=NSIDE)
    assert torch.equal(unrotated[n + 3].x, unrotated[3].x)


def test_bad_input():
    with pytest.raises(ValueError, match="rotate"):
        SphericalDigits(rotate="x")
    with pytest.raises(ValueError, match="rotate"):
        SphericalDigits(rotate=1)
    with pytest.raises(ValueError, match="power of two"):
        SphericalDigits(nside=12)
    with pytest.raises(ValueError, match="extent"):
        SphericalDigits(extent=0.0)
    with pytest.raises(ValueError, match="split"):
        SphericalDigits("validation")
    with pytest.raises(ValueError, match="rotation matrix"):
        digit_on_sphere(np.ones((8, 8)), nest_pos(2), rotation=2 * np.eye(3))
    with pytest.raises(ValueError, match="image"):
        digit_on_sphere(np.ones(64), nest_pos(2))
