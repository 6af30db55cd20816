"""The configuration of a run: an experiment's defaults, YAML files, ``KEY=VALUE`` overrides,
checked.

:func:`resolve_config` is what ``deepsphere-pyg train`` and :func:`deepsphere_pyg.training.
resolve_config` run. It imports neither Lightning nor PyTorch Geometric, and reports the
errors that need no data set or model class (a missing or broken file, an unknown
experiment, section or key, a bad training option) before importing those classes: the
full configuration holds every argument of the data set and of the model, read from their
signatures (:meth:`~deepsphere_pyg.training.experiments.Experiment.defaults`), whereas
these checks run on the part known without them
(:meth:`~deepsphere_pyg.training.experiments.Experiment.outline`). The early checks run
only as long as every key they meet is in that part, so they report the same error, in
the same order, as the full resolution.
"""

from __future__ import annotations

import numbers
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from . import config as configuration
from .experiments import DEFAULT_EXPERIMENT, Experiment, get_experiment

#: The sections whose keys are, besides the engine's own, the arguments of the data set
#: and of the model (known once their classes are imported).
_CLASS_SECTIONS = ("data", "model")


def resolve_config(experiment: str | None = None, config_files: Sequence[str] = (),
                   overrides: Sequence[str] = ()) -> dict[str, Any]:
    """The configuration of a run: the experiment's defaults, then the YAML files, then
    the ``KEY=VALUE`` overrides.

    The experiment is ``experiment`` if given, else the ``experiment`` key of the last
    file naming one, else :data:`DEFAULT_EXPERIMENT`.

    Raises:
        ValueError: unknown experiment, unknown keys, bad values (see
            :func:`check_config`); a file or override that names another experiment.
        FileNotFoundError: a missing ``--config`` file.
    """
    files = [configuration.load_yaml(path) for path in config_files]
    named = [content["experiment"] for content in files if "experiment" in content]
    name = experiment or (named[-1] if named else DEFAULT_EXPERIMENT)
    chosen = get_experiment(name)
    model = _model_section(chosen, files, overrides)
    # The moved keys warn once, in the full resolution.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        _check_outline(chosen.outline(model), files, overrides, name)
    resolved = _settle_paths(configuration.resolve(chosen.defaults(model), files, overrides))
    _check_resolved(resolved, name)
    return resolved


def _settle_paths(config: dict[str, Any]) -> dict[str, Any]:
    """File paths of an experiment on the user's files made absolute (globs expanded):
    :func:`~deepsphere_pyg.data.sources.targets.absolute_paths`."""
    if get_experiment(config["experiment"]).user_data:
        from ..data.sources.targets import absolute_paths  # light: no torch

        config["data"] = absolute_paths(config["data"])
    return config


def _model_section(experiment: Experiment, files: Sequence[Mapping[str, Any]],
                   overrides: Sequence[str]) -> Mapping[str, Any]:
    """The model section a run starts from (:meth:`Experiment.model_section`): the
    ``model.name`` and the data keys that decide the task, as the files and overrides set
    them (the last wins), read before the configuration is resolved, since the model's
    arguments are keys of the configuration."""
    data = dict(experiment.data)
    name = None
    changes = [content for content in files]
    changes += [configuration.nest_override(*configuration.parse_override(text))
                for text in overrides]
    for change in changes:
        if isinstance(change.get("data"), Mapping):
            data.update(change["data"])
        if isinstance(change.get("model"), Mapping) and "name" in change["model"]:
            name = change["model"]["name"]
    return experiment.model_section(data, name)


def _check_outline(outline: Mapping[str, Any], files: Sequence[Mapping[str, Any]],
                   overrides: Sequence[str], name: str) -> None:
    """Resolve the changes on ``outline`` as :func:`configuration.resolve` does, raising
    its errors and those of :func:`_check_resolved`; stop, silently, at the first change
    naming a data set or model argument absent from ``outline``, which only the full
    defaults can check."""
    config = dict(outline)
    changes = [(f"--config (file {index + 1})", content)
               for index, content in enumerate(files)]
    changes += [(f"--set {text!r}", text) for text in overrides]
    for source, change in changes:
        if isinstance(change, str):
            change = configuration.nest_override(*configuration.parse_override(change))
        change = configuration.migrate(change, source=source)
        if _needs_classes(config, change):
            return
        config = configuration.merge(config, change, source=source)
    _check_resolved(config, name)


def _needs_classes(config: Mapping[str, Any], change: Mapping[str, Any]) -> bool:
    """Whether ``change`` sets a key of the data or model section that ``config`` lacks."""
    for section in _CLASS_SECTIONS:
        known, changed = config.get(section), change.get(section)
        if isinstance(known, Mapping) and isinstance(changed, Mapping) and any(
                key not in known for key in changed):
            return True
    return False


def _check_resolved(config: Mapping[str, Any], name: str) -> None:
    if config["experiment"] != name:
        raise ValueError(f"the configuration names experiment {config['experiment']!r} "
                         f"but the run is {name!r}: choose it with --experiment")
    check_config(config)


