#!/usr/bin/env python
r"""Side by side: one torch-harmonics DISCO convolution against one SphericalChebConv.

On the same Gauss-Legendre grids (default 64 x 128 and 128 x 256; torch-harmonics
``grid="legendre-gauss"``, ours ``equiangular_graph(..., grid="gauss-legendre")``, whose
node order is the row-major ``[nlat, nlon]`` image of torch-harmonics: rows north to south,
longitudes from 0; the script asserts that the positions agree), for each layer:

* forward + backward time (mean-square loss, gradients for the input and the weights),
  ``B x C -> C`` channels, float32, one thread (``torch.set_num_threads(1)``), median of
  ``--repeat`` after one warm-up, every layer timed interleaved in the same loop so that
  the ratios are measured under the same load;
* peak memory: in a fresh process per layer (cold caches; glibc serving blocks >= 64 KiB by
  mmap, so that the resident set follows the live allocations), the rise of the resident set
  (``VmHWM`` after resetting it through ``/proc/self/clear_refs``, minus ``VmRSS`` before)
  during one forward + backward after one warm-up pass;
* the build time, cold, in the same fresh process: DISCO's precomputed ``psi`` (the layer's
  constructor); ours the k-NN graph, its node masses and the cached Chebyshev operator
  (the heat-kernel width search, when it runs, is reported apart);
* the parameter count (sum of ``numel`` of the parameters, bias included);
* the equivariance error under exact rotations with random weights, the project's protocol
  (:mod:`deepsphere_pyg.graphs.equivariance`): each layer as a 1 -> 1 channel operator
  with fixed random weights (seeded; no bias), float64, on fields of one degree ``l``
  rotated exactly in harmonic space, its output analysed by least squares up to
  ``--lmax``; ``E = (||R(g) F f - F R(g) f|| / ||F f||)^2`` averaged over signals and
  rotations. One probe (fields, rotations, QR) per grid is shared by every layer, which
  is what :func:`~deepsphere_pyg.graphs.equivariance.equivariance_error` does per call.

Layers (``--K`` Chebyshev terms, default 3, so ``K - 1`` hops):

* DISCO, isotropic: ``DiscreteContinuousConvS2``, piecewise-linear basis
  ``kernel_shape=(2K - 1,)`` (``K`` radial hat functions: the same number of weights as
  ``K`` Chebyshev terms), ``theta_cutoff`` matched to our support (below);
* DISCO, anisotropic: ``kernel_shape=(3, 3)`` (4 basis functions), the same cutoff, for
  reference (its filters are oriented to the north, so not ``SO(3)``-equivariant);
* ours, mass: ``SphericalChebConv(normalization="mass")`` with the grid's node masses on a
  ``k = 40`` k-NN graph whose heat-kernel width is tuned for the mass Laplacian by
  :func:`~deepsphere_pyg.graphs.equivariance.tune_kernel_width` (degrees ``--ells``,
  2 x 2 draws, seed + 1, ``--lmax``), as in BENCHMARKS.md "Equivariance of the mass
  Laplacian";
* ours, plain: the same k-NN edges with the library's default width (``kernel="auto"``)
  and the combinatorial Laplacian (``normalization=None``) and the layer's default
  ``"sym"``.

**Receptive field.** One hop of the k-NN graph reaches the node's farthest neighbour;
``r_hop`` is the median over nodes of that angle, the support of a ``K``-term filter is
``(K - 1) r_hop``, and DISCO's ``theta_cutoff`` is set to it (``--cutoff-scale`` scales it).

**Environment.** torch-harmonics 0.9.3 pins torch 2.14.1 while this project pins torch
2.13.0 (CPU), so this script runs in a separate virtual environment with the project on
``PYTHONPATH`` (never install torch-harmonics into the project's environment). The 0.9.3
wheel (``+torch2.14.1.cpu``) imports, loads its optimized CPU kernels and runs forward and
backward with the pinned torch 2.13.0 CPU, so the environment is::

    python3.11 -m venv ../venv-th
    . ../venv-th/bin/activate
    pip install torch==2.13.0
    pip install --no-deps torch-harmonics==0.9.3
    pip install torch-geometric healpy astropy numpy scipy zarr scikit-learn lightning \
        torchmetrics pyyaml matplotlib
    PYTHONPATH=. python scripts/bench_torch_harmonics.py \
        --output results/bench_torch_harmonics.md

Usage::

    python scripts/bench_torch_harmonics.py                 # 64x128 and 128x256, ~10 min on 2 cores
    python scripts/bench_torch_harmonics.py --grids 64x128 --repeat 5
    python scripts/bench_torch_harmonics.py --width 64x128=2.5e-4   # skip the width search
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
warnings.filterwarnings("ignore", category=DeprecationWarning)
warnings.filterwarnings("ignore", message=".*spacing.*")

#: Default neighbours of the k-NN graphs (``--k``).
NEIGHBOURS = 40
GRID_TH = "legendre-gauss"
GRID_OURS = "gauss-legendre"


def import_torch_harmonics():
    """The ``torch_harmonics`` module, or exit with how to make the environment."""
    try:
        import torch_harmonics
    except ImportError as error:
        sys.exit(
            f"error: torch_harmonics is not importable ({error}).\n"
            "This benchmark needs a separate environment: torch-harmonics 0.9.3 pins torch "
            "2.14.1, the project torch 2.13.0. Create it with\n"
            "  python3.11 -m venv ../venv-th && . ../venv-th/bin/activate\n"
            "  pip install torch==2.13.0 && pip install --no-deps torch-harmonics==0.9.3\n"
            "  pip install torch-geometric healpy astropy numpy scipy zarr scikit-learn "
            "lightning torchmetrics pyyaml matplotlib\n"
            "and run from the repository root with PYTHONPATH=. (see the module docstring).")
    return torch_harmonics


# ------------------------------------------------------------------------- specs
@dataclass
class Grid:
    """A Gauss-Legendre grid and what the layers on it share."""

    nlat: int
    nlon: int
    k: int = NEIGHBOURS  # neighbours of our k-NN graphs
    width_mass: float = float("nan")  # tuned heat-kernel width t of the mass graph
    tune_seconds: float = float("nan")
    r_hop: float = float("nan")  # radians
    cutoff: float = float("nan")  # DISCO theta_cutoff, radians
    default_cutoff: float = float("nan")  # torch-harmonics' default theta_cutoff
    position_error: float = float("nan")
    probe_seconds: float = float("nan")
    hop_mass: float = float("nan")  # effective hop (weighted RMS), mass-tuned width
    hop_auto: float = float("nan")  # effective hop, auto width

    @property
    def name(self) -> str:
        return f"{self.nlat}x{self.nlon}"


@dataclass
class Layer:
    """One layer configuration (``kind``: ``"disco"`` or ``"cheb"``)."""

    name: str
    kind: str
    kernel_shape: tuple[int, ...] = ()
    normalization: str | None = None
    width: str | float = "auto"
    results: dict = field(default_factory=dict)


def parse_grid(text: str) -> tuple[int, int]:
    """``"64x128"`` -> ``(64, 128)``."""
    try:
        nlat, nlon = (int(part) for part in text.lower().split("x"))
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected NLATxNLON such as 64x128, got {text!r}"
                                         ) from error
    return nlat, nlon


def parse_width(text: str) -> tuple[str, float]:
    """``"64x128=2.5e-4"`` -> ``("64x128", 2.5e-4)``."""
    try:
        grid, value = text.split("=")
        return grid, float(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected NLATxNLON=T, got {text!r}") from error


def layers(K: int, k: int) -> list[Layer]:
    """The compared layers, DISCO isotropic first (the reference of the ratios)."""
    return [
        Layer(f"DISCO isotropic, piecewise linear ({2 * K - 1},)", "disco", (2 * K - 1,)),
        Layer("DISCO anisotropic, piecewise linear (3, 3)", "disco", (3, 3)),
        Layer(f"SphericalChebConv K={K}, k={k} mass-tuned t, mass", "cheb",
              normalization="mass", width="mass"),
        Layer(f"SphericalChebConv K={K}, k={k} auto t, combinatorial", "cheb",
              normalization=None, width="auto"),
        Layer(f"SphericalChebConv K={K}, k={k} auto t, sym (default)", "cheb",
              normalization="sym", width="auto"),
    ]


# ------------------------------------------------------------------------ builders
def build_graph(grid: Grid, width: str | float, dtype: torch.dtype):
    """The k-NN graph of the grid (``width``: ``"auto"``, ``"mass"`` or a float ``t``)."""
    from deepsphere_pyg.graphs import equiangular_graph

    kernel = grid.width_mass if width == "mass" else width
    return equiangular_graph(grid.nlat, grid.nlon, grid=GRID_OURS, k=grid.k,
                             kernel=kernel, dtype=dtype)


def build_disco(grid: Grid, layer: Layer, channels: int, bias: bool = True) -> torch.nn.Module:
    """torch-harmonics' ``DiscreteContinuousConvS2`` on the grid (same grid in and out)."""
    from torch_harmonics import DiscreteContinuousConvS2

    shape = (grid.nlat, grid.nlon)
    return DiscreteContinuousConvS2(channels, channels, shape, shape,
                                    kernel_shape=layer.kernel_shape,
                                    basis_type="piecewise linear", grid_in=GRID_TH,
                                    grid_out=GRID_TH, bias=bias, theta_cutoff=grid.cutoff)


