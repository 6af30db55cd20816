r"""The rescaled Laplacian that a Chebyshev convolution applies, built once per graph.

:class:`torch_geometric.nn.ChebConv` rebuilds its normalised Laplacian at every forward
pass. Here the operator

.. math::
    \hat L = \frac{2 L}{\lambda_\max} - I

is assembled once as a sparse CSR matrix (with :func:`torch_geometric.utils.get_laplacian`,
so normalisations match PyG bit for bit) and cached, keyed by the identity and in-place
version of the ``edge_index`` / ``edge_weight`` tensors, so every layer that sees the same
graph tensors shares one operator, and an edited graph gets a new one.

PyG propagates messages from ``edge_index[0]`` (source) to ``edge_index[1]`` (target), so
the matrix applied is :math:`M_{ts} = \hat L_{st}`, i.e. :math:`\hat L^\top` (the same for
the symmetric normalisations, the transpose for ``"rw"``); :class:`ChebyshevOperator` holds
:math:`M` and :math:`M^\top` (for the backward pass).
"""

from __future__ import annotations

import threading
import warnings
import weakref
from collections import OrderedDict
from dataclasses import dataclass

import scipy.sparse
import torch
from torch_geometric.utils import get_laplacian

from ..graphs.sparse_product import scipy_view

__all__ = [
    "ChebyshevOperator",
    "chebyshev_operator",
    "clear_operator_cache",
    "get_cpu_kernel",
    "set_cpu_kernel",
]


#: Kernel of the sparse products on CPU: ``"torch"`` (``torch.sparse`` CSR, multi-threaded,
#: can accumulate in place) or ``"scipy"`` (scipy's single-threaded CSR product on
#: zero-copy views). ``scripts/bench_conv.py`` measures both. CUDA always uses torch.
CPU_KERNELS = ("torch", "scipy")
_cpu_kernel = "torch"


def set_cpu_kernel(name: str) -> None:
    """Choose the CPU sparse-product kernel, ``"torch"`` (default) or ``"scipy"``."""
    global _cpu_kernel
    if name not in CPU_KERNELS:
        raise ValueError(f"CPU kernel must be one of {CPU_KERNELS}, got {name!r}")
    _cpu_kernel = name


def get_cpu_kernel() -> str:
    """The CPU sparse-product kernel in use."""
    return _cpu_kernel


@dataclass(frozen=True)
class ChebyshevOperator:
    """The operator ``matrix`` ``[N, N]`` (sparse CSR) applied by the convolution and its
    transpose ``matrix_t`` (the same object when symmetric), with scipy views of both on
    CPU. :meth:`mm` and :meth:`addmm` compute ``M @ x`` and ``beta * c + alpha * M @ x``
    (``transpose=True``: with ``M^T``)."""

    matrix: torch.Tensor
    matrix_t: torch.Tensor
    scipy_matrix: scipy.sparse.csr_array | None = None
    scipy_matrix_t: scipy.sparse.csr_array | None = None

    @property
    def num_nodes(self) -> int:
        return int(self.matrix.shape[0])

    def _use_scipy(self, x: torch.Tensor) -> bool:
        return (_cpu_kernel == "scipy" and self.scipy_matrix is not None
                and x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64))

    def mm(self, x: torch.Tensor, transpose: bool = False) -> torch.Tensor:
        if self._use_scipy(x):
            matrix = self.scipy_matrix_t if transpose else self.scipy_matrix
            return torch.from_numpy(matrix @ x.detach().contiguous().numpy())
        return torch.mm(self.matrix_t if transpose else self.matrix, x)

    def addmm(self, c: torch.Tensor, x: torch.Tensor, beta: float = 1.0, alpha: float = 1.0,
              transpose: bool = False) -> torch.Tensor:
        if self._use_scipy(x):
            out = self.mm(x, transpose)
            if alpha != 1.0:
                out.mul_(alpha)
            return out.add_(c, alpha=beta)
        matrix = self.matrix_t if transpose else self.matrix
        return torch.addmm(c, matrix, x, beta=beta, alpha=alpha)

    def addmm_(self, c: torch.Tensor, x: torch.Tensor, alpha: float = 1.0,
               transpose: bool = False) -> torch.Tensor:
        """``c += alpha * M @ x`` in place (no new ``[N, C]`` allocation with torch)."""
        if self._use_scipy(x):
            return c.add_(self.mm(x, transpose), alpha=alpha)
        return c.addmm_(self.matrix_t if transpose else self.matrix, x, alpha=alpha)


def _to_csr(index: torch.Tensor, value: torch.Tensor, num_nodes: int) -> torch.Tensor:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        coo = torch.sparse_coo_tensor(index, value, (num_nodes, num_nodes),
                                      check_invariants=False)
        return coo.coalesce().to_sparse_csr()


