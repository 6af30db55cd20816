"""Ready architectures built from the library's layers (:mod:`deepsphere_pyg.nn`).

- :class:`DeepSphere`: classifier / regressor of whole maps (statistic or fully connected
  head).
- :class:`SphericalUNet`: encoder-decoder with skip connections, per-node outputs.
- :class:`ScatteringDeepSphere`: DeepSphere layers on (cached) scattering coefficients.

Every model is a :class:`SphereModel`: it holds its
:class:`~deepsphere_pyg.graphs.SphereHierarchy` as non-persistent buffers and takes either
``[B, N, F]`` batches on that shared graph or a
:class:`~deepsphere_pyg.graphs.HierarchyData` batch of per-sample graphs, resolved by one
input path (:meth:`SphereModel.resolve_input`).
"""

from .base import HierarchyBuffers, ModelInput, SphereModel
from .blocks import ConvBlock, node_statistic
from .deepsphere import DeepSphere
from .scattering_hybrid import ScatteringDeepSphere, sub_hierarchy
from .unet import SphericalUNet

__all__ = [
    "ConvBlock",
    "DeepSphere",
    "HierarchyBuffers",
    "ModelInput",
    "ScatteringDeepSphere",
    "SphereModel",
    "SphericalUNet",
    "node_statistic",
    "sub_hierarchy",
]
