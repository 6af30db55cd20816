"""Samples, data sets (generated and file-backed), transforms and file IO."""

from .base import SPLITS, SyntheticSphereDataset
from .digits import SphericalDigits
from .files import HealpixFileDataset
from .segmentation import SegmentationMaps
from .signal import SphereSignal
from .stations import StationsField

__all__ = [
    "SPLITS",
    "HealpixFileDataset",
    "SegmentationMaps",
    "SphereSignal",
    "SphericalDigits",
    "StationsField",
    "SyntheticSphereDataset",
]
