"""ScatteringDeepSphere: trainable DeepSphere layers on fixed scattering coefficients."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import Tensor
from torch_geometric.data import Data

from ..graphs.hierarchy import SphereHierarchy
from ..graphs.hierarchy_data import HierarchyLevel
from ..scattering.module import SphericalScattering
from .base import HierarchyBuffers, SphereModel, check_hierarchy
from .blocks import check_int
from .deepsphere import DeepSphere

__all__ = ["NORMALIZATIONS", "ScatteringDeepSphere", "sub_hierarchy"]

#: Coefficient normalisations: name -> (applies the log, applies the standardisation).
NORMALIZATIONS: dict[str | None, tuple[bool, bool]] = {
    None: (False, False),
    "log": (True, False),
    "standard": (False, True),
    "log-standard": (True, True),
}


def sub_hierarchy(hierarchy: SphereHierarchy, first_level: int) -> SphereHierarchy:
    """Levels ``first_level, ...`` of ``hierarchy`` (tensors shared, not copied)."""
    hierarchy = check_hierarchy(hierarchy)
    if not 0 <= first_level < len(hierarchy):
        raise ValueError(f"first_level must be in [0, {len(hierarchy) - 1}], got "
                         f"{first_level}")
    return SphereHierarchy(hierarchy.graphs[first_level:], hierarchy.pool_index[first_level:],
                           hierarchy.coverage[first_level:])


class ScatteringDeepSphere(SphereModel):
    r"""Scattering hybrid: a fixed wavelet scattering front-end, then DeepSphere layers.

    The scattering transform (:class:`~deepsphere_pyg.scattering.SphericalScattering`)
    has no trainable parameters and returns its coefficients
    :math:`S \in \mathbb R^{N_\mathrm{out} \times C P}` on the coarse hierarchy level
    ``scattering.output_level``. The intended use is to compute them once for a data set
    (:func:`~deepsphere_pyg.scattering.precompute`, read back with
    :class:`~deepsphere_pyg.scattering.CachedCoefficients`) and to train this model on
    the cached coefficients. Architecture::

        S [B, N_l, C*P]  (level l = input_level)
          -> normalise (fixed function and/or fitted per-channel statistics)
          -> DeepSphere(levels l, l+1, ...; channels, K, pool, head) -> [B, out_channels]

    The trainable part is a :class:`DeepSphere` (attribute ``backbone``) on the
    sub-hierarchy ``SphereHierarchy(graphs[l:], pool_index[l:], coverage[l:])``.

    **Normalisation** of each coefficient :math:`s` (``normalize``):

    * ``"log"`` (default): :math:`\operatorname{sign}(s)\,\log(1 + |s| / \varepsilon)`,
      i.e. :math:`\log(1 + s/\varepsilon)` for the non-negative coefficients of order
      :math:`\ge 1` (the sign keeps order-0 coefficients, smoothed maps, odd). Scattering
      coefficients span decades between orders and scales; the log compresses that range
      and is linear below :math:`\varepsilon` (``eps``: the smallest magnitude that
      matters in the data's units).
    * ``"standard"``: :math:`(s - \mu_c) / \sigma_c` per channel ``c``, with
      :math:`\mu_c, \sigma_c` the mean and standard deviation over all samples and nodes,
      fitted by :meth:`fit_normalization` and stored as (persistent) buffers
      ``norm_mean`` / ``norm_std``, so they travel with checkpoints.
    * ``"log-standard"``: the log, then the standardisation (fitted on logged values).
    * ``None``: coefficients as they are.

    **Raw maps.** Given ``scattering``, ``forward`` also accepts the maps themselves
    (``[B, N_0, C]`` on level 0) and computes the coefficients without gradient first;
    inputs are told apart by their shape (coefficients ``[B, N_l, in_channels]``, maps
    ``[B, N_0, in_channels / P]``). Convenient for inference, but recomputing the
    transform at every step is what the cache avoids.

    Args:
        hierarchy: the full hierarchy (level 0 = resolution of the maps).
        in_channels: coefficient channels ``C * P`` (``scattering.out_shape(C)[1]``).
        out_channels: outputs per sample.
        scattering: the front-end that produced (or will compute) the coefficients; sets
            ``input_level = scattering.output_level``. Must be built on ``hierarchy``.
        input_level: hierarchy level of the coefficients when ``scattering`` is not given.
        channels: DeepSphere block widths (default ``(32, 64)``); needs
            ``len(channels) <= len(hierarchy) - input_level``.
        K: Chebyshev terms per convolution (default 5).
        pool, head, statistic, norm, dropout, levels: as in :class:`DeepSphere`
            (``levels`` counted from ``input_level``).
        normalize: ``"log"`` (default), ``"standard"``, ``"log-standard"`` or ``None``.
        eps: scale :math:`\varepsilon > 0` of the log (default ``1e-3``).

    Raises:
        TypeError: ``hierarchy`` or ``scattering`` of the wrong type.
        ValueError: neither or conflicting ``scattering``/``input_level``, a scattering
            built on another hierarchy, ``in_channels`` not a multiple of the number of
            paths, bad ``normalize``/``eps``, or any :class:`DeepSphere` argument error.

    Shapes:
        - **input:** coefficients ``[B, N_l, in_channels]`` (``[N_l, in_channels]``: one
          sample) or, with ``scattering``, maps ``[B, N_0, in_channels / P]``; or
          coefficients ``[sum N_l, in_channels]`` with the HierarchyData batch of the
          *full* hierarchies of their samples (``model(s, batch)``; levels from
          ``input_level`` are used).
        - **output:** ``[B, out_channels]``.
    """

    def __init__(
        self,
        hierarchy: SphereHierarchy,
        in_channels: int,
        out_channels: int,
        *,
        scattering: SphericalScattering | None = None,
        input_level: int | None = None,
        channels: Sequence[int] = (32, 64),
        K: int = 5,
        pool: str = "max",
        head: str = "statistic",
        statistic: str = "mean",
        normalize: str | None = "log",
        eps: float = 1e-3,
        norm: str | None = "batch",
        dropout: float = 0.0,
        levels: Sequence[int] | None = None,
    ) -> None:
        super().__init__(hierarchy, in_channels, out_channels)
        if scattering is not None:
            if not isinstance(scattering, SphericalScattering):
                raise TypeError(f"scattering must be a SphericalScattering, got "
                                f"{type(scattering).__name__}")
            _check_same_hierarchy(scattering, hierarchy)
            if input_level is not None and input_level != scattering.output_level:
                raise ValueError(
                    f"input_level={input_level} contradicts scattering.output_level="
                    f"{scattering.output_level}; drop input_level"
                )
            input_level = scattering.output_level
            if in_channels % scattering.num_paths:
                raise ValueError(
                    f"in_channels={in_channels} must be the coefficient channels C * P, a "
                    f"multiple of the scattering's P={scattering.num_paths} paths "
                    f"(scattering.out_shape(C)[1])"
                )
        elif input_level is None:
            raise ValueError(
                "pass scattering= (the front-end) or input_level= (the hierarchy level the "
                "coefficients live on, scattering.output_level)"
            )
        input_level = check_int(input_level, "input_level", 0)
        if input_level >= len(hierarchy):
            raise ValueError(f"input_level must be in [0, {len(hierarchy) - 1}], got "
                             f"{input_level}")
        if normalize not in NORMALIZATIONS:
            raise ValueError(f"normalize must be one of {list(NORMALIZATIONS)}, got "
                             f"{normalize!r}")
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps > 0 \
                or not math.isfinite(eps):
            raise ValueError(f"eps must be a positive float, got {eps!r}")
        self.input_level = input_level
        self.normalize = normalize
        self.eps = float(eps)
        self.scattering = scattering
        sub = sub_hierarchy(hierarchy, input_level)
        try:
            self.backbone = DeepSphere(
                sub, in_channels, out_channels, channels=channels, K=K, pool=pool,
                head=head, statistic=statistic, norm=norm, dropout=dropout,
                levels=levels)
        except ValueError as error:
            hint = "" if scattering is None else (
                f" (the coefficients live on scattering.output_level={input_level}; a larger "
                "J0 keeps them on a finer level)")
            raise ValueError(f"on the levels {input_level}.. of the hierarchy{hint}: "
                             f"{error}") from error
        # Fitted statistics are model state (they travel with checkpoints).
        self.register_buffer("norm_mean", torch.zeros(in_channels))
        self.register_buffer("norm_std", torch.ones(in_channels))
        self.register_buffer("norm_fitted", torch.tensor(False))

    # ---------------------------------------------------------------- interface
    @property
    def input_nodes(self) -> int:
        """Node count of the coefficients (level ``input_level``)."""
        return self.backbone.graph.num_nodes[0]

    def reset_parameters(self) -> None:
        """Re-initialise the trainable layers (fitted normalisation statistics are kept)."""
        self.backbone.reset_parameters()

    def extra_repr(self) -> str:
        return self.describe(input_level=self.input_level, normalize=self.normalize,
                             eps=self.eps)

    # ------------------------------------------------------------ normalisation
    def normalize_coefficients(self, s: Tensor) -> Tensor:
        """Apply the normalisation of ``normalize`` to coefficients ``[..., in_channels]``."""
        use_log, standardise = NORMALIZATIONS[self.normalize]
        if use_log:
            s = torch.sign(s) * torch.log1p(s.abs() / self.eps)
        if standardise:
            if not bool(self.norm_fitted):
                raise RuntimeError(
                    f"normalize={self.normalize!r} needs per-channel statistics: call "
                    "fit_normalization(training coefficients) first"
                )
            s = (s - self.norm_mean.to(s.dtype)) / self.norm_std.to(s.dtype)
        return s

    @torch.no_grad()
    def fit_normalization(self, source: Tensor | Iterable[Any]) -> ScatteringDeepSphere:
        """Fit ``norm_mean`` / ``norm_std`` (per channel, over samples and nodes).

        Args:
            source: coefficients ``[M, N_l, in_channels]`` or ``[N_l, in_channels]``, or an
                iterable of batches (a ``DataLoader``): tensors, ``(x, y)`` tuples or
                ``Data`` objects with ``x``. With ``scattering``, raw maps are accepted and
                transformed. For ``"log-standard"`` the statistics are those of the logged
                coefficients. A zero standard deviation is replaced by 1.

        Returns:
            ``self``.

        Raises:
            ValueError: ``normalize`` has no statistics, no data, non-finite values, or
                tensors of the wrong shape.
        """
        use_log, standardise = NORMALIZATIONS[self.normalize]
        if not standardise:
            raise ValueError(
                f"normalize={self.normalize!r} has no fitted statistics; use 'standard' or "
                "'log-standard'"
            )
        batches = [source] if isinstance(source, Tensor) else source
        count = 0
        mean = torch.zeros(self.in_channels, dtype=torch.float64)
        m2 = torch.zeros(self.in_channels, dtype=torch.float64)
        for item in batches:
            x = _batch_tensor(item)
            x = self._coefficients(x)[0]
            if use_log:
                x = torch.sign(x) * torch.log1p(x.abs() / self.eps)
            values = x.detach().reshape(-1, self.in_channels).to("cpu", torch.float64)
            if not bool(torch.isfinite(values).all()):
                raise ValueError("fit_normalization got non-finite coefficients (NaN or inf)")
            n = values.shape[0]
            if not n:
                continue
            batch_mean = values.mean(0)
            batch_m2 = (values - batch_mean).square().sum(0)
            delta = batch_mean - mean
            total = count + n
            mean += delta * (n / total)
            m2 += batch_m2 + delta.square() * (count * n / total)
            count = total
        if not count:
            raise ValueError("fit_normalization got no data")
        std = (m2 / count).sqrt()
        std[std == 0] = 1.0
        self.norm_mean.copy_(mean.to(self.norm_mean))
        self.norm_std.copy_(std.to(self.norm_std))
        self.norm_fitted.fill_(True)
        return self

    # ------------------------------------------------------------------ forward
    def _coefficients(self, x: Tensor) -> tuple[Tensor, bool]:
        """``x`` as coefficients ``[B, N_l, C_in]`` (maps transformed); and whether it was
        2-D."""
        if not isinstance(x, Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() not in (2, 3):
            raise ValueError(f"x must be [B, N, C] or [N, C], got shape {tuple(x.shape)}")
        single = x.dim() == 2
        if single:
            x = x.unsqueeze(0)
        nodes, features = x.shape[1], x.shape[2]
        if nodes == self.input_nodes and features == self.in_channels:
            return x, single
        scattering = self.scattering
        if scattering is not None and nodes == scattering.in_nodes \
                and features * scattering.num_paths == self.in_channels:
            with torch.no_grad():
                return scattering(x), single
        expected = f"coefficients [B, {self.input_nodes}, {self.in_channels}] (level " \
                   f"{self.input_level})"
        if scattering is not None:
            expected += (f" or maps [B, {scattering.in_nodes}, "
                         f"{self.in_channels // scattering.num_paths}] (level 0)")
        raise ValueError(f"x has shape {tuple(x.shape)}; expected {expected}")

    @property
    def graph(self) -> HierarchyBuffers:
        """The backbone's graphs: levels ``input_level, ...`` of the hierarchy."""
        return self.backbone.graph

    def shared_input(self, x: Any) -> tuple[Tensor, bool]:
        """Coefficients ``[B, N_l, C_in]`` of ``x`` (raw maps transformed first), and
        whether ``x`` was 2-D."""
        return self._coefficients(x)

    def forward_levels(self, x: Tensor, levels: Sequence[HierarchyLevel],
                       num_graphs: int | None = None) -> Tensor:
        """Outputs ``[B, out_channels]`` for coefficients ``x`` on resolved levels
        (``levels[0]`` is level ``input_level``): normalised, then the backbone.

        Raises:
            RuntimeError: a standardising ``normalize`` before :meth:`fit_normalization`.
        """
        return self.backbone.forward_levels(self.normalize_coefficients(x), levels,
                                            num_graphs)


def _batch_tensor(item: Any) -> Tensor:
    if isinstance(item, Tensor):
        return item
    if isinstance(item, Data):
        return item.x
    if isinstance(item, (tuple, list)) and item and isinstance(item[0], Tensor):
        return item[0]
    raise ValueError(
        f"fit_normalization takes tensors, (x, y) tuples or Data batches, got "
        f"{type(item).__name__}"
    )


def _check_same_hierarchy(scattering: SphericalScattering, hierarchy: SphereHierarchy) -> None:
    """Cheap compatibility check: node counts (and sampling, nside) of every level."""
    fingerprint = scattering.fingerprint
    graph = hierarchy[0]
    nsides = [int(g.nside) if "nside" in g else None for g in hierarchy.graphs]
    ours = {"sampling": getattr(graph, "sampling", None), "num_nodes": hierarchy.num_nodes,
            "nside": nsides}
    theirs = {key: fingerprint.get(key) for key in ours}
    if ours != theirs:
        raise ValueError(
            f"scattering was built on another hierarchy ({theirs}) than the model's "
            f"({ours}); build both from the same SphereHierarchy"
        )
