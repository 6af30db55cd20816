r"""``deepsphere-pyg graph``: build a graph of a sphere sampling, write its picture and statistics.

One graph builder per ``--sampling`` (:func:`~deepsphere_pyg.graphs.healpix_graph`,
:func:`~deepsphere_pyg.graphs.equiangular_graph`,
:func:`~deepsphere_pyg.graphs.icosahedral_graph`,
:func:`~deepsphere_pyg.graphs.points_graph` for a file of longitudes and latitudes),
with that builder's defaults. The output folder receives

* ``graph.png``: :func:`deepsphere_pyg.plots.plot_graph` (skipped, with a message, when
  matplotlib is not installed);
* ``statistics.json`` and ``statistics.md``: nodes, directed edges, neighbours and
  weighted degree (min/mean/max), edge weights (min/max), the kernel width :math:`t`,
  upper estimates of :math:`\lambda_\max` of the symmetric normalised Laplacian
  :math:`I - D^{-1/2} W D^{-1/2}` and of the combinatorial one :math:`D - W`
  (:func:`~deepsphere_pyg.graphs.estimate_lambda_max`), the harmonic scale :math:`c` of
  :math:`\lambda_\ell \approx c\,\ell(\ell + 1)`
  (:func:`~deepsphere_pyg.graphs.harmonic_scale`) and the build time.

Files are written atomically (a temporary name, then a rename). The module imports numpy
and the graph builders when the command runs, not when its parser is built.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import math
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .io import is_number_text, machine_description, write_text_atomic

if TYPE_CHECKING:
    import numpy as np

    from .graphs import SphereGraph

#: Samplings of the command.
SAMPLINGS = ("healpix", "equiangular", "icosahedral", "points")

#: Choices of ``--edges`` (:data:`deepsphere_pyg.graphs.checks.EDGES`), ``--grid``
#: (:data:`deepsphere_pyg.graphs.equiangular.GRIDS`) and ``--weights``
#: (:data:`deepsphere_pyg.graphs.equiangular.WEIGHTS`), written out so that building the
#: parser imports no graph module (torch); a test checks that they are the same.
EDGES = ("knn", "neighbours")
GRIDS = ("driscoll-healy", "soft", "clenshaw-curtis", "gauss-legendre")
WEIGHTS = EDGES

#: Options that belong to one sampling (their destination names), and their defaults.
_OPTIONS: dict[str, dict[str, Any]] = {
    "healpix": {"nside": 16},
    "equiangular": {"nlat": 32, "nlon": None, "grid": "driscoll-healy", "weights": None},
    "icosahedral": {"level": 4, "neighbours": None},
    "points": {"points": None, "duplicates": "raise"},
}

#: Column names recognised in the header of a ``--points`` CSV file.
_LON_NAMES = ("lon", "longitude", "lng", "long")
_LAT_NAMES = ("lat", "latitude")


def _kernel(text: str) -> str | float:
    """``--kernel``: a recipe name, or a number (the heat-kernel width t)."""
    try:
        return float(text)
    except ValueError:
        return text


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Register ``graph`` on the ``deepsphere-pyg`` command."""
    parser = commands.add_parser(
        "graph", help="build a graph of a sphere sampling, write its picture and statistics",
        description=__doc__.split("\n\n")[0].split(": ", 1)[1])
    parser.add_argument("--sampling", choices=SAMPLINGS, default="healpix",
                        help="sampling of the sphere (default healpix)")
    parser.add_argument("--k", type=int, default=None,
                        help="neighbours per node (default: the builder's, 8)")
    parser.add_argument("--edges", choices=EDGES, default=None,
                        help="edge recipe: knn (k nearest nodes) or neighbours (the "
                             "sampling's own: HEALPix 8-neighbourhood, 4-neighbour grid, "
                             "icosahedral mesh); default: knn, the mesh for icosahedral "
                             "(knn when --k is given)")
    parser.add_argument("--kernel", type=_kernel, default=None, metavar="NAME|T",
                        help="edge-weight rule or heat-kernel width t: auto (default: the "
                             "sampling's tuned rule), healpix v2 (knn) / v1 (neighbours); "
                             "global, adaptive (knn of the other samplings); icosahedral "
                             "v1 (neighbours)")
    parser.add_argument("--output", metavar="DIR", default=None,
                        help="output folder (default graph-<sampling>)")
    parser.add_argument("--max-nodes", type=int, default=5000,
                        help="largest graph drawn whole in graph.png; larger ones show a "
                             "window of their edges (default 5000)")
    healpix = parser.add_argument_group("healpix")
    healpix.add_argument("--nside", type=int, default=None,
                         help="HEALPix resolution, a power of two (default 16)")
    grid = parser.add_argument_group("equiangular")
    grid.add_argument("--nlat", type=int, default=None, help="rings (default 32)")
    grid.add_argument("--nlon", type=int, default=None,
                      help="longitudes (default: the grid's usual value)")
    grid.add_argument("--grid", choices=GRIDS, default=None,
                      help="grid family (default driscoll-healy)")
    grid.add_argument("--weights", choices=WEIGHTS, default=None,
                      help="deprecated: the old name of --edges")
    mesh = parser.add_argument_group("icosahedral")
    mesh.add_argument("--level", type=int, default=None,
                      help="subdivisions of the icosahedron (default 4: 2562 nodes)")
    mesh.add_argument("--neighbours", choices=("mesh", "knn"), default=None,
                      help="deprecated: the old name of --edges (mesh = neighbours)")
    points = parser.add_argument_group("points")
    points.add_argument("--points", metavar="FILE", default=None,
                        help="CSV (columns lon,lat or a header naming them) or .npy [P, 2] "
                             "of longitudes and latitudes in degrees")
    points.add_argument("--duplicates", choices=("raise", "merge"), default=None,
                        help="coincident points: report them (default) or merge them")
    parser.set_defaults(run=run)


