"""How hard the generated classification tasks are for one-point and spectrum statistics.

For ``--task cmb`` (``CMBMaps``): the ratio of the two classes' measured TT spectra in five
bands (with its standard error), and the accuracy of the best single threshold on the
pixel skewness, excess kurtosis and variance of each map, beside the statistic the
construction plants (the large-scale power of the squared high-pass map, normalised by its
mean square: the modulation of small-scale power by a large-scale field).

For ``--task cosmology`` (``CosmologyMaps`` patches): the best threshold accuracy on each
patch's variance, skewness and kurtosis (the one-point baselines of the DeepSphere v1
table).

Threshold accuracies are the best over all thresholds on the same samples (in-sample, so
slightly optimistic; 0.5 is chance).

    python scripts/task_difficulty.py --task cmb --nside 64 --samples 200
    python scripts/task_difficulty.py --task cosmology --samples 400
"""

from __future__ import annotations

import argparse
import time

import healpy as hp
import numpy as np
import scipy.stats

from deepsphere_pyg.data import CMBMaps, CosmologyMaps
from deepsphere_pyg.data.cmb import modulation_lmax, small_scale_window


def best_threshold_accuracy(values: np.ndarray, labels: np.ndarray) -> float:
    """Accuracy of the best rule ``value > c`` (or its negation) over all thresholds c."""
    order = np.argsort(values, kind="stable")
    sorted_labels = labels[order]
    # Predict 1 above position i: correct = zeros at or below i + ones above i.
    zeros_below = np.concatenate([[0], np.cumsum(sorted_labels == 0)])
    ones_above = np.concatenate([np.cumsum((sorted_labels == 1)[::-1])[::-1], [0]])
    accuracy = (zeros_below + ones_above) / labels.size
    return float(max(accuracy.max(), 1.0 - accuracy.min()))


def one_point(maps: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Variance, skewness and excess kurtosis of each map."""
    return {"variance": np.array([m.var() for m in maps]),
            "skewness": np.array([scipy.stats.skew(m) for m in maps]),
            "kurtosis": np.array([scipy.stats.kurtosis(m) for m in maps])}


def report(statistics: dict[str, np.ndarray], labels: np.ndarray) -> None:
    for name, values in statistics.items():
        print(f"{name:>10}: class means {values[labels == 0].mean():.4g} / "
              f"{values[labels == 1].mean():.4g}, threshold accuracy "
              f"{best_threshold_accuracy(values, labels):.3f}")


def cmb(args: argparse.Namespace) -> None:
    data = CMBMaps(num_samples=args.samples, nside=args.nside, strength=args.strength,
                   seed=args.seed)
    lmax = 3 * args.nside - 1
    window = small_scale_window(lmax)
    coupling_lmax = modulation_lmax(args.nside)
    maps, spectra, coupling, labels = [], [], [], []
    start = time.perf_counter()
    for index in range(len(data)):
        sample = data[index]
        ring = hp.reorder(sample.x[:, 0].double().numpy(), n2r=True)
        alm = hp.map2alm(ring, lmax=lmax, iter=3, use_pixel_weights=False)
        high = hp.alm2map(hp.almxfl(alm, window), args.nside, lmax=lmax)
        square = hp.alm2cl(hp.map2alm(high**2, lmax=coupling_lmax, iter=0,
                                      use_pixel_weights=False))
        degrees = np.arange(1, coupling_lmax + 1)
        coupling.append(np.sum(square[1:] * (2 * degrees + 1)) / np.mean(high**2) ** 2)
        maps.append(ring)
        spectra.append(hp.alm2cl(alm))
        labels.append(int(sample.y))
    seconds = time.perf_counter() - start
    labels_array, spectra_array = np.array(labels), np.stack(spectra)
    print(f"CMBMaps nside {args.nside}, strength {args.strength}, {len(data)} maps "
          f"({seconds / len(data) * 1e3:.1f} ms per map with the analysis)")
    edges = [2, lmax // 8, lmax // 4, lmax // 2, 3 * lmax // 4, lmax + 1]
    for low, high_edge in zip(edges[:-1], edges[1:], strict=True):
        band = spectra_array[:, low:high_edge].sum(axis=1)
        zero, one = band[labels_array == 0], band[labels_array == 1]
        ratio = one.mean() / zero.mean() - 1.0
        error = np.sqrt(one.var() / one.size + zero.var() / zero.size) / zero.mean()
        print(f"TT l {low}-{high_edge - 1}: class 1 / class 0 - 1 = {100 * ratio:+.2f} % "
              f"(standard error {100 * error:.2f} %)")
    statistics = one_point(maps)
    statistics["coupling"] = np.array(coupling)
    report(statistics, labels_array)


def cosmology(args: argparse.Namespace) -> None:
    data = CosmologyMaps(num_samples=args.samples, noise=args.noise, classes=args.classes,
                         seed=args.seed)
    start = time.perf_counter()
    samples = [data[index] for index in range(len(data))]
    seconds = time.perf_counter() - start
    labels = np.array([int(sample.y) for sample in samples])
    maps = [sample.x[:, 0].double().numpy() for sample in samples]
    print(f"CosmologyMaps nside {data.nside}, order {data.order} ({maps[0].size} pixels per "
          f"patch), classes {args.classes!r}, noise {args.noise}: {len(samples)} patches in "
          f"{seconds:.1f} s")
    report(one_point(maps), labels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", choices=("cmb", "cosmology"), required=True)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--nside", type=int, default=64, help="cmb: HEALPix resolution")
    parser.add_argument("--strength", type=float, default=0.15, help="cmb: modulation")
    parser.add_argument("--noise", type=float, default=0.0, help="cosmology: relative noise")
    parser.add_argument("--classes", default="degenerate", help="cosmology: class pair")
    args = parser.parse_args()
    (cmb if args.task == "cmb" else cosmology)(args)


if __name__ == "__main__":
    main()
