r"""The fused Chebyshev product :math:`\sum_k T_k(M)\, x\, W_k^\top` of the convolution.

Forward: the recursion :math:`T_k = 2 M T_{k-1} - T_{k-2}` is one sparse ``addmm`` per
term, and each term is folded into the output by a dense ``addmm``. Backward: the weight
gradients are :math:`G^\top T_k`; the input gradient :math:`\sum_k T_k(M^\top) G W_k` is
evaluated by Clenshaw's recurrence :math:`b_k = G W_k + 2 M^\top b_{k+1} - b_{k+2}`,
:math:`\nabla x = G W_0 + M^\top b_1 - b_2`, i.e. ``K - 1`` sparse products and no stored
intermediate beyond the basis that the weight gradients need.

``x`` is ``[N, C]`` (nodes first, ``C = B * F_in``) and is read as ``[N * B, F_in]`` by
the weights ``W_k`` ``[F_out, F_in]``; the output is ``[N * B, F_out]``.

Two wrappers share the two functions: :class:`ChebyshevBasisLinear`, an autograd function
on a :class:`~deepsphere_pyg.graphs.operator.SparseOperator` (eager), and
:func:`chebyshev_csr`, a torch custom operator on the dense parts of a CSR matrix, which
:func:`torch.compile` treats as one opaque operation (it cannot trace sparse tensors), so
a compiled model keeps the fused sparse product.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from ..graphs.operator import SparseOperator, chebyshev_basis, csr_from_parts

__all__ = ["CSRParts", "ChebyshevBasisLinear", "chebyshev_csr", "fused_backward",
           "fused_forward"]


class CSRParts(NamedTuple):
    """The dense parts of the applied matrix :math:`M` ``[N, N]`` in CSR form (a model's
    operator buffers), for a symmetric :math:`M` (:math:`M^\\top = M`)."""

    crow: Tensor
    col: Tensor
    value: Tensor

    def operator(self) -> SparseOperator:
        return SparseOperator(csr_from_parts(self.crow, self.col, self.value,
                                             self.crow.numel() - 1), kernel="torch")


def fused_forward(x: Tensor, operator: SparseOperator, weights: list[Tensor]
                  ) -> tuple[Tensor, list[Tensor]]:
    """``(out [N * B, F_out], terms [T_1 x, ..., T_{K-1} x])`` (module docstring)."""
    features = weights[0].shape[1]
    rows = x.numel() // features
    out = torch.mm(x.view(rows, features), weights[0].t())
    basis = list(chebyshev_basis(x, operator, len(weights)))
    for term, weight in zip(basis[1:], weights[1:], strict=True):
        out.addmm_(term.view(rows, features), weight.t())
    return out, basis[1:]


def fused_backward(grad_out: Tensor, x: Tensor, terms: list[Tensor], operator: SparseOperator,
                   weights: list[Tensor], needs_x: bool, needs_weights: list[bool]
                   ) -> tuple[Tensor | None, list[Tensor | None]]:
    """Gradients of :func:`fused_forward` for ``x`` and the weights (``None`` where not
    needed). ``terms`` is emptied once the weight gradients are computed (peak memory)."""
    order = len(weights)
    features = weights[0].shape[1]
    rows = x.numel() // features
    grad_out = grad_out.contiguous()
    basis = [x, *terms]
    terms.clear()
    grad_weights = [grad_out.t().mm(term.view(rows, features)) if needed else None
                    for term, needed in zip(basis, needs_weights, strict=True)]
    del basis
    if not needs_x:
        return None, grad_weights
    # Three buffers rotate through the recurrence: fresh [N, C] allocations are expensive
    # on CPU (page faults), and b_k only needs b_{k+1} and b_{k+2}.
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
    return grad_x, grad_weights


class ChebyshevBasisLinear(torch.autograd.Function):
    """:func:`fused_forward` / :func:`fused_backward` for a constant ``SparseOperator``."""

    @staticmethod
    def forward(ctx, x: Tensor, operator: SparseOperator, *weights: Tensor) -> Tensor:
        out, terms = fused_forward(x, operator, list(weights))
        # x and the weights are inputs: saved the checked way. The terms are kept on ctx
        # so that backward can free them once the weight gradients are computed, before
        # the Clenshaw recurrence allocates its own terms.
        ctx.save_for_backward(x, *weights)
        ctx.terms = terms
        ctx.operator = operator
        return out

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        x, *weights = ctx.saved_tensors
        # A second backward through a retained graph recomputes the freed terms.
        terms = ctx.terms if ctx.terms is not None else fused_forward(
            x, ctx.operator, weights)[1]
        ctx.terms = None
        grad_x, grad_weights = fused_backward(
            grad_out, x, terms, ctx.operator, weights, ctx.needs_input_grad[0],
            list(ctx.needs_input_grad[2:]))
        return (grad_x, None, *grad_weights)


# ------------------------------------------------------------- the custom operator
@torch.library.custom_op("deepsphere_pyg::chebyshev_csr", mutates_args=())
def chebyshev_csr(x: Tensor, crow: Tensor, col: Tensor, value: Tensor,
                  weights: list[Tensor]) -> list[Tensor]:
    """:func:`fused_forward` on the CSR parts of a symmetric ``M``: ``[out, *terms]``."""
    out, terms = fused_forward(x, CSRParts(crow, col, value).operator(), weights)
    return [out, *terms]


@chebyshev_csr.register_fake
def _chebyshev_csr_fake(x, crow, col, value, weights):
    rows = x.numel() // weights[0].shape[1]
    return [x.new_empty(rows, weights[0].shape[0]), *(torch.empty_like(x) for _ in weights[1:])]


@torch.library.custom_op("deepsphere_pyg::chebyshev_csr_backward", mutates_args=())
def chebyshev_csr_backward(grad_out: Tensor, x: Tensor, crow: Tensor, col: Tensor,
                           value: Tensor, weights: list[Tensor], terms: list[Tensor]
                           ) -> list[Tensor]:
    """:func:`fused_backward` of :func:`chebyshev_csr`: ``[grad_x, *grad_weights]``."""
    grad_x, grad_weights = fused_backward(
        grad_out, x, list(terms), CSRParts(crow, col, value).operator(), weights, True,
        [True] * len(weights))
    return [grad_x, *grad_weights]


@chebyshev_csr_backward.register_fake
def _chebyshev_csr_backward_fake(grad_out, x, crow, col, value, weights, terms):
    return [torch.empty_like(x), *(torch.empty_like(weight) for weight in weights)]


def _setup_context(ctx, inputs, output) -> None:
    x, crow, col, value, weights = inputs
    ctx.order = len(weights)
    ctx.save_for_backward(x, crow, col, value, *weights, *output[1:])


def _backward(ctx, grads):
    x, crow, col, value, *rest = ctx.saved_tensors
    weights, terms = rest[:ctx.order], rest[ctx.order:]
    grad_x, *grad_weights = chebyshev_csr_backward(grads[0], x, crow, col, value,
                                                   list(weights), list(terms))
    return grad_x, None, None, None, grad_weights


chebyshev_csr.register_autograd(_backward, setup_context=_setup_context)
