"""HealpixSource: FITS / .npy / HealSparse maps as samples, nodes, graphs and outputs."""

import sys

import healpy as hp
import numpy as np
import pytest
from astropy.io import fits

from deepsphere_pyg.data.sources import healpix as healpix_module
from deepsphere_pyg.data.sources.healpix import HealpixSource

healsparse = pytest.importorskip("healsparse")

NSIDE = 16
NPIX = hp.nside2npix(NSIDE)
IQU = ["TEMPERATURE", "Q_POLARISATION", "U_POLARISATION"]


def smooth(nside=NSIDE, channels=3, seed=0):
    """[npix, channels] NEST maps, smooth (linear in the pixel position) so that the
    ordering check accepts them."""
    rng = np.random.default_rng(seed)
    pos = np.stack(hp.pix2vec(nside, np.arange(hp.nside2npix(nside)), nest=True), 1)
    return pos @ rng.standard_normal((3, channels)) + rng.standard_normal(channels)


def cap(nside=NSIDE, radius=0.6, lon=30.0, lat=20.0):
    """NEST pixel ids of a disc."""
    vec = hp.ang2vec(lon, lat, lonlat=True)
    return np.sort(hp.query_disc(nside, vec, radius, nest=True))


def write_hsp(path, pixels, values, nside=NSIDE, nside_coverage=4):
    """A HealSparse map: float32 plain map, or a record array for a dict of fields."""
    if isinstance(values, dict):
        dtype = [(name, "f4") for name in values]
        out = healsparse.HealSparseMap.make_empty(nside_coverage, nside, dtype,
                                                  primary=dtype[0][0])
        records = np.zeros(len(pixels), dtype=dtype)
        for name, column in values.items():
            records[name] = column
        out.update_values_pix(pixels, records)
    else:
        out = healsparse.HealSparseMap.make_empty(nside_coverage, nside, np.float32)
        out.update_values_pix(pixels, np.asarray(values, dtype=np.float32))
    out.write(str(path), clobber=True)
    return path


def test_fits_fields_by_name_and_index_ring_and_nest(tmp_path):
    maps = [smooth(seed=0), smooth(seed=1)]
    ring, nest = tmp_path / "a.fits", tmp_path / "b.fits"
    hp.write_map(ring, [hp.reorder(m, n2r=True) for m in maps[0].T], nest=False,
                 column_names=IQU, dtype=np.float64)
    hp.write_map(nest, list(maps[1].T), nest=True, column_names=IQU, dtype=np.float64)
    source = HealpixSource([ring, nest])
    assert source.kind == "fits" and source.nside == NSIDE and source.pixels is None
    assert source.variables == tuple(IQU) and source.num_nodes == NPIX
    assert source.names == ["a", "b"] and source.keys.tolist() == [0, 1]
    for index in (0, 1):
        values = source.read(index, ["U_POLARISATION", "0"])
        assert values.shape == (NPIX, 2) and values.dtype == np.float32
        np.testing.assert_allclose(values, maps[index][:, [2, 0]], rtol=1e-6)
    assert source.check_variables(["1", 2], "data.inputs") == IQU[1:]
    with pytest.raises(ValueError, match=r"data.inputs: 'DUST' is not in the files"):
        source.check_variables(["DUST"], "data.inputs")
    with pytest.raises(ValueError, match="contradicts"):
        HealpixSource([ring], ordering="nest")


def test_npy_maps_and_names(tmp_path):
    maps = np.stack([smooth(seed=s, channels=2) for s in range(3)])  # NEST
    path = tmp_path / "maps.npy"
    np.save(path, np.stack([hp.reorder(m.T, n2r=True).T for m in maps]).astype(np.float32))
    source = HealpixSource([path], ordering="ring")
    assert source.num_samples == 3 and source.variables == ("0", "1")
    assert source.names == ["maps_0", "maps_1", "maps_2"]
    np.testing.assert_allclose(source.read(2, ["1", "0"]), maps[2][:, [1, 0]], rtol=1e-6)
    with pytest.raises(ValueError, match="ordering='ring' or ordering='nest'"):
        HealpixSource([path])
    fits_path = tmp_path / "m.fits"
    hp.write_map(fits_path, maps[0][:, 0], nest=True)
    with pytest.raises(ValueError, match="not several kinds"):
        HealpixSource([path, fits_path], ordering="nest")


