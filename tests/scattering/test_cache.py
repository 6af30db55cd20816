"""On-disk coefficient cache: round trip, resume, configuration checks, rank splits,
concurrent writers, datasets and bad input.

The transform used here is a stand-in with the protocol of the scattering front-end:
``K`` fixed random linear maps over the nodes, a modulus, and average pooling of groups of
``pool`` consecutive nodes. Expected coefficients come from an independent float64 NumPy
loop over the definition.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import pickle
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
import zarr

from deepsphere_pyg.scattering.cache import (
    CachedCoefficients,
    CoefficientStore,
    CoefficientTransform,
    MapNotComputedError,
    config_hash,
    precompute,
)

N, C, K, POOL = 24, 2, 3, 4
N_OUT, C_OUT = N // POOL, C * K
NUM_MAPS = 7


class LinearModulusPool(torch.nn.Module):
    """``y[b, m, c*K + k] = mean_{p < pool} |sum_n W[k, m*pool + p, n] x[b, n, c]|``.

    Records every map it is given (``inputs``) and, with ``fail_after``, raises instead of
    computing a batch that would take it past that many maps.
    """

    def __init__(self, n=N, k=K, pool=POOL, seed=0, fail_after=None):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.register_buffer("weights", torch.randn(k, n, n, generator=generator) / n**0.5)
        self.n, self.k, self.pool, self.seed = n, k, pool, seed
        self.fail_after = fail_after
        self.inputs: list[torch.Tensor] = []

    def config(self):
        return {
            "kind": "linear-modulus-pool",
            "n": self.n,
            "k": self.k,
            "pool": self.pool,
            "seed": self.seed,
        }

    def out_shape(self, in_channels):
        return self.n // self.pool, in_channels * self.k

    def forward(self, x):
        if self.fail_after is not None and len(self.inputs) + len(x) > self.fail_after:
            raise RuntimeError("simulated interruption")
        self.inputs.extend(x.clone())
        y = torch.einsum("kmn,bnc->bkmc", self.weights, x).abs()
        b, k, n, c = y.shape
        y = y.reshape(b, k, n // self.pool, self.pool, c).mean(3)
        return y.permute(0, 2, 3, 1).reshape(b, n // self.pool, c * k)


def reference(transform: LinearModulusPool, x) -> np.ndarray:
    """The stand-in's definition, in float64 loops."""
    w = transform.weights.double().numpy()
    x = np.asarray(x, dtype=np.float64).reshape(transform.n, -1)
    out = np.zeros((transform.n // transform.pool, x.shape[1] * transform.k))
    for m in range(out.shape[0]):
        for c in range(x.shape[1]):
            for k in range(transform.k):
                rows = w[k, m * transform.pool : (m + 1) * transform.pool]
                out[m, c * transform.k + k] = np.abs(rows @ x[:, c]).mean()
    return out


def make_maps(num=NUM_MAPS, seed=1):
    rng = np.random.default_rng(seed)
    return [torch.from_numpy(rng.standard_normal((N, C)).astype(np.float32)) for _ in range(num)]


def seen_indices(transform: LinearModulusPool, maps) -> list[int]:
    """Which maps the transform was called on (matched by value)."""
    found = []
    for x in transform.inputs:
        matches = [i for i, m in enumerate(maps) if torch.equal(torch.as_tensor(m), x)]
        assert len(matches) == 1
        found.append(matches[0])
    return found


def read_all(store: CoefficientStore) -> np.ndarray:
    return np.stack([store[i].numpy() for i in range(len(store))])


@pytest.fixture(autouse=True)
def _no_rank_env(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)


@pytest.fixture
def maps():
    return make_maps()


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


# --------------------------------------------------------------------------- ranks


def test_rank_split_run_sequentially(tmp_path, maps):
    transforms = [LinearModulusPool(), LinearModulusPool()]
    store = precompute(transforms[0], maps, tmp_path / "s", rank=0, world_size=2, progress=False)
    np.testing.assert_array_equal(store.done_mask(), [i % 2 == 0 for i in range(NUM_MAPS)])
    assert not store.is_complete
    store = precompute(
        transforms[1], maps, tmp_path / "s", rank=1, world_size=2, batch_size=2, progress=False
    )
    assert store.is_complete
    assert sorted(seen_indices(transforms[0], maps)) == [0, 2, 4, 6]
    assert sorted(seen_indices(transforms[1], maps)) == [1, 3, 5]
    single = precompute(LinearModulusPool(), maps, tmp_path / "one", progress=False)
    np.testing.assert_array_equal(read_all(store), read_all(single))


def test_rank_defaults_from_environment_and_torch_distributed(tmp_path, maps, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "3")
    store = precompute(LinearModulusPool(), maps, tmp_path / "env", progress=False)
    np.testing.assert_array_equal(np.flatnonzero(store.done_mask()), [1, 4])

    # An initialised process group takes precedence over the environment.
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        store = precompute(LinearModulusPool(), maps, tmp_path / "dist", progress=False)
    finally:
        dist.destroy_process_group()
    assert store.is_complete


def test_concurrent_creation_by_threads(tmp_path, maps):
    """Four ranks start at once on a path that does not exist yet: one creates the store,
    the others open it; together they fill it."""
    start = threading.Barrier(4)
    errors = []

    def run(rank):
        try:
            start.wait()
            precompute(
                LinearModulusPool(), maps, tmp_path / "s", rank=rank, world_size=4, progress=False
            )
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(r,)) for r in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    store = CoefficientStore.open(tmp_path / "s")
    assert store.is_complete
    transform = LinearModulusPool()
    for i, x in enumerate(maps):
        np.testing.assert_allclose(store[i].numpy(), reference(transform, x), rtol=1e-5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s"]


def _run_rank(path: str, rank: int) -> None:
    precompute(LinearModulusPool(), make_maps(), path, rank=rank, world_size=2, progress=False)


@pytest.mark.slow
def test_two_processes_write_one_store(tmp_path):
    """Two independent processes (ranks 0 and 1 of 2) start on a path that does not exist."""
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_run_rank, args=(str(tmp_path / "s"), r)) for r in range(2)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [p.exitcode for p in processes] == [0, 0]
    store = CoefficientStore.open(tmp_path / "s")
    assert store.is_complete
    transform = LinearModulusPool()
    for i, x in enumerate(make_maps()):
        np.testing.assert_allclose(store[i].numpy(), reference(transform, x), rtol=1e-5)


@pytest.mark.slow
def test_local_worker_processes(tmp_path, maps):
    """Two spawned workers share the maps; one meets a NaN map: its error reaches the
    caller, the other stops, finished maps are kept, and a rerun computes only the rest."""
    bad = [m.clone() for m in maps]
    bad[3][0, 0] = float("nan")
    transform = LinearModulusPool()
    with pytest.raises(ValueError, match=r"maps\[3\] contains 1 NaN"):
        precompute(transform, bad, tmp_path / "s", num_workers=2, progress=True)
    assert transform.inputs == []  # computed in the workers, not here
    done = CoefficientStore.open(tmp_path / "s").done_mask()
    assert not done[3] and done.any()  # the failing map is missing, earlier ones are kept

    resumed = LinearModulusPool()
    store = precompute(resumed, maps, tmp_path / "s", progress=False)
    assert sorted(seen_indices(resumed, maps)) == np.flatnonzero(~done).tolist()
    assert store.is_complete
    for i, x in enumerate(maps):
        np.testing.assert_allclose(store[i].numpy(), reference(transform, x), rtol=1e-5)


@pytest.mark.slow
def test_torchrun_two_ranks(tmp_path):
    script = tmp_path / "job.py"
    script.write_text(
        textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        import torch.distributed as dist
        from test_cache import LinearModulusPool, make_maps
        from deepsphere_pyg.scattering.cache import precompute
        dist.init_process_group("gloo")
        store = precompute(LinearModulusPool(), make_maps(), sys.argv[1], progress=False)
        assert store.is_complete, store  # ranks meet at a barrier before returning
        try:  # rank 0 refuses another configuration; every rank gets the error
            precompute(LinearModulusPool(seed=9), make_maps(), sys.argv[1], progress=False)
        except ValueError as exc:
            assert "overwrite=True" in str(exc)
        else:
            raise AssertionError("another configuration was accepted")
        store = precompute(LinearModulusPool(seed=9), make_maps(), sys.argv[1],
                           overwrite=True, progress=False)
        assert store.is_complete and store.config["seed"] == 9
        dist.barrier()  # every rank has looked before rank 0 overwrites the store again
        store = precompute(LinearModulusPool(), make_maps(), sys.argv[1], overwrite=True,
                           progress=False)
        dist.destroy_process_group()
    """)
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            str(script),
            str(tmp_path / "s"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-6000:]
    store = CoefficientStore.open(tmp_path / "s")
    transform = LinearModulusPool()
    for i, x in enumerate(make_maps()):
        np.testing.assert_allclose(store[i].numpy(), reference(transform, x), rtol=1e-5)


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
        store._write(0, np.zeros((N_OUT, C_OUT), np.float32))
    assert "done=7/7" in repr(store)


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
