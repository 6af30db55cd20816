"""A user's files as training data: HEALPix maps, lat-lon grids, station tables.

:class:`FileData` is the data set of the ``files`` experiment; each kind of file is a
:class:`~deepsphere_pyg.data.sources.base.FileSource` named by ``data.source``
(:data:`SOURCES`), imported when first used (xarray, pandas and healsparse are optional
extras: ``pip install "deepsphere-pyg[files]"``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ..._lazy import lazy_exports
from .targets import task_of, task_of_data

if TYPE_CHECKING:
    from .base import FileSource
    from .dataset import FileData, open_source, read_labels

#: ``data.source`` values and the class reading them (``"module:Class"`` in this package).
SOURCES: dict[str, str] = {
    "healpix": "healpix:HealpixSource",
    "grid": "grid:GridSource",
    "stations": "stations:StationSource",
}

#: Each source's own keys of the ``data`` section and their defaults (the classes'
#: ``options``; listed here so that a configuration is checked without importing them).
SOURCE_OPTIONS: dict[str, dict[str, object]] = {
    "healpix": {"ordering": None, "mask": None, "mask_ordering": None,
                "check_ordering": True},
    "grid": {"region": None, "mask_variable": None, "lat_name": None, "lon_name": None,
             "time_name": None},
    "stations": {"columns": None, "layout": "auto", "duplicates": "raise",
                 "merge_distance": None},
}


def source_class(name: object) -> type[FileSource]:
    """The :class:`FileSource` subclass of ``data.source`` ``name``.

    Raises:
        ValueError: an unknown name, listing the known ones.
    """
    if not isinstance(name, str) or name not in SOURCES:
        raise ValueError(f"data.source must be one of {sorted(SOURCES)}, got {name!r}")
    module, _, cls = SOURCES[name].partition(":")
    return getattr(importlib.import_module(f".{module}", __name__), cls)


__all__ = ["SOURCES", "SOURCE_OPTIONS", "FileData", "open_source", "read_labels",
           "source_class", "task_of", "task_of_data"]

__getattr__, __dir__ = lazy_exports(__name__, {
    "FileData": "dataset",
    "open_source": "dataset",
    "read_labels": "dataset",
}, __all__)
