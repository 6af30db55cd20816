"""Spherical wavelet scattering: a fixed front-end computed once per data set.

:class:`SphericalScattering` (an ``nn.Module``) and :class:`ScatteringTransform` (a PyG
transform) compute the scattering coefficients of maps on a
:class:`~deepsphere_pyg.graphs.SphereHierarchy` with one of two backends, selected by
name: ``"harmonic"`` (:class:`HarmonicBackend`, exact healpy transforms, full-sky HEALPix)
or ``"graph"`` (``GraphBackend`` in :mod:`deepsphere_pyg.scattering.graph_backend`,
Chebyshev graph filters, any sampling; imported when first used).

:func:`precompute_scattering` runs a scattering module over a whole data set into an
on-disk :class:`CoefficientStore` (zarr, one chunk per map, resumable, split over ranks);
:class:`CachedCoefficients` reads it back as a ``Dataset``. The machinery serves any fixed
transform and lives in :mod:`deepsphere_pyg.precompute`; :func:`precompute`,
:class:`CoefficientStore` and :class:`CachedCoefficients` are re-exported here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from .backend import ScatteringBackend
    from .cache import CachedCoefficients, CoefficientStore, precompute, precompute_scattering
    from .filters import FilterBank, ScatteringPath, scattering_paths
    from .harmonic import HarmonicBackend
    from .module import SphericalScattering, hierarchy_fingerprint
    from .transform import ScatteringTransform

__all__ = [
    "CachedCoefficients",
    "CoefficientStore",
    "FilterBank",
    "HarmonicBackend",
    "ScatteringBackend",
    "ScatteringPath",
    "ScatteringTransform",
    "SphericalScattering",
    "hierarchy_fingerprint",
    "precompute",
    "precompute_scattering",
    "scattering_paths",
]

# The names are imported from their submodules on first use (``deepsphere-pyg --help``
# imports this package for the parser of ``scatter`` and does without torch); the graph
# backend is not in __all__ (see module.BACKENDS).
__getattr__, __dir__ = lazy_exports(__name__, {
    "ScatteringBackend": "backend",
    "CachedCoefficients": "cache",
    "CoefficientStore": "cache",
    "precompute": "cache",
    "precompute_scattering": "cache",
    "FilterBank": "filters",
    "ScatteringPath": "filters",
    "scattering_paths": "filters",
    "GraphBackend": "graph_backend",
    "HarmonicBackend": "harmonic",
    "SphericalScattering": "module",
    "hierarchy_fingerprint": "module",
    "ScatteringTransform": "transform",
}, __all__)
