r"""HEALPix maps from FITS, ``.npy`` or HealSparse files as the samples of a :class:`FileSource`.

**Inputs** (one kind per source, all at one ``nside``):

* HEALPix FITS files (:func:`healpy.write_map`, full sky or partial sky ``INDXSCHM =
  EXPLICIT``; the ``ORDERING`` header decides RING / NEST): one sample per file, its
  columns are the variables, named by ``TTYPEn`` (``TEMPERATURE``, ...) or ``"0"``, ...;
* one ``.npy`` array ``[M, 12 nside^2(, C)]`` (memory-mapped; ``ordering`` required):
  ``M`` samples, variables ``"0" .. "C-1"``;
* HealSparse maps (``.hsp`` / ``.hs``, FITS files with ``PIXTYPE = HEALSPARSE``, parquet
  data sets; the optional ``healsparse`` package): one sample per file, the fields of a
  record-array map or the one variable ``"value"``. A sample reads only the coverage
  pixels that hold nodes and the node pixels of them, never a full-sky array.

**Nodes**, in increasing NEST pixel order (:attr:`HealpixSource.pixels`, ``None`` = all
``12 nside^2`` pixels; the finest graph of :meth:`HealpixSource.hierarchy` has the same
``pixels``): the pixels of ``mask`` (a FITS mask file: nonzero, finite, not UNSEEN, by its
``ORDERING`` header; a HealSparse file: its valid pixels, a plain map's nonzero ones; a
``.npy`` file or an array: boolean / 0-1 map or pixel ids in ``mask_ordering``), else the
pixels observed in the **first** sample (all pixels of a full-sky map; the valid pixels
of a HealSparse map; the pixels of a partial-sky or UNSEEN / NaN-holed FITS / ``.npy``
map where some column is finite). Only the first file is read for this (a union would
read every file); a node that a later sample does not observe reads NaN there.

**Values.** :meth:`HealpixSource.read` gives ``[N, C]`` float32 in node order, NaN where
a value is NaN / inf / ``UNSEEN`` / missing, and never raises on missing values (the data
set makes NaN its node mask). The FITS / ``.npy`` readers and the ordering check
(``check_ordering``, first map, first column) are those of
:class:`~deepsphere_pyg.data.files.HealpixFileDataset`.

**Outputs** (:meth:`HealpixSource.write`, one file per sample): FITS / ``.npy`` input ->
``<name>_prediction.fits``, NEST, one float32 column per channel named after it, UNSEEN
outside the nodes: a full-sky map, or a partial-sky (explicit) file of the node pixels
when they are at most :data:`PARTIAL_FRACTION` of the sphere (``healpy.read_map`` reads
both as full maps); HealSparse input -> ``<name>_prediction.hsp`` (float32; a record
array with a field per channel when there are several), valid on the nodes only.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import healpy as hp
import numpy as np

from ...graphs import SphereHierarchy, healpix_hierarchy
from ...graphs.checks import pixels_from_mask
from ...io import atomic_path
from ..files import (
    check_map_ordering,
    check_ordering_name,
    fits_layout,
    is_unseen,
    open_npy_maps,
    read_fits_map,
    read_mask_file,
)
from .base import FileSource, file_stem

#: Suffixes of HealSparse maps (so are FITS files with ``PIXTYPE = HEALSPARSE`` and folders).
HEALSPARSE_SUFFIXES = (".hsp", ".hs", ".hsparquet", ".parquet", ".h5", ".hdf5")

#: Compression suffixes dropped from sample names (``map.fits.gz`` -> ``map``).

#: FITS outputs are partial-sky (explicit) when the nodes are at most this part of the sky.
PARTIAL_FRACTION = 0.25

HEALSPARSE_INSTALL = 'pip install "deepsphere-pyg[files]"'


class HealpixSource(FileSource):
    r"""HEALPix maps (FITS, ``.npy``, HealSparse) as samples on HEALPix pixels (module doc).

    Args:
        paths: the files (:func:`~deepsphere_pyg.data.sources.base.expand_paths`): FITS
            files, one ``.npy`` file, or HealSparse files.
        ordering: ``"ring"`` or ``"nest"``: required for ``.npy`` input and FITS files
            without ``ORDERING`` keyword, else checked against the headers; HealSparse
            maps are NEST (``"ring"`` is refused).
        mask: the nodes: a FITS / HealSparse / ``.npy`` mask file or an array (module
            doc); ``None``: the pixels observed in the first sample.
        mask_ordering: ``"nest"`` or ``"ring"``, the ordering of a ``.npy`` / array mask
            (``None``: NEST, checked); FITS and HealSparse masks carry their own.
        check_ordering: check the first FITS / ``.npy`` map's and an unnamed-ordering
            array mask's ordering (RING vs NEST mix-ups).

    Attributes:
        nside: the maps' resolution.
        pixels: ``[N]`` NEST pixel ids of the nodes (increasing), ``None`` on the full sky.
        kind: ``"fits"``, ``"npy"`` or ``"healsparse"``.

    Raises:
        FileNotFoundError: a missing file. ImportError: HealSparse without ``healsparse``.
        ValueError: no path; kinds mixed or several ``.npy`` files; files of different
            ``nside`` (naming both); bad orderings; a bad mask (named); no observed pixel.

    Example:
        >>> import healpy as hp, numpy as np, tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "maps.npy")
        >>> np.save(path, np.zeros((4, hp.nside2npix(8), 2), dtype=np.float32))
        >>> source = HealpixSource([path], ordering="nest")
        >>> source.num_samples, source.variables, source.read(0, ["1"]).shape
        (4, ('0', '1'), (768, 1))
    """

    name = "healpix"
    options: ClassVar[dict[str, Any]] = {"ordering": None, "mask": None,
                                         "mask_ordering": None, "check_ordering": True}

    def __init__(self, paths: list[Path], *, ordering: str | None = None,
                 mask: object = None, mask_ordering: str | None = None,
                 check_ordering: bool = True) -> None:
        items = [paths] if isinstance(paths, (str, os.PathLike)) else paths
        self.paths = [Path(path) for path in items]
        if not self.paths:
            raise ValueError("data.path names no file: give HEALPix FITS files, one .npy "
                             "file or HealSparse files")
        missing = [path for path in self.paths if not path.exists()]
        if missing:
            raise FileNotFoundError(f"HEALPix map file not found: {missing[0]}")
        self.ordering = check_ordering_name(ordering)
        self.check_ordering = bool(check_ordering)
        kinds = [_kind(path) for path in self.paths]
        self.kind = kinds[0]
        if len(set(kinds)) > 1:
            other = self.paths[next(i for i, k in enumerate(kinds) if k != kinds[0])]
            raise ValueError(f"give one .npy file, HEALPix FITS maps or HealSparse maps, not "
                             f"several kinds ({self.paths[0]} is {kinds[0]}, {other} is not)")
        self._ring_index: np.ndarray | None = None
        self._cov_cache: dict[int, np.ndarray] = {}
        if self.kind == "healsparse":
            self._init_healsparse()
        else:
            self._init_maps()
        self.npix = hp.nside2npix(self.nside)

        first = None  # the first map [npix, C] in its ordering, when it is needed
        if self.kind != "healsparse" and (mask is None or self.check_ordering):
            first = self._raw(0, tuple(range(len(self._columns[0]))))
        pixels, self._node_source = (self._observed_first(first) if mask is None
                                     else self._mask_pixels(mask, mask_ordering))
        self.pixels = None if pixels.size == self.npix else pixels
        if first is not None and self.check_ordering:
            check_map_ordering(first[:, 0], self._is_nest(0),
                               observed=self._observed_raw(self._is_nest(0)),
                               name=self.source(0))
        self._names = _unique(
            [f"{file_stem(self.paths[0])}_{i}" for i in range(self.num_samples)]
            if self.kind == "npy" else [file_stem(path) for path in self.paths])

    # ------------------------------------------------------------------ set-up
    def _init_maps(self) -> None:
        """FITS files or one ``.npy`` array: layout, orderings and columns."""
        if self.kind == "npy":
            self._array, self.nside = open_npy_maps(self.paths, self.ordering)
            channels = 1 if self._array.ndim == 2 else int(self._array.shape[2])
            self._nest = [bool(self.ordering)]
            self._explicit = [False]
            self._columns = [tuple(str(c) for c in range(channels))]
        else:
            self._array = None
            self._nest, self._explicit, self.nside = fits_layout(self.paths, 0,
                                                                 self.ordering)
            self._columns = [_fits_columns(path, explicit)
                             for path, explicit in zip(self.paths, self._explicit, strict=True)]
        self.variables = self._columns[0]

    def _init_healsparse(self) -> None:
        """HealSparse files: the common ``nside``, the coverage resolution and the fields."""
        healsparse = _healsparse()
        if self.ordering is False:
            raise ValueError(f"{self.paths[0]}: HealSparse maps are NEST ordered; drop "
                             "ordering='ring'")
        self.nside = None
        # Each file's coverage (covered coarse pixels, bit shift), read once: a sample
        # read then reads only the coverage pixels that hold nodes.
        self._coverages: list[tuple[np.ndarray, int]] = []
        for path in self.paths:
            coverage = _read_healsparse(healsparse, path, coverage=True)
            self._coverages.append((np.asarray(coverage.coverage_mask, dtype=bool),
                                    int(coverage.bit_shift)))
            if self.nside is None:
                self.nside, first = int(coverage.nside_sparse), coverage
            elif coverage.nside_sparse != self.nside:
                raise ValueError(
                    f"{path} is a HealSparse map at nside {coverage.nside_sparse} but "
                    f"{self.paths[0]} one at nside {self.nside}; give maps of one "
                    "resolution (HealSparseMap.degrade, healpy.ud_grade)")
        self._nside_coverage = int(first.nside_coverage)
        covered = np.flatnonzero(first.coverage_mask)
        sample = _read_healsparse(healsparse, self.paths[0], covered[:1] if covered.size
                                  else None)
        self.variables = _healsparse_fields(sample, self.paths[0])

    def _observed_first(self, first: np.ndarray | None) -> tuple[np.ndarray, str]:
        """The pixels observed in the first sample, and their name in messages."""
        source = f"the observed pixels of {self.source(0)}"
        if self.kind == "healsparse":
            sample = _read_healsparse(_healsparse(), self.paths[0], None)
            pixels = np.unique(np.asarray(sample.valid_pixels, dtype=np.int64))
        else:
            valid = (np.isfinite(first) & ~is_unseen(first)).any(axis=1)
            if valid.all():
                return np.arange(self.npix), source
            pixels = np.flatnonzero(valid)
            if not self._is_nest(0):
                pixels = np.sort(hp.ring2nest(self.nside, pixels))
        if pixels.size == 0:
            raise ValueError(f"{self.source(0)} observes no pixel (all values UNSEEN, NaN or "
                             "missing); give a mask (data.mask) or another first file")
        return pixels.astype(np.int64), source

    def _mask_pixels(self, mask: object, mask_ordering: str | None
                     ) -> tuple[np.ndarray, str]:
        """The pixels of ``mask``, and its name in messages."""
        if isinstance(mask, (str, os.PathLike)):
            path = Path(mask)
            source = f"mask {path}"
            if not path.exists():
                raise FileNotFoundError(f"mask file not found: {path}")
            kind = _kind(path)
            if kind == "npy":
                array = np.load(path)
                if mask_ordering is None:
                    # An array records no ordering, and at low nside the structural check
                    # cannot always tell a RING galactic cut from a NEST footprint.
                    raise ValueError(f"{source}: a .npy mask (a map or pixel ids) does not "
                                     "record its HEALPix ordering; set data.mask_ordering to "
                                     "'ring' (healpy's default) or 'nest'")
            elif mask_ordering is not None:
                raise ValueError(f"{source}: mask_ordering={mask_ordering!r} applies to .npy "
                                 "and array masks; a FITS or HealSparse mask file gives its "
                                 "own ordering (drop mask_ordering)")
            elif kind == "fits":
                array, mask_ordering = read_mask_file(path), "nest"
            else:
                array, mask_ordering = _healsparse_mask(path, self.nside), "nest"
        else:
            source = "mask"
            array = mask.detach().cpu().numpy() if hasattr(mask, "detach") else mask
        try:
            pixels = pixels_from_mask(np.asarray(array), self.nside, True,
                                      self.check_ordering, mask_ordering)
        except (TypeError, ValueError) as error:
            raise type(error)(f"{source} (maps at nside {self.nside}): {error}") from error
        return pixels, source

    # ------------------------------------------------------------------ access
    @property
    def num_samples(self) -> int:
        """Number of samples ``M``: files, or maps of the ``.npy`` array."""
        return int(self._array.shape[0]) if self.kind == "npy" else len(self.paths)

    @property
    def keys(self) -> np.ndarray:
        """``[M]`` the integers ``0 .. M-1``."""
        return np.arange(self.num_samples)

    @property
    def names(self) -> list[str]:
        """``M`` unique names: file stems (``.npy``: ``<stem>_<i>``), ``_1``, ``_2``, ...
        appended to repeated stems."""
        return list(self._names)

    @property
    def num_nodes(self) -> int:
        """Nodes ``N``: the kept pixels (``12 nside^2`` on the full sky)."""
        return self.npix if self.pixels is None else int(self.pixels.size)

    def source(self, index: int) -> str:
        """Sample ``index`` in messages: its file (with the map's row for ``.npy``)."""
        return f"{self.paths[0]} (map {index})" if self.kind == "npy" else str(self.paths[index])

    def check_variables(self, variables: Sequence[str] | str, key: str) -> list[str]:
        """``variables`` as names of :attr:`variables`; a column index (``"0"``, ``1``)
        that is not itself a name stands for that column's name.

        Raises:
            ValueError: an unknown variable (named with ``key`` and the known ones).
        """
        if isinstance(variables, (str, int)):
            variables = [variables]
        chosen = []
        for variable in variables:
            text = str(variable)
            if text not in self.variables and text.isdigit() and \
                    int(text) < len(self.variables):
                text = self.variables[int(text)]
            chosen.append(text)
        return super().check_variables(chosen, key)

    def read(self, index: int, variables: Sequence[str]) -> np.ndarray:
        """The values ``[N, len(variables)]`` (float32, NEST node order) of ``variables``
        (names or column indices) in sample ``index``; NaN where a value is NaN, inf,
        ``healpy.UNSEEN`` or missing.

        Raises:
            ValueError: an unknown variable, or one that this sample's file lacks.
            IndexError: ``index`` out of range.
        """
        index = self.check_index(index)
        names = self.check_variables(variables, "variables")
        if self.kind == "healsparse":
            values = self._read_healsparse_values(index, names)
        else:
            fields = [self._field(index, name) for name in names]
            unique, inverse = np.unique(fields, return_inverse=True)
            raw = self._raw(index, tuple(int(f) for f in unique))
            values = self._gather(raw, self._is_nest(index))[:, inverse.reshape(-1)]
        values = np.array(values, dtype=np.float64, copy=True)
        values[~np.isfinite(values) | is_unseen(values)] = np.nan
        return np.ascontiguousarray(values, dtype=np.float32)

    def hierarchy(self, levels: int, *, k: int | Sequence[int] = 8,
                  edges: str | None = None, kernel: str | float | None = None
                  ) -> SphereHierarchy:
        """:func:`~deepsphere_pyg.graphs.healpix_hierarchy` at :attr:`nside` on the node
        pixels (the finest graph's ``pixels`` are :attr:`pixels`); ``edges`` / ``kernel``
        ``None``: its defaults.

        Raises:
            ValueError: the builder's errors (isolated pixels, bad ``k``), prefixed by
                where the nodes come from (the mask file or the first sample's file).
        """
        kwargs = {key: value for key, value in (("edges", edges), ("kernel", kernel))
                  if value is not None}
        if self.pixels is None:
            return healpix_hierarchy(self.nside, levels, k=k, **kwargs)
        try:
            return healpix_hierarchy(self.nside, levels, k=k, mask=self.pixels,
                                     mask_ordering="nest", **kwargs)
        except ValueError as error:
            raise ValueError(f"{self._node_source} (nside {self.nside}): {error} (here: "
                             "give data.mask without these pixels)") from error

    def write(self, values: np.ndarray, indices: Sequence[int], channels: Sequence[str],
              folder: Path) -> list[Path]:
        """Write ``values`` ``[S, N, C]`` (node order) of samples ``indices`` as
        ``<name>_prediction.fits`` (FITS / ``.npy`` input) or ``<name>_prediction.hsp``
        (HealSparse input) in ``folder``, atomically; one column / field per channel
        (module doc).

        Returns:
            The ``S`` files written.

        Raises:
            ValueError: ``values`` not ``[len(indices), N, len(channels)]``, or repeated
                channel names.
        """
        values = np.asarray(values, dtype=np.float32)
        channels = [str(channel) for channel in channels]
        indices = [self.check_index(index) for index in indices]
        expected = (len(indices), self.num_nodes, len(channels))
        if values.shape != expected:
            raise ValueError(f"values must be [samples, nodes, channels] = {list(expected)}, "
                             f"got shape {list(values.shape)}")
        if not channels or len(set(channels)) != len(channels):
            raise ValueError(f"channels must be distinct names, got {channels}")
        hsp = self.kind == "healsparse"
        writer, suffix = (self._write_healsparse, ".hsp") if hsp else (self._write_fits, ".fits")
        written = []
        for sample, index in zip(values, indices, strict=True):
            written.append(Path(folder) / f"{self._names[index]}_prediction{suffix}")
            writer(written[-1], sample, channels)
        return written

    # ----------------------------------------------------------------- reading
    def _is_nest(self, index: int) -> bool:  # whether a FITS / .npy sample is NEST
        return self._nest[0 if self.kind == "npy" else index]

    def _field(self, index: int, name: str) -> int:
        """Column of variable ``name`` in sample ``index``'s file."""
        columns = self._columns[0 if self.kind == "npy" else index]
        if name in columns:
            return columns.index(name)
        raise ValueError(f"{self.source(index)} has no column {name!r} (its columns: "
                         f"{list(columns)}); give files with the same columns")

    def _raw(self, index: int, fields: tuple[int, ...]) -> np.ndarray:
        """Columns ``fields`` of FITS / ``.npy`` sample ``index``: ``[npix, len(fields)]``
        float64 in the stored ordering."""
        if self.kind == "npy":
            row = self._array[index]
            row = row.reshape(row.shape[0], -1)
            return np.asarray(row[:, list(fields)], dtype=np.float64)
        values = read_fits_map(self.paths[index], fields, self._explicit[index], self.nside)
        return values.reshape(values.shape[0], -1)

    def _node_ids(self) -> np.ndarray:
        """``[N]`` NEST ids of the nodes."""
        return np.arange(self.npix) if self.pixels is None else self.pixels

    def _gather(self, raw: np.ndarray, nest: bool) -> np.ndarray:
        """The nodes' rows of a raw ``[npix, C]`` map, in NEST node order."""
        if nest:
            return raw if self.pixels is None else raw[self.pixels]
        if self._ring_index is None:
            self._ring_index = hp.nest2ring(self.nside, self._node_ids())
        return raw[self._ring_index]

    def _observed_raw(self, nest: bool) -> np.ndarray | None:
        """Boolean ``[npix]`` nodes in a raw ordering (``None``: all pixels)."""
        if self.pixels is None:
            return None
        observed = np.zeros(self.npix, dtype=bool)
        observed[self.pixels if nest else hp.nest2ring(self.nside, self.pixels)] = True
        return observed

    def _read_healsparse_values(self, index: int, names: list[str]) -> np.ndarray:
        """``[N, len(names)]`` float64 of HealSparse sample ``index``, NaN where invalid;
        only the coverage pixels that hold nodes are read."""
        healsparse = _healsparse()
        path = self.paths[index]
        out = np.full((self.num_nodes, len(names)), np.nan)
        covered, shift = self._coverages[index]
        if shift not in self._cov_cache:
            self._cov_cache[shift] = np.unique(self._node_ids() >> shift)
        wanted = self._cov_cache[shift]
        wanted = wanted[covered[wanted]]
        if wanted.size == 0:
            return out  # no node in this map's coverage
        sample = _read_healsparse(healsparse, path, wanted)
        fields = _healsparse_fields(sample, path)
        for name in names:
            if name not in fields:
                raise ValueError(f"{path} has no field {name!r} (its fields: "
                                 f"{list(fields)}); give maps with the same fields")
        nodes = self._node_ids()
        values = sample.get_values_pix(nodes, nest=True)
        for column, name in enumerate(names):
            out[:, column] = values[name] if sample.is_rec_array else values
        out[~np.asarray(sample.get_values_pix(nodes, nest=True, valid_mask=True))] = np.nan
        return out

    # ----------------------------------------------------------------- writing
    def _write_fits(self, target: Path, sample: np.ndarray, channels: list[str]) -> None:
        """One NEST FITS file, full sky (UNSEEN outside the nodes) or partial sky."""
        partial = self.pixels is not None and self.pixels.size <= PARTIAL_FRACTION * self.npix
        with atomic_path(target, ".fits") as tmp:
            if partial:
                _write_explicit_fits(tmp, self.pixels, sample, channels, self.nside)
            else:
                maps = np.full((len(channels), self.npix), hp.UNSEEN, dtype=np.float32)
                maps[:, self._node_ids()] = sample.T
                hp.write_map(tmp, list(maps), nest=True, dtype=np.float32,
                             column_names=channels, overwrite=True)

    def _write_healsparse(self, target: Path, sample: np.ndarray, channels: list[str]
                          ) -> None:
        """One HealSparse file, valid on the nodes only."""
        healsparse = _healsparse()
        nodes = self._node_ids()
        plain = len(channels) == 1
        dtype = np.dtype(np.float32 if plain else [(channel, "f4") for channel in channels])
        out = healsparse.HealSparseMap.make_empty(
            min(self._nside_coverage, self.nside), self.nside, dtype,
            primary=None if plain else channels[0])
        records = sample[:, 0] if plain else np.zeros(nodes.size, dtype=dtype)
        for column, channel in enumerate([] if plain else channels):
            records[channel] = sample[:, column]
        out.update_values_pix(nodes, records, check_unique=False)
        with atomic_path(target, ".hsp") as tmp:
            out.write(os.fspath(tmp), clobber=True)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.kind}, samples={self.num_samples}, "
                f"nside={self.nside}, num_nodes={self.num_nodes}, "
                f"variables={list(self.variables)})")


