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
    chebyshev_basis,
    check_normalization,
    rescaled_laplacian_entries,
)
from .chebyshev_operator import chebyshev_operator, get_cpu_kernel

#: The message-passing hooks of :class:`~torch_geometric.nn.MessagePassing`; while any
#: is registered the layer runs PyG's ``propagate`` so that the hooks see every message.
_HOOK_DICTS = (
    "_propagate_forward_pre_hooks", "_propagate_forward_hooks",
    "_message_forward_pre_hooks", "_message_forward_hooks",
    "_aggregate_forward_pre_hooks", "_aggregate_forward_hooks",
    "_message_and_aggregate_forward_pre_hooks", "_message_and_aggregate_forward_hooks",
)


class _ChebyshevBasisLinear(torch.autograd.Function):
    r"""``out = sum_k T_k(M) x W_k^T`` for a constant sparse ``M``, with a fused backward.

    Forward: the recursion :math:`T_k = 2 M T_{k-1} - T_{k-2}` is one sparse ``addmm`` per
    term, and each term is folded into the output by a dense ``addmm``. Backward: the
    weight gradients are :math:`G^\top T_k`; the input gradient
    :math:`\sum_k T_k(M^\top) G W_k` is evaluated by Clenshaw's recurrence
    :math:`b_k = G W_k + 2 M^\top b_{k+1} - b_{k+2}`, :math:`\nabla x = G W_0 +
    M^\top b_1 - b_2`, i.e. ``K - 1`` sparse products and no stored intermediate beyond
    the basis that the weight gradients need.

    ``x`` is ``[N, C]`` (nodes first, ``C = B * F_in``) and is read as ``[N * B, F_in]``
    by the weights; the output is ``[N * B, F_out]``.
    """

    @staticmethod
    def forward(ctx, x: Tensor, operator: SparseOperator, *weights: Tensor) -> Tensor:
        features = weights[0].shape[1]
        rows = x.numel() // features
        out = torch.mm(x.view(rows, features), weights[0].t())
        basis = list(chebyshev_basis(x, operator, len(weights)))
        for term, weight in zip(basis[1:], weights[1:], strict=True):
            out.addmm_(term.view(rows, features), weight.t())
        # x and the weights are inputs: saved the checked way. The other terms are kept on
        # ctx so that backward can free them once the weight gradients are computed,
        # before the Clenshaw recurrence allocates its own terms (peak memory).
        ctx.save_for_backward(x, *weights)
        ctx.terms = basis[1:]
        ctx.operator = operator
        return out

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        x, *weights = ctx.saved_tensors
        # A second backward through a retained graph recomputes the freed terms.
        terms = ctx.terms if ctx.terms is not None else list(chebyshev_basis(
            x, ctx.operator, len(weights)))[1:]
        basis = [x, *terms]
        ctx.terms = terms = None
        order = len(weights)
        features = weights[0].shape[1]
        rows = x.numel() // features
        grad_out = grad_out.contiguous()
        grad_weights = [
            grad_out.t().mm(term.view(rows, features)) if ctx.needs_input_grad[2 + k]
            else None
            for k, term in enumerate(basis)
        ]
        del basis
        grad_x = None
        if ctx.needs_input_grad[0]:
            operator = ctx.operator
            # Three buffers rotate through the recurrence: fresh [N, C] allocations are
            # expensive on CPU (page faults), and b_k only needs b_{k+1} and b_{k+2}.
            free = [torch.empty_like(x) for _ in range(min(3, order - 1))]
            b_next = b_next2 = None  # b_{k+1}, b_{k+2}
            for k in range(order - 1, 0, -1):
                b_k = free.pop()
                torch.mm(grad_out, weights[k], out=b_k.view(rows, -1))
                if b_next2 is not None:
                    b_k.sub_(b_next2)
                    free.append(b_next2)
                if b_next is not None:
                    operator.addmm_(b_k, b_next, alpha=2, transpose=True)
                b_next2, b_next = b_next, b_k
            grad_x = torch.mm(grad_out, weights[0]).view_as(x)
            if b_next is not None:
                operator.addmm_(grad_x, b_next, transpose=True)
            if b_next2 is not None:
                grad_x.sub_(b_next2)
        return (grad_x, None, *grad_weights)


