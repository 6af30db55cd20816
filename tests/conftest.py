"""Shared fixtures: small graphs built once per test session."""

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
