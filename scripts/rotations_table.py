#!/usr/bin/env python
r"""Rotation robustness: accuracy on unrotated, z-rotated and SO(3)-rotated spherical digits.

The DeepSphere and s2cnn papers show that spherical CNNs whose head is invariant (a
statistic of the node features) keep their accuracy when the test maps are rotated,
while a head that reads the features at fixed positions (a fully connected layer on the
flattened last level) does not. This script measures it on
:class:`~deepsphere_pyg.data.SphericalDigits` (the 8x8 digits of scikit-learn drawn on a
HEALPix sphere; rotations act exactly on the projection geometry).

**Rows** (one training run each, :func:`deepsphere_pyg.training.train` on the ``digits``
experiment): model head x training rotation,

* head ``fc`` — DeepSphere "CNN" variant, flattened last level -> Linear, not invariant;
* head ``statistic`` — DeepSphere "FCN" variant, a statistic over the nodes of the last
  level (``meanvar`` by default) -> Linear, invariant up to the equivariance error of the
  graph convolutions and of the HEALPix pooling;

and training rotation ``none`` (N), ``z`` (Z: about the polar axis, i.e. in-plane
rotations of the digit) or ``so3`` (R: Haar-random on SO(3)). Both heads share the
backbone of the ``digits`` experiment (channels 16, 32, 64, K = 5, three HEALPix levels
nside -> nside/4, batch norm, ReLU).

**Columns**: accuracy of the best checkpoint (lowest validation loss; the validation set
is rotated like the training set) on the 359 test images, unrotated (N), z-rotated (Z)
and SO(3)-rotated (R). Each run is trained once; its checkpoint is reloaded with
:func:`deepsphere_pyg.training.predict.load_trained_model` and evaluated on the three test
sets in eval mode under :func:`torch.no_grad`. Every run and every test set uses the
same ``--seed`` (a test sample's rotation depends on the seed, the split and its index
only, so each test set is the same for all rows). As a check, the accuracy on the test
set rotated like the training set must equal the engine's own ``test_accuracy`` (the
script exits with status 1 otherwise).

An exactly rotation-invariant model cannot tell a 6 from a 9 turned upside down (and,
as the graph filters are isotropic, nor a digit from its mirror image): the report lists
each row's most frequent confusions on the R test set and its 6/9 confusions.

Usage::

    python scripts/rotations_table.py                 # 6 runs x 20 epochs, ~8 min, 2 cores
    python scripts/rotations_table.py --train-rotations none so3 --heads statistic
    python scripts/rotations_table.py --runs runs/rotations   # keep the run folders
    python scripts/rotations_table.py --runs runs/rotations --reuse --figure ''
    python scripts/rotations_table.py --set train.lr=0.001 --rotated-epochs 20

Exit status: 0, or 1 when an evaluation disagrees with the engine's test accuracy.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.metrics import confusion_matrix

from deepsphere_pyg.data import SphericalDigits
from deepsphere_pyg.io import provenance_lines, publish_report
from deepsphere_pyg.plots import save_figure
from deepsphere_pyg.training import resolve_config, train
from deepsphere_pyg.training.config import RESUME_MUTABLE, differences
from deepsphere_pyg.training.engine import input_transform, read_checkpoint_config
from deepsphere_pyg.training.experiments import dataset_arguments
from deepsphere_pyg.training.predict import load_trained_model

#: Rotation names of the command line -> ``SphericalDigits(rotate=...)`` and column letter.
ROTATIONS: dict[str, tuple[bool | str, str]] = {
    "none": (False, "N"),
    "z": ("z", "Z"),
    "so3": (True, "R"),
}
HEADS = ("fc", "statistic")
STATISTICS = ("mean", "max", "var", "meanvar")
NUM_CLASSES = 10


@dataclass
class Run:
    """One training run and its evaluations.

    Attributes:
        head: ``"fc"`` or ``"statistic"``.
        train_rotation: a key of :data:`ROTATIONS`.
        epochs: epochs trained.
        folder: run folder.
        config: the run's resolved configuration.
        metrics: the engine's final metrics (``metrics.json``).
        wall_seconds: training, engine test and run-folder writing, seconds.
        accuracy: test rotation -> accuracy of the best checkpoint.
        confusion: test rotation -> ``[10, 10]`` confusion matrix (rows: true digit).
        eval_seconds: seconds to load the checkpoint and evaluate the test sets.
        num_test: maps per test set.
    """

    head: str
    train_rotation: str
    epochs: int
    folder: Path
    config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    wall_seconds: float = 0.0
    accuracy: dict[str, float] = field(default_factory=dict)
    confusion: dict[str, np.ndarray] = field(default_factory=dict)
    eval_seconds: float = 0.0
    num_test: int = 0

    @property
    def label(self) -> str:
        return f"{self.head} / train {ROTATIONS[self.train_rotation][1]}"

    @property
    def best_epoch(self) -> int | None:
        """Epoch (from 1) of the lowest validation loss, the checkpoint evaluated."""
        losses = [row.get("val_loss") for row in self.metrics.get("history", [])]
        losses = [np.inf if loss is None else float(loss) for loss in losses]
        return int(np.argmin(losses)) + 1 if losses else None


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from error
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--heads", nargs="+", choices=HEADS, default=list(HEADS),
                        help="model heads (rows; default: both)")
    parser.add_argument("--statistic", choices=STATISTICS, default="meanvar",
                        help="statistic of the statistic head (default meanvar)")
    parser.add_argument("--train-rotations", nargs="+", choices=tuple(ROTATIONS),
                        default=list(ROTATIONS),
                        help="training rotations (rows; default: none z so3)")
    parser.add_argument("--test-rotations", nargs="+", choices=tuple(ROTATIONS),
                        default=list(ROTATIONS),
                        help="test rotations (columns; default: none z so3)")
    parser.add_argument("--epochs", type=positive_int, default=20,
                        help="epochs of every training (default 20; the digits "
                             "experiment alone trains 6, which leaves the statistic head "
                             "far from converged)")
    parser.add_argument("--rotated-epochs", type=positive_int, default=None,
                        help="epochs of the z and SO(3) trainings (default: --epochs)")
    parser.add_argument("--nside", type=positive_int, default=16,
                        help="HEALPix nside of the maps (default 16)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of every run and test set (default 0)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: on a small shared machine one "
                             "thread trains much faster than an oversubscribed two; "
                             "0 keeps torch's default)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE",
                        help="configuration override for every run, e.g. train.lr=0.001 "
                             "(repeatable)")
    parser.add_argument("--runs", default="",
                        help="folder for the run folders, kept (default: a temporary "
                             "folder, removed at the end)")
    parser.add_argument("--reuse", action="store_true",
                        help="evaluate finished runs found in --runs instead of training "
                             "them again")
    parser.add_argument("--output", default="results/rotations_table.md",
                        help="Markdown report (empty string: print only)")
    parser.add_argument("--figure", default="results/rotations_table.png",
                        help="bar chart (empty string: none)")
    args = parser.parse_args(argv)
    if args.seed < 0:
        parser.error(f"--seed must be >= 0, got {args.seed}")
    if args.threads < 0:
        parser.error(f"--threads must be >= 0 (0: torch's default), got {args.threads}")
    if args.rotated_epochs is None:
        args.rotated_epochs = args.epochs
    owned = {"seed": "--seed", "data.rotate": "--train-rotations", "model.head": "--heads",
             "model.statistic": "--statistic", "train.epochs": "--epochs / --rotated-epochs",
             "data.nside": "--nside"}
    for text in args.overrides:
        key = text.partition("=")[0].strip()
        if key in owned:
            parser.error(f"--set {text!r}: {key} is set by the script's own option; use "
                         f"{owned[key]}")
    if args.reuse and not args.runs:
        parser.error("--reuse needs --runs FOLDER (the folder of the earlier runs)")
    return args


def run_overrides(args: argparse.Namespace, head: str, rotation: str) -> list[str]:
    """``--set`` strings of one run: the row's head and training rotation, then the
    user's overrides (which win)."""
    rotate = {"none": "false", "z": "z", "so3": "true"}[rotation]
    epochs = args.epochs if rotation == "none" else args.rotated_epochs
    return [f"seed={args.seed}", f"data.nside={args.nside}", f"data.rotate={rotate}",
            f"model.head={head}", f"model.statistic={args.statistic}",
            f"train.epochs={epochs}", "train.progress=false", *args.overrides]


