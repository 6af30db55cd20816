"""Training engine (PyTorch Lightning): experiments, configurations, runs, predictions.

- :func:`resolve_config` / :func:`train`: what ``deepsphere-pyg train`` runs, also under
  ``torchrun`` (DDP).
- :data:`EXPERIMENTS`: the named experiments (data set, model, training defaults).
- :class:`SphereTask`: the Lightning module around any of the library's models.
"""

from .engine import RunResult, resolve_config, train
from .experiments import DEFAULT_EXPERIMENT, EXPERIMENTS, Experiment, get_experiment
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
