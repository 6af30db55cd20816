"""Named experiments: a data set, a model and training defaults that work together.

``deepsphere-pyg experiments`` lists them and ``deepsphere-pyg train --experiment NAME`` runs
one. The configuration of an experiment (see :mod:`deepsphere_pyg.training.config`) holds
*every* argument of its data set and model, with the experiment's choices filled in, so
any of them can be changed with ``--set data.ARG=...`` / ``--set model.ARG=...``.

Tasks:

- ``"classification"``: one class per map (``SphereSignal.y``), cross-entropy loss,
  accuracy and a confusion matrix.
- ``"segmentation"``: one class per node (``y_node``, valid where ``node_mask``).
- ``"regression"``: real targets per node (``y_node [N, T]``), mean squared error and
  :math:`R^2`.

Data set and model classes are named here (``"package.module:Class"``) and imported when
first needed (building an experiment's full configuration, or running it): listing the
experiments and checking the training options of a configuration import neither torch nor
PyTorch Geometric.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
import inspect
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .config import Config

if TYPE_CHECKING:
    from torch import nn

    from ..data import SyntheticSphereDataset
    from ..graphs import SphereHierarchy

#: Task names and whether their targets are per node.
TASKS = {"classification": False, "segmentation": True, "regression": True}


def _split_reference(reference: str) -> tuple[str, str]:
    """``"package.module:Class"`` -> ``("package.module", "Class")``.

    Raises:
        ValueError: ``reference`` is not of that form.
    """
    module, sep, name = reference.partition(":")
    if not sep or not module or not name:
        raise ValueError(f"a class reference must read 'package.module:Class', got "
                         f"{reference!r}")
    return module, name


def import_class(reference: str) -> type:
    """The class named by ``reference``, ``"package.module:Class"`` (imported).

    Raises:
        ValueError: ``reference`` is not of that form.
        ImportError: no such module, or no such class in it.
    """
    module, name = _split_reference(reference)
    try:
        return getattr(importlib.import_module(module), name)
    except AttributeError as error:
        raise ImportError(f"module {module!r} has no class {name!r}") from error


def class_name(reference: type | str) -> str:
    """The name of a class or of a class reference (``"package.module:Class"``), without
    importing it."""
    return reference.rpartition(":")[2] if isinstance(reference, str) else reference.__name__


class ClassRegistry(MutableMapping[str, type]):
    """A mapping name -> class whose classes may be given by reference
    (``"package.module:Class"``, :func:`import_class`), imported when first looked up;
    names, membership and :meth:`name_of` need no import."""

    def __init__(self, classes: Mapping[str, type | str] = ()) -> None:
        self._classes: dict[str, type | str] = dict(classes)

    def __getitem__(self, name: str) -> type:
        value = self._classes[name]
        if isinstance(value, str):
            value = self._classes[name] = import_class(value)
        return value

    def __setitem__(self, name: str, value: type | str) -> None:
        if isinstance(value, str):
            _split_reference(value)
        self._classes[name] = value

    def __delitem__(self, name: str) -> None:
        del self._classes[name]

    def __contains__(self, name: object) -> bool:
        return name in self._classes

    def __iter__(self) -> Iterator[str]:
        return iter(self._classes)

    def __len__(self) -> int:
        return len(self._classes)

    def name_of(self, name: str) -> str:
        """The class name registered under ``name``, without importing it."""
        return class_name(self._classes[name])

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._classes!r})"


#: Models an experiment may name in ``model.name`` (``MODELS[name]`` imports the class).
MODELS: ClassRegistry = ClassRegistry({
    "deepsphere": "deepsphere_pyg.models:DeepSphere",
    "unet": "deepsphere_pyg.models:SphericalUNet",
})

#: Keys of ``data`` read by the engine, not passed to the data set.
DATA_ENGINE_KEYS = ("train_samples", "val_samples", "test_samples", "cache", "normalize",
                    "normalization", "test_overrides")

#: Keys of ``model`` read by the engine, not passed to the model.
MODEL_ENGINE_KEYS = ("name",)

#: The ``graph`` section: the hierarchy the model is built on. ``levels`` graphs of the
#: data set's sampling, ``k`` neighbours per node (one value or one per level, finest
#: first), ``edges`` the edge recipe (``"knn"`` or ``"neighbours"``) and ``kernel`` the
#: edge-weight rule of the sampling's builder (``None``: the builder's default, k-NN with
#: the sampling's tuned width).
GRAPH_DEFAULTS: Config = {"levels": 3, "k": 8, "edges": None, "kernel": None}

#: Arguments that the engine supplies itself (never in a configuration).
_SUPPLIED = {"self", "split", "num_samples", "seed", "transform", "cache", "hierarchy",
             "in_channels", "out_channels", "scattering"}

TRAIN_DEFAULTS: Config = {
    "epochs": 10,
    "batch_size": 32,
    "eval_batch_size": 64,
    "optimizer": "adam",
    "lr": 3e-3,
    "weight_decay": 0.0,
    "scheduler": "cosine",
    "patience": None,
    "monitor": "val_loss",
    "gradient_clip": None,
    # Training batches over which batch-norm statistics are recomputed before every
    # validation (0: off; BatchNormRecalibration).
    "recalibrate_bn": 0,
    "num_workers": 0,
    # CPU threads per process (None: torch's default). The experiments' graphs are small:
    # one thread avoids the waits of several threads on a busy machine, which cost far
    # more than they save (BENCHMARKS.md, "Default training run").
    "threads": 1,
    "accelerator": "auto",
    "progress": True,
}


class _ClassField:
    """A dataclass field holding a class, set to the class or to a class reference
    (``"package.module:Class"``) and read as the class, imported on first read."""

    def __set_name__(self, owner: type, name: str) -> None:
        self._slot = f"_{name}_value"

    def __get__(self, instance: Any, owner: type | None = None) -> type:
        if instance is None:
            # Class access: the field has no default value (dataclasses' convention).
            raise AttributeError(self._slot)
        value = instance.__dict__[self._slot]
        if isinstance(value, str):
            value = instance.__dict__[self._slot] = import_class(value)
        return value

    def __set__(self, instance: Any, value: type | str) -> None:
        if isinstance(value, str):
            _split_reference(value)
        elif not isinstance(value, type):
            raise TypeError(f"expected a class or a 'package.module:Class' reference, got "
                            f"{value!r}")
        instance.__dict__[self._slot] = value

    def reference(self, instance: Any) -> type | str:
        """The value as set: the class, or its reference if not imported yet."""
        return instance.__dict__[self._slot]


@dataclass(frozen=True)
class Experiment:
    """A named task: data set, model, training defaults.

    Attributes:
        name: command-line name.
        description: one line for ``deepsphere-pyg experiments``.
        dataset: the data set class (a :class:`SyntheticSphereDataset`); it may be given
            as a reference ``"package.module:Class"``, imported when first read.
        task: a key of :data:`TASKS`, or ``"auto"``: the task follows the data
            configuration (``task_rule``, e.g. the kind of target of the user's files).
        data: the data set's arguments chosen by the experiment (others keep the class
            defaults), and engine keys (:data:`DATA_ENGINE_KEYS`).
        graph: changes to :data:`GRAPH_DEFAULTS` (``levels``, ``k``, ``kernel``).
        model: ``name`` and the model's arguments.
        train: changes to :data:`TRAIN_DEFAULTS`.
        class_names: names of the classes (classification and segmentation), or a
            function of the data configuration giving them.
        task_rule: with ``task="auto"``, the function of the data configuration giving
            the task.
        models_by_task: the model section to start from for each task (``task="auto"``;
            a configuration that names ``model.name`` starts from that model instead).
        user_data: the experiment reads the user's files (no built-in data).
    """

    name: str
    description: str
    dataset: type[SyntheticSphereDataset] = _ClassField()  # type: ignore[assignment]
    task: str
    data: Mapping[str, Any]
    model: Mapping[str, Any]
    graph: Mapping[str, Any] = field(default_factory=dict)
    train: Mapping[str, Any] = field(default_factory=dict)
    class_names: tuple[str, ...] | Callable[[Mapping[str, Any]], tuple[str, ...]] = ()
    task_rule: Callable[[Mapping[str, Any]], str] | None = None
    models_by_task: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    user_data: bool = False

    def variant(self, **changes: Any) -> Experiment:
        """A copy with ``changes`` to its fields (the data set class is not imported)."""
        dataset = Experiment.__dict__["dataset"].reference(self)
        return dataclasses.replace(self, **{"dataset": dataset, **changes})

    def defaults(self, model: Mapping[str, Any] | None = None) -> Config:
        """The full configuration: every data set, graph and model argument, engine
        defaults (imports the data set and the model). ``model``: the model section to
        start from (default: the experiment's, :meth:`model_section`)."""
        model = self.model if model is None else model
        return self._configuration(keyword_defaults(self.dataset.__init__),
                                   keyword_defaults(MODELS[model["name"]].__init__), model)

    def outline(self, model: Mapping[str, Any] | None = None) -> Config:
        """The part of :meth:`defaults` known without importing the data set and the model:
        every key but their own arguments (those that the experiment sets are kept, with
        the same values)."""
        return self._configuration({}, {}, self.model if model is None else model)

    def task_for(self, data: Mapping[str, Any]) -> str:
        """The task of a run whose data section is ``data``."""
        if self.task != "auto":
            return self.task
        return self.task_rule(data)

    def model_section(self, data: Mapping[str, Any], name: str | None = None
                      ) -> Mapping[str, Any]:
        """The model section a run starts from: the model ``name`` (with its own
        defaults) when it is not the experiment's, else the experiment's model for the
        run's task (:attr:`models_by_task`), else :attr:`model`."""
        if name is not None and name != self.model["name"]:
            if name not in MODELS:
                raise ValueError(f"model.name must be one of {sorted(MODELS)}, got {name!r}")
            chosen = [section for section in self.models_by_task.values()
                      if section["name"] == name]
            return chosen[0] if chosen else {"name": name}
        if self.models_by_task:
            try:
                task = self.task_for(data)
            except ValueError:
                return self.model
            return self.models_by_task.get(task, self.model)
        return self.model

    def _configuration(self, data_arguments: Mapping[str, Any],
                       model_arguments: Mapping[str, Any],
                       model_section: Mapping[str, Any]) -> Config:
        data = {"train_samples": None, "val_samples": None, "test_samples": None,
                "cache": True, "normalize": False, "normalization": {},
                "test_overrides": {}}
        data.update(data_arguments)
        data.update(copy.deepcopy(dict(self.data)))
        graph = copy.deepcopy(GRAPH_DEFAULTS)
        graph.update(copy.deepcopy(dict(self.graph)))
        model = {"name": model_section["name"]}
        model.update(model_arguments)
        model.update(copy.deepcopy(dict(model_section)))
        train = copy.deepcopy(TRAIN_DEFAULTS)
        train.update(copy.deepcopy(dict(self.train)))
        return {"experiment": self.name, "seed": 0, "data": data, "graph": graph,
                "model": model, "train": train}

    @property
    def dataset_name(self) -> str:
        """The name of the data set class, without importing it."""
        return class_name(Experiment.__dict__["dataset"].reference(self))

    def names_of_classes(self, data: Mapping[str, Any]) -> tuple[str, ...]:
        names = self.class_names
        return tuple(names(data)) if callable(names) else tuple(names)


def keyword_defaults(function: Callable[..., Any]) -> dict[str, Any]:
    """Arguments of ``function`` with defaults that a configuration may set (tuples as
    lists, so that the configuration is plain YAML)."""
    values = {}
    for name, parameter in inspect.signature(function).parameters.items():
        if name in _SUPPLIED or parameter.default is inspect.Parameter.empty:
            continue
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        default = parameter.default
        values[name] = list(default) if isinstance(default, tuple) else default
    return values


def _digit_names(data: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(str(digit) for digit in range(10))


def _segment_names(data: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(f"class {index}" for index in range(int(data["num_classes"])))


EXPERIMENTS: dict[str, Experiment] = {}


def register(experiment: Experiment) -> Experiment:
    """Add an experiment to :data:`EXPERIMENTS` (names must be new)."""
    if experiment.name in EXPERIMENTS:
        raise ValueError(f"an experiment named {experiment.name!r} exists already")
    if experiment.task not in TASKS and experiment.task != "auto":
        raise ValueError(f"task must be one of {sorted(TASKS)} or 'auto', got "
                         f"{experiment.task!r}")
    if experiment.task == "auto" and experiment.task_rule is None:
        raise ValueError("an experiment with task='auto' needs a task_rule")
    if experiment.model.get("name") not in MODELS:
        raise ValueError(f"model name must be one of {sorted(MODELS)}, got "
                         f"{experiment.model.get('name')!r}")
    EXPERIMENTS[experiment.name] = experiment
    return experiment


DIGITS = register(Experiment(
    name="digits",
    description="spherical digits (sklearn 8x8 digits on a HEALPix nside-16 sphere), "
                "10 classes, DeepSphere with a fully connected head",
    dataset="deepsphere_pyg.data:SphericalDigits", task="classification",
    data={"nside": 16, "rotate": False},
    graph={"levels": 3},
    model={"name": "deepsphere", "channels": [16, 32, 64], "K": 5,
           "head": "fc"},
    train={"epochs": 6, "batch_size": 32, "lr": 3e-3},
    class_names=_digit_names,
))

register(DIGITS.variant(
    name="digits-rotated",
    description="spherical digits under Haar-random rotations (train and test), "
                "rotation-invariant DeepSphere (statistic head)",
    data={"nside": 16, "rotate": True},
    model={"name": "deepsphere", "channels": [32, 64, 128], "K": 5,
           "head": "statistic", "statistic": "meanvar"},
    train={"epochs": 15, "batch_size": 32, "lr": 3e-3},
))

register(Experiment(
    name="cosmology",
    description="two-cosmology weak-lensing convergence maps (spectra matched over "
                "l = 100-1500), nside 512 order-4 patches of 16384 pixels (the DeepSphere "
                "v1 task at half its resolution), noise 0.5 drawn anew every epoch, "
                "DeepSphere statistic head",
    dataset="deepsphere_pyg.data:CosmologyMaps", task="classification",
    data={"nside": 512, "order": 4, "noise": 0.5, "normalize": True, "fresh_noise": True},
    graph={"levels": 5},
    model={"name": "deepsphere", "channels": [16, 32, 64, 64, 64],
           "K": 5, "head": "statistic", "statistic": "meanvar"},
    train={"epochs": 10, "batch_size": 16, "lr": 1e-3, "recalibrate_bn": 16},
    class_names=("cosmology 1", "cosmology 2"),
))

register(Experiment(
    name="cmb",
    description="Gaussian vs power-modulated CMB temperature maps (same spectrum, "
                "one-point statistics near chance), full sky HEALPix nside 32, DeepSphere "
                "statistic head",
    dataset="deepsphere_pyg.data:CMBMaps", task="classification",
    data={"nside": 32, "normalize": True},
    # Mean pooling keeps the local small-scale power (the class signal) as a local average.
    graph={"levels": 3},
    model={"name": "deepsphere", "channels": [16, 32, 64], "K": 5,
           "pool": "mean", "head": "statistic", "statistic": "meanvar"},
    train={"epochs": 10, "batch_size": 16, "lr": 1e-3},
    class_names=("Gaussian", "non-Gaussian"),
))

register(Experiment(
    name="segmentation",
    description="per-pixel labels of the extreme regions of a smooth random field "
                "(HEALPix nside 32, 3 classes), spherical U-Net",
    dataset="deepsphere_pyg.data:SegmentationMaps", task="segmentation",
    data={"nside": 32, "num_classes": 3},
    graph={"levels": 3},
    model={"name": "unet", "channels": [16, 32, 64], "K": 3},
    train={"epochs": 8, "batch_size": 16, "lr": 3e-3},
    class_names=_segment_names,
))

register(Experiment(
    name="stations",
    description="forecast a field advected over the world's cities (a non-HEALPix point "
                "graph, one step ahead from 4 past steps), spherical U-Net regression",
    dataset="deepsphere_pyg.data:StationsField", task="regression",
    data={"normalize": True},
    graph={"levels": 3},
    model={"name": "unet", "channels": [16, 32, 64], "K": 3},
    train={"epochs": 8, "batch_size": 16, "lr": 3e-3},
))

def _files_task(data: Mapping[str, Any]) -> str:
    from ..data.sources.targets import task_of_data  # light: no torch

    return task_of_data(data)


def _file_class_names(data: Mapping[str, Any]) -> tuple[str, ...]:
    if data.get("class_names"):
        return tuple(str(name) for name in data["class_names"])
    if data.get("num_classes"):
        return tuple(str(index) for index in range(int(data["num_classes"])))
    return ()


register(Experiment(
    name="files",
    description="your own files: data.source healpix (FITS / .npy / HealSparse maps), grid "
                "(netCDF / zarr lat-lon fields) or stations (CSV / Parquet tables), with "
                "data.labels (classification), data.target (per-node regression or, with "
                "data.num_classes, segmentation) or data.lead (forecast)",
    dataset="deepsphere_pyg.data.sources:FileData", task="auto", task_rule=_files_task,
    # Samples are read from the files at every epoch (cache: true keeps them in memory).
    data={"normalize": True, "cache": False,
          "splits": {"train": 0.8, "val": 0.1, "test": 0.1}},
    graph={"levels": 3},
    model={"name": "unet", "channels": [16, 32, 64], "K": 3},
    models_by_task={
        "classification": {"name": "deepsphere", "channels": [16, 32, 64], "K": 5,
                           "head": "statistic", "statistic": "meanvar"},
        "segmentation": {"name": "unet", "channels": [16, 32, 64], "K": 3},
        "regression": {"name": "unet", "channels": [16, 32, 64], "K": 3},
    },
    train={"epochs": 10, "batch_size": 8, "lr": 3e-3},
    class_names=_file_class_names,
    user_data=True,
))

#: The experiment of ``deepsphere-pyg train`` without arguments.
DEFAULT_EXPERIMENT = "digits"


def get_experiment(name: str) -> Experiment:
    """The registered experiment ``name``.

    Raises:
        ValueError: unknown name, listing the known ones.
    """
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; known experiments: "
                         f"{', '.join(EXPERIMENTS)} (deepsphere-pyg experiments lists them)")
    return EXPERIMENTS[name]


def dataset_arguments(data: Mapping[str, Any], split: str) -> dict[str, Any]:
    """Keyword arguments of the data set class for ``split`` (engine keys removed, test
    overrides applied to the test split)."""
    arguments = {key: copy.deepcopy(value) for key, value in data.items()
                 if key not in DATA_ENGINE_KEYS}
    if split == "test":
        arguments.update(copy.deepcopy(dict(data.get("test_overrides") or {})))
    return arguments


def model_arguments(model: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments of the model class (engine keys removed)."""
    return {key: copy.deepcopy(value) for key, value in model.items()
            if key not in MODEL_ENGINE_KEYS}


def build_hierarchy(dataset: SyntheticSphereDataset, graph: Mapping[str, Any]
                    ) -> SphereHierarchy:
    """The data set's hierarchy as the ``graph`` section asks: ``levels`` graphs, ``k``
    neighbours, ``edges`` and ``kernel`` (left to the sampling's defaults when ``None``)."""
    options = {"k": graph["k"]}
    options.update({key: graph[key] for key in ("edges", "kernel")
                    if graph.get(key) is not None})
    return dataset.hierarchy(int(graph["levels"]), **options)


def build_model(model: Mapping[str, Any], hierarchy: SphereHierarchy, in_channels: int,
                out_channels: int) -> nn.Module:
    """The model named by ``model.name`` on ``hierarchy``.

    Raises:
        ValueError: unknown model name, listing the known ones.
    """
    name = model.get("name")
    if name not in MODELS:
        raise ValueError(f"model.name must be one of {sorted(MODELS)}, got {name!r}")
    return MODELS[name](hierarchy, in_channels, out_channels, **model_arguments(model))
