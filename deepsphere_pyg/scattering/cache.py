"""Compute scattering coefficients once for a whole data set and keep them on disk.

A scattering front-end has no trainable parameters, so its output for a given map never
changes: :func:`precompute` runs a transform over every map of a data set once and stores
the coefficients; :class:`CoefficientStore` and :class:`CachedCoefficients` read them back
for training.

Layout
------
A zarr (format 3) group at ``path``::

    path/zarr.json                 group attributes: format, config (JSON), config_hash
                                   (SHA-256 of the canonical JSON), num_maps, in_shape,
                                   out_shape, dtype
    path/coefficients/             array [num_maps, N_out, C_out], chunks (1, N_out, C_out),
        zarr.json                  fill value NaN, zstd-compressed chunks
        c.<i>.0.0                  one file per map i
    path/done/<i, zero-padded>     completion marker of map i (one small file per map)

A map counts as computed only when its marker exists. The marker is written after the
map's chunk, through a temporary name and :func:`os.replace`, so a process killed at any
moment leaves either no marker (the map is recomputed on the next run) or a complete chunk
and its marker. zarr 3.1's ``LocalStore`` itself writes each chunk to
``<key>.<uuid>.partial`` and renames it into place (``Path.replace``), so readers never see
a half chunk either; neither zarr nor this module calls ``fsync``, so the guarantee covers
interrupted processes (preemption, Ctrl-C, out-of-memory kills), not power loss. A killed
writer may leave a stray ``*.partial`` chunk file or ``.<name>.creating-*`` directory next
to the store; both are ignored and may be deleted. ``done/`` is not a zarr node, so zarr's
``Group.members()`` on the store warns about it; that warning is harmless.

Why zarr rather than HDF5
-------------------------
One chunk per map means one file per map, and every map has exactly one writer. Several
processes -- on one machine or on several machines sharing a file system -- therefore
write different maps into the same store at the same time with no lock, no coordinator and
no MPI; the only shared files (the metadata) are written once, before any map. An HDF5
file, by contrast, is one file whose internal metadata (B-trees, free-space records) every
writer updates: independent processes cannot write into one file concurrently (SWMR mode
allows a single writer; several writers need an MPI build of HDF5 and collective I/O), and
a writer killed mid-write can leave that metadata inconsistent and the whole file
unreadable, whereas here an interrupted write costs at most the one map being written.
Measured with zarr 3.1.6 on a local ext4 disk (2-core machine), for maps of
768 x 24 float32 coefficients (73.7 kB raw, 68 kB after zstd on Gaussian noise): writing
one map's chunk takes about 0.9 ms and reading it back about 0.5 ms, negligible next to a
scattering transform. Sharded zarr arrays (many chunks per file) are deliberately not used:
two processes updating one shard would race.

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
import copy
import datetime
import hashlib
import json
import os
import shutil
import sys
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
import zarr

__all__ = [
    "CachedCoefficients",
    "CoefficientStore",
    "CoefficientTransform",
    "MapNotComputedError",
    "config_hash",
    "precompute",
]

FORMAT = "deepsphere_pyg.coefficient_store"
FORMAT_VERSION = 1
ARRAY_NAME = "coefficients"
DONE_DIR = "done"

# healpy.UNSEEN, the sentinel healpy writes into masked pixels (kept here so that this
# module does not import healpy).
_HEALPY_UNSEEN = -1.6375e30

_STORAGE_DTYPES: dict[torch.dtype, str] = {
    torch.float16: "float16",
    torch.float32: "float32",
    torch.float64: "float64",
}
_TORCH_DTYPES = {name: dtype for dtype, name in _STORAGE_DTYPES.items()}


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


class MapNotComputedError(LookupError):
    """Raised when reading a map whose coefficients are not (completely) in the store."""


def _canonical_json(config: Mapping[str, Any]) -> str:
    try:
        return json.dumps(
            config, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
        )
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"the transform's config() must be JSON-serialisable (str, int, finite float, "
            f"bool, None, lists and dicts with str keys): {exc}"
        ) from exc


def config_hash(config: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of ``config``.

    Canonical JSON: keys sorted, no whitespace (``separators=(",", ":")``), ASCII only,
    tuples written as lists. Two configurations have the same hash exactly when their
    JSON values are equal.

    Raises:
        TypeError: ``config`` is not a mapping or is not JSON-serialisable.
    """
    if not isinstance(config, Mapping):
        raise TypeError(f"config must be a dict, got {type(config).__name__}")
    return hashlib.sha256(_canonical_json(config).encode("ascii")).hexdigest()


