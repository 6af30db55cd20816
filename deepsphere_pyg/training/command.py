"""``deepsphere-pyg train``, ``experiments`` and ``predict``."""

from __future__ import annotations

import argparse
import json
import textwrap

from .config import dump_yaml
from .experiments import DEFAULT_EXPERIMENT, EXPERIMENTS, get_experiment
from .file_examples import FILE_EXAMPLES

TRAIN_EPILOG = """\
examples:
  deepsphere-pyg train                                  # the default experiment (digits)
  deepsphere-pyg train --experiment cosmology --set data.noise=1.0 --set train.epochs=20
  deepsphere-pyg train --config my.yaml --output runs/mine
  deepsphere-pyg train --output runs/mine --resume      # continue an interrupted run
  deepsphere-pyg train --output runs/mine --resume --set train.epochs=20  # extend it
  torchrun --nproc_per_node 4 -m deepsphere_pyg.cli train --output runs/ddp

Configuration keys: deepsphere-pyg experiments --show NAME prints an experiment's full
configuration (every key can be set with --set or in a --config YAML file).

your own files (experiment files), one YAML file per data.source; then
  deepsphere-pyg train --config my.yaml --output runs/mine
  deepsphere-pyg predict runs/mine new_files... --output predictions
"""


def add_parsers(commands: argparse._SubParsersAction) -> None:
    """Register ``train``, ``experiments`` and ``predict``."""
    train = commands.add_parser(
        "train", help="train a model (default: the digits experiment, about a minute)",
        description="Train, validate and test an experiment; write checkpoints, metrics "
                    "and figures to a run folder.",
        epilog=TRAIN_EPILOG + "".join(
            f"\n# {source}.yaml\n{text}" for source, text in FILE_EXAMPLES.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    train.add_argument("--experiment", metavar="NAME", default=None,
                       help=f"experiment to run (default {DEFAULT_EXPERIMENT!r}, or the one "
                            "named in --config); see deepsphere-pyg experiments")
    train.add_argument("--config", metavar="FILE.yaml", action="append", default=[],
                       help="YAML file of configuration changes (repeatable, applied in order)")
    train.add_argument("--set", metavar="KEY=VALUE", action="append", default=[],
                       dest="overrides",
                       help="change one key, e.g. --set model.K=5 (repeatable, after --config)")
    train.add_argument("--output", metavar="DIR", default=None,
                       help="run folder (default runs/<experiment>-<date>-<time>)")
    from .config import RESUME_MUTABLE

    train.add_argument("--resume", action="store_true",
                       help="continue the run in --output from its last checkpoint, with "
                            "its own config.yaml (--set / --config may change only "
                            f"{', '.join(RESUME_MUTABLE)}; a larger train.epochs extends "
                            "the run, its learning-rate schedule rebuilt over the new total)")
    train.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    train.add_argument("--dry-run", action="store_true",
                       help="print the resolved configuration and stop")
    train.set_defaults(run=run_train)

    listing = commands.add_parser("experiments", help="list the experiments",
                                  description="List the experiments of deepsphere-pyg train.")
    listing.add_argument("--show", metavar="NAME", default=None,
                         help="print the full default configuration of one experiment")
    listing.set_defaults(run=run_experiments)

    predict = commands.add_parser(
        "predict", help="apply a trained checkpoint to maps or to your files",
        description="Apply a checkpoint (or a run folder's best checkpoint) to maps and "
                    "write the predictions: a CSV for classifiers, FITS maps for per-pixel "
                    "HEALPix models, .npy otherwise. A run of the files experiment reads "
                    "its own kind of files (FITS / HealSparse maps, netCDF / zarr grids, "
                    "CSV / Parquet tables) and writes its predictions in the same format.")
    predict.add_argument("checkpoint", metavar="CHECKPOINT",
                         help="a .ckpt file or a run folder")
    predict.add_argument("inputs", nargs="+", metavar="INPUT",
                         help="HEALPix FITS files, or one .npy array [M, N(, F)]; for a "
                              "files run: files of its data.source")
    predict.add_argument("--ordering", choices=("ring", "nest"), default=None,
                         help="pixel ordering of a .npy input (FITS files: from the header)")
    predict.add_argument("--output", metavar="DIR", default="predictions",
                         help="output folder (default ./predictions)")
    predict.add_argument("--batch-size", type=int, default=16)
    predict.add_argument("--set", metavar="data.KEY=VALUE", action="append", default=[],
                         dest="overrides",
                         help="files runs: change a data key of the run for these inputs, "
                              "e.g. --set data.mask=moved/footprint.fits (repeatable)")
    predict.set_defaults(run=run_predict)


def run_train(args: argparse.Namespace) -> int:
    from .resolution import resolve_config, resume_config

    if args.resume:
        if args.output is None:
            raise ValueError("--resume needs --output DIR, the run folder to continue, e.g. "
                             "deepsphere-pyg train --output runs/mine --resume")
        config = resume_config(args.output, args.experiment, args.config, args.overrides)
    else:
        config = resolve_config(args.experiment, args.config, args.overrides)
    if args.dry_run:
        print(dump_yaml(config), end="")
        return 0
    from .engine import train

    result = train(config, args.output, resume=args.resume, figures=not args.no_figures)
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    if rank_zero_only.rank == 0:
        print(complete_message(result.folder, result.metrics) if result.already_complete
              else summary(result.folder, result.metrics))
    return 0


def _best_line(metrics: dict) -> str | None:
    """``best epoch 3 (val_loss 0.2000), tested with checkpoints/best.ckpt``."""
    if metrics.get("best_epoch") is None:
        return None
    line = f"best epoch {metrics['best_epoch']}"
    score = metrics.get("best_score")
    if isinstance(score, float) and metrics.get("monitor"):
        line += f" ({metrics['monitor']} {score:.4f})"
    if metrics.get("best_checkpoint"):
        line += f", tested with {metrics['best_checkpoint']}"
    return line


def summary(folder: object, metrics: dict) -> str:
    """The final lines of a run: epochs (the whole run, also after a resume), the best
    epoch, the test scores and the run folder."""
    scores = [f"{key} {value:.4f}" for key, value in metrics.items()
              if key.startswith("test_") and isinstance(value, float)]
    accuracy = metrics.get("test_accuracy")
    epochs = metrics["epochs_run"]
    resumed = metrics.get("resumed_at_epoch")
    if resumed is None:
        timing = f"{epochs} epochs in {metrics['train_seconds']:.1f} s"
    else:
        timing = (f"{epochs} epochs (resumed at epoch {resumed}: {epochs - resumed} trained "
                  f"in {metrics['train_seconds']:.1f} s)")
    lines = [
        f"experiment {metrics['experiment']}: {timing} on {metrics['world_size']} "
        f"process(es), {metrics['parameters']:,} parameters",
    ]
    if metrics.get("stopped_early"):
        lines.append(f"stopped early (train.patience) after {epochs} of "
                     f"{metrics.get('epochs_planned')} epochs")
    best = _best_line(metrics)
    if best:
        lines.append(best)
    lines.append("test: " + ", ".join(scores))
    if accuracy is not None:
        lines.append(f"test accuracy {100 * accuracy:.1f} %")
    lines.append(f"run folder: {folder} (config.yaml, checkpoints/, metrics.json, "
                 "metrics.csv, figures)")
    return "\n".join(lines)


def complete_message(folder: object, metrics: dict) -> str:
    """What ``--resume`` prints for a run that is already finished (nothing changed)."""
    from .callbacks import resume_command

    epochs = metrics.get("epochs_run")
    scores = [f"{key} {value:.4f}" for key, value in metrics.items()
              if key.startswith("test_") and isinstance(value, float)]
    lines = [f"the run in {folder} is already complete: {epochs} epochs trained and tested "
             "(metrics.json and the figures are unchanged)"]
    best = _best_line(metrics)
    if best:
        lines.append(best)
    if scores:
        lines.append("test: " + ", ".join(scores))
    lines.append(f"to train it longer: {resume_command(folder)} --set train.epochs=N "
                 f"(N > {epochs})")
    return "\n".join(lines)


def run_experiments(args: argparse.Namespace) -> int:
    if args.show:
        print(dump_yaml(get_experiment(args.show).defaults()), end="")
        return 0
    width = max(len(name) for name in EXPERIMENTS)
    for name, experiment in EXPERIMENTS.items():
        marker = " (default)" if name == DEFAULT_EXPERIMENT else ""
        text = textwrap.fill(experiment.description, 88 - width - 4,
                             subsequent_indent=" " * (width + 4))
        print(f"  {name:<{width}}  {text}{marker}")
        task = ("from the data keys" if experiment.task == "auto" else experiment.task)
        print(f"  {'':<{width}}  task: {task}, data set: "
              f"{experiment.dataset_name}, model: {experiment.model['name']}")
    return 0


def run_predict(args: argparse.Namespace) -> int:
    from .predict import predict

    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    written = predict(args.checkpoint, args.inputs, args.output, ordering=args.ordering,
                      batch_size=args.batch_size, overrides=args.overrides)
    for path in written:
        print(f"wrote {path}")
    table = [path for path in written if path.name == "predictions.json"]
    if table:
        rows = json.loads(table[0].read_text())
        for row in rows[:10]:
            print(f"  {row['input']}: {row['name']}")
    return 0
