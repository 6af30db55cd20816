#!/usr/bin/env python
r"""Equivariance error vs spherical-harmonic degree: the published DeepSphere v2 points
beside this library's curves.

Four panels, one figure (PNG) and a Markdown report with every plotted number:

(a) HEALPix graph Laplacians at ``--nside`` (default 32): the v1 graph (8 HEALPix
    neighbours, :math:`t = \overline{d^2}/2`) and the v2 k-NN graphs k = 8 / 20 / 40 with
    the published kernel widths, at degrees :math:`2 \le \ell \le 3 n_\mathrm{side} - 1`.
    Plotted: the plain relative error :math:`\sqrt{E}` with the protocol of the published
    code (``method="paper"``: f and Lf both rotated through healpy's
    map2alm / rotate_alm / alm2map); published values as open markers, same colours.
(b) The same samples squared, :math:`E = (\lVert R L f - L R f \rVert / \lVert L f
    \rVert)^2` as the paper writes it and as
    :func:`~deepsphere_pyg.graphs.equivariance.equivariance_error` returns by default
    (``squared=True``; the report checks this against the library), with the same
    published markers. Whether the published values are squared is not stated with them,
    so they are shown on both panels. (The library's default ``method="lsq"`` differs
    from ``"paper"`` only near :math:`\ell_\max`; ``scripts/equivariance_table.py``
    prints both at the published degrees. Least-squares analysis of every map costs 3 to
    10 times more here.)
(c) Driscoll-Healy equiangular graphs with about as many nodes (``nlat = nlon``, the even
    ``nlat`` whose :math:`(n_\mathrm{lat} - 1) n_\mathrm{lon} + 1` nodes are closest to
    :math:`12 n_\mathrm{side}^2`): the 4-neighbour graph (``edges="neighbours"``,
    :math:`w = 1/d`) and k-NN graphs k = 8 / 20 with ``kernel="auto"``; plain
    :math:`\sqrt{E}` with least-squares analysis on the nodes (the only protocol for
    samplings other than HEALPix), degrees up to the grid's band limit; the HEALPix k = 8 /
    20 curves of panel (a) as thin dashed references (at these degrees, below
    :math:`2 n_\mathrm{side}`, the two protocols agree to about 1 %).
(d) :class:`~deepsphere_pyg.scattering.SphericalScattering` (graph backend, default
    settings: depth 2, :math:`\lambda = 2`, :math:`L = 3 n_\mathrm{side}`, ``J0`` from
    ``--scattering-J0``) on HEALPix hierarchies with k = 8 (the default) and k = 20
    neighbours, and the harmonic backend as a reference: the plain (not squared) relative
    error :math:`\lVert S(R f) - R\,S(f) \rVert / \lVert R\,S(f) \rVert` over the paths of
    each scattering order, for inputs :math:`f` with a flat spectrum on
    :math:`1 \le \ell \le B`, against the band limit :math:`B`. :math:`R f` is exact (Wigner
    rotation of the coefficients, synthesis at the pixels); :math:`R\,S(f)` is computed by a
    least-squares analysis of :math:`S(f)` on the output level (:math:`\ell_\max = 3
    n_\mathrm{out} - 1`), rotation and synthesis, as in
    ``tests/scattering/test_graph_backend.py``. (Pure-degree inputs would leave order 0
    empty above :math:`\lambda^{J_0}`, where :math:`\Phi` vanishes.)

The Laplacian is the combinatorial :math:`D - W`. Every graph of a panel sees the same
random fields and rotations: HEALPix ``--num-signals`` x ``--num-rotations`` per degree
(8 x 8, as in ``scripts/equivariance_table.py``); Driscoll-Healy
``--equiangular-signals`` x ``--equiangular-rotations`` (8 x 4: there every rotation
costs a synthesis through a dense matrix, and the harmonic fit a QR factorisation of it);
scattering ``--scattering-fields`` x ``--scattering-rotations`` per band limit (8 x 1).

Usage::

    python scripts/equivariance_figure.py --output results/equivariance_vs_degree.md \
        --figure results/equivariance_vs_degree.png   # nside 32: 4.5 min on 2 loaded cores
    python scripts/equivariance_figure.py --nside 64 --sections healpix   # l = 100 points
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import healpy as hp
import matplotlib
import numpy as np
import torch
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, NullFormatter, ScalarFormatter

from deepsphere_pyg.graphs import (
    SphereGraph,
    SphereHierarchy,
    equiangular_graph,
    healpix_graph,
    laplacian_scipy,
)
from deepsphere_pyg.graphs.equivariance import (
    default_lmax,
    equivariance_error,
    random_rotations,
    rotate_alm,
)
from deepsphere_pyg.graphs.equivariance_probe import make_probe  # see shared_probe_curves
from deepsphere_pyg.io import provenance_lines, publish_report
from deepsphere_pyg.openmp import single_threaded_openmp
from deepsphere_pyg.plots import save_figure
from deepsphere_pyg.scattering import SphericalScattering

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - after choosing the backend

# Helpers of sibling scripts (run as ``python scripts/equivariance_figure.py``, the
# script's folder is on sys.path).
from equivariance_table import NEIGHBOURS, PUBLISHED, fmt  # noqa: E402

SECTIONS = ("healpix", "equiangular", "scattering")
#: Colours of the HEALPix graphs (those of the published figure: green, cyan, red, blue).
COLOURS = {"v1": "tab:green", "k=8": "tab:cyan", "k=20": "tab:red", "k=40": "tab:blue"}
#: Colours of the equiangular graphs (k-NN graphs share the HEALPix colour of their k).
EQUIANGULAR_COLOURS = {"4-neighbour": "tab:purple", "k=8": "tab:cyan", "k=20": "tab:red"}
ORDER_COLOURS = ("black", "tab:blue", "tab:orange")
SCATTERING_STYLES = ("-", "--", "-.", ":")
#: Least-squares analysis of the scattering outputs (as in the scattering tests).
LSQ_TOL, LSQ_MAXITER = 1e-10, 100


# ------------------------------------------------------------------------ arguments
def default_degrees(nside: int, num: int = 10) -> list[int]:
    r"""``num`` degrees spaced geometrically on :math:`[2, 3 n_\mathrm{side} - 1]` and the
    published degrees at this ``nside`` (nside 32: 10, 50, 90; 64: 100); an inner grid
    degree within 15 % of a published one gives way to it."""
    lmax = 3 * nside - 1
    published = {ell for curve in PUBLISHED.get(nside, {}).values() for ell in curve
                 if ell <= lmax}
    grid = {int(round(v)) for v in np.geomspace(2, lmax, num)}
    grid = {ell for ell in grid if ell in (2, lmax)
            or all(max(ell, p) / min(ell, p) > 1.15 for p in published)}
    return sorted(grid | published)


def comparable_nlat(num_nodes: int) -> int:
    r"""Even ``nlat`` of the Driscoll-Healy grid (``nlon = nlat``) whose
    :math:`(n_\mathrm{lat} - 1) n_\mathrm{lat} + 1` nodes are closest to ``num_nodes``."""
    centre = int(round(math.sqrt(num_nodes) / 2)) * 2
    candidates = [n for n in range(centre - 4, centre + 6, 2) if n >= 4]
    return min(candidates, key=lambda n: abs((n - 1) * n + 1 - num_nodes))


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nside", type=int, default=32, help="HEALPix resolution (32)")
    parser.add_argument("--degrees", type=int, nargs="+", default=None,
                        help="degrees l, also the scattering inputs' band limits (default: "
                             "10 geometrically spaced in [2, 3 nside - 1] and the published "
                             "degrees; nside 32: 2 3 5 7 10 17 26 40 50 62 90 95)")
    parser.add_argument("--num-signals", type=int, default=8,
                        help="random pure-degree fields per degree (8)")
    parser.add_argument("--num-rotations", type=int, default=8,
                        help="random rotations per field (8)")
    parser.add_argument("--equiangular-signals", type=int, default=8,
                        help="random fields per degree on the equiangular grid (8)")
    parser.add_argument("--equiangular-rotations", type=int, default=4,
                        help="random rotations per field on the equiangular grid (4: each "
                             "costs, per graph, a synthesis through the dense harmonic "
                             "design matrix, 12433 x 3136 at nside 32)")
    parser.add_argument("--nlat", type=int, default=None,
                        help="rings of the Driscoll-Healy grid (default: even nlat with "
                             "about 12 nside^2 nodes; 112 at nside 32)")
    parser.add_argument("--scattering-J0", type=int, default=2,
                        help="scale of the scattering's Phi, l < 2^J0 (2)")
    parser.add_argument("--scattering-k", type=int, nargs="+", default=[8, 20],
                        help="neighbours of the HEALPix hierarchies of the graph backend "
                             "(8 20)")
    parser.add_argument("--scattering-fields", type=int, default=8,
                        help="random band-limited fields per band limit (8)")
    parser.add_argument("--scattering-rotations", type=int, default=1,
                        help="random rotations per field (1)")
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS),
                        help="what to compute (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (0)")
    parser.add_argument("--figure", type=Path,
                        default=Path("results/equivariance_vs_degree.png"),
                        help="PNG to write (results/equivariance_vs_degree.png)")
    parser.add_argument("--output", help="also write the report as Markdown to this file")
    args = parser.parse_args(argv)
    if args.nside < 2 or not hp.isnsideok(args.nside, nest=True):
        parser.error(f"--nside must be a power of two >= 2, got {args.nside}")
    lmax = 3 * args.nside - 1
    if args.degrees is None:
        args.degrees = default_degrees(args.nside)
    bad = [ell for ell in args.degrees if not 1 <= ell <= lmax]
    if bad:
        parser.error(f"--degrees must lie in [1, 3 nside - 1] = [1, {lmax}] at nside "
                     f"{args.nside}, got {bad}")
    args.degrees = sorted(set(args.degrees))
    for name in ("num_signals", "num_rotations", "equiangular_signals",
                 "equiangular_rotations", "scattering_fields", "scattering_rotations"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.num_signals * args.num_rotations < 2:
        parser.error("--num-signals x --num-rotations must be >= 2 (standard errors)")
    if any(k < 1 for k in args.scattering_k):
        parser.error(f"--scattering-k must be positive, got {args.scattering_k}")
    if args.nlat is not None and args.nlat < 4:
        parser.error(f"--nlat must be >= 4, got {args.nlat}")
    if not 0 <= args.scattering_J0 < math.ceil(math.log2(3 * args.nside)):
        parser.error(f"--scattering-J0 must lie in [0, ceil(log2(3 nside)) - 1] = "
                     f"[0, {math.ceil(math.log2(3 * args.nside)) - 1}], "
                     f"got {args.scattering_J0}")
    return args


# ------------------------------------------------------------------- measurements
@dataclass
class Curve:
    """Per-sample plain errors :math:`\\sqrt{E}` ``{ell: [S, R]}`` of one graph."""

    name: str
    plain: dict[int, np.ndarray]

    @property
    def degrees(self) -> list[int]:
        return sorted(self.plain)

    def root(self, ell: int) -> float:
        """Mean plain relative error :math:`\\overline{\\sqrt{E}}`."""
        return float(self.plain[ell].mean())

    def squared(self, ell: int) -> float:
        """Mean squared error :math:`\\overline{E}` (the paper's definition)."""
        return float((self.plain[ell] ** 2).mean())

    def root_sem(self, ell: int) -> float:
        values = self.plain[ell]
        return float(values.std(ddof=1) / math.sqrt(values.size))


def shared_probe_curves(graphs: dict[str, SphereGraph], degrees: Sequence[int],
                        draws: tuple[int, int], seed: int, method: str) -> dict[str, Curve]:
    r"""Plain errors of the Laplacians :math:`D - W` of ``graphs`` (same nodes) on one set
    of random fields and rotations.

    :func:`~deepsphere_pyg.graphs.equivariance.equivariance_samples` draws the fields,
    rotates them and (other samplings) factorises the harmonic fit for every call; the
    graphs of a panel share their nodes, so one probe of the library (its
    ``make_probe``, the one :func:`~deepsphere_pyg.graphs.equivariance.tune_kernel_width`
    reuses across widths) serves them all. With the same seed and degrees it draws what
    ``equivariance_samples`` draws, so the results are those of separate calls (checked
    in :func:`check_library_convention`); a Driscoll-Healy grid of 12433 nodes saves two
    QR factorisations of a 12433 x 3136 matrix (about 40 s each).
    """
    first = next(iter(graphs.values()))
    pos = first.pos.detach().cpu().numpy()
    for name, graph in graphs.items():
        if not np.array_equal(graph.pos.detach().cpu().numpy(), pos):
            raise ValueError(f"graphs: {name!r} does not have the nodes of the first graph; "
                             "a shared probe needs graphs on the same nodes")
    curves = {}
    with single_threaded_openmp():
        tic = time.perf_counter()
        probe = make_probe(first, degrees, *draws, seed, method, None)
        print(f"  probe ({method}, {int(first.num_nodes)} nodes): "
              f"{time.perf_counter() - tic:.1f} s", file=sys.stderr)
        for name, graph in graphs.items():
            tic = time.perf_counter()
            lap = laplacian_scipy(graph.edge_index, graph.edge_weight, int(graph.num_nodes))
            curves[name] = Curve(name, probe.samples(lambda x, lap=lap: lap @ x, False))
            print(f"  {name}: {time.perf_counter() - tic:.1f} s", file=sys.stderr)
    return curves


def check_library_convention(graph: SphereGraph, curve: Curve, degrees: Sequence[int],
                             args: argparse.Namespace, method: str) -> tuple[float, float]:
    r"""``(equivariance_error(graph, degrees[:1]) with its default squared=True, mean of the
    squared plain samples of curve at degrees[0])``: equal when the library's default is
    the paper's squared :math:`E` and the shared probe reproduces the library's draws."""
    ell = degrees[0]
    library = equivariance_error(graph, [ell], num_signals=args.num_signals,
                                 num_rotations=args.num_rotations, seed=args.seed,
                                 method=method)[ell]
    return float(library), curve.squared(ell)


def healpix_curves(args: argparse.Namespace) -> tuple[dict[str, Curve], dict[str, float],
                                                       tuple[float, float]]:
    """``(paper-protocol curves, kernel widths t, convention check)`` of the HEALPix
    graphs."""
    graphs = {"v1": healpix_graph(args.nside, edges="neighbours")}
    graphs |= {f"k={k}": healpix_graph(args.nside, k=k, kernel="v2") for k in NEIGHBOURS}
    curves = shared_probe_curves(graphs, args.degrees, (args.num_signals, args.num_rotations),
                                 args.seed, "paper")
    widths = {name: float(graph.kernel_width) for name, graph in graphs.items()}
    check = check_library_convention(graphs["k=20"], curves["k=20"], args.degrees, args,
                                     "paper")
    return curves, widths, check


def equiangular_curves(args: argparse.Namespace) -> tuple[dict[str, Curve], dict]:
    """Curves (least-squares protocol) of the Driscoll-Healy graphs, and grid facts."""
    nlat = args.nlat or comparable_nlat(hp.nside2npix(args.nside))
    grid = dict(nlat=nlat, grid="driscoll-healy")
    graphs = {"4-neighbour": equiangular_graph(**grid, edges="neighbours"),
              "k=8": equiangular_graph(**grid, k=8, kernel="auto"),
              "k=20": equiangular_graph(**grid, k=20, kernel="auto")}
    first = graphs["4-neighbour"]
    lmax = default_lmax(first)
    degrees = sorted({ell for ell in args.degrees if ell <= lmax} | {lmax})
    draws = (args.equiangular_signals, args.equiangular_rotations)
    curves = shared_probe_curves(graphs, degrees, draws, args.seed, "lsq")
    facts = dict(nlat=nlat, nlon=int(first.nlon), nodes=int(first.num_nodes), lmax=lmax,
                 widths={name: getattr(g, "kernel_width", None) for name, g in graphs.items()})
    return curves, facts


def band_limited_alm(band: int, rng: np.random.Generator) -> np.ndarray:
    r"""Coefficients (``lmax = band``) of a real Gaussian field with a flat spectrum on
    :math:`1 \le \ell \le B`: :math:`a_{\ell 0} \sim \mathcal N(0, 1)`,
    :math:`a_{\ell m} \sim \mathcal{CN}(0, 1)` (:math:`m > 0`), :math:`a_{00} = 0`."""
    alm = np.zeros(hp.Alm.getsize(band), dtype=np.complex128)
    for ell in range(1, band + 1):
        values = rng.standard_normal(ell + 1) + 1j * rng.standard_normal(ell + 1)
        values[0] = values[0].real * math.sqrt(2.0)
        alm[hp.Alm.getidx(band, ell, np.arange(ell + 1))] = values / math.sqrt(2.0)
    return alm


def _nest_synthesis(alm: np.ndarray, nside: int, lmax: int) -> np.ndarray:
    """NEST map ``[12 nside^2]`` of coefficients ``alm`` (band limit ``lmax``)."""
    return hp.reorder(hp.alm2map(alm, nside, lmax=lmax, mmax=lmax), r2n=True)


def _rotate_nest_map(values: np.ndarray, nside: int, matrix: np.ndarray) -> np.ndarray:
    r"""Rotation of a NEST map band-limited below :math:`3 n_\mathrm{side}`: least-squares
    analysis (:func:`healpy.map2alm_lsq`), Wigner rotation, synthesis."""
    lmax = 3 * nside - 1
    alm, _, _ = hp.map2alm_lsq(hp.reorder(values, n2r=True), lmax=lmax, mmax=lmax,
                               tol=LSQ_TOL, maxiter=LSQ_MAXITER)
    return _nest_synthesis(rotate_alm(alm, matrix, lmax), nside, lmax)


#: Orders whose share of the output, :math:`\lVert S_o(f) \rVert / \lVert S(f) \rVert`
#: (mean over the fields), is below this are not plotted (shown in parentheses in the
#: report): their relative error compares leakage with an output that (nearly) vanishes,
#: e.g. order 1 for :math:`B \le \lambda^{J_0 - 1}`, where every wavelet is zero.
MIN_ORDER_SHARE = 1e-2


@dataclass
class ScatteringCurve:
    """Per-order relative errors and output shares of one transform, per band limit."""

    errors: dict[int, np.ndarray]  # B -> [fields * rotations, orders]
    shares: dict[int, np.ndarray]  # B -> [fields, orders]

    @property
    def bands(self) -> list[int]:
        return sorted(self.errors)

    def error(self, band: int, order: int) -> float:
        return float(np.nanmean(self.errors[band][:, order]))

    def share(self, band: int, order: int) -> float:
        return float(self.shares[band][:, order].mean())

    def shown(self, band: int, order: int) -> bool:
        return self.share(band, order) >= MIN_ORDER_SHARE


def scattering_errors(transform: SphericalScattering, hierarchy: SphereHierarchy,
                      bands: Sequence[int], args: argparse.Namespace) -> ScatteringCurve:
    r"""Relative errors :math:`\lVert S(Rf) - R S(f) \rVert / \lVert R S(f) \rVert` per
    order (module docstring) and each order's share of :math:`\lVert S(f) \rVert`.

    The random fields and rotations depend only on ``args.seed`` and ``bands``, so every
    transform sees the same ones.
    """
    nside, nside_out = int(hierarchy[0].nside), int(hierarchy[transform.output_level].nside)
    orders = np.array([path.order for path in transform.paths])
    dtype = hierarchy[0].pos.dtype
    rng = np.random.default_rng(args.seed)
    errors: dict[int, np.ndarray] = {}
    shares: dict[int, np.ndarray] = {}
    for band in bands:
        rows, share_rows = [], []
        for _ in range(args.scattering_fields):
            alm = band_limited_alm(band, rng)
            matrices = random_rotations(args.scattering_rotations, rng)
            maps = [_nest_synthesis(alm, nside, band)]
            maps += [_nest_synthesis(rotate_alm(alm, m, band), nside, band) for m in matrices]
            with torch.no_grad():
                x = torch.from_numpy(np.stack(maps)[..., None]).to(dtype)
                coefficients = transform(x).double().numpy()  # [1 + R, N_out, P]
            total = np.linalg.norm(coefficients[0])
            share_rows.append([np.linalg.norm(coefficients[0][:, orders == order]) / total
                               for order in range(transform.depth + 1)])
            for r, matrix in enumerate(matrices):
                rotated = np.stack([_rotate_nest_map(coefficients[0, :, p], nside_out, matrix)
                                    for p in range(coefficients.shape[-1])], axis=-1)
                row = []
                for order in range(transform.depth + 1):
                    sel = orders == order
                    norm = np.linalg.norm(rotated[:, sel])
                    diff = np.linalg.norm(coefficients[r + 1][:, sel] - rotated[:, sel])
                    row.append(diff / norm if norm > 0 else float("nan"))
                rows.append(row)
        errors[band], shares[band] = np.asarray(rows), np.asarray(share_rows)
    return ScatteringCurve(errors, shares)


def scattering_curves(args: argparse.Namespace) -> tuple[dict[str, ScatteringCurve], dict]:
    """Per-order errors of the graph backend (one hierarchy per ``--scattering-k``) and of
    the harmonic backend, at band limits ``args.degrees``."""
    levels = max(1, int(math.log2(args.nside)))  # down to nside 2
    setups = [(f"graph, k={k}", SphereHierarchy.healpix(args.nside, levels, k=k), "graph")
              for k in args.scattering_k]
    setups.append(("harmonic (reference)", SphereHierarchy.healpix(args.nside, levels),
                   "harmonic"))
    results, facts = {}, {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small sparse products on a shared machine
    try:
        with single_threaded_openmp():
            for name, hierarchy, backend in setups:
                tic = time.perf_counter()
                transform = SphericalScattering(hierarchy, J0=args.scattering_J0,
                                                backend=backend)
                results[name] = scattering_errors(transform, hierarchy, args.degrees, args)
                facts.setdefault("repr", {})[name] = repr(transform)
                facts.update(nside_out=int(hierarchy[transform.output_level].nside),
                             levels=levels, paths=[sum(p.order == o for p in transform.paths)
                                                   for o in range(transform.depth + 1)])
                print(f"  scattering {name}: {time.perf_counter() - tic:.1f} s",
                      file=sys.stderr)
    finally:
        torch.set_num_threads(threads)
    return results, facts


# ------------------------------------------------------------------------- figure
CONVENTION_NOTE = (
    "E = (||R L f - L R f|| / ||L f||)^2 as the paper writes it and as the library's "
    "equivariance_error returns by default (squared=True); sqrt(E) = the plain relative "
    "error.\n(a, b): one set of samples, protocol of the published code (f and Lf rotated "
    "through map2alm); (c): least-squares analysis on the nodes. Published values (open "
    "markers, DeepSphere v2 figure data):\nwhether they are squared is not stated, so they "
    "are drawn on (a) and (b). Scattering (d): plain relative error, not squared; orders "
    f"with < {MIN_ORDER_SHARE:g} of the output norm are not drawn.")


def _published(nside: int, name: str) -> dict[int, float]:
    return PUBLISHED.get(nside, {}).get(name, {})


def draw(args: argparse.Namespace, paper: dict[str, Curve] | None,
         equiangular: dict[str, Curve] | None,
         eq_facts: dict, scattering: dict[str, ScatteringCurve] | None,
         sc_facts: dict) -> plt.Figure:
    figure, axes = plt.subplots(2, 2, figsize=(13, 10.5))
    (ax_a, ax_b), (ax_c, ax_d) = axes
    lmax = 3 * args.nside - 1
    label = {"v1": "v1 (8 HEALPix neighbours)", "k=8": "v2 k=8", "k=20": "v2 k=20",
             "k=40": "v2 k=40"}
    for axis, curves, title, squared in (
            (ax_a, paper, r"(a) HEALPix, plain $\sqrt{E}$", False),
            (ax_b, paper, r"(b) HEALPix, squared $E$ (the paper's formula)", True)):
        if curves is None:
            axis.set_visible(False)
            continue
        for name, curve in curves.items():
            values = [curve.squared(ell) if squared else curve.root(ell)
                      for ell in curve.degrees]
            axis.loglog(curve.degrees, values, ".-", color=COLOURS[name], label=label[name])
            published = _published(args.nside, name)
            if published:
                axis.loglog(list(published), list(published.values()), "o", mfc="none",
                            mew=1.8, ms=10, color=COLOURS[name])
        axis.plot([], [], "o", mfc="none", mew=1.8, ms=10, color="0.3",
                  label=f"published, nside {args.nside}")
        axis.set_title(f"{title}, nside {args.nside}", fontsize=10)
        axis.set_xlabel(r"degree $\ell$")
        axis.set_ylabel(r"mean $E$ (squared)" if squared else r"mean $\sqrt{E}$ (plain)")
        axis.set_xlim(1.8, lmax * 1.1)
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=8, loc="lower left")

    if equiangular is None:
        ax_c.set_visible(False)
    else:
        for name, curve in equiangular.items():
            tag = "4-neighbour, w = 1/d" if name == "4-neighbour" else f"{name}, kernel='auto'"
            ax_c.loglog(curve.degrees, [curve.root(ell) for ell in curve.degrees], ".-",
                        color=EQUIANGULAR_COLOURS[name], label=f"Driscoll-Healy {tag}")
        if paper is not None:
            for name in ("k=8", "k=20"):
                curve = paper[name]
                ax_c.loglog(curve.degrees, [curve.root(ell) for ell in curve.degrees], "--",
                            lw=1, color=COLOURS[name],
                            label=f"HEALPix nside {args.nside} v2 {name} (panel a)")
        ax_c.axvline(eq_facts["lmax"], color="0.5", lw=0.8, ls=":")
        ax_c.set_title(f"(c) Driscoll-Healy {eq_facts['nlat']}x{eq_facts['nlon']} "
                       f"({eq_facts['nodes']} nodes), plain $\\sqrt{{E}}$, least squares "
                       f"up to l={eq_facts['lmax']}", fontsize=10)
        ax_c.set_xlabel(r"degree $\ell$")
        ax_c.set_ylabel(r"mean $\sqrt{E}$ (plain)")
        ax_c.set_xlim(1.8, lmax * 1.1)
        ax_c.grid(True, which="both", alpha=0.3)
        ax_c.legend(fontsize=8, loc="lower left")

    if scattering is None:
        ax_d.set_visible(False)
    else:
        styles = dict(zip(scattering, SCATTERING_STYLES, strict=False))
        for name, curve in scattering.items():
            for order, colour in enumerate(ORDER_COLOURS):
                values = [curve.error(band, order) if curve.shown(band, order) else np.nan
                          for band in curve.bands]
                ax_d.loglog(curve.bands, values, styles[name], marker=".", color=colour)
        orders = ax_d.legend([Line2D([], [], color=c) for c in ORDER_COLOURS],
                             [f"order {o}" for o in range(len(ORDER_COLOURS))],
                             fontsize=8, loc="upper left")
        ax_d.add_artist(orders)
        ax_d.legend([Line2D([], [], color="0.3", ls=styles[name]) for name in scattering],
                    [f"{name} backend" if "harmonic" not in name else name
                     for name in scattering], fontsize=8, loc="upper right")
        ax_d.set_title(f"(d) SphericalScattering (J0={args.scattering_J0}, depth 2, output "
                       f"nside {sc_facts['nside_out']}), nside {args.nside}", fontsize=10)
        ax_d.set_xlabel(r"band limit $B$ of the input (flat spectrum on $1 \leq \ell \leq B$)")
        ax_d.set_ylabel(r"mean $\|S(Rf) - R\,S(f)\| / \|R\,S(f)\|$ (plain, not squared)")
        ax_d.set_xlim(1.8, lmax * 1.1)
        ax_d.grid(True, which="both", alpha=0.3)

    for axis in axes.flat:
        axis.xaxis.set_major_locator(FixedLocator(
            [t for t in (2, 5, 10, 20, 50, 100, 200, 500, 1000) if t <= lmax * 1.1]))
        axis.xaxis.set_major_formatter(ScalarFormatter())
        axis.xaxis.set_minor_formatter(NullFormatter())
    figure.text(0.01, 0.005, CONVENTION_NOTE, fontsize=8, va="bottom")
    figure.tight_layout(rect=(0, 0.06, 1, 1))
    return figure


# ------------------------------------------------------------------------- report
def comparison_table(args: argparse.Namespace, paper: dict[str, Curve]) -> list[str]:
    lines = ["| graph | l | published | √E ± s.e. (plain) | √E / published | E (squared) | "
             "E / published |",
             "|---|---|---|---|---|---|---|"]
    for name, curve in paper.items():
        for ell, published in _published(args.nside, name).items():
            if ell not in curve.plain:
                lines.append(f"| {name} | {ell} | {fmt(published)} | not measured "
                             "(add it to --degrees) | – | – | – |")
                continue
            lines.append(
                f"| {name} | {ell} | {fmt(published)} | {fmt(curve.root(ell))} ± "
                f"{fmt(curve.root_sem(ell), 2)} | {curve.root(ell) / published:.2f} | "
                f"{fmt(curve.squared(ell))} | {curve.squared(ell) / published:.3f} |")
    return lines


def curves_table(columns: dict[str, tuple[Curve, str]], degrees: Sequence[int]) -> list[str]:
    """Degrees as rows; one column per ``(curve, "root" | "squared")``."""
    lines = ["| l | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    for ell in degrees:
        cells = []
        for curve, kind in columns.values():
            if ell not in curve.plain:
                cells.append("–")
            else:
                cells.append(fmt(curve.root(ell) if kind == "root" else curve.squared(ell)))
        lines.append(f"| {ell} | " + " | ".join(cells) + " |")
    return lines


def scattering_table(results: dict[str, ScatteringCurve]) -> list[str]:
    """Band limits as rows; per transform the mean error of orders 0 / 1 / 2, in
    parentheses where the order's share of the output is below :data:`MIN_ORDER_SHARE`."""
    names = list(results)
    lines = ["| B | " + " | ".join(f"{name}: order 0 / 1 / 2" for name in names) + " |",
             "|---|" + "---|" * len(names)]
    for band in next(iter(results.values())).bands:
        cells = []
        for name in names:
            curve = results[name]
            orders = range(curve.errors[band].shape[1])
            cells.append(" / ".join(
                fmt(curve.error(band, o)) if curve.shown(band, o)
                else f"({fmt(curve.error(band, o))})" for o in orders))
        lines.append(f"| {band} | " + " | ".join(cells) + " |")
    return lines


def report(args: argparse.Namespace, elapsed: float, timings: dict[str, float],
           paper: dict[str, Curve] | None, widths: dict[str, float],
           check: tuple[float, float] | None, equiangular: dict[str, Curve] | None,
           eq_facts: dict, scattering: dict[str, ScatteringCurve] | None,
           sc_facts: dict) -> str:
    draws = f"{args.num_signals} signals x {args.num_rotations} rotations"
    lines = ["# Equivariance error vs degree: published DeepSphere v2 points beside ours", ""]
    lines += [f"- {line}" for line in provenance_lines(args.seed)]
    lines += [
        f"- wall time: {elapsed:.1f} s ("
        + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in timings.items()) + ")",
        f"- figure: `{args.figure}`",
        f"- nside {args.nside}, degrees {' '.join(map(str, args.degrees))}; {draws} per "
        "degree (the same random fields and rotations for every graph of a panel); "
        "combinatorial Laplacian L = D - W",
        "",
        "Conventions. `E` = (||R L f - L R f|| / ||L f||)² as the paper writes it; "
        "`√E` = the plain relative error, averaged as such (`squared=False`). HEALPix "
        "(panels a, b): the protocol of the published code (`method=\"paper\"`: f and Lf "
        "both rotated through healpy's map2alm / rotate_alm / alm2map); one set of samples "
        "gives both columns. Driscoll-Healy (panel c): least-squares analysis on the nodes "
        "(`method=\"lsq\"`). Whether the published values are squared is not stated with "
        "the figure data, so the figure draws them on both the plain and the squared "
        "panel. The scattering errors (panel d) are plain relative errors, not squared.",
    ]
    if check is not None:
        library, ours = check
        verdict = ("equal: the library's default is the paper's squared E"
                   if math.isclose(library, ours, rel_tol=1e-9) else
                   "DIFFERENT: the library's default is not the mean of the squared samples")
        lines += [
            "",
            f"Check of the library's convention: `equivariance_error(healpix_graph("
            f"{args.nside}, k=20), [{args.degrees[0]}], method=\"paper\")` with its default "
            f"`squared=True` returns {library:.6g}; the mean of the squared plain samples "
            f"here is {ours:.6g} ({verdict}).",
        ]
    if paper is not None:
        lines += [
            "",
            "## HEALPix graphs vs the published values",
            "",
            "Kernel widths t: " + ", ".join(f"{name} {fmt(t, 4)}" for name, t in
                                             widths.items()) + ".",
            "",
        ]
        if PUBLISHED.get(args.nside):
            lines += comparison_table(args, paper)
        else:
            lines.append(f"No published values at nside {args.nside} (published: nside "
                         f"{', '.join(map(str, PUBLISHED))}).")
        lines += ["", f"### Curves (panels a and b), nside {args.nside}", ""]
        columns = {f"√E {name}": (curve, "root") for name, curve in paper.items()}
        columns |= {f"E {name}": (curve, "squared") for name, curve in paper.items()}
        lines += curves_table(columns, args.degrees)
    if equiangular is not None:
        widths_text = ", ".join(f"{name} {fmt(t, 4)}" for name, t in
                                eq_facts["widths"].items() if t is not None)
        lines += [
            "",
            f"## Driscoll-Healy {eq_facts['nlat']} x {eq_facts['nlon']} "
            f"({eq_facts['nodes']} nodes) vs HEALPix nside {args.nside} (panel c)",
            "",
            f"Least-squares analysis on the nodes up to l = {eq_facts['lmax']} (the grid's "
            f"band limit); {args.equiangular_signals} signals x "
            f"{args.equiangular_rotations} rotations per degree. k-NN widths (`kernel=\"auto\"`): "
            f"{widths_text}; the 4-neighbour graph has w = 1/d (geodesic).",
            "",
        ]
        columns = {f"√E {name}": (curve, "root") for name, curve in equiangular.items()}
        columns |= {f"E {name}": (curve, "squared") for name, curve in equiangular.items()}
        if paper is not None:
            columns |= {f"√E HEALPix {name}": (paper[name], "root")
                        for name in ("k=8", "k=20")}
        degrees = sorted(set().union(*(c.plain for c in equiangular.values())))
        lines += curves_table(columns, degrees)
    if scattering is not None:
        lines += [
            "",
            "## SphericalScattering per order (panel d)",
            "",
            "; ".join(f"{name}: `{text}`" for name, text in sc_facts["repr"].items())
            + f"; HEALPix hierarchies of {sc_facts['levels']} levels "
            f"(nside {args.nside} -> {args.nside >> (sc_facts['levels'] - 1)}, v2 widths, "
            f"float32), output level nside {sc_facts['nside_out']}; paths per order "
            f"{' / '.join(map(str, sc_facts['paths']))}. Mean over "
            f"{args.scattering_fields} fields x {args.scattering_rotations} rotations per "
            "band limit B of ||S(Rf) - R S(f)|| / ||R S(f)|| over the paths of each order "
            "(plain relative error, not squared); f has a flat spectrum on 1 <= l <= B, "
            "R S(f) is a least-squares analysis, Wigner rotation and synthesis on the output "
            "level. In parentheses (and not plotted): orders whose share of the output, "
            f"||S_o(f)|| / ||S(f)||, is below {MIN_ORDER_SHARE:g}, where the ratio compares "
            "leakage with an output that (nearly) vanishes.",
            "",
        ]
        lines += scattering_table(scattering)
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    timings: dict[str, float] = {}
    paper = equiangular = scattering = check = None
    widths: dict[str, float] = {}
    eq_facts: dict = {}
    sc_facts: dict = {}
    if "healpix" in args.sections:
        tic = time.perf_counter()
        paper, widths, check = healpix_curves(args)
        timings["HEALPix"] = time.perf_counter() - tic
    if "equiangular" in args.sections:
        tic = time.perf_counter()
        equiangular, eq_facts = equiangular_curves(args)
        timings["equiangular"] = time.perf_counter() - tic
    if "scattering" in args.sections:
        tic = time.perf_counter()
        scattering, sc_facts = scattering_curves(args)
        timings["scattering"] = time.perf_counter() - tic
    figure = draw(args, paper, equiangular, eq_facts, scattering, sc_facts)
    save_figure(figure, args.figure, dpi=120)
    plt.close(figure)
    elapsed = time.perf_counter() - start
    publish_report(report(args, elapsed, timings, paper, widths, check, equiangular,
                          eq_facts, scattering, sc_facts), args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
