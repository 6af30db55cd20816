"""SphericalChebConv: PyG's ChebConv as a MessagePassing layer, with a cached operator
and a fused sparse path for one graph shared by a batch."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import Parameter
from torch_geometric.nn import MessagePassing
from torch_geometric.nn.dense.linear import Linear
from torch_geometric.nn.inits import zeros
from torch_geometric.utils import is_sparse, to_edge_index

from ..graphs.operator import (
    SparseOperator,
    check_node_weight,
    check_normalization,
    csr_entries,
    rescaled_laplacian_entries,
)
from .chebyshev_operator import chebyshev_operator, chebyshev_operator_csr, get_cpu_kernel
from .fused_chebyshev import ChebyshevBasisLinear, CSRParts, chebyshev_csr

#: The message-passing hooks of :class:`~torch_geometric.nn.MessagePassing`; while any
#: is registered the layer runs PyG's ``propagate`` so that the hooks see every message.
_HOOK_DICTS = (
    "_propagate_forward_pre_hooks", "_propagate_forward_hooks",
    "_message_forward_pre_hooks", "_message_forward_hooks",
    "_aggregate_forward_pre_hooks", "_aggregate_forward_hooks",
    "_message_and_aggregate_forward_pre_hooks", "_message_and_aggregate_forward_hooks",
)


class SphericalChebConv(MessagePassing):
    r"""Chebyshev spectral graph convolution (Defferrard et al., 2016), as used by DeepSphere.

    .. math::
        \mathbf{X}' = \sum_{k=0}^{K-1} T_k(\hat{\mathbf{L}})\, \mathbf{X}\, \mathbf{\Theta}_k
        + \mathbf{b}, \qquad
        T_0 = I,\; T_1 = \hat{\mathbf{L}},\;
        T_k = 2 \hat{\mathbf{L}} T_{k-1} - T_{k-2},

    with :math:`\hat{\mathbf{L}} = 2\mathbf{L}/\lambda_\max - \mathbf{I}` the rescaled graph
    Laplacian. With ``normalization="mass"`` (node masses :math:`m`, ``node_weight``,
    :math:`\mathbf{M} = \mathrm{diag}(m)`; :mod:`deepsphere_pyg.graphs.operator`) the
    filters are polynomials of the mass Laplacian :math:`\mathbf{M}^{-1}\mathbf{L}_m` on
    node values, computed in its symmetric form
    :math:`\mathbf{S} = \mathbf{M}^{-1/2}\mathbf{L}_m\mathbf{M}^{-1/2}`:

    .. math::
        \mathbf{X}' = \mathbf{M}^{-1/2} \sum_{k=0}^{K-1} T_k(\hat{\mathbf{S}})\,
        \mathbf{M}^{1/2} \mathbf{X}\, \mathbf{\Theta}_k + \mathbf{b}
        = \sum_k T_k\big(\widehat{\mathbf{M}^{-1}\mathbf{L}_m}\big)\, \mathbf{X}\,
        \mathbf{\Theta}_k + \mathbf{b},

    :math:`\hat{\mathbf{S}} = 2\mathbf{S}/\lambda_\max - \mathbf{I}` (:math:`\mathbf{S}`
    assembled with :math:`c = 1`; the default :math:`\lambda_\max` is
    :math:`2 \max_i \sum_j m_j w_{ij}`, Gershgorin's bound of
    :math:`\mathbf{M}^{-1}\mathbf{L}_m`, so :math:`\hat{\mathbf{S}}` does not depend on
    :math:`c`). A rotation of node values commutes with this filter as far as the
    operator approximates :math:`-\Delta_{S^2}` whatever the node density. A drop-in
    replacement of :class:`torch_geometric.nn.ChebConv`, and like it a
    :class:`~torch_geometric.nn.MessagePassing` layer: same constructor, ``forward``
    signature, semantics, ``repr`` and ``state_dict`` keys (``lins.{k}.weight``, ``bias``),
    so weights load in either direction.

    Two ways to apply :math:`\hat{\mathbf{L}}`, same result (to rounding):

    * **fused** (the default): the operator is built once per graph (per ``edge_index`` /
      ``edge_weight`` tensor pair, see :mod:`deepsphere_pyg.nn.chebyshev_operator`) as a
      sparse CSR matrix, and each term is one sparse product folded into the output
      (:mod:`deepsphere_pyg.nn.fused_chebyshev`); ``x`` of shape ``[B, N, F_in]`` (``B``
      signals on **one shared graph**, ``edge_index`` of that graph only) runs the
      recurrence once for the whole batch. Under :func:`torch.compile` the operator build
      and the product are custom operators, so the compiled layer keeps this path;
    * **messages**: PyG's ``propagate`` with messages
      :math:`\hat L_{ij}\, \mathbf{x}_j`, exactly as ``ChebConv``. It runs when something
      needs the messages: an explainer's edge mask
      (:class:`torch_geometric.explain.Explainer`), a registered message-passing hook,
      ``edge_weight`` that requires a gradient; and, under :func:`torch.compile`, for
      ``normalization="rw"``, a ``batch`` vector or a tensor ``lambda_max``.

    ``edge_index`` may also be a sparse adjacency, as PyG layers accept: a
    ``torch.sparse`` COO or CSR tensor or a ``torch_sparse.SparseTensor`` holding the
    transposed adjacency ``adj_t[target, source]`` (its values are the edge weights).
    Outputs are contiguous. TorchScript is not supported (use :func:`torch.compile`).

    Args:
        in_channels (int): input features per node :math:`F_{in}`.
        out_channels (int): output features per node :math:`F_{out}`.
        K (int): number of Chebyshev terms (filter support: ``K - 1`` hops), ``>= 1``.
        normalization (str, optional): Laplacian normalisation, ``None``
            (:math:`L = D - W`), ``"sym"`` (:math:`I - D^{-1/2} W D^{-1/2}`, default) or
            ``"rw"`` (:math:`I - D^{-1} W`), as in PyG; or ``"mass"`` (above: the mass
            Laplacian, ``forward`` then needs ``node_weight``).
        bias (bool, optional): learn an additive bias (default ``True``).
        **kwargs: arguments of :class:`~torch_geometric.nn.MessagePassing` (``aggr`` is
            ``"add"``).

    Shapes:
        - **input:** node features :math:`(|\mathcal V|, F_{in})` or shared-graph batches
          :math:`(B, |\mathcal V|, F_{in})`, edge indices :math:`(2, |\mathcal E|)` or a
          sparse adjacency :math:`(|\mathcal V|, |\mathcal V|)`, edge weights
          :math:`(|\mathcal E|)` *(optional)*, batch vector :math:`(|\mathcal V|)`
          *(optional, 2-D input only)*, ``lambda_max`` a float, 0-d tensor or
          :math:`(|\mathcal G|)` *(optional; default* :math:`2 \max_{ij} L_{ij}` *as PyG)*,
          node masses :math:`(|\mathcal V|)` *(``"mass"`` only, required there: e.g. a
          graph's ``node_weight``, positive and finite)*.
        - **output:** :math:`(|\mathcal V|, F_{out})` or :math:`(B, |\mathcal V|, F_{out})`.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        K: int,
        normalization: str | None = "sym",
        bias: bool = True,
        **kwargs,
    ) -> None:
        kwargs.setdefault("aggr", "add")
        super().__init__(**kwargs)
        if not isinstance(K, int) or K < 1:
            raise ValueError(f"K must be an integer >= 1 (number of Chebyshev terms), got {K!r}")
        if not isinstance(in_channels, int) or in_channels < 1:
            raise ValueError(
                f"in_channels must be an integer >= 1, got {in_channels!r} (lazy shapes, "
                "PyG's -1, are not supported)"
            )
        check_normalization(normalization, mass=True)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.normalization = normalization
        self.lins = torch.nn.ModuleList([
            Linear(in_channels, out_channels, bias=False, weight_initializer="glorot")
            for _ in range(K)
        ])
        if bias:
            self.bias = Parameter(torch.empty(out_channels))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    @property
    def K(self) -> int:  # noqa: N802 - PyG's name
        return len(self.lins)

    def reset_parameters(self) -> None:
        """Glorot-initialise the ``K`` weight matrices and zero the bias (as PyG)."""
        super().reset_parameters()
        for lin in self.lins:
            lin.reset_parameters()
        zeros(self.bias)

    def __prepare_scriptable__(self) -> SphericalChebConv:
        raise RuntimeError(
            "SphericalChebConv does not support TorchScript (torch.jit.script): its fused "
            "path is a custom autograd function on sparse CSR matrices. Use torch.compile "
            "instead (it compiles the layer with fullgraph=True).")

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        x: Tensor,
        edge_index: Tensor,
        edge_weight: Tensor | None = None,
        batch: Tensor | None = None,
        lambda_max: float | Tensor | None = None,
        node_weight: Tensor | None = None,
    ) -> Tensor:
        shared = self._check_x(x)
        if shared:
            if batch is not None:
                raise ValueError(
                    "batch must be None when x is [B, N, F] (one graph shared by the batch); "
                    "for per-sample graphs pass x as [sum N, F] with a disjoint PyG batch"
                )
            if isinstance(lambda_max, Tensor) and lambda_max.numel() != 1:
                raise ValueError("lambda_max must be a scalar when x is [B, N, F] (one graph)")
        edge_index, edge_weight = _edge_list(edge_index, edge_weight)
        num_nodes = x.shape[-2]
        root = self._mass_root(node_weight, num_nodes, x)
        if root is not None:
            x = x * root  # M^{1/2} x
        learnable = torch.is_grad_enabled() and (
            (edge_weight is not None and edge_weight.requires_grad)
            or (node_weight is not None and node_weight.requires_grad))
        if torch.compiler.is_compiling() and not (learnable or self._hooked()) \
                and self.normalization != "rw" and batch is None \
                and not isinstance(lambda_max, Tensor):
            # Compiled: the cached operator and the fused product as custom operators.
            parts = CSRParts(*chebyshev_operator_csr(
                edge_index, edge_weight, num_nodes, self.normalization,
                None if lambda_max is None else float(lambda_max), x.dtype, node_weight))
            return self._fused(x, lambda nodes, weights: chebyshev_csr(
                nodes, *parts, weights)[0], root=root)
        if learnable or self._needs_messages():
            index, norm = rescaled_laplacian_entries(edge_index, edge_weight, num_nodes,
                                                     self.normalization, lambda_max, batch,
                                                     x.dtype, node_weight)
            return self._propagated(x, index, norm, root)
        operator = chebyshev_operator(edge_index, edge_weight, num_nodes, self.normalization,
                                      lambda_max, batch, x.dtype, node_weight=node_weight)
        return self._fused(x, lambda nodes, weights: ChebyshevBasisLinear.apply(
            nodes, operator, *weights), root=root)

    def apply_operator(self, x: Tensor,
                       operator: Tensor | SparseOperator | CSRParts | tuple[Tensor, Tensor],
                       *, contiguous: bool = True, node_weight: Tensor | None = None
                       ) -> Tensor:
        r"""The convolution with an operator built beforehand, for owners of a fixed graph.

        A model that owns its hierarchy builds each level's operator once in ``__init__``
        (:func:`~deepsphere_pyg.nn.chebyshev_operator.chebyshev_operator` with ``cache=False``,
        this layer's ``normalization`` and ``lambda_max``) and keeps it as a buffer; this
        method then skips the operator cache that :meth:`forward` consults.

        Args:
            x: ``[N, F_in]`` or ``[B, N, F_in]`` (one graph shared by the batch).
            operator: the applied matrix :math:`M = \hat L^\top` as a sparse CSR tensor
                ``[N, N]`` or its dense parts
                (:class:`~deepsphere_pyg.nn.fused_chebyshev.CSRParts`, what a model hands
                the layer under :func:`torch.compile`, which cannot trace sparse tensors:
                the product then runs as one custom operator), both for a symmetric
                normalisation (:math:`M^\top = M`); a
                :class:`~deepsphere_pyg.graphs.operator.SparseOperator`; or the entries
                ``(index [2, E], value [E])`` of :math:`\hat L` as messages flow in PyG
                (``index[0]`` source, ``index[1]`` target), applied by ``propagate``.
            contiguous: ``False`` returns a ``[B, N, F_out]`` output of the fused product
                as the node-major ``[N, B, F_out]`` buffer it is computed in, seen through
                a transpose: a chain of layers (the models' blocks) then passes each output
                to the next layer without the two copies a contiguous output costs
                (measured in BENCHMARKS.md).
            node_weight: ``[N]`` node masses, for ``normalization="mass"`` only (required
                there; ``operator`` is then :math:`\hat S` of the same masses, e.g.
                ``chebyshev_operator(..., "mass", ..., node_weight=node_weight)``).

        Returns:
            ``[N, F_out]`` or ``[B, N, F_out]``, contiguous unless ``contiguous=False``.
        """
        self._check_x(x)
        num_nodes = x.shape[-2]
        root = self._mass_root(node_weight, num_nodes, x)
        if root is not None:
            x = x * root  # M^{1/2} x
        if isinstance(operator, tuple) and not isinstance(operator, CSRParts):
            index, value = operator
            return self._propagated(x, index, value.to(x.dtype), root)
        if isinstance(operator, CSRParts | Tensor) and self.normalization == "rw":
            raise ValueError("apply_operator takes a CSR matrix for the symmetric "
                             "normalisations only; pass a SparseOperator holding M and "
                             "M^T for normalization='rw'")
        size = operator.crow.numel() - 1 if isinstance(operator, CSRParts) else \
            operator.num_nodes if isinstance(operator, SparseOperator) else operator.shape[0]
        if size != num_nodes:
            raise ValueError(f"x has {num_nodes} nodes (dimension -2) but the operator is "
                             f"[{size}, {size}]")
        if isinstance(operator, CSRParts):
            if self._hooked():
                index, value = csr_entries(*operator)
                return self._propagated(x, index, value.to(x.dtype), root)
            parts = operator._replace(value=operator.value.to(x.dtype))
            if torch.compiler.is_compiling():
                return self._fused(x, lambda nodes, weights: chebyshev_csr(
                    nodes, *parts, weights)[0], contiguous, root)
            operator = parts.operator()
        elif not isinstance(operator, SparseOperator):
            operator = SparseOperator(operator.to(x.dtype) if operator.dtype != x.dtype
                                      else operator, kernel=get_cpu_kernel())
        if self._hooked():
            raise ValueError("an explainer or message-passing hook is active, which needs "
                             "the messages: pass the operator as CSRParts or as its "
                             "(index, value) entries")
        operator = operator.with_kernel(get_cpu_kernel())
        return self._fused(x, lambda nodes, weights: ChebyshevBasisLinear.apply(
            nodes, operator, *weights), contiguous, root)

    def message(self, x_j: Tensor, norm: Tensor) -> Tensor:
        r"""Message from source ``j`` along an entry of :math:`\hat L`: ``norm * x_j``."""
        return norm.view(-1, 1) * x_j

    # ---------------------------------------------------------------- the two paths
    def _needs_messages(self) -> bool:
        """Whether :meth:`forward` must form the messages: compiling (the operator cache
        cannot be traced), or :meth:`_hooked`."""
        return torch.compiler.is_compiling() or self._hooked()

    def _hooked(self) -> bool:
        """An explainer's edge mask or a registered message-passing hook is active."""
        return bool(self.explain) or any(getattr(self, name) for name in _HOOK_DICTS)

    def _mass_root(self, node_weight: Tensor | None, num_nodes: int, x: Tensor
                   ) -> Tensor | None:
        r""":math:`M^{1/2}` as ``[N, 1]`` in the dtype of ``x`` for ``"mass"`` (checked
        ``node_weight``), ``None`` for the other normalisations (which take none)."""
        if self.normalization != "mass":
            if node_weight is not None:
                raise ValueError(f"node_weight applies to normalization='mass' only; this "
                                 f"layer has normalization={self.normalization!r}")
            return None
        node_weight = check_node_weight(node_weight, num_nodes,
                                        values=not torch.compiler.is_compiling())
        return node_weight.to(device=x.device, dtype=x.dtype).sqrt().unsqueeze(-1)

    def _propagated(self, x: Tensor, index: Tensor, norm: Tensor,
                    root: Tensor | None = None) -> Tensor:
        """The recurrence with PyG's ``propagate`` (``ChebConv``'s own algorithm); ``x``
        ``[N, F_in]`` or ``[B, N, F_in]`` (nodes on dimension -2, PyG's ``node_dim``);
        ``root`` ``[N, 1]``: the sum is divided by it before the bias (``"mass"``)."""
        previous = x
        out = self.lins[0](x)
        if len(self.lins) > 1:
            current = self.propagate(index, x=x, norm=norm)
            out = out + self.lins[1](current)
            for lin in self.lins[2:]:
                following = 2.0 * self.propagate(index, x=current, norm=norm) - previous
                out = out + lin(following)
                previous, current = current, following
        if root is not None:
            out = out / root  # M^{-1/2}
        if self.bias is not None:
            out = out + self.bias
        return out

    def _fused(self, x: Tensor, product, contiguous: bool = True,
               root: Tensor | None = None) -> Tensor:
        """The fused basis/weights ``product(nodes_first, weights)``
        (:mod:`~deepsphere_pyg.nn.fused_chebyshev`) for ``x`` ``[N, F_in]`` or
        ``[B, N, F_in]``; the recursion runs on ``[N, B * F_in]``, one operator product per
        term for the whole batch. ``root`` ``[N, 1]``: the sum is divided by it before
        the bias (``"mass"``)."""
        weights = [lin.weight for lin in self.lins]
        if x.dim() == 2:
            out = product(x.contiguous(), weights)
        else:
            size, num_nodes, features = x.shape
            nodes_first = x.transpose(0, 1).reshape(num_nodes, size * features)
            out = product(nodes_first.contiguous(), weights)
        if root is not None:  # M^{-1/2}; out is node-major [N (* B), F_out]
            scale = root.view(-1, 1) if x.dim() == 2 else root.view(-1, 1, 1)
            nodes = out if x.dim() == 2 else out.view(root.shape[0], -1, out.shape[-1])
            nodes = nodes / scale if scale.requires_grad else nodes.div_(scale)
            out = nodes.view_as(out)
        # In place: the output is a fresh tensor, and a new one would cost a page-faulting
        # allocation of the full output on CPU.
        out = out if self.bias is None else out.add_(self.bias)
        if x.dim() == 2:
            return out
        out = out.view(num_nodes, size, -1).transpose(0, 1)
        return out.contiguous() if contiguous else out

    def _check_x(self, x: Tensor) -> bool:
        """Check ``x`` (``[N, F_in]`` or ``[B, N, F_in]``); ``True`` for a shared-graph
        batch."""
        if x.dim() not in (2, 3):
            raise ValueError(f"x must be [N, F_in] or [B, N, F_in], got shape {tuple(x.shape)}")
        if x.shape[-1] != self.in_channels:
            raise ValueError(
                f"x has {x.shape[-1]} features in its last dimension, but the layer expects "
                f"in_channels={self.in_channels}"
            )
        return x.dim() == 3

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, "
                f"K={len(self.lins)}, normalization={self.normalization})")


def _edge_list(edge_index: Tensor, edge_weight: Tensor | None
               ) -> tuple[Tensor, Tensor | None]:
    """``(edge_index [2, E], edge_weight [E] or None)`` of an edge list or of a sparse
    adjacency ``adj_t[target, source]`` (``torch.sparse`` COO/CSR, ``SparseTensor``)."""
    if not is_sparse(edge_index):
        return edge_index, edge_weight
    if edge_weight is not None:
        raise ValueError("edge_weight must be None when edge_index is a sparse adjacency: "
                         "its values are the edge weights")
    if isinstance(edge_index, Tensor) and edge_index.layout == torch.sparse_coo \
            and not edge_index.is_coalesced():
        # PyG reads a COO tensor as coalesced (and marks it so): coalesce a copy first.
        edge_index = edge_index.coalesce()
    index, value = to_edge_index(edge_index)
    return index.flip(0), value
