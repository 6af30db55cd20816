r"""HEALPix maps from files: FITS maps (one per file) or a memory-mapped ``.npy`` array.

**Formats.** FITS files are HEALPix binary tables as written by :func:`healpy.write_map`
(one map per file; ``field`` picks the column or columns); the header's ``ORDERING``
keyword (``RING`` or ``NESTED``) says how the pixels are ordered, and partial-sky files
(``INDXSCHM = EXPLICIT``) are read with their missing pixels as ``UNSEEN``. A ``.npy`` file
holds ``[M, 12 nside^2]`` (one channel) or ``[M, 12 nside^2, C]`` maps (``[12 nside^2]``:
one map); it records no ordering, so ``ordering`` is required, and it is memory-mapped:
only the maps that are read are loaded.

**Ordering.** Every map is converted to NEST (the library's node order) once, when it is
read: pixel ``p`` of a sample is raw pixel ``p`` (NEST data) or ``nest2ring(p)`` (RING
data), gathered in one indexing step; only the observed pixels are gathered. An
explicit ``ordering`` that contradicts a FITS header raises, and so does a map that looks
far smoother in the other ordering (``check_ordering``; see :func:`check_map_ordering`).

**Observed pixels.** ``mask`` (NEST, ``True`` = observed; or a FITS mask file) selects
the pixels that enter the samples and the graphs (:meth:`HealpixFileDataset.hierarchy`);
NaN or ``healpy.UNSEEN`` values are allowed only outside it, an error names the file
and the count otherwise.
"""

from __future__ import annotations

import math
import numbers
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import healpy as hp
import numpy as np
import torch

from ..graphs import SphereHierarchy
from ..graphs.checks import ORDERING_RATIO, ordering_roughness, pixels_from_mask
from .base import check_index
from .signal import SphereSignal

#: Accepted ``ordering`` values (case-insensitive) and whether they mean NEST.
ORDERINGS = {"ring": False, "nest": True, "nested": True}

#: Relative tolerance of the ``healpy.UNSEEN`` test (float32 files store it rounded).
UNSEEN_RTOL = 1e-5

PathLike = str | os.PathLike


