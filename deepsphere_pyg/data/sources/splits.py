r"""Train / validation / test splits of a user's samples, by fraction or by key range.

``data.splits`` takes one of two forms:

* **fractions**, ``{train: 0.8, val: 0.1, test: 0.1}`` (summing to 1 or less): the samples
  are shuffled with ``split_seed`` and cut in that order, for independent samples (maps
  with labels). For time series (forecasts, ``ordered=True``) the cut is made in time
  order without shuffling: training on the first part, validating on the next, testing on
  the last, so that no test step lies between training steps;
* **ranges**, ``{train: [start, stop], val: [start, stop], test: [start, stop]}``: the
  samples whose key lies in ``start <= key < stop`` (keys are the source's
  :attr:`~deepsphere_pyg.data.sources.base.FileSource.keys`: sample indices, or times
  given as ISO strings such as ``"2019-01-01"``); ``null`` leaves a bound open.

The three splits never share a sample; each must hold at least one.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..base import SPLITS

#: The default ``data.splits``.
DEFAULT_SPLIT = {"train": 0.8, "val": 0.1, "test": 0.1}


def split_indices(keys: np.ndarray, candidates: np.ndarray, split: Mapping[str, Any] | None,
                  seed: int, ordered: bool) -> dict[str, np.ndarray]:
    """The sample indices of each split.

    Args:
        keys: ``[M]`` sample keys (integers or ``datetime64``), increasing.
        candidates: indices of the samples that may enter a split (a forecast needs its
            history and its lead inside the data), increasing.
        split: fractions or ranges per split (module doc); ``None``: :data:`DEFAULT_SPLIT`.
        seed: the shuffle seed of fractional splits.
        ordered: cut fractional splits in key order (time series) instead of shuffling.

    Returns:
        ``{"train": [M_train], "val": [M_val], "test": [M_test]}`` increasing indices.

    Raises:
        ValueError: naming ``data.splits`` and the fault (unknown split name, a missing
            split, fractions out of ``(0, 1]`` or summing over 1, a bad range, an empty
            split, overlapping ranges).
    """
    split = dict(DEFAULT_SPLIT if split is None else split)
    if not isinstance(split, Mapping) or set(split) != set(SPLITS):
        raise ValueError(f"data.splits must give train, val and test (fractions such as "
                         f"{DEFAULT_SPLIT} or ranges [start, stop]), got {split!r}")
    values = [split[name] for name in SPLITS]
    if all(_is_number(value) for value in values):
        chosen = _by_fraction(candidates, values, seed, ordered)
    elif all(isinstance(value, Sequence) and not isinstance(value, str) for value in values):
        chosen = _by_range(keys, candidates, values)
    else:
        raise ValueError("data.splits: give every split as a fraction (0.8) or every split "
                         f"as a range [start, stop], not a mix: got {split!r}")
    for name, indices in zip(SPLITS, chosen, strict=True):
        if indices.size == 0:
            raise ValueError(f"data.splits: the {name} split holds no sample ({split[name]!r} "
                             f"of {candidates.size} usable samples); widen it")
    return dict(zip(SPLITS, chosen, strict=True))


def _is_number(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _by_fraction(candidates: np.ndarray, fractions: list[float], seed: int, ordered: bool
                 ) -> list[np.ndarray]:
    for name, fraction in zip(SPLITS, fractions, strict=True):
        if not 0 < fraction <= 1:
            raise ValueError(f"data.splits.{name} must be a fraction in (0, 1], got {fraction!r}")
    if sum(fractions) > 1 + 1e-9:
        raise ValueError(f"data.splits fractions sum to {sum(fractions):g} > 1; make them sum "
                         "to 1 or less")
    order = candidates if ordered else np.random.default_rng(seed).permutation(candidates)
    total = candidates.size
    # Cumulative rounding: every sample is in at most one split, sizes within one of the
    # fraction of the total.
    bounds = np.rint(np.cumsum([0.0, *fractions]) * total).astype(int)
    return [np.sort(order[bounds[i]:bounds[i + 1]]) for i in range(len(SPLITS))]


def _by_range(keys: np.ndarray, candidates: np.ndarray, ranges: list[Sequence[Any]]
              ) -> list[np.ndarray]:
    chosen = []
    usable = keys[candidates]
    for name, bounds in zip(SPLITS, ranges, strict=True):
        if len(bounds) != 2:
            raise ValueError(f"data.splits.{name} must be [start, stop], got {list(bounds)!r}")
        start, stop = (_key(bound, keys, name) for bound in bounds)
        inside = np.ones(usable.size, dtype=bool)
        if start is not None:
            inside &= usable >= start
        if stop is not None:
            inside &= usable < stop
        chosen.append(candidates[inside])
    for first in range(len(SPLITS)):
        for second in range(first + 1, len(SPLITS)):
            common = np.intersect1d(chosen[first], chosen[second])
            if common.size:
                raise ValueError(f"data.splits: the {SPLITS[first]} and {SPLITS[second]} "
                                 f"ranges share {common.size} sample(s) (key "
                                 f"{keys[common[0]]}); make the ranges disjoint "
                                 "(stop is excluded)")
    return chosen


def _key(bound: object, keys: np.ndarray, name: str) -> Any:
    """A range bound as a key: ``None``, an integer index, or a time."""
    if bound is None:
        return None
    if np.issubdtype(keys.dtype, np.datetime64):
        if not isinstance(bound, str):
            raise ValueError(f"data.splits.{name}: {bound!r} is not a time (the samples are "
                             "indexed by time: give ISO dates such as '2019-01-01', quoted)")
        try:
            return np.datetime64(str(bound)).astype(keys.dtype)
        except ValueError as error:
            raise ValueError(f"data.splits.{name}: {bound!r} is not a time (the samples are "
                             "indexed by time: give ISO dates such as '2019-01-01')"
                             ) from error
    if not _is_number(bound) or int(bound) != bound:
        raise ValueError(f"data.splits.{name}: {bound!r} is not a sample index (the samples "
                         "have no time axis: give integers)")
    return int(bound)
