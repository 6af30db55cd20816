"""Samples, data sets (generated and file-backed), transforms and file IO.

The names are imported from their submodules on first use, so that the light parts
(:mod:`deepsphere_pyg.data.sources`' configuration rules) need no torch import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from . import transforms
    from .base import SPLITS, SyntheticSphereDataset
    from .cmb import CMBMaps, cmb_cl
    from .cosmology import CosmologyMaps, convergence_cl
    from .digits import SphericalDigits
    from .files import HealpixFileDataset
    from .segmentation import SegmentationMaps
    from .signal import SphereSignal
    from .sources import FileData
    from .spectra import Spectra, load_spectra
    from .stations import StationsField

__all__ = [
    "CMBMaps",
    "CosmologyMaps",
    "FileData",
    "SPLITS",
    "Spectra",
    "HealpixFileDataset",
    "SegmentationMaps",
    "SphereSignal",
    "SphericalDigits",
    "StationsField",
    "SyntheticSphereDataset",
    "cmb_cl",
    "convergence_cl",
    "load_spectra",
    "transforms",
]

__getattr__, __dir__ = lazy_exports(__name__, {
    "SPLITS": "base",
    "SyntheticSphereDataset": "base",
    "CMBMaps": "cmb",
    "cmb_cl": "cmb",
    "CosmologyMaps": "cosmology",
    "convergence_cl": "cosmology",
    "SphericalDigits": "digits",
    "HealpixFileDataset": "files",
    "SegmentationMaps": "segmentation",
    "SphereSignal": "signal",
    "FileData": "sources",
    "Spectra": "spectra",
    "load_spectra": "spectra",
    "StationsField": "stations",
}, __all__)
