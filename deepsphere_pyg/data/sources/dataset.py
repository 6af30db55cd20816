r"""The data set of the ``files`` experiment: a user's files, their targets and a split.

One configuration shape serves every kind of file (``data.source``):

* ``healpix``: HEALPix maps (FITS, ``.npy``, HealSparse), :mod:`.healpix`;
* ``grid``: lat-lon fields in netCDF / zarr (xarray), :mod:`.grid`;
* ``stations``: station tables (CSV / Parquet), :mod:`.stations`.

**Inputs.** ``inputs`` names the variables (FITS columns, netCDF variables, table
columns) that become the input channels ``x [N, C]``; without it, every variable that is
not a target.

**Targets**, one of:

* ``labels``: one class per sample (a ``.npy`` / ``.txt`` file, a ``.csv`` with a
  ``label`` column or a single column, or a list in the YAML), in sample order:
  classification (``y``);
* ``target``: variables of the same sample, per node: regression (``y_node [N, T]``),
  or segmentation when ``num_classes`` is set (integer classes ``0 .. num_classes-1``);
* ``lead``: a forecast: the ``target`` variables (default: the inputs) ``lead`` samples
  later, from the inputs of the last ``history`` samples stacked as channels
  (``x [N, C * history]``, oldest first): regression.

**Missing values.** NaN (UNSEEN pixels, masked cells, absent stations) in an input or a
target make the node invalid in that sample: ``node_mask [N]`` is ``False`` there, the
input holds 0 (left so by the input normalisation, i.e. the training mean after it) and
the loss skips the node.

**Splits** by fraction (shuffled with ``split_seed``; in time order for forecasts) or by
key range (indices or times): :mod:`.splits`. The input normalisation is fitted by the
engine on the training split only and stored in the run's configuration.
"""

from __future__ import annotations

import functools
import json
import numbers
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...graphs import SphereHierarchy
from ...io import is_number_text
from ..base import SPLITS, check_index
from ..signal import SphereSignal
from ..transforms.normalize import channel_statistics
from . import SOURCE_OPTIONS, source_class
from .base import FileSource, expand_paths, file_stem
from .splits import split_indices
from .targets import task_of

PathLike = str | os.PathLike