class ChebOnGraph(torch.nn.Module):
    """A :class:`~deepsphere_pyg.nn.SphericalChebConv` bound to one graph: ``[B, N, C]``."""

    def __init__(self, graph, channels: int, K: int, normalization: str | None,
                 bias: bool = True) -> None:
        from deepsphere_pyg.nn import SphericalChebConv

        super().__init__()
        self.conv = SphericalChebConv(channels, channels, K, normalization=normalization,
                                      bias=bias)
        self.edge_index = graph.edge_index
        self.edge_weight = graph.edge_weight
        self.node_weight = graph.node_weight if normalization == "mass" else None
        self.num_nodes = int(graph.num_nodes)

    def build_operator(self, dtype: torch.dtype) -> None:
        """Build (and cache) the Chebyshev operator exactly as ``forward`` will ask for it."""
        from deepsphere_pyg.nn import chebyshev_operator

        chebyshev_operator(self.edge_index, self.edge_weight, self.num_nodes,
                           self.conv.normalization, None, None, dtype,
                           node_weight=self.node_weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x, self.edge_index, self.edge_weight, node_weight=self.node_weight)


def build_layer(grid: Grid, layer: Layer, channels: int, K: int, dtype: torch.dtype,
                bias: bool = True) -> tuple[torch.nn.Module, float]:
    """``(module, build seconds)``: DISCO's constructor; ours graph + masses + operator."""
    start = time.perf_counter()
    if layer.kind == "disco":
        module = build_disco(grid, layer, channels, bias).to(dtype)
    else:
        graph = build_graph(grid, layer.width, torch.float64)
        if dtype != torch.float64:  # widths are built in float64, then cast
            graph.edge_weight = graph.edge_weight.to(dtype)
            graph.node_weight = graph.node_weight.to(dtype)
        module = ChebOnGraph(graph, channels, K, layer.normalization, bias).to(dtype)
        module.build_operator(dtype)
    return module, time.perf_counter() - start


