"""Shared fixtures of the model tests: small hierarchies of every sampling, builders of
more of them, and a short training loop for batch-norm statistics."""

import healpy as hp
import numpy as np
import pytest
import torch

from deepsphere_pyg.graphs import SphereHierarchy

#: HEALPix resolution of the hierarchies (768 pixels at level 0); every one has 3 levels.
NSIDE = 8
LEVELS = 3
SAMPLINGS = ("healpix", "healpix-partial", "equiangular", "points", "icosahedral")


def _masked_healpix(center, radius):
    """HEALPix hierarchy restricted to the NEST pixels of a disc (``radius`` in radians)."""
    mask = np.zeros(hp.nside2npix(NSIDE), dtype=bool)
    mask[hp.query_disc(NSIDE, center, radius, nest=True)] = True
    return SphereHierarchy.healpix(NSIDE, LEVELS, mask=mask)


def _points_hierarchy(count, seed):
    """Hierarchy of ``count`` points drawn uniformly on the sphere."""
    rng = np.random.default_rng(seed)
    lon = rng.uniform(0.0, 360.0, count)
    lat = np.degrees(np.arcsin(rng.uniform(-1.0, 1.0, count)))
    return SphereHierarchy.points(lon, lat, LEVELS)


def _build(sampling):
    if sampling == "healpix":
        return SphereHierarchy.healpix(NSIDE, LEVELS)
    if sampling == "healpix-partial":
        return _masked_healpix([1.0, 0.0, 0.2], 0.9)
    if sampling == "equiangular":
        return SphereHierarchy.equiangular(16, LEVELS, grid="soft", k=8)
    if sampling == "points":
        return _points_hierarchy(300, 0)
    return SphereHierarchy.icosahedral(3, LEVELS)


def _train_briefly(model, x):
    """A few training-mode passes so batch-norm running statistics are not trivial; returns
    the model in evaluation mode."""
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(x + torch.randn_like(x))
    return model.eval()


@pytest.fixture(scope="session")
def nside():
    """HEALPix resolution of the hierarchies of these fixtures."""
    return NSIDE


@pytest.fixture(scope="session")
def hierarchies():
    """One hierarchy per name of ``SAMPLINGS``, built once for all model tests."""
    return {name: _build(name) for name in SAMPLINGS}


@pytest.fixture(params=SAMPLINGS)
def sampling(request):
    """Runs a test once per sampling (a key of ``hierarchies``)."""
    return request.param


@pytest.fixture(scope="session")
def masked_healpix():
    """``masked_healpix(center, radius)``: a partial-sky HEALPix hierarchy (a disc)."""
    return _masked_healpix


@pytest.fixture(scope="session")
def points_hierarchy():
    """``points_hierarchy(count, seed)``: a hierarchy of random points."""
    return _points_hierarchy


@pytest.fixture(scope="session")
def train_briefly():
    """``train_briefly(model, x)``: a few training passes, then evaluation mode."""
    return _train_briefly
