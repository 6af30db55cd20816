"""Tiny configurations that train in seconds."""

from __future__ import annotations

import pytest

from deepsphere_pyg.training import resolve_config

#: Overrides shrinking the digits experiment to a few seconds per run.
TINY_DIGITS = [
    "data.nside=8", "data.train_samples=48", "data.val_samples=16", "data.test_samples=24",
    "graph.levels=2", "model.channels=[4,8]", "model.K=2", "model.dropout=0.3",
    "train.epochs=3", "train.batch_size=16", "train.progress=false",
]


@pytest.fixture
def tiny_overrides() -> list[str]:
    return list(TINY_DIGITS)


@pytest.fixture
def tiny_digits() -> dict:
    return resolve_config("digits", overrides=TINY_DIGITS)
