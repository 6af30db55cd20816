#!/usr/bin/env python
"""Benchmark: SphericalChebConv against torch_geometric's ChebConv on HEALPix graphs.

Prints, for each configuration, forward+backward time of PyG's ``ChebConv`` fed the
equivalent disjoint batch (B copies of the graph) and of ``SphericalChebConv`` on
``[B, N, F]`` with one shared graph, and their ratio, all measured in the same run;
then the time of one operator product (``[N, N] @ [N, C]``) with each available kernel
against scipy's CSR product on the same matrix; optionally (``--memory``) the peak memory
of a forward+backward pass at nside 1024 in a fresh process.

Usage::

    python scripts/bench_conv.py                       # nside 128 (B=4, 32 ch) and 256 (16 ch)
    python scripts/bench_conv.py --memory --output results/bench_conv.md
    python scripts/bench_conv.py --compile-only        # torch.compile against eager
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
import warnings

import scipy
import torch
import torch_geometric
from torch_geometric.nn import ChebConv

from deepsphere_pyg.graphs import SphereHierarchy, healpix_graph
from deepsphere_pyg.graphs.operator import scipy_view
from deepsphere_pyg.io import publish_report
from deepsphere_pyg.models import DeepSphere
from deepsphere_pyg.nn import SphericalChebConv, chebyshev_operator, clear_operator_cache
from deepsphere_pyg.nn.chebyshev_operator import CPU_KERNELS, get_cpu_kernel, set_cpu_kernel

warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")


def timed(step, repeat: int) -> list[float]:
    """Wall times (s) of ``repeat`` calls of ``step`` after one warm-up call."""
    step()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return times


def forward_backward(layer, x, *args):
    def step():
        layer.zero_grad(set_to_none=True)
        x.grad = None
        layer(x, *args).square().mean().backward()

    return step


def disjoint_batch(edge_index: torch.Tensor, num_nodes: int, size: int) -> torch.Tensor:
    """``size`` copies of the graph with node offsets, as PyG's batching makes them."""
    offsets = torch.arange(size).repeat_interleave(edge_index.shape[1]) * num_nodes
    return edge_index.repeat(1, size) + offsets


def conv_case(nside: int, k: int, size: int, channels: int, order: int, repeat: int) -> dict:
    graph = healpix_graph(nside, k=k)
    n = graph.num_nodes
    torch.manual_seed(0)
    reference = ChebConv(channels, channels, K=order)
    ours = SphericalChebConv(channels, channels, K=order)
    ours.load_state_dict(reference.state_dict())

    x_shared = torch.randn(size, n, channels, requires_grad=True)
    x_disjoint = x_shared.detach().reshape(size * n, channels).clone().requires_grad_()
    batch_index = disjoint_batch(graph.edge_index, n, size)
    batch_weight = graph.edge_weight.repeat(size)

    clear_operator_cache()
    start = time.perf_counter()
    chebyshev_operator(graph.edge_index, graph.edge_weight, n, "sym", None, None,
                       torch.float32)
    operator_s = time.perf_counter() - start
    with torch.no_grad():  # same outputs before timing anything
        difference = (ours(x_shared, graph.edge_index, graph.edge_weight).reshape(size * n, -1)
                      - reference(x_disjoint, batch_index, batch_weight)).abs().max().item()
    pyg = timed(forward_backward(reference, x_disjoint, batch_index, batch_weight), repeat)
    result = {
        "nside": nside, "nodes": n, "k": k, "B": size, "channels": channels, "K": order,
        "pyg_s": statistics.median(pyg), "operator_build_s": operator_s,
        "max_abs_difference": difference,
    }
    default = get_cpu_kernel()
    try:
        for kernel in CPU_KERNELS:
            set_cpu_kernel(kernel)
            mine = timed(forward_backward(ours, x_shared, graph.edge_index, graph.edge_weight),
                         repeat)
            result[f"ours_{kernel}_s"] = statistics.median(mine)
            result[f"speedup_{kernel}"] = result["pyg_s"] / result[f"ours_{kernel}_s"]
    finally:
        set_cpu_kernel(default)
    return result


