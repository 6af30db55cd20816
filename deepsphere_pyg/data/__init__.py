"""Samples, data sets (generated and file-backed), transforms and file IO."""

from .base import SPLITS, SyntheticSphereDataset
from .signal import SphereSignal

__all__ = ["SPLITS", "SphereSignal", "SyntheticSphereDataset"]