def test_unseen_first_sample_sets_nodes_and_later_gaps_read_nan(tmp_path):
    first, second = smooth(channels=1)[:, 0], smooth(channels=1, seed=1)[:, 0]
    observed = cap(radius=1.2)
    first_map = np.full(NPIX, hp.UNSEEN)
    first_map[observed] = first[observed]
    second[observed[:5]] = hp.UNSEEN
    second[observed[5]] = np.nan
    paths = [tmp_path / "x.fits", tmp_path / "y.fits"]
    hp.write_map(paths[0], hp.reorder(first_map, n2r=True), nest=False)
    hp.write_map(paths[1], second, nest=True)
    source = HealpixSource(paths)
    np.testing.assert_array_equal(source.pixels, observed)
    np.testing.assert_allclose(source.read(0, ["0"])[:, 0], first[observed], rtol=1e-6)
    values = source.read(1, ["0"])[:, 0]
    assert np.isnan(values[:6]).all()
    np.testing.assert_allclose(values[6:], second[observed[6:]], rtol=1e-6)


def test_node_order_is_nest_and_matches_the_graph(tmp_path):
    ids = np.arange(NPIX, dtype=np.float64)  # value = NEST pixel id
    path = tmp_path / "ids.fits"
    hp.write_map(path, hp.reorder(ids, n2r=True), nest=False, dtype=np.float64)
    mask = np.zeros(NPIX, dtype=bool)
    mask[cap(radius=1.0)] = True
    mask_path = tmp_path / "mask.npy"
    np.save(mask_path, hp.reorder(mask, n2r=True))
    source = HealpixSource([path], mask=mask_path, mask_ordering="ring",
                           check_ordering=False)
    graphs = source.hierarchy(2, k=8)
    pixels = graphs[0].pixels.numpy()
    np.testing.assert_array_equal(pixels, source.pixels)
    np.testing.assert_array_equal(source.read(0, ["0"])[:, 0], pixels)
    assert graphs[0].num_nodes == source.num_nodes and len(graphs) == 2
    full = HealpixSource([path], check_ordering=False)
    assert full.pixels is None and full.hierarchy(1, edges="neighbours")[0].pixels is None
    np.testing.assert_array_equal(full.read(0, ["0"])[:, 0], ids)


def test_masks_from_fits_and_healsparse_files(tmp_path):
    maps = smooth(channels=1)
    data = tmp_path / "d.fits"
    hp.write_map(data, maps[:, 0], nest=True)
    pixels = cap(radius=0.8)
    mask = np.zeros(NPIX)
    mask[pixels] = 1.0
    fits_mask = tmp_path / "mask.fits"
    hp.write_map(fits_mask, hp.reorder(mask, n2r=True), nest=False)
    source = HealpixSource([data], mask=fits_mask)
    np.testing.assert_array_equal(source.pixels, pixels)
    np.testing.assert_allclose(source.read(0, ["0"])[:, 0], maps[pixels, 0], rtol=1e-6)
    hsp_mask = healsparse.HealSparseMap.make_empty(4, NSIDE, bool)
    hsp_mask.update_values_pix(pixels, True)
    hsp_mask.write(str(tmp_path / "mask.hsp"), clobber=True)
    source = HealpixSource([data], mask=tmp_path / "mask.hsp")
    np.testing.assert_array_equal(source.pixels, pixels)
    with pytest.raises(ValueError, match="mask_ordering"):
        HealpixSource([data], mask=tmp_path / "mask.hsp", mask_ordering="ring")
    coarse = tmp_path / "coarse.fits"
    hp.write_map(coarse, np.ones(hp.nside2npix(8)), nest=True)
    with pytest.raises(ValueError, match=r"mask .*coarse\.fits"):
        HealpixSource([data], mask=coarse)


