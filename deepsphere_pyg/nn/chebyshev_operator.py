r"""The rescaled Laplacian that a Chebyshev convolution applies, built once per graph.

:class:`torch_geometric.nn.ChebConv` rebuilds its normalised Laplacian at every forward
pass. Here the operator

.. math::
    \hat L = \frac{2 L}{\lambda_\max} - I

is assembled once as a sparse CSR matrix (by
:func:`~deepsphere_pyg.graphs.operator.rescaled_laplacian_entries`, which matches PyG's
normalisations bit for bit). A model that owns its hierarchy builds its operators in
``__init__``; for the drop-in path, where PyG hands the layer raw ``edge_index`` tensors,
:func:`chebyshev_operator` caches them, keyed by the identity and in-place version of the
``edge_index`` / ``edge_weight`` tensors, so every layer that sees the same graph tensors
shares one operator, and an edited graph gets a new one.

PyG propagates messages from ``edge_index[0]`` (source) to ``edge_index[1]`` (target), so
the matrix applied is :math:`M_{ts} = \hat L_{st}`, i.e. :math:`\hat L^\top` (the same for
the symmetric normalisations, the transpose for ``"rw"``); the operator
(:class:`~deepsphere_pyg.graphs.operator.SparseOperator`) holds :math:`M` and
:math:`M^\top` (for the backward pass).
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict

import torch

from ..graphs.operator import (
    SparseOperator,
    csr_from_entries,
    csr_parts,
    rescaled_laplacian_entries,
)

__all__ = [
    "ChebyshevOperator",
    "chebyshev_operator",
    "clear_operator_cache",
    "get_cpu_kernel",
    "set_cpu_kernel",
]

#: The operator type the convolution applies (the library's one sparse-product wrapper).
ChebyshevOperator = SparseOperator

#: CPU kernels the convolution can use: ``"torch"`` (``torch.sparse`` CSR,
#: multi-threaded, accumulates in place; the default) or ``"scipy"`` (scipy's
#: single-threaded CSR product on zero-copy views). ``scripts/bench_conv.py`` measures
#: both. CUDA always uses torch.
CPU_KERNELS = ("torch", "scipy")
_cpu_kernel = "torch"


def set_cpu_kernel(name: str) -> None:
    """Choose the CPU sparse-product kernel of the convolution, ``"torch"`` (default) or
    ``"scipy"``."""
    global _cpu_kernel
    if name not in CPU_KERNELS:
        raise ValueError(f"CPU kernel must be one of {CPU_KERNELS}, got {name!r}")
    _cpu_kernel = name


def get_cpu_kernel() -> str:
    """The CPU sparse-product kernel the convolution uses."""
    return _cpu_kernel


# ---------------------------------------------------------------------------- cache
_MAX_ENTRIES = 16
_cache: OrderedDict[tuple, tuple[tuple, SparseOperator]] = OrderedDict()
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
    *,
    cache: bool = True,
    node_weight: torch.Tensor | None = None,
) -> SparseOperator:
    r"""The operator of :func:`~deepsphere_pyg.graphs.operator.rescaled_laplacian_entries`
    as CSR matrices :math:`M` and :math:`M^\top` (module docstring), with the CPU kernel
    of :func:`get_cpu_kernel` at the time of the call. ``node_weight`` ``[N]``: the node
    masses of ``normalization="mass"`` (the symmetric form :math:`S`, so :math:`M^\top =
    M`); part of the cache key like the edge tensors.

    With ``cache=True`` (the drop-in path, where PyG hands the layer raw tensors) it is
    cached on the identity of the input tensors: the cache holds the most recent graphs
    (16); entries are dropped when a key tensor is garbage-collected or edited in place
    (its version counter changes). ``cache=False`` builds it afresh (an owner of a fixed
    graph keeping it as a buffer).
    """
    if not cache:
        return _build(edge_index, edge_weight, num_nodes, normalization, lambda_max, batch,
                      dtype, node_weight)
    tensors = (edge_index, edge_weight, batch,
               lambda_max if isinstance(lambda_max, torch.Tensor) else None)
    if node_weight is not None:  # keys of the other normalisations stay as they were
        tensors = (*tensors, node_weight)
    scalar = None if isinstance(lambda_max, torch.Tensor) or lambda_max is None \
        else float(lambda_max)
    key = (*(_identity(t) for t in tensors), num_nodes, normalization, scalar,
           lambda_max is None, dtype)
    with _lock:
        entry = _cache.get(key)
        if entry is not None and _alive(entry[0], tensors):
            _cache.move_to_end(key)
            return entry[1].with_kernel(_cpu_kernel)
    operator = _build(edge_index, edge_weight, num_nodes, normalization, lambda_max, batch,
                      dtype, node_weight)
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


def _build(edge_index: torch.Tensor, edge_weight: torch.Tensor | None, num_nodes: int,
           normalization: str | None, lambda_max: float | torch.Tensor | None,
           batch: torch.Tensor | None, dtype: torch.dtype,
           node_weight: torch.Tensor | None = None) -> SparseOperator:
    if edge_index.numel() and int(edge_index.max()) >= num_nodes:
        raise ValueError(
            f"x has {num_nodes} nodes but edge_index refers to node {int(edge_index.max())}; "
            "x must hold one row per node of the graph (dimension -2)"
        )
    with torch.no_grad():
        index, value = rescaled_laplacian_entries(edge_index, edge_weight, num_nodes,
                                                  normalization, lambda_max, batch, dtype,
                                                  node_weight)
    # Messages flow source (row 0) -> target (row 1): the applied matrix is M[t, s].
    applied = csr_from_entries(index.flip(0), value, num_nodes)
    transposed = csr_from_entries(index, value, num_nodes) if normalization == "rw" else None
    return SparseOperator(applied, transposed, kernel=_cpu_kernel)


# ------------------------------------------------------ under torch.compile
@torch.library.custom_op("deepsphere_pyg::chebyshev_operator_csr", mutates_args=())
def chebyshev_operator_csr(edge_index: torch.Tensor, edge_weight: torch.Tensor | None,
                           num_nodes: int, normalization: str | None,
                           lambda_max: float | None, dtype: torch.dtype,
                           node_weight: torch.Tensor | None = None
                           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`chebyshev_operator` (cached) as the dense CSR parts ``(crow, col, value)``
    of :math:`M` (copies): one opaque operation for :func:`torch.compile`, which cannot
    trace the cache nor sparse tensors. The symmetric normalisations only (the fused
    product's backward applies :math:`M^\\top = M`), ``"mass"`` included."""
    operator = chebyshev_operator(edge_index, edge_weight, num_nodes, normalization,
                                  lambda_max, None, dtype, node_weight=node_weight)
    return csr_parts(operator.matrix)


@chebyshev_operator_csr.register_fake
def _chebyshev_operator_csr_fake(edge_index, edge_weight, num_nodes, normalization,
                                 lambda_max, dtype, node_weight=None):
    entries = torch.library.get_ctx().new_dynamic_size()
    return (edge_index.new_empty(num_nodes + 1, dtype=torch.long),
            edge_index.new_empty(entries, dtype=torch.long),
            torch.empty(entries, dtype=dtype, device=edge_index.device))
