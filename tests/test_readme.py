"""The README's snippets run as written: the PyG block (Sequential, Explainer,
torch.compile) and the configurations of the files experiment."""

import re
from pathlib import Path

import pytest
import torch
import yaml

from deepsphere_pyg.training import EXPERIMENTS, resolve_config
from deepsphere_pyg.training.file_examples import FILE_EXAMPLES

README = Path(__file__).resolve().parents[1] / "README.md"


def _block(marker: str) -> str:
    match = re.search(rf"<!-- {marker} -->\n```python\n(.*?)```", README.read_text(), re.S)
    assert match, f"no python block after <!-- {marker} --> in README.md"
    return match.group(1)


def test_the_pyg_snippet_runs():
    torch._dynamo.reset()
    namespace = {"__name__": "readme_pyg"}
    exec(compile(_block("readme-pyg"), str(README), "exec"), namespace)
    graph = namespace["graph"]
    assert namespace["out"].shape == (8, graph.num_nodes, 3)
    assert namespace["out"].is_contiguous()
    assert namespace["edge_mask"].shape == (graph.edge_index.shape[1],)


def _yaml_block(marker: str) -> str:
    match = re.search(rf"<!-- {marker} -->\n```yaml\n(.*?)```", README.read_text(), re.S)
    assert match, f"no yaml block after <!-- {marker} --> in README.md"
    return match.group(1)


@pytest.mark.parametrize("source", ["grid", "stations", "healpix"])
def test_the_files_configurations_resolve_and_match_the_help(source, tmp_path):
    text = _yaml_block(f"readme-files-{source}")
    assert text == FILE_EXAMPLES[source]
    path = tmp_path / "my.yaml"
    path.write_text(text)
    config = resolve_config(config_files=[str(path)])
    assert config["experiment"] == "files" and config["data"]["source"] == source
    expected = "classification" if "labels" in yaml.safe_load(text)["data"] else "regression"
    assert EXPERIMENTS["files"].task_for(config["data"]) == expected
    assert config["model"]["name"] == ("deepsphere" if expected == "classification"
                                       else "unet")