class HealpixFileDataset(torch.utils.data.Dataset):
    r"""HEALPix maps read from FITS files or a ``.npy`` array, as NEST samples (module doc).

    **Samples.** :class:`SphereSignal` with ``x`` ``[N, C]`` float32 (``N`` observed
    pixels in NEST order: all ``12 nside^2`` pixels without ``mask``), and

    * ``y``: graph-level targets ``[M]`` give a scalar per sample (LongTensor for integer
      targets, float32 otherwise), ``[M, T]`` targets give ``[1, T]`` (so a batch is
      ``[B, T]``);
    * ``y_node``: per-pixel targets ``[M, 12 nside^2]`` or ``[M, 12 nside^2, T]`` (in the
      maps' ``ordering``, converted like the maps) give ``[N]`` or ``[N, T]``.

    Args:
        paths: a ``.npy`` file, or one or more FITS files (one map each).
        ordering: ``"ring"`` or ``"nest"``: required for ``.npy`` input and for FITS files
            without an ``ORDERING`` keyword; for other FITS files it must agree with the
            header. Per-pixel ``targets`` are in this ordering (so they need it).
        targets: ``None``, an array (or a ``.npy`` path, memory-mapped) with one entry
            per map: ``[M]`` / ``[M, T]`` graph-level or ``[M, 12 nside^2(, T)]`` per-pixel.
        mask: ``None`` (full sky), a NEST map of length ``12 nside^2`` (boolean or 0/1,
            ``True`` = observed), NEST pixel ids, or a FITS mask file (read converted to
            NEST; nonzero = observed).
        mask_ordering: the ordering of an array ``mask``, ``"nest"`` or ``"ring"``
            (converted to NEST); ``None`` (default): NEST, checked (``check_ordering``).
            Masks bounded by parallels made in RING order (a galactic cut in galactic
            coordinates) cannot be told from NEST masks and need it.
        num_classes: if given, targets are class labels that must be integers in
            ``[0, num_classes)`` (checked at construction for graph-level targets, when
            read and by :meth:`validate` for per-pixel ones, on observed pixels).
        field: FITS column(s) to read, an int or a sequence of ints (channels).
        check_ordering: run :func:`check_map_ordering` on the first map (and the mask
            check of :func:`~deepsphere_pyg.graphs.healpix_graph`).
        transform: optional callable applied to each sample when read.

    Raises:
        FileNotFoundError: a path that does not exist.
        ValueError: no path; ``.npy`` mixed with other files or several ``.npy`` files;
            a missing or unknown ordering; an ordering that contradicts a FITS header or
            the map's structure; maps whose length is not ``12 nside^2`` or differs between
            files; targets of the wrong length or out of ``[0, num_classes)``; a bad mask;
            ``num_classes < 1``;
            NaN/UNSEEN values on observed pixels (when read, or by :meth:`validate`).
        TypeError: ``paths``, ``field`` or ``num_classes`` of the wrong type; float
            targets with ``num_classes``.

    Example:
        >>> import healpy as hp, numpy as np, tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "maps.npy")
        >>> np.save(path, np.zeros((4, hp.nside2npix(8)), dtype=np.float32))
        >>> ds = HealpixFileDataset(path, ordering="ring", targets=[0, 1, 0, 1])
        >>> ds[0]
        SphereSignal(x=[768, 1], y=0, num_nodes=768)
    """

    def __init__(
        self,
        paths: PathLike | Sequence[PathLike],
        *,
        ordering: str | None = None,
        targets: np.ndarray | Sequence[Any] | PathLike | None = None,
        mask: np.ndarray | torch.Tensor | PathLike | None = None,
        num_classes: int | None = None,
        field: int | Sequence[int] = 0,
        check_ordering: bool = True,
        transform: Callable[[SphereSignal], SphereSignal] | None = None,
        mask_ordering: str | None = None,
    ) -> None:
        self.paths = _check_paths(paths)
        self.ordering = check_ordering_name(ordering)
        self.field = _check_field(field)
        if num_classes is not None:
            if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral):
                raise TypeError(f"num_classes must be None or an integer, got {num_classes!r}")
            if num_classes < 1:
                raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = None if num_classes is None else int(num_classes)
        if transform is not None and not callable(transform):
            raise TypeError(f"transform must be callable or None, got {transform!r}")
        self.transform = transform
        self.check_ordering = bool(check_ordering)

        self.is_npy = self.paths[0].suffix.lower() == ".npy"
        if self.is_npy:
            self._init_npy()
        else:
            self._init_fits()
        self.npix = hp.nside2npix(self.nside)
        self.pixels = self._init_mask(mask, mask_ordering)
        self._ring_index = hp.nest2ring(
            self.nside, np.arange(self.npix) if self.pixels is None else self.pixels)
        self._init_targets(targets)
        if self.check_ordering:
            raw, nest, source = self._read_raw(0)
            check_map_ordering(raw.reshape(self.npix, -1)[:, 0], nest,
                               observed=self._observed_raw(nest), name=source)

    # ------------------------------------------------------------------ set-up
    def _init_npy(self) -> None:
        self.array, self.nside = open_npy_maps(self.paths, self.ordering)
        array = self.array
        self.num_channels = 1 if array.ndim == 2 else int(array.shape[2])
        self._nest = [self.ordering] * int(array.shape[0])
        self._explicit = [False] * int(array.shape[0])

    def _init_fits(self) -> None:
        self.array = None
        self._nest, self._explicit, self.nside = fits_layout(self.paths, self.field,
                                                             self.ordering)
        self.num_channels = len(self.field) if isinstance(self.field, tuple) else 1

    def _init_mask(self, mask: object, ordering: str | None) -> np.ndarray | None:
        if mask is None:
            return None
        if isinstance(mask, (str, os.PathLike)):
            ordering = "nest"  # read_map converts by the file's ORDERING header
            mask = read_mask_file(mask)
        elif isinstance(mask, torch.Tensor):
            mask = mask.detach().cpu().numpy()
        pixels = pixels_from_mask(np.asarray(mask), self.nside, True, self.check_ordering,
                                  ordering)
        return None if pixels.size == self.npix else pixels

    def _init_targets(self, targets: object) -> None:
        self.targets, self.pixel_targets = None, False
        if targets is None:
            return
        if isinstance(targets, (str, os.PathLike)):
            path = Path(targets)
            if not path.is_file():
                raise FileNotFoundError(f"targets file not found: {path}")
            array = np.load(path, mmap_mode="r")
        else:
            array = np.asarray(targets.detach().cpu().numpy() if isinstance(
                targets, torch.Tensor) else targets)
        if array.ndim == 0 or array.shape[0] != len(self):
            raise ValueError(f"targets must have one entry per map ({len(self)}), got shape "
                             f"{array.shape}")
        self.pixel_targets = array.ndim >= 2 and array.shape[1] == self.npix
        if self.pixel_targets and self.ordering is None:
            raise ValueError("per-pixel targets [M, 12 nside^2] are given in the maps' "
                             "ordering: pass ordering='ring' or ordering='nest'")
        if not self.pixel_targets and array.ndim > 2:
            raise ValueError(f"targets must be [M], [M, T] (per map) or [M, 12 nside^2(, T)] "
                             f"(per pixel, {self.npix} pixels), got shape {array.shape}")
        if self.num_classes is not None:
            if not (np.issubdtype(array.dtype, np.integer) or array.dtype == bool):
                raise TypeError(f"targets must be integer class labels when num_classes is "
                                f"given, got dtype {array.dtype}")
            if not self.pixel_targets:
                _check_labels(np.asarray(array), self.num_classes, "targets")
        self.targets = array

    # ------------------------------------------------------------------ access
    def __len__(self) -> int:
        return len(self._nest)

    @property
    def num_nodes(self) -> int:
        """Number of observed pixels ``N`` (nodes of the samples)."""
        return self.npix if self.pixels is None else int(self.pixels.size)

    def __getitem__(self, index: int) -> SphereSignal:
        index = check_index(index, len(self), "maps")
        x = torch.from_numpy(self._read_map(index))
        if self.targets is None:
            sample = SphereSignal(x=x)
        elif self.pixel_targets:
            sample = SphereSignal(x=x, y_node=self._read_pixel_targets(index))
        else:
            sample = SphereSignal(x=x, y=_graph_target(self.targets[index]))
        return self.transform(sample) if self.transform is not None else sample

    def validate(self) -> None:
        """Read every map (and per-pixel target) once, raising the first error (NaN or
        UNSEEN observed pixels, labels out of range), as :meth:`__getitem__` would."""
        for index in range(len(self)):
            self._read_map(index)
            if self.targets is not None and self.pixel_targets:
                self._read_pixel_targets(index)

    def hierarchy(self, levels: int, *, k: int = 8, **kwargs: Any) -> SphereHierarchy:
        """:meth:`SphereHierarchy.healpix` at the maps' ``nside`` with the data set's mask
        (level 0 has the samples' nodes, in their order); ``kwargs`` go to it."""
        return SphereHierarchy.healpix(self.nside, levels, k=k, mask=self.pixels, **kwargs)

    def source(self, index: int) -> str:
        """Name of map ``index`` in messages: its file, with the map's row for ``.npy``."""
        if self.is_npy:
            return f"{self.paths[0]} (map {index})"
        return str(self.paths[index])

    # ----------------------------------------------------------------- reading
    def _read_raw(self, index: int) -> tuple[np.ndarray, bool, str]:
        """Map ``index`` in its stored ordering, ``[npix]`` or ``[npix, C]`` float64."""
        nest, source = self._nest[index], self.source(index)
        if self.is_npy:
            return np.asarray(self.array[index], dtype=np.float64), nest, source
        values = read_fits_map(self.paths[index], self.field, self._explicit[index],
                               self.nside)
        return values, nest, source

    def _gather(self, raw: np.ndarray, nest: bool) -> np.ndarray:
        """Observed pixels of a raw map, in NEST order."""
        if nest:
            return raw if self.pixels is None else raw[self.pixels]
        return raw[self._ring_index]

    def _observed_raw(self, nest: bool) -> np.ndarray | None:
        """Boolean ``[npix]`` observed pixels in a raw ordering (``None``: all)."""
        if self.pixels is None:
            return None
        observed = np.zeros(self.npix, dtype=bool)
        observed[self.pixels if nest else self._ring_index] = True
        return observed

    def _read_map(self, index: int) -> np.ndarray:
        raw, nest, source = self._read_raw(index)
        values = self._gather(raw, nest).reshape(self.num_nodes, -1)
        nan = ~np.isfinite(values)
        unseen = is_unseen(values)
        bad = (nan | unseen).any(axis=1)
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            pixel = first if self.pixels is None else int(self.pixels[first])
            raise ValueError(
                f"{source}: {int(bad.sum())} observed pixel(s) hold NaN/inf "
                f"({int(nan.any(axis=1).sum())}) or healpy.UNSEEN "
                f"({int(unseen.any(axis=1).sum())}) values (first at NEST pixel {pixel}); "
                "mark them unobserved with mask= (NEST, True = observed) or repair the map")
        return np.ascontiguousarray(values, dtype=np.float32)

    def _read_pixel_targets(self, index: int) -> torch.Tensor:
        raw = np.asarray(self.targets[index])
        values = self._gather(raw, bool(self.ordering))
        if self.num_classes is not None:
            _check_labels(values, self.num_classes, f"targets of {self.source(index)}")
            return torch.from_numpy(np.ascontiguousarray(values, dtype=np.int64))
        if np.issubdtype(values.dtype, np.integer) or values.dtype == bool:
            return torch.from_numpy(np.ascontiguousarray(values, dtype=np.int64))
        return torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))

    def __repr__(self) -> str:
        kind = "npy" if self.is_npy else "fits"
        return (f"{self.__class__.__name__}({kind}, num_maps={len(self)}, nside={self.nside}, "
                f"num_nodes={self.num_nodes}, channels={self.num_channels})")


