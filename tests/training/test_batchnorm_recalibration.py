"""BatchNormRecalibration: batch-norm statistics recomputed from training batches."""

from types import SimpleNamespace

import torch

from deepsphere_pyg.training.callbacks import BatchNormRecalibration


def test_statistics_are_the_average_of_the_first_batches_and_the_rng_is_untouched():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.BatchNorm1d(3))
    model[0].running_mean.fill_(5.0)  # stale statistics
    batches = [torch.randn(8, 3) * 2 + 1 for _ in range(5)]
    callback = BatchNormRecalibration(3)
    trainer = SimpleNamespace(sanity_checking=False, train_dataloader=batches)
    module = SimpleNamespace(model=model, device=torch.device("cpu"))
    state = torch.get_rng_state()
    callback.on_validation_epoch_start(trainer, module)
    assert torch.equal(torch.get_rng_state(), state)
    expected = torch.cat(batches[:3]).mean(0)  # equal batch sizes: the cumulative average
    torch.testing.assert_close(model[0].running_mean, expected)
    assert not model.training
    trainer.sanity_checking = True  # nothing happens during Lightning's sanity check
    model[0].running_mean.fill_(5.0)
    callback.on_validation_epoch_start(trainer, module)
    assert torch.all(model[0].running_mean == 5.0)