def sym_operator(nside: int, k: int):
    """Node count, the cached ``"sym"`` operator of a HEALPix graph as torch CSR, and a
    scipy view of the same memory (the reference)."""
    graph = healpix_graph(nside, k=k)
    operator = chebyshev_operator(graph.edge_index, graph.edge_weight, graph.num_nodes, "sym",
                                  None, None, torch.float32)
    return graph.num_nodes, operator.matrix, scipy_view(operator.matrix)


def product_case(nside: int, k: int, columns: int, repeat: int) -> dict:
    """One operator product with each kernel, against scipy CSR on the same matrix."""
    n, matrix, reference = sym_operator(nside, k)
    dense = torch.randn(n, columns)
    dense_np = dense.numpy()
    result = {"nside": nside, "nodes": n, "columns": columns}
    result["scipy_s"] = statistics.median(timed(lambda: reference @ dense_np, repeat))
    kernels = {"torch_csr_int64": matrix,
               "torch_csr_int32": torch.sparse_csr_tensor(
                   matrix.crow_indices().int(), matrix.col_indices().int(), matrix.values(),
                   size=matrix.shape)}
    for name, operator in kernels.items():
        result[f"{name}_s"] = statistics.median(timed(lambda op=operator: op @ dense, repeat))
        result[f"{name}_ratio"] = result[f"{name}_s"] / result["scipy_s"]
    # As the layer's backward uses it: accumulated into an existing buffer (no allocation).
    buffer = torch.zeros(n, columns)
    result["torch_csr_inplace_s"] = statistics.median(
        timed(lambda: buffer.addmm_(matrix, dense), repeat))
    result["torch_csr_inplace_ratio"] = result["torch_csr_inplace_s"] / result["scipy_s"]
    return result


def peak_rss_gb() -> float:
    """This process's peak resident memory (VmHWM: unlike ru_maxrss, not inherited from
    the parent process across exec)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1e6
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def padded_neighbours(matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Fixed-degree (ELL) form of a CSR matrix: ``index, weight`` of shape ``[D, N]``,
    rows padded with weight 0 (D = largest row length)."""
    crow, col, value = matrix.crow_indices(), matrix.col_indices(), matrix.values()
    counts = crow[1:] - crow[:-1]
    n, width = counts.numel(), int(counts.max())
    row = torch.repeat_interleave(torch.arange(n), counts)
    slot = torch.arange(col.numel()) - crow[:-1][row]
    index = torch.arange(n).repeat(width, 1)
    weight = torch.zeros(width, n, dtype=value.dtype)
    index[slot, row] = col
    weight[slot, row] = value
    return index, weight


