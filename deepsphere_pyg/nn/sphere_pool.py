"""SpherePool: max or average pooling of sphere signals over the children of each parent."""

from __future__ import annotations

import weakref

import torch
from torch import Tensor

POOL_MODES = ("max", "avg")


def check_mode(mode: object, modes: tuple[str, ...]) -> str:
    """``mode`` if it is one of ``modes``, else a ValueError listing them."""
    if mode not in modes:
        raise ValueError(f"mode must be one of {modes}, got {mode!r}")
    return str(mode)


class ModeLayer(torch.nn.Module):
    """A layer without parameters configured by one ``mode`` among ``modes`` (the pooling
    and unpooling layers); ``mode=None`` takes the class's ``default_mode``."""

    modes: tuple[str, ...] = ()
    default_mode: str = ""

    def __init__(self, mode: str | None = None) -> None:
        super().__init__()
        self.mode = check_mode(self.default_mode if mode is None else mode, self.modes)

    def reset_parameters(self) -> None:
        """No parameters: nothing to reset (kept for a uniform layer interface)."""

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(mode={self.mode!r})"

# id(pool_index) -> (weak reference, version counter, is regular). Checking that an index
# is the NEST map ``arange(N) // 4`` costs one pass over it; the answer is cached for the
# lifetime of the tensor (and invalidated by in-place edits through the version counter).
_REGULAR_CACHE: dict[int, tuple[weakref.ref, int, bool]] = {}