class FileData(torch.utils.data.Dataset):
    r"""One split of a user's files as :class:`SphereSignal` samples (module doc).

    Args:
        split: ``"train"``, ``"val"`` or ``"test"``.
        num_samples: keep only the first ``num_samples`` of the split (``None``: all).
        seed: the run's seed (unused: the split has its own ``split_seed``).
        transform: callable applied to each sample when read (the input normalisation).
        cache: keep read samples in memory.
        source: ``"healpix"``, ``"grid"`` or ``"stations"``.
        path: a file, a glob pattern or a list of files.
        inputs: the input variables (``None``: every variable that is not a target).
        labels: one class per sample (a file or a list): classification.
        target: per-node target variables (one name or a list).
        lead: forecast this many samples ahead (the ``target`` variables, else the inputs).
        history: past samples stacked as input channels of a forecast.
        num_classes: classes of integer ``labels`` (default: the largest label + 1) or of a
            per-node ``target`` (segmentation).
        class_names: names of the classes (``num_classes`` of them).
        splits: fractions or key ranges of the three splits (:mod:`.splits`).
        split_seed: shuffle seed of fractional splits.
        normalize_target: standardise regression targets with the mean and standard
            deviation of the training split (per target; ``predict`` undoes it), so that
            the loss weighs targets of any unit alike.
        target_normalization: the statistics ``{mean: [T], std: [T]}`` (fitted when
            empty; stored in the run's configuration).
        ordering, mask, mask_ordering, check_ordering: HEALPix sources (:mod:`.healpix`).
        region, mask_variable, lat_name, lon_name, time_name: grid sources (:mod:`.grid`).
        columns, layout, duplicates, merge_distance: station tables (:mod:`.stations`).

    Raises:
        ValueError: naming the ``data.*`` key, file, variable or column and the fix.
        FileNotFoundError: a missing file.
    """

    def __init__(
        self,
        split: str = "train",
        num_samples: int | None = None,
        seed: int = 0,
        transform: Callable[[SphereSignal], SphereSignal] | None = None,
        cache: bool = False,
        *,
        source: str | None = None,
        path: PathLike | Sequence[PathLike] | None = None,
        inputs: str | Sequence[str] | None = None,
        labels: PathLike | Sequence[int] | None = None,
        target: str | Sequence[str] | None = None,
        lead: int | None = None,
        history: int = 1,
        num_classes: int | None = None,
        class_names: Sequence[str] | None = None,
        splits: Mapping[str, Any] | None = None,
        split_seed: int = 0,
        normalize_target: bool = True,
        target_normalization: Mapping[str, Sequence[float]] | None = None,
        ordering: str | None = None,
        mask: PathLike | None = None,
        mask_ordering: str | None = None,
        check_ordering: bool = True,
        region: Sequence[float] | None = None,
        mask_variable: str | None = None,
        lat_name: str | None = None,
        lon_name: str | None = None,
        time_name: str | None = None,
        columns: Mapping[str, str] | None = None,
        layout: str = "auto",
        duplicates: str = "raise",
        merge_distance: float | None = None,
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        options = {"ordering": ordering, "mask": mask, "mask_ordering": mask_ordering,
                   "check_ordering": check_ordering, "region": region,
                   "mask_variable": mask_variable, "lat_name": lat_name,
                   "lon_name": lon_name, "time_name": time_name, "columns": columns,
                   "layout": layout, "duplicates": duplicates,
                   "merge_distance": merge_distance}
        self.source = open_source(source, path, options)
        self.task = task_of(labels, target, lead, num_classes)
        self.split, self.transform = split, transform
        self.history = _int_at_least(history, "data.history", 1)
        self.lead = None if lead is None else _int_at_least(lead, "data.lead", 1)
        if lead is None and history != 1:
            raise ValueError("data.history (past samples as inputs) needs data.lead (a "
                             "forecast); remove it or set data.lead")
        known = self.source.variables
        self.target = (None if target is None
                       else self.source.check_variables(target, "data.target"))
        if inputs is None:
            # Every variable but the targets (a forecast's targets are inputs too) and
            # the variable that masks the nodes.
            remaining = [name for name in known if name != mask_variable and (
                name not in (self.target or []) or self.lead is not None)]
            self.inputs = self.source.check_variables(remaining, "data.inputs")
        else:
            self.inputs = self.source.check_variables(inputs, "data.inputs")
        if self.lead is not None and self.target is None:
            self.target = list(self.inputs)
        if self.task == "segmentation" and len(self.target) != 1:
            raise ValueError(f"data.target: segmentation (data.num_classes) takes one "
                             f"target variable of classes, got {self.target}")
        if self.lead is None and self.target is not None:
            copied = [name for name in self.target if name in self.inputs]
            if copied:
                raise ValueError(f"data.target {copied} is also in data.inputs: the model "
                                 "would learn to copy it; remove it from data.inputs, or "
                                 "set data.lead to forecast it")
        self.labels = None if labels is None else read_labels(labels,
                                                              self.source.names)
        self.num_classes = _classes(num_classes, self.labels, self.task)
        if class_names is not None and self.num_classes is not None and (
                len(class_names) != self.num_classes):
            raise ValueError(f"data.class_names has {len(class_names)} names for "
                             f"{self.num_classes} classes")
        self.class_names = None if class_names is None else [str(n) for n in class_names]
        count = self.source.num_samples
        first = self.history - 1
        last = count - (self.lead or 0)
        if last <= first:
            raise ValueError(f"the files hold {count} samples: too few for data.history "
                             f"{self.history} and data.lead {self.lead}")
        candidates = regular_windows(self.source.keys, np.arange(first, last),
                                     self.history, self.lead or 0)
        every = split_indices(self.source.keys, candidates, splits,
                              _int_at_least(split_seed, "data.split_seed", 0),
                              ordered=self.lead is not None)
        if self.lead is not None:
            every = windows_inside(every, self.source.num_samples, self.history, self.lead)
        chosen = every[split]
        if num_samples is not None:
            chosen = chosen[:_int_at_least(num_samples, f"data.{split}_samples", 1)]
        self.indices = chosen
        self.target_mean = self.target_std = None
        if self.task == "regression" and normalize_target:
            stats = dict(target_normalization or {}) or fit_targets(
                self.source, tuple(every["train"].tolist()), tuple(self.target), self.lead or 0)
            self.target_mean = np.asarray(stats["mean"], dtype=np.float64)
            self.target_std = np.asarray(stats["std"], dtype=np.float64)
            if self.target_mean.shape != (len(self.target),) or self.target_std.shape != (
                    len(self.target),) or np.any(self.target_std <= 0):
                raise ValueError(f"data.target_normalization must hold mean and std (> 0) "
                                 f"for each of the {len(self.target)} target(s), got {stats}")
        self._cache: dict[int, SphereSignal] | None = {} if cache else None

    # ------------------------------------------------------------------ samples
    def __len__(self) -> int:
        return int(self.indices.size)

    def __getitem__(self, index: int) -> SphereSignal:
        position = int(self.indices[check_index(index, len(self))])
        if self._cache is not None and position in self._cache:
            sample = self._cache[position]
        else:
            sample = self.sample(position)
            if self._cache is not None:
                self._cache[position] = sample
        return self.transform(sample.clone()) if self.transform is not None else sample

    def sample(self, position: int) -> SphereSignal:
        """The sample at source position ``position`` (untransformed)."""
        x = forecast_inputs(self.source, position, self.inputs, self.history)
        valid = np.isfinite(x).all(axis=1)
        fields: dict[str, Any] = {}
        if self.labels is not None:
            fields["y"] = torch.tensor(int(self.labels[position]))
        else:
            at = position + (self.lead or 0)
            y = self.source.read(at, self.target)
            valid &= np.isfinite(y).all(axis=1)
            y = np.where(np.isfinite(y), y, 0.0)
            if self.task == "segmentation":
                fields["y_node"] = torch.from_numpy(
                    _node_classes(y[:, 0], valid, self.num_classes, self.target[0]))
            else:
                if self.target_mean is not None:
                    y = np.where(valid[:, None], (y - self.target_mean) / self.target_std, 0.0)
                fields["y_node"] = torch.from_numpy(
                    np.ascontiguousarray(y[:, 0] if y.shape[1] == 1 else y, np.float32))
        x = np.where(valid[:, None], x, 0.0).astype(np.float32)
        return SphereSignal(x=torch.from_numpy(x), node_mask=torch.from_numpy(valid),
                            **fields)

    def normalization_positions(self, limit: int) -> np.ndarray:
        """Up to ``limit`` indices of this split spread over it (the engine fits the input
        normalisation on them: in time order, the first samples would be one season)."""
        return spread(np.arange(len(self)), limit)

    # ------------------------------------------------------------------- graphs
    def hierarchy(self, levels: int, **kwargs: Any) -> SphereHierarchy:
        """The source's graphs (:meth:`FileSource.hierarchy`)."""
        return self.source.hierarchy(levels, **kwargs)

    def settled(self) -> dict[str, Any]:
        """``data`` keys that the files decided (the input variables when ``inputs`` is
        not given, the number of classes of ``labels``, the target normalisation), stored
        in the run's configuration so that ``predict`` reads the same variables into the
        same model."""
        keys: dict[str, Any] = {"inputs": list(self.inputs)}
        if self.num_classes is not None:
            keys["num_classes"] = self.num_classes
        if self.target_mean is not None:
            keys["target_normalization"] = {"mean": self.target_mean.tolist(),
                                            "std": self.target_std.tolist()}
        return keys

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(split={self.split!r}, source="
                f"{self.source.name!r}, samples={len(self)}, inputs={self.inputs}, "
                f"task={self.task!r})")


#: Training samples read to fit the target normalisation.
FIT_SAMPLES = 256


@functools.lru_cache(maxsize=4)
def fit_targets(source: FileSource, train: tuple[int, ...], target: tuple[str, ...],
                lead: int) -> dict[str, list[float]]:
    """Mean and standard deviation of each ``target`` variable over the valid nodes of up
    to :data:`FIT_SAMPLES` training samples spread over the split (``lead`` samples after
    each), once per source and split: the three splits' data sets share it."""
    def blocks():
        for position in spread(np.asarray(train), FIT_SAMPLES):
            y = source.read(int(position) + lead, list(target))
            yield y[np.isfinite(y).all(axis=1)]

    return channel_statistics(blocks(), f"data.target {list(target)}: no valid (finite) "
                                        "value in the training split")


def spread(indices: np.ndarray, limit: int) -> np.ndarray:
    """At most ``limit`` of ``indices``, evenly spaced over them (all when fewer)."""
    if indices.size <= limit:
        return indices
    return indices[np.linspace(0, indices.size - 1, limit).round().astype(int)]


def regular_windows(keys: np.ndarray, candidates: np.ndarray, history: int, lead: int
                    ) -> np.ndarray:
    """The ``candidates`` whose window (``history`` inputs ending at the sample, the
    target ``lead`` samples later) is evenly spaced in time: a window across a gap in the
    time axis (two files a year apart, a missing day) would pair times further apart
    than ``history`` and ``lead`` say. Sources without times keep every candidate.

    Raises:
        ValueError: no window is evenly spaced.
    """
    if (history == 1 and lead == 0) or not np.issubdtype(keys.dtype, np.datetime64):
        return candidates
    steps = np.diff(keys)
    step = np.median(steps.astype(np.int64)).astype(steps.dtype)
    regular = np.concatenate([[False], steps == step])  # regular[i]: keys[i] - keys[i-1]
    good = np.cumsum(~regular)  # equal over a run of evenly spaced times
    kept = candidates[good[candidates - history + 1] == good[candidates + lead]] if (
        candidates.size) else candidates
    if kept.size == 0:
        raise ValueError(f"no sample has {history} input time(s) and a target {lead} "
                         f"step(s) later evenly spaced at the time step {step}: the time "
                         "axis has gaps; check data.path, data.history and data.lead")
    if kept.size < candidates.size:
        warnings.warn(f"{candidates.size - kept.size} of {candidates.size} forecast samples "
                      f"skipped: their inputs and target span a gap in the time axis (time "
                      f"step {step})", stacklevel=3)
    return kept


def windows_inside(splits: Mapping[str, np.ndarray], count: int, history: int, lead: int
                   ) -> dict[str, np.ndarray]:
    """Each split's samples whose whole window (inputs ``p - history + 1 .. p`` and
    target ``p + lead``) lies in no other split: no time step is seen in training as an
    input or a target and tested again.

    Raises:
        ValueError: a split left empty (too few samples for the gaps).
    """
    owner = np.full(count, -1)
    for number, name in enumerate(SPLITS):
        owner[splits[name]] = number
    kept = {}
    for number, name in enumerate(SPLITS):
        positions = splits[name]
        window = positions[:, None] + np.arange(-history + 1, lead + 1)[None, :]
        owners = owner[window]
        inside = ((owners == number) | (owners == -1)).all(axis=1)
        kept[name] = positions[inside]
        if kept[name].size == 0:
            raise ValueError(f"data.splits: the {name} split holds no forecast sample whose "
                             f"inputs and target (data.history {history}, data.lead {lead}) "
                             "stay inside it; give it more time steps")
    return kept


def forecast_inputs(source: FileSource, position: int, inputs: Sequence[str],
                    history: int) -> np.ndarray:
    """``[N, C * history]`` inputs of the sample at ``position``: the ``history`` samples
    ending there, oldest first, each ``[N, C]``."""
    parts = [source.read(position - back, inputs) for back in range(history - 1, -1, -1)]
    return parts[0] if history == 1 else np.concatenate(parts, axis=1)


def open_source(name: str | None, path: PathLike | Sequence[PathLike] | None,
                options: Mapping[str, Any]) -> FileSource:
    """The :class:`FileSource` ``name`` on ``path`` with its own ``options`` (opened once
    per set of arguments and file versions).

    Raises:
        ValueError: unknown source; an option of another source set away from its
            default (named, with the source it belongs to).
    """
    cls = source_class(name)
    foreign = {}
    for other, defaults in SOURCE_OPTIONS.items():
        if other == name:
            continue
        for key, default in defaults.items():
            if key not in cls.options and key in options and options[key] != default:
                foreign[key] = other
    if foreign:
        listed = ", ".join(f"data.{key} (a {other} option)" for key, other in foreign.items())
        raise ValueError(f"{listed} does not apply to data.source {name!r}; remove it")
    paths = expand_paths(path)
    own = {key: options.get(key, default) for key, default in cls.options.items()}
    stamp = tuple((os.fspath(p), _mtime(p)) for p in paths)
    # Files named by options (a mask) are part of the key too: a changed or moved file
    # is read again.
    version = tuple(_mtime(Path(value)) for key, value in own.items()
                    if key == "mask" and isinstance(value, (str, os.PathLike)))
    try:
        key = json.dumps(own, sort_keys=True, default=os.fspath)
    except TypeError:  # an array among the options (a mask given in Python): not cached
        return cls(paths, **own)
    return _open_cached(name, stamp, key, version)


def _mtime(path: Path) -> int:
    """Modification time of ``path`` in ns (-1 when it does not exist)."""
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return -1


@functools.lru_cache(maxsize=4)
def _open_cached(name: str, stamp: tuple[tuple[str, int], ...], options: str,
                 version: tuple[int, ...]) -> FileSource:
    """The source ``name`` on the files of ``stamp`` with the JSON ``options``, kept for
    the next data set of the same files and options (the three splits share one)."""
    return source_class(name)([Path(p) for p, _ in stamp], **json.loads(options))


def read_labels(labels: PathLike | Sequence[Any], names: Sequence[str]) -> np.ndarray:
    """Integer class labels of the samples ``names``, in sample order.

    From a list or a file: ``.npy``; ``.txt`` (one per line); ``.csv`` with a ``label``
    column (or a single column), in sample order, or matched to the samples by a column
    that names them (``name``, ``file``, ``map``, ``sample`` or ``input``: the file stems
    or times of :attr:`FileSource.names`, e.g. ``map_07``).

    Raises:
        FileNotFoundError: a missing file.
        ValueError: a file of another length than the samples, names that are missing or
            repeated, non-integer or negative labels (named, with the file).
    """
    count = len(names)
    if isinstance(labels, (str, os.PathLike)):
        file = Path(labels)
        if not file.is_file():
            raise FileNotFoundError(f"data.labels: {str(file)!r} does not exist")
        suffix = file.suffix.lower()
        if suffix == ".npy":
            values = np.load(file)
        elif suffix == ".csv":
            values = _csv_labels(file, names)
        else:
            values = np.loadtxt(file, ndmin=1)
        name = str(file)
    else:
        values, name = np.asarray(list(labels)), "data.labels"
    values = np.asarray(values).reshape(-1)
    if values.size != count:
        raise ValueError(f"{name} holds {values.size} labels for {count} samples; give one "
                         "label per sample, in sample order")
    if values.dtype.kind not in "iuf" or not np.all(np.isfinite(values)) or np.any(
            values != np.round(values)) or np.any(values < 0):
        raise ValueError(f"{name}: labels must be class indices 0, 1, 2, ... (integers "
                         ">= 0)")
    return values.astype(np.int64)


#: Columns of a labels CSV that name the samples.
NAME_COLUMNS = ("name", "file", "map", "sample", "input")


def _csv_labels(file: Path, names: Sequence[str]) -> np.ndarray:
    import csv

    with open(file, newline="", encoding="utf-8") as handle:
        rows = [row for row in csv.reader(handle) if row]
    if not rows:
        raise ValueError(f"{file} is empty; give one label per sample")
    header = [cell.strip().lower() for cell in rows[0]]
    if "label" in header:
        column = header.index("label")
        body = rows[1:]
    elif len(header) == 1:
        column = 0
        body = rows[1:] if not is_number_text(rows[0][0]) else rows
    else:
        raise ValueError(f"{file} has columns {rows[0]}: name the labels' column 'label'")
    try:
        values = np.array([float(row[column]) for row in body])
    except (ValueError, IndexError) as error:
        raise ValueError(f"{file}: the label column holds a value that is not a "
                         f"number ({error})") from error
    named = [index for index, cell in enumerate(header) if cell in NAME_COLUMNS]
    if not named or "label" not in header:
        return values
    keys = [Path(row[named[0]].strip()).name for row in body]
    stems = {file_stem(key): position for position, key in enumerate(keys)}
    if len(stems) != len(keys):
        raise ValueError(f"{file}: the {header[named[0]]!r} column names a sample twice")
    missing = [name for name in names if name not in stems]
    if missing:
        raise ValueError(f"{file}: no label for {len(missing)} sample(s), e.g. "
                         f"{missing[0]!r} (the {header[named[0]]!r} column is matched to "
                         "the file names without extension)")
    return values[[stems[name] for name in names]]


def _classes(num_classes: object, labels: np.ndarray | None, task: str) -> int | None:
    if num_classes is not None:
        count = _int_at_least(num_classes, "data.num_classes", 1)
        if labels is not None and labels.max() >= count:
            raise ValueError(f"data.labels holds class {int(labels.max())} but "
                             f"data.num_classes is {count}")
        return count
    if labels is not None:
        return int(labels.max()) + 1
    return None


def _node_classes(values: np.ndarray, valid: np.ndarray, num_classes: int | None,
                  name: str) -> np.ndarray:
    ok = values[valid]
    if ok.size and (np.any(ok != np.round(ok)) or ok.min() < 0 or ok.max() >= num_classes):
        raise ValueError(f"data.target {name!r} must hold classes 0 .. {num_classes - 1} "
                         "(integers) for segmentation (data.num_classes)")
    return np.where(valid, values, 0).astype(np.int64)


def _int_at_least(value: object, key: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{key} must be an integer >= {minimum}, got {value!r}")
    return int(value)
