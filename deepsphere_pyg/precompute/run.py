"""Run a fixed transform once over a whole data set into an on-disk store (resumable).

A transform without trainable parameters -- a scattering front-end, a fixed filter bank,
a frozen encoder, a fixed linear map -- gives the same output for a sample every time:
:func:`precompute` computes it once per sample into a
:class:`~deepsphere_pyg.precompute.CoefficientStore`, and
:class:`~deepsphere_pyg.precompute.CachedCoefficients` serves it for training.

Work split
----------
Map ``i`` belongs to rank ``i % world_size``. ``rank``/``world_size`` default to those of
:mod:`torch.distributed` when a process group is initialised, else to the ``RANK`` and
``WORLD_SIZE`` environment variables that ``torchrun`` sets, else to 0 and 1. On one
machine, either pass ``num_workers=k`` (``k`` spawned processes share this rank's maps) or
start several ranks with ``torchrun``::

    torchrun --nproc_per_node 4 my_precompute_script.py   # each calls precompute(...)

With a torch.distributed process group, rank 0 creates (or, with ``overwrite=True``,
replaces) the store while the other ranks wait for it, and all ranks meet at a barrier
before returning. Without one, the store is created by whichever rank gets there first:
metadata is written in a temporary sibling directory that is renamed onto ``path``; the
rename succeeds for exactly one creator, and the others open what it made and check that
the configuration matches. ``overwrite=True`` with several ranks therefore needs a process
group; without one, delete the old store once before starting the ranks.
"""

from __future__ import annotations

import concurrent.futures
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from .progress import Progress
from .sharding import check_int, rank_share, resolve_rank, worker_shares
from .store import (
    STORAGE_DTYPES,
    CoefficientStore,
    check_layout,
    create_or_open,
    read_attrs,
    store_layout,
)

__all__ = ["CoefficientTransform", "precompute"]

# healpy.UNSEEN, the sentinel healpy writes into masked pixels (kept here so that this
# module does not import healpy).
HEALPY_UNSEEN = -1.6375e30


@runtime_checkable
class CoefficientTransform(Protocol):
    """What :func:`precompute` needs from a transform (e.g. ``SphericalScattering``).

    A callable without trainable parameters mapping a batch of maps ``[B, N, C]`` to
    coefficients ``[B, N_out, C_out]``, with

    - ``config() -> dict``: JSON-serialisable; holds every parameter that changes the
      output (the cache key of a store);
    - ``out_shape(in_channels) -> (N_out, C_out)``: the per-map output shape.

    When the transform is an :class:`torch.nn.Module`, inputs are cast to the dtype and
    moved to the device of its first floating-point parameter or buffer.
    """

    def __call__(self, x: torch.Tensor) -> torch.Tensor: ...

    def config(self) -> dict[str, Any]: ...

    def out_shape(self, in_channels: int) -> tuple[int, int]: ...


def _compute_dtype_device(transform: Any) -> tuple[torch.dtype, torch.device]:
    if isinstance(transform, torch.nn.Module):
        for tensor in (*transform.parameters(), *transform.buffers()):
            if tensor.is_floating_point():
                return tensor.dtype, tensor.device
    return torch.get_default_dtype(), torch.device("cpu")


def _load_map(maps: Sequence[Any], index: int) -> torch.Tensor:
    """``maps[index]`` as a floating tensor ``[N, C]`` (a 1-D map ``[N]`` becomes ``[N, 1]``)."""
    item = maps[index]
    if not isinstance(item, (torch.Tensor, np.ndarray)) and hasattr(item, "x"):
        item = item.x
        if item is None:
            raise ValueError(f"maps[{index}] has no node features (its x is None)")
    try:
        x = torch.as_tensor(item)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise TypeError(
            f"maps[{index}] must be a tensor, an array or a Data object with x, got "
            f"{type(item).__name__}"
        ) from exc
    if not x.is_floating_point():
        raise TypeError(
            f"maps[{index}] has dtype {x.dtype}; maps must be floating point (convert them, "
            f"e.g. x.float())"
        )
    if x.dim() == 1:
        x = x.unsqueeze(-1)
    if x.dim() != 2:
        raise ValueError(f"maps[{index}] must have shape [N, C] (or [N]), got {list(x.shape)}")
    return x


