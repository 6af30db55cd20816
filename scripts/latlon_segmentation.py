#!/usr/bin/env python
r"""Segmentation on a lat-lon grid: the plain k-NN graph against the mass Laplacian.

**Data.** :class:`~deepsphere_pyg.data.SegmentationMaps` with ``sampling="equiangular"``
on a SOFT grid (default ``nside=16``: field band limit :math:`\ell_\max = 31`,
``nlat = 4 nside = 64`` rings x 64 longitudes, 4096 nodes; 3 classes: below the 10 %
quantile, between, above the 90 % quantile of the clean field; input = standardised
field + white noise of standard deviation 0.5). The same train / test maps for every
variant.

**Variants** (the same :class:`~deepsphere_pyg.models.SphericalUNet`, 3 levels 64x64,
32x32, 16x16, channels (16, 32, 64), K = 3, batch norm, same seed, epochs, batches):

* ``plain``: today's default graph, ``SegmentationMaps.hierarchy(3)`` (k = 8,
  ``kernel="auto"``), ``normalization="sym"``;
* ``mass``: ``equiangular_hierarchy`` with ``--k`` neighbours per level (default 40,
  40, 20: k = 40 on the two finest levels, 20 on the coarsest, 256 nodes, where 40
  neighbours would span a sixth of the sphere; for ``--nside 8`` use ``--k 40 20 8``), each
  level's heat-kernel width tuned for the mass Laplacian by
  :func:`~deepsphere_pyg.graphs.tune_kernel_width` (``normalization="mass"``, degrees
  :math:`n/16, n/4, 7n/16` of the level's ``n`` rings, 4 signals x 4 rotations, seed 1;
  coarse levels by the same rule on their own grid), ``normalization="mass"`` (the
  hierarchy's node masses);
* ``sym on the mass graph`` (control): the ``mass`` graphs with ``normalization="sym"``,
  which separates the effect of the denser graph from that of the operator.

**Accuracy**: per-node accuracy (node count, not area) on the noisy test maps.

**Equivariance of the trained network.** The exact rotation :math:`R` acts on the
*input*: the test map's coefficients :math:`a_{\ell m}` are rotated with
:meth:`healpy.Rotator.rotate_alm` and synthesised exactly at the grid nodes, so
:math:`(R x)(p) = x(R^{-1} p)` holds to rounding (checked). Inputs are the
**noise-free** standardised fields (white noise per node has no exact rotation), both
standardised with the mean and standard deviation of the unrotated map. The output
:math:`P = \mathrm{softmax}(U(x))` ``[N, 3]`` lives on the nodes only, so the rotated
output :math:`P(R^{-1} p)` is read by **bilinear** (``--interpolation linear``, default)
or **bicubic** (``cubic``) interpolation in :math:`(\vartheta, \varphi)` of the grid
(periodic in longitude, the polar caps beyond the first / last ring filled with the
ring's mean). The per-pixel error is the
area-weighted RMS over nodes and classes

.. math::
    E = \Big(\frac{\sum_p m_p \sum_c (P_{Rx}(p, c) - \tilde P_x(R^{-1} p, c))^2}
    {\sum_p m_p}\Big)^{1/2},

with :math:`m_p` the node areas, averaged over ``--maps`` test maps x ``--rotations``
random rotations (uniform on SO(3), seed 0); "label flips" is the area fraction of nodes
whose arg-max class differs. Interpolation itself adds error, so the table also gives the
same measures for a **pointwise control**, :math:`P_c = \mathrm{softmax}(-(x - t_c)^2 /
0.5)` with :math:`t = (-1.5, 0, 1.5)`, which is exactly equivariant in the continuum: its
error is the interpolation floor for outputs of that sharpness. Rotations about the
polar axis by multiples of :math:`2\pi/n_\mathrm{lon}` and the half-turn about an
equatorial grid axis map the SOFT grid onto itself and every variant is exactly
equivariant to them, so they are not used.

Usage (the runs of BENCHMARKS.md: SOFT 32 x 32, about 2-5 minutes on 2 cores)::

    python scripts/latlon_segmentation.py --nside 8 --k 40 20 8 --train 600 --test 100 \
        --epochs 10 --maps 8 --rotations 8 [--interpolation cubic] \
        --output results/latlon_segmentation.md
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from typing import Any

import healpy as hp
import numpy as np
import torch
from scipy.interpolate import RegularGridInterpolator
from scipy.spatial.transform import Rotation

from deepsphere_pyg.data import SegmentationMaps
from deepsphere_pyg.graphs import SphereHierarchy, equiangular_graph, tune_kernel_width
from deepsphere_pyg.io import machine_description, publish_report
from deepsphere_pyg.models import SphericalUNet

LEVELS = 3


# ------------------------------------------------------------------------------ graphs
def mass_hierarchy(data: SegmentationMaps, ks: tuple[int, ...], seed: int
                   ) -> tuple[SphereHierarchy, list[float]]:
    """The ``mass`` variant's hierarchy and the tuned width :math:`t_l` of each level."""
    sizes = [(data.nlat // 2**level, data.nlon // 2**level) for level in range(LEVELS)]
    widths = []
    for (nlat, nlon), k in zip(sizes, ks, strict=True):
        ells = [max(1, nlat // 16), nlat // 4, 7 * nlat // 16]
        t, _ = tune_kernel_width(
            lambda t, nlat=nlat, nlon=nlon, k=k: equiangular_graph(
                nlat, nlon, grid=data.grid, k=k, kernel=t, dtype=torch.float64),
            ells, normalization="mass", seed=seed)
        widths.append(float(t))
    hierarchy = data.hierarchy(LEVELS, k=list(ks), kernel=widths[0])
    for level in range(1, LEVELS):  # the builder takes one width: set the coarse ones
        graph = equiangular_graph(*sizes[level], grid=data.grid, k=ks[level],
                                  kernel=widths[level])
        if not torch.equal(graph.edge_index, hierarchy[level].edge_index):
            raise RuntimeError(f"level {level}: the graph's edges differ from the hierarchy's")
        hierarchy[level].edge_weight = graph.edge_weight
    return hierarchy, widths


# --------------------------------------------------------------------------- training
def stack(data: SegmentationMaps) -> tuple[torch.Tensor, torch.Tensor]:
    """``x [S, N, 1]`` and ``y [S, N]`` of every sample of a split."""
    samples = [data[i] for i in range(len(data))]
    return torch.stack([s.x for s in samples]), torch.stack([s.y_node for s in samples])


def train(model: SphericalUNet, x: torch.Tensor, y: torch.Tensor, epochs: int,
          batch_size: int, lr: float, seed: int) -> None:
    """Adam with a one-cycle schedule, cross-entropy over nodes."""
    generator = torch.Generator().manual_seed(seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    steps = epochs * ((len(x) + batch_size - 1) // batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, lr, total_steps=steps)
    model.train()
    for _ in range(epochs):
        for batch in torch.randperm(len(x), generator=generator).split(batch_size):
            logits = model(x[batch])
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                                     y[batch].reshape(-1))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
    model.eval()


@torch.no_grad()
def accuracy(model: SphericalUNet, x: torch.Tensor, y: torch.Tensor) -> float:
    pred = torch.cat([model(chunk).argmax(-1) for chunk in x.split(32)])
    return float((pred == y).double().mean())


# ----------------------------------------------------------------------- equivariance
class GridInterpolator:
    """Bilinear (``method="linear"``) or bicubic (``"cubic"``) interpolation in
    :math:`(\vartheta, \varphi)` of node values ``[N, C]`` of a pole-free lat-lon grid at
    unit vectors ``[P, 3]`` (periodic in longitude; caps filled with the ring mean)."""

    def __init__(self, data: SegmentationMaps, method: str = "linear") -> None:
        self.method = method
        pos = data.pos
        if np.any(np.abs(pos[:, 2]) == 1.0):
            raise ValueError("the interpolator needs a grid without pole nodes (SOFT)")
        self.nlat, self.nlon = data.nlat, data.nlon
        theta = np.arccos(np.clip(pos[:, 2], -1.0, 1.0)).reshape(self.nlat, self.nlon)[:, 0]
        self.theta = np.concatenate([[0.0], theta, [np.pi]])
        self.phi = 2.0 * np.pi * np.arange(self.nlon + 1) / self.nlon

    def __call__(self, values: np.ndarray, points: np.ndarray) -> np.ndarray:
        grid = values.reshape(self.nlat, self.nlon, -1)
        grid = np.concatenate([grid, grid[:, :1]], axis=1)  # periodic column at 2 pi
        caps = [grid[:1].mean(axis=1, keepdims=True), grid[-1:].mean(axis=1, keepdims=True)]
        grid = np.concatenate([np.repeat(caps[0], self.nlon + 1, 1), grid,
                               np.repeat(caps[1], self.nlon + 1, 1)], axis=0)
        theta = np.arccos(np.clip(points[:, 2], -1.0, 1.0))
        phi = np.mod(np.arctan2(points[:, 1], points[:, 0]), 2.0 * np.pi)
        return RegularGridInterpolator((self.theta, self.phi), grid, method=self.method)(
            np.stack([theta, phi], 1))


def rotated_inputs(data: SegmentationMaps, index: int, rotations: list[hp.Rotator]
                   ) -> tuple[np.ndarray, list[np.ndarray]]:
    """Noise-free standardised field of test map ``index`` and its exact rotations, all
    with the unrotated map's mean and standard deviation."""
    alm = data.coefficients(index)
    field = data._synthesis(alm)
    mean, std = field.mean(), field.std()
    rotated = [(data._synthesis(r.rotate_alm(alm, lmax=data.lmax)) - mean) / std
               for r in rotations]
    return (field - mean) / std, rotated


def control(x: np.ndarray) -> np.ndarray:
    """The pointwise control :math:`\\mathrm{softmax}(-(x - t_c)^2 / 0.5)` ``[N, 3]``."""
    logits = -(x[:, None] - np.array([-1.5, 0.0, 1.5])) ** 2 / 0.5
    logits -= logits.max(axis=1, keepdims=True)
    return np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)


def equivariance(predict: Any, data: SegmentationMaps, maps: int, num_rotations: int,
                 seed: int, area: np.ndarray, method: str = "linear") -> tuple[float, float]:
    """Mean RMS error :math:`E` and label-flip area fraction (module docstring) of
    ``predict(x [N]) -> P [N, C]`` over ``maps`` test maps x ``num_rotations``."""
    angles = Rotation.random(num_rotations, random_state=seed).as_euler("ZYX", degrees=True)
    rotators = [hp.Rotator(rot=tuple(a), deg=True, eulertype="ZYX") for a in angles]
    interpolate = GridInterpolator(data, method)
    weight = area / area.sum()
    errors, flips = [], []
    for index in range(maps):
        x, rotated = rotated_inputs(data, index, rotators)
        reference = predict(x)
        for rotator, x_rot in zip(rotators, rotated, strict=True):
            expected = interpolate(reference, data.pos @ rotator.mat)  # P(R^-1 p)
            got = predict(x_rot)
            errors.append(np.sqrt((weight * ((got - expected) ** 2).sum(1)).sum()))
            flips.append((weight * (got.argmax(1) != expected.argmax(1))).sum())
    return float(np.mean(errors)), float(np.mean(flips))


def network(model: SphericalUNet):
    @torch.no_grad()
    def predict(x: np.ndarray) -> np.ndarray:
        inputs = torch.from_numpy(x.astype(np.float32))[None, :, None]
        return torch.softmax(model(inputs)[0], -1).double().numpy()
    return predict


def check_rotation(data: SegmentationMaps) -> float:
    """Max deviation of ``(R x)(p) - x(R^-1 p)`` with :math:`x(R^{-1} p)` from the
    spherical-harmonic series at off-grid points (the input rotation is exact)."""
    from scipy.special import sph_harm_y

    alm = data.coefficients(0)
    rotator = hp.Rotator(rot=(30.0, 40.0, 50.0), deg=True, eulertype="ZYX")
    points = data.pos @ rotator.mat
    theta, phi = np.arccos(np.clip(points[:, 2], -1, 1)), np.arctan2(points[:, 1], points[:, 0])
    ell, m = hp.Alm.getlm(data.lmax)
    series = sum(((2.0 - (mm == 0)) * sph_harm_y(ll, mm, theta, phi) * a).real
                 for ll, mm, a in zip(ell, m, alm, strict=True))
    return float(np.abs(data._synthesis(rotator.rotate_alm(alm, lmax=data.lmax))
                        - series).max())


# ------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nside", type=int, default=16)
    parser.add_argument("--train", type=int, default=400)
    parser.add_argument("--test", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--maps", type=int, default=4, help="test maps for equivariance")
    parser.add_argument("--rotations", type=int, default=8)
    parser.add_argument("--k", type=int, nargs=LEVELS, default=[40, 40, 20],
                        help="neighbours per level of the mass variant, finest first")
    parser.add_argument("--interpolation", choices=("linear", "cubic"), default="linear",
                        help="how the output is read at the rotated points")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", help="also write the report as Markdown to this file")
    args = parser.parse_args(argv)
    command = shlex.join(["python", "scripts/latlon_segmentation.py",
                          *(sys.argv[1:] if argv is None else argv)])
    start = time.perf_counter()
    options = {"nside": args.nside, "sampling": "equiangular", "grid": "soft"}
    train_data = SegmentationMaps("train", args.train, args.seed, **options)
    test_data = SegmentationMaps("test", args.test, args.seed, **options)
    x_train, y_train = stack(train_data)
    x_test, y_test = stack(test_data)
    rotation_check = check_rotation(test_data)

    tic = time.perf_counter()
    mass_graphs, widths = mass_hierarchy(train_data, tuple(args.k), seed=1)
    tuning = time.perf_counter() - tic
    plain_graphs = train_data.hierarchy(LEVELS)
    ks = "/".join(str(k) for k in args.k)
    variants = [("plain: k=8 auto width, sym", plain_graphs, "sym"),
                (f"mass: k={ks} tuned widths, mass", mass_graphs, "mass"),
                ("control: mass graphs, sym", mass_graphs, "sym")]
    area = plain_graphs[0].node_weight.double().numpy()
    rows = []
    for name, hierarchy, normalization in variants:
        tic = time.perf_counter()
        torch.manual_seed(args.seed)
        model = SphericalUNet(hierarchy, 1, 3, channels=(16, 32, 64), K=3,
                              normalization=normalization)
        train(model, x_train, y_train, args.epochs, args.batch_size, args.lr, args.seed)
        trained = time.perf_counter() - tic
        acc = accuracy(model, x_test, y_test)
        err, flips = equivariance(network(model), test_data, args.maps, args.rotations,
                                  args.seed, area, args.interpolation)
        rows.append(f"| {name} | {acc:.4f} | {err:.4f} | {flips:.4f} | {trained:.0f} s |")
    err, flips = equivariance(control, test_data, args.maps, args.rotations, args.seed, area,
                              args.interpolation)
    rows.append(f"| pointwise control (interpolation floor) | – | {err:.4f} | {flips:.4f} | – |")

    lines = [
        "# Segmentation on a SOFT lat-lon grid: plain graph vs mass Laplacian",
        "",
        f"- command: `{command}`",
        f"- data: SegmentationMaps nside {args.nside}, SOFT {train_data.nlat}x"
        f"{train_data.nlon} ({train_data.num_nodes} nodes), {args.train} train / "
        f"{args.test} test maps, seed {args.seed}",
        f"- U-Net channels (16, 32, 64), K=3, {args.epochs} epochs, batch "
        f"{args.batch_size}, Adam one-cycle lr {args.lr}",
        f"- mass widths t per level (tuned, {tuning:.0f} s): "
        + ", ".join(f"{t:.4g}" for t in widths),
        f"- equivariance: {args.maps} noise-free test maps x {args.rotations} random "
        f"rotations, output read by {args.interpolation} interpolation; input rotation "
        f"exact to {rotation_check:.1e}",
        f"- machine: {machine_description()}; total {time.perf_counter() - start:.0f} s",
        "",
        "| variant | test accuracy | E (RMS prob., area-weighted) | label flips (area) "
        "| train time |",
        "|---|---|---|---|---|",
        *rows,
    ]
    publish_report("\n".join(lines) + "\n", args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
