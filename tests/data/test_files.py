"""HEALPix maps from FITS files and .npy arrays: NEST conversion, masks, targets, errors."""

import healpy as hp
import numpy as np
import pytest
import torch
from astropy.io import fits
from torch_geometric.loader import DataLoader

from deepsphere_pyg.data.files import HealpixFileDataset, check_map_ordering

NSIDE = 8
NPIX = hp.nside2npix(NSIDE)


def smooth_maps(num, nside=NSIDE, seed=0):
    """[num, npix] smooth NEST maps: low-degree random fields (spatially coherent)."""
    rng = np.random.default_rng(seed)
    lmax = 2 * nside
    maps = []
    for _ in range(num):
        alm = (rng.standard_normal(hp.Alm.getsize(lmax))
               + 1j * rng.standard_normal(hp.Alm.getsize(lmax)))
        ell, m = hp.Alm.getlm(lmax)
        alm *= np.exp(-((ell / (nside / 2)) ** 2)) * (ell > 0)
        alm[m == 0] = alm[m == 0].real
        maps.append(hp.reorder(hp.alm2map(alm, nside, lmax=lmax), r2n=True))
    return np.stack(maps)


@pytest.fixture(scope="module")
def maps():
    return smooth_maps(3)


@pytest.fixture
def fits_pair(tmp_path, maps):
    """Map 0 written RING, map 1 written NEST."""
    ring_path, nest_path = tmp_path / "ring.fits", tmp_path / "nest.fits"
    hp.write_map(ring_path, hp.reorder(maps[0], n2r=True), nest=False, dtype=np.float64)
    hp.write_map(nest_path, maps[1], nest=True, dtype=np.float64)
    return ring_path, nest_path


def test_fits_round_trip_ring_and_nest_read_back_nest(fits_pair, maps):
    ds = HealpixFileDataset(list(fits_pair))
    assert len(ds) == 2 and ds.nside == NSIDE
    np.testing.assert_array_equal(ds[0].x[:, 0].numpy(), maps[0].astype(np.float32))
    np.testing.assert_array_equal(ds[1].x[:, 0].numpy(), maps[1].astype(np.float32))
    assert ds[0].x.shape == (NPIX, 1) and ds[0].x.dtype == torch.float32
    # An explicit ordering that agrees with the header is accepted.
    assert HealpixFileDataset(fits_pair[0], ordering="ring")[0].x.shape == (NPIX, 1)


def test_fits_several_fields_are_channels(tmp_path, maps):
    path = tmp_path / "iqu.fits"
    hp.write_map(path, [maps[0], maps[1], maps[2]], nest=True, dtype=np.float64)
    ds = HealpixFileDataset(path, field=(0, 2))
    np.testing.assert_array_equal(ds[0].x.numpy(), np.stack([maps[0], maps[2]], 1)
                                  .astype(np.float32))


def test_npy_is_memory_mapped_and_converted_from_ring(tmp_path, maps):
    path = tmp_path / "maps.npy"
    ring = np.stack([hp.reorder(m, n2r=True) for m in maps]).astype(np.float32)
    np.save(path, ring)
    ds = HealpixFileDataset(path, ordering="ring")
    assert isinstance(ds.array, np.memmap)
    for i in range(3):
        np.testing.assert_array_equal(ds[i].x[:, 0].numpy(), maps[i].astype(np.float32))
    nest_path = tmp_path / "nest.npy"
    channels = np.stack([maps, 2 * maps], axis=-1).astype(np.float32)  # [M, npix, 2]
    np.save(nest_path, channels)
    ds = HealpixFileDataset(nest_path, ordering="nest")
    np.testing.assert_array_equal(ds[2].x.numpy(), channels[2])
    assert ds[-1].x.shape == (NPIX, 2)


def test_targets_graph_level_and_per_pixel(tmp_path, maps):
    path = tmp_path / "maps.npy"
    ring = np.stack([hp.reorder(m, n2r=True) for m in maps])
    np.save(path, ring)
    labels = HealpixFileDataset(path, ordering="ring", targets=[2, 0, 1], num_classes=3)
    assert labels[0].y.dtype == torch.long and int(labels[0].y) == 2
    batch = next(iter(DataLoader([labels[i] for i in range(3)], batch_size=3)))
    assert batch.y.tolist() == [2, 0, 1] and batch.x.shape == (3, NPIX, 1)
    regression = HealpixFileDataset(path, ordering="ring", targets=np.ones((3, 4)))
    batch = next(iter(DataLoader([regression[i] for i in range(3)], batch_size=3)))
    assert batch.y.shape == (3, 4) and batch.y.dtype == torch.float32
    # Per-pixel labels, given in the maps' (RING) ordering, come out NEST like the maps.
    nest_labels = (maps > 0).astype(np.int64)
    ring_labels = np.stack([hp.reorder(m, n2r=True) for m in nest_labels])
    dense = HealpixFileDataset(path, ordering="ring", targets=ring_labels, num_classes=2)
    np.testing.assert_array_equal(dense[1].y_node.numpy(), nest_labels[1])
    batch = next(iter(DataLoader([dense[i] for i in range(3)], batch_size=3)))
    assert batch.y_node.shape == (3, NPIX)
    target_path = tmp_path / "targets.npy"
    np.save(target_path, ring_labels)
    from_file = HealpixFileDataset(path, ordering="ring", targets=target_path)
    np.testing.assert_array_equal(from_file[2].y_node.numpy(), nest_labels[2])