def _check_map(x: torch.Tensor, index: int, in_shape: tuple[int, int]) -> None:
    if tuple(x.shape) != in_shape:
        raise ValueError(
            f"maps[{index}] has shape {list(x.shape)}, expected {list(in_shape)} like the "
            f"other maps of this data set (store); all maps must share one graph and channels"
        )
    finite = torch.isfinite(x)
    if not bool(finite.all()):
        bad = int((~finite).sum())
        raise ValueError(
            f"maps[{index}] contains {bad} NaN or infinite values; fill them or use a "
            f"partial-sky graph that leaves those pixels out"
        )
    if bool((x == HEALPY_UNSEEN).any()):
        raise ValueError(
            f"maps[{index}] contains healpy's UNSEEN value ({HEALPY_UNSEEN}); use a "
            f"partial-sky graph (mask) that leaves those pixels out, or fill them"
        )


def _out_shape(transform: Any, first: torch.Tensor) -> tuple[int, int]:
    """``(N_out, C_out)``: ``transform.out_shape(C)``, else the shape of its output on
    the first map ``first`` ``[N, C]``."""
    channels = int(first.shape[1])
    if callable(getattr(transform, "out_shape", None)):
        shape = tuple(transform.out_shape(channels))
        source = f"transform.out_shape({channels})"
    else:
        dtype, device = _compute_dtype_device(transform)
        with torch.no_grad():
            out = transform(first[None].to(device=device, dtype=dtype))
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"the transform must return a tensor, got {type(out).__name__}")
        if out.dim() != 3 or out.shape[0] != 1:
            raise ValueError(
                f"the transform must map [B, N, C] to [B, N_out, C_out]; for maps[0] "
                f"[1, {first.shape[0]}, {channels}] it returned {list(out.shape)}"
            )
        shape = tuple(out.shape[1:])
        source = "the transform's output on maps[0]"
    if len(shape) != 2 or not all(isinstance(v, (int, np.integer)) and v > 0 for v in shape):
        raise ValueError(f"{source} must be two positive ints (N_out, C_out), got {shape}")
    return int(shape[0]), int(shape[1])


# --------------------------------------------------------------------------- compute


