"""Splitting the work over ranks and workers: sequential ranks, the environment and
torch.distributed, concurrent creators, processes, torchrun.
"""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest
from precompute_stand_in import (
    NUM_MAPS,
    LinearModulusPool,
    make_maps,
    read_all,
    reference,
    seen_indices,
)

from deepsphere_pyg.precompute import (
    CoefficientStore,
    precompute,
)

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
        from precompute_stand_in import LinearModulusPool, make_maps
        from deepsphere_pyg.precompute import precompute
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
