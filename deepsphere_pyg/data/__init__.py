"""Samples, data sets (generated and file-backed), transforms and file IO."""

from . import transforms
from .base import SPLITS, SyntheticSphereDataset
from .cmb import CMBMaps, cmb_cl
from .cosmology import CosmologyMaps, convergence_cl
from .digits import SphericalDigits
from .files import HealpixFileDataset
from .segmentation import SegmentationMaps
from .signal import SphereSignal
from .spectra import Spectra, load_spectra
from .stations import StationsField

__all__ = [
    "CMBMaps",
    "CosmologyMaps",
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
