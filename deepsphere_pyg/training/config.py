"""Run configurations: nested dictionaries of plain values, YAML files, dotted overrides.

A configuration has these parts::

    experiment: digits          # a name from deepsphere_pyg.training.experiments
    seed: 0
    data:  {...}                # the data set's arguments and the sizes of the splits
    graph: {...}                # the hierarchy: levels, k (per level), kernel
    model: {...}                # the model's name and arguments
    train: {...}                # optimiser, schedule, epochs, early stopping, loaders

An experiment supplies the defaults; a YAML file and ``--set key.sub=value`` overrides change
them. Every key of a change must exist in the defaults (a typo is an error that lists the
valid keys), except below the few mapping-valued entries that are free by design (listed
in :data:`FREE_MAPPINGS`). Values are parsed as YAML scalars, so ``--set model.K=5`` gives
an integer and ``--set model.channels=[8,16]`` a list.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from ..io import write_text_atomic

#: Entries whose value is a mapping with no fixed key set (any key may be added).
FREE_MAPPINGS = ("data.test_overrides", "data.normalization")

#: Keys a resumed run may change; everything else must equal the checkpoint's values.
RESUME_MUTABLE = ("train.epochs", "train.num_workers", "train.threads", "train.progress",
                  "train.accelerator")

#: Keys that moved, old -> new: read from files, overrides and stored checkpoints with a
#: FutureWarning (shown to users of the command line, whose files hold the old keys).
MOVED_KEYS = {"model.hierarchy_levels": "graph.levels", "model.k": "graph.k"}

Config = dict[str, Any]


class _Loader(yaml.SafeLoader):
    """YAML 1.1 safe loader that also reads ``1e-3`` (no dot) as a float, as YAML 1.2
    and Python do."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"))