def check_map_ordering(
    values: np.ndarray,
    nest: bool,
    *,
    observed: np.ndarray | None = None,
    name: str = "map",
    samples: int = 20_000,
) -> None:
    r"""Raise if a map looks far smoother in the other pixel ordering (RING <-> NEST).

    Sky maps are spatially coherent: neighbouring pixels hold similar values. Read in the
    wrong ordering the same values are scattered over the sphere. With the mean squared
    difference :math:`D = \langle (f_p - f_q)^2 \rangle` over pairs of neighbouring
    pixels (a random sample of at most ``samples`` pixels and their 8 neighbours, both
    observed and finite), the check raises when :math:`D` in the given ordering exceeds
    :data:`ORDERING_RATIO` times :math:`D` in the other one. Maps without spatial
    structure (white noise: :math:`D` is the same in both orderings) and maps below
    ``nside = 4`` are never flagged.

    Args:
        values: ``[12 nside^2]`` map in its stored ordering.
        nest: ``True`` if the map is declared NEST, ``False`` for RING.
        observed: optional boolean ``[12 nside^2]`` (same ordering): pixels to use.
        name: the map's name in the message.
        samples: number of pixels sampled.

    Raises:
        ValueError: the map looks misordered.
    """
    values = np.asarray(values, dtype=np.float64)
    nside = hp.npix2nside(values.size)
    if nside < 4:
        return
    usable = np.isfinite(values) & ~is_unseen(values)
    if observed is not None:
        usable &= observed
    given, swapped, count = ordering_roughness(values, nside, nest, usable=usable,
                                               samples=samples)
    if count >= 100 and given > ORDERING_RATIO * swapped:
        this, that = ("NEST", "RING") if nest else ("RING", "NEST")
        raise ValueError(
            f"{name} looks like a {that}-ordered map declared {this}: neighbouring pixels "
            f"differ {given / max(swapped, 1e-300):.1f} times more (mean squared difference) "
            f"in {this} than in {that} order; pass ordering='{that.lower()}' (or fix the "
            "FITS ORDERING keyword), or check_ordering=False if the map really has no "
            "spatial structure")