def test_healsparse_plain_partial_sky_and_lazy_reads(tmp_path, monkeypatch):
    pixels = cap(radius=1.0)
    values = smooth(channels=1)[pixels, 0]
    first = write_hsp(tmp_path / "s0.hsp", pixels, values)
    second = write_hsp(tmp_path / "s1.hsp", pixels[10:], values[10:] + 1)
    source = HealpixSource([first, second])
    assert source.kind == "healsparse" and source.variables == ("value",)
    np.testing.assert_array_equal(source.pixels, pixels)  # the first map's valid pixels
    np.testing.assert_allclose(source.read(0, ["value"])[:, 0], values, rtol=1e-6)
    later = source.read(1, ["0"])[:, 0]
    assert np.isnan(later[:10]).all()
    np.testing.assert_allclose(later[10:], values[10:] + 1, rtol=1e-6)
    # With a one-coverage-pixel mask, only that coverage pixel is read.
    corner = pixels[pixels // (NSIDE // 4) ** 2 == pixels[0] // (NSIDE // 4) ** 2]
    np.save(tmp_path / "ids.npy", corner)
    reads = []
    original = healsparse.HealSparseMap.read

    def spy(filename, *args, **kwargs):
        reads.append(kwargs.get("pixels"))
        return original(filename, *args, **kwargs)

    monkeypatch.setattr(healsparse.HealSparseMap, "read", spy)
    masked = HealpixSource([first, second], mask=tmp_path / "ids.npy",
                            mask_ordering="nest")
    reads.clear()
    np.testing.assert_allclose(masked.read(0, ["value"])[:, 0], values[:corner.size],
                               rtol=1e-6)
    assert reads == [[int(pixels[0] // (NSIDE // 4) ** 2)]]


def test_healsparse_record_array_fields(tmp_path):
    pixels = cap(radius=0.9)
    maps = smooth(channels=2)[pixels]
    path = write_hsp(tmp_path / "rec.hsp", pixels, {"g": maps[:, 0], "r": maps[:, 1]})
    source = HealpixSource([path])
    assert source.variables == ("g", "r")
    np.testing.assert_allclose(source.read(0, ["r", "0"]), maps[:, [1, 0]], rtol=1e-6)
    with pytest.raises(ValueError, match="'i' is not in the files"):
        source.read(0, ["i"])
    with pytest.raises(ValueError, match="ordering='ring'"):
        HealpixSource([path], ordering="ring")


def test_different_nside_is_refused_naming_both_files(tmp_path):
    hp.write_map(tmp_path / "a.fits", np.ones(NPIX), nest=True)
    hp.write_map(tmp_path / "b.fits", np.ones(hp.nside2npix(8)), nest=True)
    with pytest.raises(ValueError, match=r"b\.fits.*nside 8.*a\.fits.*nside 16.*ud_grade"):
        HealpixSource([tmp_path / "a.fits", tmp_path / "b.fits"])
    first = write_hsp(tmp_path / "a.hsp", cap(), np.ones(cap().size))
    second = write_hsp(tmp_path / "b.hsp", cap(nside=32), np.ones(cap(nside=32).size),
                       nside=32)
    with pytest.raises(ValueError, match=r"b\.hsp.*nside 32.*a\.hsp.*nside 16.*degrade"):
        HealpixSource([first, second])
    with pytest.raises(ValueError, match="not several kinds"):
        HealpixSource([first, tmp_path / "a.fits"])


def test_isolated_pixels_error_names_the_file(tmp_path):
    pixels = np.union1d(cap(radius=0.5), [hp.ang2pix(NSIDE, 200.0, -60.0, nest=True,
                                                     lonlat=True)])
    # A HealSparse map in a .fits file is recognised by its PIXTYPE.
    path = write_hsp(tmp_path / "footprint.fits", pixels, np.ones(pixels.size))
    source = HealpixSource([path])
    assert source.kind == "healsparse"
    with pytest.raises(ValueError, match=r"footprint\.fits.*without any neighbour"):
        source.hierarchy(1)
    np.save(tmp_path / "mask.npy", pixels)
    data = tmp_path / "data.fits"
    hp.write_map(data, smooth(channels=1)[:, 0], nest=True)
    with pytest.raises(ValueError, match=r"mask .*mask\.npy.*without any neighbour"):
        HealpixSource([data], mask=tmp_path / "mask.npy", mask_ordering="nest").hierarchy(1)


def test_ordering_check_and_missing_healsparse(tmp_path, monkeypatch):
    path = tmp_path / "m.npy"
    np.save(path, smooth(channels=1)[:, 0])  # NEST data
    with pytest.raises(ValueError, match="looks like a NEST-ordered map declared RING"):
        HealpixSource([path], ordering="ring")
    assert HealpixSource([path], ordering="ring", check_ordering=False).num_samples == 1
    hsp = write_hsp(tmp_path / "a.hsp", cap(), np.ones(cap().size))
    monkeypatch.setitem(sys.modules, "healsparse", None)
    with pytest.raises(ImportError, match=r'pip install "deepsphere-pyg\[files\]"'):
        HealpixSource([hsp])


def test_write_fits_round_trip_full_and_partial_sky(tmp_path, monkeypatch):
    path = tmp_path / "maps.npy"
    np.save(path, np.stack([smooth(channels=1)[:, 0]] * 2))
    source = HealpixSource([path], ordering="nest")
    values = np.random.default_rng(0).standard_normal((2, NPIX, 2)).astype(np.float32)
    out = tmp_path / "out"
    out.mkdir()
    written = source.write(values, [1, 0], ["t_prediction", "class"], out)
    assert [p.name for p in written] == ["maps_1_prediction.fits", "maps_0_prediction.fits"]
    back, header = hp.read_map(written[0], field=None, nest=True, h=True, dtype=None)
    header = dict(header)
    assert header["ORDERING"] == "NESTED" and header["TTYPE1"] == "t_prediction"
    assert header["TTYPE2"] == "class"
    np.testing.assert_array_equal(np.asarray(back).T, values[0])
    # A small footprint is written as a partial-sky (explicit) file.
    pixels = cap(radius=0.5)
    mask = np.zeros(NPIX, dtype=bool)
    mask[pixels] = True
    np.save(tmp_path / "mask.npy", mask)
    masked = HealpixSource([path], ordering="nest", mask=tmp_path / "mask.npy",
                           mask_ordering="nest")
    small = values[:1, : pixels.size]
    (target,) = masked.write(small, [0], ["a", "b"], out)
    assert fits.getheader(target, 1)["INDXSCHM"] == "EXPLICIT"
    back = np.asarray(hp.read_map(target, field=None, nest=True, dtype=None))
    np.testing.assert_array_equal(back[:, pixels].T, small[0])
    assert np.all(np.delete(back, pixels, axis=1) == hp.UNSEEN)
    again = HealpixSource([target], mask=tmp_path / "mask.npy", mask_ordering="nest")
    assert again.variables == ("a", "b")
    np.testing.assert_array_equal(again.read(0, ["a", "b"]), small[0])
    monkeypatch.setattr(healpix_module, "PARTIAL_FRACTION", 0.0)  # full-sky output
    (target,) = masked.write(small, [0], ["a", "b"], out)
    assert fits.getheader(target, 1)["INDXSCHM"] == "IMPLICIT"
    back = np.asarray(hp.read_map(target, field=None, nest=True, dtype=None))
    np.testing.assert_array_equal(back[:, pixels].T, small[0])
    assert np.all(np.delete(back, pixels, axis=1) == hp.UNSEEN)
    with pytest.raises(ValueError, match="samples, nodes, channels"):
        masked.write(small, [0], ["a"], out)


def test_write_healsparse_round_trip(tmp_path):
    pixels = cap(radius=0.9)
    path = write_hsp(tmp_path / "obs.hsp", pixels, np.ones(pixels.size))
    source = HealpixSource([path])
    values = np.random.default_rng(1).standard_normal((1, pixels.size, 2)).astype(np.float32)
    out = tmp_path / "out"
    out.mkdir()
    (two,) = source.write(values, [0], ["mean", "std"], out)
    assert two.name == "obs_prediction.hsp"
    back = healsparse.HealSparseMap.read(str(two))
    assert back.is_rec_array and back.dtype.names == ("mean", "std")
    np.testing.assert_array_equal(np.sort(back.valid_pixels), pixels)
    got = back.get_values_pix(pixels)
    np.testing.assert_array_equal(np.stack([got["mean"], got["std"]], 1), values[0])
    (one,) = source.write(values[:, :, :1], [0], ["mean"], out)
    back = healsparse.HealSparseMap.read(str(one))
    assert not back.is_rec_array and back.n_valid == pixels.size
    np.testing.assert_array_equal(back.get_values_pix(pixels), values[0, :, 0])
    assert HealpixSource([one]).read(0, ["value"]).shape == (pixels.size, 1)


def test_names_are_unique(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for folder in ("a", "b"):
        hp.write_map(tmp_path / folder / "map.fits.gz", smooth(channels=1)[:, 0], nest=True)
    source = HealpixSource([tmp_path / "a" / "map.fits.gz", tmp_path / "b" / "map.fits.gz"])
    assert source.names == ["map", "map_1"]


def test_npy_masks_need_their_ordering(tmp_path):
    # A galactic-style cut made in RING order at nside 16: too coarse for the structural
    # ordering check to tell it from a NEST footprint, so the ordering must be stated.
    theta, _ = hp.pix2ang(NSIDE, np.arange(NPIX))
    cut = np.abs(90 - np.degrees(theta)) > 20
    np.save(tmp_path / "cut.npy", cut)
    maps = tmp_path / "maps.npy"
    np.save(maps, smooth()[None, :, 0])
    with pytest.raises(ValueError, match="set data.mask_ordering to 'ring'"):
        HealpixSource([maps], ordering="nest", mask=tmp_path / "cut.npy")
    source = HealpixSource([maps], ordering="nest", mask=tmp_path / "cut.npy",
                           mask_ordering="ring")
    expected = np.flatnonzero(hp.reorder(cut, r2n=True))
    np.testing.assert_array_equal(source.pixels, expected)