def layer_input(grid: Grid, layer: Layer, batch: int, channels: int,
                generator: torch.Generator) -> torch.Tensor:
    """A random input in the layer's layout: DISCO ``[B, C, nlat, nlon]``, ours ``[B, N, C]``."""
    shape = ((batch, channels, grid.nlat, grid.nlon) if layer.kind == "disco"
             else (batch, grid.nlat * grid.nlon, channels))
    return torch.randn(shape, generator=generator).requires_grad_(True)


def forward_backward(module: torch.nn.Module, x: torch.Tensor) -> Callable[[], None]:
    """One forward + backward step of a mean-square loss."""

    def step() -> None:
        module.zero_grad(set_to_none=True)
        x.grad = None
        module(x).square().mean().backward()

    return step


def num_parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# ---------------------------------------------------------------------- geometry
def check_positions(grid: Grid) -> float:
    """Max distance between torch-harmonics' grid points (flattened) and our nodes."""
    from torch_harmonics.quadrature import precompute_latitudes, precompute_longitudes

    colat = precompute_latitudes(grid.nlat, grid=GRID_TH)[0].double().numpy()
    lon = precompute_longitudes(grid.nlon).double().numpy()
    theta, phi = np.meshgrid(colat, lon, indexing="ij")  # [nlat, nlon], row-major
    pos = np.stack([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi),
                    np.cos(theta)], axis=-1).reshape(-1, 3)
    ours = build_graph(grid, "auto", torch.float64).pos.numpy()
    error = float(np.abs(pos - ours).max())
    if error > 1e-9:
        raise AssertionError(f"{grid.name}: grid points differ by {error:.3g}")
    return error


