"""One name for the edge recipe of every sampling (``edges``), and the old spellings."""

import numpy as np
import pytest
import torch

from deepsphere_pyg.graphs import (
    SphereHierarchy,
    equiangular_graph,
    equiangular_hierarchy,
    healpix_graph,
    icosahedral_graph,
    icosahedral_hierarchy,
    points_graph,
)


def same_graph(a, b):
    return (torch.equal(a.edge_index, b.edge_index) and torch.equal(a.edge_weight, b.edge_weight)
            and a.num_nodes == b.num_nodes)


@pytest.mark.parametrize("build, old, new", [
    (lambda **kw: healpix_graph(4, **kw), {"kernel": "v1"}, {"edges": "neighbours"}),
    (lambda **kw: equiangular_graph(8, **kw), {"weights": "neighbours"}, {"edges": "neighbours"}),
    (lambda **kw: equiangular_graph(8, **kw), {"weights": "knn"}, {"edges": "knn"}),
    (lambda **kw: icosahedral_graph(2, **kw), {"neighbours": "mesh"}, {"edges": "neighbours"}),
    (lambda **kw: icosahedral_graph(2, **kw), {"neighbours": "knn"}, {"edges": "knn"}),
])
def test_old_spellings_warn_and_build_the_same_graph(build, old, new):
    with pytest.warns(DeprecationWarning, match="deprecated"):
        legacy = build(**old)
    current = build(**new)
    assert same_graph(legacy, current)
    assert legacy.edges == current.edges == new["edges"]


def test_hierarchies_take_edges_and_the_old_names():
    with pytest.warns(DeprecationWarning, match="neighbours='mesh' is deprecated"):
        legacy = icosahedral_hierarchy(2, 2, neighbours="mesh")
    current = icosahedral_hierarchy(2, 2, edges="neighbours")
    assert all(same_graph(a, b) for a, b in zip(legacy.graphs, current.graphs, strict=True))
    with pytest.warns(DeprecationWarning, match="weights='neighbours' is deprecated"):
        legacy = equiangular_hierarchy(8, 2, weights="neighbours")
    current = SphereHierarchy.equiangular(8, 2, edges="neighbours")
    assert all(same_graph(a, b) for a, b in zip(legacy.graphs, current.graphs, strict=True))
    v1 = SphereHierarchy.healpix(4, 2, edges="neighbours")
    assert [g.kernel for g in v1.graphs] == ["v1", "v1"]
    assert [g.edges for g in v1.graphs] == ["neighbours", "neighbours"]


def test_every_sampling_accepts_knn_and_rejects_unknown_recipes():
    rng = np.random.default_rng(0)
    lon, lat = rng.uniform(0, 360, 40), rng.uniform(-60, 60, 40)
    for graph in (healpix_graph(4, edges="knn"), equiangular_graph(8, edges="knn"),
                  icosahedral_graph(2, edges="knn"), points_graph(lon, lat, edges="knn")):
        assert graph.edges == "knn"
    with pytest.raises(ValueError, match="edges must be one of"):
        healpix_graph(4, edges="mesh")
    with pytest.raises(ValueError, match=r"edges must be one of \('knn',\)"):
        points_graph(lon, lat, edges="neighbours")
    with pytest.raises(ValueError, match="give the edge recipe once"):
        equiangular_graph(8, edges="knn", weights="knn")
    with pytest.raises(ValueError, match=r"edges='knn': kernel must be one of \('auto', 'v2'\)"):
        healpix_graph(4, edges="knn", kernel="v1")