# --------------------------------------------------------------------------- helpers
def _healsparse() -> Any:
    """The ``healsparse`` module, imported on first use (an optional dependency)."""
    try:
        import healsparse
    except ImportError as error:
        raise ImportError("reading and writing HealSparse maps needs the healsparse "
                          f"package: {HEALSPARSE_INSTALL}") from error
    return healsparse


def _kind(path: Path) -> str:
    """``"npy"``, ``"healsparse"`` or ``"fits"`` (also files the FITS reader refuses)."""
    if path.is_dir():
        return "healsparse"  # a parquet data set
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return "npy"
    if suffix in HEALSPARSE_SUFFIXES:
        return "healsparse"
    from astropy.io import fits

    try:
        with fits.open(path, memmap=True) as hdus:
            pixtype = str(hdus[0].header.get("PIXTYPE", "")).strip().upper()
    except (OSError, ValueError):
        return "fits"
    return "healsparse" if pixtype == "HEALSPARSE" else "fits"


def _fits_columns(path: Path, explicit: bool) -> tuple[str, ...]:
    """Names (``TTYPEn``; the index where a column has none) of a HEALPix FITS file's map
    columns (without the ``PIXEL`` column of a partial-sky file)."""
    from astropy.io import fits

    with fits.open(path, memmap=True) as hdus:
        header = hdus[1].header
    first = 2 if explicit else 1
    count = int(header.get("TFIELDS", 0)) - first + 1
    return tuple(str(header.get(f"TTYPE{first + i}", i)).strip() or str(i)
                 for i in range(count))