def gather_product(x: torch.Tensor, index: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``sum_d weight[d, :, None] * x[index[d]]``: the product as fixed-degree gathers."""
    out = weight[0, :, None] * x[index[0]]
    for d in range(1, index.shape[0]):
        out = out + weight[d, :, None] * x[index[d]]
    return out


def kernel_exploration(nside: int, k: int, columns: int, repeat: int) -> dict:
    """The product as a fixed-degree gather, eager and compiled with torch.compile."""
    n, matrix, reference = sym_operator(nside, k)
    index, weight = padded_neighbours(matrix)
    dense = torch.randn(n, columns)
    expected = torch.from_numpy(reference @ dense.numpy())
    result = {"nside": nside, "columns": columns, "degree": int(index.shape[0])}
    result["scipy_s"] = statistics.median(timed(lambda: reference @ dense.numpy(), repeat))
    eager = lambda: gather_product(dense, index, weight)  # noqa: E731
    result["gather_eager_s"] = statistics.median(timed(eager, repeat))
    start = time.perf_counter()
    compiled = torch.compile(gather_product, dynamic=False)
    error = (compiled(dense, index, weight) - expected).abs().max().item()
    result["compile_s"] = time.perf_counter() - start
    result["gather_compiled_s"] = statistics.median(
        timed(lambda: compiled(dense, index, weight), repeat))
    result["max_abs_error"] = error
    return result


def compile_case(nside: int, k: int, size: int, channels: int, order: int, repeat: int
                 ) -> dict:
    """SphericalChebConv eager against ``torch.compile(layer, fullgraph=True)`` (the
    cached operator and the fused product run as custom operators), forward + backward
    and inference, on ``[B, N, C]``."""
    graph = healpix_graph(nside, k=k)
    torch.manual_seed(0)
    layer = SphericalChebConv(channels, channels, K=order)
    x = torch.randn(size, graph.num_nodes, channels, requires_grad=True)
    args = (graph.edge_index, graph.edge_weight)
    torch._dynamo.reset()
    compiled = torch.compile(layer, fullgraph=True)
    start = time.perf_counter()
    with torch.no_grad():
        difference = (compiled(x, *args) - layer(x, *args)).abs().max().item()
    compile_s = time.perf_counter() - start
    result = {"nside": nside, "nodes": graph.num_nodes, "B": size, "channels": channels,
              "K": order, "compile_s": compile_s, "max_abs_difference": difference}
    for name, module in (("eager", layer), ("compiled", compiled)):
        result[f"{name}_train_s"] = statistics.median(
            timed(forward_backward(module, x, *args), repeat))

        def infer(module=module):
            with torch.no_grad():
                module(x, *args)

        result[f"{name}_infer_s"] = statistics.median(timed(infer, repeat))
    for mode in ("train", "infer"):
        result[f"ratio_{mode}"] = result[f"compiled_{mode}_s"] / result[f"eager_{mode}_s"]
    return result


def model_compile_case(nside: int, size: int, repeat: int) -> dict:
    """DeepSphere (3 levels, channels 16/32/64, K = 5, statistic head) eager against
    ``torch.compile(model, fullgraph=True)``, whose convolutions run the fused product as
    one custom operator on the model's operator buffers; ``[B, N, 1]`` input."""
    hierarchy = SphereHierarchy.healpix(nside, 3)
    torch.manual_seed(0)
    model = DeepSphere(hierarchy, 1, 2, channels=(16, 32, 64), K=5)
    x = torch.randn(size, hierarchy.num_nodes[0], 1)
    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True)
    start = time.perf_counter()
    with torch.no_grad():
        model.eval()
        difference = (compiled(x) - model(x)).abs().max().item()
        model.train()
    compile_s = time.perf_counter() - start
    result = {"nside": nside, "nodes": hierarchy.num_nodes[0], "B": size,
              "max_abs_difference": difference}
    for name, module in (("eager", model), ("compiled", compiled)):
        def step(module=module):
            model.zero_grad(set_to_none=True)
            module(x).square().mean().backward()

        start = time.perf_counter()
        step()  # the compiled backward is built on the first call
        if name == "compiled":
            compile_s += time.perf_counter() - start
        result[f"{name}_train_s"] = statistics.median(timed(step, repeat))
    result["compile_s"] = compile_s
    result["ratio_train"] = result["compiled_train_s"] / result["eager_train_s"]
    return result


