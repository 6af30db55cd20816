"""Training engine (PyTorch Lightning): experiments, configurations, runs, predictions.

- :func:`resolve_config` / :func:`train`: what ``deepsphere-pyg train`` runs, also under
  ``torchrun`` (DDP).
- :data:`EXPERIMENTS`: the named experiments (data set, model, training defaults).
- :class:`SphereTask`: the Lightning module around any of the library's models.

The names are imported from their submodules on first use: the experiments and the
configuration checks need neither Lightning nor PyTorch Geometric, so ``deepsphere-pyg
train`` reports a configuration error before importing them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from .engine import RunResult, train
    from .experiments import DEFAULT_EXPERIMENT, EXPERIMENTS, Experiment, get_experiment
    from .resolution import resolve_config
    from .task import SphereTask

__all__ = [
    "DEFAULT_EXPERIMENT",
    "EXPERIMENTS",
    "Experiment",
    "RunResult",
    "SphereTask",
    "get_experiment",
    "resolve_config",
    "train",
]

__getattr__, __dir__ = lazy_exports(__name__, {
    "RunResult": "engine",
    "train": "engine",
    "DEFAULT_EXPERIMENT": "experiments",
    "EXPERIMENTS": "experiments",
    "Experiment": "experiments",
    "get_experiment": "experiments",
    "resolve_config": "resolution",
    "SphereTask": "task",
}, __all__)
