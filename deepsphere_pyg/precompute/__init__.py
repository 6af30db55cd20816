"""Precompute a fixed transform once over a data set, keep the result on disk, train from it.

Any transform without trainable parameters (a scattering front-end, a fixed filter bank, a
frozen encoder, a fixed linear map) maps sample ``i``'s features ``x_i`` ``[N, C]`` to
``[N_out, C_out]``. :func:`precompute` computes that once for every sample into a
:class:`CoefficientStore` (zarr, one chunk and one completion marker per sample, resumable,
split over ranks and local workers); :class:`CachedCoefficients` reads it back as a
``torch.utils.data.Dataset``.

Modules: :mod:`.store` (the on-disk format, atomic creation and writes),
:mod:`.sharding` (which samples a rank or worker computes; the rank/world-size reading
shared with the training engine), :mod:`.run` (:func:`precompute`), :mod:`.dataset`
(:class:`CachedCoefficients`), :mod:`.progress` (the progress display).
"""

from __future__ import annotations

from .dataset import CachedCoefficients
from .run import CoefficientTransform, precompute
from .sharding import ProcessLayout, rank_share, read_environment, resolve_rank, worker_shares
from .store import CoefficientStore, MapNotComputedError, config_hash

__all__ = [
    "CachedCoefficients",
    "CoefficientStore",
    "CoefficientTransform",
    "MapNotComputedError",
    "ProcessLayout",
    "config_hash",
    "precompute",
    "rank_share",
    "read_environment",
    "resolve_rank",
    "worker_shares",
]
