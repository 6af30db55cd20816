r"""The base of the ready models: a hierarchy held as buffers and one input path.

A model is built on one :class:`~deepsphere_pyg.graphs.SphereHierarchy` and keeps its
tensors as non-persistent buffers (:class:`HierarchyBuffers`). Its ``forward`` takes one
of two inputs, told apart once by :meth:`SphereModel.resolve_input`:

- ``x [B, N, F]`` (or ``[N, F]``, one sample) on the model's own hierarchy: every sample
  shares the graphs of the buffers (the fast path, no per-sample copies of edges). A
  batch of :class:`~deepsphere_pyg.data.SphereSignal` from PyG's ``DataLoader`` is that
  case too (its ``x`` is stacked).
- a :class:`~deepsphere_pyg.graphs.HierarchyData` (a sample or a PyG batch of them) whose
  samples carry their own hierarchies: ``model(batch)`` uses ``batch.x``,
  ``model(x, batch)`` takes the features ``x [sum N, F]`` apart from the graphs (e.g.
  coefficients on a coarser level than the batch's ``x``).

Either way the network runs on a list of :class:`~deepsphere_pyg.graphs.HierarchyLevel`
(edges, weights, pooling map, coverage and batch vector of each level), so each model
writes its layers once, in ``forward_levels``.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any, ClassVar, NamedTuple

import torch
from torch import Tensor, nn
from torch_geometric.data import Batch, Data

from ..graphs.hierarchy import SphereHierarchy
from ..graphs.hierarchy_data import HierarchyData, HierarchyLevel
from ..graphs.operator import csr_from_parts, csr_parts
from ..nn.chebyshev_operator import chebyshev_operator
from ..nn.fused_chebyshev import CSRParts
from .blocks import NORMALIZATION, check_int, check_normalization, lambda_max_of

__all__ = [
    "HierarchyBuffers",
    "ModelInput",
    "SphereModel",
    "check_features",
    "check_hierarchy",
    "constant_buffer_names",
]


def check_hierarchy(hierarchy: Any) -> SphereHierarchy:
    """``hierarchy`` itself, or a TypeError saying how to build one."""
    if not isinstance(hierarchy, SphereHierarchy):
        raise TypeError(
            f"hierarchy must be a SphereHierarchy, got {type(hierarchy).__name__}; build one "
            "with e.g. SphereHierarchy.healpix(nside, levels)"
        )
    return hierarchy


# ------------------------------------------------------------------------ graph buffers
class HierarchyBuffers(nn.Module):
    r"""The tensors of a :class:`~deepsphere_pyg.graphs.SphereHierarchy` as buffers, and
    the convolution operator of every level, built once.

    Level ``l`` is held as ``edge_index_{l}``, ``edge_weight_{l}``, ``coverage_{l}``,
    (except at the coarsest level) ``pool_index_{l}``, and the operator
    :math:`2L/\lambda_\max - I` of the models' convolutions (symmetric normalisation,
    :data:`~deepsphere_pyg.models.blocks.LAMBDA_MAX`, by default; for
    ``normalization="mass"`` the mass form :math:`2S/\lambda_\max - I` of the level's
    ``node_weight``, with the Gershgorin :math:`\lambda_\max` of
    :mod:`deepsphere_pyg.models.blocks`, and the masses as ``node_weight_{l}``) as its
    CSR parts
    ``operator_crow_{l}``, ``operator_col_{l}``, ``operator_value_{l}`` (dense tensors, so
    the module can be copied and moved like any other). All are registered with
    ``persistent=False``: ``.to(device)`` moves them, ``state_dict`` never holds them. The
    graph tensors are shared with the hierarchy, not copied.

    Args:
        hierarchy: the graphs, finest first.
        num_levels: keep the first ``num_levels`` levels (default: all).
        normalization: ``"sym"`` (default) or ``"mass"`` (every kept level's graph must
            then have ``node_weight``: ``[N]`` positive masses).

    Raises:
        ValueError: bad ``num_levels`` or ``normalization``; ``"mass"`` on a level
            without ``node_weight``.
    """

    def __init__(self, hierarchy: SphereHierarchy, num_levels: int | None = None,
                 normalization: str = NORMALIZATION) -> None:
        super().__init__()
        hierarchy = check_hierarchy(hierarchy)
        self.normalization = check_normalization(normalization)
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
            if self.normalization == "mass":
                mass = graph.node_weight if "node_weight" in graph else None
                if mass is None:
                    raise ValueError(
                        f"normalization='mass' needs node masses but level {level} of the "
                        "hierarchy has no node_weight; build it with a SphereHierarchy "
                        "builder (they set graph.node_weight) or set it with "
                        "deepsphere_pyg.graphs.node_weight.node_weight(graph)")
                self.register_buffer(f"node_weight_{level}", mass, persistent=False)
            self._build_operator(level)

    def _build_operator(self, level: int) -> None:
        """(Re)build the operator of ``level`` from its edges, in the weights' dtype."""
        weight = getattr(self, f"edge_weight_{level}")
        dtype = weight.dtype if weight is not None else torch.get_default_dtype()
        matrix = chebyshev_operator(getattr(self, f"edge_index_{level}"), weight,
                                    self.num_nodes[level], self.normalization,
                                    lambda_max_of(self.normalization), None, dtype,
                                    cache=False, node_weight=self.node_weight(level)).matrix
        for part, tensor in zip(("crow", "col", "value"), csr_parts(matrix), strict=True):
            self.register_buffer(f"operator_{part}_{level}", tensor, persistent=False)

    def _apply(self, fn: Any, recurse: bool = True) -> HierarchyBuffers:
        # A cast of the weights (model.double()) rebuilds the operators from them, so
        # they carry the precision of the new dtype rather than a cast of the old one.
        before = [self._weight_dtype(level) for level in range(self.num_levels)]
        super()._apply(fn, recurse)
        for level, dtype in enumerate(before):
            if self._weight_dtype(level) != dtype:
                self._build_operator(level)
        return self

    def node_weight(self, level: int) -> Tensor | None:
        """The ``[N]`` node masses of ``level`` (``"mass"``), ``None`` otherwise."""
        return self._buffers.get(f"node_weight_{level}")

    def _weight_dtype(self, level: int) -> torch.dtype | None:
        weight = getattr(self, f"edge_weight_{level}")
        return None if weight is None else weight.dtype

    def operator(self, level: int) -> Tensor | CSRParts:
        """The convolution operator of ``level``: a CSR tensor ``[N, N]`` (a view of the
        buffers), or under :func:`torch.compile`, which cannot trace sparse tensors, the
        buffers themselves (:class:`~deepsphere_pyg.nn.fused_chebyshev.CSRParts`)."""
        parts = CSRParts(*(self._buffers[f"operator_{part}_{level}"]
                           for part in ("crow", "col", "value")))
        if torch.compiler.is_compiling():
            return parts
        return csr_from_parts(*parts, self.num_nodes[level])

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
            operator=self.operator(level),
            node_weight=self.node_weight(level),
        )

    def levels(self) -> list[HierarchyLevel]:
        return [self.level(level) for level in range(self.num_levels)]

    def extra_repr(self) -> str:
        extra = (f", normalization={self.normalization!r}"
                 if self.normalization != NORMALIZATION else "")
        return f"sampling={self.sampling!r}, num_nodes={list(self.num_nodes)}{extra}"


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


