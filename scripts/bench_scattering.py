#!/usr/bin/env python
"""Benchmark: depth-2 spherical scattering of one HEALPix map, graph backend vs harmonic backend.

Both backends transform the same map with the same filter bank (band limit
``L = 3 nside``, ``J0 = log2(nside) - 4`` unless given, so the coefficients land on nside/16)
in the same run. Each backend runs in its own fresh interpreter, so that the peak memory
(``VmHWM``) of one does not include the other's:

* graph: builds the k-NN HEALPix hierarchy (``SphereHierarchy.healpix``), constructs
  ``GraphBackend`` (calibration, Chebyshev coefficients, Laplacians), runs the transform;
* harmonic: constructs ``HarmonicBackend`` (healpy ``map2alm``/``alm2map``, every analysis at
  most ``lmax = L - 1 = 3 nside - 1``) on a hierarchy that holds only the pixelisation (no
  edges: the harmonic backend reads nothing else), runs the transform.

Setup (graph build, precomputation) is reported apart from the transform: the front-end
runs once over a data set, so the transform time is what is paid per map. Wall and CPU
times are both given: on a shared machine the wall time also counts the waits for a
core. The table gives
the ratio graph / harmonic of both, and the relative difference of the coefficients per
order. The map is a Gaussian random field with ``C_ell = (ell + 1)^-2`` up to
``3 nside - 1`` (``--spectrum flat``: flat up to ``ell = nside``).

Usage::

    python scripts/bench_scattering.py                       # nside 256, k 8 (~1-2 min)
    python scripts/bench_scattering.py --nside 1024 --output results/bench_scattering_nside1024.md
    python scripts/bench_scattering.py --k 8,20     # 8 neighbours on level 0, 20 below
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

import healpy as hp
import numpy as np
import scipy
import torch

from deepsphere_pyg.io import publish_report

DEFAULT_OUTPUT = "results/bench_scattering.md"


# ---------------------------------------------------------------------- memory
def peak_rss_gb() -> float:
    """This process's peak resident memory since start or the last reset (VmHWM)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1e6
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux: write 5 to /proc/self/clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
            refs.write("5")
        return True
    except OSError:
        return False


# ------------------------------------------------------------------------ inputs
def make_map(nside: int, spectrum: str, seed: int) -> np.ndarray:
    """A Gaussian random field in NEST order (float32), see the module docstring."""
    rng = np.random.default_rng(seed)
    if spectrum == "red":
        lmax = 3 * nside - 1
        cl = (np.arange(lmax + 1) + 1.0) ** -2
    else:
        lmax = nside
        cl = np.ones(lmax + 1)
    cl[0] = 0.0
    ell, m = hp.Alm.getlm(lmax)
    # a_l0 ~ N(0, C_l), a_lm ~ CN(0, C_l) for m > 0 (real fields).
    alm = (rng.standard_normal(ell.size) + 1j * rng.standard_normal(ell.size)) / np.sqrt(2)
    alm[m == 0] = alm[m == 0].real * np.sqrt(2)
    alm *= np.sqrt(cl[ell])
    ring = hp.alm2map(alm, nside, lmax=lmax)
    return hp.reorder(ring, r2n=True).astype(np.float32)