# --------------------------------------------------------------------------- store


def _read_attrs(path: Path) -> dict[str, Any]:
    """Group attributes of the store at ``path``; ValueError if it is not a store."""
    try:
        group = zarr.open_group(path, mode="r")
    except (FileNotFoundError, zarr.errors.BaseZarrError, ValueError) as exc:
        raise ValueError(
            f"{path} is not a coefficient store (no zarr group there: {exc}); "
            f"create one with precompute(transform, maps, path)"
        ) from exc
    attrs = dict(group.attrs)
    if attrs.get("format") != FORMAT:
        raise ValueError(
            f"{path} is a zarr group but not a coefficient store (its attribute 'format' is "
            f"{attrs.get('format')!r}, expected {FORMAT!r}); use another path"
        )
    if attrs.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{path} is a coefficient store of format version {attrs.get('format_version')}, "
            f"this library reads version {FORMAT_VERSION}; recompute it with overwrite=True"
        )
    return attrs


class CoefficientStore:
    """Coefficients of a data set of maps, one chunk and one completion marker per map.

    Open with :meth:`open`; :func:`precompute` creates and fills stores. Reading is safe
    while other processes are still writing: a map is visible only once its marker exists.

    Attributes:
        path: The store directory.
        read_only: Whether writing is refused.
    """

    def __init__(self, path: Path, attrs: dict[str, Any], array: Any, read_only: bool):
        # Use CoefficientStore.open(path).
        self.path = path
        self.read_only = read_only
        self._attrs = attrs
        self._array = array
        self._digits = int(attrs["marker_digits"])

    @classmethod
    def open(cls, path: str | os.PathLike, *, read_only: bool = True) -> CoefficientStore:
        """Open the store at ``path``.

        Args:
            path: Directory of a store made by :func:`precompute`.
            read_only: Refuse writes (default ``True``).

        Raises:
            ValueError: ``path`` does not exist, is a file, or is not a coefficient store.
        """
        path = Path(path)
        if not path.exists():
            raise ValueError(f"no coefficient store at {path}: the path does not exist")
        if not path.is_dir():
            raise ValueError(f"{path} is a file, not a coefficient store (a directory)")
        attrs = _read_attrs(path)
        group = zarr.open_group(path, mode="r" if read_only else "r+")
        return cls(path, attrs, group[ARRAY_NAME], read_only)

    # -- metadata
    @property
    def config(self) -> dict[str, Any]:
        """The transform configuration the coefficients were computed with (a copy)."""
        return copy.deepcopy(self._attrs["config"])

    @property
    def config_hash(self) -> str:
        """SHA-256 of the canonical JSON of :attr:`config` (see :func:`config_hash`)."""
        return str(self._attrs["config_hash"])

    @property
    def num_maps(self) -> int:
        """Number of maps in the data set."""
        return int(self._attrs["num_maps"])

    @property
    def in_shape(self) -> tuple[int, int]:
        """Shape ``(N, C)`` of each input map."""
        n, c = self._attrs["in_shape"]
        return int(n), int(c)

    @property
    def shape(self) -> tuple[int, int, int]:
        """Shape ``(num_maps, N_out, C_out)`` of the coefficient array."""
        n_out, c_out = self._attrs["out_shape"]
        return self.num_maps, int(n_out), int(c_out)

    @property
    def dtype(self) -> torch.dtype:
        """Storage dtype of the coefficients."""
        return _TORCH_DTYPES[self._attrs["dtype"]]

    # -- completion
    @property
    def _done_dir(self) -> Path:
        return self.path / DONE_DIR

    def _marker(self, index: int) -> Path:
        return self._done_dir / f"{index:0{self._digits}d}"

    def done_mask(self) -> np.ndarray:
        """Boolean array ``[num_maps]``: which maps are computed (their marker exists).

        One directory listing, so cheap even for millions of maps.
        """
        mask = np.zeros(self.num_maps, dtype=bool)
        with os.scandir(self._done_dir) as entries:
            for entry in entries:
                if entry.name.isdigit():
                    index = int(entry.name)
                    if index < self.num_maps:
                        mask[index] = True
        return mask

    @property
    def num_done(self) -> int:
        """Number of computed maps."""
        return int(self.done_mask().sum())

    @property
    def is_complete(self) -> bool:
        """Whether every map is computed."""
        return bool(self.done_mask().all())

    # -- reading
    def __len__(self) -> int:
        return self.num_maps

    def _check_index(self, index: int) -> int:
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"index must be an int, got {type(index).__name__}")
        index = int(index)
        if not -self.num_maps <= index < self.num_maps:
            raise IndexError(f"index {index} out of range for a store of {self.num_maps} maps")
        return index % self.num_maps

    def __getitem__(self, index: int) -> torch.Tensor:
        """Coefficients of map ``index``: a tensor ``[N_out, C_out]`` of :attr:`dtype`.

        Raises:
            IndexError: ``index`` out of range.
            MapNotComputedError: the map has no completion marker yet.
            RuntimeError: the map is marked done but its chunk is missing or unreadable.
        """
        index = self._check_index(index)
        marker = self._marker(index)
        if not marker.exists():
            raise MapNotComputedError(
                f"map {index} of the store {self.path} is not computed "
                f"({self.num_done} of {self.num_maps} done); run precompute(...) on this "
                f"path with the same transform and maps to finish it"
            )
        try:
            values = np.asarray(self._array[index])
        except Exception as exc:
            raise RuntimeError(
                f"the chunk of map {index} in {self.path} cannot be read ({exc!r}); delete "
                f"its marker {marker} and rerun precompute to recompute it"
            ) from exc
        if not np.isfinite(values).all():
            # Stored maps are always finite; NaN is the fill value of a missing chunk.
            raise RuntimeError(
                f"the chunk of map {index} in {self.path} is missing or holds non-finite "
                f"values although the map is marked done; delete its marker {marker} and "
                f"rerun precompute to recompute it"
            )
        return torch.from_numpy(values)

    # -- writing (used by precompute)
    def _write(self, index: int, values: np.ndarray) -> None:
        """Write map ``index``'s chunk, then atomically its completion marker."""
        if self.read_only:
            raise PermissionError(f"the store {self.path} was opened read-only")
        self._array[index] = values  # returns once the chunk file is renamed into place
        self._mark_done(index)

    def _mark_done(self, index: int) -> None:
        final = self._marker(index)
        tmp = self._done_dir / f".{final.name}.{uuid.uuid4().hex}.tmp"
        try:
            with open(tmp, "x", encoding="ascii") as file:
                file.write(self.config_hash)
            os.replace(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(path={str(self.path)!r}, shape={self.shape}, "
            f"dtype={self._attrs['dtype']}, done={self.num_done}/{self.num_maps}, "
            f"config_hash={self.config_hash[:12]!r})"
        )


# --------------------------------------------------------------------------- creation


def _layout(
    config: Mapping[str, Any],
    num_maps: int,
    in_shape: tuple[int, int],
    out_shape: tuple[int, int],
    dtype: torch.dtype,
) -> dict[str, Any]:
    from deepsphere_pyg import __version__

    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": json.loads(_canonical_json(config)),
        "config_hash": config_hash(config),
        "num_maps": num_maps,
        "in_shape": list(in_shape),
        "out_shape": list(out_shape),
        "dtype": _STORAGE_DTYPES[dtype],
        "marker_digits": max(8, len(str(num_maps - 1))),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "library_version": __version__,
    }