def _compute(
    transform: Callable[[torch.Tensor], torch.Tensor],
    maps: Sequence[Any],
    store: CoefficientStore,
    indices: Sequence[int],
    batch_size: int,
    on_done: Callable[[int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> None:
    """Transform ``maps[indices]`` in batches and write each map's chunk and marker.

    ``should_stop`` is checked before each batch (workers stop early when another fails).
    """
    in_shape = store.in_shape
    out_shape = store.shape[1:]
    np_dtype = np.dtype(STORAGE_DTYPES[store.dtype])
    dtype, device = _compute_dtype_device(transform)
    for start in range(0, len(indices), batch_size):
        if should_stop is not None and should_stop():
            return
        batch = list(indices[start : start + batch_size])
        xs = []
        for index in batch:
            x = _load_map(maps, index)
            _check_map(x, index, in_shape)
            xs.append(x.to(device=device, dtype=dtype))
        with torch.no_grad():
            out = transform(torch.stack(xs))
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"the transform must return a tensor, got {type(out).__name__}")
        if tuple(out.shape) != (len(batch), *out_shape):
            raise ValueError(
                f"the transform returned shape {list(out.shape)} for maps {batch}, but the "
                f"store's layout (its out_shape({in_shape[1]}), or its output on maps[0]) "
                f"promises [{len(batch)}, {out_shape[0]}, {out_shape[1]}]; fix the "
                f"transform's out_shape(), or make its output shape the same for every map"
            )
        values = out.detach().cpu().numpy().astype(np_dtype, copy=False)
        for row, index in enumerate(batch):
            if not np.isfinite(values[row]).all():
                raise ValueError(
                    f"the transform produced NaN or infinite coefficients for maps[{index}]"
                    f" (in storage dtype {np_dtype}); check the map and the transform"
                )
            store.write(index, values[row])
            if on_done is not None:
                on_done(index)


_stop_event: Any = None  # set in each worker process by _init_worker


def _init_worker(stop_event: Any, num_threads: int) -> None:
    global _stop_event
    _stop_event = stop_event
    torch.set_num_threads(num_threads)


def _worker(
    transform: Callable[[torch.Tensor], torch.Tensor],
    maps: Sequence[Any],
    path: str,
    indices: list[int],
    batch_size: int,
) -> None:
    """Entry point of a spawned worker process."""
    store = CoefficientStore.open(path, read_only=False)
    _compute(transform, maps, store, indices, batch_size, should_stop=_stop_event.is_set)


def _run_workers(
    transform: Callable[[torch.Tensor], torch.Tensor],
    maps: Sequence[Any],
    store: CoefficientStore,
    indices: list[int],
    batch_size: int,
    num_workers: int,
    share: np.ndarray,
    progress: Progress,
) -> None:
    """Split ``indices`` over ``num_workers`` spawned processes; poll markers for progress.

    When a worker fails (or the caller is interrupted) the others stop after their current
    batch, and the first error is raised here; finished maps stay in the store.
    """
    context = torch.multiprocessing.get_context("spawn")
    stop = context.Event()
    num_threads = max(1, torch.get_num_threads() // num_workers)
    with concurrent.futures.ProcessPoolExecutor(
        num_workers, mp_context=context, initializer=_init_worker, initargs=(stop, num_threads)
    ) as pool:
        futures = [
            pool.submit(_worker, transform, maps, str(store.path), part, batch_size)
            for part in worker_shares(indices, num_workers)
        ]
        try:
            pending = set(futures)
            while pending:
                finished, pending = concurrent.futures.wait(
                    pending, timeout=0.5, return_when=concurrent.futures.FIRST_EXCEPTION
                )
                progress.set(int(store.done_mask()[share].sum()))
                for future in finished:
                    future.result()  # re-raise a worker's error here
        except BaseException:
            stop.set()
            for future in futures:
                future.cancel()
            raise


def precompute(
    transform: CoefficientTransform | Callable[[torch.Tensor], torch.Tensor],
    maps: Sequence[Any],
    path: str | os.PathLike,
    *,
    config: Mapping[str, Any] | None = None,
    batch_size: int = 1,
    dtype: torch.dtype = torch.float32,
    rank: int | None = None,
    world_size: int | None = None,
    num_workers: int = 0,
    progress: bool = True,
    overwrite: bool = False,
) -> CoefficientStore:
    """Compute ``transform(maps[i])`` for every map and store it at ``path`` (resumable).

    For each map ``x_i`` ``[N, C]`` this stores ``transform(x_i[None])[0]`` ``[N_out, C_out]``
    (``(N_out, C_out) = transform.out_shape(C)``, or the shape of the first map's output
    when the transform has no ``out_shape``), computed in batches under
    :func:`torch.no_grad`. Maps already computed in the store are skipped, so rerunning
    after an interruption only computes the missing ones. Map ``i`` is computed by rank
    ``i % world_size``; ranks may run at the same time on one or several machines (shared
    file system).

    Args:
        transform: Any fixed callable (e.g. an ``nn.Module``) mapping ``[B, N, C]`` to
            ``[B, N_out, C_out]``; a :class:`CoefficientTransform` also describes itself.
            If it is an ``nn.Module``, inputs are cast to the dtype and device of its first
            floating parameter or buffer.
        maps: Sequence (``len`` and integer indexing) of maps: tensors or arrays ``[N, C]``
            (``[N]`` is read as ``[N, 1]``), or objects with an attribute ``x`` (PyG
            ``Data``). All maps share one shape; none may hold NaN, inf or healpy's UNSEEN.
        path: Directory of the store (created, or reopened to resume).
        config: JSON-serialisable description of the transform, the key of the store (a
            store of another configuration is refused); default ``transform.config()``.
            Required when the transform has no ``config()``.
        batch_size: Maps per transform call (default 1).
        dtype: Storage dtype: ``torch.float16``, ``torch.float32`` (default) or
            ``torch.float64``.
        rank: This process's rank (default: torch.distributed's, else ``$RANK``, else 0).
        world_size: Number of ranks (default: torch.distributed's, else ``$WORLD_SIZE``,
            else 1).
        num_workers: Local worker processes (spawned) sharing this rank's maps; 0 (default)
            computes in this process. ``transform`` and ``maps`` are pickled to each worker.
        progress: Show progress (tqdm if installed, else lines on stderr); on rank 0 only.
        overwrite: Delete an existing store at ``path`` first (only a coefficient store or
            an empty directory is ever deleted).

    Returns:
        The store, opened read-only. With several ranks it is complete on return only when
        torch.distributed is initialised (ranks meet at a barrier); otherwise check
        :attr:`CoefficientStore.is_complete`.

    Raises:
        TypeError: ``transform`` is not callable, or lacks ``config()`` and no ``config``
            is given, a map is not floating
            point, or an argument has the wrong type.
        ValueError: ``path`` is a file or holds a store of another configuration, number
            of maps, shape or dtype (the message names both config hashes); a map has the
            wrong shape or non-finite values (the message names its index); the transform
            output does not match ``out_shape``; bad ``batch_size``, ``rank``,
            ``world_size``, ``num_workers`` or ``dtype``.
    """
    if config is None and not callable(getattr(transform, "config", None)):
        raise TypeError(
            f"transform must provide config() (see CoefficientTransform), or pass config=: "
            f"a dict describing it, the key of the store; got {type(transform).__name__}"
        )
    if not callable(transform):
        raise TypeError(f"transform must be callable, got {type(transform).__name__}")
    if not (hasattr(maps, "__len__") and hasattr(maps, "__getitem__")):
        raise TypeError(
            f"maps must be a sequence (len and indexing), got {type(maps).__name__}; wrap an "
            f"iterable in list(...)"
        )
    if isinstance(path, (str, os.PathLike)):
        path = Path(path)
    else:
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    batch_size = check_int(batch_size, "batch_size", 1)
    num_workers = check_int(num_workers, "num_workers", 0)
    if dtype not in STORAGE_DTYPES:
        raise ValueError(f"dtype must be one of {list(STORAGE_DTYPES)}, got {dtype!r}")
    rank, world_size, use_dist = resolve_rank(rank, world_size)
    num_maps = len(maps)
    if num_maps == 0:
        raise ValueError("maps is empty; there is nothing to precompute")
    if path.exists() and not path.is_dir():
        raise ValueError(
            f"path {path} is a file; a coefficient store is a directory: choose another path"
        )

    if config is None:
        config = transform.config()
        if not isinstance(config, Mapping):
            raise TypeError(
                f"transform.config() must return a dict, got {type(config).__name__}"
            )
    elif not isinstance(config, Mapping):
        raise TypeError(f"config must be a dict, got {type(config).__name__}")
    first = _load_map(maps, 0)
    _check_map(first, 0, tuple(first.shape))
    in_shape = (int(first.shape[0]), int(first.shape[1]))
    out_shape = _out_shape(transform, first)
    layout = store_layout(config, num_maps, in_shape, out_shape, dtype)

    if use_dist:
        dist = torch.distributed
        # Rank 0 creates (or replaces) the store while the others wait; its error, if any,
        # is sent to every rank so that none is left waiting.
        error: list[str | None] = [None]
        store = None
        failure: Exception | None = None
        if rank == 0:
            try:
                store = create_or_open(path, layout, overwrite=overwrite)
            except Exception as exc:
                failure, error[0] = exc, str(exc)
        dist.broadcast_object_list(error, src=0)
        if failure is not None:
            raise failure
        if error[0] is not None:
            raise ValueError(f"rank 0 could not create or open the store: {error[0]}")
        if store is None:
            check_layout(path, read_attrs(path), layout)
            store = CoefficientStore.open(path, read_only=False)
    else:
        if overwrite and world_size > 1:
            raise ValueError(
                "overwrite=True with several ranks needs an initialised torch.distributed "
                "process group (rank 0 replaces the store while the others wait); without "
                "one, delete the old store once before starting the ranks"
            )
        store = create_or_open(path, layout, overwrite=overwrite)

    share = rank_share(num_maps, rank, world_size)
    done = store.done_mask()
    todo = [int(i) for i in share if not done[i]]
    desc = "precompute" if world_size == 1 else f"precompute (rank 0 of {world_size})"
    bar = Progress(len(share), len(share) - len(todo), desc, progress and rank == 0)
    try:
        if num_workers > 0 and todo:
            _run_workers(transform, maps, store, todo, batch_size, num_workers, share, bar)
        elif todo:
            _compute(
                transform,
                maps,
                store,
                todo,
                batch_size,
                on_done=lambda _: bar.set(bar.count + 1),
            )
    finally:
        bar.close()
    if use_dist:
        torch.distributed.barrier()
    return CoefficientStore.open(path)
