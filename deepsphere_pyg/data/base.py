"""Base classes of the generated data sets: deterministic samples, fixed splits, any size."""

from __future__ import annotations

import abc
import dataclasses
import numbers
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import torch

from ..graphs import SphereHierarchy
from .signal import SphereSignal

#: Split names, in the order of their seed offsets.
SPLITS = ("train", "val", "test")


def check_index(index: object, size: int, what: str = "samples") -> int:
    """``index`` as a position ``0 .. size - 1`` (a negative one counts from the end).

    Raises:
        TypeError: ``index`` is not an integer.
        IndexError: out of range, naming ``size`` and ``what``.
    """
    if isinstance(index, bool) or not isinstance(index, numbers.Integral):
        raise TypeError(f"index must be an integer, got {index!r}")
    value = int(index) + size if index < 0 else int(index)
    if not 0 <= value < size:
        raise IndexError(f"index {index} out of range for {size} {what}")
    return value


@dataclasses.dataclass(eq=False, repr=False)
class SyntheticSphereDataset(torch.utils.data.Dataset, abc.ABC):
    r"""A data set whose samples are generated, deterministically, when they are read.

    Sample ``i`` of split ``s`` is generated from
    ``numpy.random.default_rng([seed, SPLITS.index(s), i])``, so a split is reproducible
    sample by sample whatever its size or the order of access (and DataLoader workers
    need no shared state), and the three splits never share a random stream.

    The data sets are dataclasses: a subclass declares its own arguments as keyword-only
    fields (``@dataclasses.dataclass(eq=False, repr=False, kw_only=True)``), checks them
    in ``__post_init__`` after calling this class's, implements :meth:`generate` and
    :meth:`hierarchy`, sets :attr:`default_sizes` (or overrides :meth:`default_size`), and
    names its own arguments in :meth:`extra_repr`. The fields hold the arguments as
    checked, and some data sets replace one by what it stands for (``StationsField``'s
    ``lon`` / ``lat`` become the merged nodes): build a changed data set with the
    constructor, not :func:`dataclasses.replace`.

    Args:
        split: ``"train"``, ``"val"`` or ``"test"``.
        num_samples: size of the split (default: :meth:`default_size`).
        seed: seed of the whole data set.
        transform: optional callable applied to each sample when read (PyG transforms).
        cache: keep generated samples in memory (for costly generators read many times).
    """

    #: Samples per split when ``num_samples`` is not given.
    default_sizes: ClassVar[dict[str, int]] = {"train": 800, "val": 100, "test": 100}

    split: str = "train"
    num_samples: int | None = None
    seed: int = 0
    _: dataclasses.KW_ONLY
    transform: Callable[[SphereSignal], SphereSignal] | None = None
    cache: bool = False

    def __post_init__(self) -> None:
        """Check the arguments (subclasses check theirs after calling this)."""
        split, num_samples, seed = self.split, self.num_samples, self.seed
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        size = self.default_size(split) if num_samples is None else num_samples
        if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 1:
            raise ValueError(f"num_samples must be an integer >= 1, got {num_samples!r}")
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
        if self.transform is not None and not callable(self.transform):
            raise TypeError(f"transform must be callable or None, got {self.transform!r}")
        if not isinstance(self.cache, bool):
            raise TypeError(f"cache must be True or False, got {self.cache!r}")
        self.num_samples, self.seed = int(size), int(seed)
        self._cache: dict[int, SphereSignal] | None = {} if self.cache else None

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, index: int) -> SphereSignal:
        index = check_index(index, self.num_samples)
        if self._cache is not None and index in self._cache:
            sample = self._cache[index]
        else:
            sample = self.generate(index, self.rng(index))
            if self._cache is not None:
                self._cache[index] = sample
        sample = self.augment(sample, index)
        return self.transform(sample.clone()) if self.transform is not None else sample

    def augment(self, sample: SphereSignal, index: int) -> SphereSignal:
        """Per-read change of sample ``index`` before ``transform`` (default: none), e.g. a
        fresh noise draw at every epoch. Returns a new sample: the cached one is shared."""
        return sample

    def default_size(self, split: str) -> int:
        """Samples of ``split`` when ``num_samples`` is not given: ``default_sizes[split]``."""
        return self.default_sizes[split]

    def rng(self, index: int) -> np.random.Generator:
        """The random generator of sample ``index`` of this split."""
        return np.random.default_rng([self.seed, SPLITS.index(self.split), index])

    # ------------------------------------------------------------- to implement
    @abc.abstractmethod
    def generate(self, index: int, rng: np.random.Generator) -> SphereSignal:
        """Sample ``index``, drawn with ``rng`` only."""

    @abc.abstractmethod
    def hierarchy(self, levels: int, **kwargs: Any) -> SphereHierarchy:
        """The graphs of the data set's sampling, finest (the samples' nodes) first."""

    def extra_repr(self) -> str:
        """The subclass's own arguments, ``"name=value, ..."``, for :meth:`__repr__`."""
        return ""

    def __repr__(self) -> str:
        extra = self.extra_repr()
        return (f"{self.__class__.__name__}(split={self.split!r}, "
                f"num_samples={self.num_samples}, seed={self.seed}"
                f"{', ' + extra if extra else ''})")


class RelativeNoiseMixin:
    r"""The added white noise of map data sets whose ``noise`` is relative to the signal.

    White Gaussian noise of standard deviation :math:`\sigma_n` = ``noise * pixel_std``
    is added to every pixel of an :math:`N_\mathrm{pix}`-pixel map. The class using it
    sets ``noise``, ``npix`` and ``pixel_std`` (the standard deviation of its noiseless
    maps).
    """

    noise: float
    npix: int
    pixel_std: float

    @property
    def noise_std(self) -> float:
        """Standard deviation of the added white noise, ``noise * pixel_std``."""
        return self.noise * self.pixel_std

    @property
    def noise_cl(self) -> float:
        r"""Flat spectrum of the noise, :math:`\sigma_n^2\, 4\pi / N_\mathrm{pix}`."""
        return self.noise_std**2 * 4 * np.pi / self.npix