def _positive_int(value: Any, key: str, minimum: int = 1) -> int:
    if (isinstance(value, bool) or not isinstance(value, numbers.Integral)
            or value < minimum):
        raise ValueError(f"{key} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_config(config: Mapping[str, Any]) -> None:
    """Check the engine's own keys (the data set and model check theirs when built).

    Raises:
        ValueError: naming the key, the bad value and what is expected.
    """
    train = config["train"]
    _positive_int(config["seed"], "seed", 0)
    for key in ("epochs", "batch_size", "eval_batch_size"):
        _positive_int(train[key], f"train.{key}")
    _positive_int(train["num_workers"], "train.num_workers", 0)
    _positive_int(train["recalibrate_bn"], "train.recalibrate_bn", 0)
    for key in ("lr", "weight_decay"):
        value = train[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or (
                key == "lr" and value == 0):
            raise ValueError(f"train.{key} must be a number {'> 0' if key == 'lr' else '>= 0'}"
                             f", got {value!r}")
    if train["patience"] is not None:
        _positive_int(train["patience"], "train.patience")
    if train["threads"] is not None:
        _positive_int(train["threads"], "train.threads")
    if train["gradient_clip"] is not None and (
            not isinstance(train["gradient_clip"], (int, float)) or train["gradient_clip"] <= 0):
        raise ValueError(f"train.gradient_clip must be null or a number > 0, got "
                         f"{train['gradient_clip']!r}")
    if train["accelerator"] not in ("auto", "cpu", "gpu", "cuda"):
        raise ValueError(f"train.accelerator must be 'auto', 'cpu' or 'gpu', got "
                         f"{train['accelerator']!r}")
    task = get_experiment(config["experiment"]).task_for(config["data"])
    metrics = ["val_loss"] + (["val_mse", "val_r2"] if task == "regression"
                              else ["val_accuracy"])
    if train["monitor"] not in metrics:
        raise ValueError(f"train.monitor must be one of {metrics} for a {task} task, got "
                         f"{train['monitor']!r}")
    data = config["data"]
    for key in ("train_samples", "val_samples", "test_samples"):
        if data[key] is not None:
            _positive_int(data[key], f"data.{key}")
    if not isinstance(data["normalization"], Mapping):
        raise ValueError("data.normalization must be a mapping {mean: [...], std: [...]} "
                         f"or empty, got {data['normalization']!r}")
    graph = config["graph"]
    _positive_int(graph["levels"], "graph.levels")
    ks = graph["k"] if isinstance(graph["k"], list) else [graph["k"]]
    for index, k in enumerate(ks):
        _positive_int(k, "graph.k" if len(ks) == 1 else f"graph.k[{index}]")


def resume_config(folder: str | os.PathLike, experiment: str | None = None,
                  config_files: Sequence[str] = (), overrides: Sequence[str] = ()
                  ) -> dict[str, Any]:
    """The configuration that resumes the run in ``folder``: its own ``config.yaml`` (or,
    without one, the configuration stored in ``checkpoints/last.ckpt``), then the YAML
    files, then the ``KEY=VALUE`` overrides.

    Only the keys of :data:`~deepsphere_pyg.training.config.RESUME_MUTABLE` (such as
    ``train.epochs``) may differ from the run's values.

    Raises:
        FileNotFoundError: ``folder`` holds no run (neither file).
        ValueError: ``experiment`` is not the run's, a file or override changes a key
            that a resumed run must keep (named, with the run's value), unknown keys or
            bad values.
    """
    folder = Path(folder)
    saved = folder / "config.yaml"
    last = folder / "checkpoints" / "last.ckpt"
    if saved.is_file():
        stored = configuration.migrate(configuration.load_yaml(saved), source=str(saved))
    elif last.is_file():
        from .checkpoints import read_checkpoint_config  # torch: only without config.yaml

        stored = read_checkpoint_config(last)
    else:
        raise FileNotFoundError(f"--resume: {str(folder)!r} holds no run (no config.yaml "
                                "nor checkpoints/last.ckpt); check --output, or start the "
                                "run without --resume")
    if experiment is not None and experiment != stored.get("experiment"):
        raise ValueError(f"--experiment {experiment}: the run in {str(folder)!r} is of "
                         f"experiment {stored.get('experiment')!r}; leave --experiment out "
                         "when resuming")
    files = [configuration.load_yaml(path) for path in config_files]
    resolved = _settle_paths(configuration.resolve(stored, files, overrides))
    changed = [line.partition(":")[0] for line in configuration.differences(stored, resolved)]
    if changed:
        before, after = configuration.flatten(stored), configuration.flatten(resolved)
        details = "; ".join(f"{key}: the run has {before.get(key, '<missing>')!r}, asked "
                            f"{after.get(key, '<missing>')!r}" for key in changed)
        raise ValueError(f"--resume: {', '.join(changed)} cannot change when resuming "
                         f"({details}); a resumed run may change only "
                         f"{', '.join(configuration.RESUME_MUTABLE)}. Start a new run with "
                         "another --output to train with other settings")
    check_config(resolved)
    return resolved
