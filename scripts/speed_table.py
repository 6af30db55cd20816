#!/usr/bin/env python
r"""Speed table: graph filtering against harmonic smoothing, and layer / model throughput.

**Filtering of one map on one thread** (the DeepSphere v1 speed figure). For each nside,
one random map of :math:`n = 12\,n_\mathrm{side}^2` pixels is filtered

* on the HEALPix graph (``healpix_graph(nside, k=8, edges="neighbours")`` by default: the 8
  HEALPix neighbours of DeepSphere v1) by a Chebyshev polynomial of the rescaled
  Laplacian :math:`\tilde L = L - I` (symmetric normalised :math:`L`,
  :math:`\lambda_\max = 2`, as in v1 and in the models), with ``K`` = 5 and 15 terms
  (``K - 1`` sparse products), response :math:`g(\lambda) = e^{-2\lambda}`:
  :func:`deepsphere_pyg.graphs.chebyshev.chebyshev_filter` (the library: scipy's CSR
  kernel for one CPU column, torch's otherwise), and the bare recurrence with scipy's CSR
  product on the same matrix (the library's overhead is the difference);
* by :func:`healpy.smoothing` (Gaussian beam, ``fwhm`` = 4 pixel sizes,
  ``lmax`` = 2 and 3 nside, ``use_pixel_weights=False``) with ``iter=0`` (one analysis,
  one synthesis) and ``iter=3`` (healpy's default: three Jacobi refinements of the
  analysis, 8 transforms in all).

``torch.set_num_threads(1)`` and healpy's OpenMP limited to one thread
(:func:`deepsphere_pyg.openmp.single_threaded_openmp`); only the filtering is timed
(median of ``--repeat`` calls after a warm-up); building the graph and the operator is
reported separately. Times are printed next to the published ones (nside 64 and 2048)
with the ratio healpy / graph measured in the same run, the fitted slope of
:math:`\log t` against :math:`\log n` (graph :math:`O(n)`, harmonic
:math:`O(n^{3/2})`), and drawn in a log-log figure (ours solid, published dashed).

**Throughput** (all threads): maps per second of a training step (forward, backward,
Adam step) and of inference (forward under ``torch.no_grad``, ``eval`` mode) for a batch
of maps on one HEALPix graph:

* layer: :class:`~deepsphere_pyg.nn.SphericalChebConv` on ``[B, N, F]`` against
  :class:`torch_geometric.nn.ChebConv` on the equivalent disjoint batch (B copies of the
  graph), same K, channels, ``"sym"`` normalisation and :math:`\lambda_\max = 2`, same
  initial weights (outputs compared first);
* model: :class:`~deepsphere_pyg.models.DeepSphere` (default channels (16, 32, 64), K=5,
  statistic head, one block per level) on ``[B, N, 1]``; the same model fed the disjoint
  batch (:class:`~deepsphere_pyg.graphs.HierarchyData`); and the same architecture with
  every convolution replaced by PyG's ``ChebConv`` (same weights) on the disjoint batch.
  The disjoint batches are collated once, outside the timings.

Usage::

    python scripts/speed_table.py            # nside 64..512; throughput at nside 32, B=16
    python scripts/speed_table.py --sections filtering --nside 64 128 256 512 1024 2048
    python scripts/speed_table.py --sections throughput --layer-nside 64 --model-nside 64 \
        --threads 1 16
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence

import healpy as hp
import matplotlib
import numpy as np
import scipy.sparse
import torch
import torch_geometric
from torch_geometric.data import Batch
from torch_geometric.nn import ChebConv

from deepsphere_pyg.graphs import HierarchyData, SphereHierarchy, healpix_graph
from deepsphere_pyg.graphs.chebyshev import chebyshev_coefficients, chebyshev_filter
from deepsphere_pyg.graphs.laplacian import rescaled_laplacian
from deepsphere_pyg.io import provenance_lines, publish_report
from deepsphere_pyg.models import DeepSphere
from deepsphere_pyg.nn import SphericalChebConv
from deepsphere_pyg.openmp import single_threaded_openmp
from deepsphere_pyg.plots import save_figure

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - after choosing the backend

# Helpers of sibling scripts (run as ``python scripts/speed_table.py``, the script's
# folder is on sys.path).
from bench_conv import disjoint_batch, timed  # noqa: E402

#: DeepSphere v1, filtering speed of one map on one core (s): {method: {nside: time}}.
PUBLISHED: dict[str, dict[int, float]] = {
    "graph K=5": {64: 0.0074, 2048: 16.0},
    "graph K=15": {64: 0.014, 2048: 27.4},
    "healpy lmax=2nside": {64: 0.019, 2048: 205.0},
    "healpy lmax=3nside": {64: 0.031, 2048: 390.0},
}
#: Normalisation and spectral bound of the filtering operator (as DeepSphere v1 and the models).
NORMALIZATION, LAMBDA_MAX = "sym", 2.0
ORDERS = (5, 15)
LMAX_FACTORS = (2, 3)
COLOURS = {"graph K=5": "C0", "graph K=15": "C1", "healpy lmax=2nside": "C2",
           "healpy lmax=3nside": "C3"}


def response(eigenvalues: np.ndarray) -> np.ndarray:
    r"""Filter response :math:`g(\lambda) = e^{-2\lambda}` (a heat kernel; the timing does
    not depend on it)."""
    return np.exp(-2.0 * eigenvalues)


def median_time(step: Callable[[], object], repeat: int, budget_s: float) -> tuple[float, int]:
    """Median wall time (s) of ``step`` after one warm-up call, and the number of timed
    calls: ``repeat``, fewer (at least 1) when ``repeat`` calls would exceed ``budget_s``
    by the warm-up's estimate."""
    start = time.perf_counter()
    step()
    first = time.perf_counter() - start
    count = max(1, min(repeat, int(budget_s / max(first, 1e-9))))
    times = []
    for _ in range(count):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times), count