def memory_child(nside: int, k: int, channels: int, order: int) -> None:
    graph = healpix_graph(nside, k=k)
    after_graph = peak_rss_gb()
    layer = SphericalChebConv(channels, channels, K=order)
    x = torch.randn(1, graph.num_nodes, channels, requires_grad=True)
    start = time.perf_counter()
    layer(x, graph.edge_index, graph.edge_weight).square().mean().backward()
    seconds = time.perf_counter() - start
    peak = peak_rss_gb()
    print(json.dumps({"nside": nside, "nodes": graph.num_nodes, "channels": channels,
                      "K": order, "peak_rss_gb": peak, "after_graph_gb": after_graph,
                      "first_forward_backward_s": seconds}))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--memory", action="store_true",
                        help="also measure nside 1024, B=1, 16->16, K=5 in a fresh process")
    parser.add_argument("--products-only", action="store_true",
                        help="only the operator-product table")
    parser.add_argument("--explore-kernels", action="store_true",
                        help="also time the product as a fixed-degree gather, eager and "
                             "compiled with torch.compile (needs a C++ compiler)")
    parser.add_argument("--compile", action="store_true",
                        help="also time torch.compile(layer, fullgraph=True) against eager "
                             "(needs a C++ compiler)")
    parser.add_argument("--compile-only", action="store_true",
                        help="only the torch.compile table")
    parser.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--output", help="also write the Markdown report to this file")
    args = parser.parse_args(argv)
    if args.memory_child:
        memory_child(1024, args.k, 16, 5)
        return 0

    malloc_env = [f"{key}={value}" for key, value in sorted(os.environ.items())
                  if key.startswith("MALLOC_")]
    command = shlex.join([*malloc_env, "python", "scripts/bench_conv.py",
                          *(sys.argv[1:] if argv is None else argv)])
    lines = [
        "### SphericalChebConv vs torch_geometric ChebConv",
        "",
        f"Command: `{command}`  ",
        f"Machine: {platform.platform()}, {os.cpu_count()} CPUs, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), torch_geometric {torch_geometric.__version__}, "
        f"scipy {scipy.__version__}  ",
        f"Median of {args.repeat} timed calls after a warm-up; ChebConv gets the disjoint "
        "batch (B copies of the graph), SphericalChebConv `[B, N, F]` and one graph; "
        "forward + backward of a mean-square loss, gradients for input and weights.",
        "",
    ]
    conv_table = [
        "| nside | nodes | B | channels | K | PyG ChebConv fwd+bwd (s) | ours, scipy kernel (s) "
        "| speed-up | ours, torch CSR kernel (default) (s) | speed-up | max abs difference "
        "| operator build (s, once) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    skip_conv = args.products_only or args.compile_only
    if not skip_conv:
        lines += conv_table
    for nside, size, channels in () if skip_conv else ((128, 4, 32), (256, 4, 16)):
        case = conv_case(nside, args.k, size, channels, 6, args.repeat)
        print(case, flush=True)
        lines.append(
            f"| {nside} | {case['nodes']:,} | {size} | {channels} | 6 | {case['pyg_s']:.3f} | "
            f"{case['ours_scipy_s']:.3f} | {case['speedup_scipy']:.1f}x | "
            f"{case['ours_torch_s']:.3f} | **{case['speedup_torch']:.1f}x** | "
            f"{case['max_abs_difference']:.1e} | {case['operator_build_s']:.2f} |")

    if not args.compile_only:
        lines += ["", "One operator product `[N, N] @ [N, C]` (time ratio to scipy CSR, "
                  "one thread):",
                  "", "| nside | C | scipy CSR (ms) | torch CSR int64 (ms, ratio) "
                  "| torch CSR int32 (ms, ratio) | torch CSR into a buffer (ms, ratio) |",
                  "|---|---:|---:|---:|---:|---:|"]
    for nside, columns in () if args.compile_only else ((256, 16), (256, 64), (128, 128)):
        case = product_case(nside, args.k, columns, max(args.repeat, 5))
        print(case, flush=True)
        lines.append(
            f"| {nside} | {columns} | {case['scipy_s'] * 1e3:.1f} | "
            f"{case['torch_csr_int64_s'] * 1e3:.1f} ({case['torch_csr_int64_ratio']:.2f}) | "
            f"{case['torch_csr_int32_s'] * 1e3:.1f} ({case['torch_csr_int32_ratio']:.2f}) | "
            f"{case['torch_csr_inplace_s'] * 1e3:.1f} ({case['torch_csr_inplace_ratio']:.2f}) |")

    if args.explore_kernels:
        lines += ["", "The same product as fixed-degree (padded) gathers, "
                  "`sum_d w[d] * x[idx[d]]`:",
                  "", "| nside | C | degree D | scipy CSR (ms) | gather, eager (ms, ratio) "
                  "| gather, torch.compile (ms, ratio) | compile (s) | max abs error |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for nside, columns in ((256, 16), (256, 64), (128, 128)):
            case = kernel_exploration(nside, args.k, columns, max(args.repeat, 5))
            print(case, flush=True)
            scipy_s = case["scipy_s"]
            lines.append(
                f"| {nside} | {columns} | {case['degree']} | {scipy_s * 1e3:.1f} | "
                f"{case['gather_eager_s'] * 1e3:.1f} ({case['gather_eager_s'] / scipy_s:.2f}) | "
                f"{case['gather_compiled_s'] * 1e3:.1f} "
                f"({case['gather_compiled_s'] / scipy_s:.2f}) | {case['compile_s']:.1f} | "
                f"{case['max_abs_error']:.1e} |")

    if args.compile or args.compile_only:
        lines += ["", "torch.compile(SphericalChebConv, fullgraph=True) (the cached operator "
                  "and the fused product as custom operators) against eager, `[B, N, C]`, "
                  "C -> C channels (time ratio compiled / eager; < 1: compiled is faster):",
                  "", "| nside | nodes | B | C | K | eager fwd+bwd (s) | compiled fwd+bwd "
                  "(s, ratio) | eager inference (s) | compiled inference (s, ratio) "
                  "| compile (s, once) | max abs difference |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for nside, size, channels in ((32, 16, 32), (64, 8, 32), (128, 4, 32)):
            case = compile_case(nside, args.k, size, channels, 6, args.repeat)
            print(case, flush=True)
            lines.append(
                f"| {nside} | {case['nodes']:,} | {size} | {channels} | 6 | "
                f"{case['eager_train_s']:.3f} | {case['compiled_train_s']:.3f} "
                f"({case['ratio_train']:.2f}) | {case['eager_infer_s']:.3f} | "
                f"{case['compiled_infer_s']:.3f} ({case['ratio_infer']:.2f}) | "
                f"{case['compile_s']:.1f} | {case['max_abs_difference']:.1e} |")
        lines += ["", "A whole model, `torch.compile(DeepSphere, fullgraph=True)` (the fused "
                  "product as one custom operator), training step fwd+bwd:", "",
                  "| nside | nodes | B | eager (s) | compiled (s, ratio) | compile (s, once) "
                  "| max abs difference |", "|---|---:|---:|---:|---:|---:|---:|"]
        for nside, size in ((16, 32), (32, 16), (64, 8)):
            case = model_compile_case(nside, size, args.repeat)
            print(case, flush=True)
            lines.append(
                f"| {nside} | {case['nodes']:,} | {size} | {case['eager_train_s']:.3f} | "
                f"{case['compiled_train_s']:.3f} ({case['ratio_train']:.2f}) | "
                f"{case['compile_s']:.1f} | {case['max_abs_difference']:.1e} |")

    if args.memory:
        out = subprocess.run([sys.executable, __file__, "--memory-child", "--k", str(args.k)],
                             capture_output=True, text=True, check=True)
        memory = json.loads(out.stdout.strip().splitlines()[-1])
        print(memory, flush=True)
        lines += ["", f"nside 1024 ({memory['nodes']:,} nodes), B=1, 16->16, K=5, first "
                  f"forward+backward (includes building the operator): "
                  f"{memory['first_forward_backward_s']:.1f} s; peak RSS of the process "
                  f"{memory['peak_rss_gb']:.2f} GB (of which graph build "
                  f"{memory['after_graph_gb']:.2f} GB)."]

    text = "\n".join(lines) + "\n"
    publish_report(text, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
