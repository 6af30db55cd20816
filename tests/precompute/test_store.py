"""The on-disk store: round trip and layout, resume, damaged chunks, configuration
and layout checks, opening errors.
"""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import pytest
import torch
import zarr
from precompute_stand_in import (
    C_OUT,
    N_OUT,
    NUM_MAPS,
    C,
    K,
    LinearModulusPool,
    N,
    make_maps,
    read_all,
    reference,
    seen_indices,
)

from deepsphere_pyg.precompute import (
    CoefficientStore,
    CoefficientTransform,
    MapNotComputedError,
    config_hash,
    precompute,
)

# --------------------------------------------------------------------------- round trip


def test_round_trip_matches_definition_and_layout(tmp_path, maps):
    transform = LinearModulusPool()
    assert isinstance(transform, CoefficientTransform)
    store = precompute(transform, maps, tmp_path / "s", batch_size=3, progress=False)
    assert store.read_only and store.is_complete and store.num_done == NUM_MAPS
    assert store.shape == (NUM_MAPS, N_OUT, C_OUT) and len(store) == NUM_MAPS
    assert store.in_shape == (N, C) and store.dtype == torch.float32
    for i, x in enumerate(maps):
        value = store[i]
        assert value.dtype == torch.float32 and value.shape == (N_OUT, C_OUT)
        np.testing.assert_allclose(value.numpy(), reference(transform, x), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(store[-1].numpy(), store[NUM_MAPS - 1].numpy())

    # The configuration and its SHA-256 (of the sorted, compact JSON) sit in the attributes.
    canonical = json.dumps(transform.config(), sort_keys=True, separators=(",", ":"))
    expected_hash = hashlib.sha256(canonical.encode()).hexdigest()
    group = zarr.open_group(tmp_path / "s", mode="r")
    assert group.attrs["config"] == transform.config()
    assert group.attrs["config_hash"] == expected_hash == store.config_hash
    assert store.config == transform.config()
    array = group["coefficients"]
    assert array.shape == (NUM_MAPS, N_OUT, C_OUT) and array.chunks == (1, N_OUT, C_OUT)
    chunk_files = sorted(p.name for p in (tmp_path / "s" / "coefficients").glob("c.*"))
    assert chunk_files == sorted(f"c.{i}.0.0" for i in range(NUM_MAPS))  # one file per map
    assert sorted(os.listdir(tmp_path / "s" / "done")) == [f"{i:08d}" for i in range(NUM_MAPS)]


def test_input_kinds_and_storage_dtype(tmp_path, maps):
    transform = LinearModulusPool(pool=2)
    single = [m[:, :1] for m in maps]
    from torch_geometric.data import Data

    kinds = {
        "numpy64": [m.double().numpy() for m in single],
        "data": [Data(x=m) for m in single],
        "flat": [m[:, 0] for m in single],  # [N] is read as [N, 1]
    }
    for name, inputs in kinds.items():
        store = precompute(
            transform, inputs, tmp_path / name, dtype=torch.float64, batch_size=4, progress=False
        )
        assert store.dtype == torch.float64 and store.shape == (NUM_MAPS, N // 2, K)
        for i, x in enumerate(single):
            np.testing.assert_allclose(store[i].numpy(), reference(transform, x), rtol=1e-5)


def test_config_hash_is_key_order_independent():
    assert config_hash({"a": 1, "b": [1, 2]}) == config_hash({"b": (1, 2), "a": 1})
    assert config_hash({"a": 1}) != config_hash({"a": 2})
    with pytest.raises(TypeError, match="JSON"):
        config_hash({"a": object()})


# --------------------------------------------------------------------------- resume


def test_resume_after_interruption_recomputes_only_missing(tmp_path, maps):
    failing = LinearModulusPool(fail_after=4)
    with pytest.raises(RuntimeError, match="simulated interruption"):
        precompute(failing, maps, tmp_path / "s", batch_size=2, progress=False)
    partial = CoefficientStore.open(tmp_path / "s")
    np.testing.assert_array_equal(partial.done_mask(), [True] * 4 + [False] * 3)
    assert not partial.is_complete
    with pytest.raises(MapNotComputedError, match="map 5 .* not computed"):
        partial[5]

    resumed = LinearModulusPool()
    store = precompute(resumed, maps, tmp_path / "s", batch_size=2, progress=False)
    assert sorted(seen_indices(resumed, maps)) == [4, 5, 6]
    uninterrupted = precompute(LinearModulusPool(), maps, tmp_path / "u", progress=False)
    assert store.is_complete
    np.testing.assert_array_equal(read_all(store), read_all(uninterrupted))

    again = LinearModulusPool()
    precompute(again, maps, tmp_path / "s", progress=False)
    assert again.inputs == []  # nothing left to do


def test_chunk_without_marker_is_not_done(tmp_path, maps, monkeypatch):
    original = CoefficientStore._mark_done

    def crash_before_marker(self, index):
        if index == 2:
            raise KeyboardInterrupt  # killed between the chunk and its marker
        original(self, index)

    monkeypatch.setattr(CoefficientStore, "_mark_done", crash_before_marker)
    with pytest.raises(KeyboardInterrupt):
        precompute(LinearModulusPool(), maps, tmp_path / "s", progress=False)
    monkeypatch.setattr(CoefficientStore, "_mark_done", original)

    assert (tmp_path / "s" / "coefficients" / "c.2.0.0").is_file()  # chunk written ...
    store = CoefficientStore.open(tmp_path / "s")
    np.testing.assert_array_equal(store.done_mask(), [True, True] + [False] * 5)  # ... not done
    with pytest.raises(MapNotComputedError):
        store[2]
    assert not list((tmp_path / "s" / "done").glob(".*"))  # no temporary marker left behind

    resumed = LinearModulusPool()
    precompute(resumed, maps, tmp_path / "s", progress=False)
    assert sorted(seen_indices(resumed, maps)) == [2, 3, 4, 5, 6]


def test_corrupt_chunk_without_marker_is_recomputed(tmp_path, maps):
    transform = LinearModulusPool()
    precompute(transform, maps, tmp_path / "s", progress=False)
    (tmp_path / "s" / "done" / "00000003").unlink()
    (tmp_path / "s" / "coefficients" / "c.3.0.0").write_bytes(b"half a chunk")

    resumed = LinearModulusPool()
    store = precompute(resumed, maps, tmp_path / "s", batch_size=4, progress=False)
    assert seen_indices(resumed, maps) == [3]
    np.testing.assert_allclose(store[3].numpy(), reference(transform, maps[3]), rtol=1e-5)


def test_marked_but_damaged_chunk_raises_clear_error(tmp_path, maps):
    precompute(LinearModulusPool(), maps, tmp_path / "s", progress=False)
    (tmp_path / "s" / "coefficients" / "c.1.0.0").write_bytes(b"garbage")
    (tmp_path / "s" / "coefficients" / "c.4.0.0").unlink()
    store = CoefficientStore.open(tmp_path / "s")
    with pytest.raises(RuntimeError, match="map 1 .*cannot be read.*00000001"):
        store[1]
    with pytest.raises(RuntimeError, match="map 4 .*missing.*00000004"):
        store[4]


# --------------------------------------------------------------------------- mismatches


def test_other_configuration_is_refused_and_overwrite_replaces(tmp_path, maps):
    first, second = LinearModulusPool(seed=0), LinearModulusPool(seed=5)
    precompute(first, maps, tmp_path / "s", progress=False)
    with pytest.raises(ValueError) as info:
        precompute(second, maps, tmp_path / "s", progress=False)
    message = str(info.value)
    assert config_hash(first.config()) in message and config_hash(second.config()) in message
    assert "overwrite=True" in message and "another path" in message and "seed" in message
    assert second.inputs == []

    store = precompute(second, maps, tmp_path / "s", overwrite=True, progress=False)
    assert store.config == second.config() and store.is_complete
    for i, x in enumerate(maps):
        np.testing.assert_allclose(store[i].numpy(), reference(second, x), rtol=1e-5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s"]  # no temporary leftovers


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"maps": make_maps(NUM_MAPS + 1)}, "number of maps"),
        ({"maps": [m.repeat(1, 2) for m in make_maps()]}, "input map shape"),
        ({"dtype": torch.float64}, "storage dtype"),
    ],
)
def test_other_data_set_layout_is_refused(tmp_path, maps, change, match):
    precompute(LinearModulusPool(), maps, tmp_path / "s", progress=False)
    kwargs = {"maps": maps, "progress": False, **change}
    with pytest.raises(ValueError, match=match):
        precompute(LinearModulusPool(), path=tmp_path / "s", **kwargs)