# ------------------------------------------------- readers shared with HealpixSource
def open_npy_maps(paths: Sequence[Path], ordering: bool | None) -> tuple[np.ndarray, int]:
    """The maps of one ``.npy`` file, memory-mapped, and their ``nside``.

    Args:
        paths: the one ``.npy`` path (a list, so that several paths are refused).
        ordering: ``True`` (NEST) or ``False`` (RING); ``None`` is refused (a ``.npy`` file
            records no ordering).

    Returns:
        ``([M, 12 nside^2]`` or ``[M, 12 nside^2, C]`` array (a ``[12 nside^2]`` file is
        one map), ``nside)``.

    Raises:
        ValueError: several paths, no ordering, a shape that is not maps of HEALPix size.
    """
    if len(paths) != 1:
        raise ValueError("give one .npy file (holding every map [M, 12 nside^2(, C)]) "
                         f"or FITS files, got {len(paths)} paths including .npy")
    if ordering is None:
        raise ValueError(f"{paths[0]}: a .npy array does not record its HEALPix pixel "
                         "ordering; pass ordering='ring' or ordering='nest'")
    array = np.load(paths[0], mmap_mode="r")
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim not in (2, 3) or array.shape[0] < 1:
        raise ValueError(f"{paths[0]} must hold maps [M, 12 nside^2] or "
                         f"[M, 12 nside^2, C], got shape {array.shape}")
    return array, _nside_of(array.shape[1], str(paths[0]))


