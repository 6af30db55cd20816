"""SphereSignal batches: stacked by the standard PyG loader, same model outputs as alone."""

import pickle

import torch
from torch_geometric.data import Data
from torch_geometric.loader import DataLoader

from deepsphere_pyg.data import SphereSignal, SphericalDigits
from deepsphere_pyg.graphs import SphereHierarchy
from deepsphere_pyg.models import DeepSphere, SphericalUNet


def test_loader_stacks_node_tensors_and_batches_targets():
    samples = [SphereSignal(x=torch.randn(48, 2), y=torch.tensor(i % 3),
                            y_node=torch.randint(0, 3, (48,)),
                            node_mask=torch.rand(48) > 0.5) for i in range(5)]
    batch = next(iter(DataLoader(samples, batch_size=4)))
    assert batch.x.shape == (4, 48, 2) and batch.y.shape == (4,)
    assert batch.y_node.shape == (4, 48) and batch.node_mask.shape == (4, 48)
    assert batch.num_graphs == 4
    for index in range(4):
        assert torch.equal(batch.x[index], samples[index].x)
        assert torch.equal(batch.y_node[index], samples[index].y_node)
        assert torch.equal(batch.get_example(index).x, samples[index].x)
    assert torch.equal(batch.y, torch.tensor([0, 1, 2, 0]))


def test_plain_data_still_concatenates():
    samples = [Data(x=torch.randn(48, 2)) for _ in range(3)]
    assert next(iter(DataLoader(samples, batch_size=3))).x.shape == (144, 2)


def test_sample_pickles_and_keeps_its_node_count():
    sample = SphereSignal(x=torch.randn(12, 1), y=torch.tensor(1))
    assert sample.num_nodes == 12
    assert torch.equal(pickle.loads(pickle.dumps(sample)).x, sample.x)


def test_model_gives_the_same_output_on_a_loader_batch_and_alone():
    torch.manual_seed(0)
    data = SphericalDigits("train", num_samples=6, nside=8)
    hierarchy = data.hierarchy(3, k=8)
    classifier = DeepSphere(hierarchy, 1, 10, channels=(8, 8), K=3).eval()
    segmenter = SphericalUNet(hierarchy, 1, 3, channels=(4, 8), K=2).eval()
    batch = next(iter(DataLoader(data, batch_size=6)))
    with torch.no_grad():
        logits, dense = classifier(batch.x), segmenter(batch.x)
        for index in range(len(data)):
            alone = data[index].x[None]
            torch.testing.assert_close(logits[index], classifier(alone)[0])
            torch.testing.assert_close(dense[index], segmenter(alone)[0])


def test_hierarchy_matches_the_samples():
    data = SphericalDigits("val", num_samples=2, nside=8)
    assert isinstance(data.hierarchy(2, k=8), SphereHierarchy)
    assert data.hierarchy(2, k=8).num_nodes[0] == data[0].x.shape[0]