def rescaled_laplacian_entries(
    edge_index: torch.Tensor,
    edge_weight: torch.Tensor | None,
    num_nodes: int,
    normalization: str | None,
    lambda_max: float | torch.Tensor | None,
    batch: torch.Tensor | None,
    dtype: torch.dtype,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Entries ``(index [2, E'], value [E'])`` of :math:`2L/\lambda_\max - I`, computed as
    ``ChebConv.__norm__`` does (self loops included), differentiable in ``edge_weight``.

    ``lambda_max``: ``None`` (PyG's default: twice the largest Laplacian entry), a scalar,
    or a tensor ``[num_graphs]`` indexed through ``batch``.
    """
    if edge_weight is not None:
        edge_weight = edge_weight.to(dtype)
    index, value = get_laplacian(edge_index, edge_weight, normalization, dtype, num_nodes)
    if lambda_max is None:
        lambda_max = 2.0 * value.max()
    elif not isinstance(lambda_max, torch.Tensor):
        lambda_max = torch.tensor(lambda_max, dtype=dtype, device=index.device)
    lambda_max = lambda_max.to(device=index.device, dtype=dtype)
    if batch is not None and lambda_max.numel() > 1:
        lambda_max = lambda_max[batch[index[0]]]
    value = (2.0 * value) / lambda_max
    value = value.masked_fill(value == float("inf"), 0)
    return index, value - (index[0] == index[1]).to(dtype)


def build_chebyshev_operator(
    edge_index: torch.Tensor,
    edge_weight: torch.Tensor | None,
    num_nodes: int,
    normalization: str | None,
    lambda_max: float | torch.Tensor | None,
    batch: torch.Tensor | None,
    dtype: torch.dtype,
) -> ChebyshevOperator:
    r"""Assemble the operator of :func:`rescaled_laplacian_entries` as CSR matrices."""
    if edge_index.numel() and int(edge_index.max()) >= num_nodes:
        raise ValueError(
            f"x has {num_nodes} nodes but edge_index refers to node {int(edge_index.max())}; "
            "x must hold one row per node of the graph (dimension -2)"
        )
    with torch.no_grad():
        index, value = rescaled_laplacian_entries(edge_index, edge_weight, num_nodes,
                                                  normalization, lambda_max, batch, dtype)
    # Messages flow source (row 0) -> target (row 1): the applied matrix is M[t, s].
    applied = _to_csr(index.flip(0), value, num_nodes)
    transposed = _to_csr(index, value, num_nodes) if normalization == "rw" else applied
    view = scipy_view(applied)
    view_t = view if transposed is applied else scipy_view(transposed)
    return ChebyshevOperator(applied, transposed, view, view_t)


# ---------------------------------------------------------------------------- cache
_MAX_ENTRIES = 16
_cache: OrderedDict[tuple, tuple[tuple, ChebyshevOperator]] = OrderedDict()
_lock = threading.Lock()


def _identity(tensor: torch.Tensor | None) -> tuple:
    if tensor is None:
        return (None,)
    return (id(tensor), tensor._version, tensor.data_ptr(), tuple(tensor.shape), tensor.device)


def _alive(refs: tuple, tensors: tuple) -> bool:
    """The cached entry was made from these very tensor objects (not a recycled id)."""
    return all((ref is None and t is None) or (ref is not None and ref() is t)
               for ref, t in zip(refs, tensors, strict=True))


def chebyshev_operator(
    edge_index: torch.Tensor,
    edge_weight: torch.Tensor | None,
    num_nodes: int,
    normalization: str | None,
    lambda_max: float | torch.Tensor | None,
    batch: torch.Tensor | None,
    dtype: torch.dtype,
) -> ChebyshevOperator:
    """:func:`build_chebyshev_operator`, cached on the identity of the input tensors.

    The cache holds the most recent graphs (16); entries are dropped when a key tensor is
    garbage-collected or edited in place (its version counter changes).
    """
    tensors = (edge_index, edge_weight, batch,
               lambda_max if isinstance(lambda_max, torch.Tensor) else None)
    scalar = None if isinstance(lambda_max, torch.Tensor) or lambda_max is None \
        else float(lambda_max)
    key = (*(_identity(t) for t in tensors), num_nodes, normalization, scalar,
           lambda_max is None, dtype)
    with _lock:
        entry = _cache.get(key)
        if entry is not None and _alive(entry[0], tensors):
            _cache.move_to_end(key)
            return entry[1]
    operator = build_chebyshev_operator(edge_index, edge_weight, num_nodes, normalization,
                                        lambda_max, batch, dtype)
    refs = tuple(None if t is None else weakref.ref(t) for t in tensors)
    with _lock:
        _cache[key] = (refs, operator)
        while len(_cache) > _MAX_ENTRIES:
            _cache.popitem(last=False)
    # Free the operator as soon as the graph's tensors are gone.
    weakref.finalize(edge_index, _evict, key)
    return operator


def _evict(key: tuple) -> None:
    with _lock:
        _cache.pop(key, None)


def clear_operator_cache() -> None:
    """Forget every cached operator (frees their memory)."""
    with _lock:
        _cache.clear()
