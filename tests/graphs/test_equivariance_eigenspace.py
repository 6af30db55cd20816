"""method="eigenspace": distance of an operator to a scalar on each degree's fields."""

import numpy as np
import pytest

from deepsphere_pyg.graphs import equivariance_error, tune_kernel_width
from deepsphere_pyg.graphs.equivariance import equivariance_samples
from deepsphere_pyg.graphs.knn_graph import knn_graph

NSIDE = 16


@pytest.fixture(scope="module")
def graph16(graph_nside16):
    return graph_nside16


def clustered_points(num, seed=0):
    """Unit vectors in two polar caps (|z| > 0.8): no harmonic fit resolves the band
    between them."""
    rng = np.random.default_rng(seed)
    pos = rng.standard_normal((12 * num, 3))
    pos /= np.linalg.norm(pos, axis=1, keepdims=True)
    return pos[np.abs(pos[:, 2]) > 0.8][:num]


def test_identity_and_a_harmonic_filter_are_scalars_on_each_degree(graph16,
                                                                   harmonic_smoothing):
    identity = equivariance_error(graph16, [2, 8, 16], method="eigenspace",
                                  operator=lambda x: x, num_signals=3)
    assert max(identity.values()) == 0.0
    smooth = equivariance_error(graph16, [2, 8, 16], method="eigenspace",
                                operator=harmonic_smoothing(NSIDE), num_signals=3)
    assert max(smooth.values()) < 1e-6


def test_a_non_equivariant_operator_is_detected(graph16):
    z = graph16.pos[:, 2].double().numpy()
    errors = equivariance_error(graph16, [2, 8], method="eigenspace", num_signals=3,
                                operator=lambda x: (1 + 0.5 * z) * x)
    assert min(errors.values()) > 0.05


def test_about_half_the_rotation_error_of_a_graph_laplacian(graph16):
    # Both sides of R L f - L R f carry an error of the same size, the eigenspace residual
    # one: on a HEALPix graph the rotation error is about twice the eigenspace error.
    ells = [4, 16, 28]
    rotation = equivariance_error(graph16, ells, num_signals=4, num_rotations=4)
    eigenspace = equivariance_error(graph16, ells, method="eigenspace", num_signals=8)
    for ell in ells:
        assert 0.3 < eigenspace[ell] / rotation[ell] < 0.7, (ell, eigenspace, rotation)


def test_measures_clustered_nodes_that_the_rotation_protocol_cannot():
    graph = knn_graph(clustered_points(1500), k=12)
    with pytest.raises(ValueError, match="cannot resolve"):
        equivariance_error(graph, [4], num_signals=1, num_rotations=1)
    errors = equivariance_error(graph, [4, 8], method="eigenspace", num_signals=2)
    assert all(0.0 < value < 1.5 for value in errors.values())


def test_samples_have_one_column_and_follow_the_seed(graph16):
    first = equivariance_samples(graph16, [3, 5], method="eigenspace", num_signals=4,
                                 num_rotations=7, seed=3)
    again = equivariance_samples(graph16, [3, 5], method="eigenspace", num_signals=4,
                                 seed=3)
    other = equivariance_samples(graph16, [3, 5], method="eigenspace", num_signals=4,
                                 seed=4)
    assert {ell: values.shape for ell, values in first.items()} == {3: (4, 1), 5: (4, 1)}
    assert all(np.array_equal(first[ell], again[ell]) for ell in first)
    assert not np.allclose(first[3], other[3])
    plain = equivariance_samples(graph16, [3], method="eigenspace", num_signals=4, seed=3,
                                 squared=False)
    np.testing.assert_allclose(plain[3] ** 2, first[3])


def test_width_tuning_with_the_eigenspace_method():
    points = clustered_points(1500, seed=1)
    ells = [4, 8]

    def build(t):
        return knn_graph(points, k=12, kernel=t)

    t, objective = tune_kernel_width(build, ells, method="eigenspace", num_signals=2,
                                     seed=1)

    def error(width):
        values = equivariance_error(build(width), ells, method="eigenspace", num_signals=2,
                                    seed=1)
        return float(np.mean(list(values.values())))

    assert objective == pytest.approx(error(t), rel=1e-9)
    assert objective <= min(error(t / 3), error(3 * t))


def test_degrees_above_the_band_limit_are_rejected(graph16):
    with pytest.raises(ValueError, match="ells"):
        equivariance_error(graph16, [3 * NSIDE], method="eigenspace")
    with pytest.raises(ValueError, match="ells"):
        equivariance_error(graph16, [9], method="eigenspace", lmax=8)