def _check_layout(path: Path, stored: Mapping[str, Any], wanted: Mapping[str, Any]) -> None:
    if stored["config_hash"] != wanted["config_hash"]:
        old, new = stored.get("config", {}), wanted["config"]
        differ = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        raise ValueError(
            f"{path} holds coefficients of another transform configuration (stored config "
            f"hash {stored['config_hash']}, this transform's config hash "
            f"{wanted['config_hash']}; differing keys: {differ}); choose another path, or "
            f"pass overwrite=True to replace the store"
        )
    for key, what in (
        ("num_maps", "number of maps"),
        ("in_shape", "input map shape [N, C]"),
        ("out_shape", "output shape [N_out, C_out]"),
        ("dtype", "storage dtype"),
    ):
        if stored[key] != wanted[key]:
            raise ValueError(
                f"{path} was created for {what} {stored[key]}, got {wanted[key]}: a store "
                f"holds one data set; choose another path, or pass overwrite=True to "
                f"replace the store"
            )


def _is_empty_dir(path: Path) -> bool:
    return path.is_dir() and next(path.iterdir(), None) is None


def _remove_store(path: Path) -> None:
    """Delete the store at ``path`` (only if it is one, or an empty directory)."""
    if not path.exists():
        return
    if not path.is_dir():
        raise ValueError(f"{path} is a file; overwrite=True only replaces coefficient stores")
    if not _is_empty_dir(path):
        try:
            _read_attrs(path)
        except ValueError as exc:
            raise ValueError(
                f"overwrite=True only replaces coefficient stores, and {path} is a non-empty "
                f"directory that is not one; choose another path"
            ) from exc
    trash = path.with_name(f".{path.name}.removing-{uuid.uuid4().hex}")
    os.rename(path, trash)  # the path is free at once; the slow delete comes after
    shutil.rmtree(trash)