def _options(args: argparse.Namespace) -> dict[str, Any]:
    """The options of ``args.sampling`` with their defaults; options of another sampling
    are refused (they would be silently ignored)."""
    for sampling, options in _OPTIONS.items():
        if sampling == args.sampling:
            continue
        for name in options:
            if getattr(args, name, None) is not None:
                raise ValueError(f"--{name} applies to --sampling {sampling}, not to "
                                 f"--sampling {args.sampling}; drop it or change --sampling")
    return {name: default if getattr(args, name) is None else getattr(args, name)
            for name, default in _OPTIONS[args.sampling].items()}


def read_points(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Longitudes and latitudes (degrees, ``[P]`` float64 each) from a ``--points`` file.

    * ``.npy``: an array ``[P, 2]`` of ``(lon, lat)`` rows, or a structured array with
      fields ``lon`` and ``lat``.
    * anything else, read as CSV (comma-separated, ``#`` comments and blank lines
      skipped): either two unnamed columns ``lon,lat``, or a header row naming the
      columns (``lon``/``longitude`` and ``lat``/``latitude``, any case; further columns
      such as station names are ignored).

    Raises:
        FileNotFoundError: no such file.
        ValueError: another shape or layout, missing columns, values that are not numbers.
    """
    import numpy as np

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--points: file {str(path)!r} not found; give a CSV of "
                                "lon,lat or a .npy [P, 2] in degrees")
    if path.suffix.lower() == ".npy":
        try:
            array = np.load(path, allow_pickle=False)
        except ValueError as error:
            raise ValueError(f"--points {path}: cannot read the .npy file ({error})") from error
        if array.dtype.names and {"lon", "lat"} <= set(array.dtype.names):
            return (np.asarray(array["lon"], dtype=np.float64).ravel(),
                    np.asarray(array["lat"], dtype=np.float64).ravel())
        if array.ndim != 2 or array.shape[1] != 2 or not np.issubdtype(array.dtype, np.number):
            raise ValueError(f"--points {path}: expected a numeric array [P, 2] of (lon, lat) "
                             f"rows in degrees, got shape {list(array.shape)} and dtype "
                             f"{array.dtype}")
        array = array.astype(np.float64)
        return array[:, 0].copy(), array[:, 1].copy()
    return _read_points_csv(path)


def _read_points_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import numpy as np

    with path.open(newline="", encoding="utf-8") as file:
        rows = [(number, [cell.strip() for cell in row])
                for number, row in enumerate(csv.reader(file), start=1)
                if row and any(cell.strip() for cell in row)
                and not row[0].lstrip().startswith("#")]
    if not rows:
        raise ValueError(f"--points {path}: no points in the file; expected rows lon,lat in "
                         "degrees")
    first = rows[0][1]
    if all(is_number_text(cell) for cell in first):
        if len(first) != 2:
            raise ValueError(f"--points {path}: line {rows[0][0]} has {len(first)} columns; "
                             "without a header the file must have two columns lon,lat "
                             "(degrees); add a header naming the lon and lat columns")
        columns = (0, 1)
    else:
        names = [cell.lower() for cell in first]
        lon_col = next((names.index(n) for n in _LON_NAMES if n in names), None)
        lat_col = next((names.index(n) for n in _LAT_NAMES if n in names), None)
        if lon_col is None or lat_col is None:
            raise ValueError(f"--points {path}: the header {first} names no "
                             f"{'lon' if lon_col is None else 'lat'} column; name the "
                             "columns 'lon' and 'lat' (degrees) or give two unnamed columns")
        columns = (lon_col, lat_col)
        rows = rows[1:]
    values = np.empty((len(rows), 2), dtype=np.float64)
    for index, (number, row) in enumerate(rows):
        for axis, column in enumerate(columns):
            cell = row[column] if column < len(row) else ""
            if not is_number_text(cell):
                name = ("lon", "lat")[axis]
                raise ValueError(f"--points {path}: line {number}: {name} {cell!r} is not a "
                                 "number (degrees expected)")
            values[index, axis] = float(cell)
    if not len(values):
        raise ValueError(f"--points {path}: the file has a header but no points")
    return values[:, 0], values[:, 1]


def build_graph(args: argparse.Namespace) -> tuple[SphereGraph, dict[str, Any]]:
    """The graph asked for by ``args`` and the parameters given to its builder."""
    from .graphs import equiangular_graph, healpix_graph, icosahedral_graph, points_graph

    options = _options(args)
    params: dict[str, Any] = {}
    if args.k is not None:
        params["k"] = args.k
    if args.kernel is not None:
        params["kernel"] = args.kernel
    sampling = args.sampling
    edges = _edges(args, options)
    if edges is None and sampling == "icosahedral":
        edges = "knn" if args.k is not None else "neighbours"
    if edges is not None:
        params["edges"] = edges
    if edges == "neighbours" and args.k is not None and sampling != "healpix":
        raise ValueError(f"--k applies to --edges knn; the {sampling} neighbours graph "
                         "(--edges neighbours) has the sampling's own neighbours, no k")
    if sampling == "healpix":
        params = {"nside": options["nside"], **params}
        return healpix_graph(**params), params
    if sampling == "equiangular":
        params = {"nlat": options["nlat"], "nlon": options["nlon"], "grid": options["grid"],
                  **params}
        return equiangular_graph(**params), params
    if sampling == "icosahedral":
        params = {"level": options["level"], **params}
        return icosahedral_graph(**params), params
    if options["points"] is None:
        raise ValueError("--sampling points needs --points FILE (a CSV of lon,lat or a .npy "
                         "[P, 2] in degrees)")
    lon, lat = read_points(options["points"])
    params = {"points": str(options["points"]), "duplicates": options["duplicates"], **params}
    return points_graph(lon, lat, duplicates=options["duplicates"],
                        **{key: params[key] for key in ("k", "kernel", "edges")
                           if key in params}), params


#: The deprecated per-sampling flags of the edge recipe: flag -> {old value: recipe}.
_OLD_EDGE_FLAGS = {"weights": {"knn": "knn", "neighbours": "neighbours"},
                   "neighbours": {"mesh": "neighbours", "knn": "knn"}}


def _edges(args: argparse.Namespace, options: dict[str, Any]) -> str | None:
    """``--edges``, or the recipe given by a deprecated flag (with a note on stderr)."""
    for flag, names in _OLD_EDGE_FLAGS.items():
        value = options.get(flag)
        if value is None:
            continue
        if args.edges is not None:
            raise ValueError(f"--edges and --{flag} both given; --{flag} is the old name of "
                             "--edges: keep --edges")
        print(f"--{flag} {value} is deprecated: use --edges {names[value]}", file=sys.stderr)
        return names[value]
    return args.edges


def graph_statistics(graph: SphereGraph, build_seconds: float | None = None) -> dict[str, Any]:
    r"""Statistics of ``graph`` for reports (JSON-serialisable).

    :meth:`SphereGraph.statistics` (nodes, directed edges, neighbours and weighted degree
    min/mean/max), edge weights min/max, the kernel width :math:`t` (``None`` for
    samplings without one), upper estimates of the largest eigenvalue of the symmetric
    normalised and of the combinatorial Laplacian, the harmonic scale :math:`c`, and
    ``build_seconds``.
    """
    from .graphs import estimate_lambda_max, harmonic_scale

    stats: dict[str, Any] = dict(graph.statistics())
    weight = graph.edge_weight.detach()
    stats["edge_weight_min"] = float(weight.min()) if weight.numel() else None
    stats["edge_weight_max"] = float(weight.max()) if weight.numel() else None
    width = graph["kernel_width"] if "kernel_width" in graph else None
    stats["kernel_width"] = None if width is None else float(width)
    stats["lambda_max_sym"] = estimate_lambda_max(graph, "sym")
    stats["lambda_max_combinatorial"] = estimate_lambda_max(graph, None)
    stats["harmonic_scale"] = harmonic_scale(graph)
    stats["build_seconds"] = build_seconds
    return stats


#: Rows of ``statistics.md``: key and label.
_LABELS = (
    ("num_nodes", "nodes"),
    ("num_edges", "directed edges"),
    ("neighbours_min", "neighbours min"),
    ("neighbours_mean", "neighbours mean"),
    ("neighbours_max", "neighbours max"),
    ("degree_min", "weighted degree min"),
    ("degree_mean", "weighted degree mean"),
    ("degree_max", "weighted degree max"),
    ("edge_weight_min", "edge weight min"),
    ("edge_weight_max", "edge weight max"),
    ("kernel_width", "kernel width t"),
    ("lambda_max_sym", "lambda_max, I - D^-1/2 W D^-1/2 (upper estimate)"),
    ("lambda_max_combinatorial", "lambda_max, D - W (upper estimate)"),
    ("harmonic_scale", "harmonic scale c (lambda_l ~ c l(l+1))"),
    ("build_seconds", "build time (s)"),
)


def _format(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _markdown(sampling: str, params: dict[str, Any], graph: SphereGraph,
              stats: dict[str, Any], machine: str, picture: bool) -> str:
    described = ", ".join(f"{name}={value}" for name, value in params.items()
                          if value is not None)
    resolved = ", ".join(f"{name}={graph[name]}" for name in ("k", "kernel", "nest")
                         if name in graph)
    lines = [f"# Graph of the {sampling} sampling", "",
             f"Builder arguments: {described or 'defaults'}" + (
                 f"; graph: {resolved}" if resolved else ""),
             f"Machine: {machine}", "",
             "| quantity | value |", "|---|---|"]
    lines += [f"| {label} | {_format(stats[key])} |" for key, label in _LABELS]
    if picture:
        lines += ["", "![graph](graph.png)"]
    return "\n".join(lines) + "\n"


def _jsonable(value: Any) -> Any:
    import numpy as np

    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    return value


def run(args: argparse.Namespace) -> int:
    """Build the graph, write ``graph.png``, ``statistics.json``, ``statistics.md``."""
    if args.max_nodes < 1:
        raise ValueError(f"--max-nodes must be >= 1, got {args.max_nodes}")
    output = Path(args.output if args.output else f"graph-{args.sampling}")
    start = time.perf_counter()
    graph, params = build_graph(args)
    build_seconds = time.perf_counter() - start
    stats = graph_statistics(graph, build_seconds)

    picture = importlib.util.find_spec("matplotlib") is not None
    machine = machine_description()
    record = {
        "sampling": args.sampling,
        "parameters": {name: _jsonable(value) for name, value in params.items()},
        "graph": {name: _jsonable(graph[name]) for name in
                  ("nside", "nest", "grid", "nlat", "nlon", "edges", "weights", "level",
                   "neighbours", "k", "kernel") if name in graph},
        "statistics": {name: _jsonable(value) for name, value in stats.items()},
        "machine": machine,
    }
    write_text_atomic(output / "statistics.json", json.dumps(record, indent=2) + "\n")
    write_text_atomic(output / "statistics.md",
                      _markdown(args.sampling, params, graph, stats, machine, picture))
    if picture:
        from .plots import plot_graph

        plot_graph(graph, output / "graph.png", max_nodes=args.max_nodes)
    else:
        print("graph.png skipped: drawing needs matplotlib (pip install matplotlib)",
              file=sys.stderr)

    width = stats["kernel_width"]
    print(f"{args.sampling} graph: {stats['num_nodes']} nodes, {stats['num_edges']} directed "
          f"edges, {stats['neighbours_min']}-{stats['neighbours_max']} neighbours (mean "
          f"{stats['neighbours_mean']:.2f}), built in {build_seconds:.2f} s")
    print(f"weighted degree {stats['degree_min']:.4g}-{stats['degree_max']:.4g}, "
          f"t={'-' if width is None else f'{width:.4g}'}, lambda_max <= "
          f"{stats['lambda_max_sym']:.4f} (normalised) / "
          f"{stats['lambda_max_combinatorial']:.4g} (combinatorial), "
          f"c={stats['harmonic_scale']:.4g}")
    written = ["statistics.json", "statistics.md", *(["graph.png"] if picture else [])]
    print(f"wrote {', '.join(str(output / name) for name in written)}")
    return 0
