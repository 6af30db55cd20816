r"""Resolution of the levels of a hierarchy, and which level a band-limited signal needs.

A level "resolves" degrees up to its effective :math:`n_\mathrm{side}`: on a k-NN HEALPix
graph the Laplacian eigenvalues follow :math:`c\,\ell(\ell+1)` up to
:math:`\ell \approx n_\mathrm{side}` and bend below it above, so a signal band-limited to
:math:`\ell < B` is placed on the coarsest level with
:math:`n_\mathrm{side} \ge \text{margin} \cdot B`.

For samplings without an ``nside`` the effective value comes from the spacing of the
nodes: on HEALPix the median angular distance to the nearest pixel is
:math:`1.024 / n_\mathrm{side}` (measured at nside 8 to 64, constant to 0.2 %), so
:math:`n_\mathrm{eff} = 1.024 / \tilde d` with :math:`\tilde d` the median nearest-node
angle of the graph's nodes.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from ..graphs.hierarchy import SphereHierarchy
from ..graphs.sphere_graph import SphereGraph

#: Median nearest-pixel angle of HEALPix times nside.
HEALPIX_SPACING = 1.024

#: Default ratio of a level's effective nside to the band limit it must hold.
DEFAULT_MARGIN = 1.0


def effective_nside(graph: SphereGraph) -> float:
    """The graph's ``nside`` (HEALPix), else :math:`1.024 / \\tilde d` (module docstring)."""
    if getattr(graph, "sampling", None) == "healpix" and "nside" in graph:
        return float(graph.nside)
    pos = graph.pos.detach().cpu().double().numpy()
    if pos.shape[0] < 2:
        raise ValueError("graph needs at least 2 nodes to estimate its resolution")
    chord, _ = cKDTree(pos).query(pos, 2)
    angle = 2.0 * np.arcsin(np.clip(chord[:, 1] / 2.0, 0.0, 1.0))
    return float(HEALPIX_SPACING / np.median(angle))


def level_for_band_limit(
    hierarchy: SphereHierarchy, band_limit: float, margin: float = DEFAULT_MARGIN
) -> int:
    r"""Index of the coarsest level with effective nside :math:`\ge` ``margin * band_limit``
    (0, the finest, when no level is fine enough)."""
    chosen = 0
    for level, graph in enumerate(hierarchy.graphs):
        if effective_nside(graph) >= margin * band_limit:
            chosen = level
    return chosen
