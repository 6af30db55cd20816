"""``deepsphere-pyg graph``: build a sampling's graph, write its picture and statistics."""

import argparse
import importlib.util
import json

import numpy as np
import pytest

from deepsphere_pyg.graph_command import add_parser, read_points
from deepsphere_pyg.graphs import (
    equiangular_graph,
    estimate_lambda_max,
    harmonic_scale,
    healpix_graph,
    icosahedral_graph,
    points_graph,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None


def test_choices_are_the_builders():
    # Written out in the command so that its parser imports no graph module.
    from deepsphere_pyg import graph_command
    from deepsphere_pyg.graphs.checks import EDGES
    from deepsphere_pyg.graphs.equiangular import GRIDS, WEIGHTS

    assert (graph_command.EDGES, graph_command.GRIDS, graph_command.WEIGHTS) == (
        EDGES, GRIDS, WEIGHTS)


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="deepsphere-pyg")
    commands = parser.add_subparsers(dest="command", required=True)
    add_parser(commands)
    return parser.parse_args(["graph", *argv])


def run_graph(*argv: str) -> int:
    args = parse(*argv)
    return args.run(args)


def expected_statistics(graph) -> dict:
    """What statistics.json must hold, computed here from the graph itself."""
    return {
        **graph.statistics(),
        "edge_weight_min": float(graph.edge_weight.min()),
        "edge_weight_max": float(graph.edge_weight.max()),
        "kernel_width": float(graph.kernel_width),
        "lambda_max_sym": estimate_lambda_max(graph, "sym"),
        "lambda_max_combinatorial": estimate_lambda_max(graph, None),
        "harmonic_scale": harmonic_scale(graph),
    }


def check_outputs(folder, graph) -> dict:
    record = json.loads((folder / "statistics.json").read_text())
    stats = record["statistics"]
    assert stats["build_seconds"] > 0
    for name, value in expected_statistics(graph).items():
        assert stats[name] == pytest.approx(value, rel=1e-9), name
    markdown = (folder / "statistics.md").read_text()
    assert f"| nodes | {graph.num_nodes} |" in markdown
    assert f"| directed edges | {graph.edge_index.shape[1]} |" in markdown
    if HAS_MATPLOTLIB:
        assert (folder / "graph.png").read_bytes()[:8] == PNG_SIGNATURE
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".")]  # no temporaries
    return record


def test_healpix_end_to_end(tmp_path, capsys):
    assert run_graph("--nside", "4", "--output", str(tmp_path / "out")) == 0
    record = check_outputs(tmp_path / "out", healpix_graph(4))
    assert record["sampling"] == "healpix" and record["parameters"] == {"nside": 4}
    assert record["graph"] == {"nside": 4, "nest": True, "edges": "knn", "k": 8,
                               "kernel": "v2"}
    out = capsys.readouterr().out
    assert "healpix graph: 192 nodes, 1560 directed edges" in out
    assert "statistics.json" in out


def test_healpix_options_reach_the_builder(tmp_path):
    assert run_graph("--nside", "4", "--k", "12", "--kernel", "0.02",
                     "--output", str(tmp_path)) == 0
    record = check_outputs(tmp_path, healpix_graph(4, k=12, kernel=0.02))
    assert record["statistics"]["kernel_width"] == 0.02


def test_points_csv_end_to_end(tmp_path, capsys):
    rng = np.random.default_rng(3)
    lon, lat = rng.uniform(-180, 180, 60), rng.uniform(-60, 60, 60)
    rows = "\n".join(f"station {i},{float(la)!r},{float(lo)!r}"
                     for i, (lo, la) in enumerate(zip(lon, lat, strict=True)))
    (tmp_path / "stations.csv").write_text(f"# weather stations\nName,Lat,Lon\n{rows}\n")
    assert run_graph("--sampling", "points", "--points", str(tmp_path / "stations.csv"),
                     "--k", "6", "--output", str(tmp_path / "out")) == 0
    expected = points_graph(lon, lat, k=6)
    record = check_outputs(tmp_path / "out", expected)
    assert record["parameters"]["k"] == 6 and record["graph"]["kernel"] == "adaptive"
    assert "points graph: 60 nodes" in capsys.readouterr().out


def test_other_samplings_end_to_end(tmp_path):
    assert run_graph("--sampling", "equiangular", "--nlat", "8", "--output",
                     str(tmp_path / "eq")) == 0
    check_outputs(tmp_path / "eq", equiangular_graph(8))
    # --k alone turns the icosahedral graph into a k-NN graph.
    assert run_graph("--sampling", "icosahedral", "--level", "2", "--k", "6", "--output",
                     str(tmp_path / "ico")) == 0
    record = check_outputs(tmp_path / "ico", icosahedral_graph(2, edges="knn", k=6))
    assert record["graph"]["neighbours"] == "knn"


def test_default_output_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run_graph("--nside", "2") == 0
    assert json.loads((tmp_path / "graph-healpix" / "statistics.json").read_text()
                      )["statistics"]["num_nodes"] == 48


def test_statistics_without_matplotlib(tmp_path, monkeypatch, capsys):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "matplotlib" else find_spec(name, *a))
    assert run_graph("--nside", "2", "--output", str(tmp_path)) == 0
    assert (tmp_path / "statistics.json").exists() and not (tmp_path / "graph.png").exists()
    assert "pip install matplotlib" in capsys.readouterr().err