def train_run(args: argparse.Namespace, head: str, rotation: str, root: Path) -> Run:
    """Train one row (or read it back with ``--reuse``)."""
    config = resolve_config("digits", overrides=run_overrides(args, head, rotation))
    folder = (root / f"{head}-train-{rotation}").resolve()
    run = Run(head, rotation, int(config["train"]["epochs"]), folder, config)
    metrics_file = folder / "metrics.json"
    if args.reuse and metrics_file.is_file():
        stored = read_checkpoint_config(folder / "checkpoints" / "best.ckpt")
        ignore = [key for key in RESUME_MUTABLE if key != "train.epochs"]
        changed = differences(stored, config, ignore=[*ignore, "data.normalization"])
        if changed:
            raise ValueError(f"--reuse: {folder} was trained with another configuration "
                             f"(stored != asked): {'; '.join(changed)}; drop --reuse or "
                             "choose another --runs folder")
        run.config = stored
        run.metrics = json.loads(metrics_file.read_text(encoding="utf-8"))
        run.wall_seconds = float("nan")
        print(f"{run.label}: reusing {folder}", file=sys.stderr)
        return run
    if (folder / "metrics.json").exists() or (folder / "checkpoints").exists():
        raise ValueError(f"{folder} holds a run already: pass --reuse to evaluate it, or "
                         "choose another --runs folder")
    tic = time.perf_counter()
    result = train(config, folder, figures=False)
    run.wall_seconds = time.perf_counter() - tic
    run.metrics = result.metrics
    print(f"{run.label}: {run.epochs} epochs, {run.wall_seconds:.1f} s, engine test "
          f"accuracy {result.metrics.get('test_accuracy', float('nan')):.4f}", file=sys.stderr)
    return run


