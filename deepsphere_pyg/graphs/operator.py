r"""The spectral operators of a graph, written once: Laplacian assembly, the rescaled
Chebyshev operator, the sparse-product wrapper and the Chebyshev recurrence.

For a weighted adjacency :math:`W` with degrees :math:`D = \mathrm{diag}(W \mathbf{1})`:

* ``normalization=None`` — combinatorial :math:`L = D - W`;
* ``"sym"`` — symmetric normalised :math:`L = I - D^{-1/2} W D^{-1/2}`;
* ``"rw"`` — random walk :math:`L = I - D^{-1} W`

(nodes of zero degree get :math:`D^{-1} = 0`), and, for nodes of masses (areas)
:math:`m_i > 0`, :math:`M = \mathrm{diag}(m)`:

* ``"mass"`` — the area-aware Laplacian :math:`\frac{1}{c} M^{-1} L_m` with
  :math:`(L_m)_{ij} = -m_i m_j w_{ij}` (:math:`i \ne j`),
  :math:`(L_m)_{ii} = \sum_{j \ne i} m_i m_j w_{ij}`, applied in its symmetric form

  .. math::
      S = \frac{1}{c} M^{-1/2} L_m M^{-1/2}, \qquad
      S_{ij} = -\frac{\sqrt{m_i m_j}\, w_{ij}}{c}, \quad
      S_{ii} = \frac{1}{c} \sum_{j \ne i} m_j w_{ij},

  which is similar to :math:`\frac1c M^{-1} L_m = M^{-1/2} S M^{1/2}` (same spectrum;
  an eigenvector :math:`v` of :math:`S` gives :math:`M^{-1/2} v` of :math:`M^{-1} L_m`).
  :math:`(M^{-1} L_m f)_i = \sum_j m_j w_{ij} (f_i - f_j)` is a quadrature of
  :math:`\int k(x_i, y) (f(x_i) - f(y))\, dy`, whatever the node density: for a kernel
  that is isotropic around :math:`x_i`, a second-order Taylor expansion gives
  :math:`\approx -c_i\, \Delta f(x_i)` with :math:`c_i = \frac14 \sum_j m_j w_{ij}
  d_{ij}^2`, and for the heat kernel :math:`w = \exp(-d^2 / 4t)` resolved by the edges
  :math:`c = \frac14 \int e^{-|u|^2/4t} |u|^2\, du = 4\pi t^2` (on the 2-sphere,
  :math:`\int e^{-|x-y|^2/4t} (f(x) - f(y))\, dy \approx -4\pi t^2\, \Delta f(x)`).
  The constant :math:`c` (:func:`mass_constant`: the area-weighted mean of :math:`c_i`,
  which also holds for truncated k-NN kernels) makes the low eigenvalues approximate
  :math:`\ell(\ell + 1)`, those of :math:`-\Delta_{S^2}`. A filter of node values is
  :math:`g(M^{-1} L_m)\, x = M^{-1/2} g(S) M^{1/2} x`.

A Chebyshev filter applies polynomials of
the rescaled operator :math:`\tilde L = 2L / \lambda_\max - I`, whose spectrum lies in
:math:`[-1, 1]`, through the three-term recurrence

.. math::
    T_0 x = x, \quad T_1 x = \tilde L x, \quad T_k x = 2 \tilde L\, T_{k-1} x - T_{k-2} x,

one sparse product per term (:func:`chebyshev_basis`, :func:`chebyshev_series`).

Two assemblies serve two callers, both here:

* :func:`laplacian_scipy` / :func:`rescale` build scipy CSR matrices from a graph's
  tensors, for the graph-level functions of :mod:`~deepsphere_pyg.graphs.laplacian`,
  fixed filters and the scattering backend;
* :func:`rescaled_laplacian_entries` follows ``torch_geometric.nn.ChebConv.__norm__`` (through
  :func:`torch_geometric.utils.get_laplacian`, so normalisations match PyG bit for bit,
  and differentiable in the edge weights), for the convolution layer.

:class:`SparseOperator` applies either as ``M @ x`` with the kernel chosen per call.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence

import numpy as np
import scipy.sparse
import torch
from torch_geometric.utils import get_laplacian

__all__ = [
    "CPU_KERNELS",
    "NORMALIZATIONS",
    "EdgeOperator",
    "SparseOperator",
    "chebyshev_basis",
    "chebyshev_series",
    "check_node_weight",
    "check_normalization",
    "csr_from_entries",
    "csr_from_parts",
    "csr_parts",
    "gershgorin_bound",
    "laplacian_scipy",
    "mass_constant",
    "mass_laplacian_entries",
    "numpy_float",
    "rescale",
    "rescaled_laplacian_entries",
    "scipy_to_torch_csr",
    "scipy_view",
]

#: Laplacian normalisations: combinatorial, symmetric, random walk, and the mass
#: Laplacian (node masses needed; accepted where a caller passes ``mass=True`` to
#: :func:`check_normalization`).
NORMALIZATIONS = (None, "sym", "rw", "mass")

#: Kernels of :class:`SparseOperator` on CPU: ``"auto"`` (scipy for fewer than
#: :data:`TORCH_CPU_MIN_COLUMNS` columns, torch otherwise), ``"torch"`` (``torch.sparse``
#: CSR, multi-threaded, accumulates in place) or ``"scipy"`` (scipy's single-threaded
#: CSR product on zero-copy views). CUDA, other dtypes and autograd always use torch.
CPU_KERNELS = ("auto", "torch", "scipy")

#: Fewest columns for which the ``"auto"`` kernel uses torch's CSR product rather than
#: scipy's (timings in BENCHMARKS.md, "Sparse products").
TORCH_CPU_MIN_COLUMNS = 2

_SCIPY_DTYPES = (torch.float32, torch.float64)


def check_normalization(normalization: object, *, mass: bool = False) -> str | None:
    """``normalization`` if it is one of :data:`NORMALIZATIONS` (``"mass"`` only with
    ``mass=True``: callers that take node masses), else a ``ValueError``."""
    if normalization == "mass" and not mass:
        raise ValueError("normalization='mass' (the mass Laplacian, which needs node "
                         "masses) is not available here; use None, 'sym' or 'rw'")
    if normalization not in NORMALIZATIONS:
        extra = ", or 'mass' (the mass Laplacian, with node_weight)" if mass else ""
        raise ValueError(
            f"normalization must be None, 'sym' or 'rw' (None: the combinatorial Laplacian "
            f"D - W){extra}, got {normalization!r}"
        )
    return normalization  # type: ignore[return-value]


def check_node_weight(node_weight: object, num_nodes: int, *, values: bool = True
                      ) -> torch.Tensor:
    """``node_weight`` as a floating tensor ``[N]`` of positive finite masses, else a
    ``ValueError`` saying how to get them (``values=False``: type and shape only, no
    look at the data, e.g. inside a compiled graph)."""
    fix = ("pass node_weight=graph.node_weight (builders set it) or "
           "deepsphere_pyg.graphs.node_weight.node_weight(graph): the [N] node areas")
    if node_weight is None:
        raise ValueError(f"normalization='mass' needs node_weight, the masses of the nodes; "
                         f"{fix}")
    if isinstance(node_weight, np.ndarray):
        node_weight = torch.from_numpy(node_weight)
    if not isinstance(node_weight, torch.Tensor) or not node_weight.is_floating_point():
        raise ValueError(f"node_weight must be a floating tensor [N]; {fix}")
    if tuple(node_weight.shape) != (int(num_nodes),):
        raise ValueError(f"node_weight must have shape [N] = [{int(num_nodes)}] (one mass per "
                         f"node), got {list(node_weight.shape)}; {fix}")
    if not values:
        return node_weight
    bad = ~(torch.isfinite(node_weight) & (node_weight > 0))
    if bool(bad.any()):
        raise ValueError(f"node_weight must be positive and finite, got {int(bad.sum())} "
                         f"non-positive or non-finite mass(es) (e.g. node "
                         f"{int(torch.nonzero(bad)[0])}); {fix}")
    return node_weight


def numpy_float(dtype: torch.dtype, *, storage: bool = False) -> type[np.floating]:
    """The numpy type for tensors of the floating ``dtype``.

    Computations (default) run in float32 for float32 and narrower floats (float16,
    bfloat16; scipy's sparse kernels have no half precision) and in float64 otherwise;
    ``storage=True`` gives the type that holds the values exactly as ``dtype`` will
    (float16 for float16; float64 where numpy has no equivalent, bfloat16).
    """
    if storage:
        return {torch.float16: np.float16, torch.float32: np.float32}.get(dtype, np.float64)
    return np.float32 if dtype in (torch.float32, torch.float16, torch.bfloat16) else np.float64


# ------------------------------------------------------------------ scipy assembly
def laplacian_scipy(
    edge_index: torch.Tensor,
    edge_weight: torch.Tensor | None = None,
    num_nodes: int | None = None,
    normalization: str | None = None,
    dtype: type[np.floating] = np.float64,
    *,
    node_weight: torch.Tensor | np.ndarray | None = None,
    scale: float = 1.0,
) -> scipy.sparse.csr_array:
    """The Laplacian as a scipy CSR array ``[N, N]`` of ``dtype``, with sorted indices.

    Args:
        edge_index: ``[2, E]`` edges (both directions present for an undirected graph).
        edge_weight: ``[E]`` weights (default: ones).
        num_nodes: ``N`` (default: the largest node id + 1).
        normalization: one of :data:`NORMALIZATIONS`; ``"mass"`` gives the symmetric
            form :math:`S` (module docstring).
        dtype: numpy floating type of the result.
        node_weight: ``[N]`` positive node masses (``"mass"`` only, required there).
        scale: the constant :math:`c` of ``"mass"`` (:func:`mass_constant`; default 1).
    """
    check_normalization(normalization, mass=True)
    row, col = edge_index.detach().cpu().numpy()
    n = int(num_nodes) if num_nodes is not None else int(edge_index.max()) + 1
    if normalization == "mass":
        return _mass_laplacian_scipy(edge_index, edge_weight, n, node_weight, scale, dtype)
    if edge_weight is None:
        weight = np.ones(row.shape[0], dtype=dtype)
    else:
        weight = edge_weight.detach().cpu().numpy().astype(dtype, copy=False)
    if node_weight is not None:
        raise ValueError(f"node_weight applies to normalization='mass' only, got "
                         f"normalization={normalization!r}")
    adjacency = scipy.sparse.csr_array(
        scipy.sparse.coo_array((weight, (row, col)), shape=(n, n))
    )
    degree = np.asarray(adjacency.sum(axis=1)).ravel()
    if normalization is None:
        lap = scipy.sparse.diags_array(degree) - adjacency
    else:
        with np.errstate(divide="ignore"):
            inv = 1.0 / (np.sqrt(degree) if normalization == "sym" else degree)
        inv[~np.isfinite(inv)] = 0.0
        left = scipy.sparse.diags_array(inv)
        right = left if normalization == "sym" else scipy.sparse.identity(n, dtype=dtype)
        lap = scipy.sparse.identity(n, dtype=dtype) - left @ adjacency @ right
    lap = scipy.sparse.csr_array(lap, dtype=dtype)
    lap.sort_indices()
    return lap


def _mass_laplacian_scipy(edge_index: torch.Tensor, edge_weight: torch.Tensor | None,
                          n: int, node_weight: object, scale: float,
                          dtype: type[np.floating]) -> scipy.sparse.csr_array:
    """:math:`S / c` (module docstring) as scipy CSR: the entries of
    :func:`mass_laplacian_entries`, computed in float64."""
    if not (np.isfinite(scale) and scale > 0):
        raise ValueError(f"scale (the constant c of the mass Laplacian) must be positive "
                         f"and finite, got {scale!r}")
    if isinstance(node_weight, np.ndarray):
        node_weight = torch.from_numpy(node_weight)
    mass = check_node_weight(node_weight, n).detach().cpu().double()
    weight = None if edge_weight is None else edge_weight.detach().cpu().double()
    index, value = mass_laplacian_entries(edge_index.detach().cpu(), weight, mass, n,
                                          torch.float64)
    row, col = index.numpy()
    lap = scipy.sparse.coo_array(((value / scale).numpy().astype(dtype), (row, col)),
                                 shape=(n, n))
    lap = scipy.sparse.csr_array(lap, dtype=dtype)
    lap.sort_indices()
    return lap


def mass_constant(pos: torch.Tensor | np.ndarray, edge_index: torch.Tensor,
               edge_weight: torch.Tensor | None, node_weight: torch.Tensor | np.ndarray
               ) -> float:
    r"""The constant :math:`c` of the mass Laplacian (module docstring): the area-weighted
    mean of the second moments :math:`c_i = \frac14 \sum_j m_j w_{ij} d_{ij}^2`,

    .. math::
        c = \frac{\sum_i m_i c_i}{\sum_i m_i},

    with :math:`d_{ij}` the chord distance of the unit vectors ``pos`` ``[N, 3]`` (for a
    heat kernel resolved by the edges, :math:`c pprox 4\pi t^2`). Computed in float64.
    """
    pos = torch.as_tensor(pos).detach().cpu().double()
    mass = check_node_weight(torch.as_tensor(node_weight), pos.shape[0]).detach().cpu().double()
    row, col = edge_index.detach().cpu()
    weight = (torch.ones(row.numel(), dtype=torch.float64) if edge_weight is None
              else edge_weight.detach().cpu().double())
    dist2 = (pos[row] - pos[col]).pow(2).sum(1)
    moment = torch.zeros_like(mass).index_add_(0, row, mass[col] * weight * dist2) / 4.0
    value = float((mass * moment).sum() / mass.sum())
    if not value > 0:
        raise ValueError("the graph has no edges of positive length: the mass Laplacian's "
                         "constant c is zero")
    return value


def gershgorin_bound(lap: scipy.sparse.csr_array) -> float:
    r"""Gershgorin's bound :math:`\max_i \sum_j |L_{ij}|` of the largest eigenvalue (one
    pass over the entries; :math:`2 \max_i d_i` for the combinatorial Laplacian)."""
    if not lap.nnz:
        return 0.0
    row_sums = np.add.reduceat(np.abs(lap.data), lap.indptr[:-1])
    row_sums[np.diff(lap.indptr) == 0] = 0.0
    return float(row_sums.max())


def rescale(lap: scipy.sparse.csr_array, lambda_max: float) -> scipy.sparse.csr_array:
    r""":math:`\tilde L = 2L / \lambda_\max - I` of a scipy Laplacian, CSR with sorted
    indices, in the dtype of ``lap``."""
    scaled = (2.0 / lambda_max) * lap - scipy.sparse.identity(lap.shape[0], dtype=lap.dtype)
    scaled = scipy.sparse.csr_array(scaled)
    scaled.sort_indices()
    return scaled


def scipy_to_torch_csr(
    matrix: scipy.sparse.csr_array,
    dtype: torch.dtype,
    *,
    index_dtype: torch.dtype = torch.int64,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """A scipy CSR array as a ``torch.sparse_csr_tensor`` of ``dtype`` (values) and
    ``index_dtype`` (``crow_indices``, ``col_indices``) on ``device``."""
    matrix = scipy.sparse.csr_array(matrix)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(
            torch.from_numpy(matrix.indptr).to(index_dtype),
            torch.from_numpy(matrix.indices).to(index_dtype),
            torch.from_numpy(matrix.data).to(dtype),
            size=matrix.shape,
            device=device,
            check_invariants=False,
        )


def scipy_view(matrix: torch.Tensor) -> scipy.sparse.csr_array | None:
    """A scipy CSR array sharing the memory of a CPU float CSR tensor (``None`` for other
    devices and dtypes)."""
    if matrix.device.type != "cpu" or matrix.dtype not in _SCIPY_DTYPES:
        return None
    return scipy.sparse.csr_array(
        (matrix.values().numpy(), matrix.col_indices().numpy(),
         matrix.crow_indices().numpy()), shape=tuple(matrix.shape), copy=False)


# ------------------------------------------------------------------- PyG assembly
def mass_laplacian_entries(
    edge_index: torch.Tensor,
    edge_weight: torch.Tensor | None,
    node_weight: torch.Tensor,
    num_nodes: int,
    dtype: torch.dtype,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Entries ``(index [2, E + N], value [E + N])`` of the symmetric mass Laplacian
    :math:`S` with :math:`c = 1` (module docstring): the edges, then the diagonal;
    differentiable in ``edge_weight`` and ``node_weight``."""
    mass = check_node_weight(node_weight, num_nodes,
                             values=not torch.compiler.is_compiling()).to(dtype)
    row, col = edge_index
    weight = (torch.ones(row.numel(), dtype=dtype, device=row.device) if edge_weight is None
              else edge_weight.to(dtype))
    root = mass.sqrt()
    off = -(root[row] * root[col]) * weight
    diagonal = torch.zeros(num_nodes, dtype=dtype, device=row.device).index_add(
        0, row, mass[col] * weight)
    loops = torch.arange(num_nodes, device=row.device, dtype=edge_index.dtype)
    index = torch.cat([edge_index, torch.stack([loops, loops])], dim=1)
    return index, torch.cat([off, diagonal])


