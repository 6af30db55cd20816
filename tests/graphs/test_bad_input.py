"""Bad input to the graph builders gets a clear error naming the argument."""

import numpy as np
import pytest
import torch

from deepsphere_pyg.graphs import SphereHierarchy, healpix_graph
from deepsphere_pyg.graphs.checks import check_unit_vectors


@pytest.mark.parametrize("nside", [0, -4, 3, 12, 1000])
def test_nside_must_be_a_power_of_two(nside):
    with pytest.raises(ValueError, match="nside must be a power of two"):
        healpix_graph(nside)


@pytest.mark.parametrize("nside", [2.0, "8", True, None])
def test_nside_must_be_an_integer(nside):
    with pytest.raises(TypeError, match="nside must be an integer"):
        healpix_graph(nside)


@pytest.mark.parametrize("k", [0, -1, 2.5, True])
def test_k_must_be_a_positive_integer(k):
    with pytest.raises(ValueError, match="k must be an integer >= 1"):
        healpix_graph(4, k=k)


def test_k_must_be_below_the_number_of_nodes():
    with pytest.raises(ValueError, match=r"k=12 neighbours need more than 12 nodes.*has 12"):
        healpix_graph(1, k=12)
    assert healpix_graph(1, k=11).num_nodes == 12


@pytest.mark.parametrize(
    ("kernel", "error", "message"),
    [
        ("v3", ValueError, r"kernel must be one of \('auto', 'v2'\) or a positive float"),
        (-0.1, ValueError, "kernel width t must be positive"),
        (float("nan"), ValueError, "kernel width t must be positive"),
        (True, TypeError, "kernel must be"),
        ([0.1], TypeError, "kernel must be"),
    ],
)
def test_kernel_must_be_a_recipe_or_a_positive_width(kernel, error, message):
    with pytest.raises(error, match=message):
        healpix_graph(4, kernel=kernel)


def test_v1_kernel_needs_k_8():
    with pytest.raises(ValueError, match="edges='neighbours' uses the 8 HEALPix neighbours"):
        healpix_graph(4, k=20, edges="neighbours")


def test_other_flags_are_checked():
    with pytest.raises(TypeError, match="nest must be True"):
        healpix_graph(4, nest="yes")
    with pytest.raises(ValueError, match="isolated must be 'raise' or 'drop'"):
        healpix_graph(4, isolated="keep")


def test_mask_of_the_wrong_length():
    with pytest.raises(ValueError, match=r"mask has 100 entries.*nside=4 has 192.*ud_grade"):
        healpix_graph(4, mask=np.ones(100, dtype=bool))


def test_mask_that_keeps_nothing():
    with pytest.raises(ValueError, match="mask keeps no pixel"):
        healpix_graph(4, mask=np.zeros(192, dtype=bool))
    with pytest.raises(ValueError, match="mask keeps no pixel"):
        healpix_graph(4, mask=np.array([], dtype=np.int64))


def test_mask_pixel_ids_out_of_range_or_repeated():
    with pytest.raises(ValueError, match=r"mask pixel ids must lie in \[0, 191\]"):
        healpix_graph(4, mask=np.array([0, 1, 192]))
    with pytest.raises(ValueError, match="duplicates"):
        healpix_graph(4, mask=np.array([0, 1, 1, 2]))
    with pytest.raises(TypeError, match="integer pixel ids"):
        healpix_graph(4, mask=np.array([0.5, 1.5]))
    with pytest.raises(ValueError, match="mask must be 1-D"):
        healpix_graph(4, mask=np.ones((2, 96), dtype=bool))


def test_non_finite_or_non_unit_positions():
    pos = np.array([[1.0, 0.0, 0.0], [0.0, np.nan, 1.0]])
    with pytest.raises(ValueError, match=r"pos has 1 non-finite rows \(first: \[1\]\)"):
        check_unit_vectors(pos)
    with pytest.raises(ValueError, match="unit vectors"):
        check_unit_vectors(np.array([[2.0, 0.0, 0.0]]))
    with pytest.raises(ValueError, match=r"shape \[N, 3\]"):
        check_unit_vectors(np.zeros((4, 2)))


def test_hierarchy_arguments():
    with pytest.raises(ValueError, match="levels=5 halves nside=8 below 1"):
        SphereHierarchy.healpix(8, 5)
    with pytest.raises(ValueError, match="levels must be an integer >= 1"):
        SphereHierarchy.healpix(8, 0)
    with pytest.raises(ValueError, match="list of 3 ints"):
        SphereHierarchy.healpix(8, 3, k=[8, 8])
    with pytest.raises(ValueError, match=r"level 2 \(nside=1\): k=20 neighbours"):
        SphereHierarchy.healpix(4, 3, k=20)


def test_hierarchy_constructor_validates_pool_index():
    fine, coarse = healpix_graph(2, k=8), healpix_graph(1, k=8)
    good = torch.arange(48) // 4
    assert len(SphereHierarchy([fine, coarse], [good])) == 2
    with pytest.raises(ValueError, match="one map per pair of levels"):
        SphereHierarchy([fine, coarse], [])
    with pytest.raises(ValueError, match=r"must have shape \[48\]"):
        SphereHierarchy([fine, coarse], [good[:10]])
    with pytest.raises(ValueError, match=r"node ids of level 1 in \[0, 11\]"):
        SphereHierarchy([fine, coarse], [good + 1])
    with pytest.raises(ValueError, match="at least one child"):
        SphereHierarchy([fine, coarse], [torch.zeros(48, dtype=torch.long)])