def scipy_chebyshev(matrix: scipy.sparse.csr_array, x: np.ndarray,
                    coefficients: np.ndarray) -> np.ndarray:
    r""":math:`\sum_k c_k T_k(\tilde L) x` by the three-term recurrence with scipy products.

    Args:
        matrix: :math:`\tilde L` as a scipy CSR array ``[N, N]``.
        x: the map ``[N]``.
        coefficients: ``[K]`` Chebyshev coefficients.
    """
    previous, current = x, matrix @ x
    out = coefficients[0] * previous + coefficients[1] * current
    for coefficient in coefficients[2:]:
        previous, current = current, 2.0 * (matrix @ current) - previous
        out += coefficient * current
    return out


def filtering_case(nside: int, kernel: str, iters: Sequence[int], repeat: int,
                   budget_s: float, rng: np.random.Generator) -> dict:
    """Times (s) of the graph filters and healpy smoothings of one map at ``nside``, on
    one thread; keys ``"graph K=5 (library)"``, ``"healpy lmax=2nside iter=0"``, ..."""
    start = time.perf_counter()
    graph = healpix_graph(nside, k=8, kernel=kernel)
    build_s = time.perf_counter() - start
    start = time.perf_counter()
    operator = rescaled_laplacian(graph, NORMALIZATION, LAMBDA_MAX)
    operator_s = time.perf_counter() - start
    matrix = scipy.sparse.csr_array(
        (operator.values().numpy(), operator.col_indices().numpy(),
         operator.crow_indices().numpy()), shape=tuple(operator.shape), copy=False)
    n = int(graph.num_nodes)
    sky = rng.standard_normal(n)
    x = torch.from_numpy(sky.astype(np.float32))
    x_np = x.numpy()
    result: dict = {"nside": nside, "npix": n, "edges": int(graph.edge_index.shape[1]),
                    "graph_build_s": build_s, "operator_build_s": operator_s, "repeats": {}}

    def record(name: str, step: Callable[[], object]) -> None:
        result[name], result["repeats"][name] = median_time(step, repeat, budget_s)

    for order in ORDERS:
        coefficients = chebyshev_coefficients(response, order, LAMBDA_MAX).astype(np.float32)
        ours = chebyshev_filter(graph, x, response, order, NORMALIZATION, LAMBDA_MAX)
        reference = scipy_chebyshev(matrix, x_np, coefficients)
        result[f"K={order} max_abs_difference"] = float(
            np.abs(ours.numpy() - reference).max())
        record(f"graph K={order} (library)", lambda o=order: chebyshev_filter(
            graph, x, response, o, NORMALIZATION, LAMBDA_MAX))
        record(f"graph K={order} (scipy)",
               lambda c=coefficients: scipy_chebyshev(matrix, x_np, c))
    fwhm = 4.0 * hp.nside2resol(nside)
    for factor in LMAX_FACTORS:
        for iteration in iters:
            record(f"healpy lmax={factor}nside iter={iteration}",
                   lambda f=factor, i=iteration: hp.smoothing(
                       sky, fwhm=fwhm, lmax=f * nside, iter=i, nest=False,
                       use_pixel_weights=False))
    return result


