"""Benchmark: time and peak memory of ``healpix_graph`` against a plain scipy construction.

Two builds of the same k-NN HEALPix graph, each in its own subprocess so that each peak
resident memory (``ru_maxrss``) is its own:

* **ours**: :func:`deepsphere_pyg.graphs.healpix_graph` ``(nside, k=k)``;
* **baseline**: what a user would write with healpy + scipy: ``pix2vec``,
  ``cKDTree(pos)`` (default arguments), ``query(pos, k + 1, workers=-1)``, drop self, a
  scipy sparse adjacency of heat-kernel weights (same ``t``), symmetrised with
  ``A.maximum(A.T)``, converted to a PyG-style ``edge_index`` / ``edge_weight``.

Both produce the same graph: a check at ``--check-nside`` asserts equal edge sets,
bitwise equal weights and positions, so the comparison is of equal work. The machines
are shared and noisy, hence the ratio ours/baseline measured in the same run. A third
subprocess times the rescaled Laplacian (``estimate_lambda_max`` + ``rescaled_laplacian``)
that the Chebyshev layers need, on our graph.

Usage::

    python scripts/bench_healpix_graph.py --nside 1024 --k 8 --repeat 1 --output table.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import healpy as hp
import numpy as np
import scipy
import scipy.sparse
import torch
from scipy.spatial import cKDTree

import deepsphere_pyg.graphs.healpix as healpix_module
import deepsphere_pyg.graphs.knn as knn_module
from deepsphere_pyg.graphs import (
    estimate_lambda_max,
    healpix_graph,
    healpix_kernel_width,
    heat_kernel,
    rescaled_laplacian,
)
from deepsphere_pyg.io import publish_report

BASELINE_NAME = "baseline: cKDTree + scipy.sparse A.maximum(A.T)"
OURS_NAME = "ours: healpix_graph"
#: Stages reported, in order. Baseline: "sparse matrix" is the COO -> CSR construction,
#: "symmetrisation" is ``A.maximum(A.T)``. Ours: "query" includes dropping self and the
#: int32 copy, "symmetrisation" is :func:`missing_reverse_entries` and "CSR assembly" is
#: :func:`union_symmetric_weighted` writing the edges and weights.
STAGES = ("pix2vec", "tree build", "query", "weights", "sparse matrix", "symmetrisation",
          "CSR assembly", "to tensors / rest")


def peak_rss_gb() -> float:
    """Peak resident memory of this process so far, in GB (``ru_maxrss`` is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9


# ------------------------------------------------------------------------- builds
def build_baseline(
    nside: int, k: int, stages: dict[str, float] | None = None
) -> dict[str, torch.Tensor]:
    """The straightforward construction: scipy k-NN, sparse symmetrisation, to tensors."""
    stages = {} if stages is None else stages
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        stages[name] = now - clock
        clock = now

    npix = hp.nside2npix(nside)
    t = healpix_kernel_width(nside, k)
    pos = np.stack(hp.pix2vec(nside, np.arange(npix), nest=True), axis=1)
    lap("pix2vec")
    tree = cKDTree(pos)
    lap("tree build")
    dist, index = tree.query(pos, k=k + 1, workers=-1)
    dist, index = dist[:, 1:], index[:, 1:]  # the nearest point is the point itself
    lap("query")
    weight = heat_kernel(dist**2, t)
    lap("weights")
    rows = np.repeat(np.arange(npix), k)
    adjacency = scipy.sparse.csr_array(
        (weight.ravel(), (rows, index.ravel())), shape=(npix, npix)
    )
    del dist, index, weight, rows
    lap("sparse matrix")
    adjacency = adjacency.maximum(adjacency.T)
    lap("symmetrisation")
    coo = adjacency.tocoo()
    del adjacency
    out = {
        "pos": torch.from_numpy(pos).float(),
        "edge_index": torch.from_numpy(np.stack([coo.row, coo.col])).long(),
        "edge_weight": torch.from_numpy(coo.data).float(),
    }
    lap("to tensors / rest")
    return out


def build_ours(nside: int, k: int, stages: dict[str, float] | None = None) -> dict[str, Any]:
    """:func:`healpix_graph`, with the time of its stages when ``stages`` is a dict.

    The stages are measured by wrapping the module-level helpers that ``healpix_graph``
    calls (no copy of its logic); what is left is reported as "rest".
    """
    if stages is None:
        graph = healpix_graph(nside, k=k)
        return {"pos": graph.pos, "edge_index": graph.edge_index,
                "edge_weight": graph.edge_weight}

    def timed(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                stages[name] = stages.get(name, 0.0) + time.perf_counter() - start
        return wrapper

    patches = [
        (healpix_module, "_pixel_positions", "pix2vec"),
        (knn_module, "cKDTree", "tree build"),
        (healpix_module, "knn_chord", "query (+ tree build)"),
        (healpix_module, "_heat_kernel_blocks", "weights"),
        (healpix_module, "missing_reverse_entries", "symmetrisation"),
        (healpix_module, "union_symmetric_weighted", "CSR assembly"),
    ]
    saved = [(module, attr, getattr(module, attr)) for module, attr, _ in patches]
    for module, attr, name in patches:
        setattr(module, attr, timed(name, getattr(module, attr)))
    try:
        start = time.perf_counter()
        graph = healpix_graph(nside, k=k)
        total = time.perf_counter() - start
    finally:
        for module, attr, original in saved:
            setattr(module, attr, original)
    stages["query"] = stages.pop("query (+ tree build)") - stages["tree build"]
    stages["to tensors / rest"] = total - sum(stages.values())
    return {"pos": graph.pos, "edge_index": graph.edge_index, "edge_weight": graph.edge_weight}


# ---------------------------------------------------------------------- children
def run_child(which: str, nside: int, k: int) -> dict[str, Any]:
    """Body of a subprocess: one build (or the Laplacian timing), results as a dict."""
    import_rss = peak_rss_gb()
    stages: dict[str, float] = {}
    result: dict[str, Any] = {"which": which, "import_rss_gb": import_rss}
    start = time.perf_counter()
    if which == "baseline":
        graph = build_baseline(nside, k, stages)
    elif which == "ours":
        graph = build_ours(nside, k, stages)
    elif which == "laplacian":
        sphere_graph = healpix_graph(nside, k=k)
        result["build_s"] = time.perf_counter() - start
        result["build_rss_gb"] = peak_rss_gb()
        clock = time.perf_counter()
        result["lambda_max"] = estimate_lambda_max(sphere_graph)
        result["lambda_max_s"] = time.perf_counter() - clock
        clock = time.perf_counter()
        operator = rescaled_laplacian(sphere_graph)
        result["rescaled_laplacian_s"] = time.perf_counter() - clock
        result["operator_nnz"] = int(operator.values().numel())
        result["peak_rss_gb"] = peak_rss_gb()
        return result
    else:
        raise ValueError(f"unknown child {which!r}")
    result["time_s"] = time.perf_counter() - start
    result["peak_rss_gb"] = peak_rss_gb()
    result["stages"] = stages
    result["num_edges"] = int(graph["edge_index"].shape[1])
    result["weight_sum"] = float(graph["edge_weight"].double().sum())
    return result


def spawn(which: str, nside: int, k: int) -> dict[str, Any]:
    """Run :func:`run_child` in a fresh interpreter and return its result."""
    command = [sys.executable, os.path.abspath(__file__), "--child", which,
               "--nside", str(nside), "--k", str(k)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{which} run failed ({done.returncode}):\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# -------------------------------------------------------------------------- check
def check_same_graph(nside: int, k: int) -> int:
    """Assert that ours and the baseline build the same graph at ``nside``; edge count."""
    ours = build_ours(nside, k)
    base = build_baseline(nside, k)
    row, col = ours["edge_index"].numpy()
    assert not np.any(row == col), "self loop"
    assert np.all(np.diff(row) >= 0), "edges not grouped by source node"
    order = np.lexsort((col, row))
    base_row, base_col = base["edge_index"].numpy()
    base_order = np.lexsort((base_col, base_row))
    np.testing.assert_array_equal(row[order], base_row[base_order])
    np.testing.assert_array_equal(col[order], base_col[base_order])
    np.testing.assert_array_equal(ours["edge_weight"].numpy()[order],
                                  base["edge_weight"].numpy()[base_order])
    np.testing.assert_array_equal(ours["pos"].numpy(), base["pos"].numpy())
    return int(row.size)


# ------------------------------------------------------------------------ report
def summary(values: list[float]) -> str:
    """Median, with the range when there are several values."""
    text = f"{statistics.median(values):.2f}"
    if len(values) > 1:
        text += f" ({min(values):.2f}-{max(values):.2f})"
    return text


def markdown_report(args: argparse.Namespace, runs: dict[str, list[dict[str, Any]]],
                    lap: dict[str, Any] | None, checked_edges: int | None) -> str:
    """The results as Markdown: machine, main table, stages, Laplacian."""
    base, ours = runs["baseline"], runs["ours"]
    base_time = [r["time_s"] for r in base]
    ours_time = [r["time_s"] for r in ours]
    base_mem = [r["peak_rss_gb"] for r in base]
    ours_mem = [r["peak_rss_gb"] for r in ours]
    ratio_time = [o / b for o, b in zip(ours_time, base_time, strict=True)]
    ratio_mem = [o / b for o, b in zip(ours_mem, base_mem, strict=True)]
    lines = [
        f"### healpix_graph(nside={args.nside}, k={args.k}): "
        f"{hp.nside2npix(args.nside):,} nodes, {ours[0]['num_edges']:,} edges",
        "",
        f"Command: `{shlex.join([os.path.basename(sys.executable)] + sys.argv)}`  ",
        f"Machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs; Python {platform.python_version()}, numpy {np.__version__}, "
        f"scipy {scipy.__version__}, torch {torch.__version__}, healpy {hp.__version__}  ",
        f"Repeats: {args.repeat} (median, range in brackets; each build in a fresh "
        f"process, peak RSS = ru_maxrss incl. ~{ours[0]['import_rss_gb']:.2f} GB of imports)",
        "",
        "| build | wall time (s) | peak RSS (GB) |",
        "|---|---:|---:|",
        f"| {BASELINE_NAME} | {summary(base_time)} | {summary(base_mem)} |",
        f"| {OURS_NAME} | {summary(ours_time)} | {summary(ours_mem)} |",
        f"| ratio ours / baseline | {summary(ratio_time)} | {summary(ratio_mem)} |",
        "",
    ]
    same_edges = all(r["num_edges"] == ours[0]["num_edges"] for r in base + ours)
    weight_gap = max(abs(r["weight_sum"] / ours[0]["weight_sum"] - 1) for r in base)
    lines.append(f"Same edge count in every run: {same_edges}; weight sums agree to "
                 f"{weight_gap:.1e} (relative).")
    if checked_edges is not None:
        lines.append(f"Exact check at nside={args.check_nside}, k={args.k}: identical edge "
                     f"sets, weights and positions ({checked_edges:,} edges).")
    lines += ["", "Stages (s, median over repeats; baseline 'sparse matrix' = COO -> CSR, "
              "'symmetrisation' = A.maximum(A.T); ours 'query' includes dropping self, "
              "'symmetrisation' finds the missing reverse edges):", "",
              "| stage | baseline | ours |", "|---|---:|---:|"]
    names = [name for name in STAGES if name in base[0]["stages"] or name in ours[0]["stages"]]
    for name in names:
        cells = []
        for group in (base, ours):
            values = [r["stages"][name] for r in group if name in r["stages"]]
            cells.append(f"{statistics.median(values):.2f}" if values else "")
        lines.append(f"| {name} | {cells[0]} | {cells[1]} |")
    if lap is not None:
        lines += [
            "",
            f"Rescaled Laplacian of our graph (sym, nside={args.nside}, k={args.k}), in one "
            "process after the build:",
            "",
            "| step | time (s) |",
            "|---|---:|",
            f"| healpix_graph build | {lap['build_s']:.2f} |",
            f"| estimate_lambda_max (Lanczos, eigsh, default tol) -> {lap['lambda_max']:.6f} "
            f"| {lap['lambda_max_s']:.2f} |",
            f"| rescaled_laplacian (with that lambda_max; {lap['operator_nnz']:,} nnz) "
            f"| {lap['rescaled_laplacian_s']:.2f} |",
            "",
            f"Peak RSS of that process: {lap['peak_rss_gb']:.2f} GB "
            f"(after the build: {lap['build_rss_gb']:.2f} GB).",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    """Parse the options, run the check, the builds and the Laplacian, print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nside", type=int, default=1024)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=1, help="builds of each kind")
    parser.add_argument("--check-nside", type=int, default=64,
                        help="nside of the exact ours == baseline check (0: skip)")
    parser.add_argument("--no-laplacian", action="store_true",
                        help="skip timing the rescaled Laplacian")
    parser.add_argument("--output", help="also write the Markdown report to this file")
    parser.add_argument("--child", choices=["ours", "baseline", "laplacian"],
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        print(json.dumps(run_child(args.child, args.nside, args.k)))
        return

    print("$", shlex.join([sys.executable] + sys.argv), flush=True)
    checked_edges = None
    if args.check_nside:
        checked_edges = check_same_graph(args.check_nside, args.k)
        print(f"check nside={args.check_nside} k={args.k}: same graph "
              f"({checked_edges} edges)", flush=True)
    runs: dict[str, list[dict[str, Any]]] = {"baseline": [], "ours": []}
    for repeat in range(args.repeat):
        # Alternate the order so that neither kind always runs first.
        for which in ("baseline", "ours") if repeat % 2 == 0 else ("ours", "baseline"):
            result = spawn(which, args.nside, args.k)
            runs[which].append(result)
            print(f"{which}: {result['time_s']:.2f} s, peak RSS "
                  f"{result['peak_rss_gb']:.2f} GB", flush=True)
    lap = None if args.no_laplacian else spawn("laplacian", args.nside, args.k)
    report = markdown_report(args, runs, lap, checked_edges)
    print()
    publish_report(report, args.output)


if __name__ == "__main__":
    main()
