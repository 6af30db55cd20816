"""Figures: PNG files of node maps, graphs, learning curves and confusion matrices."""

import sys

import healpy as hp
import numpy as np
import pytest
import torch

pytest.importorskip("matplotlib")
from matplotlib import colors as mcolors  # noqa: E402
from matplotlib import image as mpimg  # noqa: E402
from matplotlib.collections import LineCollection, PathCollection  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from deepsphere_pyg import plots  # noqa: E402
from deepsphere_pyg.graphs import (  # noqa: E402
    equiangular_graph,
    healpix_graph,
    icosahedral_graph,
    points_graph,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def read_png(path, shape=None) -> np.ndarray:
    """The RGB pixels of a PNG file, after checking its signature, size and content."""
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    image = mpimg.imread(path)
    assert image.ndim == 3 and min(image.shape[:2]) > 1
    if shape is not None:
        assert image.shape[:2] == shape
    colours = np.unique(image[..., :3].reshape(-1, 3), axis=0)
    assert len(colours) > 10, "the figure is (almost) blank"
    return image[..., :3]


def count_colour(image: np.ndarray, colour) -> int:
    rgb = np.array(mcolors.to_rgb(colour))
    return int((np.abs(image - rgb).max(axis=-1) < 1.5 / 255).sum())


@pytest.fixture(scope="module")
def graphs():
    vec = np.array(hp.pix2vec(8, np.arange(hp.nside2npix(8)), nest=True))
    rng = np.random.default_rng(0)
    return {
        "healpix": healpix_graph(4),
        "healpix_masked": healpix_graph(8, mask=vec[2] > 0.3),
        "healpix_ring": healpix_graph(4, nest=False),
        "equiangular": equiangular_graph(8),
        "icosahedral": icosahedral_graph(2),
        "points": points_graph(rng.uniform(-40, 60, 80), rng.uniform(20, 70, 80)),
    }


@pytest.fixture
def captured(monkeypatch):
    """Figures handed to save_figure, kept instead of written."""
    figures = []
    for module in (plots.sphere, plots.training):
        monkeypatch.setattr(module, "save_figure",
                            lambda figure, path, dpi=100: figures.append(figure))
    return figures


# ------------------------------------------------------------------------- save_figure
def test_save_figure_writes_a_png_and_leaves_no_temporary_file(tmp_path):
    figure = Figure(figsize=(3, 2))
    figure.subplots().plot([0, 1], [1, 0])
    path = tmp_path / "new" / "folder" / "line.png"
    plots.save_figure(figure, path, dpi=50)
    read_png(path, shape=(100, 150))
    assert [p.name for p in path.parent.iterdir()] == ["line.png"]


def test_a_failing_save_leaves_the_previous_file_intact(tmp_path):
    path = tmp_path / "figure.png"
    path.write_bytes(b"previous picture")
    figure = Figure()

    def broken_savefig(file, **kwargs):
        file.write(b"\x89PNG half an image")
        raise RuntimeError("disk full")

    figure.savefig = broken_savefig
    with pytest.raises(RuntimeError, match="disk full"):
        plots.save_figure(figure, path)
    assert path.read_bytes() == b"previous picture"
    assert [p.name for p in tmp_path.iterdir()] == ["figure.png"]


def test_missing_matplotlib_says_how_to_install_it(monkeypatch, tmp_path, graphs):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match="pip install matplotlib"):
        plots.plot_graph(graphs["healpix"], tmp_path / "g.png")


# --------------------------------------------------------------------------- plot_maps
@pytest.mark.parametrize("kind", ["healpix", "healpix_masked", "equiangular", "points"])
def test_plot_maps_writes_one_panel_per_map(tmp_path, graphs, kind):
    graph = graphs[kind]
    maps = [graph.pos[:, 2], torch.randn(graph.num_nodes).numpy()]
    path = tmp_path / "maps.png"
    plots.plot_maps(maps, graph, path, titles=["z", "noise"])
    read_png(path, shape=(310, 840))  # 4.2 x 3.1 inches per panel at 100 dpi
    plots.plot_maps(maps[:1], graph, path, symmetric=True)
    read_png(path, shape=(310, 420))