def fitted_slope(npix: Sequence[int], times: Sequence[float]) -> float:
    r"""Least-squares slope of :math:`\log t` against :math:`\log n`."""
    return float(np.polyfit(np.log(npix), np.log(times), 1)[0])


def _slope_text(slope: float) -> str:
    return f"{slope:.2f}" if math.isfinite(slope) else "-"


def published_slope(method: str) -> float:
    (n1, t1), (n2, t2) = sorted(PUBLISHED[method].items())
    return math.log(t2 / t1) / math.log(hp.nside2npix(n2) / hp.nside2npix(n1))


def family(series: str) -> str:
    """Published method of a measured series (``"graph K=5 (library)"`` -> ``"graph K=5"``)."""
    return series.split(" (")[0].split(" iter=")[0]


def series_names(iters: Sequence[int]) -> list[str]:
    names = [f"graph K={order} ({kernel})" for order in ORDERS for kernel in ("library", "scipy")]
    names += [f"healpy lmax={factor}nside iter={iteration}" for factor in LMAX_FACTORS
              for iteration in iters]
    return names


def filtering_section(args: argparse.Namespace, rng: np.random.Generator) -> list[str]:
    saved_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    cases = []
    try:
        with single_threaded_openmp():
            for nside in args.nside:
                case = filtering_case(nside, args.kernel, args.iter, args.repeat,
                                      args.budget, rng)
                print({key: value for key, value in case.items() if key != "repeats"},
                      flush=True)
                cases.append(case)
    finally:
        torch.set_num_threads(saved_threads)

    names = series_names(args.iter)
    npix = [case["npix"] for case in cases]
    slopes = {name: fitted_slope(npix, [case[name] for case in cases]) if len(cases) > 1
              else float("nan") for name in names}
    repeats = sorted({count for case in cases for count in case["repeats"].values()})
    lines = [
        "### Filtering one map on one thread: graph vs harmonic (DeepSphere v1 figure)",
        "",
        f"One thread (torch {torch.__version__} `set_num_threads(1)`, healpy "
        f"{hp.__version__} OpenMP on one thread). Graph: `healpix_graph(nside, k=8, "
        f"kernel={args.kernel!r})`, Chebyshev filter of `L - I` (`L` symmetric normalised, "
        "lambda_max = 2), K terms = K-1 sparse products on a float32 map; `library`: "
        "`deepsphere_pyg.graphs.chebyshev.chebyshev_filter` (scipy's kernel for one CPU "
        "column), `scipy`: the bare recurrence with scipy's CSR product on the same matrix. "
        "healpy: `hp.smoothing(map, "
        "fwhm=4 pixels, lmax=2 or 3 nside, iter=0 or 3, use_pixel_weights=False)` on a "
        "float64 map (iter=3 is healpy's default). Median of "
        f"{'/'.join(str(r) for r in repeats)} timed calls after a warm-up (fewer when the "
        f"calls would exceed {args.budget:g} s). Published: DeepSphere v1, one core, "
        "nside 64 and 2048; published slope = log-log slope between those two points.",
        "",
        "Time (s):",
        "",
        "| method | " + " | ".join(f"nside {c['nside']}" for c in cases)
        + " | fitted slope | published nside 64 | published nside 2048 | published slope |",
        "|---|" + "---:|" * (len(cases) + 4),
    ]
    for name in names:
        published = PUBLISHED[family(name)]
        lines.append(
            f"| {name} | " + " | ".join(f"{case[name]:.4g}" for case in cases)
            + f" | {_slope_text(slopes[name])} | {published[64]:g} | {published[2048]:g} | "
            f"{published_slope(family(name)):.2f} |")

    lines += ["", "Ratio healpy / graph (both measured in this run; published: "
              "DeepSphere v1):", "",
              "| ratio | " + " | ".join(f"nside {c['nside']}" for c in cases)
              + " | published nside 64 | published nside 2048 |",
              "|---|" + "---:|" * (len(cases) + 2)]
    for factor, order in zip(LMAX_FACTORS, ORDERS, strict=True):
        harmonic, graph_name = f"healpy lmax={factor}nside", f"graph K={order}"
        published = [PUBLISHED[harmonic][s] / PUBLISHED[graph_name][s] for s in (64, 2048)]
        for iteration in args.iter:
            for kernel in ("library", "scipy"):
                num, den = f"{harmonic} iter={iteration}", f"{graph_name} ({kernel})"
                lines.append(
                    f"| {num} / {den} | "
                    + " | ".join(f"{case[num] / case[den]:.1f}" for case in cases)
                    + f" | {published[0]:.1f} | {published[1]:.1f} |")

    lines += ["", "Graph and operator build (once per nside, not in the times above; "
              "torch on one thread):", "",
              "| nside | pixels | edges (directed) | graph build (s) | operator `L - I` (s) "
              "| max abs difference library vs scipy (K=5 / K=15) |",
              "|---:|---:|---:|---:|---:|---:|"]
    for case in cases:
        lines.append(
            f"| {case['nside']} | {case['npix']:,} | {case['edges']:,} | "
            f"{case['graph_build_s']:.3f} | {case['operator_build_s']:.3f} | "
            f"{case['K=5 max_abs_difference']:.1e} / {case['K=15 max_abs_difference']:.1e} |")
    if args.figure:
        plot_filtering(cases, names, slopes, args.figure)
        lines += ["", f"Figure: `{args.figure}` (time vs pixels, log-log; ours solid, "
                  "published dashed)."]
    return lines


