#!/usr/bin/env python
r"""Equivariance error of our HEALPix graphs next to the published DeepSphere v2 figures.

For each nside and degree l, prints the mean normalised equivariance error of the graph
Laplacian (:func:`deepsphere_pyg.graphs.equivariance_error`, combinatorial Laplacian,
pure-degree random fields, Haar-random rotations) measured three ways:

* ``E iter``  — :math:`E = (\lVert RLf - LRf \rVert / \lVert Lf \rVert)^2` as the paper
  defines it, rotations exact for f, ``map2alm(iter=3)`` for Lf (``method="iter"``);
* ``E lsq``   — the same with a least-squares analysis of Lf (``method="lsq"``), which
  removes the analysis floor of ``iter`` near :math:`\ell_\max = 3 n_\mathrm{side} - 1`;
* ``√E paper`` — the plain (not squared) ratio with both f and Lf rotated through
  map2alm, as in the code behind the published figures (``method="paper"``,
  ``squared=False``): the like-for-like comparison with the published values.

``ratio`` and ``verdict`` compare ``√E paper`` with the published value
(``ok`` = ours <= published). Rows:

* ``v1``: DeepSphere v1 graph (``edges="neighbours"``);
* ``v2 k=K``: our v2 recipe (``kernel="v2"``: the published half-width sigma of
  ``exp(-ln2 d²/σ²)``, i.e. ``t = σ²/(4 ln 2)``, from ``healpix_kernel_width``);
* ``identity``: the identity operator, i.e. the floor of each measurement;
* with ``--tune``: ``k=K tuned`` rows, t from ``tune_kernel_width`` (criterion: mean
  ``E iter`` over the nside's degrees).

A second table (``--sections samplings``) compares samplings at about 3000 nodes with
the generic least-squares protocol (``method="lsq"``, the only one defined for every
sampling): HEALPix nside 16, Driscoll-Healy / SOFT / Gauss-Legendre lat-lon grids
(4-neighbour ``1/d`` graph of Khasanova & Frossard and k-NN heat-kernel graphs),
icosahedral vertices (mesh and k-NN) and uniformly random points, at degrees 4, 16 and
28 (below every sampling's band limit). With ``--tune`` the k-NN widths of the lat-lon
grid and of the random points are also tuned by ``tune_kernel_width``.

With ``--mass`` the samplings table also measures the **mass Laplacian**
:math:`M^{-1} L_m` (``normalization="mass"``: node masses of
:mod:`deepsphere_pyg.graphs.node_weight`, :mod:`deepsphere_pyg.graphs.operator`) on the
node values: once on an existing graph as built (its width was tuned for the
combinatorial Laplacian), and on k-NN graphs of the same nodes whose width is tuned for
the mass operator by ``tune_kernel_width(..., normalization="mass")`` on fresh random
draws (seed + 1), built in float64 (narrow widths of large ``k`` underflow in float32).

Usage::

    python scripts/equivariance_table.py                       # both tables, ~3 min
    python scripts/equivariance_table.py --sections samplings --tune
    python scripts/equivariance_table.py --sections samplings --mass
    python scripts/equivariance_table.py --tune --output equivariance.md

"""

from __future__ import annotations

import argparse
import math
import os
import platform
import shlex
import sys
import time
from dataclasses import dataclass

import healpy as hp
import numpy as np
import scipy.sparse
import torch

from deepsphere_pyg.graphs import (
    V2_KERNEL_WIDTHS,
    equiangular_graph,
    equiangular_grid,
    healpix_graph,
    healpix_kernel_width,
    icosahedral_graph,
    knn_graph,
)
from deepsphere_pyg.graphs.equivariance import (
    equivariance_samples,
    tune_kernel_width,
)
from deepsphere_pyg.io import publish_report

