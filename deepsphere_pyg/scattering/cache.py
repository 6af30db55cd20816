"""Scattering coefficients computed once for a whole data set and kept on disk.

A scattering front-end has no trainable parameters, so its output for a given map never
changes. The machinery is generic and lives in :mod:`deepsphere_pyg.precompute` (store,
sharding over ranks and workers, ``Dataset``); :class:`SphericalScattering` satisfies its
:class:`~deepsphere_pyg.precompute.CoefficientTransform` protocol: ``config()`` (every
parameter that changes the coefficients: the store's key) and ``out_shape(C)``.
:func:`precompute_scattering` adds the check that the transform is a scattering module;
the generic names are re-exported here.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from ..precompute import (
    CachedCoefficients,
    CoefficientStore,
    CoefficientTransform,
    MapNotComputedError,
    config_hash,
    precompute,
)
from .module import SphericalScattering

__all__ = [
    "CachedCoefficients",
    "CoefficientStore",
    "CoefficientTransform",
    "MapNotComputedError",
    "config_hash",
    "precompute",
    "precompute_scattering",
]


def precompute_scattering(
    scattering: SphericalScattering, maps: Sequence[Any], path: str | os.PathLike, **kwargs: Any
) -> CoefficientStore:
    """Store the coefficients ``[num_maps, N_out, C_out]`` of ``scattering`` over ``maps``.

    :func:`~deepsphere_pyg.precompute.precompute` with the scattering module's own
    ``config()`` as the store's key (filters, scales, depth, backend and the hierarchy's
    fingerprint) and ``out_shape``; ``kwargs`` are passed on (``batch_size``,
    ``num_workers``, ``dtype``, ``overwrite``, ...).

    Raises:
        TypeError: ``scattering`` is not a :class:`SphericalScattering`, or ``config`` is
            passed (the store's key is the module's own configuration).
    """
    if not isinstance(scattering, SphericalScattering):
        raise TypeError(
            f"scattering must be a SphericalScattering, got {type(scattering).__name__}; "
            f"use deepsphere_pyg.precompute.precompute for other transforms"
        )
    if "config" in kwargs:
        raise TypeError("precompute_scattering takes no config: the store's key is "
                        "scattering.config()")
    return precompute(scattering, maps, path, **kwargs)