def hop_radius(grid: Grid) -> float:
    """Median over nodes of the angle to the farthest k-NN neighbour (radians)."""
    graph = build_graph(grid, "auto", torch.float64)
    pos = graph.pos.numpy()
    row, col = graph.edge_index.numpy()
    chord = np.linalg.norm(pos[row] - pos[col], axis=1)
    angle = 2.0 * np.arcsin(np.clip(chord / 2.0, 0.0, 1.0))
    farthest = np.zeros(graph.num_nodes)
    np.maximum.at(farthest, row, angle)
    return float(np.median(farthest))


def effective_hop(grid: Grid, width: str | float) -> float:
    """Median over nodes of the weighted RMS edge angle ``sqrt(sum w d^2 / sum w)`` (radians):
    how far one hop of the heat-kernel weights effectively reaches."""
    graph = build_graph(grid, width, torch.float64)
    pos = graph.pos.numpy()
    row, col = graph.edge_index.numpy()
    weight = graph.edge_weight.numpy()
    chord = np.linalg.norm(pos[row] - pos[col], axis=1)
    angle2 = (2.0 * np.arcsin(np.clip(chord / 2.0, 0.0, 1.0))) ** 2
    num = np.bincount(row, weights=weight * angle2, minlength=graph.num_nodes)
    den = np.bincount(row, weights=weight, minlength=graph.num_nodes)
    return float(np.median(np.sqrt(num / den)))


def tune_mass_width(grid: Grid, ells: list[int], seed: int, lmax: int) -> None:
    """Heat-kernel width of the k-NN graph tuned for the mass Laplacian."""
    from deepsphere_pyg.graphs.equivariance import tune_kernel_width

    start = time.perf_counter()
    grid.width_mass, _ = tune_kernel_width(
        lambda t: build_graph(grid, float(t), torch.float64), ells, normalization="mass",
        num_signals=2, num_rotations=2, seed=seed + 1, lmax=lmax)
    grid.tune_seconds = time.perf_counter() - start


# -------------------------------------------------------------------- equivariance
def layer_operator(grid: Grid, layer: Layer, K: int, seed: int
                   ) -> Callable[[np.ndarray], np.ndarray]:
    """The layer, 1 -> 1 channel, seeded random weights, no bias, float64, as a batched
    map operator ``[N, B] -> [N, B]`` on node values."""
    torch.manual_seed(seed)
    module, _ = build_layer(grid, layer, 1, K, torch.float64, bias=False)
    module.eval()

    def apply(maps: np.ndarray) -> np.ndarray:
        values = torch.from_numpy(np.ascontiguousarray(np.asarray(maps, dtype=np.float64).T))
        with torch.no_grad():
            if layer.kind == "disco":
                out = module(values.view(-1, 1, grid.nlat, grid.nlon)).reshape(len(values), -1)
            else:
                out = module(values.unsqueeze(-1)).squeeze(-1)
        return out.numpy().T.copy()

    return apply


