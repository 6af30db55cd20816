r"""The scattering front-end as an :class:`torch.nn.Module`: :class:`SphericalScattering`."""

from __future__ import annotations

import hashlib
import importlib
import json
import numbers
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn

from .. import __version__
from ..graphs.checks import check_int_in_range
from ..graphs.hierarchy import SphereHierarchy
from .backend import MAX_DEPTH, check_maps
from .filters import FilterBank, ScatteringPath
from .resolution import effective_nside, level_for_band_limit

__all__ = [
    "BACKENDS",
    "SphericalScattering",
    "backend_class",
    "default_band_limit",
    "hierarchy_fingerprint",
]

#: Backend name -> (module of this package, class name); imported when first used, so a
#: backend's dependencies are loaded only by the models that use it.
BACKENDS: dict[str, tuple[str, str]] = {
    "graph": (".graph_backend", "GraphBackend"),
    "harmonic": (".harmonic", "HarmonicBackend"),
}


def backend_class(name: str) -> type[nn.Module]:
    """The backend class registered under ``name`` in :data:`BACKENDS`.

    Raises:
        TypeError: ``name`` is not a string.
        ValueError: ``name`` is not registered.
    """
    if not isinstance(name, str):
        raise TypeError(f"backend must be a string, one of {sorted(BACKENDS)}, got {name!r}")
    if name not in BACKENDS:
        raise ValueError(
            f"backend must be one of {sorted(BACKENDS)}, got {name!r} ('harmonic': exact "
            "spherical-harmonic filtering, full-sky HEALPix only; 'graph': Chebyshev "
            "filters on the graphs, any sampling)"
        )
    module_name, class_name = BACKENDS[name]
    module = importlib.import_module(module_name, __package__)
    return getattr(module, class_name)


def _sha256(tensors: Iterable[torch.Tensor | None]) -> str:
    """SHA-256 over the dtype, shape and raw bytes of each tensor (``None`` allowed)."""
    digest = hashlib.sha256()
    for tensor in tensors:
        if tensor is None:
            digest.update(b"None;")
            continue
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{flat.dtype}{tuple(tensor.shape)};".encode())
        digest.update(flat.view(torch.uint8).numpy().data)
    return digest.hexdigest()


def _graph_tensors(graph: Any) -> list[torch.Tensor | None]:
    return [getattr(graph, name, None) for name in ("edge_index", "edge_weight", "pos")]


def hierarchy_fingerprint(hierarchy: SphereHierarchy) -> dict[str, Any]:
    """JSON-serialisable description of ``hierarchy`` that changes whenever its graphs do.

    Returns:
        ``sampling`` (of level 0), ``num_nodes`` per level, ``nside`` per level (HEALPix,
        else ``None``), ``level0_sha256`` (SHA-256 of level 0's ``edge_index``,
        ``edge_weight`` and ``pos``: dtype, shape and bytes), ``coarse_levels_sha256``
        (the same over the other levels) and ``pool_index_sha256`` (over every
        ``pool_index``).
    """
    if not isinstance(hierarchy, SphereHierarchy):
        raise TypeError(f"hierarchy must be a SphereHierarchy, got {type(hierarchy).__name__}")
    graphs = hierarchy.graphs
    nsides = [int(g.nside) if "nside" in g else None for g in graphs]
    return {
        "sampling": getattr(graphs[0], "sampling", None),
        "num_nodes": hierarchy.num_nodes,
        "nside": nsides,
        "level0_sha256": _sha256(_graph_tensors(graphs[0])),
        "coarse_levels_sha256": _sha256(t for g in graphs[1:] for t in _graph_tensors(g)),
        "pool_index_sha256": _sha256(hierarchy.pool_index),
    }


