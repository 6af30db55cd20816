"""precompute(): progress display and bad input.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from precompute_stand_in import (
    C,
    LinearModulusPool,
    N,
)

from deepsphere_pyg.precompute import (
    CoefficientStore,
    precompute,
)

# --------------------------------------------------------------------------- progress


def test_progress_without_tqdm(tmp_path, maps, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # import tqdm -> ImportError
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    precompute(LinearModulusPool(), maps, tmp_path / "s", progress=True)
    err = capsys.readouterr().err
    assert "precompute: 0/7 maps" in err and "precompute: 7/7 maps" in err


# --------------------------------------------------------------------------- bad input


class NoConfig(torch.nn.Module):
    def forward(self, x):
        return x


class WrongShape(LinearModulusPool):
    def out_shape(self, in_channels):
        return self.n // self.pool, in_channels * self.k + 1


class ProducesNaN(LinearModulusPool):
    def forward(self, x):
        y = super().forward(x)
        y[0, 0, 0] = float("nan")
        return y


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"batch_size": 0}, ValueError, "batch_size must be >= 1"),
        ({"batch_size": 1.5}, TypeError, "batch_size must be an int"),
        ({"num_workers": -1}, ValueError, "num_workers must be >= 0"),
        ({"dtype": torch.int32}, ValueError, "dtype must be one of"),
        ({"rank": 1}, ValueError, "both rank and world_size"),
        ({"rank": 2, "world_size": 2}, ValueError, r"rank must be in \[0, world_size=2\)"),
        ({"world_size": 0, "rank": 0}, ValueError, "world_size must be >= 1"),
        ({"overwrite": True, "rank": 0, "world_size": 2}, ValueError, "process group"),
    ],
)
def test_bad_arguments(tmp_path, maps, kwargs, error, match):
    with pytest.raises(error, match=match):
        precompute(LinearModulusPool(), maps, tmp_path / "s", progress=False, **kwargs)


def test_bad_maps_name_the_index(tmp_path, maps):
    transform = LinearModulusPool()

    def run(bad, name):
        return precompute(transform, bad, tmp_path / name, batch_size=2, progress=False)

    wrong = list(maps)
    wrong[3] = torch.zeros(N + 1, C)
    with pytest.raises(ValueError, match=r"maps\[3\] has shape \[25, 2\], expected \[24, 2\]"):
        run(wrong, "shape")
    nan = [m.clone() for m in maps]
    nan[5][2, 1] = float("nan")
    with pytest.raises(ValueError, match=r"maps\[5\] contains 1 NaN or infinite"):
        run(nan, "nan")
    # maps before the bad one are kept: fixing the map and rerunning resumes
    np.testing.assert_array_equal(
        np.flatnonzero(CoefficientStore.open(tmp_path / "nan").done_mask()), [0, 1, 2, 3]
    )
    unseen = [m.clone() for m in maps]
    unseen[1][0, 0] = -1.6375e30
    with pytest.raises(ValueError, match=r"maps\[1\] contains healpy's UNSEEN"):
        run(unseen, "unseen")
    with pytest.raises(TypeError, match=r"maps\[0\] has dtype torch.int64"):
        run([torch.zeros(N, C, dtype=torch.long)], "int")
    with pytest.raises(ValueError, match=r"maps\[0\] must have shape \[N, C\]"):
        run([torch.zeros(2, N, C)], "3d")
    with pytest.raises(ValueError, match="maps is empty"):
        run([], "empty")
    with pytest.raises(TypeError, match="maps must be a sequence"):
        run(iter(maps), "iter")


def test_bad_path_and_transform(tmp_path, maps):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        precompute(LinearModulusPool(), maps, tmp_path / "file", progress=False)
    with pytest.raises(TypeError, match="path must be a str"):
        precompute(LinearModulusPool(), maps, 3, progress=False)
    with pytest.raises(TypeError, match=r"must provide config\(\)"):
        precompute(NoConfig(), maps, tmp_path / "a", progress=False)
    with pytest.raises(ValueError, match=r"returned shape \[1, 6, 6\].*promises \[1, 6, 7\]"):
        precompute(WrongShape(), maps, tmp_path / "b", progress=False)
    with pytest.raises(ValueError, match=r"NaN or infinite coefficients for maps\[0\]"):
        precompute(ProducesNaN(), maps, tmp_path / "c", progress=False)