def plot_filtering(cases: list[dict], names: Sequence[str], slopes: dict[str, float],
                   path: str) -> None:
    """Log-log time vs pixels: measured series solid (slope in the legend), published end
    points (nside 64 and 2048) dashed."""
    figure, axes = plt.subplots(figsize=(7.5, 5.5))
    npix = [case["npix"] for case in cases]
    for name in names:
        marker = "s" if ("scipy" in name or "iter=3" in name) else "o"
        axes.loglog(npix, [case[name] for case in cases], marker=marker, linestyle="-",
                    color=COLOURS[family(name)], alpha=1.0 if marker == "o" else 0.6,
                    label=f"{name}: slope {_slope_text(slopes[name])}")
    for method, points in PUBLISHED.items():
        sides = sorted(points)
        axes.loglog([hp.nside2npix(s) for s in sides], [points[s] for s in sides],
                    linestyle="--", marker="x", color=COLOURS[method],
                    label=f"published {method}: slope {published_slope(method):.2f}")
    axes.set_xlabel("pixels n = 12 nside^2")
    axes.set_ylabel("time of one filtering, one thread (s)")
    axes.set_title("Filtering one HEALPix map: graph (Chebyshev) vs healpy smoothing")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=7, loc="upper left")
    figure.tight_layout()
    save_figure(figure, path, dpi=120)