# ---------------------------------------------------------------- input resolution
def check_features(x: Tensor, in_channels: int) -> None:
    """ValueError unless the last dimension of ``x`` is ``in_channels``."""
    if x.shape[-1] != in_channels:
        raise ValueError(
            f"x has {x.shape[-1]} features (last dimension) but the model was built with "
            f"in_channels={in_channels}"
        )


class ModelInput(NamedTuple):
    """A model's input once resolved (:meth:`SphereModel.resolve_input`).

    ``x`` is ``[B, N, F]`` on the model's own levels (``num_graphs`` ``None``, every
    level's ``batch`` ``None``) or ``[sum N, F]`` on the levels of a disjoint batch of
    ``num_graphs`` graphs. ``single``: ``x`` was given as one ``[N, F]`` sample.
    """

    x: Tensor
    levels: list[HierarchyLevel]
    num_graphs: int | None
    single: bool


class SphereModel(nn.Module, abc.ABC):
    r"""Base class of the models on a :class:`~deepsphere_pyg.graphs.SphereHierarchy`.

    The constructor checks the arguments every model shares. A subclass then sets
    ``graph`` (its :class:`HierarchyBuffers`, levels ``0 .. L - 1`` counted from its
    input) and, when its input does not live on level 0 of the samples' hierarchies,
    ``input_level``; it writes its network once, in :meth:`forward_levels`.
    :meth:`forward` resolves the input (:meth:`resolve_input`) and runs
    :meth:`forward_levels` on it.

    Args:
        hierarchy: the graphs the model is built on, finest first.
        in_channels: input features per node (``in_channels``).
        out_channels: outputs per sample or per node (``out_channels``).

    Raises:
        TypeError: ``hierarchy`` is not a SphereHierarchy.
        ValueError: ``in_channels`` or ``out_channels`` not a positive int.

    Shapes:
        - **input:** ``x [B, N_0, F]`` or ``[N_0, F]`` on the model's hierarchy; or a
          HierarchyData batch (``model(batch)``, features ``batch.x``), or features
          ``x [sum N, F]`` with the HierarchyData batch of their graphs
          (``model(x, batch)``).
        - **output:** that of :meth:`forward_levels`; for one ``[N_0, F]`` sample the
          batch dimension is dropped if the outputs are per node
          (``per_node_output``), kept otherwise (``[1, C]``).
    """

    #: Whether outputs are per node (``[B, N, C]``) rather than per sample (``[B, C]``).
    per_node_output: ClassVar[bool] = False
    #: Level of the samples' hierarchies that the input features live on.
    input_level: int = 0
    graph: HierarchyBuffers

    def __init__(self, hierarchy: SphereHierarchy, in_channels: int, out_channels: int
                 ) -> None:
        super().__init__()
        check_hierarchy(hierarchy)
        self.in_channels = check_int(in_channels, "in_channels")
        self.out_channels = check_int(out_channels, "out_channels")

    @property
    def num_parameters(self) -> int:
        """Number of trainable scalars (all parameters of the model)."""
        return sum(p.numel() for p in self.parameters())

    def describe(self, **settings: Any) -> str:
        """Text of ``extra_repr``: the channel counts, ``key=value`` for each of
        ``settings`` (in order; values as ``repr``) and the number of parameters."""
        return ", ".join([str(self.in_channels), str(self.out_channels),
                          *(f"{key}={value!r}" for key, value in settings.items()),
                          f"num_parameters={self.num_parameters}"])

    def normalization_setting(self) -> dict[str, str]:
        """``{"normalization": ...}`` for :meth:`describe` when it is not the default."""
        normalization = getattr(self, "normalization", NORMALIZATION)
        return {} if normalization == NORMALIZATION else {"normalization": normalization}

    @property
    def _ddp_params_and_buffers_to_ignore(self) -> list[str]:
        """Names DDP leaves alone: the constant (graph) buffers, plus any names set."""
        extra = self.__dict__.get("_ddp_extra_ignore", [])
        return [*constant_buffer_names(self), *extra]

    @_ddp_params_and_buffers_to_ignore.setter
    def _ddp_params_and_buffers_to_ignore(self, names: Sequence[str]) -> None:
        self.__dict__["_ddp_extra_ignore"] = list(names)

    # ------------------------------------------------------------------ input
    def shared_input(self, x: Any) -> tuple[Tensor, bool]:
        """``x`` on the model's own graph as ``[B, N, F]``, and whether it was 2-D.

        Raises:
            TypeError: ``x`` is not a tensor.
            ValueError: ``x`` not 2-D or 3-D, or of the wrong node or feature count.
        """
        if not isinstance(x, Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() not in (2, 3):
            raise ValueError(
                f"x must be [B, N, F] (or [N, F], one sample) on the model's graph, got "
                f"shape {tuple(x.shape)}"
            )
        single = x.dim() == 2
        if single:
            x = x.unsqueeze(0)
        num_nodes = self.graph.num_nodes[0]
        if x.shape[1] != num_nodes:
            raise ValueError(
                f"x has {x.shape[1]} nodes (dimension -2) but the model's graph has N="
                f"{num_nodes} nodes; pass signals on that graph (node order of its level 0), "
                "or a HierarchyData batch for per-sample graphs"
            )
        check_features(x, self.in_channels)
        return x, single

    def resolve_input(self, x: Any, data: Any = None) -> ModelInput:
        """Tell the two inputs of :meth:`forward` apart and check them.

        Args:
            x: ``[B, N_0, F]`` / ``[N_0, F]`` on the model's hierarchy; a HierarchyData
                (batch), whose ``x`` and graphs are used; a batch without graphs (a
                SphereSignal batch), whose stacked ``x`` is used; or ``[sum N, F]``
                features of the graphs of ``data``.
            data: ``None``, or the :class:`~deepsphere_pyg.graphs.HierarchyData` (batch)
                of the graphs of ``x``, with at least ``input_level + graph.num_levels``
                levels (levels from ``input_level`` are used).

        Raises:
            TypeError: ``data`` (or a batch given as ``x``) is not a HierarchyData.
            ValueError: the batch given twice, too few levels, ``x`` of the wrong shape.
        """
        if isinstance(x, Data):
            if data is not None:
                raise ValueError("pass the batch once: model(batch) or model(x, batch)")
            if isinstance(x, HierarchyData):
                x, data = x.x, x
            elif "edge_index" in x:
                raise TypeError(
                    "a Data batch with its own edge_index needs every level of its graphs: "
                    "build the samples with HierarchyData.from_hierarchy"
                )
            else:
                x = x.x
        if data is None:
            x, single = self.shared_input(x)
            return ModelInput(x, self.graph.levels(), None, single)
        if not isinstance(data, HierarchyData):
            raise TypeError(
                f"data must be a HierarchyData (or a PyG batch of them) carrying every level "
                f"of the per-sample hierarchies, got {type(data).__name__}"
            )
        first, needed = self.input_level, self.input_level + self.graph.num_levels
        if data.num_levels < needed:
            raise ValueError(
                f"the model needs {needed} levels but data carries {data.num_levels}; build "
                "the samples from deeper hierarchies"
            )
        levels = [data.level(level) for level in range(first, needed)]
        if not isinstance(x, Tensor) or x.dim() != 2:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"x of a HierarchyData batch must be [sum N, F], got {shape}")
        if x.shape[0] != levels[0].num_nodes:
            raise ValueError(
                f"x has {x.shape[0]} nodes but the batch's graphs have N={levels[0].num_nodes}"
                f" nodes at level {first}, the model's input level"
            )
        check_features(x, self.in_channels)
        num_graphs = int(data.num_graphs) if isinstance(data, Batch) else 1
        return ModelInput(x, levels, num_graphs, False)

    # ---------------------------------------------------------------- forward
    def forward(self, x: Tensor | Data, data: HierarchyData | None = None) -> Tensor:
        """The model's outputs for either input (see :meth:`resolve_input`)."""
        inputs = self.resolve_input(x, data)
        out = self.forward_levels(inputs.x, inputs.levels, inputs.num_graphs)
        return out[0] if inputs.single and self.per_node_output else out

    @abc.abstractmethod
    def forward_levels(self, x: Tensor, levels: Sequence[HierarchyLevel],
                       num_graphs: int | None = None) -> Tensor:
        """The network on resolved levels (``levels[l]``: level ``l`` from the input).

        ``x`` is ``[B, N_0, F]`` on shared levels (every ``batch`` ``None``) or
        ``[sum N_0, F]`` on a disjoint batch of ``num_graphs`` graphs.
        """
