"""Shared fixtures of the scattering tests."""

import pytest

from deepsphere_pyg.openmp import single_threaded_openmp


@pytest.fixture
def one_openmp_thread():
    """healpy on one thread: many small transforms, on machines shared with other jobs.

    A module opts in with ``pytestmark = pytest.mark.usefixtures("one_openmp_thread")``.
    """
    with single_threaded_openmp():
        yield
