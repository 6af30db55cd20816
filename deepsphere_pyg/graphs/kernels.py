r"""Edge-weight recipes: the heat kernel and the tuned kernel widths of DeepSphere v2.

Weights are :math:`w_{ij} = \exp(-d_{ij}^2 / (4t))` with :math:`d_{ij}` the chord distance
between the unit vectors of nodes ``i`` and ``j`` and :math:`t` the kernel width. DeepSphere
v2 tabulates the half-width :math:`\sigma` of :math:`\exp(-\ln 2\, d^2 / \sigma^2)` (the
weight is 1/2 at :math:`d = \sigma`), so :math:`t = \sigma^2 / (4 \ln 2)`.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

#: Kernel half-widths :math:`\sigma` of DeepSphere v2 (Defferrard et al., ICLR 2020), tuned
#: to minimise the equivariance error of k-NN HEALPix graphs: ``{k: {nside: sigma}}``. The
#: k=40 and k=60 entries at nside 512 and 1024 were extrapolated by the authors.
#: Convert with :func:`sigma_to_t`. (Read as :math:`\sigma`, the table reproduces the
#: published errors and the "v1 width is about 3.6 times the optimal one" remark; read as
#: :math:`t` it gives weights ~100 times too flat; see ``scripts/equivariance_table.py``.)
V2_KERNEL_WIDTHS: dict[int, dict[int, float]] = {
    8: {32: 0.02500, 64: 0.01228, 128: 0.00614, 256: 0.00307, 512: 0.00154, 1024: 0.00077},
    20: {32: 0.03185, 64: 0.01564, 128: 0.00782, 256: 0.00391, 512: 0.00196, 1024: 0.00098},
    40: {32: 0.042432, 64: 0.021354, 128: 0.010595, 256: 0.005551, 512: 0.0027755,
         1024: 0.00138775},
    60: {32: 0.051720, 64: 0.025403, 128: 0.012695, 256: 0.006351, 512: 0.0031755,
         1024: 0.00158775},
}

#: Width rules accepted besides a positive float :math:`t`, per ``(sampling, edges)``.
#: ``"auto"`` always names the sampling's tuned rule for that edge recipe: ``"v2"`` on
#: HEALPix k-NN graphs (the published widths), ``"v1"`` on the 8 HEALPix neighbours (the
#: width from the mean edge length), the ``"global"`` rule with the grid's measured factor
#: on lat-lon grids, :math:`t = \overline{d^2}/4` on the icosahedral mesh, ``"global"`` on
#: icosahedral k-NN graphs and ``"adaptive"`` on point sets. ``None``: fixed weights
#: (``1/d`` between grid neighbours), so only ``"auto"`` is accepted.
KERNEL_RULES: dict[tuple[str, str], tuple[str, ...] | None] = {
    ("healpix", "knn"): ("auto", "v2"),
    ("healpix", "neighbours"): ("auto", "v1"),
    ("equiangular", "knn"): ("auto", "global", "adaptive"),
    ("equiangular", "neighbours"): None,
    ("icosahedral", "knn"): ("auto", "global", "adaptive"),
    ("icosahedral", "neighbours"): ("auto", "v1"),
    ("points", "knn"): ("auto", "global", "adaptive"),
}

#: Rules of the k-NN edge builder itself (:func:`~deepsphere_pyg.graphs.knn_graph.knn_graph`).
KNN_RULES = ("global", "adaptive")


def check_kernel(kernel: object, sampling: str | None = None, edges: str = "knn"
                 ) -> str | float:
    """The one validator of ``kernel``: a rule name of :data:`KERNEL_RULES` for
    ``(sampling, edges)`` (:data:`KNN_RULES` when ``sampling`` is ``None``), returned as
    given, or a positive finite float :math:`t`, returned as ``float``.

    Raises:
        ValueError: an unknown name, a non-positive or non-finite width, any value other
            than ``"auto"`` for a recipe with fixed weights.
        TypeError: neither a string nor a real number.
    """
    names = KNN_RULES if sampling is None else KERNEL_RULES[(sampling, edges)]
    where = "" if sampling is None else f"edges={edges!r}: "
    if names is None:
        if isinstance(kernel, str) and kernel == "auto":
            return kernel
        raise ValueError(f"{where}{sampling} graphs have fixed weights 1/d; kernel applies "
                         f"to edges='knn' only (leave kernel='auto'), got kernel={kernel!r}")
    if isinstance(kernel, str):
        if kernel not in names:
            raise ValueError(f"{where}kernel must be one of {names} or a positive float t, "
                             f"got {kernel!r}")
        return kernel
    if isinstance(kernel, bool) or not isinstance(kernel, numbers.Real):
        raise TypeError(f"{where}kernel must be one of {names} or a positive float t, got "
                        f"{kernel!r}")
    if not (math.isfinite(kernel) and kernel > 0):
        raise ValueError(f"kernel width t must be positive and finite, got {kernel!r}")
    return float(kernel)


def sigma_to_t(sigma: float) -> float:
    r"""Half-width :math:`\sigma` of :math:`\exp(-\ln 2\, d^2/\sigma^2)` -> width
    :math:`t = \sigma^2 / (4 \ln 2)` of :math:`\exp(-d^2/(4t))`."""
    return sigma**2 / (4.0 * math.log(2.0))


def heat_kernel(dist2: np.ndarray, t: float) -> np.ndarray:
    r"""Heat-kernel weights :math:`\exp(-d^2 / (4t))` of squared distances ``dist2``."""
    if not (isinstance(t, (int, float)) and math.isfinite(t) and t > 0):
        raise ValueError(f"kernel width t must be a positive finite number, got {t!r}")
    return np.exp(-np.asarray(dist2) / (4.0 * t))


def healpix_kernel_sigma(nside: int, k: int) -> float:
    r"""Kernel half-width :math:`\sigma` for a k-NN HEALPix graph, following DeepSphere v2.

    Inside :data:`V2_KERNEL_WIDTHS` the published value is returned. Elsewhere:

    * **nside**: :math:`\sigma` is proportional to the pixel size, :math:`1/n_\mathrm{side}`
      (as the table is), so it is scaled from the nearest tabulated ``nside`` by
      ``nside_ref / nside``;
    * **k**: :math:`\log \sigma` is interpolated piecewise linearly in :math:`\log k`
      between the tabulated ``k`` (8, 20, 40, 60) and extrapolated with the end segments
      (the table grows like :math:`k^{0.25}` to :math:`k^{0.5}`).

    For a width tuned to any sampling, see
    :func:`deepsphere_pyg.graphs.equivariance.tune_kernel_width`.
    """
    ks = np.array(sorted(V2_KERNEL_WIDTHS), dtype=np.float64)
    nsides = sorted(V2_KERNEL_WIDTHS[8])
    ref = min(nsides, key=lambda s: abs(math.log2(s) - math.log2(nside)))
    log_sigma = np.log([V2_KERNEL_WIDTHS[int(kk)][ref] for kk in ks])
    log_k = np.log(ks)
    x = math.log(k)
    if x <= log_k[0]:
        slope = (log_sigma[1] - log_sigma[0]) / (log_k[1] - log_k[0])
        value = log_sigma[0] + slope * (x - log_k[0])
    elif x >= log_k[-1]:
        slope = (log_sigma[-1] - log_sigma[-2]) / (log_k[-1] - log_k[-2])
        value = log_sigma[-1] + slope * (x - log_k[-1])
    else:
        value = float(np.interp(x, log_k, log_sigma))
    return float(math.exp(value) * ref / nside)


def healpix_kernel_width(nside: int, k: int) -> float:
    r"""Heat-kernel width :math:`t = \sigma^2/(4\ln 2)` for a k-NN HEALPix graph, with
    :math:`\sigma` from :func:`healpix_kernel_sigma` (published, or extrapolated:
    :math:`t \propto 1/n_\mathrm{side}^2`)."""
    return sigma_to_t(healpix_kernel_sigma(nside, k))
