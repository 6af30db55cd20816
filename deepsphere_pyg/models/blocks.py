r"""Pieces shared by the ready models: graph buffers, convolution blocks, node statistics.

All models of :mod:`deepsphere_pyg.models` convolve with the **symmetric normalised**
Laplacian :math:`L = I - D^{-1/2} W D^{-1/2}` rescaled with :math:`\lambda_\max = 2`,
i.e. the Chebyshev operator is :math:`\hat L = L - I`. The spectrum of this Laplacian lies
in :math:`[0, 2]` for *every* graph, so the bound needs no eigen-solver, is the same for
every level, sampling and sample, and a disjoint batch of different graphs uses exactly
the operator of each graph alone (a combinatorial Laplacian would need a per-graph
:math:`\lambda_\max`). The normalisation also removes the overall scale of the edge
weights, which differs between samplings, levels and kernel widths, so one set of filter
coefficients means the same thing across them. On HEALPix, where degrees are nearly
constant, it differs from DeepSphere's combinatorial Laplacian by close to a scalar
factor, which the learned polynomial absorbs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch_geometric.data import Batch, Data
from torch_geometric.utils import scatter

from ..graphs.hierarchy import SphereHierarchy
from ..graphs.hierarchy_data import HierarchyData, HierarchyLevel
from ..nn import SphericalChebConv

__all__ = [
    "LAMBDA_MAX",
    "NORMALIZATION",
    "POOL_MODES",
    "STATISTICS",
    "NORMS",
    "ConvBlock",
    "HierarchyBuffers",
    "SampleLayerNorm",
    "check_norm",
    "constant_buffer_names",
    "disjoint_levels",
    "node_statistic",
]

#: Laplacian normalisation of every convolution of the models, and its spectral bound.
NORMALIZATION = "sym"
LAMBDA_MAX = 2.0

#: Pooling names accepted by the models -> :class:`~deepsphere_pyg.nn.SpherePool` modes.
POOL_MODES = {"max": "max", "mean": "avg", "average": "avg", "avg": "avg"}

#: Global statistics over nodes and the number of features each yields per channel.
STATISTICS = {"mean": 1, "max": 1, "var": 1, "meanvar": 2}

#: Normalisations after each convolution (the models' ``norm`` argument; ``None`` is
#: ``"none"``): see :class:`ConvBlock`.
NORMS = ("batch", "layer", "none")


def check_int(value: Any, name: str, minimum: int = 1) -> int:
    """``value`` as an int ``>= minimum`` (bools refused)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def check_channels(channels: Any) -> tuple[int, ...]:
    """A non-empty sequence of positive ints (the width of each convolution block)."""
    if isinstance(channels, int) or not isinstance(channels, Sequence) or not channels:
        raise ValueError(
            f"channels must be a non-empty sequence of positive ints (one per block), "
            f"got {channels!r}"
        )
    return tuple(check_int(c, "every entry of channels") for c in channels)


def check_pool(pool: Any) -> str:
    """The :class:`~deepsphere_pyg.nn.SpherePool` mode of a model's ``pool`` argument."""
    if pool not in POOL_MODES:
        raise ValueError(f"pool must be one of {sorted(POOL_MODES)}, got {pool!r}")
    return POOL_MODES[pool]


def check_hierarchy(hierarchy: Any) -> SphereHierarchy:
    if not isinstance(hierarchy, SphereHierarchy):
        raise TypeError(
            f"hierarchy must be a SphereHierarchy, got {type(hierarchy).__name__}; build one "
            "with e.g. SphereHierarchy.healpix(nside, levels)"
        )
    return hierarchy