def _create_or_open(path: Path, layout: dict[str, Any], *, overwrite: bool) -> CoefficientStore:
    """Create the store at ``path`` (or open the existing one and check its layout).

    Creation is atomic: metadata is written to a temporary sibling directory that is then
    renamed onto ``path``. When several processes race, exactly one rename succeeds; the
    others discard their copy and open the winner's store.
    """
    if path.exists() and not path.is_dir():
        raise ValueError(
            f"path {path} is a file; a coefficient store is a directory: choose another path"
        )
    if overwrite:
        _remove_store(path)
    if path.is_dir() and not _is_empty_dir(path):
        _check_layout(path, _read_attrs(path), layout)
        return CoefficientStore.open(path, read_only=False)

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.creating-{uuid.uuid4().hex}")
    try:
        group = zarr.open_group(tmp, mode="w-")
        n_out, c_out = layout["out_shape"]
        group.create_array(
            ARRAY_NAME,
            shape=(layout["num_maps"], n_out, c_out),
            chunks=(1, n_out, c_out),
            dtype=layout["dtype"],
            fill_value=float("nan"),
            chunk_key_encoding={"name": "default", "separator": "."},
            dimension_names=("map", "node", "channel"),
        )
        group.attrs.update(layout)
        (tmp / DONE_DIR).mkdir()
        try:
            os.rename(tmp, path)  # atomic; replaces at most an empty directory
        except OSError:
            if not (path.is_dir() and not _is_empty_dir(path)):
                raise
            # Another process created the store first: use it.
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    _check_layout(path, _read_attrs(path), layout)
    return CoefficientStore.open(path, read_only=False)


# --------------------------------------------------------------------------- inputs