# ------------------------------------------------------------------------- throughput
def train_step(module: torch.nn.Module, optimizer: torch.optim.Optimizer,
               forward: Callable[[], torch.Tensor],
               loss: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[], None]:
    """One training step: zero gradients, forward, loss, backward, optimizer step."""

    def step() -> None:
        module.train()
        optimizer.zero_grad(set_to_none=True)
        loss(forward()).backward()
        optimizer.step()

    return step


def inference_step(module: torch.nn.Module,
                   forward: Callable[[], torch.Tensor]) -> Callable[[], None]:
    """Forward in ``eval`` mode under ``torch.no_grad``."""

    def step() -> None:
        module.eval()
        with torch.no_grad():
            forward()

    return step


def throughput(module: torch.nn.Module, forward: Callable[[], torch.Tensor],
               loss: Callable[[torch.Tensor], torch.Tensor], size: int,
               repeat: int) -> tuple[float, float]:
    """Maps per second of a training step (Adam, lr 1e-3) and of inference, from the
    median of ``repeat`` timed calls after a warm-up (bench_conv's ``timed``)."""
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-3)
    train = statistics.median(timed(train_step(module, optimizer, forward, loss), repeat))
    infer = statistics.median(timed(inference_step(module, forward), repeat))
    return size / train, size / infer


def layer_rows(nside: int, size: int, channels: int, order: int, repeat: int
               ) -> tuple[list[tuple[str, float, float]], float, int]:
    """Throughput of SphericalChebConv on ``[B, N, F]`` and of PyG's ChebConv on the
    disjoint batch; also the largest output difference and the node count."""
    graph = healpix_graph(nside, k=8)
    n = int(graph.num_nodes)
    reference = ChebConv(channels, channels, K=order, normalization=NORMALIZATION)
    ours = SphericalChebConv(channels, channels, K=order, normalization=NORMALIZATION)
    ours.load_state_dict(reference.state_dict())
    x_shared = torch.randn(size, n, channels)
    x_disjoint = x_shared.reshape(size * n, channels)
    batch_index = disjoint_batch(graph.edge_index, n, size)
    batch_weight = graph.edge_weight.repeat(size)
    with torch.no_grad():
        difference = (ours(x_shared, graph.edge_index, graph.edge_weight,
                           lambda_max=LAMBDA_MAX).reshape(size * n, -1)
                      - reference(x_disjoint, batch_index, batch_weight,
                                  lambda_max=LAMBDA_MAX)).abs().max().item()
    mean_square = lambda out: out.square().mean()  # noqa: E731
    rows = [
        ("PyG ChebConv, disjoint batch", *throughput(
            reference, lambda: reference(x_disjoint, batch_index, batch_weight,
                                         lambda_max=LAMBDA_MAX), mean_square, size, repeat)),
        ("SphericalChebConv, [B, N, F] shared graph", *throughput(
            ours, lambda: ours(x_shared, graph.edge_index, graph.edge_weight,
                               lambda_max=LAMBDA_MAX), mean_square, size, repeat)),
    ]
    return rows, difference, n


def pyg_twin(model: DeepSphere) -> DeepSphere:
    """A copy of ``model`` whose convolutions are PyG ``ChebConv`` layers holding the same
    weights (``"sym"`` normalisation, no bias: batch normalisation follows)."""
    twin = copy.deepcopy(model)
    for block in twin.blocks:
        conv = block.conv
        replacement = ChebConv(conv.in_channels, conv.out_channels, K=conv.K,
                               normalization=NORMALIZATION, bias=conv.bias is not None)
        replacement.load_state_dict(conv.state_dict())
        block.conv = replacement
    return twin