#: Published mean equivariance errors (DeepSphere v2 figure data): {nside: {graph: {l: E}}}.
PUBLISHED: dict[int, dict[str, dict[int, float]]] = {
    32: {
        "v1": {10: 0.52, 50: 0.24, 90: 0.16},
        "k=8": {10: 0.18, 50: 0.053, 90: 0.097},
        "k=20": {10: 0.083, 50: 0.014, 90: 0.033},
        "k=40": {10: 0.048, 50: 0.005, 90: 0.009},
    },
    64: {
        "v1": {100: 0.24},
        "k=8": {100: 0.050},
        "k=20": {100: 0.011},
        "k=40": {100: 0.003},
    },
}
NEIGHBOURS = (8, 20, 40)


@dataclass
class Row:
    """One graph at one nside: its measured errors per degree."""

    nside: int
    name: str
    family: str  # key into PUBLISHED ("v1", "k=8", ...) or "" for none
    t: float | None
    e_iter: dict[int, tuple[float, float]]  # l -> (mean, standard error)
    e_lsq: dict[int, float]
    e_paper: dict[int, float]


def parse_nside_ells(text: str) -> tuple[int, list[int]]:
    """``"32:10,50,90"`` -> ``(32, [10, 50, 90])``."""
    try:
        nside, ells = text.split(":")
        return int(nside), [int(ell) for ell in ells.split(",")]
    except ValueError as error:
        raise argparse.ArgumentTypeError(
            f"expected NSIDE:L1,L2,... such as 32:10,50,90, got {text!r}") from error


def measure(graph, ells, args, name, nside, family, t, operator=None) -> Row:
    """Errors of one graph (or operator) with the three methods."""
    common = dict(num_signals=args.num_signals, num_rotations=args.num_rotations,
                  seed=args.seed, operator=operator)
    iters = equivariance_samples(graph, ells, method="iter", **common)
    lsq = equivariance_samples(graph, ells, method="lsq", **common)
    paper = equivariance_samples(graph, ells, method="paper", squared=False, **common)
    return Row(
        nside=nside, name=name, family=family, t=t,
        e_iter={ell: (float(v.mean()), float(v.std(ddof=1) / math.sqrt(v.size))
                      if v.size > 1 else float("nan")) for ell, v in iters.items()},
        e_lsq={ell: float(v.mean()) for ell, v in lsq.items()},
        e_paper={ell: float(v.mean()) for ell, v in paper.items()},
    )


def fmt(value: float | None, digits: int = 3) -> str:
    if value is None or not np.isfinite(value):
        return "–"
    return f"{value:.{digits}g}" if value >= 1e-3 else f"{value:.2e}"