def _check_int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _resolve_rank(rank: int | None, world_size: int | None) -> tuple[int, int, bool]:
    """``(rank, world_size, use_dist)``; ``use_dist``: the split is torch.distributed's."""
    dist = torch.distributed
    dist_on = dist.is_available() and dist.is_initialized()
    if (rank is None) != (world_size is None):
        raise ValueError(
            f"give both rank and world_size or neither (got rank={rank}, "
            f"world_size={world_size}); with neither they come from torch.distributed or "
            f"the RANK/WORLD_SIZE environment variables"
        )
    if rank is None:
        if dist_on:
            rank, world_size = dist.get_rank(), dist.get_world_size()
        elif "RANK" in os.environ and "WORLD_SIZE" in os.environ:
            try:
                rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
            except ValueError as exc:
                raise ValueError(
                    f"environment variables RANK={os.environ['RANK']!r} and WORLD_SIZE="
                    f"{os.environ['WORLD_SIZE']!r} must be integers (or pass rank and "
                    f"world_size explicitly)"
                ) from exc
        else:
            rank, world_size = 0, 1
    world_size = _check_int(world_size, "world_size", 1)
    rank = _check_int(rank, "rank", 0)
    if rank >= world_size:
        raise ValueError(f"rank must be in [0, world_size={world_size}), got {rank}")
    use_dist = (
        dist_on
        and world_size > 1
        and (rank, world_size) == (dist.get_rank(), dist.get_world_size())
    )
    return rank, world_size, use_dist


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
    if bool((x == _HEALPY_UNSEEN).any()):
        raise ValueError(
            f"maps[{index}] contains healpy's UNSEEN value ({_HEALPY_UNSEEN}); use a "
            f"partial-sky graph (mask) that leaves those pixels out, or fill them"
        )


# --------------------------------------------------------------------------- progress


class _Progress:
    """tqdm when installed, else a line on stderr every ~10 %."""

    def __init__(self, total: int, initial: int, desc: str, enabled: bool):
        self.total, self.count, self.desc, self.enabled = total, initial, desc, enabled
        self._bar = None
        self._last_print = -1
        if not enabled:
            return
        try:
            from tqdm.auto import tqdm
        except ImportError:
            self._print()
        else:
            self._bar = tqdm(total=total, initial=initial, desc=desc, unit="map")

    def _print(self) -> None:
        step = self.count * 10 // max(self.total, 1)
        if step != self._last_print or self.count == self.total:
            self._last_print = step
            print(f"{self.desc}: {self.count}/{self.total} maps", file=sys.stderr, flush=True)

    def set(self, count: int) -> None:
        if count == self.count:
            return
        if self._bar is not None:
            self._bar.update(count - self.count)
        self.count = count
        if self.enabled and self._bar is None:
            self._print()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


# --------------------------------------------------------------------------- compute


def _compute(
    transform: CoefficientTransform,
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
    np_dtype = np.dtype(_STORAGE_DTYPES[store.dtype])
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
                f"the transform returned shape {list(out.shape)} for maps {batch}, but its "
                f"out_shape({in_shape[1]}) promises [{len(batch)}, {out_shape[0]}, "
                f"{out_shape[1]}]; fix the transform's out_shape()"
            )
        values = out.detach().cpu().numpy().astype(np_dtype, copy=False)
        for row, index in enumerate(batch):
            if not np.isfinite(values[row]).all():
                raise ValueError(
                    f"the transform produced NaN or infinite coefficients for maps[{index}]"
                    f" (in storage dtype {np_dtype}); check the map and the transform"
                )
            store._write(index, values[row])
            if on_done is not None:
                on_done(index)


_stop_event: Any = None  # set in each worker process by _init_worker


def _init_worker(stop_event: Any, num_threads: int) -> None:
    global _stop_event
    _stop_event = stop_event
    torch.set_num_threads(num_threads)