# ------------------------------------------------------------------------ graph buffers
class HierarchyBuffers(nn.Module):
    r"""The tensors of a :class:`~deepsphere_pyg.graphs.SphereHierarchy` as buffers.

    Level ``l`` is held as ``edge_index_{l}``, ``edge_weight_{l}``, ``coverage_{l}`` and
    (except at the coarsest level) ``pool_index_{l}``, all registered with
    ``persistent=False``: ``.to(device)`` moves them, ``state_dict`` never holds them.
    The tensors are shared with the hierarchy, not copied.

    Args:
        hierarchy: the graphs, finest first.
        num_levels: keep the first ``num_levels`` levels (default: all).
    """

    def __init__(self, hierarchy: SphereHierarchy, num_levels: int | None = None) -> None:
        super().__init__()
        hierarchy = check_hierarchy(hierarchy)
        if num_levels is None:
            num_levels = len(hierarchy)
        if not 1 <= num_levels <= len(hierarchy):
            raise ValueError(f"num_levels must be in [1, {len(hierarchy)}], got {num_levels}")
        graph = hierarchy[0]
        self.sampling = str(graph.sampling) if "sampling" in graph else "sphere"
        self.num_nodes = tuple(hierarchy.num_nodes[:num_levels])
        for level in range(num_levels):
            graph = hierarchy[level]
            self.register_buffer(f"edge_index_{level}", graph.edge_index, persistent=False)
            weight = graph.edge_weight if "edge_weight" in graph else None
            self.register_buffer(f"edge_weight_{level}", weight, persistent=False)
            self.register_buffer(f"coverage_{level}", hierarchy.coverage[level],
                                 persistent=False)
            if level + 1 < num_levels:
                self.register_buffer(f"pool_index_{level}", hierarchy.pool_index[level],
                                     persistent=False)

    @property
    def num_levels(self) -> int:
        return len(self.num_nodes)

    def level(self, level: int) -> HierarchyLevel:
        """The tensors of ``level`` (``batch`` is ``None``: one graph shared by the batch)."""
        has_parent = level + 1 < self.num_levels
        return HierarchyLevel(
            edge_index=getattr(self, f"edge_index_{level}"),
            edge_weight=getattr(self, f"edge_weight_{level}"),
            pos=None,
            batch=None,  # type: ignore[arg-type]
            num_nodes=self.num_nodes[level],
            pool_index=getattr(self, f"pool_index_{level}") if has_parent else None,
            coverage=getattr(self, f"coverage_{level}"),
        )

    def levels(self) -> list[HierarchyLevel]:
        return [self.level(level) for level in range(self.num_levels)]

    def extra_repr(self) -> str:
        return f"sampling={self.sampling!r}, num_nodes={list(self.num_nodes)}"


def constant_buffer_names(module: nn.Module) -> list[str]:
    """Qualified names of every non-persistent buffer of ``module`` and its children.

    In this library non-persistent buffers are precomputed constants (graphs, filters):
    identical on every process, so :class:`torch.nn.parallel.DistributedDataParallel`
    need not broadcast them at every step. The models expose this list as
    ``_ddp_params_and_buffers_to_ignore``, the attribute DDP reads on the module it wraps.
    """
    names = []
    for prefix, child in module.named_modules():
        for name in sorted(child._non_persistent_buffers_set):
            if getattr(child, name, None) is not None:
                names.append(f"{prefix}.{name}" if prefix else name)
    return names


class ModelMixin:
    """``num_parameters`` and the DDP ignore list, shared by the models."""

    @property
    def num_parameters(self) -> int:
        """Number of trainable scalars (all parameters of the model)."""
        return sum(p.numel() for p in self.parameters())  # type: ignore[attr-defined]

    @property
    def _ddp_params_and_buffers_to_ignore(self) -> list[str]:
        """Names DDP leaves alone: the constant (graph) buffers, plus any names set."""
        extra = self.__dict__.get("_ddp_extra_ignore", [])
        return [*constant_buffer_names(self), *extra]  # type: ignore[arg-type]

    @_ddp_params_and_buffers_to_ignore.setter
    def _ddp_params_and_buffers_to_ignore(self, names: Sequence[str]) -> None:
        self.__dict__["_ddp_extra_ignore"] = list(names)


# ----------------------------------------------------------------------- conv block
def check_norm(norm: Any) -> str:
    """The normalisation name of a model's ``norm`` argument (``None`` -> ``"none"``)."""
    if norm is None:
        return "none"
    if isinstance(norm, str) and norm in NORMS:
        return norm
    hint = ""
    if isinstance(norm, bool):
        hint = f" (the former batch_norm={norm} is norm={'batch' if norm else None!r})"
    raise ValueError(f"norm must be one of {list(NORMS)} or None, got {norm!r}{hint}")


