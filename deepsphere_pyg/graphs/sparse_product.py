"""Sparse matrix products on CPU and GPU with the fastest kernel for their shape."""

from __future__ import annotations

import scipy.sparse
import torch

#: Fewest columns for which the CPU products use torch's CSR kernel rather than scipy's
#: (see :class:`SparseOperator`).
TORCH_CPU_MIN_COLUMNS = 2


def scipy_view(matrix: torch.Tensor) -> scipy.sparse.csr_array | None:
    """A scipy CSR array sharing the memory of a CPU float CSR tensor (``None`` for other
    devices and dtypes)."""
    if matrix.device.type != "cpu" or matrix.dtype not in (torch.float32, torch.float64):
        return None
    return scipy.sparse.csr_array(
        (matrix.values().numpy(), matrix.col_indices().numpy(),
         matrix.crow_indices().numpy()), shape=tuple(matrix.shape), copy=False)


class SparseOperator:
    """``x -> M x`` and the Chebyshev step ``2 M x - y`` for a CSR buffer ``M``.

    CPU without autograd: scipy's kernel (a zero-copy view) for a single column, torch's
    (one fused ``addmm`` per step) for :data:`TORCH_CPU_MIN_COLUMNS` columns or more.
    Measured on one thread, int32 indices, k = 8: at nside 1024 scipy takes 72 ms for one
    column (torch 116) and torch 58-77 ms per column for 2-16 columns (scipy 75-126); at
    nside 256 torch is 3.1-4.3 ms per column for 2-8 columns (scipy 4.6-9). CUDA, or
    autograd: torch.
    """

    def __init__(self, matrix: torch.Tensor, dtype: torch.dtype, autograd: bool) -> None:
        if matrix.dtype != dtype:
            matrix = matrix.to(dtype)
        self.matrix = matrix
        self.view = None if autograd else scipy_view(matrix)

    def _scipy(self, x: torch.Tensor) -> bool:
        return self.view is not None and x.shape[1] < TORCH_CPU_MIN_COLUMNS

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self._scipy(x):
            return torch.from_numpy(self.view @ x.contiguous().numpy())
        return torch.mm(self.matrix, x)

    def step(self, current: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
        """:math:`2 M x_k - x_{k-1}`."""
        if self._scipy(current):
            out = torch.from_numpy(self.view @ current.contiguous().numpy())
            return out.mul_(2.0).sub_(previous)
        return torch.addmm(previous, self.matrix, current, beta=-1.0, alpha=2.0)