def _short_hash(fingerprint: dict[str, Any]) -> str:
    text = json.dumps(fingerprint, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _check_depth(depth: Any) -> int:
    return check_int_in_range(depth, "depth", 1, MAX_DEPTH, " (1: first-order scattering, "
                              "2: the usual choice; deeper orders carry little energy and "
                              "many paths)")


def default_band_limit(hierarchy: SphereHierarchy) -> int:
    r"""Default ``L``: :math:`3 n_\mathrm{side}` of level 0 on HEALPix, else
    ``round(3 * effective_nside(level 0))``."""
    graph = hierarchy[0]
    if getattr(graph, "sampling", None) == "healpix" and "nside" in graph:
        return 3 * int(graph.nside)
    return round(3 * effective_nside(graph))


class SphericalScattering(nn.Module):
    r"""Spherical wavelet scattering front-end (McEwen, Wallis & Mavor-Parker, ICLR 2022).

    Fixed (not learned) filters: a map :math:`f` on the finest level of ``hierarchy`` is
    filtered by the scale-discretised wavelets :math:`\psi_j` (:math:`J_0 \le j \le J`,
    kernels :math:`\kappa_j(\ell)` of :class:`~deepsphere_pyg.scattering.filters.FilterBank`)
    and the scaling function :math:`\Phi` (:math:`\ell < \lambda^{J_0}`):

    .. math::

        U[()] f = f, \quad U[(j_1)] f = |f \star \psi_{j_1}|, \quad
        U[(j_1, j_2)] f = \bigl||f \star \psi_{j_1}| \star \psi_{j_2}\bigr|, \ \dots

        S[p] f = U[p] f \star \Phi,

    for every path :math:`p` of :meth:`FilterBank.paths` up to ``depth`` (order 0, then
    order 1 by :math:`j_1`, then order 2 with :math:`j_2 < j_1`, ...). The wavelets and
    :math:`\Phi` form a tight frame up to :math:`L`, so the first layer preserves energy;
    the modulus moves it towards low degrees, where :math:`\Phi` keeps it. Every
    :math:`S[p] f` is band-limited to :math:`\ell < \lambda^{J_0}` and represented on the
    coarsest level that resolves that band (:attr:`output_level`,
    :func:`~deepsphere_pyg.scattering.resolution.level_for_band_limit`), so the trainable
    layers after it run at low resolution. The module has no trainable parameters and is
    meant to run once over a data set (see :mod:`deepsphere_pyg.precompute`).

    Args:
        hierarchy: the sphere's levels, finest first; maps live on level 0.
        J0: scale of :math:`\Phi` (band limit :math:`\lambda^{J_0}`), ``0 <= J0 < J``.
        J: finest wavelet scale; default :math:`\lceil \log_\lambda L \rceil` (tight frame).
        depth: highest scattering order, 1 to 3 (default 2).
        backend: ``"graph"`` (Chebyshev filters of the graph Laplacians, any sampling and
            partial skies; default) or ``"harmonic"`` (exact spherical-harmonic filtering
            with healpy, full-sky HEALPix only).
        L: band limit of the maps; default :math:`3 n_\mathrm{side}` of level 0 on HEALPix,
            else ``round(3 * effective_nside(level 0))``.
        lam: dilation factor :math:`\lambda > 1` (default 2).
        backend_options: further keyword arguments of the backend's constructor (e.g.
            ``{"order": 40}`` for the graph backend); settings that change the output
            appear in :meth:`config` through the backend's own ``config()``.

    Raises:
        TypeError: ``hierarchy`` is not a :class:`~deepsphere_pyg.graphs.SphereHierarchy`,
            ``backend`` not a string, ``depth`` not an integer.
        ValueError: ``J0 >= J``, ``depth`` outside ``[1, 3]``, an unknown backend, bad
            ``L``/``lam``, or a hierarchy the backend cannot handle.

    Shapes:
        - **input:** ``[B, N, C]`` or ``[N, C]``, ``N`` = nodes of level 0 (its node order:
          NEST for HEALPix hierarchies).
        - **output:** ``[B, N_out, C * P]`` or ``[N_out, C * P]``, ``N_out`` = nodes of
          :attr:`output_level`, ``P`` = :attr:`num_paths`; channel ``c * P + p`` holds path
          ``p`` of input channel ``c`` (see :meth:`meta`).
    """

    def __init__(
        self,
        hierarchy: SphereHierarchy,
        *,
        J0: int,
        J: int | None = None,
        depth: int = 2,
        backend: str = "graph",
        L: int | None = None,
        lam: float = 2.0,
        backend_options: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(hierarchy, SphereHierarchy):
            raise TypeError(
                f"hierarchy must be a SphereHierarchy, got {type(hierarchy).__name__}; build "
                "one with e.g. SphereHierarchy.healpix(nside, levels)"
            )
        depth = _check_depth(depth)
        cls = backend_class(backend)
        if backend_options is None:
            backend_options = {}
        if not isinstance(backend_options, Mapping):
            raise TypeError(
                f"backend_options must be a dict of keyword arguments of the backend, got "
                f"{type(backend_options).__name__}"
            )
        if L is None:
            L = default_band_limit(hierarchy)
        self.bank = FilterBank(L, J0, J, lam)
        self.backend_name = backend
        self.depth = depth
        self.output_level = level_for_band_limit(hierarchy, self.bank.scaling_band_limit)
        self.paths: list[ScatteringPath] = self.bank.paths(depth)
        self.in_nodes = int(hierarchy.num_nodes[0])
        self.out_nodes = int(hierarchy.num_nodes[self.output_level])
        self.fingerprint = hierarchy_fingerprint(hierarchy)
        self.backend_options = dict(backend_options)
        self.backend = cls(hierarchy, self.bank, depth, self.output_level,
                           **self.backend_options)

    # --------------------------------------------------------------- properties
    @property
    def L(self) -> int:  # noqa: N802 - the band limit's usual symbol
        """Band limit of the filter bank."""
        return self.bank.L

    @property
    def J0(self) -> int:  # noqa: N802
        return self.bank.J0

    @property
    def J(self) -> int:  # noqa: N802
        assert self.bank.J is not None
        return self.bank.J

    @property
    def lam(self) -> float:
        return self.bank.lam

    @property
    def num_paths(self) -> int:
        """Number of scattering paths ``P`` (output channels per input channel)."""
        return len(self.paths)

    @property
    def hierarchy_hash(self) -> str:
        """First 12 hex digits of the SHA-256 of :attr:`fingerprint`."""
        return _short_hash(self.fingerprint)

    def out_shape(self, in_channels: int) -> tuple[int, int]:
        """Per-map output shape ``(N_out, in_channels * P)``."""
        if isinstance(in_channels, bool) or not isinstance(in_channels, numbers.Integral) \
                or in_channels < 1:
            raise ValueError(f"in_channels must be a positive integer, got {in_channels!r}")
        return self.out_nodes, int(in_channels) * self.num_paths

    def meta(self, in_channels: int = 1) -> list[dict[str, Any]]:
        """What each output channel holds (in the style of kymatio's ``meta()``).

        Returns:
            One dict per output channel ``c * P + p``: ``channel`` (that index),
            ``in_channel`` (``c``), ``path`` (``p``), ``order`` (0 to ``depth``),
            ``scales`` (tuple ``(j1, ...)``), ``j1``, ``j2`` and, at depth 3, ``j3``
            (``None`` where the path is shorter).
        """
        _, total = self.out_shape(in_channels)
        names = [f"j{i + 1}" for i in range(max(2, self.depth))]
        out = []
        for channel in range(total):
            c, p = divmod(channel, self.num_paths)
            path = self.paths[p]
            entry: dict[str, Any] = {"channel": channel, "in_channel": c, "path": p,
                                     "order": path.order, "scales": path.scales}
            for i, name in enumerate(names):
                entry[name] = path.scales[i] if i < len(path.scales) else None
            out.append(entry)
        return out

    def config(self) -> dict[str, Any]:
        """Every setting that changes the output, JSON-serialisable (a cache key).

        Holds the backend, the filter bank (``L``, ``J0``, ``J``, ``lam``), ``depth``,
        ``output_level``, node counts, the hierarchy's :func:`hierarchy_fingerprint`, the
        backend's own ``config()`` (if it has one) and the library version.
        """
        backend_config = getattr(self.backend, "config", None)
        return {
            "transform": type(self).__name__,
            "backend": self.backend_name,
            "L": self.L,
            "J0": self.J0,
            "J": self.J,
            "lam": self.lam,
            "depth": self.depth,
            "num_paths": self.num_paths,
            "output_level": self.output_level,
            "in_nodes": self.in_nodes,
            "out_nodes": self.out_nodes,
            "hierarchy": dict(self.fingerprint),
            "backend_config": dict(backend_config()) if callable(backend_config) else {},
            "version": __version__,
        }

    # ------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scattering coefficients of ``x`` (see the class docstring for shapes)."""
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() not in (2, 3):
            raise ValueError(
                f"x must have shape [B, N, C] or [N, C], got {list(x.shape)}; a "
                "single-channel map [N] needs x.unsqueeze(-1)"
            )
        single = x.dim() == 2
        if single:
            x = x.unsqueeze(0)
        check_maps(x, self.in_nodes)
        batch, _, channels = x.shape
        out = self.backend(x)
        expected = (batch, self.out_nodes, channels, self.num_paths)
        if tuple(out.shape) != expected:
            raise RuntimeError(
                f"the {self.backend_name!r} backend returned shape {list(out.shape)}, "
                f"expected {list(expected)}"
            )
        out = out.reshape(batch, self.out_nodes, channels * self.num_paths)
        return out[0] if single else out

    def __repr__(self) -> str:
        options = f", backend_options={self.backend_options!r}" if self.backend_options else ""
        return (
            f"{type(self).__name__}(backend={self.backend_name!r}, J0={self.J0}, J={self.J}, "
            f"depth={self.depth}, L={self.L}, lam={self.lam!r}, num_paths={self.num_paths}, "
            f"output_level={self.output_level}{options})"
        )