class TestSets:
    """Test splits per rotation, generated once and shared by every run.

    ``get(rotation, config)`` returns ``(x [B, N, 1] float32, y [B] int64)``: the test
    split of the run's data set arguments (``data.*`` of ``config``, test overrides
    included) with ``rotate`` set by ``rotation`` and the run's input normalisation
    applied (none for the digits experiment's defaults).
    """

    def __init__(self) -> None:
        self._cache: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def get(self, rotation: str, config: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        data = config["data"]
        arguments = dataset_arguments(data, "test")
        arguments["rotate"] = ROTATIONS[rotation][0]
        key = json.dumps([arguments, data["test_samples"], config["seed"],
                          data.get("normalization")], sort_keys=True, default=str)
        if key not in self._cache:
            dataset = SphericalDigits("test", data["test_samples"], int(config["seed"]),
                                      transform=input_transform(data), **arguments)
            samples = [dataset[index] for index in range(len(dataset))]
            self._cache[key] = (torch.stack([s.x for s in samples]),
                                torch.stack([s.y for s in samples]).reshape(-1))
        return self._cache[key]


def evaluate(run: Run, tests: TestSets, rotations: Sequence[str], batch_size: int = 64
             ) -> None:
    """Accuracy and confusion matrix of the run's best checkpoint on each test set.

    The model is rebuilt from the checkpoint (eval mode); logits ``[B, 10]`` are computed
    under :func:`torch.no_grad` in batches of ``batch_size`` maps ``[b, N, 1]``.
    """
    tic = time.perf_counter()
    checkpoint = run.folder / "checkpoints" / "best.ckpt"
    model, config, _ = load_trained_model(checkpoint)
    model.eval()
    for rotation in rotations:
        x, y = tests.get(rotation, config)
        with torch.no_grad():
            logits = torch.cat([model(x[start:start + batch_size])
                                for start in range(0, x.shape[0], batch_size)])
        predicted = logits.argmax(-1)
        run.num_test = int(y.numel())
        run.accuracy[rotation] = float((predicted == y).double().mean())
        run.confusion[rotation] = confusion_matrix(y.numpy(), predicted.numpy(),
                                                   labels=list(range(NUM_CLASSES)))
    run.eval_seconds = time.perf_counter() - tic


def top_confusions(matrix: np.ndarray, count: int = 3) -> str:
    """The ``count`` largest off-diagonal entries, ``"6→9 (12)"``, of a confusion matrix."""
    off = matrix.copy()
    np.fill_diagonal(off, 0)
    order = np.argsort(off, axis=None)[::-1][:count]
    pairs = [np.unravel_index(index, off.shape) for index in order]
    return ", ".join(f"{t}→{p} ({off[t, p]})" for t, p in pairs if off[t, p] > 0) or "none"


def check_against_engine(runs: Sequence[Run]) -> list[str]:
    """Runs whose accuracy on the test set rotated like their training set differs from
    the engine's ``test_accuracy`` by more than one sample."""
    problems = []
    for run in runs:
        ours = run.accuracy.get(run.train_rotation)
        engine = run.metrics.get("test_accuracy")
        if ours is None or engine is None:
            continue
        if abs(ours - float(engine)) > 1.0 / run.num_test + 1e-9:
            problems.append(f"{run.label}: evaluated {ours:.4f}, engine test_accuracy "
                            f"{float(engine):.4f}")
    return problems


def plot(runs: Sequence[Run], rotations: Sequence[str], path: str) -> None:
    """Grouped bars: one group per run, one bar per test rotation; chance level dashed."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(max(6.0, 1.3 * len(runs) + 2.0), 4.5))
    axes = figure.add_subplot()
    width = 0.8 / len(rotations)
    colours = {"none": "#4c72b0", "z": "#dd8452", "so3": "#55a868"}
    positions = np.arange(len(runs))
    for offset, rotation in enumerate(rotations):
        values = [run.accuracy[rotation] for run in runs]
        bars = axes.bar(positions + (offset - (len(rotations) - 1) / 2) * width, values,
                        width, label=f"test {ROTATIONS[rotation][1]}",
                        color=colours[rotation])
        axes.bar_label(bars, labels=[f"{v:.2f}" for v in values], fontsize=7, padding=1)
    axes.axhline(1.0 / NUM_CLASSES, color="grey", linestyle="--", linewidth=1,
                 label="chance")
    axes.set_xticks(positions, [run.label.replace(" / ", "\n") for run in runs])
    axes.set_ylim(0, 1.08)
    axes.set_ylabel("test accuracy")
    axes.set_title("Spherical digits: test accuracy under rotations "
                   "(N none, Z polar axis, R SO(3))", fontsize=10)
    axes.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    figure.tight_layout()
    save_figure(figure, path, dpi=110)


def report(args: argparse.Namespace, runs: Sequence[Run], total: float, problems: list[str]
           ) -> str:
    rotations = args.test_rotations
    letters = [ROTATIONS[r][1] for r in rotations]
    config = runs[0].config
    data, model, train_cfg = config["data"], config["model"], config["train"]
    graph = config["graph"]
    num_test = runs[0].num_test
    sizes = " / ".join(str(len(SphericalDigits(split, data[f"{split}_samples"])))
                       for split in ("train", "val", "test"))
    lines = [
        "# Rotation robustness: fc vs statistic head on spherical digits",
        "",
        *(line + "  " for line in provenance_lines(args.seed)),
        f"Torch threads: {torch.get_num_threads()}; total wall time {total:.1f} s",
        "",
        "Data: `SphericalDigits` (scikit-learn 8x8 digits projected stereographically onto "
        f"a HEALPix nside-{data['nside']} sphere, {data['extent']:g}° wide, centred on the "
        f"north pole), splits of {sizes} maps; rotations act exactly on the projection "
        "geometry. N: unrotated, Z: random rotation about the polar axis, R: Haar-random "
        "rotation in SO(3). Model: experiment `digits` (DeepSphere, channels "
        f"{', '.join(str(c) for c in model['channels'])}, K = {model['K']}, "
        f"{graph['levels']} levels, k = {graph['k']} graphs), head `fc` "
        f"(flattened last level -> Linear) or `statistic` ({args.statistic} over the "
        f"nodes -> Linear). Training: {train_cfg['optimizer']} lr {train_cfg['lr']:g}, "
        f"{train_cfg['scheduler']} schedule, batch {train_cfg['batch_size']}, "
        f"{args.epochs} epochs without rotation, {args.rotated_epochs} epochs with z / "
        "SO(3) rotations (one rotation per sample, fixed by the seed: no fresh rotations "
        "per epoch), same seed for every run; the checkpoint of lowest validation loss "
        "(validation set rotated like the training set) is evaluated on every test set."
        + (f" Overrides: `{' '.join(args.overrides)}`." if args.overrides else ""),
        "",
        "Published context: the DeepSphere (v1 FCN vs CNN variants, v2) and s2cnn papers "
        "report that spherical CNNs with rotation-invariant heads keep their accuracy on "
        "rotated test data while heads that read fixed positions do not; no published "
        "numbers for this data set exist (the references hold no rotated-digits table), "
        "so the table gives our measurements only.",
        "",
        f"| head | train | epochs (best) | {' | '.join(f'test {c}' for c in letters)} | "
        "engine test acc | train+test wall s | eval s |",
        "|---|---|---|" + "---|" * len(letters) + "---|---|---|",
    ]
    for run in runs:
        cells = " | ".join(f"{run.accuracy[r]:.3f}" for r in rotations)
        engine = run.metrics.get("test_accuracy")
        engine_text = "–" if engine is None else f"{float(engine):.3f}"
        wall = "reused" if not np.isfinite(run.wall_seconds) else f"{run.wall_seconds:.1f}"
        lines.append(f"| {run.head} | {ROTATIONS[run.train_rotation][1]} | {run.epochs} "
                     f"({run.best_epoch}) | {cells} | {engine_text} | {wall} | "
                     f"{run.eval_seconds:.1f} |")
    lines += [
        "",
        f"Chance level: {1 / NUM_CLASSES:.2f}. Test sets: {num_test} maps each. "
        "epochs (best): epochs trained (epoch of the evaluated checkpoint). engine test "
        "acc: the engine's own test accuracy on the test set rotated like the training "
        "set (must equal the matching column).",
    ]
    confusion_rotation = "so3" if "so3" in rotations else rotations[-1]
    lines += [
        "",
        f"Most frequent confusions on test {ROTATIONS[confusion_rotation][1]} "
        "(true→predicted (count)):",
        "",
        "| head | train | top confusions | 6→9 | 9→6 |",
        "|---|---|---|---|---|",
        *(f"| {run.head} | {ROTATIONS[run.train_rotation][1]} | "
          f"{top_confusions(run.confusion[confusion_rotation])} | "
          f"{run.confusion[confusion_rotation][6, 9]} | "
          f"{run.confusion[confusion_rotation][9, 6]} |" for run in runs),
    ]
    if args.figure:
        lines += ["", f"Figure: `{args.figure}`."]
    if problems:
        lines += ["", "**Check failed** (evaluation differs from the engine's test "
                  "accuracy):", "", *(f"- {p}" for p in problems)]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    start = time.perf_counter()
    temporary = None if args.runs else tempfile.mkdtemp(prefix="rotations_table_")
    root = Path(args.runs or temporary)
    try:
        tests = TestSets()
        runs = []
        for head in args.heads:
            for rotation in args.train_rotations:
                run = train_run(args, head, rotation, root)
                if args.threads and torch.get_num_threads() != args.threads:
                    torch.set_num_threads(args.threads)  # in case training changed it
                evaluate(run, tests, args.test_rotations)
                runs.append(run)
        problems = check_against_engine(runs)
        total = time.perf_counter() - start
        if args.figure:
            plot(runs, args.test_rotations, args.figure)
        publish_report(report(args, runs, total, problems), args.output or None)
    finally:
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