def pixelisation_hierarchy(nside: int, levels: int):
    """A HEALPix hierarchy that holds the pixelisation only (no edges): what the harmonic
    backend reads (sampling, nside, node counts), without the cost of k-NN graphs."""
    from deepsphere_pyg.graphs import SphereGraph, SphereHierarchy

    graphs, pool_index = [], []
    for level in range(levels):
        level_nside = nside >> level
        npix = hp.nside2npix(level_nside)
        graphs.append(SphereGraph(edge_index=torch.zeros(2, 0, dtype=torch.long),
                                  edge_weight=torch.zeros(0), num_nodes=npix,
                                  sampling="healpix", nside=level_nside, nest=True))
        if level:
            pool_index.append(torch.arange(hp.nside2npix(2 * level_nside)) // 4)
    return SphereHierarchy(graphs, pool_index)


# ------------------------------------------------------------------------ child
def run_child(args: argparse.Namespace) -> dict[str, Any]:
    """Set up one backend, transform the map, return timings and memory; save the output."""
    from deepsphere_pyg.graphs import SphereHierarchy
    from deepsphere_pyg.scattering.filters import FilterBank
    from deepsphere_pyg.scattering.resolution import level_for_band_limit

    torch.set_num_threads(args.threads)
    bank = FilterBank(3 * args.nside, args.J0)
    levels = int(math.log2(args.nside)) - int(math.log2(args.nside_out)) + 1
    x = torch.from_numpy(make_map(args.nside, args.spectrum, args.seed))[None, :, None]
    result: dict[str, Any] = {"backend": args.child, "imports_gb": peak_rss_gb()}

    start = time.perf_counter()
    if args.child == "graph":
        from deepsphere_pyg.scattering.graph_backend import GraphBackend

        ks = [int(v) for v in str(args.k).split(",")]
        hierarchy = SphereHierarchy.healpix(args.nside, levels,
                                            k=ks[:1] + [ks[-1]] * (levels - 1))
    else:
        from deepsphere_pyg.scattering.harmonic import HarmonicBackend

        hierarchy = pixelisation_hierarchy(args.nside, levels)
    result["hierarchy_s"] = time.perf_counter() - start
    result["hierarchy_gb"] = peak_rss_gb()
    output_level = level_for_band_limit(hierarchy, bank.scaling_band_limit)
    assert int(hierarchy[output_level].nside) == args.nside_out

    start = time.perf_counter()
    if args.child == "graph":
        backend = GraphBackend(hierarchy, bank, args.depth, output_level, order=args.order)
        result["band_level"] = {str(j): b for j, b in backend.band_level.items()}
    else:
        backend = HarmonicBackend(hierarchy, bank, args.depth, output_level)
        backend.num_threads = args.threads
    result["setup_s"] = time.perf_counter() - start
    result["setup_gb"] = peak_rss_gb()
    result["reset_peak"] = reset_peak_rss()

    times, cpu_times = [], []
    with torch.no_grad():
        for _ in range(args.repeat):
            start, cpu_start = time.perf_counter(), time.process_time()
            out = backend(x)
            times.append(time.perf_counter() - start)
            cpu_times.append(time.process_time() - cpu_start)
    result["transform_s"] = times
    result["transform_cpu_s"] = cpu_times
    result["transform_gb"] = peak_rss_gb()
    result["paths"] = len(bank.paths(args.depth))
    result["out_shape"] = list(out.shape)
    np.save(args.save, out[0, :, 0, :].numpy())
    return result


def spawn(which: str, args: argparse.Namespace, save: str) -> dict[str, Any]:
    """Run :func:`run_child` for backend ``which`` in a fresh interpreter."""
    command = [sys.executable, os.path.abspath(__file__), "--child", which,
               "--nside", str(args.nside), "--k", str(args.k), "--J0", str(args.J0),
               "--depth", str(args.depth), "--order", str(args.order),
               "--seed", str(args.seed), "--spectrum", args.spectrum,
               "--threads", str(args.threads), "--repeat", str(args.repeat), "--save", save]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{which} run failed ({done.returncode}):\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------ report
def order_differences(graph: np.ndarray, harmonic: np.ndarray, depth: int, J0: int,
                      nside: int) -> dict[int, float]:
    """Relative difference ``||graph - harmonic|| / ||harmonic||`` over the paths of each
    order."""
    from deepsphere_pyg.scattering.filters import FilterBank

    paths = FilterBank(3 * nside, J0).paths(depth)
    out = {}
    for order in range(depth + 1):
        index = [i for i, p in enumerate(paths) if p.order == order]
        out[order] = float(np.linalg.norm(graph[:, index] - harmonic[:, index])
                           / np.linalg.norm(harmonic[:, index]))
    return out


def machine() -> str:
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    return (f"{platform.platform()}, {os.cpu_count()} CPUs (load average at start {load}); "
            f"Python {platform.python_version()}, numpy {np.__version__}, scipy "
            f"{scipy.__version__}, torch {torch.__version__}, healpy {hp.__version__}")


def markdown_report(args: argparse.Namespace, command: str, machine_line: str,
                    graph: dict[str, Any], harmonic: dict[str, Any],
                    differences: dict[int, float]) -> str:
    g_time = statistics.median(graph["transform_s"])
    h_time = statistics.median(harmonic["transform_s"])
    g_cpu = statistics.median(graph["transform_cpu_s"])
    h_cpu = statistics.median(harmonic["transform_cpu_s"])
    g_total = graph["hierarchy_s"] + graph["setup_s"]
    h_total = harmonic["hierarchy_s"] + harmonic["setup_s"]
    npix = hp.nside2npix(args.nside)
    lines = [
        f"### Depth-{args.depth} scattering of one nside-{args.nside} map ({npix:,} pixels): "
        "graph vs harmonic backend",
        "",
        f"Command: `{command}`  ",
        f"Machine: {machine_line}  ",
        f"Seed {args.seed}; map: Gaussian field, spectrum `{args.spectrum}` (see the "
        f"script); bank L = {3 * args.nside}, J0 = {args.J0}, lam = 2 "
        f"({graph['paths']} paths), output nside {args.nside_out}; graph backend: "
        f"k-NN HEALPix hierarchy (k = {args.k}), order {args.order}, combinatorial Laplacian, "
        f"wavelet levels {graph['band_level']}; {args.threads} thread(s) for torch and "
        f"healpy. Each backend in a fresh process; transform time = median of "
        f"{args.repeat} call(s); peak RSS = VmHWM (the transform's peak measured after "
        "resetting it once the setup is done).",
        "",
        "| | graph | harmonic | ratio graph / harmonic |",
        "|---|---:|---:|---:|",
        f"| transform, wall (s) | {g_time:.2f} | {h_time:.2f} | **{g_time / h_time:.2f}** |",
        f"| transform, CPU time of the process (s) | {g_cpu:.2f} | {h_cpu:.2f} | "
        f"{g_cpu / h_cpu:.2f} |",
        f"| setup: hierarchy (s) | {graph['hierarchy_s']:.2f} | "
        f"{harmonic['hierarchy_s']:.2f} | |",
        f"| setup: backend (s) | {graph['setup_s']:.2f} | {harmonic['setup_s']:.2f} | |",
        f"| setup total (s) | {g_total:.2f} | {h_total:.2f} | {g_total / h_total:.1f} |",
        f"| peak RSS, whole run (GB) | {max(graph['setup_gb'], graph['transform_gb']):.2f} | "
        f"{max(harmonic['setup_gb'], harmonic['transform_gb']):.2f} | "
        f"{max(graph['setup_gb'], graph['transform_gb']) / max(harmonic['setup_gb'], harmonic['transform_gb']):.2f} |",  # noqa: E501
        f"| peak RSS, transform (GB) | {graph['transform_gb']:.2f} | "
        f"{harmonic['transform_gb']:.2f} | "
        f"{graph['transform_gb'] / harmonic['transform_gb']:.2f} |",
        f"| peak RSS after imports (GB) | {graph['imports_gb']:.2f} | "
        f"{harmonic['imports_gb']:.2f} | |",
        "",
        "Relative difference of the coefficients, graph vs harmonic, per order: "
        + ", ".join(f"order {o}: {v:.3g}" for o, v in differences.items()) + ".",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nside", type=int, default=256)
    parser.add_argument("--k", default="8",
                        help="neighbours of the graphs; 'a,b': a on level 0, b on the others")
    parser.add_argument("--J0", type=int, default=None,
                        help="scale of Phi (default log2(nside) - 4)")
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--order", type=int, default=30, help="Chebyshev order")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--spectrum", choices=["red", "flat"], default="red")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads and healpy OpenMP threads")
    parser.add_argument("--repeat", type=int, default=1, help="transforms timed per backend")
    parser.add_argument("--output", default=DEFAULT_OUTPUT,
                        help=f"Markdown report (default {DEFAULT_OUTPUT}; '' for none)")
    parser.add_argument("--child", choices=["graph", "harmonic"], help=argparse.SUPPRESS)
    parser.add_argument("--save", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.J0 is None:
        args.J0 = int(math.log2(args.nside)) - 4
    if not 0 <= args.J0 < math.log2(args.nside):
        parser.error(f"--J0 must be in [0, log2(nside)) = [0, {int(math.log2(args.nside))})")
    args.nside_out = 1 << args.J0  # level_for_band_limit with the default margin 1

    if args.child:
        print(json.dumps(run_child(args)))
        return

    command = shlex.join(["python", "scripts/bench_scattering.py"] + sys.argv[1:])
    machine_line = machine()
    print("$", command, flush=True)
    with tempfile.TemporaryDirectory() as folder:
        results, outputs = {}, {}
        for which in ("harmonic", "graph"):
            save = os.path.join(folder, f"{which}.npy")
            results[which] = spawn(which, args, save)
            outputs[which] = np.load(save)
            r = results[which]
            print(f"{which}: transform {statistics.median(r['transform_s']):.2f} s, setup "
                  f"{r['hierarchy_s'] + r['setup_s']:.2f} s, peak RSS "
                  f"{max(r['setup_gb'], r['transform_gb']):.2f} GB", flush=True)
    differences = order_differences(outputs["graph"], outputs["harmonic"], args.depth,
                                    args.J0, args.nside)
    report = markdown_report(args, command, machine_line, results["graph"],
                             results["harmonic"], differences)
    print()
    publish_report(report, args.output)


if __name__ == "__main__":
    main()