class SampleLayerNorm(nn.Module):
    r"""Layer normalisation of each sample over all its nodes and channels.

    For the node features :math:`h_{ic}` of one sample (nodes :math:`i = 1 \dots N`,
    channels :math:`c = 1 \dots C`):

    .. math::
        \mu = \frac{1}{NC} \sum_{i,c} h_{ic}, \qquad
        \sigma^2 = \frac{1}{NC} \sum_{i,c} (h_{ic} - \mu)^2, \qquad
        y_{ic} = \gamma_c \frac{h_{ic} - \mu}{\sqrt{\sigma^2 + \varepsilon}} + \beta_c,

    i.e. :class:`torch.nn.GroupNorm` with one group (PyG's ``LayerNorm(mode="graph")``)
    with a per-channel affine map. The statistics are those of the sample alone: the same
    in training and evaluation, and a sample's output never depends on the rest of its
    batch. It also divides out the overall amplitude of the sample, so after a
    convolution of a one-channel map it discards that map's variance (see
    :class:`ConvBlock`).

    Args:
        channels: :math:`C`.
        eps: :math:`\varepsilon` (default ``1e-5``).

    Shapes:
        - **input:** ``[B, N, C]`` (one graph for the batch), ``[N, C]`` (one graph), or
          ``[M, C]`` with ``batch [M]`` (a disjoint batch: statistics per graph).
        - **output:** the shape of the input.
    """

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.channels = check_int(channels, "channels")
        self.eps = float(eps)
        self.weight = nn.Parameter(torch.empty(channels))
        self.bias = nn.Parameter(torch.empty(channels))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.ones_(self.weight)
        nn.init.zeros_(self.bias)

    def forward(self, h: Tensor, batch: Tensor | None = None,
                num_graphs: int | None = None) -> Tensor:
        if h.dim() == 3 or batch is None:
            dims = (-2, -1)
            mean = h.mean(dim=dims, keepdim=True)
            var = (h - mean).square().mean(dim=dims, keepdim=True)
            return (h - mean) * torch.rsqrt(var + self.eps) * self.weight + self.bias
        if num_graphs is None:
            num_graphs = int(batch.max()) + 1 if batch.numel() else 0
        count = scatter(torch.ones_like(batch, dtype=h.dtype), batch, dim=0,
                        dim_size=num_graphs, reduce="sum").clamp_(min=1) * h.shape[-1]
        mean = scatter(h.sum(dim=-1), batch, dim=0, dim_size=num_graphs,
                       reduce="sum") / count
        centred = h - mean[batch].unsqueeze(-1)
        var = scatter(centred.square().sum(dim=-1), batch, dim=0, dim_size=num_graphs,
                      reduce="sum") / count
        return centred * torch.rsqrt(var + self.eps)[batch].unsqueeze(-1) * self.weight \
            + self.bias

    def extra_repr(self) -> str:
        return f"{self.channels}, eps={self.eps}"


