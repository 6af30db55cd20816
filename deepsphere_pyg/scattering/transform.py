r"""The scattering front-end as a PyG transform: :class:`ScatteringTransform`."""

from __future__ import annotations

from typing import Any

import torch
from torch_geometric.transforms import BaseTransform

from .module import SphericalScattering

__all__ = ["ScatteringTransform"]


class ScatteringTransform(BaseTransform):
    r"""Replace ``data.x`` by its scattering coefficients (:class:`SphericalScattering`).

    Meant as a ``pre_transform`` of a data set: the coefficients are computed once, when the
    data set is processed. The map ``data.x`` (``[N, C]`` on level 0 of the scattering's
    hierarchy) becomes ``[N_out, C * P]`` on its output level, channel ``c * P + p`` =
    path ``p`` of input channel ``c`` (:meth:`SphericalScattering.meta`). Other attributes
    are left as they are (so node-level attributes other than ``x`` still refer to level
    0). Runs without autograd, on the device of the scattering module; the result is
    returned on the device and in the dtype of ``data.x``.

    The ``repr`` names every setting that changes the output, including a short hash of
    the hierarchy: PyG compares the ``repr`` of a data set's ``pre_transform`` with the one
    saved when it was processed and warns when they differ, so a changed configuration
    is noticed.

    Args:
        scattering: the configured front-end.

    Shapes:
        - **input:** ``data.x`` ``[N, C]`` (or ``[N]``, one channel; or ``[B, N, C]``).
        - **output:** ``data.x`` ``[N_out, C * P]`` (``[B, N_out, C * P]``).
    """

    def __init__(self, scattering: SphericalScattering) -> None:
        if not isinstance(scattering, SphericalScattering):
            raise TypeError(
                f"scattering must be a SphericalScattering, got {type(scattering).__name__}"
            )
        self.scattering = scattering

    def _device(self) -> torch.device:
        for tensor in self.scattering.buffers():
            return tensor.device
        return torch.device("cpu")

    def forward(self, data: Any) -> Any:
        x = getattr(data, "x", None)
        if not isinstance(x, torch.Tensor):
            raise ValueError(
                "data.x must hold the map as a tensor [N, C] on level 0 of the hierarchy, "
                f"got {type(x).__name__}"
            )
        maps = x.unsqueeze(-1) if x.dim() == 1 else x
        with torch.no_grad():
            out = self.scattering(maps.to(self._device()))
        data.x = out.to(device=x.device, dtype=x.dtype)
        return data

    def __repr__(self) -> str:
        s = self.scattering
        extra = "".join(f", {key}={value!r}"
                        for key, value in s.config()["backend_config"].items())
        return (
            f"{type(self).__name__}(backend={s.backend_name!r}, J0={s.J0}, J={s.J}, "
            f"depth={s.depth}, L={s.L}, lam={s.lam!r}, hierarchy={s.hierarchy_hash}{extra})"
        )