def table(rows: list[Row]) -> list[str]:
    lines = [
        "| nside | graph | t | l | E iter (± s.e.) | E lsq | √E paper | published | "
        "ratio √E paper/pub | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        for ell, (mean, sem) in row.e_iter.items():
            published = PUBLISHED.get(row.nside, {}).get(row.family, {}).get(ell)
            paper = row.e_paper[ell]
            if published is None:
                ratio, verdict = "–", "–"
            else:
                ratio = f"{paper / published:.2f}"
                verdict = "ok" if paper <= published else "WORSE"
            lines.append(
                f"| {row.nside} | {row.name} | {fmt(row.t, 4)} | {ell} | "
                f"{fmt(mean)} ± {fmt(sem, 2)} | {fmt(row.e_lsq[ell])} | {fmt(paper)} | "
                f"{fmt(published)} | {ratio} | {verdict} |")
    return lines


#: Degrees of the samplings table (all below the band limit 31 of a 64 x 64 grid).
SAMPLING_ELLS = (4, 16, 28)
#: Published mean error of the 4-neighbour equiangular graph (DeepSphere v2 figure).
PUBLISHED_EQUIANGULAR = "1.0-1.9"


def uniform_points(num: int, seed: int) -> np.ndarray:
    """``num`` unit vectors drawn uniformly on the sphere."""
    pos = np.random.default_rng(seed).standard_normal((num, 3))
    return pos / np.linalg.norm(pos, axis=1, keepdims=True)


def soft_finite_volume_operator(nlat: int):
    r"""Finite-volume Laplace-Beltrami operator :math:`A^{-1} C` of the SOFT grid (a reference
    operator, not a graph Laplacian): 4-neighbour stencil with weights (dual edge length) /
    (edge length) and cell areas :math:`A` between the mid-latitudes (closed caps at the
    poles). Shows how far a metric-aware, area-normalised stencil is from the graphs."""
    lat, _ = equiangular_grid(nlat, grid="soft")
    nlon, dphi = nlat, 2 * np.pi / nlat
    theta = np.radians(90.0 - lat)
    bounds = np.concatenate([[0.0], (theta[1:] + theta[:-1]) / 2, [np.pi]])
    ring, col = np.divmod(np.arange(nlat * nlon), nlon)
    east = ring * nlon + (col + 1) % nlon
    w_east = (bounds[ring + 1] - bounds[ring]) / (np.sin(theta[ring]) * dphi)
    inner = np.flatnonzero(ring < nlat - 1)
    w_south = (np.sin(bounds[ring[inner] + 1]) * dphi
               / (theta[ring[inner] + 1] - theta[ring[inner]]))
    rows = np.concatenate([np.arange(ring.size), inner])
    cols = np.concatenate([east, inner + nlon])
    weights = np.concatenate([w_east, w_south])
    matrix = scipy.sparse.coo_array((weights, (rows, cols)), shape=(ring.size,) * 2).tocsr()
    matrix = matrix + matrix.T
    area = (np.cos(bounds[ring]) - np.cos(bounds[ring + 1])) * dphi
    operator = scipy.sparse.diags_array(1 / area) @ (
        scipy.sparse.diags_array(matrix.sum(axis=1)) - matrix)
    return lambda x: operator @ x


def sampling_graphs(args) -> list[tuple[str, object, object]]:
    """``(name, graph, build(t) or None)`` for the samplings table."""
    points = uniform_points(3072, args.seed + 100)
    grid = dict(nlat=64, grid="driscoll-healy")
    return [
        ("HEALPix nside 16, k=8 (v2)", healpix_graph(16, k=8), None),
        ("HEALPix nside 16, k=20 (v2)", healpix_graph(16, k=20), None),
        ("Driscoll-Healy 64x64, 4-neighbour 1/d",
         equiangular_graph(**grid, edges="neighbours"), None),
        ("Driscoll-Healy 64x64, k=8, HEALPix width rule",
         equiangular_graph(**grid, k=8, kernel="global"),
         lambda t: equiangular_graph(**grid, k=8, kernel=t)),
        ("Driscoll-Healy 64x64, k=8 adaptive",
         equiangular_graph(**grid, k=8, kernel="adaptive"), None),
        ("Driscoll-Healy 64x64, k=8 auto", equiangular_graph(**grid, k=8), None),
        ("Driscoll-Healy 64x64, k=20 auto", equiangular_graph(**grid, k=20),
         lambda t: equiangular_graph(**grid, k=20, kernel=t)),
        ("SOFT 64x64, 4-neighbour 1/d",
         equiangular_graph(64, grid="soft", edges="neighbours"), None),
        ("SOFT 64x64, k=20 auto", equiangular_graph(64, grid="soft", k=20), None),
        ("SOFT 64x64, finite-volume operator A^-1 C (reference, not a graph)",
         equiangular_graph(64, grid="soft", edges="neighbours"), "finite-volume"),
        ("Clenshaw-Curtis 33x64, k=20 auto",
         equiangular_graph(33, 64, grid="clenshaw-curtis", k=20), None),
        ("Gauss-Legendre 32x64, k=20 auto",
         equiangular_graph(32, 64, grid="gauss-legendre", k=20), None),
        ("icosahedral level 4, mesh", icosahedral_graph(4, edges="neighbours"),
         lambda t: icosahedral_graph(4, edges="neighbours", kernel=t)),
        ("icosahedral level 4, k=8", icosahedral_graph(4, edges="knn", k=8), None),
        ("random uniform 3072, k=8 global", knn_graph(points, k=8, kernel="global"),
         lambda t: knn_graph(points, k=8, kernel=t)),
        ("random uniform 3072, k=8 adaptive", knn_graph(points, k=8, kernel="adaptive"), None),
        ("random uniform 3072, k=20 global", knn_graph(points, k=20, kernel="global"), None),
    ]


#: Lat-lon grids of the mass rows: (name, nlat, nlon, grid, neighbour counts).
MASS_GRIDS = (
    ("Driscoll-Healy 64x64", 64, 64, "driscoll-healy", (20, 40, 80)),
    ("SOFT 64x64", 64, 64, "soft", (20, 40, 80)),
    ("Clenshaw-Curtis 33x64", 33, 64, "clenshaw-curtis", (20, 40)),
    ("Gauss-Legendre 32x64", 32, 64, "gauss-legendre", (20, 40)),
)


#: The lat-lon grids of ``--mass-grids large`` (about 8000 nodes), beside HEALPix nside 32.
MASS_GRIDS_LARGE = (
    ("Driscoll-Healy 64x128", 64, 128, "driscoll-healy", (40, 80)),
    ("SOFT 64x128", 64, 128, "soft", (40, 80)),
    ("Clenshaw-Curtis 65x128", 65, 128, "clenshaw-curtis", (40, 80)),
    ("Gauss-Legendre 64x128", 64, 128, "gauss-legendre", (40, 80)),
)


def large_mass_graphs() -> list[tuple[str, object, object]]:
    """The mass rows of ``--mass-grids large``: HEALPix nside 16 and 32 (k = 8, equal
    masses: the combinatorial Laplacian up to a constant) and the ~64 x 128 grids with
    widths tuned for the mass operator."""
    f64 = torch.float64
    rows: list[tuple[str, object, object]] = [
        (f"HEALPix nside {nside}, k=8 (v2), mass (equal masses)", healpix_graph(nside, k=8),
         None) for nside in (16, 32)]
    for name, nlat, nlon, grid, ks in MASS_GRIDS_LARGE:
        for k in ks:
            rows.append((f"{name}, k={k}, mass", None, lambda t, nlat=nlat, nlon=nlon,
                         grid=grid, k=k: equiangular_graph(nlat, nlon, grid=grid, k=k,
                                                           kernel=t, dtype=f64)))
    return rows


def mass_graphs(args) -> list[tuple[str, object, object]]:
    """``(name, graph, build(t) or None)`` of the mass rows: ``build`` rows are tuned for
    the mass operator, the others measured as built."""
    if args.mass_grids == "large":
        return large_mass_graphs()
    points = uniform_points(3072, args.seed + 100)
    f64 = torch.float64
    rows: list[tuple[str, object, object]] = [
        ("HEALPix nside 16, k=8 (v2), mass (equal masses)", healpix_graph(16, k=8), None)]
    for name, nlat, nlon, grid, ks in MASS_GRIDS:
        rows.append((f"{name}, k=20 auto, mass", equiangular_graph(
            nlat, nlon, grid=grid, k=20), None))
        for k in ks:
            rows.append((f"{name}, k={k}, mass", None, lambda t, nlat=nlat, nlon=nlon,
                         grid=grid, k=k: equiangular_graph(nlat, nlon, grid=grid, k=k,
                                                           kernel=t, dtype=f64)))
    rows += [
        ("icosahedral level 4, mesh, mass", None,
         lambda t: icosahedral_graph(4, edges="neighbours", kernel=t, dtype=f64)),
        ("icosahedral level 4, k=8, mass", None,
         lambda t: icosahedral_graph(4, edges="knn", k=8, kernel=t, dtype=f64)),
    ]
    for k in (8, 20, 40):
        rows.append((f"random uniform 3072, k={k}, mass", None,
                     lambda t, k=k: knn_graph(points, k=k, kernel=t, dtype=f64)))
    return rows


def error_cells(samples: dict[int, np.ndarray]) -> tuple[str, str]:
    """Table cells of per-sample plain errors ``{ell: array}``: the mean sqrt(E) per degree
    (``" | "``-joined) and the mean squared error over the degrees."""
    plain = " | ".join(fmt(float(values.mean())) for values in samples.values())
    squared = float(np.mean([np.mean(values**2) for values in samples.values()]))
    return plain, fmt(squared)


def eigenspace_graphs(args) -> list[tuple[str, object, object, str | None]]:
    """``(name, graph, build(t) or None, normalization)`` of the eigenspace table: random
    uniform points (where the rotation protocol also applies, to compare the methods) and
    the GeoNames cities of :func:`~deepsphere_pyg.data.stations.world_cities` (where it
    does not: no harmonic fit resolves degree 44 on them)."""
    from deepsphere_pyg.data.stations import world_cities
    from deepsphere_pyg.graphs import points_graph

    points = uniform_points(3072, args.seed + 100)
    lon, lat = world_cities()
    f64 = torch.float64

    def cities(k: int):
        return lambda t: points_graph(lon, lat, k=k, kernel=t, duplicates="merge", dtype=f64)

    rows: list[tuple[str, object, object, str | None]] = [
        ("random uniform 3072, k=8 global", knn_graph(points, k=8, kernel="global"), None,
         None),
        ("random uniform 3072, k=20 global", knn_graph(points, k=20, kernel="global"), None,
         None),
    ]
    for k in (8, 20, 40):
        rows.append((f"random uniform 3072, k={k}, mass", None,
                     lambda t, k=k: knn_graph(points, k=k, kernel=t, dtype=f64), "mass"))
    rows.append(("random uniform 3072, k=40", None,
                 lambda t: knn_graph(points, k=40, kernel=t, dtype=f64), None))
    # The same density on three quarters of the sphere (z > -0.5): one boundary.
    draws = uniform_points(4 * 3072, args.seed + 100)
    cap = draws[draws[:, 2] > -0.5][:3072]
    for normalization in (None, "mass"):
        rows.append(("uniform 3072 on z > -0.5 (a boundary), k=40" +
                     (", mass" if normalization else ""), None,
                     lambda t: knn_graph(cap, k=40, kernel=t, dtype=f64), normalization))
    rows.append(("GeoNames cities, k=8 auto (the stations graph)",
                 points_graph(lon, lat, k=8, duplicates="merge"), None, None))
    for k in (8, 20, 40):
        rows.append((f"GeoNames cities, k={k}", None, cities(k), None))
        rows.append((f"GeoNames cities, k={k}, mass", None, cities(k), "mass"))
    return rows


def eigenspace_section(args) -> list[str]:
    """Rows of the eigenspace table (``method="eigenspace"``; widths tuned with it)."""
    ells = list(SAMPLING_ELLS)
    header = " | ".join(f"√E l={ell}" for ell in ells)
    lines = [f"| graph | nodes | t | {header} | mean E (squared) |",
             "|---|---|---|" + "---|" * len(ells) + "---|"]
    common = dict(num_signals=args.num_signals, seed=args.seed, method="eigenspace")
    for name, graph, build, normalization in eigenspace_graphs(args):
        tic = time.perf_counter()
        t = getattr(graph, "kernel_width", None)
        if build is not None:
            t, _ = tune_kernel_width(build, ells, num_signals=args.tune_signals,
                                     seed=args.seed + 1, normalization=normalization,
                                     method="eigenspace")
            graph, name = build(t), f"{name}, t tuned here"
        plain, squared = error_cells(equivariance_samples(
            graph, ells, squared=False, normalization=normalization, **common))
        lines.append(f"| {name} | {int(graph.num_nodes)} | {fmt(t, 4)} | {plain} | "
                     f"{squared} |")
        print(f"  {name}: {time.perf_counter() - tic:.1f} s", file=sys.stderr)
    return lines


def samplings_section(args) -> list[str]:
    """Rows of the samplings table (plain and squared errors, least-squares protocol)."""
    ells = list(SAMPLING_ELLS)
    header = " | ".join(f"√E l={ell}" for ell in ells)
    lines = [
        f"| sampling, graph | nodes | t | {header} | mean E (squared) | published |",
        "|---|---|---|" + "---|" * len(ells) + "---|---|",
    ]
    common = dict(num_signals=args.num_signals, num_rotations=args.num_rotations,
                  seed=args.seed, method="lsq")

    def row(name: str, graph, t: float | None, operator=None, normalization=None) -> str:
        cells, squared = error_cells(equivariance_samples(
            graph, ells, squared=False, operator=operator, normalization=normalization,
            **common))
        published = PUBLISHED_EQUIANGULAR if "4-neighbour" in name else "–"
        return (f"| {name} | {int(graph.num_nodes)} | {fmt(t, 4)} | {cells} | "
                f"{squared} | {published} |")

    for name, graph, build in sampling_graphs(args) if not args.mass_only else []:
        tic = time.perf_counter()
        if build == "finite-volume":
            lines.append(row(name, graph, None, soft_finite_volume_operator(64)))
            continue
        lines.append(row(name, graph, getattr(graph, "kernel_width", None)))
        if args.tune and build is not None:
            t, _ = tune_kernel_width(build, ells, num_signals=args.tune_signals,
                                     num_rotations=args.tune_rotations, seed=args.seed + 1)
            lines.append(row(f"{name} -> t tuned here", build(t), t))
        print(f"  {name}: {time.perf_counter() - tic:.1f} s", file=sys.stderr)
    for name, graph, build in mass_graphs(args) if args.mass else []:
        tic = time.perf_counter()
        if build is None:
            lines.append(row(name, graph, getattr(graph, "kernel_width", None),
                             normalization="mass"))
        else:
            t, _ = tune_kernel_width(build, ells, num_signals=args.tune_signals,
                                     num_rotations=args.tune_rotations, seed=args.seed + 1,
                                     normalization="mass")
            lines.append(row(f"{name}, t tuned here", build(t), t, normalization="mass"))
        print(f"  {name}: {time.perf_counter() - tic:.1f} s", file=sys.stderr)
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nside-ells", type=parse_nside_ells, nargs="+",
                        default=[(32, [10, 50, 90]), (64, [100])],
                        metavar="NSIDE:L1,L2",
                        help="resolutions and degrees (default: 32:10,50,90 64:100)")
    parser.add_argument("--num-signals", type=int, default=8)
    parser.add_argument("--num-rotations", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tune", action="store_true",
                        help="add rows with t tuned by tune_kernel_width (nside 32 only)")
    parser.add_argument("--tune-signals", type=int, default=4)
    parser.add_argument("--tune-rotations", type=int, default=4)
    parser.add_argument("--mass", action="store_true",
                        help="add rows of the mass Laplacian M^-1 L to the samplings table "
                             "(widths tuned for it by tune_kernel_width)")
    parser.add_argument("--mass-grids", choices=("small", "large"), default="small",
                        help="grids of the mass rows: 'small' (default, about 3000 nodes, "
                             "with icosahedral and random points) or 'large' (about 64 x "
                             "128, beside HEALPix nside 16 and 32)")
    parser.add_argument("--mass-only", action="store_true",
                        help="samplings table: the mass rows only")
    parser.add_argument("--sections", nargs="+",
                        choices=("healpix", "samplings", "eigenspace"),
                        default=["healpix", "samplings"],
                        help="which tables to compute (default: both)")
    parser.add_argument("--output", help="also write the report as Markdown to this file")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    rows: list[Row] = []
    tuned: list[str] = []
    samplings = samplings_section(args) if "samplings" in args.sections else []
    eigenspace = eigenspace_section(args) if "eigenspace" in args.sections else []
    for nside, ells in (args.nside_ells if "healpix" in args.sections else []):
        graph = healpix_graph(nside, edges="neighbours")
        rows.append(measure(graph, ells, args, "v1", nside, "v1", graph.kernel_width))
        for k in NEIGHBOURS:
            graph = healpix_graph(nside, k=k, kernel="v2")
            rows.append(measure(graph, ells, args, f"v2 k={k}", nside, f"k={k}",
                                graph.kernel_width))
        if args.tune and nside == 32:
            for k in NEIGHBOURS:
                tic = time.perf_counter()
                t, objective = tune_kernel_width(
                    lambda t, k=k, nside=nside: healpix_graph(nside, k=k, kernel=t), ells,
                    num_signals=args.tune_signals, num_rotations=args.tune_rotations,
                    seed=args.seed + 1)  # fresh draws: the table rows are not the fit data
                graph = healpix_graph(nside, k=k, kernel=t)
                rows.append(measure(graph, ells, args, f"k={k} tuned", nside, f"k={k}", t))
                published_t = healpix_kernel_width(nside, k)
                tuned.append(
                    f"| {nside} | {k} | {t:.4g} | {objective:.3g} | "
                    f"{V2_KERNEL_WIDTHS[k][nside]:.5g} | {published_t:.4g} | "
                    f"{t / published_t:.2f} | {time.perf_counter() - tic:.1f} s |")
        rows.append(measure(healpix_graph(nside, k=8), ells, args, "identity (floor)", nside,
                            "", None, operator=lambda x: x))
    elapsed = time.perf_counter() - start
    script = sys.argv[0] if argv is None else "scripts/equivariance_table.py"
    command = shlex.join(["python", script, *(sys.argv[1:] if argv is None else argv)])

    report = [
        "# Equivariance error of graph Laplacians vs DeepSphere v2",
        "",
        f"- command: `{command}`",
        f"- seed {args.seed}, {args.num_signals} signals x {args.num_rotations} rotations "
        "per degree (same random draws for every graph of an nside)",
        f"- machine: {platform.platform()}, {platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, numpy {np.__version__}, healpy {hp.__version__}",
        f"- wall time: {elapsed:.1f} s",
    ]
    if rows:
        report += [
            "",
            "## HEALPix graphs vs the published figures",
            "",
            "Laplacian: combinatorial L = D - W. E iter / E lsq: squared error as defined "
            "in the paper; √E paper: not squared, f and Lf both rotated through map2alm "
            "(the published code's protocol). verdict: √E paper <= published.",
            "",
            *table(rows),
        ]
    if tuned:
        report += [
            "",
            "Tuned widths (criterion: mean E iter over the degrees above; "
            f"{args.tune_signals} signals x {args.tune_rotations} rotations, seed "
            f"{args.seed + 1}):",
            "",
            "| nside | k | tuned t | objective | published σ | "
            "published t = σ²/(4 ln 2) | tuned / published t | time |",
            "|---|---|---|---|---|---|---|---|",
            *tuned,
        ]
    if samplings:
        report += [
            "",
            "## Other samplings (least-squares protocol)",
            "",
            "Combinatorial Laplacian; rows marked 'mass': the mass Laplacian M^-1 L_m on "
            "node values ((L_m)_ij = -m_i m_j w_ij, m the node areas). "
            f"√E = plain relative error ||RLf - LRf|| / ||Lf||, "
            f"mean over {args.num_signals} signals x {args.num_rotations} rotations per "
            "degree; mean E = the paper's squared error averaged over the degrees. Lf is "
            "analysed by least squares on the nodes up to the sampling's band limit "
            "(HEALPix: healpy map2alm_lsq). t: kernel width (median t_ij for adaptive "
            "widths; the 4-neighbour graph has 1/d weights). Published: the 4-neighbour "
            "equiangular graph of the DeepSphere v2 paper.",
            "",
            *samplings,
        ]
    if eigenspace:
        report += [
            "",
            "## Clustered networks: the eigenspace method (no rotation)",
            "",
            "method='eigenspace': √E = ||Lf - λ_l f|| / ||Lf|| at the nodes, with one "
            "least-squares λ_l per degree (Schur: an equivariant operator is a scalar on "
            f"each degree); mean over {args.num_signals} fields per degree; no harmonic "
            "fit, so it applies to the cities, whose nodes cannot resolve one. Rows "
            "'t tuned here': tune_kernel_width(..., method='eigenspace') on fresh draws "
            f"(seed {args.seed + 1}). Rows 'mass': M^-1 L_m with Voronoi masses.",
            "",
            *eigenspace,
        ]
    text = "\n".join(report) + "\n"
    publish_report(text, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