def model_rows(nside: int, levels: int, size: int, repeat: int
               ) -> tuple[list[tuple[str, float, float]], float, DeepSphere]:
    """Throughput of DeepSphere on ``[B, N, 1]``, of the same model on the disjoint batch
    and of its PyG-ChebConv twin on the disjoint batch; also the largest difference of
    their outputs (eval mode) and the model."""
    hierarchy = SphereHierarchy.healpix(nside, levels, k=8)
    model = DeepSphere(hierarchy, 1, 2)
    twin = pyg_twin(model)
    x = torch.randn(size, hierarchy.num_nodes[0], 1)
    labels = torch.randint(0, 2, (size,))
    disjoint = Batch.from_data_list(
        [HierarchyData.from_hierarchy(hierarchy, x=x[i]) for i in range(size)])
    model.eval()
    twin.eval()
    with torch.no_grad():
        reference = model(x)
        difference = max((model(disjoint) - reference).abs().max().item(),
                         (twin(disjoint) - reference).abs().max().item())
    cross_entropy = lambda out: torch.nn.functional.cross_entropy(out, labels)  # noqa: E731
    rows = [
        ("same architecture with PyG ChebConv, disjoint batch",
         *throughput(twin, lambda: twin(disjoint), cross_entropy, size, repeat)),
        ("DeepSphere, disjoint batch (HierarchyData)",
         *throughput(model, lambda: model(disjoint), cross_entropy, size, repeat)),
        ("DeepSphere, [B, N, 1] shared graph",
         *throughput(model, lambda: model(x), cross_entropy, size, repeat)),
    ]
    return rows, difference, model