@pytest.mark.parametrize("kind", ["healpix", "healpix_ring", "equiangular", "icosahedral"])
@pytest.mark.parametrize("axis", ["z", "y"])
def test_maps_are_drawn_north_up_and_east_by_convention(tmp_path, graphs, kind, axis):
    """sign(z) or sign(y) with a two-colour map (blue where positive, red where negative):
    north is up; longitudes 0-180° (y > 0) lie left of the centre on HEALPix sky maps
    (healpy's astro convention) and right of it for the other samplings (east to the
    right). Checks the projection, the orientation and the node order (NEST / RING)."""
    graph = graphs[kind]
    coordinate = graph.pos[:, 2 if axis == "z" else 1].double().numpy()
    sign = np.sign(np.where(np.abs(coordinate) > 1e-6, coordinate, np.nan))  # NaN: missing
    path = tmp_path / "sign.png"
    plots.plot_maps([sign], graph, path, cmap=mcolors.ListedColormap(["red", "blue"]))
    image = read_png(path)
    # Bounding box of the Mollweide ellipse (above the colour bar).
    panel = image[: int(0.8 * image.shape[0])]
    rows = np.flatnonzero((panel < 0.99).any(axis=(1, 2)))
    cols = np.flatnonzero((panel < 0.99).any(axis=(0, 2)))
    ellipse = panel[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    if axis == "z":
        span = ellipse.shape[0]
        first, second = ellipse[: int(0.3 * span)], ellipse[-int(0.3 * span):]
    else:
        span = ellipse.shape[1]
        first, second = ellipse[:, : int(0.3 * span)], ellipse[:, -int(0.3 * span):]
    if axis == "y" and not kind.startswith("healpix"):
        first, second = second, first  # geographic: positive y (east) on the right
    assert count_colour(first, "blue") > 20 * (count_colour(first, "red") + 1)
    assert count_colour(second, "red") > 20 * (count_colour(second, "blue") + 1)


def test_partial_sky_pixels_are_shown_as_missing(tmp_path, graphs):
    full, masked = graphs["healpix"], graphs["healpix_masked"]
    plots.plot_maps([full.pos[:, 0]], full, tmp_path / "full.png")
    plots.plot_maps([masked.pos[:, 0]], masked, tmp_path / "masked.png")
    missing_full = count_colour(read_png(tmp_path / "full.png"), plots.MISSING_COLOR)
    missing_masked = count_colour(read_png(tmp_path / "masked.png"), plots.MISSING_COLOR)
    # The mask keeps z > 0.3 (about a third of the sky): most of the ellipse is missing.
    assert missing_masked > 100 * (missing_full + 1)


def test_plot_maps_refuses_bad_input(tmp_path, graphs):
    graph = graphs["healpix"]
    with pytest.raises(ValueError, match=r"maps\[1\] has shape \[10\], expected \[192\]"):
        plots.plot_maps([np.zeros(192), np.zeros(10)], graph, tmp_path / "m.png")
    with pytest.raises(ValueError, match="titles has 1 entries for 2 maps"):
        plots.plot_maps([np.zeros(192)] * 2, graph, tmp_path / "m.png", titles=["a"])
    with pytest.raises(ValueError, match="maps is empty"):
        plots.plot_maps([], graph, tmp_path / "m.png")
    assert not (tmp_path / "m.png").exists()


# -------------------------------------------------------------------------- plot_graph
@pytest.mark.parametrize("kind", ["healpix", "healpix_masked", "equiangular", "icosahedral",
                                  "points"])
def test_plot_graph_writes_a_picture(tmp_path, graphs, kind):
    path = tmp_path / "graph.png"
    plots.plot_graph(graphs[kind], path)
    read_png(path, shape=(520, 1200))


def test_plot_graph_draws_the_edges_of_the_visible_side(graphs, captured):
    graph = graphs["icosahedral"]  # full sphere: seen from lon 0, lat 30
    plots.plot_graph(graph, "unused.png")
    left = captured[0].axes[0]
    (edges,) = [c for c in left.collections if isinstance(c, LineCollection)]
    lat = np.radians(30.0)
    center = np.array([np.cos(lat), 0.0, np.sin(lat)])
    facing = (graph.pos.double().numpy() @ center) > 0
    row, col = graph.edge_index.numpy()
    expected = int(((row < col) & facing[row] & facing[col]).sum())
    assert len(edges.get_segments()) == expected > 0
    alpha = edges.get_colors()[:, 3]
    assert alpha.max() == pytest.approx(1.0) and alpha.min() >= 0.1
    (nodes,) = [c for c in left.collections if isinstance(c, PathCollection)]
    assert len(nodes.get_offsets()) == int(facing.sum())
    assert "162 nodes" in captured[0].texts[0].get_text()


def test_large_graphs_get_a_window(graphs, captured):
    graph = graphs["healpix_masked"]
    plots.plot_graph(graph, "unused.png", max_nodes=50, title="masked sky")
    left = captured[0].axes[0]
    (nodes,) = [c for c in left.collections if isinstance(c, PathCollection)]
    assert len(nodes.get_offsets()) == 50
    assert f"window: the 50 nodes nearest the centre, of {graph.num_nodes}" in left.get_title()
    assert captured[0].texts[0].get_text() == "masked sky"
    with pytest.raises(ValueError, match="max_nodes"):
        plots.plot_graph(graph, "unused.png", max_nodes=0)


# --------------------------------------------------------------------- training runs
HISTORY = [
    {"epoch": 0, "train_loss": 1.0, "val_loss": 1.1, "train_accuracy": 0.5, "lr": 1e-3},
    {"epoch": 1, "train_loss": 0.7, "lr": 5e-4},  # no validation this epoch
    {"epoch": 2, "train_loss": 0.5, "val_loss": float("nan"), "val_accuracy": 0.7,
     "lr": 2.5e-4, "seconds": 3.2},
    {"epoch": 3, "train_loss": 0.4, "val_loss": 0.6, "val_accuracy": None, "lr": 1.2e-4},
]


def test_learning_curves_with_missing_keys(tmp_path):
    assert plots.training._learning_curve_panels(HISTORY) == (["loss", "accuracy"], True)
    path = tmp_path / "curves.png"
    plots.plot_learning_curves(HISTORY, path)
    read_png(path, shape=(300, 1200))  # three 4 x 3 inch panels
    plots.plot_learning_curves([{"val_iou": 0.3}, {"val_iou": 0.4}], path)
    read_png(path, shape=(300, 400))


def test_learning_curve_axes(captured):
    plots.plot_learning_curves(HISTORY, "unused.png")
    loss, accuracy, lr = captured[0].axes
    assert [line.get_label() for line in loss.get_lines()] == ["train", "val"]
    np.testing.assert_array_equal(loss.get_lines()[1].get_xdata(), [0, 3])  # NaN skipped
    assert lr.get_yscale() == "log" and loss.get_yscale() == "linear"
    assert accuracy.get_title() == "accuracy"


def test_learning_curves_refuse_bad_history(tmp_path):
    with pytest.raises(ValueError, match="history is empty"):
        plots.plot_learning_curves([], tmp_path / "c.png")
    with pytest.raises(ValueError, match="no metric to plot"):
        plots.plot_learning_curves([{"epoch": 0, "seconds": 1.0}], tmp_path / "c.png")
    with pytest.raises(TypeError, match="list of per-epoch dicts"):
        plots.plot_learning_curves({"train_loss": [1.0]}, tmp_path / "c.png")


def test_confusion_matrix(tmp_path, captured):
    matrix = np.array([[8, 2, 0], [1, 5, 4], [0, 0, 0]])
    plots.plot_confusion_matrix(matrix, "unused.png", class_names=["a", "b", "c"])
    ax = captured[0].axes[0]
    np.testing.assert_allclose(ax.get_images()[0].get_array(),
                               [[0.8, 0.2, 0.0], [0.1, 0.5, 0.4], [0.0, 0.0, 0.0]])
    assert [t.get_text() for t in ax.texts][:3] == ["8", "2", "0"]
    assert "accuracy 0.650 (20 samples)" in ax.get_title()


def test_confusion_matrix_png_and_errors(tmp_path):
    path = tmp_path / "confusion.png"
    plots.plot_confusion_matrix(torch.tensor([[3, 1], [2, 4]]), path, title="digits")
    read_png(path, shape=(400, 500))
    with pytest.raises(ValueError, match="square"):
        plots.plot_confusion_matrix(np.ones((2, 3)), path)
    with pytest.raises(ValueError, match="non-negative"):
        plots.plot_confusion_matrix(-np.ones((2, 2)), path)
    with pytest.raises(ValueError, match="class_names has 1 names for 2 classes"):
        plots.plot_confusion_matrix(np.ones((2, 2)), path, class_names=["a"])