def equivariance(grid: Grid, all_layers: list[Layer], args: argparse.Namespace) -> float:
    """Mean E per degree of every layer (one shared probe); returns the probe's seconds."""
    from deepsphere_pyg.graphs.equivariance_probe import make_probe
    from deepsphere_pyg.openmp import single_threaded_openmp

    start = time.perf_counter()
    graph = build_graph(grid, "auto", torch.float64)
    with single_threaded_openmp():
        probe = make_probe(graph, args.ells, args.num_signals, args.num_rotations, args.seed,
                           "lsq", args.lmax)
        seconds = time.perf_counter() - start
        for layer in all_layers:
            draws = [probe.samples(layer_operator(grid, layer, args.K, args.seed + draw), True)
                     for draw in range(args.weight_draws)]
            layer.results[grid.name]["E"] = {
                ell: float(np.mean([samples[ell].mean() for samples in draws]))
                for ell in draws[0]}
    return seconds


# ------------------------------------------------------------------------ memory
def _status_kb(key: str) -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def memory_child(spec: str) -> None:
    """Run in a fresh process: cold build time and the peak RSS rise of one pass."""
    config = json.loads(spec)
    torch.set_num_threads(1)
    import torch_harmonics  # noqa: F401  (imports stay out of the build time)

    import deepsphere_pyg.graphs  # noqa: F401
    import deepsphere_pyg.nn  # noqa: F401
    grid = Grid(config["nlat"], config["nlon"], k=config["k"], width_mass=config["width_mass"],
                cutoff=config["cutoff"])
    layer = Layer(config["name"], config["kind"], tuple(config["kernel_shape"]),
                  config["normalization"], config["width"])
    module, build_seconds = build_layer(grid, layer, config["channels"], config["K"],
                                        torch.float32)
    x = layer_input(grid, layer, config["batch"], config["channels"],
                    torch.Generator().manual_seed(0))
    step = forward_backward(module, x)
    step()
    gc.collect()
    reset = True
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")  # resets VmHWM to the current RSS
    except OSError:
        reset = False
    before = _status_kb("VmRSS")
    step()
    peak = _status_kb("VmHWM")
    print(json.dumps({"build_s": build_seconds, "peak_rise_mb": (peak - before) / 1024,
                      "rss_mb": before / 1024, "hwm_mb": peak / 1024, "reset": reset}))


