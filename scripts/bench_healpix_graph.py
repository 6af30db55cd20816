"""Benchmark: time and peak memory of ``healpix_graph`` against a plain scipy construction.

Two builds of the same k-NN HEALPix graph, each in its own subprocess so that each peak
resident memory (``ru_maxrss``) is its own:

* **ours**: :func:`deepsphere_pyg.graphs.healpix_graph` ``(nside, k=k)``;
* **baseline**: what a user would write with healpy + scipy: ``pix2vec``,
  ``cKDTree(pos)`` (default arguments), ``query(pos, k + 1, workers=-1)``, drop self, a
  scipy sparse adjacency of heat-kernel weights (same ``t``), symmetrised with
  ``A.maximum(A.T)``, converted to a PyG-style ``edge_index`` / ``edge_weight``.

A third subprocess times the **bare query**, ``cKDTree(pos).query(pos, k + 1,
workers=-1)`` alone (tree build and query, no ``pix2vec``, no graph): the k-NN search
that a tree-based construction cannot avoid. ``healpix_graph`` finds the neighbours from
the HEALPix structure instead (:mod:`deepsphere_pyg.graphs.healpix_knn`), so it can be
faster than that query.

Both builds produce the same graph up to ties: a check at ``--check-nside`` (with the
ring search of ``healpix_graph`` even where it would use a tree) asserts equal edge
sets, bitwise equal weights and positions, except for edges between pixels at exactly
the same distance as a k-th neighbour, which the two searches may choose differently
(the check lists them). The machines are shared and noisy, hence the ratios measured in
the same run. A last subprocess times the rescaled Laplacian (``estimate_lambda_max`` +
``rescaled_laplacian``) that the Chebyshev layers need, on our graph.

``--footprint-deg2 A`` times instead ``healpix_graph(nside, k=k, mask=disc)`` for a
disc of about ``A`` square degrees (NEST, centred at ``--footprint-center``, lon/lat in
degrees), in a fresh process: wall time and peak RSS.

Usage::

    python scripts/bench_healpix_graph.py --nside 1024 --k 8 --repeat 1 --output table.md
    python scripts/bench_healpix_graph.py --nside 4096 --k 8 --footprint-deg2 5000
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
import deepsphere_pyg.graphs.healpix_knn as ring_module
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
BARE_NAME = "bare query: cKDTree(pos).query(pos, k+1, workers=-1)"
#: Stages reported, in order. Baseline: "sparse matrix" is the COO -> CSR construction,
#: "symmetrisation" is ``A.maximum(A.T)``. Ours: "ring search" is :func:`healpix_knn`
#: (with the pixel positions it computes); where a tree is used instead, "query" includes
#: dropping self and the int32 copy; "symmetrisation" is :func:`missing_reverse_entries`
#: and "CSR assembly" is :func:`union_symmetric_weighted` writing the edges and weights.
STAGES = ("pix2vec", "tree build", "query", "ring search (+ pix2vec)", "weights",
          "sparse matrix", "symmetrisation", "CSR assembly", "to tensors / rest")


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
        (healpix_module, "healpix_knn", "ring search (+ pix2vec)"),
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
    if "query (+ tree build)" in stages:
        stages["query"] = stages.pop("query (+ tree build)") - stages.get("tree build", 0.0)
    stages["to tensors / rest"] = total - sum(stages.values())
    return {"pos": graph.pos, "edge_index": graph.edge_index, "edge_weight": graph.edge_weight}


# ---------------------------------------------------------------------- children
def footprint_pixels(nside: int, area_deg2: float, center: tuple[float, float]
                     ) -> np.ndarray:
    """NEST pixels of the disc of ``area_deg2`` square degrees centred at ``center``
    (lon, lat in degrees): radius ``arccos(1 - A / 2 pi)``, ``A`` in steradians."""
    radius = np.arccos(1.0 - np.radians(np.sqrt(area_deg2)) ** 2 / (2 * np.pi))
    vec = hp.ang2vec(center[0], center[1], lonlat=True)
    return hp.query_disc(nside, vec, radius, nest=True)


def run_child(which: str, nside: int, k: int, footprint: tuple[float, float, float] | None
              = None) -> dict[str, Any]:
    """Body of a subprocess: one build (or the Laplacian timing), results as a dict."""
    import_rss = peak_rss_gb()
    stages: dict[str, float] = {}
    result: dict[str, Any] = {"which": which, "import_rss_gb": import_rss}
    if which == "bare":
        pos = np.stack(hp.pix2vec(nside, np.arange(hp.nside2npix(nside)), nest=True), axis=1)
        result["setup_rss_gb"] = peak_rss_gb()
        start = time.perf_counter()
        cKDTree(pos).query(pos, k=k + 1, workers=-1)
        result["time_s"] = time.perf_counter() - start
        result["peak_rss_gb"] = peak_rss_gb()
        return result
    if which == "footprint":
        assert footprint is not None
        mask = footprint_pixels(nside, footprint[0], footprint[1:])
        result["setup_rss_gb"] = peak_rss_gb()
        start = time.perf_counter()
        graph = healpix_graph(nside, k=k, mask=mask)
        result["time_s"] = time.perf_counter() - start
        result["peak_rss_gb"] = peak_rss_gb()
        result["num_nodes"] = int(graph.num_nodes)
        result["num_edges"] = int(graph.edge_index.shape[1])
        result["area_deg2"] = float(mask.size * hp.nside2pixarea(nside, degrees=True))
        return result
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


def spawn(which: str, nside: int, k: int, footprint: tuple[float, float, float] | None
          = None) -> dict[str, Any]:
    """Run :func:`run_child` in a fresh interpreter and return its result."""
    command = [sys.executable, os.path.abspath(__file__), "--child", which,
               "--nside", str(nside), "--k", str(k)]
    if footprint is not None:
        command += ["--footprint-deg2", repr(footprint[0]), "--footprint-center",
                    repr(footprint[1]), repr(footprint[2])]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{which} run failed ({done.returncode}):\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# -------------------------------------------------------------------------- check
def tied_pairs(nside: int, k: int, extra: int = 24) -> set[tuple[int, int]]:
    """Pixel pairs ``(i, j)``, both ways, with ``j`` at exactly the k-th distance of ``i``
    while some pixel at that distance is not among the k nearest (a tie at the cut)."""
    pos = np.stack(hp.pix2vec(nside, np.arange(hp.nside2npix(nside)), nest=True), axis=1)
    _, index = cKDTree(pos).query(pos, k=k + 1 + extra, workers=-1)
    index = index[:, 1:]
    d = pos[:, None, :] - pos[index]
    s = d[..., 0] * d[..., 0] + d[..., 1] * d[..., 1] + d[..., 2] * d[..., 2]
    s.sort(axis=1)
    assert np.all(s[:, k - 1] < s[:, -1]), "extra too small to see every tie"
    pairs = set()
    for i in np.flatnonzero(s[:, k - 1] == s[:, k]):
        row = d[i]
        at = index[i][(row[:, 0] * row[:, 0] + row[:, 1] * row[:, 1] + row[:, 2] * row[:, 2])
                      == s[i, k - 1]]
        pairs |= {(int(i), int(j)) for j in at} | {(int(j), int(i)) for j in at}
    return pairs


def check_same_graph(nside: int, k: int) -> tuple[int, int]:
    """Assert that ours (with the ring search) and the baseline build the same graph at
    ``nside`` but for edges at tied cuts; return the edge count and the edges that differ.
    """
    saved = ring_module.RING_MIN_NSIDE
    ring_module.RING_MIN_NSIDE = 1  # the ring search even where graphs use a tree
    try:
        ours = build_ours(nside, k)
    finally:
        ring_module.RING_MIN_NSIDE = saved
    base = build_baseline(nside, k)
    row, col = ours["edge_index"].numpy()
    assert not np.any(row == col), "self loop"
    assert np.all(np.diff(row) >= 0), "edges not grouped by source node"
    np.testing.assert_array_equal(ours["pos"].numpy(), base["pos"].numpy())
    base_row, base_col = base["edge_index"].numpy()
    ours_edges = dict(zip(zip(row.tolist(), col.tolist(), strict=True),
                          ours["edge_weight"].numpy().tolist(), strict=True))
    base_edges = dict(zip(zip(base_row.tolist(), base_col.tolist(), strict=True),
                          base["edge_weight"].numpy().tolist(), strict=True))
    differ = set(ours_edges) ^ set(base_edges)
    assert differ <= tied_pairs(nside, k), "edges differ away from tied cuts"
    assert all(ours_edges[e] == base_edges[e] for e in set(ours_edges) & set(base_edges)), \
        "weights differ"
    return int(row.size), len(differ)


# ------------------------------------------------------------------------ report
def summary(values: list[float]) -> str:
    """Median, with the range when there are several values."""
    text = f"{statistics.median(values):.2f}"
    if len(values) > 1:
        text += f" ({min(values):.2f}-{max(values):.2f})"
    return text


def machine_line() -> str:
    """Platform, CPU count and library versions."""
    return (f"Machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
            f"{os.cpu_count()} CPUs; Python {platform.python_version()}, numpy "
            f"{np.__version__}, scipy {scipy.__version__}, torch {torch.__version__}, healpy "
            f"{hp.__version__}  ")


def markdown_report(args: argparse.Namespace, runs: dict[str, list[dict[str, Any]]],
                    lap: dict[str, Any] | None, check: tuple[int, int] | None) -> str:
    """The results as Markdown: machine, main table, stages, Laplacian."""
    base, ours, bare = runs["baseline"], runs["ours"], runs["bare"]
    base_time = [r["time_s"] for r in base]
    ours_time = [r["time_s"] for r in ours]
    bare_time = [r["time_s"] for r in bare]
    base_mem = [r["peak_rss_gb"] for r in base]
    ours_mem = [r["peak_rss_gb"] for r in ours]
    bare_mem = [r["peak_rss_gb"] for r in bare]
    ratio_time = [o / b for o, b in zip(ours_time, base_time, strict=True)]
    ratio_mem = [o / b for o, b in zip(ours_mem, base_mem, strict=True)]
    ratio_bare = [o / b for o, b in zip(ours_time, bare_time, strict=True)]
    ratio_bare_mem = [o / b for o, b in zip(ours_mem, bare_mem, strict=True)]
    lines = [
        f"### healpix_graph(nside={args.nside}, k={args.k}): "
        f"{hp.nside2npix(args.nside):,} nodes, {ours[0]['num_edges']:,} edges",
        "",
        f"Command: `{shlex.join([os.path.basename(sys.executable)] + sys.argv)}`  ",
        machine_line(),
        f"Repeats: {args.repeat} (median, range in brackets; each build in a fresh "
        f"process, peak RSS = ru_maxrss incl. ~{ours[0]['import_rss_gb']:.2f} GB of imports; "
        f"the bare query's RSS includes its input positions)",
        "",
        "| build | wall time (s) | peak RSS (GB) |",
        "|---|---:|---:|",
        f"| {BASELINE_NAME} | {summary(base_time)} | {summary(base_mem)} |",
        f"| {OURS_NAME} | {summary(ours_time)} | {summary(ours_mem)} |",
        f"| {BARE_NAME} | {summary(bare_time)} | {summary(bare_mem)} |",
        f"| ratio ours / baseline | {summary(ratio_time)} | {summary(ratio_mem)} |",
        f"| ratio ours / bare query | {summary(ratio_bare)} | {summary(ratio_bare_mem)} |",
        "",
    ]
    same_edges = all(r["num_edges"] == ours[0]["num_edges"] for r in ours)
    edge_gap = max(abs(r["num_edges"] - ours[0]["num_edges"]) for r in base)
    weight_gap = max(abs(r["weight_sum"] / ours[0]["weight_sum"] - 1) for r in base)
    lines.append(f"Same edge count in every run of ours: {same_edges}; the baseline's edge "
                 f"count differs by {edge_gap} (choices between neighbours tied at a k-th "
                 f"distance); weight sums agree to {weight_gap:.1e} (relative).")
    if check is not None:
        lines.append(f"Check at nside={args.check_nside}, k={args.k} (ring search): identical "
                     f"positions, edge sets and bitwise weights but for {check[1]} of "
                     f"{check[0]:,} edges, all between pixels tied at a k-th distance.")
    lines += ["", "Stages (s, median over repeats; baseline 'sparse matrix' = COO -> CSR, "
              "'symmetrisation' = A.maximum(A.T); ours 'ring search' is healpix_knn, "
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


def footprint_report(args: argparse.Namespace, runs: list[dict[str, Any]]) -> str:
    """The footprint builds as Markdown."""
    first = runs[0]
    times = [r["time_s"] for r in runs]
    mems = [r["peak_rss_gb"] for r in runs]
    lon, lat = args.footprint_center
    return "\n".join([
        f"### healpix_graph(nside={args.nside}, k={args.k}, mask=disc of "
        f"{first['area_deg2']:,.0f} deg^2 at lon={lon:g}, lat={lat:g}): "
        f"{first['num_nodes']:,} nodes, {first['num_edges']:,} edges",
        "",
        f"Command: `{shlex.join([os.path.basename(sys.executable)] + sys.argv)}`  ",
        machine_line(),
        f"Repeats: {args.repeat} (median, range in brackets; each build in a fresh process "
        f"after making the mask, peak RSS = ru_maxrss incl. ~{first['import_rss_gb']:.2f} GB "
        f"of imports and {first['setup_rss_gb']:.2f} GB with the mask)",
        "",
        "| build | wall time (s) | peak RSS (GB) |",
        "|---|---:|---:|",
        f"| {OURS_NAME} (footprint) | {summary(times)} | {summary(mems)} |",
    ]) + "\n"


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
    parser.add_argument("--footprint-deg2", type=float,
                        help="time healpix_graph on a disc footprint of this area instead")
    parser.add_argument("--footprint-center", type=float, nargs=2, default=(0.0, -30.0),
                        metavar=("LON", "LAT"), help="centre of the footprint (degrees)")
    parser.add_argument("--output", help="also write the Markdown report to this file")
    parser.add_argument("--child", choices=["ours", "baseline", "bare", "laplacian",
                                            "footprint"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    footprint = None if args.footprint_deg2 is None else (
        args.footprint_deg2, *args.footprint_center)

    if args.child:
        print(json.dumps(run_child(args.child, args.nside, args.k, footprint)))
        return

    if footprint is not None:
        print("$", shlex.join([sys.executable] + sys.argv), flush=True)
        runs_fp = []
        for _ in range(args.repeat):
            result = spawn("footprint", args.nside, args.k, footprint)
            runs_fp.append(result)
            print(f"footprint: {result['time_s']:.2f} s, peak RSS "
                  f"{result['peak_rss_gb']:.2f} GB", flush=True)
        print()
        publish_report(footprint_report(args, runs_fp), args.output)
        return

    print("$", shlex.join([sys.executable] + sys.argv), flush=True)
    check = None
    if args.check_nside:
        check = check_same_graph(args.check_nside, args.k)
        print(f"check nside={args.check_nside} k={args.k}: same graph but for {check[1]} "
              f"edges at tied cuts ({check[0]} edges)", flush=True)
    runs: dict[str, list[dict[str, Any]]] = {"baseline": [], "ours": [], "bare": []}
    for repeat in range(args.repeat):
        # Alternate the order so that no kind always runs first.
        kinds = ("baseline", "ours", "bare")
        for which in kinds if repeat % 2 == 0 else kinds[::-1]:
            result = spawn(which, args.nside, args.k)
            runs[which].append(result)
            print(f"{which}: {result['time_s']:.2f} s, peak RSS "
                  f"{result['peak_rss_gb']:.2f} GB", flush=True)
    lap = None if args.no_laplacian else spawn("laplacian", args.nside, args.k)
    report = markdown_report(args, runs, lap, check)
    print()
    publish_report(report, args.output)


if __name__ == "__main__":
    main()
