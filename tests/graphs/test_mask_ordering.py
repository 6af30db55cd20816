"""Mask orderings: the usual sky masks in both orderings, wrong ones detected, ambiguous
ones (bounded by parallels, made in RING order) refused until the ordering is stated."""

import healpy as hp
import numpy as np
import pytest

from deepsphere_pyg.data import HealpixFileDataset
from deepsphere_pyg.graphs import healpix_graph
from deepsphere_pyg.graphs.checks import COMPACT_ROUGHNESS, ordering_roughness, pixels_from_mask

NSIDE = 64
NPIX = hp.nside2npix(NSIDE)


def _latitudes(frame_from_equatorial=None):
    """Latitude (degrees) of every RING pixel of an equatorial map, in another frame."""
    theta, phi = hp.pix2ang(NSIDE, np.arange(NPIX))
    if frame_from_equatorial is not None:
        theta, _ = hp.Rotator(coord=["C", frame_from_equatorial])(theta, phi)
    return 90.0 - np.degrees(theta)


def _ring_masks():
    """The usual masks, made in RING order, and whether they are bounded by parallels of
    their own map (then compact in both orderings)."""
    lat = _latitudes()
    lon = np.degrees(hp.pix2ang(NSIDE, np.arange(NPIX))[1])
    disk = np.zeros(NPIX, dtype=bool)
    disk[hp.query_disc(NSIDE, hp.ang2vec(1.0, 2.0), np.radians(20))] = True
    holes = np.abs(_latitudes("G")) > 20
    for pixel in np.random.default_rng(0).choice(NPIX, 40, replace=False):
        holes[hp.query_disc(NSIDE, hp.pix2vec(NSIDE, pixel), np.radians(3))] = False
    return {
        "galactic cut 20 deg, galactic map": (np.abs(lat) > 20, True),
        "galactic cut 30 deg, galactic map": (np.abs(lat) > 30, True),
        "polar cap": (lat > 60, True),
        "galactic cut 20 deg, equatorial map": (np.abs(_latitudes("G")) > 20, False),
        "ecliptic band, equatorial map": (np.abs(_latitudes("E")) < 10, False),
        "disk": (disk, False),
        "survey box": ((lon > 20) & (lon < 110) & (lat > -60) & (lat < -5), False),
        "random holes in a galactic cut": (holes, False),
    }


MASKS = _ring_masks()


@pytest.mark.parametrize("name", sorted(MASKS))
def test_the_usual_masks_in_both_orderings(name):
    ring, parallels = MASKS[name]
    nest = hp.reorder(ring, r2n=True)
    expected_nest = np.flatnonzero(nest)
    # A NEST mask given to a NEST graph is accepted; read as RING it is scattered.
    np.testing.assert_array_equal(pixels_from_mask(nest, NSIDE, True, True), expected_nest)
    # Given in the wrong ordering, it is refused (either reading as the other ordering,
    # or, bounded by parallels, compact in both).
    with pytest.raises(ValueError, match="RING-ordered map given to a NEST graph"
                       if not parallels else "compact in both HEALPix orderings"):
        pixels_from_mask(ring, NSIDE, True, True)
    with pytest.raises(ValueError, match="NEST-ordered map given to a RING graph"):
        pixels_from_mask(nest, NSIDE, False, True)
    if parallels:
        with pytest.raises(ValueError, match="mask_ordering='ring' or 'nest'"):
            pixels_from_mask(ring, NSIDE, False, True)
    else:
        np.testing.assert_array_equal(pixels_from_mask(ring, NSIDE, False, True),
                                      np.flatnonzero(ring))
    # Stated, the ordering is converted to the graph's and not checked.
    np.testing.assert_array_equal(pixels_from_mask(ring, NSIDE, True, True, "ring"),
                                  expected_nest)
    np.testing.assert_array_equal(pixels_from_mask(nest, NSIDE, False, True, "nest"),
                                  np.flatnonzero(ring))
    np.testing.assert_array_equal(
        pixels_from_mask(np.flatnonzero(ring), NSIDE, True, True, "ring"), expected_nest)


@pytest.mark.parametrize("name", sorted(MASKS))
def test_compactness_measured_on_the_usual_masks(name):
    """The numbers behind COMPACT_ROUGHNESS: compact in the own ordering; in the other one
    compact only for masks bounded by parallels made in RING order."""
    ring, parallels = MASKS[name]
    scattered = 2 * ring.mean() * (1 - ring.mean())
    own, other, _ = ordering_roughness(ring.astype(float), NSIDE, False)
    assert own / scattered < COMPACT_ROUGHNESS / 2
    assert (other / scattered < COMPACT_ROUGHNESS) == parallels


def test_a_galactic_cut_made_with_healpy_keeps_only_pixels_outside_the_cut(tmp_path):
    ring = np.abs(_latitudes()) > 20  # healpy's default ordering: RING
    with pytest.raises(ValueError, match="mask_ordering"):
        healpix_graph(NSIDE, mask=ring)
    graph = healpix_graph(NSIDE, mask=ring, mask_ordering="ring")
    theta, _ = hp.pix2ang(NSIDE, graph.pixels.numpy(), nest=True)
    assert np.all(np.abs(90 - np.degrees(theta)) > 20)
    assert graph.num_nodes == int(ring.sum())
    path = tmp_path / "maps.npy"
    np.save(path, np.random.default_rng(0).normal(size=(2, NPIX)).astype(np.float32))
    with pytest.raises(ValueError, match="mask_ordering"):
        HealpixFileDataset(path, ordering="ring", mask=ring, check_ordering=True)
    data = HealpixFileDataset(path, ordering="ring", mask=ring, mask_ordering="ring")
    np.testing.assert_array_equal(data.pixels, graph.pixels.numpy())
    with pytest.raises(ValueError, match="mask_ordering must be one of"):
        healpix_graph(NSIDE, mask=ring, mask_ordering="RING ")