def rescaled_laplacian_entries(
    edge_index: torch.Tensor,
    edge_weight: torch.Tensor | None,
    num_nodes: int,
    normalization: str | None,
    lambda_max: float | torch.Tensor | None,
    batch: torch.Tensor | None,
    dtype: torch.dtype,
    node_weight: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Entries ``(index [2, E'], value [E'])`` of :math:`2L/\lambda_\max - I`, computed as
    ``ChebConv.__norm__`` does (self loops included), differentiable in ``edge_weight``.

    ``lambda_max``: ``None`` (PyG's default: twice the largest Laplacian entry), a scalar,
    or a tensor ``[num_graphs]`` indexed through ``batch``. ``normalization="mass"``
    assembles :math:`S` (:func:`mass_laplacian_entries`, :math:`c = 1`) from
    ``node_weight`` ``[N]``; twice its largest entry, :math:`2 \max_i \sum_j m_j w_{ij}`,
    is Gershgorin's bound of :math:`M^{-1} L_m`, whose spectrum :math:`S` shares.
    """
    if normalization == "mass":
        index, value = mass_laplacian_entries(edge_index, edge_weight, node_weight,
                                              num_nodes, dtype)
        return _rescaled(index, value, lambda_max, batch, dtype)
    if node_weight is not None:
        raise ValueError(f"node_weight applies to normalization='mass' only, got "
                         f"normalization={normalization!r}")
    if edge_weight is not None:
        edge_weight = edge_weight.to(dtype)
    index, value = get_laplacian(edge_index, edge_weight, normalization, dtype, num_nodes)
    return _rescaled(index, value, lambda_max, batch, dtype)


def _rescaled(index: torch.Tensor, value: torch.Tensor, lambda_max: float | torch.Tensor | None,
              batch: torch.Tensor | None, dtype: torch.dtype
              ) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The entries of :math:`2L/\lambda_\max - I` from those of :math:`L`."""
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


def csr_from_entries(index: torch.Tensor, value: torch.Tensor, num_nodes: int) -> torch.Tensor:
    """``[N, N]`` CSR tensor of the entries ``value`` at ``index`` (duplicates summed)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        coo = torch.sparse_coo_tensor(index, value, (num_nodes, num_nodes),
                                      check_invariants=False)
        return coo.coalesce().to_sparse_csr()


def csr_parts(matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(crow_indices [N + 1], col_indices [nnz], values [nnz])`` of a CSR tensor, as
    dense tensors (module buffers that copy, move and cast like any other). They are
    copies, not views of the sparse tensor: :func:`torch.compile` cannot trace a view
    whose base is sparse."""
    return matrix.crow_indices().clone(), matrix.col_indices().clone(), matrix.values().clone()


def csr_from_parts(crow: torch.Tensor, col: torch.Tensor, value: torch.Tensor,
                   num_nodes: int) -> torch.Tensor:
    """The ``[N, N]`` CSR tensor over the parts of :func:`csr_parts` (no copy)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(crow, col, value, (num_nodes, num_nodes),
                                       check_invariants=False)


def csr_entries(crow: torch.Tensor, col: torch.Tensor, value: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Entries ``(index [2, nnz], value [nnz])`` of the applied matrix :math:`M` held as
    CSR parts, as messages flow in PyG: ``index[0]`` the column (source), ``index[1]``
    the row (target). Traceable by :func:`torch.compile` (sparse tensors are not)."""
    # Entry e lies in row r when crow[r] <= e < crow[r + 1] (shapes known before the data).
    entries = torch.arange(col.numel(), device=crow.device, dtype=crow.dtype)
    rows = torch.searchsorted(crow, entries, right=True) - 1
    return torch.stack([col, rows]), value


# ---------------------------------------------------------------------- products
class SparseOperator:
    r"""``x -> M x`` for a sparse CSR matrix ``M`` ``[N, N]`` (and ``M^T`` for the backward
    of a fused layer), with the product kernel chosen per call.

    Args:
        matrix: CSR tensor ``M``.
        matrix_t: CSR tensor ``M^T`` (``None``: ``M`` is symmetric).
        kernel: CPU kernel, one of :data:`CPU_KERNELS`. scipy runs on zero-copy views and
            only for CPU float32/float64 signals; ``"auto"`` also keeps autograd signals
            on torch (scipy's result has no graph).
    """

    __slots__ = ("kernel", "matrix", "matrix_t", "view", "view_t")

    def __init__(self, matrix: torch.Tensor, matrix_t: torch.Tensor | None = None,
                 *, kernel: str = "auto") -> None:
        if kernel not in CPU_KERNELS:
            raise ValueError(f"CPU kernel must be one of {CPU_KERNELS}, got {kernel!r}")
        self.matrix = matrix
        self.matrix_t = matrix if matrix_t is None else matrix_t
        self.kernel = kernel
        self.view = scipy_view(matrix) if kernel != "torch" else None
        self.view_t = self.view if self.matrix_t is matrix else (
            scipy_view(self.matrix_t) if kernel != "torch" else None)

    @classmethod
    def for_signals(cls, matrix: torch.Tensor, dtype: torch.dtype) -> SparseOperator:
        """The ``"auto"`` operator of ``matrix`` cast to the signals' ``dtype``."""
        return cls(matrix if matrix.dtype == dtype else matrix.to(dtype))

    def with_kernel(self, kernel: str) -> SparseOperator:
        """The same matrices with another CPU kernel (no copy)."""
        if kernel == self.kernel:
            return self
        return SparseOperator(self.matrix, None if self.matrix_t is self.matrix
                              else self.matrix_t, kernel=kernel)

    @property
    def num_nodes(self) -> int:
        return int(self.matrix.shape[0])

    def _scipy(self, x: torch.Tensor) -> bool:
        if self.view is None or x.device.type != "cpu" or x.dtype not in _SCIPY_DTYPES:
            return False
        if self.kernel == "scipy":
            return True
        return (x.shape[1] < TORCH_CPU_MIN_COLUMNS
                and not (x.requires_grad and torch.is_grad_enabled()))

    def mm(self, x: torch.Tensor, transpose: bool = False) -> torch.Tensor:
        """``M @ x`` (``transpose``: ``M^T @ x``) for ``x`` ``[N, C]``."""
        if self._scipy(x):
            view = self.view_t if transpose else self.view
            return torch.from_numpy(view @ x.detach().contiguous().numpy())
        return torch.mm(self.matrix_t if transpose else self.matrix, x)

    __call__ = mm

    def addmm(self, c: torch.Tensor, x: torch.Tensor, beta: float = 1.0, alpha: float = 1.0,
              transpose: bool = False) -> torch.Tensor:
        """``beta * c + alpha * M @ x`` as a new tensor."""
        if self._scipy(x):
            out = self.mm(x, transpose)
            if alpha != 1.0:
                out.mul_(alpha)
            return out.add_(c, alpha=beta)
        matrix = self.matrix_t if transpose else self.matrix
        return torch.addmm(c, matrix, x, beta=beta, alpha=alpha)

    def addmm_(self, c: torch.Tensor, x: torch.Tensor, alpha: float = 1.0,
               transpose: bool = False) -> torch.Tensor:
        """``c += alpha * M @ x`` in place (no new ``[N, C]`` allocation with torch)."""
        if self._scipy(x):
            return c.add_(self.mm(x, transpose), alpha=alpha)
        return c.addmm_(self.matrix_t if transpose else self.matrix, x, alpha=alpha)

    def step(self, current: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
        """The Chebyshev step :math:`2 M x_k - x_{k-1}`."""
        return self.addmm(previous, current, beta=-1.0, alpha=2.0)


class EdgeOperator:
    r"""``x -> M x`` for ``M`` given by entries ``(index [2, E], value [E])``, applied with
    differentiable gathers and scatters (gradients reach ``value``). Messages flow from
    ``index[0]`` to ``index[1]``: :math:`(M x)_t = \sum_{(s, t)} v_{st} x_s`."""

    def __init__(self, index: torch.Tensor, value: torch.Tensor) -> None:
        self.source, self.target = index
        self.value = value.view(-1, 1)

    def mm(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x).index_add(0, self.target, self.value * x[self.source])

    __call__ = mm

    def step(self, current: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
        """The Chebyshev step :math:`2 M x_k - x_{k-1}`."""
        return 2.0 * self.mm(current) - previous


# --------------------------------------------------------------------- recurrence
def chebyshev_basis(
    x: torch.Tensor, operator: SparseOperator | EdgeOperator, order: int
) -> Iterator[torch.Tensor]:
    r"""The terms :math:`T_0 x, \dots, T_{K-1} x` (``K = order``) of the recurrence, one
    product per term, each ``[N, C]`` like ``x``."""
    yield x
    if order < 2:
        return
    previous, current = x, operator.mm(x)
    yield current
    for _ in range(order - 2):
        previous, current = current, operator.step(current, previous)
        yield current


def chebyshev_series(
    x: torch.Tensor, operator: SparseOperator | EdgeOperator, coefficients: Sequence[float]
) -> torch.Tensor:
    r""":math:`\sum_k c_k T_k(\tilde L)\, x` for ``x`` ``[N]`` or ``[N, C]`` (same shape out)."""
    signal = x if x.dim() == 2 else x.unsqueeze(1)
    terms = chebyshev_basis(signal, operator, len(coefficients))
    out = coefficients[0] * next(terms)
    for coefficient, term in zip(coefficients[1:], terms, strict=True):
        out = out + coefficient * term
    return out if x.dim() == 2 else out.squeeze(1)