def _load(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


def load_yaml(path: str | os.PathLike) -> Config:
    """Read a configuration (or partial configuration) from a YAML file.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is not valid YAML or is not a mapping at its top level.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--config: no such file {str(path)!r}")
    try:
        loaded = _load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ValueError(f"--config {str(path)!r} is not valid YAML: {error}") from error
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ValueError(f"--config {str(path)!r} must hold a mapping (key: value lines), "
                         f"got a {type(loaded).__name__}")
    return loaded


def parse_override(text: str) -> tuple[str, Any]:
    """Split ``"model.K=5"`` into ``("model.K", 5)``; the value is read as YAML.

    Raises:
        ValueError: no ``=``, an empty key, or a value that is not valid YAML.
    """
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ValueError(f"--set {text!r}: expected KEY=VALUE with a dotted key, e.g. "
                         "--set model.K=5 or --set train.lr=0.001")
    try:
        value = _load(raw) if raw.strip() else None
    except yaml.YAMLError as error:
        raise ValueError(f"--set {text!r}: the value is not valid YAML ({error})") from error
    return key, value


def nest_override(key: str, value: Any) -> Config:
    """``("a.b.c", 1)`` -> ``{"a": {"b": {"c": 1}}}``."""
    nested: Any = value
    for part in reversed(key.split(".")):
        nested = {part: nested}
    return nested


def merge(base: Mapping[str, Any], change: Mapping[str, Any], *, source: str,
          prefix: str = "") -> Config:
    """A deep copy of ``base`` with ``change`` applied, checking every key.

    Mappings are merged key by key; any other value (lists included) replaces the old one.

    Raises:
        ValueError: a key of ``change`` missing from ``base`` (outside
            :data:`FREE_MAPPINGS`), naming ``source``, the key and the valid keys; a mapping
            given where ``base`` holds a plain value or the reverse.
    """
    merged = copy.deepcopy(dict(base))
    for key, value in change.items():
        path = f"{prefix}{key}"
        if not isinstance(key, str):
            raise ValueError(f"{source}: keys must be strings, got {key!r} in {prefix!r}")
        if key not in merged:
            if prefix.rstrip(".") in FREE_MAPPINGS:
                merged[key] = copy.deepcopy(value)
                continue
            valid = ", ".join(sorted(str(k) for k in merged)) or "(none)"
            raise ValueError(f"{source}: unknown key {path!r}; valid keys here: {valid}")
        old = merged[key]
        if isinstance(old, Mapping):
            if not isinstance(value, Mapping):
                raise ValueError(f"{source}: {path!r} is a section (a mapping with keys "
                                 f"{', '.join(sorted(old))}); set its keys, e.g. "
                                 f"{path}.{next(iter(sorted(old)), 'key')}=...")
            merged[key] = merge(old, value, source=source, prefix=f"{path}.")
        elif isinstance(value, Mapping) and path not in FREE_MAPPINGS and old is not None:
            raise ValueError(f"{source}: {path!r} holds a value ({old!r}), not a section")
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def migrate(config: Mapping[str, Any], *, source: str) -> Config:
    """A copy of ``config`` (or of a partial one) with the keys of :data:`MOVED_KEYS` at
    their new place, warning once per moved key (``FutureWarning`` naming ``source``).

    Raises:
        ValueError: a key given at both its old and its new place.
    """
    moved = copy.deepcopy(dict(config))
    for old, new in MOVED_KEYS.items():
        old_section, old_key = old.split(".")
        new_section, new_key = new.split(".")
        section = moved.get(old_section)
        if not isinstance(section, Mapping) or old_key not in section:
            continue
        target = moved.setdefault(new_section, {})
        if not isinstance(target, dict):
            raise ValueError(f"{source}: {new_section!r} must be a section (a mapping)")
        if new_key in target:
            raise ValueError(f"{source}: {old!r} and {new!r} both given; {old!r} is the old "
                             f"name of {new!r}, keep only {new!r}")
        target[new_key] = section.pop(old_key)
        warnings.warn(f"{source}: {old!r} is now {new!r} (the graph settings have their own "
                      "section); the old key will be removed", FutureWarning,
                      stacklevel=3)
    return moved


def resolve(defaults: Mapping[str, Any], files: Iterable[Mapping[str, Any]] = (),
            overrides: Iterable[str] = ()) -> Config:
    """Defaults, then each file's content, then each ``KEY=VALUE`` override (moved keys
    at their new place, :func:`migrate`)."""
    config = copy.deepcopy(dict(defaults))
    for index, content in enumerate(files):
        source = f"--config (file {index + 1})"
        config = merge(config, migrate(content, source=source), source=source)
    for text in overrides:
        key, value = parse_override(text)
        source = f"--set {text!r}"
        config = merge(config, migrate(nest_override(key, value), source=source),
                       source=source)
    return config


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (free mappings stay whole)."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and path not in FREE_MAPPINGS:
            flat.update(flatten(value, f"{path}."))
        else:
            flat[path] = value
    return flat


def fingerprint(config: Mapping[str, Any], ignore: Iterable[str] = RESUME_MUTABLE) -> str:
    """SHA-256 of the configuration without the ``ignore`` keys (canonical JSON)."""
    skip = set(ignore)
    flat = {key: value for key, value in flatten(config).items() if key not in skip}
    text = json.dumps(flat, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def differences(first: Mapping[str, Any], second: Mapping[str, Any],
                ignore: Iterable[str] = RESUME_MUTABLE) -> list[str]:
    """Human-readable ``key: a != b`` lines for the keys whose values differ."""
    skip = set(ignore)
    left, right = flatten(first), flatten(second)
    lines = []
    for key in sorted(set(left) | set(right)):
        if key in skip:
            continue
        a, b = left.get(key, "<missing>"), right.get(key, "<missing>")
        if json.dumps(a, sort_keys=True, default=str) != json.dumps(b, sort_keys=True,
                                                                      default=str):
            lines.append(f"{key}: {a!r} != {b!r}")
    return lines


class _Dumper(yaml.SafeDumper):
    """Block-style mappings, one-line lists."""


_Dumper.add_representer(
    list, lambda dumper, data: dumper.represent_sequence("tag:yaml.org,2002:seq", data,
                                                         flow_style=True))


def dump_yaml(config: Mapping[str, Any]) -> str:
    """The configuration as YAML text, keys in the order of the defaults."""
    return yaml.dump(_plain(config), Dumper=_Dumper, sort_keys=False,
                     default_flow_style=False)


def save_yaml(config: Mapping[str, Any], path: str | os.PathLike) -> None:
    """Write the configuration to ``path`` atomically."""
    write_text_atomic(path, dump_yaml(config))


def _plain(value: Any) -> Any:
    """Tuples become lists, mappings plain dicts (YAML-safe)."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value
