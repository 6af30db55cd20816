"""Checks and random streams shared by the transforms."""

from __future__ import annotations

import hashlib
import numbers
from typing import Any

import healpy as hp
import numpy as np
import torch

from ...graphs.checks import ordering_roughness

#: Node-level attributes that follow the node order (moved or subset with ``x``).
NODE_KEYS = ("x", "y_node", "node_mask")


def node_values(data: Any, owner: str) -> torch.Tensor:
    """``data.x`` as a floating tensor ``[N]`` or ``[N, F]``, or a clear error naming ``owner``."""
    x = getattr(data, "x", None)
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{owner}: data.x must be a tensor [N, F] of maps, got {type(x).__name__}")
    if x.dim() not in (1, 2):
        raise ValueError(
            f"{owner}: data.x must have shape [N] or [N, F] (one sample; apply transforms "
            f"before batching), got {tuple(x.shape)}")
    if not torch.is_floating_point(x):
        raise TypeError(f"{owner}: data.x must be floating point, got {x.dtype}")
    return x


def check_finite(x: torch.Tensor, owner: str, where: torch.Tensor | None = None) -> None:
    """Raise if ``x`` holds NaN or infinite values (only at rows ``where`` when given)."""
    values = x if where is None else x[where]
    bad = ~torch.isfinite(values)
    if bool(bad.any()):
        rows = torch.nonzero(bad.reshape(values.shape[0], -1).any(dim=1)).flatten()
        raise ValueError(
            f"{owner}: data.x holds {int(bad.sum())} NaN or infinite values (first rows "
            f"{rows[:5].tolist()}{' among the unmasked nodes' if where is not None else ''}); "
            "repair them or mask those pixels first (ApplyMask)")


def node_mask(data: Any, num_nodes: int, owner: str) -> torch.Tensor | None:
    """``data.node_mask`` as a boolean ``[N]`` tensor, ``None`` when absent."""
    mask = getattr(data, "node_mask", None)
    if mask is None:
        return None
    mask = torch.as_tensor(mask)
    if mask.shape != (num_nodes,):
        raise ValueError(
            f"{owner}: data.node_mask must have shape [{num_nodes}] (one flag per node of "
            f"data.x), got {tuple(mask.shape)}")
    return mask.to(torch.bool)


def check_nonnegative(value: object, name: str) -> float:
    """``value`` as a finite float >= 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number >= 0, got {value!r}")
    value = float(value)
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return value


def check_seed(seed: object) -> int | None:
    """``seed`` as an int >= 0 or ``None``."""
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0 or None, got {seed!r}")
    return int(seed)


class RandomStream:
    """Random generators of successive calls of a transform.

    With a seed the calls draw from one ``numpy.random.Generator`` created from it, so a
    fresh transform with the same seed repeats the same sequence. Without a seed each call
    seeds a generator from torch's global generator, so ``torch.manual_seed`` controls it
    and data loader workers (which torch seeds differently) draw different values.
    """

    def __init__(self, seed: int | None) -> None:
        self.seed = check_seed(seed)
        self._generator = None if self.seed is None else np.random.default_rng(self.seed)

    def next(self) -> np.random.Generator:
        """The generator of the next call."""
        if self._generator is not None:
            return self._generator
        return np.random.default_rng(int(torch.randint(0, 2**62, (1,)).item()))


def check_healpix_length(x: torch.Tensor, nside: int, owner: str) -> None:
    """Raise unless ``x`` has ``12 nside^2`` rows (a full-sky map)."""
    npix = hp.nside2npix(nside)
    if x.shape[0] != npix:
        raise ValueError(
            f"{owner}: data.x has {x.shape[0]} nodes but a full-sky HEALPix map at "
            f"nside={nside} has 12 * nside^2 = {npix} pixels; give full-sky maps at this "
            "nside (partial-sky patches cannot be rotated: the signal would leave the patch)")


def check_healpix_ordering(values: np.ndarray, nside: int, nest: bool, owner: str,
                           samples: int = 20000, ratio: float = 1.25) -> None:
    """Raise if a map ``[N]`` or ``[N, F]`` looks far smoother in the other pixel ordering.

    A sky map is correlated between neighbouring pixels, so the mean squared difference
    between a pixel and its 8 neighbours is small in the map's own ordering. Read in the
    other ordering (RING data as NEST or the reverse), the "neighbours" are mostly
    unrelated pixels and the differences approach those of white noise. The check
    compares both orderings on a fixed random sample of pixels and raises when the given
    ordering is more than ``ratio`` times rougher (a white-noise map measures 1.00 +- 0.02;
    the generated convergence maps, whose power sits at small scales, measure 1.4 to 2 in
    the wrong ordering, CMB maps 2 to 4). Maps dominated by pixel noise look alike in
    both orderings and are not detectable.
    """
    if nside < 4:
        return
    given, swapped, _ = ordering_roughness(values, nside, nest, samples=samples)
    if swapped > 0 and given > ratio * swapped:
        this, that = ("NEST", "RING") if nest else ("RING", "NEST")
        raise ValueError(
            f"{owner}: data.x looks like a {that}-ordered map given as {this} (neighbouring "
            f"pixels differ {given / swapped:.1f} times more in {this} order than in {that}); "
            f"reorder it with healpy.reorder(map, {'r2n' if nest else 'n2r'}=True), set "
            f"nest={not nest}, or pass check_ordering=False")


def array_digest(array: np.ndarray) -> str:
    """Short content hash of an array, for reprs that name the data they hold."""
    return hashlib.sha1(np.ascontiguousarray(array).tobytes()).hexdigest()[:10]