def test_mask_selects_observed_pixels_and_allows_unseen(tmp_path, maps):
    theta, _ = hp.pix2ang(NSIDE, np.arange(NPIX), nest=True)
    mask = theta < np.radians(70)  # NEST, a northern cap
    values = maps[0].copy()
    values[~mask] = hp.UNSEEN
    values[np.flatnonzero(~mask)[:3]] = np.nan
    path = tmp_path / "masked.npy"
    np.save(path, values[None].astype(np.float32))
    ds = HealpixFileDataset(path, ordering="nest", mask=mask)
    np.testing.assert_array_equal(ds.pixels, np.flatnonzero(mask))
    np.testing.assert_array_equal(ds[0].x[:, 0].numpy(), maps[0][mask].astype(np.float32))
    hierarchy = ds.hierarchy(2, k=8)
    assert hierarchy.num_nodes[0] == mask.sum() == ds.num_nodes
    np.testing.assert_array_equal(hierarchy[0].pixels.numpy(), np.flatnonzero(mask))
    # The same mask from a FITS file (written RING, read back NEST).
    mask_path = tmp_path / "mask.fits"
    hp.write_map(mask_path, hp.reorder(mask.astype(np.float64), n2r=True), nest=False)
    from_file = HealpixFileDataset(path, ordering="nest", mask=mask_path)
    np.testing.assert_array_equal(from_file.pixels, np.flatnonzero(mask))
    # RING data with the (NEST) mask.
    ring_path = tmp_path / "ring.npy"
    np.save(ring_path, hp.reorder(values, n2r=True)[None])
    ring = HealpixFileDataset(ring_path, ordering="ring", mask=mask)
    np.testing.assert_array_equal(ring[0].x[:, 0].numpy(), maps[0][mask].astype(np.float32))


