"""Reading a store back as a Dataset.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from precompute_stand_in import (
    C_OUT,
    N_OUT,
    NUM_MAPS,
    LinearModulusPool,
    reference,
)

from deepsphere_pyg.precompute import (
    CachedCoefficients,
    MapNotComputedError,
    precompute,
)

# --------------------------------------------------------------------------- datasets


def test_cached_coefficients_dataset(tmp_path, maps):
    transform = LinearModulusPool()
    precompute(transform, maps, tmp_path / "s", progress=False)
    targets = np.arange(NUM_MAPS) % 3

    plain = CachedCoefficients(tmp_path / "s")
    assert len(plain) == NUM_MAPS
    np.testing.assert_allclose(plain[2].numpy(), reference(transform, maps[2]), rtol=1e-5)

    labelled = CachedCoefficients(tmp_path / "s", targets)
    x, y = labelled[4]
    assert x.shape == (N_OUT, C_OUT) and int(y) == 1
    batch_x, batch_y = next(iter(torch.utils.data.DataLoader(labelled, batch_size=5)))
    assert batch_x.shape == (5, N_OUT, C_OUT) and batch_y.tolist() == [0, 1, 2, 0, 1]

    from torch_geometric.data import Data

    data = CachedCoefficients(tmp_path / "s", targets, data_cls=Data)[5]
    assert isinstance(data, Data) and data.x.shape == (N_OUT, C_OUT) and int(data.y) == 2

    copy = pickle.loads(pickle.dumps(labelled))  # what DataLoader workers receive
    assert copy._store is None
    torch.testing.assert_close(copy[4][0], x)

    with pytest.raises(ValueError, match="targets has length 3"):
        CachedCoefficients(tmp_path / "s", [0, 1, 2])


def test_incomplete_store_in_dataset(tmp_path, maps):
    precompute(LinearModulusPool(), maps, tmp_path / "s", rank=0, world_size=2, progress=False)
    with pytest.raises(ValueError, match="misses 3 of 7 maps"):
        CachedCoefficients(tmp_path / "s")
    lenient = CachedCoefficients(tmp_path / "s", require_complete=False)
    assert lenient[0].shape == (N_OUT, C_OUT)
    with pytest.raises(MapNotComputedError):
        lenient[1]
