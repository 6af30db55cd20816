"""The same command under torchrun: 2 CPU processes (gloo), DDP through Lightning."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from deepsphere_pyg.training.engine import build_datasets, read_checkpoint_config
from deepsphere_pyg.training.predict import load_trained_model


def test_torchrun_two_processes(tiny_overrides, tmp_path) -> None:
    folder = tmp_path / "ddp"
    overrides = [o for o in tiny_overrides if not o.startswith("data.test_samples")]
    # 23 test maps: an uneven split over 2 processes, still counted exactly once.
    overrides += ["data.test_samples=23", "train.epochs=2"]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node", "2", "-m", "deepsphere_pyg.cli", "train",
               "--output", str(folder), "--no-figures"]
    for override in overrides:
        command += ["--set", override]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Starting with 2 processes" in done.stdout + done.stderr
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["epochs_run"] == 2
    matrix = torch.tensor(metrics["confusion_matrix"])
    assert int(matrix.sum()) == 23

    # The reduced test accuracy equals one process evaluating the best checkpoint alone.
    model, config, _ = load_trained_model(folder)
    test_set = build_datasets(config)["test"]
    with torch.no_grad():
        logits = model(torch.stack([test_set[i].x for i in range(len(test_set))]))
    labels = torch.stack([test_set[i].y for i in range(len(test_set))]).reshape(-1)
    accuracy = float((logits.argmax(-1) == labels).float().mean())
    assert metrics["test_accuracy"] == pytest.approx(accuracy, abs=1e-6)
    assert read_checkpoint_config(folder / "checkpoints" / "last.ckpt") == config