def test_partial_sky_fits(tmp_path, maps):
    mask = np.zeros(NPIX, dtype=bool)
    mask[: NPIX // 2] = True  # NEST: six base pixels
    values = np.where(mask, maps[0], hp.UNSEEN)
    path = tmp_path / "partial.fits"
    hp.write_map(path, values, nest=True, partial=True, dtype=np.float64)
    assert fits.getheader(path, 1)["INDXSCHM"] == "EXPLICIT"
    ds = HealpixFileDataset(path, mask=mask)
    np.testing.assert_array_equal(ds[0].x[:, 0].numpy(), maps[0][mask].astype(np.float32))
    with pytest.raises(ValueError, match="UNSEEN"):
        HealpixFileDataset(path)[0]


def test_bad_values_name_the_file_and_count(tmp_path, maps):
    values = maps[:2].astype(np.float32).copy()
    values[1, [3, 9]] = np.nan
    values[1, 20] = hp.UNSEEN
    path = tmp_path / "bad.npy"
    np.save(path, values)
    ds = HealpixFileDataset(path, ordering="nest")
    ds[0]
    with pytest.raises(ValueError, match=r"bad\.npy \(map 1\): 3 observed pixel\(s\).*NaN/inf "
                                         r"\(2\).*UNSEEN \(1\).*NEST pixel 3"):
        ds[1]
    with pytest.raises(ValueError, match="map 1"):
        ds.validate()
    fits_path = tmp_path / "nan.fits"
    hp.write_map(fits_path, values[1], nest=True, dtype=np.float32)
    with pytest.raises(ValueError, match="nan.fits"):
        HealpixFileDataset(fits_path, check_ordering=False)[0]


def test_wrong_lengths(tmp_path, maps):
    path = tmp_path / "short.npy"
    np.save(path, np.zeros((2, 100)))
    with pytest.raises(ValueError, match=r"short\.npy: maps of 100 pixels.*192 \(nside 4\)"):
        HealpixFileDataset(path, ordering="ring")
    column = fits.Column(name="T", format="E", array=np.zeros(100, np.float32))
    table = fits.BinTableHDU.from_columns([column])
    table.header["ORDERING"] = "RING"
    bad_fits = tmp_path / "short.fits"
    table.writeto(bad_fits)
    with pytest.raises(ValueError, match=r"short\.fits: maps of 100 pixels"):
        HealpixFileDataset(bad_fits)
    other = tmp_path / "other.fits"
    hp.write_map(other, smooth_maps(1, nside=4)[0], nest=True)
    good = tmp_path / "good.fits"
    hp.write_map(good, maps[0], nest=True)
    with pytest.raises(ValueError, match=r"other\.fits holds a map of 192 pixels \(nside 4\)"):
        HealpixFileDataset([good, other])


def test_label_errors(tmp_path, maps):
    path = tmp_path / "maps.npy"
    np.save(path, maps)
    with pytest.raises(ValueError, match=r"outside \[0, 2\]"):
        HealpixFileDataset(path, ordering="nest", targets=[0, 3, 1], num_classes=3)
    with pytest.raises(ValueError, match=r"outside \[0, 1\]"):
        HealpixFileDataset(path, ordering="nest", targets=np.full((3, NPIX), -1),
                           num_classes=2)[0]
    with pytest.raises(TypeError, match="integer class labels"):
        HealpixFileDataset(path, ordering="nest", targets=[0.5, 1.0, 0.0], num_classes=3)
    with pytest.raises(ValueError, match="one entry per map"):
        HealpixFileDataset(path, ordering="nest", targets=[0, 1])


def test_ordering_errors(tmp_path, fits_pair, maps):
    ring_fits, nest_fits = fits_pair
    with pytest.raises(ValueError, match=r"ordering='nest' contradicts .*ORDERING = RING"):
        HealpixFileDataset(ring_fits, ordering="nest")
    with pytest.raises(ValueError, match=r"ordering='ring' contradicts .*ORDERING = NESTED"):
        HealpixFileDataset(nest_fits, ordering="ring")
    path = tmp_path / "maps.npy"
    np.save(path, maps)
    with pytest.raises(ValueError, match="pass ordering='ring' or ordering='nest'"):
        HealpixFileDataset(path)
    with pytest.raises(ValueError, match="ordering must be"):
        HealpixFileDataset(path, ordering="galactic")
    # NEST data declared RING: caught by the map's structure.
    with pytest.raises(ValueError, match="looks like a NEST-ordered map declared RING"):
        HealpixFileDataset(path, ordering="ring")
    assert len(HealpixFileDataset(path, ordering="ring", check_ordering=False)) == 3
    # A FITS file without an ORDERING keyword needs the argument.
    with fits.open(nest_fits) as hdus:
        del hdus[1].header["ORDERING"]
        hdus.writeto(tmp_path / "bare.fits")
    with pytest.raises(ValueError, match="no ORDERING keyword"):
        HealpixFileDataset(tmp_path / "bare.fits")
    ds = HealpixFileDataset(tmp_path / "bare.fits", ordering="nest")
    np.testing.assert_array_equal(ds[0].x[:, 0].numpy(), maps[1].astype(np.float32))
    # Per-pixel targets need to know their ordering.
    with pytest.raises(ValueError, match="per-pixel targets"):
        HealpixFileDataset(nest_fits, targets=np.zeros((1, NPIX), dtype=np.int64))


def test_ordering_check_ignores_structureless_maps():
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(hp.nside2npix(16))
    check_map_ordering(noise, nest=True)
    check_map_ordering(noise, nest=False)
    smooth = smooth_maps(1, nside=16)[0]
    check_map_ordering(smooth, nest=True)
    with pytest.raises(ValueError, match="declared RING"):
        check_map_ordering(smooth, nest=False, name="smooth")


def test_missing_and_mixed_files(tmp_path, fits_pair, maps):
    with pytest.raises(FileNotFoundError, match="missing.fits"):
        HealpixFileDataset([fits_pair[0], tmp_path / "missing.fits"])
    with pytest.raises(FileNotFoundError, match="nothing.npy"):
        HealpixFileDataset(tmp_path / "nothing.npy", ordering="ring")
    path = tmp_path / "maps.npy"
    np.save(path, maps)
    with pytest.raises(ValueError, match="one .npy file"):
        HealpixFileDataset([fits_pair[0], path])
    with pytest.raises(ValueError, match="at least one file"):
        HealpixFileDataset([])
    with pytest.raises(FileNotFoundError, match="mask file"):
        HealpixFileDataset(path, ordering="nest", mask=tmp_path / "nomask.fits")
