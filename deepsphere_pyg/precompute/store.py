"""On-disk store of precomputed features: one zarr chunk and one completion marker per sample.

:class:`CoefficientStore` holds the output ``[num_maps, N_out, C_out]`` of a fixed transform
over a data set; :func:`~deepsphere_pyg.precompute.precompute` creates and fills it.

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
Writing one map's chunk and reading it back cost a negligible time next to a scattering
transform (measured with zarr on a local disk: ``BENCHMARKS.md``, "Costs behind the
library's defaults"). Sharded zarr arrays (many chunks per file) are deliberately not used:
two processes updating one shard would race.
"""

from __future__ import annotations

import copy
import datetime
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import zarr

__all__ = [
    "ARRAY_NAME",
    "DONE_DIR",
    "FORMAT",
    "FORMAT_VERSION",
    "STORAGE_DTYPES",
    "CoefficientStore",
    "MapNotComputedError",
    "check_layout",
    "config_hash",
    "create_or_open",
    "read_attrs",
    "store_layout",
]

FORMAT = "deepsphere_pyg.coefficient_store"
FORMAT_VERSION = 1
ARRAY_NAME = "coefficients"
DONE_DIR = "done"

STORAGE_DTYPES: dict[torch.dtype, str] = {
    torch.float16: "float16",
    torch.float32: "float32",
    torch.float64: "float64",
}
_TORCH_DTYPES = {name: dtype for dtype, name in STORAGE_DTYPES.items()}


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


def read_attrs(path: Path) -> dict[str, Any]:
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
        attrs = read_attrs(path)
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

    # -- writing
    def write(self, index: int, values: np.ndarray) -> None:
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


def store_layout(
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
        "dtype": STORAGE_DTYPES[dtype],
        "marker_digits": max(8, len(str(num_maps - 1))),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "library_version": __version__,
    }


def check_layout(path: Path, stored: Mapping[str, Any], wanted: Mapping[str, Any]) -> None:
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
            read_attrs(path)
        except ValueError as exc:
            raise ValueError(
                f"overwrite=True only replaces coefficient stores, and {path} is a non-empty "
                f"directory that is not one; choose another path"
            ) from exc
    trash = path.with_name(f".{path.name}.removing-{uuid.uuid4().hex}")
    os.rename(path, trash)  # the path is free at once; the slow delete comes after
    shutil.rmtree(trash)


def create_or_open(path: Path, layout: dict[str, Any], *, overwrite: bool) -> CoefficientStore:
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
        check_layout(path, read_attrs(path), layout)
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
    check_layout(path, read_attrs(path), layout)
    return CoefficientStore.open(path, read_only=False)