class ConvBlock(nn.Module):
    r"""Chebyshev convolution, optional normalisation, ReLU:
    :math:`\mathbf{h} = \mathrm{ReLU}(\mathrm{Norm}(\sum_{k<K} T_k(\hat L)\,\mathbf{x}\,
    \Theta_k))`.

    ``norm`` chooses :math:`\mathrm{Norm}`:

    * ``"batch"`` (default): :class:`torch.nn.BatchNorm1d` per channel, its statistics
      pooled over every node of every sample of the batch in training, the running
      averages (momentum 0.1) in evaluation.
    * ``"layer"``: :class:`SampleLayerNorm`, statistics over the nodes and channels of
      each sample alone (no running averages; identical in training and evaluation).
    * ``"none"`` (or ``None``): no normalisation; the convolution has a bias.

    The convolution has no bias when a normalisation follows (its shift absorbs it).

    **Which one.** Batch normalisation trains best (on the cosmology, CMB and
    segmentation data sets of :mod:`deepsphere_pyg.data`), but evaluation uses running
    averages that lag the weights. Where the label is a small change of the maps'
    statistics (cosmology patches: variances about 10 % apart between the labels),
    averages a few percent off push every sample to one side of the decision boundary:
    accuracy in evaluation mode falls to chance while training-mode accuracy looks fine.
    Anneal the learning rate to zero at the end of training (one-cycle or cosine) so the
    averages settle, or recompute them with the final weights
    (:func:`torch.optim.swa_utils.update_bn` over the training loader); and feed inputs
    of order one (:class:`~deepsphere_pyg.data.transforms.Normalize` with the training
    set's mean and standard deviation): a first-layer variance below BatchNorm's
    ``eps = 1e-5`` is not normalised, and the running variance starts at 1 and shrinks by
    a factor 0.9 per step, i.e. needs about 130 steps to come down to 1e-6.
    ``"layer"`` has no train/evaluation gap and matches batch normalisation on
    segmentation, but right after the first convolution of a one-channel map it divides
    out the sample's amplitude (a per-sample variance signal), and it trained far worse
    on map classification. ``"none"`` trains more slowly.

    Args:
        in_channels: input features per node.
        out_channels: output features per node.
        K: Chebyshev terms of the convolution.
        norm: ``"batch"`` (default), ``"layer"``, ``"none"`` or ``None``.

    Raises:
        ValueError: an unknown ``norm``.

    Shapes:
        - **input:** ``[B, N, F_in]`` (one graph for the batch) or ``[N, F_in]`` (one
          graph or a disjoint batch, with ``batch [N]`` for ``"layer"``),
          ``edge_index [2, E]``, ``edge_weight [E]``.
        - **output:** ``[B, N, F_out]`` or ``[N, F_out]``.
    """

    def __init__(self, in_channels: int, out_channels: int, K: int, norm: str | None = "batch"
                 ) -> None:
        super().__init__()
        self.norm_name = check_norm(norm)
        self.conv = SphericalChebConv(in_channels, out_channels, K,
                                      normalization=NORMALIZATION,
                                      bias=self.norm_name == "none")
        self.norm: nn.Module | None
        if self.norm_name == "batch":
            self.norm = nn.BatchNorm1d(out_channels)
        elif self.norm_name == "layer":
            self.norm = SampleLayerNorm(out_channels)
        else:
            self.norm = None

    def reset_parameters(self) -> None:
        self.conv.reset_parameters()
        if self.norm is not None:
            self.norm.reset_parameters()

    def forward(self, x: Tensor, edge_index: Tensor, edge_weight: Tensor | None,
                batch: Tensor | None = None) -> Tensor:
        """``batch`` (``[N]`` graph ids of a disjoint batch) matters to ``"layer"`` only."""
        h = self.conv(x, edge_index, edge_weight, lambda_max=LAMBDA_MAX)
        if self.norm_name == "batch":
            if h.dim() == 3:
                # The convolution returns a [N, B, F] buffer seen as [B, N, F]: normalise it
                # as [N * B, F] without a copy, and give back the same view.
                size, nodes, features = h.shape
                flat = self.norm(h.transpose(0, 1).reshape(nodes * size, features))
                h = flat.view(nodes, size, features).transpose(0, 1)
            else:
                h = self.norm(h)
        elif self.norm_name == "layer":
            h = self.norm(h, batch)
        return torch.relu_(h) if self.norm is not None else torch.relu(h)


# ----------------------------------------------------------------------- statistics
def node_statistic(
    x: Tensor,
    statistic: str,
    *,
    batch: Tensor | None = None,
    num_graphs: int | None = None,
    weight: Tensor | None = None,
) -> Tensor:
    r"""Global statistic of node features per sample, optionally area-weighted.

    With weights :math:`w_i` (the observed fraction ``coverage`` of each node; 1 on a
    full sphere), per sample and channel:

    .. math::
        \mu = \frac{\sum_i w_i x_i}{\sum_i w_i}, \qquad
        \sigma^2 = \frac{\sum_i w_i (x_i - \mu)^2}{\sum_i w_i}, \qquad
        m = \max_i x_i,

    ``"meanvar"`` concatenates :math:`[\mu, \sigma^2]` along channels.

    Args:
        x: ``[B, N, C]`` (shared graph) or ``[M, C]`` (disjoint batch, with ``batch``).
        statistic: ``"mean"``, ``"max"``, ``"var"`` or ``"meanvar"``.
        batch: ``[M]`` graph id of every node (disjoint batches).
        num_graphs: number of graphs of a disjoint batch (default ``max(batch) + 1``).
        weight: ``[N]`` or ``[M]`` non-negative node weights (default: all ones).

    Returns:
        ``[B, C]`` (``[B, 2C]`` for ``"meanvar"``).
    """
    if statistic not in STATISTICS:
        raise ValueError(f"statistic must be one of {sorted(STATISTICS)}, got {statistic!r}")
    if batch is None:
        if statistic == "max":
            return x.amax(dim=1)
        if weight is None:
            mean = x.mean(dim=1)
            var = None if statistic == "mean" else (x - mean.unsqueeze(1)).square().mean(1)
        else:
            w = (weight / weight.sum()).to(x.dtype).view(1, -1, 1)
            mean = (x * w).sum(dim=1)
            var = None if statistic == "mean" else \
                ((x - mean.unsqueeze(1)).square() * w).sum(dim=1)
    else:
        if num_graphs is None:
            num_graphs = int(batch.max()) + 1 if batch.numel() else 0
        if statistic == "max":
            return scatter(x, batch, dim=0, dim_size=num_graphs, reduce="max")
        w = (torch.ones(x.shape[0], dtype=x.dtype, device=x.device) if weight is None
             else weight.to(x.dtype)).unsqueeze(1)
        total = scatter(w, batch, dim=0, dim_size=num_graphs, reduce="sum")
        mean = scatter(x * w, batch, dim=0, dim_size=num_graphs, reduce="sum") / total
        var = None if statistic == "mean" else scatter(
            (x - mean[batch]).square() * w, batch, dim=0, dim_size=num_graphs,
            reduce="sum") / total
    if statistic == "mean":
        return mean
    if statistic == "var":
        return var
    return torch.cat([mean, var], dim=-1)


