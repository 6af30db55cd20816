r"""The interface of a user's files as samples on one sphere sampling.

A :class:`FileSource` reads one kind of file (HEALPix maps, lat-lon grids, station
tables) and answers four questions, each in the source's *node order* (the order of the
nodes of :meth:`FileSource.hierarchy`'s finest graph):

* how many samples there are and what they are called (:attr:`FileSource.keys`: a time
  or an index per sample, used by range splits; :attr:`FileSource.names`: a name per
  sample, used in the outputs);
* the values of some variables in a sample, :meth:`FileSource.read` ->
  ``[N, C]`` float32 with NaN where a value is missing;
* the graphs of the sampling, :meth:`FileSource.hierarchy`;
* how to write per-node predictions back in the input's format,
  :meth:`FileSource.write`.

Targets, splits, forecasts and normalisation are not the source's business: the data set
of the ``files`` experiment (:class:`~deepsphere_pyg.data.sources.FileData`) builds them
on top of these four answers, the same way for every source.
"""

from __future__ import annotations

import abc
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ...graphs import SphereHierarchy
from ..base import check_index
from .targets import glob_items

PathLike = str | os.PathLike


class FileSource(abc.ABC):
    r"""Samples read from a user's files, on one sampling (module doc).

    Subclasses set :attr:`name` and :attr:`options`, take ``(paths, **options)`` in
    ``__init__`` (``paths`` from :func:`expand_paths`; every key of :attr:`options`, with
    the configuration's values) and implement the abstract members. They raise
    ``ValueError`` naming the file, variable or column and the fix for bad input, and
    ``FileNotFoundError`` for missing files.

    Attributes:
        name: the value of ``data.source`` that selects the class.
        options: the source's own keys of the ``data`` section with their defaults (the
            ``files`` experiment's configuration lists them all; a key of another source
            set to a value other than its default is refused).
        variables: every variable (FITS field, netCDF variable, table column) that
            :meth:`read` accepts, in the file's order.
    """

    name: ClassVar[str]
    options: ClassVar[Mapping[str, Any]] = {}
    variables: tuple[str, ...]

    @property
    @abc.abstractmethod
    def num_samples(self) -> int:
        """Number of samples ``M`` (maps, time steps)."""

    @property
    @abc.abstractmethod
    def keys(self) -> np.ndarray:
        """``[M]`` sample keys in sample order, increasing: ``datetime64`` times for
        sources with a time axis, else the integers ``0 .. M-1``. Range splits
        (``data.split: {train: [start, stop], ...}``) select ``start <= key < stop``."""

    @property
    @abc.abstractmethod
    def names(self) -> list[str]:
        """``M`` names of the samples (file stems, ISO times), unique, for the outputs."""

    @property
    @abc.abstractmethod
    def num_nodes(self) -> int:
        """Nodes ``N`` of a sample (the finest graph's nodes)."""

    @abc.abstractmethod
    def read(self, index: int, variables: Sequence[str]) -> np.ndarray:
        """The values ``[N, len(variables)]`` (float32, node order, NaN where missing) of
        ``variables`` in sample ``index``.

        Raises:
            ValueError: a variable that is not in :attr:`variables` (named, with the
                known ones).
        """

    @abc.abstractmethod
    def hierarchy(self, levels: int, *, k: int | Sequence[int] = 8,
                  edges: str | None = None, kernel: str | float | None = None
                  ) -> SphereHierarchy:
        """``levels`` graphs of the sampling, finest first; the finest graph's nodes are
        the samples' nodes, in node order. ``edges`` / ``kernel`` ``None``: the sampling
        builder's defaults."""

    @abc.abstractmethod
    def write(self, values: np.ndarray, indices: Sequence[int], channels: Sequence[str],
              folder: Path) -> list[Path]:
        """Write per-node predictions in the input's format into ``folder``.

        Args:
            values: ``[S, N, C]`` float32 predictions of samples ``indices`` (node order).
            indices: the sample of each prediction (its time / name / coordinates).
            channels: ``C`` names of the predicted quantities (e.g. ``"t2m_prediction"``,
                ``"class"``).
            folder: the output folder (exists).

        Returns:
            The files written, each written atomically (temporary name, then renamed).
        """

    def check_index(self, index: object) -> int:
        """Sample ``index`` as a position ``0 .. M - 1`` (:func:`~deepsphere_pyg.data.base.
        check_index`)."""
        return check_index(index, self.num_samples)

    def check_variables(self, variables: Sequence[str], key: str) -> list[str]:
        """``variables`` as a list, each one of :attr:`variables`.

        Raises:
            ValueError: naming ``key`` (the configuration key), the unknown variable and
                the known ones.
        """
        if isinstance(variables, str):
            variables = [variables]
        chosen = [str(variable) for variable in variables]
        if not chosen:
            raise ValueError(f"{key} names no variable; choose among {list(self.variables)}")
        for variable in chosen:
            if variable not in self.variables:
                raise ValueError(f"{key}: {variable!r} is not in the files (they hold "
                                 f"{list(self.variables)})")
        return chosen


def expand_paths(path: PathLike | Sequence[PathLike], key: str = "data.path") -> list[Path]:
    """The files named by ``path``: one path, a glob pattern (``maps/*.fits``), or a list
    of either; globs are sorted, the order of a list is kept.

    Raises:
        ValueError: no path given.
        FileNotFoundError: a path that does not exist, or a pattern that matches nothing
            (named, with ``key``).
    """
    if path is None or (not isinstance(path, (str, os.PathLike)) and len(path) == 0):
        raise ValueError(f"{key} is not set: give a file, a glob pattern (maps/*.fits) or a "
                         "list of files")
    items = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    files: list[Path] = []
    for text, matched in glob_items(items):
        if not matched:
            raise FileNotFoundError(f"{key}: the pattern {text!r} matches no file")
        if not Path(text).exists():
            raise FileNotFoundError(f"{key}: {text!r} does not exist")
        files.append(Path(text))
    return files


#: Compression suffixes removed with the format suffix by :func:`file_stem`.
COMPRESSION_SUFFIXES = (".gz", ".fz", ".bz2")


def file_stem(path: PathLike) -> str:
    """A file's name without its format suffix and compression suffix
    (``maps/map_07.fits.gz`` -> ``map_07``): how sources name their samples."""
    name = Path(path).name
    for suffix in COMPRESSION_SUFFIXES:
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    return Path(name).stem or name
