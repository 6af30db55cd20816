"""Shared fixtures: small graphs built once per test session, reference operators."""

import healpy as hp
import pytest

from deepsphere_pyg.graphs import healpix_graph


@pytest.fixture(scope="session")
def graph_nside8():
    """Full-sky NEST HEALPix graph, nside 8 (768 nodes), k=8, v2 weights."""
    return healpix_graph(8, k=8)


@pytest.fixture(scope="session")
def graph_nside8_k20():
    """Full-sky NEST HEALPix graph, nside 8, k=20, v2 weights."""
    return healpix_graph(8, k=20)


@pytest.fixture(scope="session")
def graph_nside16():
    """Full-sky NEST HEALPix graph, nside 16 (3072 nodes), k=8, v2 weights."""
    return healpix_graph(16, k=8)


def _harmonic_smoothing(nside, nest=True, fwhm=0.1):
    """An exactly equivariant operator on HEALPix maps: isotropic Gaussian smoothing
    through healpy's transforms (``nest``: the maps' order)."""
    lmax = 3 * nside - 1
    beam = hp.gauss_beam(fwhm, lmax=lmax)

    def apply(signal):
        ring = hp.reorder(signal, n2r=True) if nest else signal
        alm = hp.map2alm(ring, lmax=lmax, iter=3, use_pixel_weights=False)
        out = hp.alm2map(hp.almxfl(alm, beam), nside, lmax=lmax)
        return hp.reorder(out, r2n=True) if nest else out

    return apply


@pytest.fixture(scope="session")
def harmonic_smoothing():
    """``harmonic_smoothing(nside, nest=True, fwhm=0.1)``: the operator ``map -> map``."""
    return _harmonic_smoothing