def throughput_tables(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """Layer and model tables (one row block per thread count of ``--threads``) and the
    description of the model."""
    layer_lines = ["| threads | implementation | training (maps/s) | vs PyG | inference (maps/s) "
                   "| vs PyG |", "|---:|---|---:|---:|---:|---:|"]
    model_lines = list(layer_lines)
    saved_threads = torch.get_num_threads()
    details = []
    try:
        for threads in args.threads:
            torch.set_num_threads(threads)
            layer, layer_difference, n = layer_rows(args.layer_nside, args.batch,
                                                    args.channels, args.K, args.repeat)
            print(threads, layer, flush=True)
            model, model_difference, deepsphere = model_rows(args.model_nside, args.levels,
                                                             args.batch, args.repeat)
            print(threads, model, flush=True)
            layer_lines += _rows(threads, layer)
            model_lines += _rows(threads, model)
            details.append((layer_difference, model_difference))
    finally:
        torch.set_num_threads(saved_threads)
    layer_diff = max(d[0] for d in details)
    model_diff = max(d[1] for d in details)
    nodes = " -> ".join(f"{m:,}" for m in deepsphere.graph.num_nodes)
    layer_text = (
        f"Layer: nside {args.layer_nside} ({n:,} nodes, `healpix_graph(k=8)`), "
        f"{args.channels} -> {args.channels} channels, K = {args.K}, loss = mean square of "
        f"the output; max abs difference of the two layers' outputs before timing "
        f"{layer_diff:.1e}.")
    model_text = (
        f"Model: `DeepSphere(SphereHierarchy.healpix({args.model_nside}, {args.levels}, "
        f"k=8), 1, 2)` (channels {deepsphere.channels}, K = {deepsphere.K}, nodes {nodes}, "
        f"{deepsphere.num_parameters:,} parameters), cross-entropy on random labels; max abs "
        f"difference of the three variants' outputs (eval) {model_diff:.1e}.")
    return [layer_text, "", *layer_lines], [model_text, "", *model_lines]


def _rows(threads: int, rows: list[tuple[str, float, float]]) -> list[str]:
    """Table rows, speed-ups relative to the first (PyG) row."""
    base_train, base_infer = rows[0][1], rows[0][2]
    return [f"| {threads} | {name} | {train:.1f} | {train / base_train:.1f}x | {infer:.1f} | "
            f"{infer / base_infer:.1f}x |" for name, train, infer in rows]


def throughput_section(args: argparse.Namespace) -> list[str]:
    layer, model = throughput_tables(args)
    threads = ", ".join(str(t) for t in args.threads)
    return [
        "### Throughput: layer and model, batch of maps on one HEALPix graph",
        "",
        f"torch {torch.__version__} on {threads} thread(s) ({os.cpu_count()} CPUs), "
        f"torch_geometric {torch_geometric.__version__}. Batch B = {args.batch}. Training = "
        "forward + backward + Adam step; inference = forward in eval mode under "
        f"`torch.no_grad()`. Median of {args.repeat} timed calls after a warm-up; maps/s = "
        "B / time. PyG's `ChebConv` gets the disjoint batch (B copies of the graph, "
        "collated once outside the timings), with the same K, channels, `\"sym\"` "
        "normalisation, lambda_max = 2 and weights. On a machine shared with other jobs, "
        "threads that wait for busy cores slow the multi-threaded rows (PyG's many small "
        "kernels most): compare rows of the same thread count, and see the load average "
        "above.",
        "",
        *layer,
        "",
        *model,
    ]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sections", nargs="+", default=["filtering", "throughput"],
                        choices=["filtering", "throughput"])
    parser.add_argument("--nside", type=int, nargs="+", default=[64, 128, 256, 512],
                        help="filtering: nsides (add 1024 2048 on machines with the memory "
                             "and time; nside 2048 builds a 50M-node graph)")
    parser.add_argument("--kernel", default="v1", choices=["v1", "v2"],
                        help="filtering: edge recipe of healpix_graph(k=8) (default v1: the "
                             "8 HEALPix neighbours of DeepSphere v1)")
    parser.add_argument("--iter", type=int, nargs="+", default=[0, 3],
                        help="filtering: healpy.smoothing iter values (default 0 and 3)")
    parser.add_argument("--repeat", type=int, default=3, help="timed calls after a warm-up")
    parser.add_argument("--budget", type=float, default=60.0,
                        help="filtering: fewer timed calls (>= 1) when --repeat calls would "
                             "take longer than this many seconds")
    parser.add_argument("--batch", type=int, default=16, help="throughput: maps per batch")
    parser.add_argument("--layer-nside", type=int, default=32)
    parser.add_argument("--channels", type=int, default=16,
                        help="throughput: layer input and output channels")
    parser.add_argument("--K", type=int, default=5, help="throughput: layer Chebyshev terms")
    parser.add_argument("--model-nside", type=int, default=32)
    parser.add_argument("--levels", type=int, default=3,
                        help="throughput: hierarchy levels of the model (one block each)")
    parser.add_argument("--threads", type=int, nargs="+",
                        default=sorted({1, os.cpu_count() or 1}),
                        help="throughput: torch thread counts, one row block each (default: "
                             "1 and all CPUs; one thread is the control on a shared machine)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default="results/speed_table.md")
    parser.add_argument("--figure", default="results/speed_table.png",
                        help="filtering figure (empty string: none)")
    args = parser.parse_args(argv)
    for name in ("repeat", "batch", "layer_nside", "channels", "K", "model_nside", "levels"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if min(args.threads) < 1:
        parser.error(f"--threads values must be >= 1, got {args.threads}")
    if args.budget <= 0:
        parser.error(f"--budget must be positive, got {args.budget}")
    for nside in (*args.nside, args.layer_nside, args.model_nside):
        if nside < 1 or nside & (nside - 1):
            parser.error(f"nside values must be powers of two, got {nside}")
    if min(args.iter) < 0:
        parser.error(f"--iter values must be >= 0, got {args.iter}")
    if args.model_nside >> (args.levels - 1) < 1:
        parser.error(f"--levels {args.levels} halves --model-nside {args.model_nside} below 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    lines = ["## Speed: filtering and throughput", "",
             *(line + "  " for line in provenance_lines(args.seed)), ""]
    if "filtering" in args.sections:
        lines += [*filtering_section(args, rng), ""]
    if "throughput" in args.sections:
        lines += [*throughput_section(args), ""]
    publish_report("\n".join(lines).rstrip("\n") + "\n", args.output or None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
