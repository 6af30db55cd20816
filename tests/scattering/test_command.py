"""``deepsphere-pyg scatter``: maps from .npy/FITS files to a coefficient store."""

import healpy as hp
import numpy as np
import pytest
import torch

from deepsphere_pyg.cli import main
from deepsphere_pyg.data import HealpixFileDataset
from deepsphere_pyg.graphs import SphereHierarchy
from deepsphere_pyg.scattering import CoefficientStore, SphericalScattering
from deepsphere_pyg.scattering.command import default_levels

NSIDE = 8


@pytest.fixture
def ring_maps(tmp_path):
    rng = np.random.default_rng(0)
    maps = rng.standard_normal((3, hp.nside2npix(NSIDE))).astype(np.float32)
    path = tmp_path / "maps.npy"
    np.save(path, maps)
    return path, maps


def test_npy_ring_maps_are_scattered_in_nest_order(tmp_path, ring_maps, capsys):
    path, maps = ring_maps
    store_path = tmp_path / "store"
    args = [str(path), "--output", str(store_path), "--ordering", "ring",
            "--backend", "harmonic", "--J0", "1"]
    assert main(["scatter", *args]) == 0
    assert "3/3 maps done" in capsys.readouterr().out
    store = CoefficientStore.open(store_path)
    hierarchy = SphereHierarchy.healpix(NSIDE, default_levels(NSIDE, 1), k=20)
    scattering = SphericalScattering(hierarchy, J0=1, backend="harmonic")
    assert store.config_hash and store.config == scattering.config()
    nest = torch.from_numpy(hp.reorder(maps[1].astype(np.float64), r2n=True)).float()
    torch.testing.assert_close(store[1], scattering(nest[None, :, None])[0])
    # A second run resumes (nothing left to do); another configuration is refused.
    assert main(["scatter", *args]) == 0
    assert main(["scatter", *args[:-1], "2"]) == 2
    assert "another transform configuration" in capsys.readouterr().err


def test_fits_files_are_read_in_their_own_ordering(tmp_path):
    rng = np.random.default_rng(1)
    ring = rng.standard_normal(hp.nside2npix(NSIDE))
    hp.write_map(tmp_path / "ring.fits", ring, nest=False)
    hp.write_map(tmp_path / "nest.fits", hp.reorder(ring, r2n=True), nest=True)
    maps = HealpixFileDataset([tmp_path / "ring.fits", tmp_path / "nest.fits"])
    assert len(maps) == 2 and maps.nside == NSIDE
    torch.testing.assert_close(maps[0].x, maps[1].x)
    torch.testing.assert_close(maps[0].x[:, 0].double(),
                               torch.from_numpy(hp.reorder(ring, r2n=True)), atol=1e-6,
                               rtol=1e-6)


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        ([], "pass ordering='ring' or ordering='nest'"),
        (["--ordering", "ring", "--J0", "9"], "J0"),
    ],
)
def test_bad_arguments_are_reported(tmp_path, ring_maps, capsys, extra, match):
    path, _ = ring_maps
    assert main(["scatter", str(path), "--output", str(tmp_path / "s"), *extra]) == 2
    assert match in capsys.readouterr().err


def test_missing_input_and_non_healpix_sizes(tmp_path, capsys):
    assert main(["scatter", str(tmp_path / "none.npy"), "--output", str(tmp_path / "s")]) == 2
    assert "none.npy" in capsys.readouterr().err
    np.save(tmp_path / "bad.npy", np.zeros((2, 100), dtype=np.float32))
    assert main(["scatter", str(tmp_path / "bad.npy"), "--ordering", "nest",
                 "--output", str(tmp_path / "s")]) == 2
    assert "12 nside^2" in capsys.readouterr().err