def fits_layout(paths: Sequence[Path], field: int | tuple[int, ...],
                ordering: bool | None) -> tuple[list[bool], list[bool], int]:
    """``(nest, explicit, nside)`` of HEALPix FITS files, from their headers: per file
    whether it is NEST and partial-sky (``INDXSCHM = EXPLICIT``), and the common ``nside``.

    Raises:
        ValueError: a ``.npy`` path among them; a header that is not a HEALPix map's, that
            lacks ``field`` or contradicts ``ordering``; files of different ``nside``.
    """
    npy = [str(p) for p in paths if p.suffix.lower() == ".npy"]
    if npy:
        raise ValueError(f"give one .npy file or FITS files, not both ({npy[0]})")
    nests, explicits, first = [], [], None
    for path in paths:
        nest, nside, explicit = _fits_info(path, field, ordering)
        if first is None:
            first = nside
        elif nside != first:
            raise ValueError(
                f"{path} holds a map of {hp.nside2npix(nside)} pixels (nside {nside}) but "
                f"{paths[0]} one of {hp.nside2npix(first)} (nside {first}); "
                "give maps of one resolution (healpy.ud_grade)")
        nests.append(nest)
        explicits.append(explicit)
    return nests, explicits, int(first)


def read_fits_map(path: Path, field: int | tuple[int, ...], explicit: bool,
                  nside: int) -> np.ndarray:
    """Column(s) ``field`` of a HEALPix FITS file in its stored ordering: ``[12 nside^2]``
    (an int ``field``) or ``[12 nside^2, C]`` float64, ``healpy.UNSEEN`` where a partial-sky
    (``explicit``) file lists no value.

    Raises:
        ValueError: an unreadable file or a map of another size (naming the file).
    """
    try:
        values = hp.read_map(path, field=field, nest=None, dtype=np.float64,
                             partial=explicit)
    except (OSError, ValueError, KeyError, IndexError) as error:
        raise ValueError(f"{path}: cannot read the HEALPix map ({error})") from error
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 2:
        values = values.T
    npix = hp.nside2npix(nside)
    if values.shape[0] != npix:
        raise ValueError(f"{path} holds {values.shape[0]} pixels, expected "
                         f"{npix} (nside {nside})")
    return values