#: What healsparse raises for a file it cannot read (its NotImplementedError for an
#: unknown format is a RuntimeError).
HEALSPARSE_ERRORS = (OSError, RuntimeError, ValueError, KeyError)


def _read_healsparse(healsparse: Any, path: Path, pixels: np.ndarray | None = None, *,
                     coverage: bool = False) -> Any:
    """The HealSparse map of ``path`` on coverage pixels ``pixels`` (``None``: all), or
    only its coverage (``coverage=True``).

    Raises:
        ValueError: naming the file, for anything healsparse cannot read.
    """
    try:
        if coverage:
            return healsparse.HealSparseCoverage.read(os.fspath(path))
        return healsparse.HealSparseMap.read(
            os.fspath(path), pixels=None if pixels is None else np.asarray(pixels).tolist())
    except HEALSPARSE_ERRORS as error:
        raise ValueError(f"{path} cannot be read as a HealSparse map ({error}); give files "
                         "written by HealSparseMap.write") from error


def _healsparse_fields(sample: Any, path: Path) -> tuple[str, ...]:
    """Variables of a HealSparse map: its record fields, or ``("value",)``."""
    if sample.is_wide_mask_map:
        raise ValueError(f"{path} is a wide-mask HealSparse map (bit flags); give maps of "
                         "numbers (plain or record arrays)")
    return tuple(sample.dtype.names) if sample.is_rec_array else ("value",)


