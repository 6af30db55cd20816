"""Ready architectures built from the library's layers (:mod:`deepsphere_pyg.nn`).

- :class:`DeepSphere`: classifier / regressor of whole maps (statistic or fully connected
  head).
- :class:`SphericalUNet`: encoder-decoder with skip connections, per-node outputs.
- :class:`ScatteringDeepSphere`: DeepSphere layers on (cached) scattering coefficients.

Every model holds its :class:`~deepsphere_pyg.graphs.SphereHierarchy` as non-persistent
buffers, takes ``[B, N, F]`` batches on that shared graph, and disjoint batches of
per-sample graphs (:class:`~deepsphere_pyg.graphs.HierarchyData`).
"""

from .blocks import ConvBlock, HierarchyBuffers, node_statistic
from .deepsphere import DeepSphere
from .scattering_hybrid import ScatteringDeepSphere, sub_hierarchy
from .unet import SphericalUNet

__all__ = [
    "ConvBlock",
    "DeepSphere",
    "HierarchyBuffers",
    "ScatteringDeepSphere",
    "SphericalUNet",
    "node_statistic",
    "sub_hierarchy",
]