def read_mask_file(path: PathLike) -> np.ndarray:
    """A FITS mask file as a boolean NEST map (converted by its ``ORDERING`` header;
    ``True`` where the value is finite, nonzero and not ``healpy.UNSEEN``).

    Raises:
        FileNotFoundError: no such file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"mask file not found: {path}")
    values = hp.read_map(path, nest=True, dtype=np.float64)
    return np.isfinite(values) & (values != 0) & ~is_unseen(values)


# --------------------------------------------------------------------------- helpers
def _check_paths(paths: object) -> list[Path]:
    if isinstance(paths, (str, os.PathLike)):
        items = [paths]
    elif isinstance(paths, Sequence):
        items = list(paths)
    else:
        raise TypeError(f"paths must be a path or a sequence of paths, got "
                        f"{type(paths).__name__}")
    if not items:
        raise ValueError("paths must name at least one file (.npy or FITS)")
    out = []
    for item in items:
        if not isinstance(item, (str, os.PathLike)):
            raise TypeError(f"paths must hold str or os.PathLike, got {item!r}")
        path = Path(item)
        if not path.is_file():
            raise FileNotFoundError(f"HEALPix map file not found: {path}")
        out.append(path)
    return out


def check_ordering_name(ordering: object) -> bool | None:
    """``True`` for NEST, ``False`` for RING (``"nest"`` / ``"ring"``, any case), ``None``
    for ``None`` (the FITS header decides).

    Raises:
        ValueError: any other value.
    """
    if ordering is None:
        return None
    key = ordering.lower() if isinstance(ordering, str) else None
    if key not in ORDERINGS:
        raise ValueError(f"ordering must be 'ring' or 'nest' (or None for FITS files with an "
                         f"ORDERING keyword), got {ordering!r}")
    return ORDERINGS[key]


def _check_field(field: object) -> int | tuple[int, ...]:
    def ok(value: object) -> bool:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool) \
            and int(value) >= 0

    if ok(field):
        return int(field)  # type: ignore[arg-type]
    if isinstance(field, Sequence) and not isinstance(field, str) and field \
            and all(ok(f) for f in field):
        return tuple(int(f) for f in field)
    raise TypeError(f"field must be a column index >= 0 or a sequence of them, got {field!r}")


def _nside_of(npix: int, name: str) -> int:
    """``nside`` of a map of ``npix`` pixels, or an error naming ``name``."""
    if npix > 0 and npix % 12 == 0 and hp.isnpixok(npix):
        nside = hp.npix2nside(npix)
        if nside & (nside - 1) == 0:
            return int(nside)
    nside = max(1, 1 << max(0, round(math.log2(math.sqrt(max(npix, 12) / 12)))))
    sizes = ", ".join(f"{hp.nside2npix(n)} (nside {n})"
                      for n in (max(1, nside // 2), nside, nside * 2))
    raise ValueError(f"{name}: maps of {npix} pixels are not HEALPix maps; a map has "
                     f"12 nside^2 pixels with nside a power of two, e.g. {sizes}")


def _fits_info(path: Path, field: int | tuple[int, ...],
               ordering: bool | None) -> tuple[bool, int, bool]:
    """``(nest, nside, explicit)`` of a HEALPix FITS file, from its header."""
    from astropy.io import fits

    try:
        with fits.open(path, memmap=True) as hdus:
            if len(hdus) < 2:
                raise ValueError("no binary table extension")
            header = hdus[1].header
    except (OSError, ValueError) as error:
        raise ValueError(f"{path} is not a HEALPix FITS map ({error}); give FITS files "
                         "written by healpy.write_map, or a .npy array") from error
    name = str(path).strip()
    columns = (field,) if isinstance(field, int) else field
    num_fields = int(header.get("TFIELDS", 0))
    explicit = str(header.get("INDXSCHM", "IMPLICIT")).strip().upper() == "EXPLICIT"
    available = num_fields - 1 if explicit else num_fields  # explicit: column 0 = pixels
    if max(columns) >= available:
        raise ValueError(f"{name} has {available} map column(s); field={field!r} is out of "
                         "range")
    header_nside = header.get("NSIDE")
    if explicit:
        if header_nside is None:
            raise ValueError(f"{name}: a partial-sky (EXPLICIT) map needs an NSIDE keyword")
        nside = _nside_of(12 * int(header_nside) ** 2, name)
    else:
        form = str(header.get(f"TFORM{columns[0] + 1}", "1"))
        match = re.match(r"\s*(\d*)", form)
        repeat = int(match.group(1)) if match and match.group(1) else 1
        npix = int(header.get("NAXIS2", 0)) * repeat
        nside = _nside_of(npix, name)
        if header_nside is not None and int(header_nside) != nside:
            raise ValueError(f"{name}: the header says NSIDE = {header_nside} but the map "
                             f"has {npix} pixels (nside {nside}); fix the file")
    keyword = str(header.get("ORDERING", "")).strip().upper()
    if keyword.startswith("NEST"):
        nest = True
    elif keyword.startswith("RING"):
        nest = False
    elif keyword:
        raise ValueError(f"{name}: unknown ORDERING = {keyword!r} (expected RING or NESTED)")
    else:
        if ordering is None:
            raise ValueError(f"{name} has no ORDERING keyword; pass ordering='ring' or "
                             "ordering='nest'")
        nest = ordering
    if ordering is not None and ordering != nest:
        stored = "NESTED" if nest else "RING"
        given = "nest" if ordering else "ring"
        raise ValueError(f"{name}: ordering={given!r} contradicts the file's ORDERING = "
                         f"{stored}; drop the ordering argument (FITS headers are read) or "
                         "fix the file")
    return nest, nside, explicit


def is_unseen(values: np.ndarray) -> np.ndarray:
    """Boolean mask of the pixels holding ``healpy.UNSEEN`` (within a relative
    tolerance)."""
    return np.abs(values - hp.UNSEEN) <= UNSEEN_RTOL * abs(hp.UNSEEN)


def _check_labels(values: np.ndarray, num_classes: int, name: str) -> None:
    if values.size == 0:
        return
    low, high = int(values.min()), int(values.max())
    if low < 0 or high >= num_classes:
        bad = int(np.sum((values < 0) | (values >= num_classes)))
        raise ValueError(f"{name}: {bad} label(s) outside [0, {num_classes - 1}] "
                         f"(range [{low}, {high}]) for num_classes={num_classes}")


def _graph_target(value: np.ndarray) -> torch.Tensor:
    array = np.asarray(value)
    integer = np.issubdtype(array.dtype, np.integer) or array.dtype == bool
    tensor = torch.from_numpy(np.array(array, dtype=np.int64 if integer else np.float32))
    return tensor if tensor.dim() == 0 else tensor.reshape(1, -1)