def _worker(
    transform: CoefficientTransform,
    maps: Sequence[Any],
    path: str,
    indices: list[int],
    batch_size: int,
) -> None:
    """Entry point of a spawned worker process."""
    store = CoefficientStore.open(path, read_only=False)
    _compute(transform, maps, store, indices, batch_size, should_stop=_stop_event.is_set)


def _run_workers(
    transform: CoefficientTransform,
    maps: Sequence[Any],
    store: CoefficientStore,
    indices: list[int],
    batch_size: int,
    num_workers: int,
    share: np.ndarray,
    progress: _Progress,
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
            pool.submit(
                _worker, transform, maps, str(store.path), indices[w::num_workers], batch_size
            )
            for w in range(num_workers)
            if indices[w::num_workers]
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
    transform: CoefficientTransform,
    maps: Sequence[Any],
    path: str | os.PathLike,
    *,
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
    (``(N_out, C_out) = transform.out_shape(C)``), computed in batches under
    :func:`torch.no_grad`. Maps already computed in the store are skipped, so rerunning
    after an interruption only computes the missing ones. Map ``i`` is computed by rank
    ``i % world_size``; ranks may run at the same time on one or several machines (shared
    file system).

    Args:
        transform: A :class:`CoefficientTransform`. If it is an ``nn.Module``, inputs are
            cast to the dtype and device of its first floating parameter or buffer.
        maps: Sequence (``len`` and integer indexing) of maps: tensors or arrays ``[N, C]``
            (``[N]`` is read as ``[N, 1]``), or objects with an attribute ``x`` (PyG
            ``Data``). All maps share one shape; none may hold NaN, inf or healpy's UNSEEN.
        path: Directory of the store (created, or reopened to resume).
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
        TypeError: ``transform`` lacks ``config``/``out_shape``, a map is not floating
            point, or an argument has the wrong type.
        ValueError: ``path`` is a file or holds a store of another configuration, number
            of maps, shape or dtype (the message names both config hashes); a map has the
            wrong shape or non-finite values (the message names its index); the transform
            output does not match ``out_shape``; bad ``batch_size``, ``rank``,
            ``world_size``, ``num_workers`` or ``dtype``.
    """
    for name in ("config", "out_shape"):
        if not callable(getattr(transform, name, None)):
            raise TypeError(
                f"transform must provide {name}() (see CoefficientTransform), got "
                f"{type(transform).__name__}"
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
    batch_size = _check_int(batch_size, "batch_size", 1)
    num_workers = _check_int(num_workers, "num_workers", 0)
    if dtype not in _STORAGE_DTYPES:
        raise ValueError(f"dtype must be one of {list(_STORAGE_DTYPES)}, got {dtype!r}")
    rank, world_size, use_dist = _resolve_rank(rank, world_size)
    num_maps = len(maps)
    if num_maps == 0:
        raise ValueError("maps is empty; there is nothing to precompute")
    if path.exists() and not path.is_dir():
        raise ValueError(
            f"path {path} is a file; a coefficient store is a directory: choose another path"
        )

    config = transform.config()
    if not isinstance(config, Mapping):
        raise TypeError(f"transform.config() must return a dict, got {type(config).__name__}")
    first = _load_map(maps, 0)
    _check_map(first, 0, tuple(first.shape))
    in_shape = (int(first.shape[0]), int(first.shape[1]))
    out_shape = tuple(transform.out_shape(in_shape[1]))
    if len(out_shape) != 2 or not all(
        isinstance(v, (int, np.integer)) and v > 0 for v in out_shape
    ):
        raise ValueError(
            f"transform.out_shape({in_shape[1]}) must be two positive ints (N_out, C_out), "
            f"got {out_shape}"
        )
    layout = _layout(config, num_maps, in_shape, (int(out_shape[0]), int(out_shape[1])), dtype)

    if use_dist:
        dist = torch.distributed
        # Rank 0 creates (or replaces) the store while the others wait; its error, if any,
        # is sent to every rank so that none is left waiting.
        error: list[str | None] = [None]
        store = None
        failure: Exception | None = None
        if rank == 0:
            try:
                store = _create_or_open(path, layout, overwrite=overwrite)
            except Exception as exc:
                failure, error[0] = exc, str(exc)
        dist.broadcast_object_list(error, src=0)
        if failure is not None:
            raise failure
        if error[0] is not None:
            raise ValueError(f"rank 0 could not create or open the store: {error[0]}")
        if store is None:
            _check_layout(path, _read_attrs(path), layout)
            store = CoefficientStore.open(path, read_only=False)
    else:
        if overwrite and world_size > 1:
            raise ValueError(
                "overwrite=True with several ranks needs an initialised torch.distributed "
                "process group (rank 0 replaces the store while the others wait); without "
                "one, delete the old store once before starting the ranks"
            )
        store = _create_or_open(path, layout, overwrite=overwrite)

    share = np.arange(rank, num_maps, world_size)
    done = store.done_mask()
    todo = [int(i) for i in share if not done[i]]
    desc = "precompute" if world_size == 1 else f"precompute (rank 0 of {world_size})"
    bar = _Progress(len(share), len(share) - len(todo), desc, progress and rank == 0)
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


# --------------------------------------------------------------------------- dataset


class CachedCoefficients(torch.utils.data.Dataset):
    """Dataset of stored coefficients (and targets) for training.

    ``dataset[i]`` is ``store[i]`` (``[N_out, C_out]``), or ``(store[i], y_i)`` when
    ``targets`` is given, or ``data_cls(x=store[i], y=y_i)`` when ``data_cls`` is given
    (e.g. ``torch_geometric.data.Data``, or a Data subclass that stacks ``x`` into
    ``[B, N_out, C_out]`` batches). With tensors or tuples, torch's default collate stacks a
    batch into ``[B, N_out, C_out]``.

    The store is opened lazily in each process, so the dataset works with
    ``DataLoader(num_workers > 0)``.

    Args:
        path: Store directory.
        targets: Optional per-map targets (sequence, array or tensor of length num_maps);
            ``y_i = torch.as_tensor(targets[i])``.
        data_cls: Optional class called as ``data_cls(x=..., y=...)`` (``y`` only with
            targets).
        require_complete: Refuse a store with missing maps (default ``True``).

    Raises:
        ValueError: not a store, an incomplete store (with ``require_complete``), or
            targets of the wrong length.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        targets: Sequence[Any] | np.ndarray | torch.Tensor | None = None,
        *,
        data_cls: Callable[..., Any] | None = None,
        require_complete: bool = True,
    ):
        self.path = Path(path)
        store = CoefficientStore.open(self.path)
        self._num_maps = store.num_maps
        if require_complete:
            missing = int((~store.done_mask()).sum())
            if missing:
                raise ValueError(
                    f"the store {self.path} misses {missing} of {store.num_maps} maps; finish "
                    f"it with precompute(...) or pass require_complete=False"
                )
        if targets is not None and len(targets) != self._num_maps:
            raise ValueError(
                f"targets has length {len(targets)}, the store holds {self._num_maps} maps"
            )
        self.targets = targets
        self.data_cls = data_cls
        self._store: CoefficientStore | None = store

    @property
    def store(self) -> CoefficientStore:
        """The opened store (opened again after pickling)."""
        if self._store is None:
            self._store = CoefficientStore.open(self.path)
        return self._store

    def __len__(self) -> int:
        return self._num_maps

    def __getitem__(self, index: int) -> Any:
        x = self.store[index]
        if self.targets is None:
            return x if self.data_cls is None else self.data_cls(x=x)
        y = torch.as_tensor(self.targets[index])
        return (x, y) if self.data_cls is None else self.data_cls(x=x, y=y)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_store"] = None
        return state

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r}, num_maps={self._num_maps})"
