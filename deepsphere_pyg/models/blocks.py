r"""Pieces shared by the ready models: argument checks, convolution blocks, node statistics.

By default (``normalization="sym"``) the models of :mod:`deepsphere_pyg.models` convolve
with the **symmetric normalised** Laplacian :math:`L = I - D^{-1/2} W D^{-1/2}` rescaled
with :math:`\lambda_\max = 2`, i.e. the Chebyshev operator is :math:`\hat L = L - I`.
The spectrum of this Laplacian lies in :math:`[0, 2]` for *every* graph, so the bound
needs no eigen-solver, is the same for every level, sampling and sample, and a disjoint
batch of different graphs uses exactly the operator of each graph alone (a combinatorial
Laplacian would need a per-graph :math:`\lambda_\max`). The normalisation also removes
the overall scale of the edge weights, which differs between samplings, levels and
kernel widths, so one set of filter coefficients means the same thing across them. On
HEALPix, where degrees are nearly constant, it differs from DeepSphere's combinatorial
Laplacian by close to a scalar factor, which the learned polynomial absorbs.

With ``normalization="mass"`` (:data:`MODEL_NORMALIZATIONS`) they convolve with the
area-aware mass Laplacian :math:`M^{-1} L_m` of the node masses
:math:`M = \mathrm{diag}(m)` (each level's ``node_weight``;
:mod:`deepsphere_pyg.graphs.operator`), applied on node values as
:math:`M^{-1/2} g(\hat S) M^{1/2}` with :math:`\hat S = 2 S / \lambda_\max - I` and
:math:`\lambda_\max = 2 \max_i \sum_j m_j w_{ij}` (Gershgorin's bound, per level; the
``lambda_max=None`` default of :class:`~deepsphere_pyg.nn.SphericalChebConv` for
``"mass"``). Its spectrum then lies in :math:`[0, \lambda_\max]` and
:math:`\hat S` does not depend on the overall scale of the masses or weights. On a
disjoint batch of per-sample graphs the bound is the largest over the batch's nodes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch_geometric.utils import scatter

from ..nn import SphericalChebConv

__all__ = [
    "LAMBDA_MAX",
    "MODEL_NORMALIZATIONS",
    "NORMALIZATION",
    "POOL_MODES",
    "STATISTICS",
    "NORMS",
    "ConvBlock",
    "SampleLayerNorm",
    "check_channels",
    "check_int",
    "check_norm",
    "check_normalization",
    "check_pool",
    "lambda_max_of",
    "node_statistic",
]

#: Default Laplacian normalisation of the models' convolutions, and its spectral bound.
NORMALIZATION = "sym"
LAMBDA_MAX = 2.0

#: Laplacian normalisations a model accepts (its ``normalization`` argument).
MODEL_NORMALIZATIONS = ("sym", "mass")

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


def check_normalization(normalization: Any) -> str:
    """A model's ``normalization`` argument, one of :data:`MODEL_NORMALIZATIONS`."""
    if not isinstance(normalization, str) or normalization not in MODEL_NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {list(MODEL_NORMALIZATIONS)}, got "
                         f"{normalization!r}")
    return normalization


def lambda_max_of(normalization: str) -> float | None:
    """The ``lambda_max`` the models pass for ``normalization``: :data:`LAMBDA_MAX` for
    ``"sym"``, ``None`` (the Gershgorin bound of the level) for ``"mass"``."""
    return None if normalization == "mass" else LAMBDA_MAX


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
        normalization: Laplacian of the convolution, ``"sym"`` (default) or ``"mass"``
            (module docstring; :meth:`forward` then needs ``node_weight``).

    Raises:
        ValueError: an unknown ``norm`` or ``normalization``.

    Shapes:
        - **input:** ``[B, N, F_in]`` (one graph for the batch) or ``[N, F_in]`` (one
          graph or a disjoint batch, with ``batch [N]`` for ``"layer"``),
          ``edge_index [2, E]``, ``edge_weight [E]``, ``node_weight [N]`` (``"mass"``).
        - **output:** ``[B, N, F_out]`` or ``[N, F_out]``.
    """

    def __init__(self, in_channels: int, out_channels: int, K: int, norm: str | None = "batch",
                 normalization: str = NORMALIZATION) -> None:
        super().__init__()
        self.norm_name = check_norm(norm)
        self.normalization = check_normalization(normalization)
        self.conv = SphericalChebConv(in_channels, out_channels, K,
                                      normalization=self.normalization,
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
                batch: Tensor | None = None, operator: Tensor | None = None,
                node_weight: Tensor | None = None) -> Tensor:
        """``batch`` (``[N]`` graph ids of a disjoint batch) matters to ``"layer"`` only;
        ``operator``: the level's convolution operator built beforehand (CSR ``[N, N]``,
        :class:`~deepsphere_pyg.models.base.HierarchyBuffers`), used instead of building
        it from ``edge_index`` and ``edge_weight``; ``node_weight`` ``[N]``: the level's
        node masses, required for ``normalization="mass"`` and ignored otherwise."""
        mass = self.normalization == "mass"
        if mass and node_weight is None:
            raise ValueError("a block with normalization='mass' needs the level's "
                             "node_weight (node masses); build the hierarchy with a "
                             "builder that sets graph.node_weight")
        weight = node_weight if mass else None
        if operator is not None:
            # Node-major [N, B, F] memory seen as [B, N, F]: the next layer reads it
            # without a copy (a contiguous output would cost two copies per layer).
            h = self.conv.apply_operator(x, operator, contiguous=False, node_weight=weight)
        else:
            h = self.conv(x, edge_index, edge_weight,
                          lambda_max=lambda_max_of(self.normalization), node_weight=weight)
        if self.norm_name == "batch":
            if h.dim() == 3:
                # The convolution returns a [N, B, F] buffer seen as [B, N, F]
                # (contiguous=False): normalise it as [N * B, F] without a copy, and give
                # back the same view.
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