def is_regular_pool_index(pool_index: Tensor) -> bool:
    """Whether ``pool_index`` is the regular NEST map ``arange(N) // 4`` (4 children each).

    Full-sky HEALPix hierarchies (and disjoint batches of them) have this map; pooling
    and unpooling then reduce to reshapes. The answer is cached per tensor object. Under
    :func:`torch.compile` it is ``False`` (reading the data cannot be traced), so the
    general scatter path runs, with the same results.
    """
    if torch.compiler.is_compiling():
        return False
    num_children = pool_index.numel()
    if pool_index.dim() != 1 or num_children == 0 or num_children % 4:
        return False
    key = id(pool_index)
    try:
        version = pool_index._version
    except RuntimeError:  # inference tensors have no version counter: do not cache
        version = None
    entry = _REGULAR_CACHE.get(key)
    if entry is not None and version is not None and entry[0]() is pool_index \
            and entry[1] == version:
        return entry[2]
    parents = torch.arange(num_children // 4, device=pool_index.device)
    regular = bool((pool_index.view(-1, 4) == parents.view(-1, 1)).all())
    if version is not None:
        def forget(ref: weakref.ref, key: int = key) -> None:
            if _REGULAR_CACHE.get(key, (None,))[0] is ref:
                del _REGULAR_CACHE[key]

        _REGULAR_CACHE[key] = (weakref.ref(pool_index, forget), version, regular)
    return regular


def check_pool_index(pool_index: Tensor, num_children: int | None, name: str = "pool_index"
                     ) -> Tensor:
    """Validate a child -> parent map of ``num_children`` entries; return it as int64."""
    if not isinstance(pool_index, Tensor):
        raise TypeError(f"{name} must be a LongTensor [N_child], got {type(pool_index).__name__}")
    if pool_index.dim() != 1:
        raise ValueError(
            f"{name} must be 1-D [N_child] (the parent of each child node), got shape "
            f"{tuple(pool_index.shape)}"
        )
    if pool_index.dtype.is_floating_point or pool_index.dtype.is_complex \
            or pool_index.dtype == torch.bool:
        raise TypeError(f"{name} must hold integer node ids, got dtype {pool_index.dtype}")
    if num_children is not None and pool_index.numel() != num_children:
        raise ValueError(
            f"{name} has {pool_index.numel()} entries but the signal has {num_children} "
            "nodes; pass the pool_index of the level the signal lives on"
        )
    return pool_index if pool_index.dtype == torch.long else pool_index.long()


def infer_num_parents(pool_index: Tensor, name: str = "pool_index") -> int:
    """``max(pool_index) + 1``, checking that no id is negative (one device sync)."""
    if pool_index.numel() == 0:
        return 0
    low, high = pool_index.aminmax()
    if int(low) < 0:
        raise ValueError(f"{name} holds negative parent ids (min {int(low)})")
    return int(high) + 1


def _node_index(pool_index: Tensor, x: Tensor, node_dim: int) -> Tensor:
    """``pool_index`` broadcast (without copy) to the shape of ``x`` along ``node_dim``."""
    shape = [1] * x.dim()
    shape[node_dim] = -1
    return pool_index.view(shape).expand_as(x)


def sphere_pool(
    x: Tensor,
    pool_index: Tensor,
    mode: str = "max",
    num_parents: int | None = None,
    return_indices: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """Functional form of :class:`SpherePool` (same arguments and results)."""
    check_mode(mode, POOL_MODES)
    if return_indices and mode != "max":
        raise ValueError("return_indices=True needs mode='max' (averages have no argmax)")
    if not isinstance(x, Tensor) or x.dim() not in (2, 3):
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"x must be [N, F] or [B, N, F], got {shape}")
    node_dim = x.dim() - 2
    num_children = x.shape[node_dim]
    pool_index = check_pool_index(pool_index, num_children)
    if num_parents is not None:
        num_parents = int(num_parents)
        if num_parents < 0:
            raise ValueError(f"num_parents must be >= 0, got {num_parents}")
    if pool_index.device != x.device:
        raise ValueError(
            f"pool_index is on {pool_index.device} but x is on {x.device}; move it with .to()"
        )

    if is_regular_pool_index(pool_index) and num_parents in (None, num_children // 4):
        # NEST fast path: children of parent p are 4p..4p+3, contiguous.
        groups = x.unflatten(node_dim, (num_children // 4, 4))
        if mode == "avg":
            return groups.mean(dim=node_dim + 1)
        values, offsets = groups.max(dim=node_dim + 1)  # first maximum on ties
        if not return_indices:
            return values
        parents = torch.arange(num_children // 4, device=x.device)
        shape = [1] * x.dim()
        shape[node_dim] = -1
        return values, offsets + 4 * parents.view(shape)

    if num_parents is None:
        num_parents = infer_num_parents(pool_index)
    out_shape = list(x.shape)
    out_shape[node_dim] = num_parents

    if mode == "avg":
        counts = torch.bincount(pool_index, minlength=num_parents).clamp_(min=1)
        shape = [1] * x.dim()
        shape[node_dim] = -1
        total = x.new_zeros(out_shape).index_add_(node_dim, pool_index, x)
        return total / counts.view(shape).to(x.dtype)

    index = _node_index(pool_index, x, node_dim)
    need_argmax = return_indices or (x.requires_grad and torch.is_grad_enabled())
    if not need_argmax:
        return x.new_zeros(out_shape).scatter_reduce_(node_dim, index, x, "amax",
                                                      include_self=False)
    # Argmax by the first (lowest-id) child reaching the maximum, then gather: the gradient
    # goes to that child only, as in the fast path and torch.max.
    with torch.no_grad():
        data = x.detach()
        values = data.new_zeros(out_shape).scatter_reduce_(node_dim, index, data, "amax",
                                                           include_self=False)
        reached = values.gather(node_dim, index)
        winners = (data == reached) | (data.isnan() & reached.isnan())
        shape = [1] * x.dim()
        shape[node_dim] = -1
        child = torch.arange(num_children, device=x.device).view(shape)
        candidates = torch.where(winners, child, num_children)
        argmax = torch.full(out_shape, num_children, dtype=torch.long, device=x.device)
        argmax.scatter_reduce_(node_dim, index, candidates, "amin", include_self=True)
    if num_parents and not torch.compiler.is_compiling() \
            and bool((argmax == num_children).any()):
        raise ValueError(
            "some parents have no child in pool_index (num_parents too large?); every "
            "parent needs at least one child for max pooling with indices"
        )
    out = x.gather(node_dim, argmax)
    return (out, argmax) if return_indices else out


class SpherePool(ModeLayer):
    r"""Pooling of sphere signals from one level of a hierarchy to the next, coarser one.

    With :math:`\mathcal C(p) = \{i : \pi(i) = p\}` the children of parent :math:`p`
    (``pool_index`` is :math:`\pi`, as in :class:`~deepsphere_pyg.graphs.SphereHierarchy`):

    .. math::
        \mathbf{x}'_p = \max_{i \in \mathcal C(p)} \mathbf{x}_i \quad (\text{"max"}),
        \qquad
        \mathbf{x}'_p = \frac{1}{|\mathcal C(p)|} \sum_{i \in \mathcal C(p)} \mathbf{x}_i
        \quad (\text{"avg"}),

    per channel. One mechanism serves every sampling: the reduction is a scatter over
    ``pool_index`` (``torch.Tensor.scatter_reduce_`` / ``index_add_``, no torch-scatter).
    When ``pool_index`` is the regular NEST map ``arange(N) // 4`` (full-sky HEALPix, and
    disjoint batches of full-sky samples), detected once per index tensor and cached, the
    reduction is a reshape to ``[..., N/4, 4, F]`` instead.

    **Partial sky.** The ``pool_index`` of a masked hierarchy lists only observed children,
    so a parent on the border of the mask is the max or the mean of its *observed*
    children (the mean divides by their count, not by 4): unobserved area is neither
    zero-filled nor counted. The observed fraction of each parent is
    ``SphereHierarchy.coverage[l + 1]``; multiply by it to down-weight partial parents, or
    threshold it to drop them.

    **Max indices.** With ``return_indices=True`` (``mode="max"``), ``forward`` also returns
    the child node (an id in ``[0, N)``) holding the maximum of each parent and channel,
    for :class:`SphereUnpool` ``(mode="max-indices")``; ties go to the lowest child id, and
    the gradient flows to that child only.

    Args:
        mode (str, optional): ``"max"`` (default) or ``"avg"``.

    Shapes:
        - **input:** ``x`` :math:`(N, F)` (one graph, or a disjoint PyG batch whose
          ``pool_index`` is already offset, see
          :class:`~deepsphere_pyg.graphs.HierarchyData`) or :math:`(B, N, F)` (``B``
          signals on one shared graph; pooled along dimension 1), ``pool_index``
          :math:`(N)`, ``num_parents`` an int *(optional; default* ``max(pool_index) + 1``
          *, or* :math:`N/4` *for the regular map, which needs no device sync)*.
        - **output:** :math:`(N', F)` or :math:`(B, N', F)`, and with
          ``return_indices=True`` a LongTensor of the same shape with child ids.
    """

    modes = POOL_MODES
    default_mode = "max"

    def forward(
        self,
        x: Tensor,
        pool_index: Tensor,
        num_parents: int | None = None,
        return_indices: bool = False,
    ) -> Tensor | tuple[Tensor, Tensor]:
        return sphere_pool(x, pool_index, self.mode, num_parents, return_indices)
