r"""What a scattering backend is: the protocol shared by the harmonic and graph backends.

A backend computes the scattering coefficients of maps given on the finest level of a
:class:`~deepsphere_pyg.graphs.SphereHierarchy`, for the paths of a
:class:`~deepsphere_pyg.scattering.filters.FilterBank` up to a depth:

.. math::

    U[()] f = f, \qquad U[(j_1, \dots, j_m)] f = \bigl| U[(j_1, \dots, j_{m-1})] f
    \star \psi_{j_m} \bigr|, \qquad S[p] f = U[p] f \star \Phi,

where :math:`\star` is the axisymmetric convolution with a kernel given per degree
:math:`\ell` (:math:`\widehat{f \star k}_{\ell m} = k(\ell)\, \hat f_{\ell m}`). The
modulus is taken where :math:`U` is computed (the finest level); :math:`S[p] f` is
band-limited to :math:`\ell < \lambda^{J_0}` and represented on ``output_level``.

Backends are :class:`torch.nn.Module` subclasses without trainable parameters; their
precomputed tensors are non-persistent buffers (they never enter a ``state_dict``).
:class:`ScatteringBackend` states the protocol structurally, so a backend need not
inherit from it.
"""

from __future__ import annotations

import numbers
from typing import Any, Protocol, runtime_checkable

import torch

from ..graphs.hierarchy import SphereHierarchy
from .filters import FilterBank

__all__ = [
    "MAX_DEPTH",
    "ScatteringBackend",
    "check_backend_arguments",
    "check_maps",
    "raise_not_finite",
]

#: Deepest scattering supported. Each order moves energy further towards low degrees and
#: the third order already carries a small fraction of it (McEwen et al. 2022 use depth
#: 2), while the number of paths grows combinatorially; deeper transforms are refused.
MAX_DEPTH = 3


@runtime_checkable
class ScatteringBackend(Protocol):
    r"""Protocol of a scattering backend.

    Construction: ``Backend(hierarchy, bank, depth, output_level)`` with

    * ``hierarchy`` (:class:`~deepsphere_pyg.graphs.SphereHierarchy`): maps live on level 0;
    * ``bank`` (:class:`~deepsphere_pyg.scattering.filters.FilterBank`): the kernels
      :math:`\Phi_{J_0}(\ell)`, :math:`\kappa_j(\ell)`;
    * ``depth`` (int, ``1 <= depth <= MAX_DEPTH``): highest order of the paths;
    * ``output_level`` (int): level of ``hierarchy`` the coefficients are represented on.

    Attributes:
        depth (int), output_level (int): as given.
        paths (list[ScatteringPath]): ``bank.paths(depth)``, the order of the last output
            dimension.

    ``forward(x)`` maps ``x`` ``[B, N0, C]`` (``N0`` nodes of level 0, node order of the
    level-0 graph) to ``[B, N_out, C, P]`` (``N_out`` nodes of ``output_level``,
    ``P = len(paths)``), output ``[..., p]`` being :math:`S[p] f` of the corresponding
    input channel. Inputs are assumed validated by the caller
    (:class:`~deepsphere_pyg.scattering.SphericalScattering` checks shape and finiteness).

    Optional: ``config() -> dict``, the JSON-serialisable settings beyond the constructor
    arguments that change the output (e.g. analysis iterations, polynomial orders).
    """

    depth: int
    output_level: int

    def forward(self, x: torch.Tensor) -> torch.Tensor: ...

    def __call__(self, x: torch.Tensor) -> torch.Tensor: ...


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_backend_arguments(
    hierarchy: Any, bank: Any, depth: Any, output_level: Any
) -> tuple[int, int]:
    """Validate the constructor arguments of a backend; returns ``(depth, output_level)``.

    Raises:
        TypeError: ``hierarchy`` is not a :class:`SphereHierarchy`, ``bank`` not a
            :class:`FilterBank`, ``depth``/``output_level`` not integers.
        ValueError: ``depth`` outside ``[1, MAX_DEPTH]``, ``output_level`` not a level of
            ``hierarchy``.
    """
    if not isinstance(hierarchy, SphereHierarchy):
        raise TypeError(
            f"hierarchy must be a SphereHierarchy, got {type(hierarchy).__name__}; build one "
            "with e.g. SphereHierarchy.healpix(nside, levels)"
        )
    if not isinstance(bank, FilterBank):
        raise TypeError(f"bank must be a FilterBank, got {type(bank).__name__}")
    if not _is_int(depth):
        raise TypeError(f"depth must be an integer, got {depth!r}")
    if not 1 <= depth <= MAX_DEPTH:
        raise ValueError(
            f"depth must be in [1, {MAX_DEPTH}] (1: first-order scattering, 2: the usual "
            f"choice), got {depth}"
        )
    if not _is_int(output_level):
        raise TypeError(f"output_level must be an integer, got {output_level!r}")
    if not 0 <= output_level < len(hierarchy):
        raise ValueError(
            f"output_level must be a level of the hierarchy, in [0, {len(hierarchy) - 1}], "
            f"got {output_level}"
        )
    return int(depth), int(output_level)


def check_maps(x: Any, num_nodes: int, name: str = "x", *, finite: bool = True) -> torch.Tensor:
    """Check that ``x`` is a floating tensor ``[B, num_nodes, C]``, finite unless
    ``finite=False``; returns it.

    Raises:
        TypeError: not a tensor, or not floating point.
        ValueError: wrong number of dimensions or nodes, NaN or infinite values.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(
            f"{name} must be floating point, got dtype {x.dtype}; convert it, e.g. x.float()"
        )
    if x.dim() != 3:
        raise ValueError(
            f"{name} must have shape [B, N, C] (batch, nodes, channels), got "
            f"{list(x.shape)}"
        )
    if x.shape[1] != num_nodes:
        raise ValueError(
            f"{name} has {x.shape[1]} nodes but level 0 of the hierarchy has {num_nodes}; "
            "pass maps sampled on the finest level (in its node order, NEST for HEALPix), "
            "or build the hierarchy at the maps' resolution"
        )
    if finite:
        is_finite = torch.isfinite(x)
        if not bool(is_finite.all()):
            raise_not_finite(int((~is_finite).sum()), name)
    return x


def raise_not_finite(count: int, name: str = "x") -> None:
    """Raise the ValueError for ``count`` NaN or infinite values in ``name``."""
    raise ValueError(
        f"{name} contains {count} NaN or infinite values; fill them (e.g. with the map's "
        "mean) or use a partial-sky hierarchy whose mask leaves those pixels out"
    )