# ------------------------------------------------------------------------ points files
def test_read_points_formats(tmp_path):
    (tmp_path / "plain.csv").write_text("10,20\n\n-30.5,45\n")
    lon, lat = read_points(tmp_path / "plain.csv")
    np.testing.assert_array_equal(lon, [10, -30.5])
    np.testing.assert_array_equal(lat, [20, 45])
    np.save(tmp_path / "points.npy", np.array([[10.0, 20.0], [-30.5, 45.0]]))
    lon2, lat2 = read_points(tmp_path / "points.npy")
    np.testing.assert_array_equal(lon2, lon)
    np.testing.assert_array_equal(lat2, lat)
    table = np.array([(20.0, 10.0), (45.0, -30.5)], dtype=[("lat", "f8"), ("lon", "f8")])
    np.save(tmp_path / "table.npy", table)
    np.testing.assert_array_equal(read_points(tmp_path / "table.npy")[0], lon)


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("three.csv", "1,2,3\n4,5,6\n", "two columns lon,lat"),
        ("header.csv", "name,lon,height\na,1,2\n", "names no lat column"),
        ("text.csv", "lon,lat\n1,2\n3,north\n", "line 3: lat 'north' is not a number"),
        ("empty.csv", "# nothing\n", "no points"),
        ("only_header.csv", "lon,lat\n", "header but no points"),
    ],
)
def test_read_points_refuses_bad_files(tmp_path, name, content, match):
    (tmp_path / name).write_text(content)
    with pytest.raises(ValueError, match=match) as error:
        read_points(tmp_path / name)
    assert str(error.value).startswith("--points")


def test_read_points_refuses_bad_arrays(tmp_path):
    np.save(tmp_path / "bad.npy", np.zeros((5, 3)))
    with pytest.raises(ValueError, match=r"--points .*\[P, 2\].*got shape \[5, 3\]"):
        read_points(tmp_path / "bad.npy")


# ------------------------------------------------------------------------------ errors
@pytest.mark.parametrize(
    ("argv", "error", "match"),
    [
        (["--nside", "12"], ValueError, "nside must be a power of two"),
        (["--sampling", "equiangular", "--nside", "4"], ValueError,
         "--nside applies to --sampling healpix"),
        (["--sampling", "healpix", "--level", "3"], ValueError,
         "--level applies to --sampling icosahedral"),
        (["--sampling", "points"], ValueError, "--sampling points needs --points FILE"),
        (["--sampling", "points", "--points", "missing.csv"], FileNotFoundError,
         "--points: file 'missing.csv' not found"),
        (["--kernel", "v3"], ValueError, r"kernel must be one of \('auto', 'v2'\)"),
        (["--kernel", "-1"], ValueError, "kernel width t must be positive"),
        (["--k", "0"], ValueError, "k must be an integer >= 1"),
        (["--sampling", "equiangular", "--nlat", "1"], ValueError, "nlat must be >= 2"),
        (["--sampling", "equiangular", "--edges", "neighbours", "--k", "4"], ValueError,
         "--k applies to --edges knn"),
        (["--sampling", "icosahedral", "--level", "20"], ValueError, "level must lie in"),
        (["--sampling", "icosahedral", "--edges", "neighbours", "--k", "6"], ValueError,
         "--k applies to --edges knn"),
        (["--sampling", "icosahedral", "--edges", "knn", "--neighbours", "mesh"], ValueError,
         "--neighbours is the old name of --edges"),
        (["--max-nodes", "0"], ValueError, "--max-nodes must be >= 1"),
    ],
)
def test_bad_arguments(tmp_path, monkeypatch, argv, error, match):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(error, match=match):
        run_graph(*argv, "--output", "out")
    assert not (tmp_path / "out").exists()  # nothing written


@pytest.mark.parametrize(("argv", "match"), [(["--sampling", "sphere"], "--sampling"),
                                             (["--nside", "sixteen"], "--nside")])
def test_argument_types_are_checked_by_the_parser(capsys, argv, match):
    with pytest.raises(SystemExit) as exit_info:
        parse(*argv)
    assert exit_info.value.code == 2
    assert match in capsys.readouterr().err


def test_statistics_json_is_plain_json(tmp_path):
    """Every value is a JSON number, string, bool or null (no NaN, no numpy types)."""
    assert run_graph("--sampling", "equiangular", "--nlat", "8", "--edges", "neighbours",
                     "--output", str(tmp_path)) == 0
    text = (tmp_path / "statistics.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    stats = json.loads(text)["statistics"]
    graph = equiangular_graph(8, edges="neighbours")
    assert stats["kernel_width"] is None  # 1/d weights: no heat kernel
    assert stats["num_nodes"] == graph.num_nodes == 57
    assert stats["degree_max"] == pytest.approx(float(graph.degree.max()))


def test_old_edge_flags_still_work_with_a_note(tmp_path, capsys):
    assert run_graph("--sampling", "equiangular", "--nlat", "8", "--weights", "neighbours",
                     "--output", str(tmp_path / "eq")) == 0
    assert "--weights neighbours is deprecated: use --edges neighbours" in capsys.readouterr().err
    record = json.loads((tmp_path / "eq" / "statistics.json").read_text())
    assert record["graph"]["edges"] == "neighbours"
    assert record["statistics"]["num_edges"] == equiangular_graph(8, edges="neighbours").num_edges
    assert run_graph("--sampling", "icosahedral", "--level", "1", "--neighbours", "mesh",
                     "--output", str(tmp_path / "ico")) == 0
    assert "use --edges neighbours" in capsys.readouterr().err
    check_outputs(tmp_path / "ico", icosahedral_graph(1))
