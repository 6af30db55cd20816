"""SphereTask: the model gets a HierarchyData batch whole, and a stacked batch's ``x``."""

from __future__ import annotations

import torch
from torch_geometric.data import Batch

from deepsphere_pyg.data import SphereSignal
from deepsphere_pyg.graphs import HierarchyData, SphereHierarchy
from deepsphere_pyg.models import DeepSphere, SphericalUNet
from deepsphere_pyg.training.task import SphereTask

TRAIN = {"optimizer": "adam", "lr": 1e-3, "weight_decay": 0.0, "scheduler": None, "epochs": 1}


def batches(hierarchy, count=3):
    """The same samples as a stacked SphereSignal batch and as a HierarchyData batch."""
    generator = torch.Generator().manual_seed(0)
    nodes = hierarchy.num_nodes[0]
    xs = [torch.randn(nodes, 1, generator=generator) for _ in range(count)]
    labels = [torch.randint(0, 2, (nodes,), generator=generator) for _ in range(count)]
    stacked = Batch.from_data_list([SphereSignal(x=x, y=torch.tensor(i % 2), y_node=y)
                                    for i, (x, y) in enumerate(zip(xs, labels, strict=True))])
    disjoint = Batch.from_data_list([
        HierarchyData.from_hierarchy(hierarchy, x=x, y=torch.tensor(i % 2), y_node=y)
        for i, (x, y) in enumerate(zip(xs, labels, strict=True))])
    return stacked, disjoint


def test_hierarchy_data_batches_give_the_outputs_of_stacked_batches():
    hierarchy = SphereHierarchy.healpix(4, 2)
    stacked, disjoint = batches(hierarchy)
    assert isinstance(disjoint, HierarchyData)
    torch.manual_seed(0)
    for model, task in ((DeepSphere(hierarchy, 1, 2, channels=(4, 4), K=3), "classification"),
                        (SphericalUNet(hierarchy, 1, 2, channels=(4, 4), K=3),
                         "segmentation")):
        module = SphereTask(model.eval(), task, 2, TRAIN)
        assert SphereTask.model_input(disjoint) is disjoint
        assert SphereTask.model_input(stacked) is stacked.x
        with torch.no_grad():
            out_stacked, target_stacked = module.outputs_and_targets(stacked)
            out_disjoint, target_disjoint = module.outputs_and_targets(disjoint)
        assert torch.equal(target_stacked, target_disjoint)
        torch.testing.assert_close(out_disjoint, out_stacked, rtol=1e-5, atol=1e-6)