class SphericalChebConv(MessagePassing):
    r"""Chebyshev spectral graph convolution (Defferrard et al., 2016), as used by DeepSphere.

    .. math::
        \mathbf{X}' = \sum_{k=0}^{K-1} T_k(\hat{\mathbf{L}})\, \mathbf{X}\, \mathbf{\Theta}_k
        + \mathbf{b}, \qquad
        T_0 = I,\; T_1 = \hat{\mathbf{L}},\;
        T_k = 2 \hat{\mathbf{L}} T_{k-1} - T_{k-2},

    with :math:`\hat{\mathbf{L}} = 2\mathbf{L}/\lambda_\max - \mathbf{I}` the rescaled graph
    Laplacian. A drop-in replacement of :class:`torch_geometric.nn.ChebConv`, and like it a
    :class:`~torch_geometric.nn.MessagePassing` layer: same constructor, ``forward``
    signature, semantics, ``repr`` and ``state_dict`` keys (``lins.{k}.weight``, ``bias``),
    so weights load in either direction.

    Two ways to apply :math:`\hat{\mathbf{L}}`, same result (to rounding):

    * **fused** (the default): the operator is built once per graph (per ``edge_index`` /
      ``edge_weight`` tensor pair, see :mod:`deepsphere_pyg.nn.chebyshev_operator`) as a
      sparse CSR matrix, and each term is one sparse product folded into the output; ``x``
      of shape ``[B, N, F_in]`` (``B`` signals on **one shared graph**, ``edge_index`` of
      that graph only) runs the recurrence once for the whole batch;
    * **messages**: PyG's ``propagate`` with messages
      :math:`\hat L_{ij}\, \mathbf{x}_j`, exactly as ``ChebConv``. It runs when something
      needs the messages or a traceable graph: an explainer's edge mask
      (:class:`torch_geometric.explain.Explainer`), a registered message-passing hook,
      ``edge_weight`` that requires a gradient, and :func:`torch.compile`.

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
            ``"rw"`` (:math:`I - D^{-1} W`), as in PyG.
        bias (bool, optional): learn an additive bias (default ``True``).
        **kwargs: arguments of :class:`~torch_geometric.nn.MessagePassing` (``aggr`` is
            ``"add"``).

    Shapes:
        - **input:** node features :math:`(|\mathcal V|, F_{in})` or shared-graph batches
          :math:`(B, |\mathcal V|, F_{in})`, edge indices :math:`(2, |\mathcal E|)` or a
          sparse adjacency :math:`(|\mathcal V|, |\mathcal V|)`, edge weights
          :math:`(|\mathcal E|)` *(optional)*, batch vector :math:`(|\mathcal V|)`
          *(optional, 2-D input only)*, ``lambda_max`` a float, 0-d tensor or
          :math:`(|\mathcal G|)` *(optional; default* :math:`2 \max_{ij} L_{ij}` *as PyG)*.
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
        check_normalization(normalization)
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
        if self._needs_messages() or (edge_weight is not None and edge_weight.requires_grad
                                      and torch.is_grad_enabled()):
            index, norm = rescaled_laplacian_entries(edge_index, edge_weight, num_nodes,
                                                     self.normalization, lambda_max, batch,
                                                     x.dtype)
            return self._propagated(x, index, norm)
        operator = chebyshev_operator(edge_index, edge_weight, num_nodes, self.normalization,
                                      lambda_max, batch, x.dtype)
        return self._fused(x, operator)

    def apply_operator(self, x: Tensor,
                       operator: Tensor | SparseOperator | tuple[Tensor, Tensor]) -> Tensor:
        r"""The convolution with an operator built beforehand, for owners of a fixed graph.

        A model that owns its hierarchy builds each level's operator once in ``__init__``
        (:func:`~deepsphere_pyg.nn.chebyshev_operator.chebyshev_operator` with ``cache=False``,
        this layer's ``normalization`` and ``lambda_max``) and keeps it as a buffer; this
        method then skips the operator cache that :meth:`forward` consults.

        Args:
            x: ``[N, F_in]`` or ``[B, N, F_in]`` (one graph shared by the batch).
            operator: the applied matrix :math:`M = \hat L^\top` as a sparse CSR tensor
                ``[N, N]`` (a symmetric normalisation, so :math:`M^\top = M`), a
                :class:`~deepsphere_pyg.graphs.operator.SparseOperator`, or the entries
                ``(index [2, E], value [E])`` of :math:`\hat L` as messages flow in PyG
                (``index[0]`` source, ``index[1]`` target; what a model hands the layer
                under :func:`torch.compile`, where sparse tensors cannot be traced).

        Returns:
            ``[N, F_out]`` or ``[B, N, F_out]``, contiguous.
        """
        self._check_x(x)
        num_nodes = x.shape[-2]
        if isinstance(operator, tuple):
            index, value = operator
            return self._propagated(x, index, value.to(x.dtype))
        if not isinstance(operator, SparseOperator):
            if self.normalization == "rw":
                raise ValueError("apply_operator takes a CSR tensor for the symmetric "
                                 "normalisations only; pass a SparseOperator holding M and "
                                 "M^T for normalization='rw'")
            operator = SparseOperator(operator.to(x.dtype) if operator.dtype != x.dtype
                                      else operator, kernel=get_cpu_kernel())
        else:
            operator = operator.with_kernel(get_cpu_kernel())
        if operator.num_nodes != num_nodes:
            raise ValueError(f"x has {num_nodes} nodes (dimension -2) but the operator is "
                             f"[{operator.num_nodes}, {operator.num_nodes}]")
        if self._needs_messages():
            raise ValueError("an explainer or message-passing hook is active, which needs "
                             "the messages: pass the operator as its (index, value) entries")
        return self._fused(x, operator)

    def message(self, x_j: Tensor, norm: Tensor) -> Tensor:
        r"""Message from source ``j`` along an entry of :math:`\hat L`: ``norm * x_j``."""
        return norm.view(-1, 1) * x_j

    # ---------------------------------------------------------------- the two paths
    def _needs_messages(self) -> bool:
        """Whether the messages must be formed: compiling, an explainer's edge mask, or a
        registered message-passing hook."""
        if torch.compiler.is_compiling() or self.explain:
            return True
        return any(getattr(self, name) for name in _HOOK_DICTS)

    def _propagated(self, x: Tensor, index: Tensor, norm: Tensor) -> Tensor:
        """The recurrence with PyG's ``propagate`` (``ChebConv``'s own algorithm); ``x``
        ``[N, F_in]`` or ``[B, N, F_in]`` (nodes on dimension -2, PyG's ``node_dim``)."""
        previous = x
        out = self.lins[0](x)
        if len(self.lins) > 1:
            current = self.propagate(index, x=x, norm=norm)
            out = out + self.lins[1](current)
            for lin in self.lins[2:]:
                following = 2.0 * self.propagate(index, x=current, norm=norm) - previous
                out = out + lin(following)
                previous, current = current, following
        if self.bias is not None:
            out = out + self.bias
        return out

    def _fused(self, x: Tensor, operator: SparseOperator) -> Tensor:
        """The fused basis/weights product (:class:`_ChebyshevBasisLinear`) for ``x``
        ``[N, F_in]`` or ``[B, N, F_in]``; the recursion runs on ``[N, B * F_in]``, one
        operator product per term for the whole batch."""
        weights = [lin.weight for lin in self.lins]
        if x.dim() == 2:
            out = _ChebyshevBasisLinear.apply(x.contiguous(), operator, *weights)
        else:
            size, num_nodes, features = x.shape
            nodes_first = x.transpose(0, 1).reshape(num_nodes, size * features)
            out = _ChebyshevBasisLinear.apply(nodes_first.contiguous(), operator, *weights)
        # In place: the output is a fresh tensor, and a new one would cost a page-faulting
        # allocation of the full output on CPU.
        out = out if self.bias is None else out.add_(self.bias)
        if x.dim() == 2:
            return out
        return out.view(num_nodes, size, -1).transpose(0, 1).contiguous()

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