# ---------------------------------------------------------------- input resolution
def check_shared_input(x: Tensor, num_nodes: int, in_channels: int) -> tuple[Tensor, bool]:
    """Check ``x`` against the model's own graph; ``[N, F]`` becomes ``[1, N, F]``.

    Returns ``(x as [B, N, F], whether x was 2-D)``.
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() not in (2, 3):
        raise ValueError(
            f"x must be [B, N, F] (or [N, F], one sample) on the model's graph, got shape "
            f"{tuple(x.shape)}"
        )
    single = x.dim() == 2
    if single:
        x = x.unsqueeze(0)
    if x.shape[1] != num_nodes:
        raise ValueError(
            f"x has {x.shape[1]} nodes (dimension -2) but the model's graph has N="
            f"{num_nodes} nodes; pass signals on that graph (node order of its level 0), "
            "or a HierarchyData batch for per-sample graphs"
        )
    check_features(x, in_channels)
    return x, single


def check_features(x: Tensor, in_channels: int) -> None:
    if x.shape[-1] != in_channels:
        raise ValueError(
            f"x has {x.shape[-1]} features (last dimension) but the model was built with "
            f"in_channels={in_channels}"
        )


def disjoint_levels(
    x: Tensor,
    data: Data | None,
    *,
    edge_index: Tensor | Sequence[Tensor] | None,
    edge_weight: Tensor | Sequence[Tensor | None] | None,
    pool_index: Sequence[Tensor] | None,
    batch: Tensor | Sequence[Tensor] | None,
    coverage: Sequence[Tensor | None] | None,
    num_graphs: int | None,
    num_levels: int,
    first_level: int = 0,
) -> tuple[list[HierarchyLevel], int]:
    """The levels ``first_level .. first_level + num_levels - 1`` of a disjoint batch.

    Either ``data`` (a :class:`~deepsphere_pyg.graphs.HierarchyData` or a batch of them)
    or per-level sequences ``edge_index``, ``edge_weight``, ``pool_index`` (levels
    ``l -> l + 1``), ``batch`` and ``coverage``, finest first, starting at
    ``first_level``. Returns the levels (indexed from 0) and the number of graphs.
    """
    explicit = edge_index is not None
    if data is not None and (explicit or pool_index is not None or batch is not None):
        raise ValueError("pass either data (a HierarchyData batch) or per-level tensors, "
                         "not both")
    if data is not None:
        if not isinstance(data, HierarchyData):
            raise TypeError(
                f"data must be a HierarchyData (or a PyG batch of them) carrying every level "
                f"of the per-sample hierarchies, got {type(data).__name__}"
            )
        needed = first_level + num_levels
        if data.num_levels < needed:
            raise ValueError(
                f"the model needs {needed} levels but data carries {data.num_levels}; build "
                "the samples from deeper hierarchies"
            )
        levels = [data.level(level) for level in range(first_level, needed)]
        if num_graphs is None:
            num_graphs = int(data.num_graphs) if isinstance(data, Batch) else 1
        return levels, num_graphs

    if not explicit:
        raise ValueError("a disjoint batch needs data= (HierarchyData) or edge_index=")
    edge_index = _as_list(edge_index, "edge_index")
    count = len(edge_index)
    edge_weight = [None] * count if edge_weight is None else _as_list(edge_weight,
                                                                     "edge_weight")
    pool_index = [] if pool_index is None else _as_list(pool_index, "pool_index")
    batch_list = None if batch is None else _as_list(batch, "batch")
    coverage = [None] * count if coverage is None else _as_list(coverage, "coverage")
    if count < num_levels:
        raise ValueError(f"the model needs {num_levels} levels but edge_index holds {count}")
    if len(pool_index) < num_levels - 1:
        raise ValueError(
            f"pool_index needs {num_levels - 1} maps (levels l -> l + 1), got {len(pool_index)}"
        )
    for name, values in (("edge_weight", edge_weight), ("coverage", coverage)):
        if len(values) < num_levels:
            raise ValueError(f"{name} needs one entry per level ({num_levels}), got "
                             f"{len(values)}")
    if batch_list is not None and len(batch_list) < num_levels:
        raise ValueError(f"batch needs one vector per level ({num_levels}), got "
                         f"{len(batch_list)}")
    levels = []
    for level in range(num_levels):
        if batch_list is not None:
            nodes = int(batch_list[level].numel())
        elif level < len(pool_index):
            nodes = int(pool_index[level].numel())
        else:
            nodes = int(pool_index[level - 1].max()) + 1 if level else int(x.shape[0])
        level_batch = (batch_list[level] if batch_list is not None
                       else torch.zeros(nodes, dtype=torch.long, device=x.device))
        levels.append(HierarchyLevel(
            edge_index=edge_index[level], edge_weight=edge_weight[level], pos=None,
            batch=level_batch, num_nodes=nodes,
            pool_index=pool_index[level] if level + 1 < num_levels else None,
            coverage=coverage[level]))
    if num_graphs is None:
        num_graphs = 1 if batch_list is None else int(batch_list[0].max()) + 1
    return levels, num_graphs


def _as_list(value: Any, name: str) -> list:
    if isinstance(value, Tensor) or value is None:
        return [value]
    if not isinstance(value, Sequence):
        raise TypeError(f"{name} must be a tensor or a sequence of tensors (one per level), "
                        f"got {type(value).__name__}")
    return list(value)


def check_disjoint_input(x: Tensor, level: HierarchyLevel, in_channels: int) -> None:
    if not isinstance(x, Tensor) or x.dim() != 2:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"x of a disjoint batch must be [sum N, F], got {shape}")
    if x.shape[0] != level.num_nodes:
        raise ValueError(
            f"x has {x.shape[0]} nodes but the batch's graphs have N={level.num_nodes} nodes "
            "at the input level"
        )
    check_features(x, in_channels)


def split_data_argument(x: Any, data: Data | None) -> tuple[Tensor, Data | None]:
    """Accept ``model(batch)`` for a HierarchyData batch or a SphereSignal-style batch."""
    if isinstance(x, Data):
        if data is not None:
            raise ValueError("pass the batch once: model(batch) or model(x, data)")
        batch = x
        if isinstance(batch, HierarchyData):
            return batch.x, batch
        if "edge_index" in batch:
            raise TypeError(
                "a Data batch with its own edge_index needs every level of its graphs: "
                "build the samples with HierarchyData.from_hierarchy"
            )
        return batch.x, None
    return x, data


def route_input(
    x: Any, data: Data | None, *, num_levels: int, first_level: int = 0, **per_level: Any
) -> tuple[Tensor, list[HierarchyLevel] | None, int | None]:
    """Tell the two kinds of input of a model's ``forward`` apart.

    ``x`` may itself be a batch (:func:`split_data_argument`). Without ``data`` and
    ``edge_index``, ``x`` lives on the model's own graph and ``(x, None, None)`` is
    returned. Otherwise it is a disjoint batch and ``(x, levels, num_graphs)`` is returned,
    ``levels`` being the ``num_levels`` levels from :func:`disjoint_levels` (those from
    ``first_level`` of ``data``'s hierarchies, or the per-level tensors as given). ``x``
    itself is checked by the caller.

    Args:
        x, data: the first two arguments of the model's ``forward``.
        num_levels, first_level: as in :func:`disjoint_levels`.
        **per_level: ``edge_index``, ``edge_weight``, ``pool_index``, ``batch``,
            ``coverage`` and ``num_graphs``, the keyword arguments of
            :func:`disjoint_levels` (all of them, ``None`` where not given).

    Raises:
        ValueError: ``pool_index`` or ``batch`` without ``edge_index`` (or ``data``), and
            the errors of :func:`split_data_argument` and :func:`disjoint_levels`.
    """
    x, data = split_data_argument(x, data)
    if data is None and per_level["edge_index"] is None:
        if per_level["pool_index"] is not None or per_level["batch"] is not None:
            raise ValueError("pool_index/batch describe a disjoint batch: pass "
                             "edge_index (one per level) too")
        return x, None, None
    levels, num_graphs = disjoint_levels(x, data, num_levels=num_levels,
                                         first_level=first_level, **per_level)
    return x, levels, num_graphs
