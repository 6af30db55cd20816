"""The command line starts without its heavy dependencies; the packages' lazy exports."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import deepsphere_pyg.scattering as scattering
import deepsphere_pyg.training as training

#: Modules that building the parser, ``--help`` and configuration errors must not import.
HEAVY = ("torch", "torch_geometric", "lightning", "healpy", "matplotlib", "scipy", "zarr")

#: Runs ``deepsphere_pyg.cli.main`` on ``sys.argv[2:]`` and writes its exit status and the
#: heavy modules imported meanwhile to the JSON file ``sys.argv[1]``.
PROBE = f"""
import json, sys
from deepsphere_pyg.cli import main
try:
    code = main(sys.argv[2:])
except SystemExit as stop:
    code = stop.code
heavy = sorted(name for name in {HEAVY!r} if name in sys.modules)
with open(sys.argv[1], "w") as file:
    json.dump({{"code": code, "heavy": heavy}}, file)
"""


def run_probe(tmp_path, *argv: str) -> tuple[dict, subprocess.CompletedProcess]:
    report = tmp_path / "report.json"
    result = subprocess.run([sys.executable, "-c", PROBE, str(report), *argv],
                            capture_output=True, text=True, cwd=tmp_path)
    assert report.is_file(), result.stderr
    return json.loads(report.read_text()), result


@pytest.mark.parametrize("argv, text", [
    (["--help"], "scatter"),
    (["train", "--help"], "--experiment"),
    (["graph", "--help"], "--sampling"),
    (["scatter", "--help"], "--J0"),
    (["predict", "--help"], "CHECKPOINT"),
    (["demo", "--help"], "--nside"),
])
def test_help_imports_no_heavy_module(tmp_path, argv, text):
    report, result = run_probe(tmp_path, *argv)
    assert report == {"code": 0, "heavy": []}
    assert text in result.stdout


@pytest.mark.parametrize("argv, message", [
    (["train", "--set", "nosuchsection.x=1"], "unknown key 'nosuchsection'"),
    (["train", "--set", "train.epochs=abc"], "train.epochs must be an integer >= 1"),
    (["train", "--set", "train.monitor=val_r2"], "train.monitor must be one of"),
    (["train", "--set", "train"], "expected KEY=VALUE"),
    (["train", "--config", "missing.yaml"], "no such file 'missing.yaml'"),
    (["train", "--experiment", "nope"], "unknown experiment 'nope'"),
    (["train", "--experiment", "segmentation", "--set", "graph.k=[8,0]"], "graph.k[1]"),
    (["train", "--bogus"], "unrecognized arguments: --bogus"),
    (["graph", "--sampling", "cube"], "invalid choice: 'cube'"),
])
def test_configuration_errors_import_no_heavy_module(tmp_path, argv, message):
    report, result = run_probe(tmp_path, *argv)
    assert report == {"code": 2, "heavy": []}
    assert message in result.stderr


def test_experiments_and_outlines_import_no_heavy_module():
    code = ("import sys\n"
            "from deepsphere_pyg.training.experiments import EXPERIMENTS, MODELS\n"
            "for experiment in EXPERIMENTS.values():\n"
            "    experiment.outline(); experiment.dataset_name\n"
            "    MODELS.name_of(experiment.model['name'])\n"
            f"print(sorted(name for name in {HEAVY!r} if name in sys.modules))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("package", [training, scattering])
def test_lazy_exports(package):
    for name in package.__all__:
        assert getattr(package, name) is not None
        assert name in dir(package)
    namespace: dict = {}
    exec(f"from {package.__name__} import *", namespace)
    assert set(package.__all__) <= set(namespace)
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        package.no_such_name  # noqa: B018


def test_lazy_exports_are_the_submodules_objects():
    from deepsphere_pyg.scattering.graph_backend import GraphBackend
    from deepsphere_pyg.scattering.module import SphericalScattering
    from deepsphere_pyg.training.experiments import EXPERIMENTS
    from deepsphere_pyg.training.resolution import resolve_config

    assert scattering.SphericalScattering is SphericalScattering
    assert scattering.GraphBackend is GraphBackend
    assert training.EXPERIMENTS is EXPERIMENTS
    assert training.resolve_config is resolve_config
    # Submodules not imported yet are reachable as attributes, as with eager imports.
    assert training.figures.__name__ == "deepsphere_pyg.training.figures"