def _healsparse_mask(path: Path, nside: int) -> np.ndarray:
    """NEST pixel ids of a HealSparse mask: its valid pixels (a plain map's nonzero ones)."""
    mask = _read_healsparse(_healsparse(), path, None)
    if mask.nside_sparse != nside:
        raise ValueError(f"mask {path} is a HealSparse map at nside {mask.nside_sparse} but "
                         f"the maps are at nside {nside}; give a mask at nside {nside} "
                         "(HealSparseMap.degrade / upgrade, healpy.ud_grade)")
    pixels = np.asarray(mask.valid_pixels, dtype=np.int64)
    if not mask.is_rec_array and not mask.is_wide_mask_map:
        values = np.asarray(mask.get_values_pix(pixels, nest=True), dtype=np.float64)
        pixels = pixels[np.isfinite(values) & (values != 0) & ~is_unseen(values)]
    return np.unique(pixels)


def _write_explicit_fits(path: Path, pixels: np.ndarray, values: np.ndarray,
                         channels: list[str], nside: int) -> None:
    """A partial-sky (``INDXSCHM = EXPLICIT``) NEST HEALPix FITS file: a ``PIXEL`` column
    and one float32 column per channel, as :func:`healpy.write_map` with ``partial=True``
    writes it."""
    from astropy.io import fits

    npix = hp.nside2npix(nside)
    columns = [fits.Column(name="PIXEL", format="J" if npix < 2**31 else "K", array=pixels)]
    columns += [fits.Column(name=channel, format="E", array=values[:, column])
                for column, channel in enumerate(channels)]
    table = fits.BinTableHDU.from_columns(columns)
    table.header.extend([("PIXTYPE", "HEALPIX"), ("ORDERING", "NESTED"),
                         ("EXTNAME", "xtension"), ("NSIDE", nside),
                         ("INDXSCHM", "EXPLICIT"), ("OBJECT", "PARTIAL")])
    fits.HDUList([fits.PrimaryHDU(), table]).writeto(path, overwrite=True)


def _unique(names: list[str]) -> list[str]:
    """``names`` with ``_1``, ``_2``, ... appended to repeats, so that all differ."""
    seen: set[str] = set()
    out = []
    for name in names:
        candidate, count = name, 0
        while candidate in seen:
            count += 1
            candidate = f"{name}_{count}"
        seen.add(candidate)
        out.append(candidate)
    return out
