"""The README's PyG snippet runs as written (Sequential, Explainer, torch.compile)."""

import re
from pathlib import Path

import torch

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