def measure_memory(grid: Grid, layer: Layer, args: argparse.Namespace) -> dict:
    spec = json.dumps({
        "nlat": grid.nlat, "nlon": grid.nlon, "k": grid.k, "width_mass": grid.width_mass,
        "cutoff": grid.cutoff, "name": layer.name, "kind": layer.kind,
        "kernel_shape": list(layer.kernel_shape), "normalization": layer.normalization,
        "width": layer.width, "channels": args.channels, "batch": args.batch, "K": args.K})
    env = dict(os.environ, OMP_NUM_THREADS="1", MALLOC_MMAP_THRESHOLD_="65536",
               MALLOC_TRIM_THRESHOLD_="0")
    done = subprocess.run([sys.executable, os.path.abspath(__file__), "--memory-child", spec],
                          capture_output=True, text=True, env=env, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------ timing
def time_interleaved(grid: Grid, all_layers: list[Layer], args: argparse.Namespace) -> None:
    """Median forward + backward of every layer, all timed in one interleaved loop."""
    generator = torch.Generator().manual_seed(args.seed)
    steps = []
    for layer in all_layers:
        torch.manual_seed(args.seed)
        module, _ = build_layer(grid, layer, args.channels, args.K, torch.float32)
        layer.results[grid.name]["params"] = num_parameters(module)
        steps.append(forward_backward(module, layer_input(grid, layer, args.batch,
                                                          args.channels, generator)))
    for step in steps:  # warm-up
        step()
    times: list[list[float]] = [[] for _ in steps]
    for _ in range(args.repeat):
        for index, step in enumerate(steps):
            start = time.perf_counter()
            step()
            times[index].append(time.perf_counter() - start)
    for layer, values in zip(all_layers, times, strict=True):
        layer.results[grid.name]["time"] = statistics.median(values)
        layer.results[grid.name]["times"] = values


# ------------------------------------------------------------------------ report
def fmt(value: float, digits: int = 3) -> str:
    if not np.isfinite(value):
        return "–"
    return f"{value:.{digits}g}" if abs(value) >= 1e-3 else f"{value:.2e}"


def report(grids: list[Grid], all_layers: list[Layer], args: argparse.Namespace,
           versions: str, seconds: float) -> str:
    from deepsphere_pyg.io import provenance_lines

    ells = args.ells
    header = " | ".join(f"E l={ell}" for ell in ells)
    lines = [
        "# Side by side with torch-harmonics: DISCO convolution vs SphericalChebConv",
        "",
        *provenance_lines(args.seed),
        "",
        f"Versions: {versions}. One torch thread (`torch.set_num_threads(1)`), "
        f"float32, B={args.batch}, {args.channels} -> {args.channels} channels, "
        f"K={args.K}, k={args.k}; median of {args.repeat} forward+backward after a "
        f"warm-up, every layer timed interleaved in one loop. Total {seconds:.0f} s.",
        "",
        "Grids (Gauss-Legendre; positions of torch-harmonics' flattened image and our "
        "nodes agree to the printed max error):",
        "",
    ]
    for grid in grids:
        tuned = (f"t = {grid.width_mass:.4g} tuned for the mass Laplacian in "
                 f"{grid.tune_seconds:.0f} s" if np.isfinite(grid.tune_seconds)
                 else f"t = {grid.width_mass:.4g} given (--width)")
        lines.append(
            f"- {grid.name}: position error {grid.position_error:.1e}; r_hop = "
            f"{math.degrees(grid.r_hop):.2f} deg (median farthest k-NN neighbour; ring "
            f"spacing {180 / grid.nlat:.2f} deg), theta_cutoff = {args.cutoff_scale:g} x "
            f"(K-1) x r_hop = {math.degrees(grid.cutoff):.2f} deg (torch-harmonics' default "
            f"{math.degrees(grid.default_cutoff):.2f} deg); effective hop (median weighted "
            f"RMS edge angle) {math.degrees(grid.hop_mass):.2f} deg mass-tuned, "
            f"{math.degrees(grid.hop_auto):.2f} deg auto; {tuned}; equivariance probe "
            f"(QR at lmax {args.lmax}) {grid.probe_seconds:.0f} s.")
    lines += [
        "",
        f"Equivariance: E = (||R F f - F R f|| / ||F f||)^2, mean over {args.num_signals} "
        f"fields x {args.num_rotations} rotations per degree, seed {args.seed}, the same "
        f"fields and rotations for every layer of a grid; 1 -> 1 channel, seeded random "
        f"weights (mean over {args.weight_draws} draws, seeds {args.seed}..."
        f"{args.seed + args.weight_draws - 1}), no bias, float64; least-squares analysis up "
        f"to lmax = {args.lmax}.",
        "",
        "Peak RSS rise: in a fresh process per layer, with glibc set to serve every block "
        "of 64 KiB or more by mmap and return it on free (`MALLOC_MMAP_THRESHOLD_=65536`, "
        "`MALLOC_TRIM_THRESHOLD_=0`), so that the resident set follows the live "
        "allocations: VmHWM (reset after a warm-up pass) minus VmRSS before one forward + "
        "backward. Build: in the same fresh process (cold caches).",
        "",
        f"| grid | layer | params | build (s) | fwd+bwd (s) | ratio to DISCO iso | "
        f"peak RSS rise (MB) | {header} | mean E |",
        "|---|---|---:|---:|---:|---:|---:|" + "---:|" * len(ells) + "---:|",
    ]
    for grid in grids:
        reference = all_layers[0].results[grid.name]["time"]
        for layer in all_layers:
            res = layer.results[grid.name]
            errors = [res["E"][ell] for ell in ells]
            lines.append(
                f"| {grid.name} | {layer.name} | {res['params']} | {res['build']:.3f} | "
                f"{res['time']:.4f} | {res['time'] / reference:.2f} | "
                f"{res['memory']:.1f} | " + " | ".join(fmt(e) for e in errors)
                + f" | {fmt(float(np.mean(errors)))} |")
    lines += ["", "Raw forward+backward times (s):", ""]
    for grid in grids:
        for layer in all_layers:
            values = ", ".join(f"{t:.4f}" for t in layer.results[grid.name]["times"])
            lines.append(f"- {grid.name}, {layer.name}: {values}")
    return "\n".join(lines) + "\n"


# -------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--grids", type=parse_grid, nargs="+",
                        default=[(64, 128), (128, 256)], metavar="NLATxNLON")
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--K", type=int, default=3, help="Chebyshev terms (K - 1 hops)")
    parser.add_argument("--k", type=int, default=NEIGHBOURS,
                        help=f"neighbours of our k-NN graphs (default {NEIGHBOURS})")
    parser.add_argument("--cutoff-scale", type=float, default=1.0,
                        help="theta_cutoff = scale x (K - 1) x r_hop")
    parser.add_argument("--ells", type=int, nargs="+", default=[4, 16, 28])
    parser.add_argument("--lmax", type=int, default=47,
                        help="band limit of the least-squares analysis (both grids)")
    parser.add_argument("--num-signals", type=int, default=4)
    parser.add_argument("--num-rotations", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--weight-draws", type=int, default=3,
                        help="random weight draws per layer (seeds seed, seed+1, ...)")
    parser.add_argument("--width", type=parse_width, action="append", default=[],
                        metavar="NLATxNLON=T", help="mass-graph width (skips its search)")
    parser.add_argument("--output", default="results/bench_torch_harmonics.md")
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child:
        memory_child(args.memory_child)
        return 0

    torch_harmonics = import_torch_harmonics()
    from torch_harmonics.quadrature import compute_theta_cutoff

    import deepsphere_pyg

    torch.set_num_threads(1)
    begin = time.perf_counter()
    versions = (f"torch {torch.__version__}, torch-harmonics {torch_harmonics.__version__}, "
                f"deepsphere_pyg {getattr(deepsphere_pyg, '__version__', '?')}")
    print(versions, flush=True)
    widths = dict(args.width)
    grids = [Grid(nlat, nlon, k=args.k) for nlat, nlon in args.grids]
    all_layers = layers(args.K, args.k)
    for grid in grids:
        for layer in all_layers:
            layer.results[grid.name] = {}
        grid.position_error = check_positions(grid)
        grid.r_hop = hop_radius(grid)
        grid.cutoff = args.cutoff_scale * (args.K - 1) * grid.r_hop
        grid.default_cutoff = compute_theta_cutoff(grid.nlat, grid=GRID_TH)
        if grid.name in widths:
            grid.width_mass = widths[grid.name]
        else:
            tune_mass_width(grid, args.ells, args.seed, args.lmax)
        grid.hop_mass = effective_hop(grid, "mass")
        grid.hop_auto = effective_hop(grid, "auto")
        print(f"{grid.name}: r_hop {math.degrees(grid.r_hop):.2f} deg, cutoff "
              f"{math.degrees(grid.cutoff):.2f} deg, mass width {grid.width_mass:.4g} "
              f"({grid.tune_seconds:.0f} s)", flush=True)
        for layer in all_layers:
            memory = measure_memory(grid, layer, args)
            layer.results[grid.name]["build"] = memory["build_s"]
            layer.results[grid.name]["memory"] = memory["peak_rise_mb"]
            print(f"  {layer.name}: build {memory['build_s']:.3f} s, peak rise "
                  f"{memory['peak_rise_mb']:.0f} MB (VmHWM reset: {memory['reset']})",
                  flush=True)
        time_interleaved(grid, all_layers, args)
        reference = all_layers[0].results[grid.name]["time"]
        for layer in all_layers:
            value = layer.results[grid.name]["time"]
            print(f"  {layer.name}: fwd+bwd {value:.4f} s, ours/theirs ratio "
                  f"{value / reference:.2f}", flush=True)
        grid.probe_seconds = equivariance(grid, all_layers, args)
        for layer in all_layers:
            errors = layer.results[grid.name]["E"]
            print(f"  {layer.name}: E " + ", ".join(f"l={ell} {fmt(e)}" for ell, e in
                                                    errors.items()), flush=True)
    text = report(grids, all_layers, args, versions, time.perf_counter() - begin)
    from deepsphere_pyg.io import publish_report

    publish_report(text, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