def test_overwrite_never_deletes_foreign_directories(tmp_path, maps):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    for overwrite in (False, True):
        with pytest.raises(ValueError, match="not a coefficient store|not one"):
            precompute(LinearModulusPool(), maps, foreign, overwrite=overwrite, progress=False)
    assert (foreign / "notes.txt").read_text() == "keep me"
    (tmp_path / "empty").mkdir()  # an empty directory is fine
    assert precompute(LinearModulusPool(), maps, tmp_path / "empty", progress=False).is_complete



def test_store_open_errors(tmp_path, maps):
    with pytest.raises(ValueError, match="does not exist"):
        CoefficientStore.open(tmp_path / "nothing")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        CoefficientStore.open(tmp_path / "file")
    zarr.open_group(tmp_path / "other", mode="w").attrs["format"] = "something else"
    with pytest.raises(ValueError, match="not a coefficient store"):
        CoefficientStore.open(tmp_path / "other")
    store = precompute(LinearModulusPool(), maps, tmp_path / "s", progress=False)
    with pytest.raises(IndexError, match="out of range"):
        store[NUM_MAPS]
    with pytest.raises(TypeError, match="index must be an int"):
        store[1.0]
    with pytest.raises(PermissionError, match="read-only"):
        store.write(0, np.zeros((N_OUT, C_OUT), np.float32))
    assert "done=7/7" in repr(store)
